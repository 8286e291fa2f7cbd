//! Scoring a pretrained backbone without fine-tuning, as self-supervised learning papers and
//! libraries do: a linear classifier on its frozen features, k nearest neighbours on its
//! L2-normalised features, or the nearest class mean (which needs no training and is strong
//! at a few labels per class). Features are computed once per image.

use crate::batch::Batcher;
use crate::error::{Result, TrainError};
use crate::step::{BatchSchedule, checked_loss, cross_entropy, validate_optim};
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::module::adaptive_avg_pool2d;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use strata_data::{Dataset, Normalization};
use strata_nn::block::forward_stack;
use strata_nn::{Block, Features, seeded};

/// Which protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeMethod {
    /// logistic regression on standardised frozen features
    Linear,
    /// similarity-weighted vote of the k nearest training images (cosine similarity)
    Knn,
    /// nearest class mean of centred, L2-normalised features (cosine to each class prototype)
    Ncm,
    /// a `cluster` run's kept cluster head, each cluster named by the majority of its labeled images
    Cluster,
    /// every cluster head of a run (main and over-clustering, all sub-heads), each cluster
    /// read as its labeled images' classes, the heads averaged (see `cluster_readout`)
    Readout,
}

impl std::str::FromStr for ProbeMethod {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "linear" => Ok(Self::Linear),
            "knn" => Ok(Self::Knn),
            "ncm" => Ok(Self::Ncm),
            "cluster" => Ok(Self::Cluster),
            "readout" => Ok(Self::Readout),
            _ => Err(format!("unknown probe `{s}`; use linear, knn, ncm, cluster or readout")),
        }
    }
}

/// Settings of the probes, declared once for `strata probe` and library callers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(default)]
pub struct ProbeConfig {
    /// Neighbours that vote (knn; default: chosen by leave-one-out on the labeled images).
    #[cfg_attr(feature = "cli", arg(long))]
    pub k: Option<usize>,
    /// Temperature of the neighbours' vote weights exp(similarity / t) (knn; as in DINO and solo-learn).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = ProbeConfig::default().temperature))]
    pub temperature: f32,
    /// Adam steps of the linear probe.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = ProbeConfig::default().steps))]
    pub steps: usize,
    /// Learning rate of the linear probe.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = ProbeConfig::default().lr, allow_negative_numbers = true))]
    pub lr: f64,
    /// Features per step of the linear probe.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = ProbeConfig::default().batch))]
    pub batch: usize,
    /// Seed of the label subset, the linear layer and the data order.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = ProbeConfig::default().seed))]
    pub seed: u64,
    /// Read every convolutional block's output pooled to a 4x4 grid, concatenated (DCGAN's way
    /// of probing a discriminator), instead of the top block's output.
    #[cfg_attr(feature = "cli", arg(long))]
    pub pooled: bool,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self { k: None, temperature: 0.07, steps: 1000, lr: 1e-2, batch: 256, seed: 0, pooled: false }
    }
}

impl ProbeConfig {
    /// Checks ranges and gives an error naming the flag.
    pub fn validate(&self) -> Result<()> {
        validate_optim(self.batch, self.lr)?;
        if self.k == Some(0) {
            return Err(TrainError::config("--k", 0, "let at least one neighbour vote, e.g. --k 20"));
        }
        if self.steps == 0 {
            return Err(TrainError::config("--steps", 0, "train the linear probe for at least one step"));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(TrainError::config("--temperature", self.temperature, "use a positive temperature, e.g. 0.07"));
        }
        Ok(())
    }
}

/// Backbone outputs, one row per image.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureMatrix {
    /// rows x dim values
    pub values: Vec<f32>,
    /// values per row
    pub dim: usize,
}

impl FeatureMatrix {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.values.len().checked_div(self.dim).unwrap_or(0)
    }

    /// The features of row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }

    /// Each row scaled to unit length (a zero row stays zero).
    pub fn l2_normalised(&self) -> Self {
        let mut values = self.values.clone();
        for row in values.chunks_mut(self.dim.max(1)) {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            if norm > 0.0 {
                row.iter_mut().for_each(|v| *v /= norm);
            }
        }
        Self { values, dim: self.dim }
    }

    fn tensor(&self, rows: std::ops::Range<usize>, device: &Device) -> Tensor<2> {
        let data = self.values[rows.start * self.dim..rows.end * self.dim].to_vec();
        Tensor::from_data(TensorData::new(data, [rows.len(), self.dim]), device)
    }
}

