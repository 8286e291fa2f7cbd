//! `dae`: a denoising autoencoder: reconstruct the clean image from one with pixels masked.

use super::{Job, Log, NoiseKind, PretrainOutcome, Pretrainer, train_autoencoder};
use crate::error::Result;
use crate::progress::Observer;
use crate::step::step_rng;
use strata_data::augment;

/// Denoising autoencoder pretraining with masking noise.
pub struct Denoising;

impl Pretrainer for Denoising {
    fn name(&self) -> &'static str {
        "dae"
    }
    fn describe(&self) -> &'static str {
        "denoising autoencoder: reconstruct each image from a corrupted copy (--noise-kind mask: pixels zeroed; gaussian: noise added)"
    }
    fn train(&self, job: &Job, observer: &mut dyn Observer, log: &mut Log) -> Result<PretrainOutcome> {
        let cfg = job.cfg;
        let level = f64::from(cfg.corruption.noise);
        train_autoencoder(self.name(), job, observer, log, |step, mut rows| {
            let mut rng = step_rng(cfg.seed, 0x6461_6500, step);
            for row in &mut rows {
                match cfg.corruption.noise_kind {
                    NoiseKind::Mask => augment::mask(row, level, &mut rng),
                    NoiseKind::Gaussian => augment::gaussian(row, level, &mut rng),
                }
            }
            rows
        })
    }
}
