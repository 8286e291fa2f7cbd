//! The frozen-feature cache of stage two.

use super::config::FinetuneConfig;
use super::phases::Phase;
use crate::batch::Batcher;
use crate::layout::BackbonePlan;
use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use strata_nn::block::forward_stack;
use strata_nn::{Classifier, Features};

/// The outputs of the frozen lowest blocks for every training row. While those blocks are
/// frozen (batch norm on running statistics) and the images are not augmented, an image's
/// features cannot change, so it goes through them once per phase instead of once per step:
/// what PyTorch users get only by writing it themselves.
pub(super) struct FrozenCache {
    /// how many lowest blocks the features have been through
    pub(super) depth: usize,
    /// features of the rows, in `rows` order, on the plain (non-autodiff) device
    features: Features,
    /// dataset row → position in `features`
    position: std::collections::HashMap<usize, usize>,
}

/// Largest cache built, in bytes: beyond it the frozen blocks are recomputed every step.
const CACHE_LIMIT: usize = 2 << 30;

impl FrozenCache {
    /// The cache for `phase`, if it has frozen lowest blocks and caching applies.
    pub(super) fn build(
        cfg: &FinetuneConfig,
        backbone: &BackbonePlan,
        phase: &Phase,
        model: &Classifier,
        batcher: &Batcher,
        rows: &[usize],
        device: &Device,
    ) -> Option<Self> {
        let depth = phase.block_lr.iter().take_while(|lr| lr.is_none()).count();
        if cfg.no_feature_cache || cfg.augment_shift > 0 || depth == 0 {
            return None;
        }
        let shape = backbone.arch.shapes(batcher.input_shape()).ok()?.get(depth - 1).copied()?;
        if shape.numel().saturating_mul(rows.len()).saturating_mul(4) > CACHE_LIMIT {
            return None;
        }
        let plain = model.clone().valid();
        let lower = &plain.backbone[..depth];
        let chunks: Vec<Features> =
            rows.chunks(256).map(|chunk| forward_stack(lower, Features::Map(batcher.inputs(chunk, device)))).collect();
        let features = match chunks.first()? {
            Features::Map(_) => Features::Map(Tensor::cat(chunks.into_iter().map(map_of).collect(), 0)),
            Features::Flat(_) => Features::Flat(Tensor::cat(chunks.into_iter().map(Features::flat).collect(), 0)),
        };
        let position = rows.iter().enumerate().map(|(p, &r)| (r, p)).collect();
        Some(Self { depth, features, position })
    }

    /// The cached features of dataset rows `idx`, on the autodiff device.
    pub(super) fn batch(&self, idx: &[usize]) -> Features {
        let pos: Vec<i64> = idx.iter().map(|r| self.position[r] as i64).collect();
        let device = match &self.features {
            Features::Map(t) => t.device(),
            Features::Flat(t) => t.device(),
        };
        let pos = Tensor::<1, Int>::from_data(TensorData::new(pos, [idx.len()]), &device);
        match &self.features {
            Features::Map(t) => Features::Map(Tensor::from_inner(t.clone().select(0, pos))),
            Features::Flat(t) => Features::Flat(Tensor::from_inner(t.clone().select(0, pos))),
        }
    }
}

fn map_of(f: Features) -> Tensor<4> {
    match f {
        Features::Map(t) => t,
        Features::Flat(t) => {
            let [b, n] = t.dims();
            t.reshape([b, n, 1, 1])
        }
    }
}