/// The flattened output of `blocks` for each of `rows` of `data` (inference mode).
pub fn features(
    blocks: &[Block],
    data: &Dataset,
    rows: &[usize],
    norm: &Normalization,
    device: &Device,
) -> FeatureMatrix {
    read_features(blocks, data, rows, norm, device, |blocks, x| forward_stack(blocks, Features::Map(x)).flat())
}

/// Side of the grid each block's map is pooled to by [`pooled_features`] (DCGAN's 4x4).
const POOL_GRID: usize = 4;

/// DCGAN's reading of a backbone (Radford et al. 2016, section 5.1): the output of every
/// convolutional block of `blocks` pooled to a 4x4 grid, flattened and concatenated; dense
/// blocks add nothing (a backbone without a map gives its top output). DCGAN max-pools; burn
/// offers adaptive pooling by average only, which this uses (maps of 14 and 7 pixels do not
/// split into equal 4x4 windows).
pub fn pooled_features(
    blocks: &[Block],
    data: &Dataset,
    rows: &[usize],
    norm: &Normalization,
    device: &Device,
) -> FeatureMatrix {
    read_features(blocks, data, rows, norm, device, |blocks, x| {
        let mut x = Features::Map(x);
        let mut parts = Vec::new();
        for b in blocks {
            x = b.forward(x);
            if let Features::Map(m) = &x {
                parts.push(adaptive_avg_pool2d(m.clone(), [POOL_GRID, POOL_GRID]).flatten(1, 3));
            }
        }
        if parts.is_empty() { x.flat() } else { Tensor::cat(parts, 1) }
    })
}

/// `read`'s rows (batch x features) for `rows` of `data`, in chunks, with `blocks` in
/// inference mode.
fn read_features(
    blocks: &[Block],
    data: &Dataset,
    rows: &[usize],
    norm: &Normalization,
    device: &Device,
    read: impl Fn(&[Block], Tensor<4>) -> Tensor<2>,
) -> FeatureMatrix {
    let blocks: Vec<Block> = blocks.iter().map(|b| b.valid()).collect();
    let batcher = Batcher::new(data, norm);
    let (mut values, mut dim) = (Vec::new(), 0);
    for chunk in rows.chunks(256) {
        let out = read(&blocks, batcher.inputs(chunk, device));
        dim = out.dims()[1];
        values.extend(out.into_data().convert::<f32>().try_into_vec::<f32>().unwrap_or_default());
    }
    FeatureMatrix { values, dim }
}

/// Candidate neighbour counts for leave-one-out.
const K_CANDIDATES: [usize; 9] = [1, 3, 5, 7, 10, 15, 20, 30, 50];

/// The neighbour count that classifies the labeled images best when each is left out of its
/// own vote; ties go to the smaller k. Candidates stop below the smallest class's size, so
/// 10 images per class allow at most k = 7.
pub fn choose_k(train: &FeatureMatrix, labels: &[u32], classes: usize, temperature: f32) -> usize {
    let f = train.l2_normalised();
    let n = f.rows();
    let smallest = (0..classes as u32).map(|c| labels.iter().filter(|&&l| l == c).count()).filter(|&c| c > 0).min();
    let limit = smallest.unwrap_or(1).max(2) - 1;
    let ks: Vec<usize> = K_CANDIDATES.into_iter().filter(|&k| k <= limit && k < n).collect();
    let Some(&first) = ks.first() else { return 1 };
    let mut correct = vec![0usize; ks.len()];
    let mut order: Vec<usize> = Vec::with_capacity(n);
    for i in 0..n {
        let sim: Vec<f32> = (0..n).map(|j| f.row(i).iter().zip(f.row(j)).map(|(a, b)| a * b).sum()).collect();
        order.clear();
        order.extend((0..n).filter(|&j| j != i));
        order.sort_by(|a, b| sim[*b].total_cmp(&sim[*a]).then(a.cmp(b)));
        for (slot, &k) in ks.iter().enumerate() {
            if vote(&sim, &order[..k], labels, classes, temperature) == labels[i] {
                correct[slot] += 1;
            }
        }
    }
    let best = (0..ks.len()).fold(0, |b, s| if correct[s] > correct[b] { s } else { b });
    ks.get(best).copied().unwrap_or(first)
}

