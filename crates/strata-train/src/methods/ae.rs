//! `ae`: a convolutional autoencoder; its encoder is the backbone.

use super::{PretrainConfig, PretrainOutcome, Pretrainer};
use crate::batch::Batcher;
use crate::error::Result;
use crate::progress::{Event, Observer};
use crate::step::{BatchSchedule, checked_loss, mse};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::Device;
use std::time::Instant;
use strata_data::{Dataset, Normalization};
use strata_nn::{Autoencoder, try_seeded, weights};

/// Plain autoencoder pretraining.
pub struct Autoencoding;

impl Pretrainer for Autoencoding {
    fn name(&self) -> &'static str {
        "ae"
    }
    fn describe(&self) -> &'static str {
        "convolutional autoencoder: reconstruct each image through the backbone's code"
    }
    fn pretrain(
        &self,
        data: &Dataset,
        norm: &Normalization,
        cfg: &PretrainConfig,
        device: &Device,
        observer: &mut dyn Observer,
        log: &mut dyn FnMut(serde_json::Value) -> Result<()>,
    ) -> Result<PretrainOutcome> {
        train_autoencoder(self.name(), data, norm, cfg, device, observer, log, |_, rows| rows)
    }
}

/// The autoencoder loop shared by `ae` and `dae`: `corrupt` may alter the input pixels of a
/// batch (the target stays the clean image).
#[allow(clippy::too_many_arguments)]
pub(crate) fn train_autoencoder(
    phase: &str,
    data: &Dataset,
    norm: &Normalization,
    cfg: &PretrainConfig,
    device: &Device,
    observer: &mut dyn Observer,
    log: &mut dyn FnMut(serde_json::Value) -> Result<()>,
    mut corrupt: impl FnMut(u64, Vec<Vec<u8>>) -> Vec<Vec<u8>>,
) -> Result<PretrainOutcome> {
    cfg.validate()?;
    let batcher = Batcher::new(data, norm);
    let input = batcher.input_shape();
    let ad = device.clone().autodiff();
    let mut model = try_seeded(&ad, cfg.seed, || Autoencoder::new(&cfg.arch, input, &ad))?;
    let mut optim = AdamConfig::new().init();
    let mut schedule = BatchSchedule::new((0..data.len()).collect(), cfg.batch, cfg.seed);
    let steps_per_epoch = schedule.steps_per_epoch();
    observer.event(Event::PhaseStart { phase: phase.into(), steps: cfg.epochs * steps_per_epoch });
    let started = Instant::now();
    let mut last_loss = f32::NAN;
    let mut step = 0usize;
    for epoch in 0..cfg.epochs {
        let t0 = Instant::now();
        let (mut sum, mut count) = (0f64, 0usize);
        for _ in 0..steps_per_epoch {
            let idx = schedule.next_batch();
            let rows: Vec<Vec<u8>> = idx.iter().map(|&i| data.image(i).to_vec()).collect();
            let rows = corrupt(step as u64, rows);
            let x = batcher.inputs_from_pixels(&rows, &ad);
            let target = batcher.targets(&idx, &ad);
            let loss = mse(model.forward(x), target);
            let value = checked_loss(&loss, phase, step)?;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(cfg.lr, model, grads);
            sum += f64::from(value) * idx.len() as f64;
            count += idx.len();
            step += 1;
            observer.event(Event::Step { phase: phase.into(), step, loss: value });
        }
        let secs = t0.elapsed().as_secs_f64();
        last_loss = (sum / count.max(1) as f64) as f32;
        log(serde_json::json!({
            "phase": phase, "epoch": epoch + 1, "step": step, "loss": last_loss,
            "lr": cfg.lr, "seconds": secs, "images_per_s": count as f64 / secs.max(1e-9),
        }))?;
    }
    let seconds = started.elapsed().as_secs_f64();
    observer.event(Event::PhaseEnd { phase: phase.into(), summary: format!("reconstruction mse {last_loss:.5}") });
    let model = model.valid();
    Ok(PretrainOutcome {
        weights: weights::to_bytes(&model)?,
        metrics: serde_json::json!({
            "final_loss": last_loss, "steps": step, "seconds": seconds,
            "images_per_s": (step * cfg.batch) as f64 / seconds.max(1e-9),
        }),
    })
}
