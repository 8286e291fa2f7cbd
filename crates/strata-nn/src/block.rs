//! One block of a backbone or head: conv or dense, optional batch norm, activation, pool.

use crate::spec::{Activation, BlockSpec, FeatureShape};
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
            BlockSpec::Conv { channels, kernel, batch_norm, pool, activation } => {
                let in_channels = match input {
                    FeatureShape::Map(c, _, _) => c,
                    FeatureShape::Flat(n) => n,
                };
                let p = kernel / 2;
                let conv = Conv2dConfig::new([in_channels, channels], [kernel, kernel])
                    .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
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
            let mut y = conv.forward(x);
            if let Some(norm) = &self.norm {
                y = norm.forward(y);
            }
            y = apply_activation(y, self.activation);
            if let Some(pool) = &self.pool {
                y = pool.forward(y);
            }
            Features::Map(y)
        } else if let Some(linear) = &self.linear {
            let mut y = linear.forward(x.flat());
            if let Some(norm) = &self.norm {
                y = norm.forward(y);
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

/// Builds the blocks of `spec` for `input`, lowest first.
pub fn build_stack(blocks: &[BlockSpec], input: FeatureShape, device: &Device) -> Vec<Block> {
    let mut cur = input;
    let mut out = Vec::with_capacity(blocks.len());
    for &b in blocks {
        out.push(Block::new(b, cur, device));
        cur = match (b, cur) {
            (BlockSpec::Conv { channels, pool, .. }, FeatureShape::Map(_, h, w)) => {
                if pool {
                    FeatureShape::Map(channels, h / 2, w / 2)
                } else {
                    FeatureShape::Map(channels, h, w)
                }
            }
            (BlockSpec::Conv { channels, .. }, FeatureShape::Flat(_)) => FeatureShape::Map(channels, 1, 1),
            (BlockSpec::Dense { units, .. }, _) => FeatureShape::Flat(units),
        };
    }
    out
}

/// Runs a stack of blocks.
pub fn forward_stack(blocks: &[Block], mut x: Features) -> Features {
    for b in blocks {
        x = b.forward(x);
    }
    x
}
