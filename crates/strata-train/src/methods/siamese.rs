//! `siamese`: a twin network learns whether two images show the same thing. Positives are
//! two random augmentations (shift, masking) of one image, negatives are the other images of
//! the batch; the shared tower is the backbone that stage two reuses. Scoring every pair of
//! the batch at once (a softmax over "which of these is my twin") gives each image many
//! negatives per step, which is what makes the tower's features discriminative.

use super::epochs::{Figures, Objective, one_model_checkpoint, run_epochs, trained};
use super::{Job, Log, PretrainConfig, PretrainOutcome, Pretrainer};
use crate::batch::Batcher;
use crate::error::{Result, TrainError};
use crate::progress::Observer;
use crate::step::{checked_loss, cross_entropy, step_rng};
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use strata_data::{Dataset, augment};
use strata_nn::block::{build_stack, forward_stack};
use strata_nn::{Block, Features, try_seeded};

/// Pixels an augmentation may shift an image by.
const MAX_SHIFT: usize = 3;
/// Temperature of the pair scores.
const TEMPERATURE: f64 = 0.1;
/// Width of the projection the pairs are compared in.
const PROJECTION: usize = 64;

/// Siamese same-or-different pretraining.
pub struct Siamese;

/// The settings only `siamese` reads (its view masking is the shared [`super::Corruption`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(default)]
pub struct SiameseSettings {
    /// `siamese` on identity-labeled data: two images with the same label are twins
    /// (e.g. many people with a few photos each).
    #[cfg_attr(feature = "cli", arg(long))]
    pub pairs_by_label: bool,
}

/// The twin tower and the projection its outputs are compared in (dropped at reuse).
#[derive(Module, Debug)]
pub struct SiameseNet {
    /// shared tower: what stage two reuses
    pub backbone: Vec<Block>,
    /// projection used only to compare pairs
    pub projector: Linear,
}

impl SiameseNet {
    fn embed(&self, x: Tensor<4>) -> Tensor<2> {
        let z = self.projector.forward(forward_stack(&self.backbone, Features::Map(x)).flat());
        let norm = z.clone().powi_scalar(2).sum_dim(1).add_scalar(1e-12).sqrt();
        z / norm
    }
}

/// One augmented view: a random shift, then a random fraction (up to `mask`) of pixels zeroed.
fn view(pixels: &[u8], shape: strata_data::ImageShape, mask: f64, rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut v = augment::random_shift(pixels, shape, MAX_SHIFT, rng);
    let p = rng.random_range(0.0..=mask);
    augment::mask(&mut v, p, rng);
    v
}

/// Which image is each image's twin in a batch.
pub(crate) fn twins_by_identity(idx: &[usize], identity: &[u32]) -> Vec<Vec<bool>> {
    idx.iter().map(|&i| idx.iter().map(|&j| identity[i] == identity[j]).collect()).collect()
}

/// For each position of a batch, the position whose image gives its second view: itself
/// (two augmentations of one image), or with identities another image of the same identity
/// in the batch when there is one.
pub(crate) fn partners(idx: &[usize], identity: Option<&[u32]>, rng: &mut ChaCha8Rng) -> Vec<usize> {
    match identity {
        Some(ids) => (0..idx.len())
            .map(|p| {
                let same: Vec<usize> = (0..idx.len()).filter(|&q| q != p && ids[idx[q]] == ids[idx[p]]).collect();
                if same.is_empty() { p } else { same[rng.random_range(0..same.len())] }
            })
            .collect(),
        None => (0..idx.len()).collect(),
    }
}

/// One step of the twin objective.
struct Twins<'a> {
    model: Option<SiameseNet>,
    optim: ModuleOptimizer,
    data: &'a Dataset,
    batcher: Batcher<'a>,
    device: Device,
    cfg: &'a PretrainConfig,
    /// identity labels: same label = same thing (None: only an image's own views are twins)
    identity: Option<&'a [u32]>,
}

