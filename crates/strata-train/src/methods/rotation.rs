//! `rotation`: an auxiliary task whose labels cost nothing. Each image is turned by 0, 90,
//! 180 or 270 degrees and the network predicts which; recognising "upright" needs the shapes
//! of the objects, which is what the backbone learns.

use super::epochs::{Figures, Objective, one_model_checkpoint, run_epochs, trained};
use super::{Job, Log, PretrainConfig, PretrainOutcome, Pretrainer};
use crate::batch::Batcher;
use crate::error::{Result, TrainError};
use crate::progress::Observer;
use crate::step::{checked_loss, cross_entropy, step_rng};
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::Rng;
use strata_data::{Dataset, augment};
use strata_nn::block::{build_stack, forward_stack};
use strata_nn::{Block, Features, try_seeded};

/// Rotation-prediction pretraining.
pub struct Rotation;

/// The backbone under a 4-way head that names the rotation (dropped at reuse).
#[derive(Module, Debug)]
pub struct RotationNet {
    /// what stage two reuses
    pub backbone: Vec<Block>,
    /// logits of 0, 90, 180 and 270 degrees
    pub rotation_head: Linear,
}

/// The quarter turns of each image of a step and the rotated pixels: a pure function of
/// (seed, step), so runs repeat exactly.
pub(crate) fn rotated_batch(data: &Dataset, idx: &[usize], seed: u64, step: usize) -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut rng = step_rng(seed, 0x726f_7461, step as u64);
    let turns: Vec<u8> = idx.iter().map(|_| rng.random_range(0..4u8)).collect();
    let pixels = idx.iter().zip(&turns).map(|(&i, &k)| augment::rotate90(data.image(i), data.shape, k)).collect();
    (pixels, turns)
}

struct PredictRotation<'a> {
    model: Option<RotationNet>,
    optim: ModuleOptimizer,
    data: &'a Dataset,
    batcher: Batcher<'a>,
    device: Device,
    cfg: &'a PretrainConfig,
}

impl Objective for PredictRotation<'_> {
    one_model_checkpoint!();

    fn step(&mut self, idx: &[usize], step: usize) -> Result<Figures> {
        let Some(model) = self.model.take() else { unreachable!("the model is put back after every step") };
        let (pixels, turns) = rotated_batch(self.data, idx, self.cfg.seed, step);
        let x = self.batcher.inputs_from_pixels(&pixels, &self.device);
        let labels: Vec<i64> = turns.iter().map(|&k| i64::from(k)).collect();
        let y = Tensor::<1, Int>::from_data(TensorData::new(labels.clone(), [idx.len()]), &self.device);
        let logits = model.rotation_head.forward(forward_stack(&model.backbone, Features::Map(x)).flat());
        let loss = cross_entropy(logits.clone(), y);
        let value = checked_loss(&loss, "rotation", step)?;
        let picked = logits.argmax(1).into_data().convert::<i64>().try_to_vec::<i64>().unwrap_or_default();
        let correct = picked.iter().zip(&labels).filter(|(p, l)| p == l).count();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        self.model = Some(self.optim.step(self.cfg.lr, model, grads));
        Ok(vec![("loss", f64::from(value)), ("rotation_accuracy", correct as f64 / idx.len() as f64)])
    }
}

impl Pretrainer for Rotation {
    fn name(&self) -> &'static str {
        "rotation"
    }
    fn describe(&self) -> &'static str {
        "rotation prediction: tell by how many quarter turns each image was rotated"
    }
    fn train(&self, job: &Job, observer: &mut dyn Observer, log: &mut Log) -> Result<PretrainOutcome> {
        let Job { data, norm, cfg, device } = *job;
        if data.shape.height != data.shape.width {
            return Err(TrainError::config(
                "--method rotation",
                format!("{}x{} images", data.shape.height, data.shape.width),
                "quarter turns need square images; resize the data to a square or pick another method",
            ));
        }
        let batcher = Batcher::new(data, norm);
        let input = batcher.input_shape();
        let features = cfg.arch.output_shape(input)?.numel();
        let ad = device.clone().autodiff();
        let model = try_seeded(&ad, cfg.seed, || {
            Ok::<_, strata_nn::NnError>(RotationNet {
                backbone: build_stack(&cfg.arch.blocks, input.into(), &ad)?,
                rotation_head: LinearConfig::new(features, 4).init(&ad),
            })
        })?;
        let mut objective =
            PredictRotation { model: Some(model), optim: AdamConfig::new().init(), data, batcher, device: ad, cfg };
        let summary = run_epochs(self.name(), cfg, data.len(), 1, &mut objective, observer, log)?;
        PretrainOutcome::new(&trained(objective.model), summary.metrics(cfg.batch), vec![])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_data::ImageShape;

    #[test]
    fn each_image_is_rotated_by_its_label() {
        let images: Vec<u8> = (0..2 * 9).map(|v| v as u8).collect();
        let data =
            Dataset { images, shape: ImageShape::new(1, 3, 3), labels: None, class_names: vec![], source: "t".into() };
        let (pixels, turns) = rotated_batch(&data, &[0, 1, 0, 1, 0, 1], 5, 9);
        for ((px, &k), i) in pixels.iter().zip(&turns).zip([0, 1, 0, 1, 0, 1]) {
            assert_eq!(px, &augment::rotate90(data.image(i), data.shape, k));
        }
        assert_eq!(rotated_batch(&data, &[0, 1], 5, 9), rotated_batch(&data, &[0, 1], 5, 9));
    }
}
