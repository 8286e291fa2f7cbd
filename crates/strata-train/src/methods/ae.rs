//! `ae`: a convolutional autoencoder; its encoder is the backbone.

use super::artifacts::reconstructions;
use super::epochs::{Figures, Objective, one_model_checkpoint, run_epochs, trained};
use super::{Job, Log, PretrainOutcome, Pretrainer};
use crate::batch::Batcher;
use crate::error::Result;
use crate::progress::Observer;
use crate::step::{checked_loss, mse};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::Device;
use strata_data::Dataset;
use strata_nn::{Autoencoder, try_seeded};

/// Plain autoencoder pretraining.
pub struct Autoencoding;

impl Pretrainer for Autoencoding {
    fn name(&self) -> &'static str {
        "ae"
    }
    fn describe(&self) -> &'static str {
        "convolutional autoencoder: reconstruct each image through the backbone's code"
    }
    fn train(&self, job: &Job, observer: &mut dyn Observer, log: &mut Log) -> Result<PretrainOutcome> {
        train_autoencoder(self.name(), job, observer, log, |_, rows| rows)
    }
}

/// One reconstruction step: `corrupt` may alter the input pixels (the target stays clean).
struct Reconstruct<'a, C> {
    model: Option<Autoencoder>,
    optim: ModuleOptimizer,
    data: &'a Dataset,
    batcher: Batcher<'a>,
    device: Device,
    lr: f64,
    phase: &'a str,
    corrupt: C,
}

impl<C: FnMut(u64, Vec<Vec<u8>>) -> Vec<Vec<u8>>> Objective for Reconstruct<'_, C> {
    fn step(&mut self, idx: &[usize], step: usize) -> Result<Figures> {
        let Some(model) = self.model.take() else { unreachable!("the model is put back after every step") };
        let rows: Vec<Vec<u8>> = idx.iter().map(|&i| self.data.image(i).to_vec()).collect();
        let rows = (self.corrupt)(step as u64, rows);
        let x = self.batcher.inputs_from_pixels(&rows, &self.device);
        let target = self.batcher.targets(idx, &self.device);
        let loss = mse(model.forward(x), target);
        let value = checked_loss(&loss, self.phase, step)?;
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        self.model = Some(self.optim.step(self.lr, model, grads));
        Ok(vec![("loss", f64::from(value))])
    }

    one_model_checkpoint!();
}

/// The autoencoder loop shared by `ae` and `dae`: `corrupt` may alter the input pixels of a
/// batch (the target stays the clean image).
pub(crate) fn train_autoencoder(
    phase: &str,
    job: &Job,
    observer: &mut dyn Observer,
    log: &mut Log,
    corrupt: impl FnMut(u64, Vec<Vec<u8>>) -> Vec<Vec<u8>>,
) -> Result<PretrainOutcome> {
    let Job { data, norm, cfg, device } = *job;
    let batcher = Batcher::new(data, norm);
    let input = batcher.input_shape();
    let ad = device.clone().autodiff();
    let model = try_seeded(&ad, cfg.seed, || Autoencoder::new(&cfg.arch, input, &ad))?;
    let mut objective = Reconstruct {
        model: Some(model),
        optim: AdamConfig::new().init(),
        data,
        batcher,
        device: ad,
        lr: cfg.lr,
        phase,
        corrupt,
    };
    let summary = run_epochs(phase, cfg, data.len(), 1, &mut objective, observer, log)?;
    let model = trained(objective.model);
    let grid = reconstructions(data, norm, device, |x| model.forward(x))?;
    PretrainOutcome::new(&model, summary.metrics(cfg.batch), vec![grid])
}
