//! Scoring a pretrained backbone without fine-tuning, as self-supervised learning papers and
//! libraries do: a linear classifier on its frozen features, or k nearest neighbours on its
//! L2-normalised features. Features are computed once per image.

use crate::batch::Batcher;
use crate::error::{Result, TrainError};
use crate::step::{BatchSchedule, checked_loss, cross_entropy, validate_optim};
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
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
}

impl std::str::FromStr for ProbeMethod {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "linear" => Ok(Self::Linear),
            "knn" => Ok(Self::Knn),
            _ => Err(format!("unknown probe `{s}`; use linear or knn")),
        }
    }
}

/// Settings of the probes, declared once for `strata probe` and library callers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(default)]
pub struct ProbeConfig {
    /// Neighbours that vote (knn).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = ProbeConfig::default().k))]
    pub k: usize,
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
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self { k: 20, temperature: 0.07, steps: 1000, lr: 1e-2, batch: 256, seed: 0 }
    }
}

impl ProbeConfig {
    /// Checks ranges and gives an error naming the flag.
    pub fn validate(&self) -> Result<()> {
        validate_optim(self.batch, self.lr)?;
        if self.k == 0 {
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

    fn row(&self, i: usize) -> &[f32] {
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
    let blocks: Vec<Block> = blocks.iter().map(|b| b.valid()).collect();
    let batcher = Batcher::new(data, norm);
    let (mut values, mut dim) = (Vec::new(), 0);
    for chunk in rows.chunks(256) {
        let out = forward_stack(&blocks, Features::Map(batcher.inputs(chunk, device))).flat();
        dim = out.dims()[1];
        values.extend(out.into_data().convert::<f32>().try_into_vec::<f32>().unwrap_or_default());
    }
    FeatureMatrix { values, dim }
}

/// kNN predictions for each row of `test`, from `train` rows labeled `labels`.
pub fn knn(
    train: &FeatureMatrix,
    labels: &[u32],
    test: &FeatureMatrix,
    classes: usize,
    cfg: &ProbeConfig,
    device: &Device,
) -> Vec<u32> {
    let (train, test) = (train.l2_normalised(), test.l2_normalised());
    let n = train.rows();
    let k = cfg.k.min(n).max(1);
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
            let mut votes = vec![0f64; classes.max(1)];
            for &j in &order[..k] {
                if let Some(v) = votes.get_mut(labels[j] as usize) {
                    *v += f64::from((row[j] / cfg.temperature).exp());
                }
            }
            let best = (0..votes.len()).fold(0, |b, c| if votes[c] > votes[b] { c } else { b });
            out.push(best as u32);
        }
    }
    out
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
        let cfg = ProbeConfig { k: 1, ..ProbeConfig::default() };
        assert_eq!(knn(&f, &labels, &f, 2, &cfg, &Device::default()), labels);
    }

    #[test]
    fn knn_and_linear_separate_two_clusters() {
        let (train, labels) = clusters(40);
        let (test, truth) = clusters(21);
        let device = Device::default();
        let cfg = ProbeConfig { k: 5, steps: 100, batch: 16, ..ProbeConfig::default() };
        assert_eq!(knn(&train, &labels, &test, 2, &cfg, &device), truth);
        assert_eq!(linear(&train, &labels, &test, 2, &cfg, &device).unwrap(), truth);
        // flipping the training labels flips the answers: the probes do read the labels
        let flipped: Vec<u32> = labels.iter().map(|l| 1 - l).collect();
        let inverse: Vec<u32> = truth.iter().map(|l| 1 - l).collect();
        assert_eq!(knn(&train, &flipped, &test, 2, &cfg, &device), inverse);
    }

    #[test]
    fn rows_are_scaled_to_unit_length() {
        let f = FeatureMatrix { values: vec![3.0, 4.0, 0.0, 0.0], dim: 2 }.l2_normalised();
        assert_eq!(f.values, vec![0.6, 0.8, 0.0, 0.0]);
    }

    #[test]
    fn bad_settings_name_the_flag() {
        let e = ProbeConfig { k: 0, ..ProbeConfig::default() }.validate().unwrap_err().to_string();
        assert!(e.contains("--k"), "{e}");
    }
}
