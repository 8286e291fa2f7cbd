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
