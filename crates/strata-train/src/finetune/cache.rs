//! The frozen-feature cache of stage two.

use super::config::FinetuneConfig;
use super::phases::Phase;
use crate::batch::Batcher;
use crate::layout::BackbonePlan;
use crate::step::step_rng;
use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::Rng;
use strata_data::Dataset;
use strata_nn::block::forward_stack;
use strata_nn::{Classifier, Features};

/// Salt of the generators that draw the cached augmentations, and of the per-step choice.
const DRAW_SALT: u64 = 0x6361_6368;
const PICK_SALT: u64 = 0x7069_636b;

/// The outputs of the frozen lowest blocks for every training row. While those blocks are
/// frozen (batch norm on running statistics), an image's features cannot change, so it goes
/// through them once per phase instead of once per step: what PyTorch users get only by
/// writing it themselves. With augmentation it holds `draws` augmented copies of each image,
/// drawn once per phase from (seed, draw, row); each step picks one per image from (seed, step).
pub(super) struct FrozenCache {
    /// how many lowest blocks the features have been through
    pub(super) depth: usize,
    /// features of draw d of the row at position p at index d·rows + p, on the plain device
    features: Features,
    /// dataset row → position in `rows`
    position: std::collections::HashMap<usize, usize>,
    /// augmented copies per row (1 without augmentation)
    draws: usize,
    /// the seed the per-step choice is drawn from
    seed: u64,
}

/// Largest cache built, in bytes: beyond it the frozen blocks are recomputed every step.
const CACHE_LIMIT: usize = 2 << 30;

impl FrozenCache {
    /// The cache for `phase`, if it has frozen lowest blocks and caching applies.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn build(
        cfg: &FinetuneConfig,
        backbone: &BackbonePlan,
        phase: &Phase,
        model: &Classifier,
        batcher: &Batcher,
        data: &Dataset,
        rows: &[usize],
        device: &Device,
    ) -> Option<Self> {
        let depth = phase.block_lr.iter().take_while(|lr| lr.is_none()).count();
        let policy = cfg.augmentation();
        let draws = if policy.is_identity() { 1 } else { cfg.cache_draws };
        if cfg.no_feature_cache || draws == 0 || depth == 0 {
            return None;
        }
        let shape = backbone.arch.shapes(batcher.input_shape()).ok()?.get(depth - 1).copied()?;
        if shape.numel().saturating_mul(rows.len()).saturating_mul(draws).saturating_mul(4) > CACHE_LIMIT {
            return None;
        }
        let plain = model.clone().valid();
        let lower = &plain.backbone[..depth];
        let mut chunks: Vec<Features> = Vec::new();
        for draw in 0..draws {
            for chunk in rows.chunks(256) {
                let inputs = if policy.is_identity() {
                    batcher.inputs(chunk, device)
                } else {
                    let px: Vec<Vec<u8>> = chunk
                        .iter()
                        .map(|&r| {
                            let mut rng = step_rng(cfg.seed ^ r as u64, DRAW_SALT, draw as u64);
                            policy.apply(data.image(r), data.shape, &mut rng)
                        })
                        .collect();
                    batcher.inputs_from_pixels(&px, device)
                };
                chunks.push(forward_stack(lower, Features::Map(inputs)));
            }
        }
        let features = match chunks.first()? {
            Features::Map(_) => Features::Map(Tensor::cat(chunks.into_iter().map(map_of).collect(), 0)),
            Features::Flat(_) => Features::Flat(Tensor::cat(chunks.into_iter().map(Features::flat).collect(), 0)),
        };
        let position = rows.iter().enumerate().map(|(p, &r)| (r, p)).collect();
        Some(Self { depth, features, position, draws, seed: cfg.seed })
    }

    /// The cached features of dataset rows `idx` at step `step`, on the autodiff device.
    pub(super) fn batch(&self, idx: &[usize], step: usize) -> Features {
        let n = self.position.len();
        let mut rng = step_rng(self.seed, PICK_SALT, step as u64);
        let pos: Vec<i64> = idx
            .iter()
            .map(|r| {
                let draw = if self.draws > 1 { rng.random_range(0..self.draws) } else { 0 };
                (draw * n + self.position[r]) as i64
            })
            .collect();
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
