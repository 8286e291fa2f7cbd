//! Taking the lower blocks of a parent run's backbone.

use crate::error::Result;
use burn::tensor::Device;
use std::path::Path;
use strata_nn::block::build_stack;
use strata_nn::{ArchSpec, Backbone, Block, InputShape, try_seeded, weights};

/// Loads the backbone `arch` from safetensors `bytes` (read from `path`) and keeps its lower
/// `k` blocks. Every backbone tensor must be in the file with the declared shape.
pub fn load_backbone(
    bytes: Vec<u8>,
    path: &Path,
    arch: &ArchSpec,
    input: InputShape,
    k: usize,
    device: &Device,
) -> Result<Vec<Block>> {
    arch.lower(k)?;
    // the initial values are overwritten by the file; the lock keeps these draws from
    // interleaving with a seeded construction on another thread
    let fresh = try_seeded(device, 0, || {
        Ok::<_, strata_nn::NnError>(Backbone { backbone: build_stack(&arch.blocks, input.into(), device)? })
    })?;
    // a backbone tensor the architecture lacks means the file is for a deeper backbone
    let loaded = weights::load_bytes_ignoring(fresh, bytes, path, |name| !name.starts_with("backbone."))?;
    let mut blocks = loaded.backbone;
    blocks.truncate(k);
    Ok(blocks)
}