/// The class with the largest sum of exp(similarity / t) over `neighbours` (lowest class on a tie).
fn vote(sim: &[f32], neighbours: &[usize], labels: &[u32], classes: usize, temperature: f32) -> u32 {
    let mut votes = vec![0f64; classes.max(1)];
    for &j in neighbours {
        if let Some(v) = votes.get_mut(labels[j] as usize) {
            *v += f64::from((sim[j] / temperature).exp());
        }
    }
    (0..votes.len()).fold(0, |b, c| if votes[c] > votes[b] { c } else { b }) as u32
}

/// kNN predictions (`k` neighbours, vote weights at `temperature`) for each row of `test`,
/// from `train` rows labeled `labels`.
pub fn knn(
    train: &FeatureMatrix,
    labels: &[u32],
    test: &FeatureMatrix,
    classes: usize,
    (k, temperature): (usize, f32),
    device: &Device,
) -> Vec<u32> {
    let (train, test) = (train.l2_normalised(), test.l2_normalised());
    let n = train.rows();
    let k = k.min(n).max(1);
    let bank = train.tensor(0..n, device).transpose();
    let mut out = Vec::with_capacity(test.rows());
    let mut order: Vec<usize> = Vec::with_capacity(n);
    // a chunk of test rows at a time keeps the similarity matrix small
    for start in (0..test.rows()).step_by(512) {
        let end = (start + 512).min(test.rows());
        let sim = test.tensor(start..end, device).matmul(bank.clone());
        let sim = sim.into_data().convert::<f32>().try_into_vec::<f32>().unwrap_or_default();
        for row in sim.chunks(n.max(1)) {
            order.clear();
            order.extend(0..n);
            // the k most similar, ties broken by index so the result is deterministic
            let cmp = |a: &usize, b: &usize| row[*b].total_cmp(&row[*a]).then(a.cmp(b));
            if k < n {
                order.select_nth_unstable_by(k - 1, cmp);
            }
            out.push(vote(row, &order[..k], labels, classes, temperature));
        }
    }
    out
}

/// Nearest class mean: each class's prototype is the mean of its centred, L2-normalised
/// training features, itself normalised; an image goes to the prototype of highest cosine.
#[derive(Debug, Clone, PartialEq)]
pub struct Prototypes {
    /// mean training feature, subtracted before normalising
    pub centre: Vec<f32>,
    /// classes x dim unit vectors (a class without images has a zero row)
    pub means: Vec<f32>,
    /// values per feature
    pub dim: usize,
}

impl Prototypes {
    /// The prototypes of `train` rows labeled `labels`.
    pub fn fit(train: &FeatureMatrix, labels: &[u32], classes: usize) -> Self {
        let (n, dim) = (train.rows(), train.dim);
        let mut centre = vec![0f64; dim];
        for i in 0..n {
            centre.iter_mut().zip(train.row(i)).for_each(|(c, &v)| *c += f64::from(v));
        }
        let centre: Vec<f32> = centre.into_iter().map(|c| (c / n.max(1) as f64) as f32).collect();
        let mut sums = vec![0f64; classes * dim];
        for (i, &label) in labels.iter().enumerate().take(n) {
            let unit = unit(train.row(i), &centre);
            let class = label as usize;
            if class < classes {
                sums[class * dim..(class + 1) * dim].iter_mut().zip(&unit).for_each(|(s, &v)| *s += f64::from(v));
            }
        }
        let mut means: Vec<f32> = sums.into_iter().map(|s| s as f32).collect();
        for m in means.chunks_mut(dim.max(1)) {
            let norm = m.iter().map(|v| v * v).sum::<f32>().sqrt();
            if norm > 0.0 {
                m.iter_mut().for_each(|v| *v /= norm);
            }
        }
        Self { centre, means, dim }
    }

    /// Cosine of each row's centred feature to each prototype, rows x classes.
    pub fn scores(&self, test: &FeatureMatrix) -> Vec<Vec<f32>> {
        (0..test.rows())
            .map(|i| {
                let u = unit(test.row(i), &self.centre);
                self.means.chunks(self.dim.max(1)).map(|m| m.iter().zip(&u).map(|(a, b)| a * b).sum()).collect()
            })
            .collect()
    }

    /// The nearest prototype's class for each row of `test` (lowest class on a tie).
    pub fn predict(&self, test: &FeatureMatrix) -> Vec<u32> {
        self.scores(test)
            .into_iter()
            .map(|s| (0..s.len()).fold(0, |b, c| if s[c] > s[b] { c } else { b }) as u32)
            .collect()
    }
}

