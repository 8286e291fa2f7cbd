//! `dae`: a denoising autoencoder: reconstruct the clean image from one with pixels masked.

use super::{PretrainConfig, PretrainOutcome, Pretrainer, train_autoencoder};
use crate::error::{Result, TrainError};
use crate::progress::Observer;
use burn::tensor::Device;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use strata_data::{Dataset, Normalization};

/// Denoising autoencoder pretraining with masking noise.
pub struct Denoising;

impl Pretrainer for Denoising {
    fn name(&self) -> &'static str {
        "dae"
    }
    fn describe(&self) -> &'static str {
        "denoising autoencoder: reconstruct each image from a copy with a fraction of its pixels zeroed"
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
        if !(0.0..1.0).contains(&cfg.noise) {
            return Err(TrainError::config("--noise", cfg.noise, "the masked fraction must be in [0, 1)"));
        }
        let level = f64::from(cfg.noise);
        train_autoencoder(self.name(), data, norm, cfg, device, observer, log, |step, mut rows| {
            // a generator per step keeps the noise a pure function of (seed, step)
            let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x6461_6500 ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            for row in &mut rows {
                for p in row.iter_mut() {
                    if rng.random_bool(level) {
                        *p = 0;
                    }
                }
            }
            rows
        })
    }
}
