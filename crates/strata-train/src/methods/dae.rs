//! `dae`: a denoising autoencoder: reconstruct the clean image from one with pixels masked.

use super::{NoiseKind, PretrainConfig, PretrainOutcome, Pretrainer, train_autoencoder};
use crate::error::Result;
use crate::progress::Observer;
use crate::step::step_rng;
use burn::tensor::Device;
use strata_data::{Dataset, Normalization, augment};

/// Denoising autoencoder pretraining with masking noise.
pub struct Denoising;

impl Pretrainer for Denoising {
    fn name(&self) -> &'static str {
        "dae"
    }
    fn describe(&self) -> &'static str {
        "denoising autoencoder: reconstruct each image from a corrupted copy (--noise-kind mask: pixels zeroed; gaussian: noise added)"
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
        let level = f64::from(cfg.noise);
        train_autoencoder(self.name(), data, norm, cfg, device, observer, log, |step, mut rows| {
            let mut rng = step_rng(cfg.seed, 0x6461_6500, step);
            for row in &mut rows {
                match cfg.noise_kind {
                    NoiseKind::Mask => augment::mask(row, level, &mut rng),
                    NoiseKind::Gaussian => augment::gaussian(row, level, &mut rng),
                }
            }
            rows
        })
    }
}
