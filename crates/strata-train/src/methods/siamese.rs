//! `siamese`: a twin network learns whether two images show the same thing. Positives are
//! two random augmentations (shift, masking) of one image, negatives are the other images of
//! the batch; the shared tower is the backbone that stage two reuses. Scoring every pair of
//! the batch at once (a softmax over "which of these is my twin") gives each image many
//! negatives per step, which is what makes the tower's features discriminative.

use super::{PretrainConfig, PretrainOutcome, Pretrainer};
use crate::batch::Batcher;
use crate::error::{Result, TrainError};
use crate::progress::{Event, Observer};
use crate::step::{BatchSchedule, checked_loss, cross_entropy, step_rng};
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::time::Instant;
use strata_data::{Dataset, Normalization, augment};
use strata_nn::block::{build_stack, forward_stack};
use strata_nn::{Block, FeatureShape, Features, seeded, weights};

/// Pixels an augmentation may shift an image by.
const MAX_SHIFT: usize = 3;
/// Temperature of the pair scores.
const TEMPERATURE: f64 = 0.1;
/// Width of the projection the pairs are compared in.
const PROJECTION: usize = 64;

/// Siamese same-or-different pretraining.
pub struct Siamese;

/// The twin tower and the projection its outputs are compared in (dropped at reuse).
#[derive(Module, Debug)]
pub struct SiameseNet {
    /// shared tower: what stage two reuses
    pub backbone: Vec<Block>,
    /// projection used only to compare pairs
    pub projector: Linear,
}

impl SiameseNet {
    fn embed(&self, x: Tensor<4>) -> Tensor<2> {
        let z = self.projector.forward(forward_stack(&self.backbone, Features::Map(x)).flat());
        let norm = z.clone().powi_scalar(2).sum_dim(1).add_scalar(1e-12).sqrt();
        z / norm
    }
}

/// One augmented view: a random shift, then a random fraction (up to `mask`) of pixels zeroed.
fn view(pixels: &[u8], shape: strata_data::ImageShape, mask: f64, rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut v = augment::random_shift(pixels, shape, MAX_SHIFT, rng);
    let p = rng.random_range(0.0..=mask);
    augment::mask(&mut v, p, rng);
    v
}

impl Pretrainer for Siamese {
    fn name(&self) -> &'static str {
        "siamese"
    }
    fn describe(&self) -> &'static str {
        "siamese twins: tell two augmentations of one image from two different images"
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
        cfg.validate()?;
        if data.len() < 2 {
            return Err(TrainError::config(
                "--data",
                data.len(),
                "siamese needs at least 2 images (one image has nothing to be told apart from)",
            ));
        }
        if cfg.batch < 2 {
            return Err(TrainError::config(
                "--batch",
                cfg.batch,
                "siamese needs at least 2 images per batch (the negatives)",
            ));
        }
        let batcher = Batcher::new(data, norm);
        let input = batcher.input_shape();
        let features = cfg.arch.output_shape(input)?.numel();
        let ad = device.clone().autodiff();
        let first = FeatureShape::Map(input.channels, input.height, input.width);
        let mut model = seeded(&ad, cfg.seed, || SiameseNet {
            backbone: build_stack(&cfg.arch.blocks, first, &ad),
            projector: LinearConfig::new(features, PROJECTION).init(&ad),
        });
        let mut optim = AdamConfig::new().init();
        let mut schedule = BatchSchedule::new((0..data.len()).collect(), cfg.batch, cfg.seed);
        let steps_per_epoch = schedule.steps_per_epoch();
        observer.event(Event::PhaseStart { phase: self.name().into(), steps: cfg.epochs * steps_per_epoch });
        let started = Instant::now();
        let (mut step, mut last_loss) = (0usize, f32::NAN);
        let mask = f64::from(cfg.noise);
        for epoch in 0..cfg.epochs {
            let t0 = Instant::now();
            let (mut sum, mut count, mut correct) = (0f64, 0usize, 0usize);
            for _ in 0..steps_per_epoch {
                let mut idx = schedule.next_batch();
                if idx.len() < 2 {
                    // a lone leftover image has no negative to be told apart from
                    idx.push(schedule.next_batch()[0]);
                }
                let mut rng = step_rng(cfg.seed, 0x7369_616d, step as u64);
                let a: Vec<Vec<u8>> = idx.iter().map(|&i| view(data.image(i), data.shape, mask, &mut rng)).collect();
                let b: Vec<Vec<u8>> = idx.iter().map(|&i| view(data.image(i), data.shape, mask, &mut rng)).collect();
                let za = model.embed(batcher.inputs_from_pixels(&a, &ad));
                let zb = model.embed(batcher.inputs_from_pixels(&b, &ad));
                // scores[i][j]: how much view a of image i looks like view b of image j
                let scores = za.matmul(zb.transpose()).div_scalar(TEMPERATURE);
                let n = idx.len();
                let twins = Tensor::<1, Int>::arange(0..n as i64, &ad);
                let loss = (cross_entropy(scores.clone(), twins.clone())
                    + cross_entropy(scores.clone().transpose(), twins))
                .div_scalar(2.0);
                let value = checked_loss(&loss, self.name(), step)?;
                let picked = scores.argmax(1).into_data().convert::<i64>().try_to_vec::<i64>().unwrap_or_default();
                correct += picked.iter().enumerate().filter(|(i, p)| **p == *i as i64).count();
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optim.step(cfg.lr, model, grads);
                sum += f64::from(value) * n as f64;
                count += n;
                step += 1;
                observer.event(Event::Step { phase: self.name().into(), step, loss: value });
            }
            let secs = t0.elapsed().as_secs_f64();
            last_loss = (sum / count.max(1) as f64) as f32;
            log(serde_json::json!({
                "phase": self.name(), "epoch": epoch + 1, "step": step, "loss": last_loss,
                "twin_accuracy": correct as f64 / count.max(1) as f64,
                "lr": cfg.lr, "seconds": secs, "images_per_s": count as f64 / secs.max(1e-9),
            }))?;
        }
        let seconds = started.elapsed().as_secs_f64();
        observer.event(Event::PhaseEnd { phase: self.name().into(), summary: format!("pair loss {last_loss:.4}") });
        let model = model.valid();
        Ok(PretrainOutcome {
            weights: weights::to_bytes(&model)?,
            metrics: serde_json::json!({
                "final_loss": last_loss, "steps": step, "seconds": seconds,
                "images_per_s": (step * cfg.batch) as f64 / seconds.max(1e-9),
            }),
        })
    }
}
