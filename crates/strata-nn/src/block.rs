//! One block of a backbone or head: conv or dense, optional batch norm, activation, pool.

use crate::error::{NnError, Result};
use crate::spec::{Activation, ArchSpec, BlockSpec, FeatureShape};
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation;
use burn::tensor::{Device, Tensor};

/// Activations flowing between blocks: a feature map or a flat vector per image.
#[derive(Debug, Clone)]
pub enum Features {
    /// batch x channels x height x width
    Map(Tensor<4>),
    /// batch x features
    Flat(Tensor<2>),
}

impl Features {
    /// Flattens a feature map to batch x features (a flat tensor is returned as is).
    pub fn flat(self) -> Tensor<2> {
        match self {
            Self::Map(t) => t.flatten(1, 3),
            Self::Flat(t) => t,
        }
    }
}

/// A block; exactly one of `conv` and `linear` is set. Parameter names follow the fields:
/// `backbone.0.conv.weight`, `backbone.0.norm.gamma`, `head.0.linear.weight`.
#[derive(Module, Debug)]
pub struct Block {
    /// the convolution of a conv block
    pub conv: Option<Conv2d>,
    /// the linear layer of a dense block
    pub linear: Option<Linear>,
    /// batch norm after the conv or linear layer
    pub norm: Option<BatchNorm>,
    /// 2x2 max pool at the end of a conv block
    pub pool: Option<MaxPool2d>,
    /// non-linearity
    #[module(skip)]
    pub activation: Activation,
}

impl Block {
    /// Builds the block `spec` taking `input` (uses the device's generator: see [`crate::seeded`]).
    pub fn new(spec: BlockSpec, input: FeatureShape, device: &Device) -> Self {
        match spec {
            BlockSpec::Conv { channels, kernel, stride, batch_norm, pool, activation } => {
                let in_channels = match input {
                    FeatureShape::Map(c, _, _) => c,
                    FeatureShape::Flat(n) => n,
                };
                let p = kernel / 2;
                let conv = Conv2dConfig::new([in_channels, channels], [kernel, kernel])
                    .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                    .with_stride([stride.max(1), stride.max(1)])
                    .init(device);
                Self {
                    conv: Some(conv),
                    linear: None,
                    norm: batch_norm.then(|| BatchNormConfig::new(channels).init(device)),
                    pool: pool.then(|| MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init()),
                    activation,
                }
            }
            BlockSpec::Dense { units, batch_norm, activation } => Self {
                conv: None,
                linear: Some(LinearConfig::new(input.numel(), units).init(device)),
                norm: batch_norm.then(|| BatchNormConfig::new(units).init(device)),
                pool: None,
                activation,
            },
        }
    }

    /// Applies the block.
    pub fn forward(&self, x: Features) -> Features {
        if let Some(conv) = &self.conv {
            let x = match x {
                Features::Map(t) => t,
                // ArchSpec::shapes rejects conv after dense; a flat input here is a bug upstream.
                Features::Flat(t) => {
                    let [b, n] = t.dims();
                    t.reshape([b, n, 1, 1])
                }
            };
            let mut y = strata_ops::conv2d(conv, x);
            if let Some(norm) = &self.norm {
                y = strata_ops::batch_norm(norm, y);
            }
            // relu then pool is one pass of strata's kernel (max commutes with relu)
            Features::Map(match &self.pool {
                Some(pool) if matches!(self.activation, Activation::Relu) => strata_ops::max_pool2d(pool, y, true),
                Some(pool) => strata_ops::max_pool2d(pool, apply_activation(y, self.activation), false),
                None => apply_activation(y, self.activation),
            })
        } else if let Some(linear) = &self.linear {
            let mut y = linear.forward(x.flat());
            if let Some(norm) = &self.norm {
                y = strata_ops::batch_norm(norm, y);
            }
            Features::Flat(apply_activation(y, self.activation))
        } else {
            x
        }
    }
}

/// Applies an activation to a tensor of any rank.
pub fn apply_activation<const D: usize>(x: Tensor<D>, a: Activation) -> Tensor<D> {
    match a {
        Activation::Relu => activation::relu(x),
        Activation::Leaky => activation::leaky_relu(x, 0.01),
        Activation::LeakyDcgan => activation::leaky_relu(x, 0.2),
        Activation::Tanh => activation::tanh(x),
        Activation::Sigmoid => activation::sigmoid(x),
        Activation::None => x,
    }
}

/// A backbone on its own (an import without a head, the reused part of any run); its tensors
/// are named `backbone.N.*` like every other model's.
#[derive(Module, Debug)]
pub struct Backbone {
    /// the blocks, lowest first
    pub backbone: Vec<Block>,
}

/// Builds the blocks of `spec` for `input`, lowest first; a block that does not fit the
/// shape before it is an error naming it (the rule of [`FeatureShape::after`]).
pub fn build_stack(blocks: &[BlockSpec], input: FeatureShape, device: &Device) -> Result<Vec<Block>> {
    let mut cur = input;
    let mut out = Vec::with_capacity(blocks.len());
    for (i, &b) in blocks.iter().enumerate() {
        let next = cur.after(b).map_err(|reason| NnError::ShapeMismatch {
            spec: ArchSpec { blocks: blocks.to_vec() }.to_string(),
            input: input.to_string(),
            reason: format!("block {i} {reason}"),
        })?;
        out.push(Block::new(b, cur, device));
        cur = next;
    }
    Ok(out)
}

/// Runs a stack of blocks.
pub fn forward_stack(blocks: &[Block], mut x: Features) -> Features {
    for b in blocks {
        x = b.forward(x);
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stack_follows_the_one_shape_rule() {
        let device = Device::default();
        let arch = ArchSpec::parse("conv4-pool,conv6,dense5").unwrap();
        let input = crate::InputShape { channels: 1, height: 9, width: 7 };
        let blocks = build_stack(&arch.blocks, input.into(), &device).unwrap();
        let x = Tensor::<4>::zeros([2, 1, 9, 7], &device);
        let shapes = arch.shapes(input).unwrap();
        let mut f = Features::Map(x);
        for (b, want) in blocks.iter().zip(&shapes) {
            f = b.forward(f);
            let got = match &f {
                Features::Map(t) => {
                    let [_, c, h, w] = t.dims();
                    FeatureShape::Map(c, h, w)
                }
                Features::Flat(t) => FeatureShape::Flat(t.dims()[1]),
            };
            assert_eq!(&got, want);
        }
        // the rule that ArchSpec::shapes refuses, a stack refuses too, naming the block
        let bad = [arch.blocks[2], arch.blocks[0]];
        let e = build_stack(&bad, input.into(), &device).unwrap_err().to_string();
        assert!(e.contains("block 1 is a conv block after a dense block"), "{e}");
    }
}