/// `row - centre`, scaled to unit length (a zero difference stays zero).
fn unit(row: &[f32], centre: &[f32]) -> Vec<f32> {
    let mut v: Vec<f32> = row.iter().zip(centre).map(|(a, c)| a - c).collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// One probe's predictions for each row of `test`, and the k a kNN probe used.
pub fn predict(
    method: ProbeMethod,
    train: &FeatureMatrix,
    labels: &[u32],
    test: &FeatureMatrix,
    classes: usize,
    cfg: &ProbeConfig,
    device: &Device,
) -> Result<(Vec<u32>, Option<usize>)> {
    Ok(match method {
        ProbeMethod::Knn => {
            let k = cfg.k.unwrap_or_else(|| choose_k(train, labels, classes, cfg.temperature));
            (knn(train, labels, test, classes, (k, cfg.temperature), device), Some(k))
        }
        ProbeMethod::Linear => (linear(train, labels, test, classes, cfg, device)?, None),
        ProbeMethod::Ncm => (Prototypes::fit(train, labels, classes).predict(test), None),
        ProbeMethod::Cluster | ProbeMethod::Readout => {
            return Err(TrainError::config(
                "--method",
                if method == ProbeMethod::Cluster { "cluster" } else { "readout" },
                "the cluster probes read the heads of a `strata pretrain --method cluster` run: use `strata probe RUN --method cluster,readout` on such a run",
            ));
        }
    })
}

/// Names each cluster by the class most of its labeled images carry (the lowest class on a tie;
/// None for a cluster no labeled image fell into), then predicts that class for each test
/// image's cluster: how far the clusters alone go with a handful of labels.
pub fn cluster_map(
    train: &[usize],
    labels: &[u32],
    test: &[usize],
    clusters: usize,
    classes: usize,
) -> Vec<Option<u32>> {
    let mut votes = vec![vec![0usize; classes]; clusters];
    for (&c, &l) in train.iter().zip(labels) {
        if let Some(v) = votes.get_mut(c).and_then(|v| v.get_mut(l as usize)) {
            *v += 1;
        }
    }
    let name: Vec<Option<u32>> = votes
        .iter()
        .map(|v| {
            let best = (0..classes).fold(0, |b, c| if v[c] > v[b] { c } else { b });
            (v.get(best).copied().unwrap_or(0) > 0).then_some(best as u32)
        })
        .collect();
    test.iter().map(|&c| name.get(c).copied().flatten()).collect()
}

/// A linear classifier on standardised features.
#[derive(Module, Debug)]
struct LinearProbe {
    linear: Linear,
}

/// Mean and standard deviation of each feature, fitted on training rows.
struct Standardiser {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl Standardiser {
    fn fit(f: &FeatureMatrix) -> Self {
        let n = f.rows().max(1) as f64;
        let mut mean = vec![0f64; f.dim];
        let mut sq = vec![0f64; f.dim];
        for i in 0..f.rows() {
            for (j, &v) in f.row(i).iter().enumerate() {
                mean[j] += f64::from(v);
                sq[j] += f64::from(v) * f64::from(v);
            }
        }
        let mean: Vec<f64> = mean.into_iter().map(|m| m / n).collect();
        let std = sq.iter().zip(&mean).map(|(s, m)| ((s / n - m * m).max(0.0).sqrt().max(1e-6)) as f32).collect();
        Self { mean: mean.into_iter().map(|m| m as f32).collect(), std }
    }

    fn apply(&self, f: &FeatureMatrix) -> FeatureMatrix {
        let mut values = f.values.clone();
        for row in values.chunks_mut(f.dim.max(1)) {
            for (j, v) in row.iter_mut().enumerate() {
                *v = (*v - self.mean[j]) / self.std[j];
            }
        }
        FeatureMatrix { values, dim: f.dim }
    }
}

/// Linear-probe predictions for each row of `test`, trained on `train` rows labeled `labels`.
pub fn linear(
    train: &FeatureMatrix,
    labels: &[u32],
    test: &FeatureMatrix,
    classes: usize,
    cfg: &ProbeConfig,
    device: &Device,
) -> Result<Vec<u32>> {
    let scaler = Standardiser::fit(train);
    let (train, test) = (scaler.apply(train), scaler.apply(test));
    let ad = device.clone().autodiff();
    let mut probe = seeded(&ad, cfg.seed, || LinearProbe { linear: LinearConfig::new(train.dim, classes).init(&ad) });
    let mut optim = AdamConfig::new().init();
    let mut schedule = BatchSchedule::new((0..train.rows()).collect(), cfg.batch, cfg.seed);
    for step in 0..cfg.steps {
        let idx = schedule.next_batch();
        let x: Vec<f32> = idx.iter().flat_map(|&i| train.row(i).iter().copied()).collect();
        let x = Tensor::<2>::from_data(TensorData::new(x, [idx.len(), train.dim]), &ad);
        let y: Vec<i64> = idx.iter().map(|&i| i64::from(labels[i])).collect();
        let y = Tensor::<1, Int>::from_data(TensorData::new(y, [idx.len()]), &ad);
        let loss = cross_entropy(probe.linear.forward(x), y);
        checked_loss(&loss, "linear probe", step)?;
        let grads = GradientsParams::from_grads(loss.backward(), &probe);
        probe = optim.step(cfg.lr, probe, grads);
    }
    let probe = probe.valid();
    let mut out = Vec::with_capacity(test.rows());
    for start in (0..test.rows()).step_by(1024) {
        let end = (start + 1024).min(test.rows());
        let pred = probe.linear.forward(test.tensor(start..end, device)).argmax(1);
        out.extend(
            pred.into_data().convert::<i64>().try_into_vec::<i64>().unwrap_or_default().into_iter().map(|p| p as u32),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_features_concatenate_every_conv_block_at_4x4() {
        let device = Device::default();
        let data = Dataset {
            images: (0..6 * 64).map(|i| (i * 37 % 251) as u8).collect(),
            shape: strata_data::ImageShape::new(1, 8, 8),
            labels: None,
            class_names: vec![],
            source: "toy".into(),
        };
        let norm = Normalization::fit(&data);
        let arch = strata_nn::ArchSpec::parse("conv2-pool,conv3-pool,dense4").unwrap();
        let blocks = seeded(&device, 3, || {
            strata_nn::block::build_stack(&arch.blocks, strata_nn::FeatureShape::Map(1, 8, 8), &device).unwrap()
        });
        let rows: Vec<usize> = (0..6).collect();
        let pooled = pooled_features(&blocks, &data, &rows, &norm, &device);
        // 2 x 4x4 (already 4x4: pooled unchanged) + 3 x 4x4 (2x2 spread over the grid); dense: none
        assert_eq!(pooled.dim, 2 * 16 + 3 * 16);
        let first = features(&blocks[..1], &data, &rows, &norm, &device);
        assert_eq!(first.dim, 32);
        for r in 0..6 {
            let (p, f) = (&pooled.row(r)[..32], first.row(r));
            assert!(p.iter().zip(f).all(|(a, b)| (a - b).abs() < 1e-6), "row {r}: the first block's map itself");
        }
        let second = features(&blocks[..2], &data, &rows, &norm, &device);
        for r in 0..6 {
            // each 2x2 cell covers a 2x2 patch of the 4x4 grid: its value, four times
            let (p, f) = (&pooled.row(r)[32..], second.row(r));
            for c in 0..3 {
                for (y, x) in [(0, 0), (1, 3), (3, 1), (2, 2)] {
                    let want = f[c * 4 + (y / 2) * 2 + x / 2];
                    assert!((p[c * 16 + y * 4 + x] - want).abs() < 1e-6, "row {r} channel {c} at {y},{x}");
                }
            }
        }
    }

    /// Two clusters around (1, 0, 0) and (0, 1, 0), slightly perturbed.
    fn clusters(n: usize) -> (FeatureMatrix, Vec<u32>) {
        let mut values = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n {
            let c = (i % 2) as u32;
            let e = (i as f32 * 0.37).sin() * 0.2;
            values.extend(if c == 0 { [1.0, e, 0.1] } else { [e, 1.0, -0.1] });
            labels.push(c);
        }
        (FeatureMatrix { values, dim: 3 }, labels)
    }

    #[test]
    fn one_nearest_neighbour_recovers_its_own_training_labels() {
        let (f, labels) = clusters(40);
        assert_eq!(knn(&f, &labels, &f, 2, (1, 0.07), &Device::default()), labels);
    }

    #[test]
    fn knn_and_linear_separate_two_clusters() {
        let (train, labels) = clusters(40);
        let (test, truth) = clusters(21);
        let device = Device::default();
        let cfg = ProbeConfig { k: Some(5), steps: 100, batch: 16, ..ProbeConfig::default() };
        for method in [ProbeMethod::Knn, ProbeMethod::Linear, ProbeMethod::Ncm] {
            assert_eq!(predict(method, &train, &labels, &test, 2, &cfg, &device).unwrap().0, truth, "{method:?}");
        }
        // flipping the training labels flips the answers: the probes do read the labels
        let flipped: Vec<u32> = labels.iter().map(|l| 1 - l).collect();
        let inverse: Vec<u32> = truth.iter().map(|l| 1 - l).collect();
        assert_eq!(knn(&train, &flipped, &test, 2, (5, 0.07), &device), inverse);
        assert_eq!(Prototypes::fit(&train, &flipped, 2).predict(&test), inverse);
    }

    /// Rows of `f` in the order `perm`.
    fn permuted(f: &FeatureMatrix, labels: &[u32], perm: &[usize]) -> (FeatureMatrix, Vec<u32>) {
        let values = perm.iter().flat_map(|&i| f.row(i).to_vec()).collect();
        (FeatureMatrix { values, dim: f.dim }, perm.iter().map(|&i| labels[i]).collect())
    }

    #[test]
    fn clusters_take_the_name_of_their_labeled_majority() {
        // cluster 0: two 3s and a 5; cluster 1: a 7; cluster 2: no labeled image
        let pred = cluster_map(&[0, 0, 0, 1], &[3, 5, 3, 7], &[1, 0, 2, 0], 3, 10);
        assert_eq!(pred, vec![Some(7), Some(3), None, Some(3)]);
        // a tie goes to the lower class
        assert_eq!(cluster_map(&[0, 0], &[4, 2], &[0], 1, 5), vec![Some(2)]);
    }

    #[test]
    fn ncm_is_exact_on_separated_clusters_and_ignores_the_order() {
        // three clusters far apart, offset from the origin so centring matters
        let mut values = Vec::new();
        let mut labels = Vec::new();
        for i in 0..30 {
            let c = i % 3;
            let e = (i as f32 * 0.7).sin() * 0.1;
            let mut row = vec![5.0, 5.0, 5.0];
            row[c] += 2.0 + e;
            values.extend(row);
            labels.push(c as u32);
        }
        let f = FeatureMatrix { values, dim: 3 };
        let ncm = Prototypes::fit(&f, &labels, 3);
        assert_eq!(ncm.predict(&f), labels);
        // without centring every row points the same way: (5, 5, 7) vs (5, 7, 5) is a cosine of 0.98
        let perm: Vec<usize> = (0..30).rev().collect();
        let (g, glabels) = permuted(&f, &labels, &perm);
        assert_eq!(Prototypes::fit(&g, &glabels, 3), ncm);
        let device = Device::default();
        let (test, _) = clusters(9);
        let (train, tl) = clusters(40);
        let perm: Vec<usize> = (0..40).map(|i| (i * 7) % 40).collect();
        let (shuffled, sl) = permuted(&train, &tl, &perm);
        for k in [1, 3, 5] {
            assert_eq!(
                knn(&train, &tl, &test, 2, (k, 0.07), &device),
                knn(&shuffled, &sl, &test, 2, (k, 0.07), &device),
                "k {k}"
            );
        }
        assert_eq!(choose_k(&train, &tl, 2, 0.07), choose_k(&shuffled, &sl, 2, 0.07));
    }

    #[test]
    fn leave_one_out_picks_a_k_the_classes_allow() {
        // two tight clusters plus one mislabeled point in each: k = 1 copies the mislabel,
        // a wider vote outvotes it
        let (mut f, mut labels) = clusters(40);
        f.values.extend([1.0, 0.05, 0.1, 0.05, 1.0, -0.1]);
        labels.extend([1, 0]);
        let k = choose_k(&f, &labels, 2, 0.07);
        assert!(k > 1 && k <= 20, "k {k}");
        // 3 images per class allow at most k = 2, so k = 1 is the only candidate
        let (small, sl) = clusters(6);
        assert_eq!(choose_k(&small, &sl, 2, 0.07), 1);
    }

    #[test]
    fn rows_are_scaled_to_unit_length() {
        let f = FeatureMatrix { values: vec![3.0, 4.0, 0.0, 0.0], dim: 2 }.l2_normalised();
        assert_eq!(f.values, vec![0.6, 0.8, 0.0, 0.0]);
    }

    #[test]
    fn bad_settings_name_the_flag() {
        let e = ProbeConfig { k: Some(0), ..ProbeConfig::default() }.validate().unwrap_err().to_string();
        assert!(e.contains("--k"), "{e}");
    }
}