impl Objective for Twins<'_> {
    one_model_checkpoint!();

    fn step(&mut self, idx: &[usize], step: usize) -> Result<Figures> {
        let Some(model) = self.model.take() else { unreachable!("the model is put back after every step") };
        let (data, cfg) = (self.data, self.cfg);
        let mask = f64::from(cfg.corruption.noise);
        let mut rng = step_rng(cfg.seed, 0x7369_616d, step as u64);
        let a: Vec<Vec<u8>> = idx.iter().map(|&i| view(data.image(i), data.shape, mask, &mut rng)).collect();
        // with identities, the second view is of another image of the same identity when the
        // batch holds one: the twin is "the same person", not only "the same picture"
        let partners = partners(idx, self.identity, &mut rng);
        let b: Vec<Vec<u8>> = partners.iter().map(|&p| view(data.image(idx[p]), data.shape, mask, &mut rng)).collect();
        let za = model.embed(self.batcher.inputs_from_pixels(&a, &self.device));
        let zb = model.embed(self.batcher.inputs_from_pixels(&b, &self.device));
        // scores[i][j]: how much view a of image i looks like view b of image j
        let scores = za.matmul(zb.transpose()).div_scalar(TEMPERATURE);
        let n = idx.len();
        let twins = Tensor::<1, Int>::arange(0..n as i64, &self.device);
        let same = match self.identity {
            Some(ids) => twins_by_identity(idx, ids),
            None => (0..n).map(|i| (0..n).map(|j| i == j).collect()).collect(),
        };
        let loss = match self.identity {
            // several b-views may share a's identity: all of them are positives
            Some(_) => {
                let target: Vec<f32> = same
                    .iter()
                    .flat_map(|row| {
                        let k = row.iter().filter(|&&s| s).count().max(1) as f32;
                        row.iter().map(move |&s| if s { 1.0 / k } else { 0.0 })
                    })
                    .collect();
                let target = Tensor::<2>::from_data(burn::tensor::TensorData::new(target, [n, n]), &self.device);
                let log_p = burn::tensor::activation::log_softmax(scores.clone(), 1);
                (log_p * target).sum_dim(1).mean().neg().reshape([1])
            }
            None => (cross_entropy(scores.clone(), twins.clone()) + cross_entropy(scores.clone().transpose(), twins))
                .div_scalar(2.0),
        };
        let value = checked_loss(&loss, "siamese", step)?;
        let picked = scores.argmax(1).into_data().convert::<i64>().try_to_vec::<i64>().unwrap_or_default();
        let correct = picked.iter().enumerate().filter(|(i, p)| same[*i].get(**p as usize) == Some(&true)).count();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        self.model = Some(self.optim.step(cfg.lr, model, grads));
        Ok(vec![("loss", f64::from(value)), ("twin_accuracy", correct as f64 / n as f64)])
    }
}

impl Pretrainer for Siamese {
    fn name(&self) -> &'static str {
        "siamese"
    }
    fn describe(&self) -> &'static str {
        "siamese twins: tell two augmentations of one image from two different images"
    }
    fn train(&self, job: &Job, observer: &mut dyn Observer, log: &mut Log) -> Result<PretrainOutcome> {
        let Job { data, norm, cfg, device } = *job;
        if data.len() < 2 {
            return Err(TrainError::config(
                "--data",
                data.len(),
                "siamese needs at least 2 images (one image has nothing to be told apart from)",
            ));
        }
        if cfg.batch < 2 {
            return Err(TrainError::config(
                "--batch",
                cfg.batch,
                "siamese needs at least 2 images per batch (the negatives)",
            ));
        }
        let batcher = Batcher::new(data, norm);
        let input = batcher.input_shape();
        let features = cfg.arch.output_shape(input)?.numel();
        let ad = device.clone().autodiff();
        let model = try_seeded(&ad, cfg.seed, || {
            Ok::<_, strata_nn::NnError>(SiameseNet {
                backbone: build_stack(&cfg.arch.blocks, input.into(), &ad)?,
                projector: LinearConfig::new(features, PROJECTION).init(&ad),
            })
        })?;
        let identity = if cfg.siamese.pairs_by_label { Some(data.require_labels()?) } else { None };
        let mut objective =
            Twins { model: Some(model), optim: AdamConfig::new().init(), data, batcher, device: ad, cfg, identity };
        let summary = run_epochs(self.name(), cfg, data.len(), 2, &mut objective, observer, log)?;
        PretrainOutcome::new(&trained(objective.model), summary.metrics(cfg.batch), vec![])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn without_identities_each_image_is_its_own_twin() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(partners(&[7, 3, 9], None, &mut rng), vec![0, 1, 2]);
        let same = twins_by_identity(&[7, 3, 9], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(same, vec![vec![true, false, false], vec![false, true, false], vec![false, false, true]]);
    }

    #[test]
    fn with_identities_twins_are_other_pictures_of_the_same_identity() {
        // images 0..8, identities: three people with 3, 3 and 2 pictures, one with a single one
        let ids = [0, 0, 0, 1, 1, 1, 2, 2, 3];
        let idx: Vec<usize> = (0..9).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for _ in 0..20 {
            let p = partners(&idx, Some(&ids), &mut rng);
            for (a, &b) in p.iter().enumerate() {
                assert_eq!(ids[idx[a]], ids[idx[b]], "{a} paired with {b}");
                // another picture whenever the identity has one; the loner pairs with itself
                assert_eq!(a == b, a == 8, "{a} paired with {b}");
            }
        }
        let same = twins_by_identity(&idx, &ids);
        assert!(same[0][2] && same[3][5] && !same[2][3] && same[8][8] && !same[8][7]);
    }

    #[test]
    fn the_two_views_of_an_image_differ_but_keep_its_pixels() {
        let shape = strata_data::ImageShape::new(1, 8, 8);
        let img: Vec<u8> = (0..64).map(|i| (i * 4) as u8).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (a, b) = (view(&img, shape, 0.0, &mut rng), view(&img, shape, 0.0, &mut rng));
        // each view is the image shifted by at most MAX_SHIFT pixels: some shift reproduces it
        for v in [&a, &b] {
            let found = (-3..=3isize).any(|dy| (-3..=3isize).any(|dx| augment::shift(&img, shape, dy, dx) == *v));
            assert!(found, "a view is not a shift of the image");
        }
    }
}
