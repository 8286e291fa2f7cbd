//! The decoder of an autoencoder: the backbone mirrored, ending in a sigmoid so it
//! reconstructs pixels scaled to [0, 1].

use crate::block::{Features, apply_activation};
use crate::error::Result;
use crate::spec::{Activation, ArchSpec, BlockSpec, FeatureShape, InputShape};
use burn::backend::ops::conv::calculate_conv_transpose_output_size;
use burn::module::Module;
use burn::nn::conv::{ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

/// One decoder stage: a linear layer (optionally reshaped to a map) or a transposed conv.
#[derive(Module, Debug)]
pub struct DecoderBlock {
    /// inverse of a dense block
    pub linear: Option<Linear>,
    /// inverse of a conv block
    pub deconv: Option<ConvTranspose2d>,
    /// batch norm before the activation (a DCGAN generator's hidden stages; None in autoencoders)
    pub norm: Option<BatchNorm>,
    /// non-linearity (sigmoid on the last stage)
    #[module(skip)]
    pub activation: Activation,
    /// map shape to reshape the linear output into, when the mirrored block read a map
    #[module(skip)]
    pub reshape: Option<[usize; 3]>,
}

impl DecoderBlock {
    /// The stage's batch norm (if any), then its activation.
    fn finish<const D: usize>(&self, y: Tensor<D>) -> Tensor<D> {
        let y = match &self.norm {
            Some(norm) => strata_ops::batch_norm(norm, y),
            None => y,
        };
        apply_activation(y, self.activation)
    }
}

/// Mirror of a backbone.
#[derive(Module, Debug)]
pub struct Decoder {
    /// stages, from the code back to the image
    pub blocks: Vec<DecoderBlock>,
}

impl Decoder {
    /// Builds the mirror of `spec` for `input`: dense → linear back to the block's input size;
    /// pooled conv → 2x2 stride-2 transposed conv (REF-CAE's decoder); strided conv → the
    /// transposed conv of its kernel and stride; other convs → same-size transposed conv.
    pub fn mirror(spec: &ArchSpec, input: InputShape, device: &Device) -> Result<Self> {
        Self::mirror_with(spec, input, false, device)
    }

    /// [`Decoder::mirror`] with batch norm before every hidden stage's activation when
    /// `batch_norm` (DCGAN's generator; the output stage never has one).
    pub fn mirror_with(spec: &ArchSpec, input: InputShape, batch_norm: bool, device: &Device) -> Result<Self> {
        let shapes = spec.shapes(input)?;
        let input_map = FeatureShape::from(input);
        let mut blocks = Vec::with_capacity(spec.blocks.len());
        for (i, b) in spec.blocks.iter().enumerate().rev() {
            let before = if i == 0 { input_map } else { shapes[i - 1] };
            let after = shapes[i];
            let activation = if i == 0 { Activation::Sigmoid } else { Activation::Relu };
            let norm = |width: usize| (batch_norm && i > 0).then(|| BatchNormConfig::new(width).init(device));
            let block = match (*b, before) {
                (BlockSpec::Dense { .. }, before) => DecoderBlock {
                    linear: Some(LinearConfig::new(after.numel(), before.numel()).init(device)),
                    deconv: None,
                    // a linear stage that rebuilds a map is normalised per channel after the reshape
                    norm: norm(match before {
                        FeatureShape::Map(c, _, _) => c,
                        FeatureShape::Flat(n) => n,
                    }),
                    activation,
                    reshape: match before {
                        FeatureShape::Map(c, h, w) => Some([c, h, w]),
                        FeatureShape::Flat(_) => None,
                    },
                },
                (BlockSpec::Conv { channels, kernel, pool, stride, .. }, FeatureShape::Map(c_in, h_in, w_in)) => {
                    let (h_out, w_out) = match after {
                        FeatureShape::Map(_, h, w) => (h, w),
                        FeatureShape::Flat(_) => (h_in, w_in),
                    };
                    let deconv = if stride > 1 {
                        // the transposed conv of the same kernel and stride; padding_out gives
                        // back the rows a stride rounded away
                        let p = kernel / 2;
                        let back =
                            |out: usize| calculate_conv_transpose_output_size(kernel, stride, p, 0, 1, out.max(1));
                        ConvTranspose2dConfig::new([channels, c_in], [kernel, kernel])
                            .with_stride([stride, stride])
                            .with_padding([p, p])
                            .with_padding_out([h_in.saturating_sub(back(h_out)), w_in.saturating_sub(back(w_out))])
                    } else if pool {
                        // floor pooling of an odd size loses a row: give it back with padding_out
                        ConvTranspose2dConfig::new([channels, c_in], [2, 2])
                            .with_stride([2, 2])
                            .with_padding_out([h_in % 2, w_in % 2])
                    } else {
                        ConvTranspose2dConfig::new([channels, c_in], [kernel, kernel])
                            .with_padding([kernel / 2, kernel / 2])
                    };
                    DecoderBlock {
                        linear: None,
                        deconv: Some(deconv.init(device)),
                        norm: norm(c_in),
                        activation,
                        reshape: None,
                    }
                }
                (BlockSpec::Conv { .. }, FeatureShape::Flat(_)) => unreachable!("rejected by ArchSpec::shapes"),
            };
            blocks.push(block);
        }
        Ok(Self { blocks })
    }

    /// Applies decoder stage `i` alone (stage 0 undoes the backbone's top block); used by
    /// greedy layer-wise training, where each block learns with its own mirror.
    pub fn forward_stage(&self, i: usize, x: Features) -> Features {
        let Some(b) = self.blocks.get(i) else { return x };
        if let Some(linear) = &b.linear {
            let y = linear.forward(x.flat());
            match b.reshape {
                Some([c, h, w]) => {
                    let [n, _] = y.dims();
                    Features::Map(b.finish(y.reshape([n, c, h, w])))
                }
                None => Features::Flat(b.finish(y)),
            }
        } else if let Some(deconv) = &b.deconv {
            let map = match x {
                Features::Map(t) => t,
                Features::Flat(t) => {
                    let [n, f] = t.dims();
                    t.reshape([n, f, 1, 1])
                }
            };
            Features::Map(b.finish(strata_ops::conv_transpose2d(deconv, map)))
        } else {
            x
        }
    }

    /// Decodes backbone features to an image batch (N x C x H x W, values in [0, 1]).
    pub fn forward(&self, code: Features) -> Tensor<4> {
        let mut x = code;
        for i in 0..self.blocks.len() {
            x = self.forward_stage(i, x);
        }
        match x {
            Features::Map(t) => t,
            Features::Flat(t) => {
                let [n, f] = t.dims();
                t.reshape([n, f, 1, 1])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{build_stack, forward_stack};

    #[test]
    fn the_mirror_of_strided_blocks_gives_back_the_input_shape() {
        let device = Device::flex();
        for (arch, (h, w)) in [
            ("conv8s2-leaky0.2,conv16s2-bn-leaky0.2,dense12", (28, 28)),
            ("conv4s2,conv4k5s2,conv4s3", (7, 5)),
            ("conv4s2,conv4-pool,conv4", (13, 9)),
        ] {
            let spec = ArchSpec::parse(arch).unwrap();
            let input = InputShape { channels: 2, height: h, width: w };
            let stack = build_stack(&spec.blocks, input.into(), &device).unwrap();
            let decoder = Decoder::mirror(&spec, input, &device).unwrap();
            let x = Tensor::<4>::ones([3, 2, h, w], &device);
            let code = forward_stack(&stack, Features::Map(x));
            assert_eq!(decoder.forward(code).dims(), [3, 2, h, w], "{arch}");
        }
    }
}
