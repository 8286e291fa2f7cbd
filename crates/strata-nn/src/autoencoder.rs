//! Backbone + mirrored decoder.

use crate::block::{Block, Features, build_stack, forward_stack};
use crate::decoder::Decoder;
use crate::error::Result;
use crate::spec::{ArchSpec, InputShape};
use burn::module::Module;
use burn::tensor::{Device, Tensor};

/// A convolutional autoencoder whose encoder is a reusable backbone.
#[derive(Module, Debug)]
pub struct Autoencoder {
    /// the encoder: what stage two reuses
    pub backbone: Vec<Block>,
    /// thrown away at reuse time
    pub decoder: Decoder,
}

impl Autoencoder {
    /// Builds a randomly initialised autoencoder (seed it with [`crate::seeded`]).
    pub fn new(spec: &ArchSpec, input: InputShape, device: &Device) -> Result<Self> {
        let decoder = Decoder::mirror(spec, input, device)?;
        Ok(Self { backbone: build_stack(&spec.blocks, input.into(), device)?, decoder })
    }

    /// Backbone features of a batch.
    pub fn encode(&self, x: Tensor<4>) -> Features {
        forward_stack(&self.backbone, Features::Map(x))
    }

    /// Reconstruction of a batch, in [0, 1].
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.decoder.forward(self.encode(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::optim::{AdamConfig, GradientsParams};
    use burn::tensor::TensorData;
    use strata_ops::{ConvImpl, with_implementation};

    /// The same initial weights for both runs: built once, because tests on other threads
    /// draw from the device's generator too.
    fn initial(arch: &str) -> Autoencoder {
        let device = Device::flex().autodiff();
        let input = InputShape { channels: 1, height: 28, width: 28 };
        let spec = ArchSpec::parse(arch).unwrap();
        crate::seeded(&device, 5, || Autoencoder::new(&spec, input, &device).unwrap())
    }

    /// Losses of `steps` Adam steps on one batch of fixed images.
    fn loss_curve(mut ae: Autoencoder, choice: ConvImpl, steps: usize) -> Vec<f32> {
        with_implementation(choice, || {
            let device = Device::flex().autodiff();
            let pixels: Vec<f32> = (0..16 * 28 * 28u64)
                .map(|i| (i.wrapping_mul(0x9E3779B97F4A7C15) >> 40) as f32 / 16_777_216.0)
                .collect();
            let x = Tensor::<4>::from_data(TensorData::new(pixels, [16, 1, 28, 28]), &device);
            let mut optim = AdamConfig::new().init();
            (0..steps)
                .map(|_| {
                    let loss = (ae.forward(x.clone()) - x.clone()).powi_scalar(2).mean();
                    let grads = GradientsParams::from_grads(loss.backward(), &ae);
                    ae = optim.step(1e-3, ae.clone(), grads);
                    loss.into_scalar::<f32>()
                })
                .collect()
        })
    }

    /// strata's convolution and pooling against burn's over 20 training steps. Both compute
    /// the same sums in different orders, so each step differs by f32 rounding (~1e-7
    /// relative), which Adam's per-weight normalisation amplifies where a gradient is near
    /// zero; 1e-3 relative per step bounds that with room (the largest seen is printed), while
    /// a wrong gradient anywhere moves the curve by far more within a few steps.
    #[test]
    fn a_training_run_follows_burns_loss_curve() {
        for arch in [crate::spec::REF_CAE, "conv8-bn-pool,conv16s2,dense12", "conv32-bn-pool,conv64s2,dense32"] {
            let start = initial(arch);
            let ours = loss_curve(start.clone(), ConvImpl::Strata, 20);
            let burns = loss_curve(start, ConvImpl::Burn, 20);
            assert!(burns[19] < burns[0], "{arch}: the run must learn for the comparison to mean anything");
            let worst = ours.iter().zip(&burns).map(|(a, b)| ((a - b) / b).abs()).fold(0.0f32, f32::max);
            eprintln!("{arch}: largest relative loss difference over 20 steps {worst:e}");
            assert!(worst < 1e-3, "{arch}: strata {ours:?} burn {burns:?}");
        }
    }
}
