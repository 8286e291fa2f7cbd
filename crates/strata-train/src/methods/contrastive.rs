//! `contrastive`: SimCLR (Chen et al. 2020). Two strong views of each unlabeled image go
//! through the backbone and a small MLP projector; the NT-Xent loss pulls each view towards
//! its twin and away from the other 2N − 2 views of the batch. Optionally cluster heads on
//! the same two views add IIC's objective (see `cluster`), which also lets stage two start
//! its output layer from the clusters (`--head-init clusters`). Stage two reuses the backbone,
//! and with `--reuse-projector` the projector's hidden layer too (SimCLRv2, Chen et al. 2020b).
//! Where the batch must stay small, `--contrast-loss decoupled` (Yeh et al. 2022) drops the
//! twin from the denominator, which removes NT-Xent's dependence on the batch size.

use super::cluster::{assign, head_figures, kept_head, kept_head_metrics};
use super::epochs::{Figures, Objective, one_model_checkpoint, run_epochs, trained};
use super::mutual_info::{ClusterReport, negative_mutual_information};
use super::{Job, Log, PretrainConfig, PretrainOutcome, Pretrainer};
use crate::batch::Batcher;
use crate::engine::{Plan, Window};
use crate::error::{Result, TrainError};
use crate::progress::Observer;
use crate::schedule::LrSchedule;
use crate::step::{checked_loss, cross_entropy, step_rng};
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use strata_data::Dataset;
use strata_nn::block::{build_stack, forward_stack};
use strata_nn::{ArchSpec, Block, Features, try_seeded};

/// Share of the steps the learning rate warms up over before its cosine decay.
const WARMUP: f64 = 0.05;
/// Width of the projector's hidden layer (SimCLR's MLP head, sized as the PyTorch reference).
const PROJECTOR_HIDDEN: usize = 128;
/// What usually mends collapsed cluster heads here, for the warning.
const REMEDY: &str = "more --epochs or a lower --cluster-weight may help; `--method cluster` trains heads alone";
/// Added to a view's similarity with itself so the softmax never picks it.
const SELF_MASK: f32 = 1e9;

/// The settings only `contrastive` reads (its views are the shared [`super::ViewSettings`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(default)]
pub struct ContrastiveSettings {
    /// `contrastive`: temperature of the NT-Xent loss (lower: harder negatives weigh more).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = ContrastiveSettings::default().temperature))]
    pub temperature: f64,
    /// `contrastive`: width of the projection the views are compared in (dropped at reuse).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = ContrastiveSettings::default().projection))]
    pub projection: usize,
    /// `contrastive`: weight of cluster heads (IIC, --clusters and --sub-heads) trained on the
    /// same two views beside the contrastive loss (0 = no heads).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = ContrastiveSettings::default().cluster_weight))]
    pub cluster_weight: f64,
    /// `contrastive`: the loss each view is scored by: nt-xent (SimCLR) or decoupled (the twin
    /// left out of the denominator; steadier at small batches).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = ContrastiveSettings::default().contrast_loss))]
    pub contrast_loss: ContrastLoss,
    /// `contrastive`: the projector's hidden layer becomes the backbone's top block, reused at
    /// stage two (SimCLRv2); `--drop-top 1` there gives SimCLR's reuse back.
    #[cfg_attr(feature = "cli", arg(long))]
    pub reuse_projector: bool,
}

/// How a view's choice of its twin is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContrastLoss {
    /// cross-entropy of picking the twin among the other 2N − 1 views (SimCLR)
    #[default]
    NtXent,
    /// the same with the twin left out of the denominator (Yeh et al. 2022)
    Decoupled,
}

impl std::str::FromStr for ContrastLoss {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "nt-xent" => Ok(Self::NtXent),
            "decoupled" => Ok(Self::Decoupled),
            _ => Err(format!("unknown contrastive loss `{s}`; use nt-xent or decoupled")),
        }
    }
}

impl std::fmt::Display for ContrastLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NtXent => "nt-xent",
            Self::Decoupled => "decoupled",
        })
    }
}

impl Default for ContrastiveSettings {
    /// SimCLR's small-batch set-up as the PyTorch reference runs it: temperature 0.2, a
    /// 128-128-64 projector, no cluster heads. Generic, not fitted to MNIST.
    fn default() -> Self {
        Self {
            temperature: 0.2,
            projection: 64,
            cluster_weight: 0.0,
            contrast_loss: ContrastLoss::NtXent,
            reuse_projector: false,
        }
    }
}

impl ContrastiveSettings {
    /// Checks the settings, naming the flag.
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature.is_finite() && (0.01..=10.0).contains(&self.temperature)) {
            return Err(TrainError::config("--temperature", self.temperature, "use a value in [0.01, 10], e.g. 0.2"));
        }
        if !(1..=4096).contains(&self.projection) {
            return Err(TrainError::config("--projection", self.projection, "use a width between 1 and 4096"));
        }
        if !(self.cluster_weight.is_finite() && self.cluster_weight >= 0.0) {
            return Err(TrainError::config(
                "--cluster-weight",
                self.cluster_weight,
                "use 0 (no cluster heads) or a positive weight, e.g. 1",
            ));
        }
        Ok(())
    }
}

/// NT-Xent (Chen et al. 2020), averaged over all 2N views: `a` and `b` are the projections of
/// two views of the same N images, row i of one the twin of row i of the other. Each view is
/// scored against the other 2N − 1 by cosine similarity over `temperature`; the loss is the
/// cross-entropy of picking its twin.
pub fn nt_xent(a: Tensor<2>, b: Tensor<2>, temperature: f64) -> Tensor<1> {
    let (scores, twins) = pair_scores(a, b, temperature);
    cross_entropy(scores, twins)
}

/// The decoupled contrastive loss (Yeh et al. 2022), averaged over all 2N views: NT-Xent with
/// each view's twin left out of its denominator, `−s(i, twin) + log Σ_{k ∉ {i, twin}} e^s(i, k)`.
pub fn decoupled(a: Tensor<2>, b: Tensor<2>, temperature: f64) -> Tensor<1> {
    let (scores, twins) = pair_scores(a, b, temperature);
    decoupled_of(scores, twins)
}

/// [`decoupled`] from NT-Xent's masked scores and each view's twin.
fn decoupled_of(scores: Tensor<2>, twins: Tensor<1, Int>) -> Tensor<1> {
    let [rows, cols] = scores.dims();
    let twin = twins.clone().reshape([rows, 1]);
    let positive = scores.clone().gather(1, twin.clone()).reshape([rows]);
    // twin of view i is view (i + N) mod 2N, as `pair_scores` lays them out
    let hide: Vec<f32> =
        (0..rows * cols).map(|i| if (i / cols + rows / 2) % rows == i % cols { SELF_MASK } else { 0.0 }).collect();
    let hide = Tensor::<2>::from_data(TensorData::new(hide, [rows, cols]), &scores.device());
    let negatives = scores - hide;
    // log-sum-exp with the row's largest score taken out first, so nothing overflows
    let top = negatives.clone().max_dim(1).detach();
    let spread = (negatives - top.clone()).exp().sum_dim(1).log() + top;
    (spread.reshape([rows]) - positive).mean()
}

/// The masked similarity matrix of NT-Xent and the index of each view's twin.
fn pair_scores(a: Tensor<2>, b: Tensor<2>, temperature: f64) -> (Tensor<2>, Tensor<1, Int>) {
    let n = a.dims()[0];
    let device = a.device();
    let z = Tensor::cat(vec![a, b], 0);
    let z = z.clone() / z.powi_scalar(2).sum_dim(1).add_scalar(1e-12).sqrt();
    let mask: Vec<f32> = (0..4 * n * n).map(|i| if i / (2 * n) == i % (2 * n) { SELF_MASK } else { 0.0 }).collect();
    let mask = Tensor::<2>::from_data(TensorData::new(mask, [2 * n, 2 * n]), &device);
    let scores = z.clone().matmul(z.transpose()).div_scalar(temperature) - mask;
    let twins: Vec<i64> = (0..2 * n).map(|i| ((i + n) % (2 * n)) as i64).collect();
    (scores, Tensor::<1, Int>::from_data(TensorData::new(twins, [2 * n]), &device))
}

/// Contrastive pretraining.
pub struct Contrastive;

/// The backbone, the projector the views are compared in, and the optional cluster heads
/// (all but the backbone dropped at reuse; `cluster_heads` is read by `--head-init clusters`).
#[derive(Module, Debug)]
pub struct ContrastiveNet {
    /// what stage two reuses
    pub backbone: Vec<Block>,
    /// the projector's hidden layer (ReLU after it); None with `--reuse-projector`, where it is
    /// the backbone's top block
    pub projector_hidden: Option<Linear>,
    /// the projector's output layer
    pub projector: Linear,
    /// cluster heads on the same views: sub-heads x clusters logits (None: weight 0)
    pub cluster_heads: Option<Linear>,
}

struct Contrasting<'a> {
    model: Option<ContrastiveNet>,
    optim: ModuleOptimizer,
    data: &'a Dataset,
    batcher: Batcher<'a>,
    device: Device,
    cfg: &'a PretrainConfig,
    total_steps: usize,
    /// the cluster sub-head kept and how it splits the images, as of the last epoch
    report: Option<(usize, ClusterReport)>,
}

impl Objective for Contrasting<'_> {
    one_model_checkpoint!();

    fn step(&mut self, idx: &[usize], step: usize) -> Result<Figures> {
        let Some(model) = self.model.take() else { unreachable!("the model is put back after every step") };
        let (data, cfg) = (self.data, self.cfg);
        let s = &cfg.contrastive;
        let mut rng = step_rng(cfg.seed, 0x636f_6e74, step as u64);
        // both views of the batch in one pass: the first N rows view a, the next N view b
        let views: Vec<Vec<u8>> =
            (0..2).flat_map(|_| idx.iter()).map(|&i| cfg.views.view(data.image(i), data.shape, &mut rng)).collect();
        let n = idx.len();
        let h =
            forward_stack(&model.backbone, Features::Map(self.batcher.inputs_from_pixels(&views, &self.device))).flat();
        let z = match &model.projector_hidden {
            Some(hidden) => model.projector.forward(relu(hidden.forward(h.clone()))),
            None => model.projector.forward(h.clone()),
        };
        let width = z.dims()[1];
        let (scores, twins) =
            pair_scores(z.clone().slice([0..n, 0..width]), z.slice([n..2 * n, 0..width]), s.temperature);
        let mut loss = match s.contrast_loss {
            ContrastLoss::NtXent => cross_entropy(scores.clone(), twins.clone()),
            ContrastLoss::Decoupled => decoupled_of(scores.clone(), twins.clone()),
        };
        let mut per_head = vec![];
        if let Some(heads) = &model.cluster_heads {
            let dim = h.dims()[1];
            let sub_heads = cfg.cluster.sub_heads;
            let a = assign(heads, h.clone().slice([0..n, 0..dim]), sub_heads);
            let b = assign(heads, h.slice([n..2 * n, 0..dim]), sub_heads);
            let mi = negative_mutual_information(a, b);
            per_head = mi.clone().into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default();
            loss = loss + mi.mean().mul_scalar(s.cluster_weight);
        }
        let value = checked_loss(&loss, "contrastive", step)?;
        let picked = scores.argmax(1).into_data().convert::<i64>().try_to_vec::<i64>().unwrap_or_default();
        let twin_of = twins.into_data().convert::<i64>().try_to_vec::<i64>().unwrap_or_default();
        let found = picked.iter().zip(&twin_of).filter(|(p, t)| p == t).count();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let lr = cfg.lr * LrSchedule::Cosine.factor(WARMUP, step, self.total_steps);
        self.model = Some(self.optim.step(lr, model, grads));
        let mut figures: Figures =
            vec![("loss", f64::from(value)), ("twin_accuracy", found as f64 / (2 * n) as f64), ("lr", lr)];
        figures.extend(head_figures(&per_head));
        Ok(figures)
    }

    fn end_window(&mut self, window: &Window) -> Result<serde_json::Value> {
        let Some(model) = &self.model else { unreachable!("the model is put back after every step") };
        let model = model.valid();
        let Some(heads) = &model.cluster_heads else { return Ok(serde_json::json!({})) };
        let device = self.device.clone().inner();
        let (head, report, line) =
            kept_head(&model.backbone, heads, self.data, &self.batcher, self.cfg, window, &device, REMEDY);
        self.report = Some((head, report));
        Ok(line)
    }
}

impl Pretrainer for Contrastive {
    fn name(&self) -> &'static str {
        "contrastive"
    }
    fn describe(&self) -> &'static str {
        "contrastive (SimCLR): each strong view picks its twin among all views of the batch"
    }
    /// SimCLR's set-up where it differs from the others': batch norm after every convolution
    /// (as `cluster`, so the two share a backbone), a batch of 256 (each view has 510
    /// negatives), Adam at 1e-3 with warm-up and cosine decay. Generic, not fitted to MNIST.
    fn defaults(&self) -> PretrainConfig {
        PretrainConfig {
            arch: ArchSpec::parse(super::cluster::BATCH_NORM_ARCH).expect("BATCH_NORM_ARCH is a valid spec"),
            batch: 256,
            ..PretrainConfig::default()
        }
    }
    /// With `--reuse-projector`, `--arch` and the projector's hidden layer as a `dense` block.
    fn reused_arch(&self, cfg: &PretrainConfig) -> Result<ArchSpec> {
        if !cfg.contrastive.reuse_projector {
            return Ok(cfg.arch.clone());
        }
        Ok(ArchSpec::parse(&format!("{},dense{PROJECTOR_HIDDEN}", cfg.arch))?)
    }
    fn train(&self, job: &Job, observer: &mut dyn Observer, log: &mut Log) -> Result<PretrainOutcome> {
        let Job { data, norm, cfg, device } = *job;
        let s = cfg.contrastive;
        let arch = self.reused_arch(cfg)?;
        s.validate()?;
        if s.cluster_weight > 0.0 {
            cfg.cluster.validate()?;
        }
        if data.len() < 2 || cfg.batch < 2 {
            return Err(TrainError::config(
                "--batch",
                cfg.batch.min(data.len()),
                "contrastive needs at least 2 images per batch (the negatives)",
            ));
        }
        let batcher = Batcher::new(data, norm);
        let input = batcher.input_shape();
        let features = arch.output_shape(input)?.numel();
        let ad = device.clone().autodiff();
        let model = try_seeded(&ad, cfg.seed, || {
            Ok::<_, strata_nn::NnError>(ContrastiveNet {
                backbone: build_stack(&arch.blocks, input.into(), &ad)?,
                projector_hidden: (!s.reuse_projector).then(|| LinearConfig::new(features, PROJECTOR_HIDDEN).init(&ad)),
                projector: LinearConfig::new(if s.reuse_projector { features } else { PROJECTOR_HIDDEN }, s.projection)
                    .init(&ad),
                cluster_heads: (s.cluster_weight > 0.0)
                    .then(|| LinearConfig::new(features, cfg.cluster.sub_heads * cfg.cluster.clusters).init(&ad)),
            })
        })?;
        let total_steps = cfg.epochs * Plan::steps_per_epoch(data.len(), cfg.batch);
        let mut objective = Contrasting {
            model: Some(model),
            optim: AdamConfig::new().init(),
            data,
            batcher,
            device: ad,
            cfg,
            total_steps,
            report: None,
        };
        let summary = run_epochs(self.name(), cfg, data.len(), 2, &mut objective, observer, log)?;
        let mut metrics = summary.metrics(cfg.batch);
        kept_head_metrics(&mut metrics, objective.report.as_ref());
        PretrainOutcome::new(&trained(objective.model), metrics, vec![])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(rows: &[[f32; 2]], device: &Device) -> Tensor<2> {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        Tensor::from_data(TensorData::new(flat, [rows.len(), 2]), device)
    }

    fn loss(a: &[[f32; 2]], b: &[[f32; 2]], t: f64) -> f64 {
        let device = Device::flex();
        f64::from(nt_xent(matrix(a, &device), matrix(b, &device), t).into_scalar::<f32>())
    }

    #[test]
    fn nt_xent_equals_the_hand_computed_value() {
        // views e1, e2 | e1, e2: each view has cosine 1 with its twin, 0 with the two others
        let (x, y) = ([1.0, 0.0], [0.0, 1.0]);
        for t in [1.0f64, 0.5, 0.2] {
            let want = (1.0 + 2.0 * (-1.0 / t).exp()).ln();
            assert!((loss(&[x, y], &[x, y], t) - want).abs() < 1e-5, "t = {t}");
        }
        // lengths do not count (cosine)
        assert!((loss(&[[3.0, 0.0], y], &[x, [0.0, 0.5]], 1.0) - (1.0 + 2.0 * (-1.0f64).exp()).ln()).abs() < 1e-5);
        // views x, x | y, y: each twin at 90 degrees (logit 0), the other copy at 0 (logit 1)
        let want = -(1.0 / (2.0 + 1f64.exp())).ln();
        assert!((loss(&[x, x], &[y, y], 1.0) - want).abs() < 1e-5);
    }

    fn decoupled_loss(a: &[[f32; 2]], b: &[[f32; 2]], t: f64) -> f64 {
        let device = Device::flex();
        f64::from(decoupled(matrix(a, &device), matrix(b, &device), t).into_scalar::<f32>())
    }

    #[test]
    fn the_decoupled_loss_equals_the_hand_computed_value() {
        let (x, y) = ([1.0, 0.0], [0.0, 1.0]);
        // views e1, e2 | e1, e2: the twin scores 1/t; the two other views score 0, so the
        // denominator without the twin is 2
        for t in [1.0f64, 0.5, 0.2] {
            let want = -1.0 / t + 2f64.ln();
            assert!((decoupled_loss(&[x, y], &[x, y], t) - want).abs() < 1e-5, "t = {t}");
            // NT-Xent keeps the twin in the denominator, so it is always the larger
            assert!(loss(&[x, y], &[x, y], t) > decoupled_loss(&[x, y], &[x, y], t));
        }
        // views x, x | y, y: the twin at 90 degrees scores 0; the other views score 1 and 0
        let want = (1.0 + 1f64.exp()).ln();
        assert!((decoupled_loss(&[x, x], &[y, y], 1.0) - want).abs() < 1e-5);
        // large scores do not overflow
        let far = decoupled_loss(&[x, y], &[x, y], 0.01);
        assert!((far - (-100.0 + 2f64.ln())).abs() < 1e-3, "{far}");
    }

    #[test]
    fn reuse_projector_adds_the_projector_layer_to_the_reused_blocks() {
        let mut cfg = Contrastive.defaults();
        assert_eq!(Contrastive.reused_arch(&cfg).unwrap(), cfg.arch);
        cfg.contrastive.reuse_projector = true;
        let arch = Contrastive.reused_arch(&cfg).unwrap();
        assert_eq!(arch.to_string(), format!("{},dense{PROJECTOR_HIDDEN}", cfg.arch));
    }

    #[test]
    fn the_loss_names_round_trip() {
        for l in [ContrastLoss::NtXent, ContrastLoss::Decoupled] {
            assert_eq!(l.to_string().parse::<ContrastLoss>().unwrap(), l);
            assert_eq!(serde_json::to_value(l).unwrap(), l.to_string());
        }
        assert!("infonce".parse::<ContrastLoss>().unwrap_err().contains("nt-xent or decoupled"));
    }

    #[test]
    fn out_of_range_settings_name_their_flag() {
        let bad = |s: ContrastiveSettings| s.validate().unwrap_err().to_string();
        assert!(bad(ContrastiveSettings { temperature: 0.0, ..Default::default() }).contains("--temperature"));
        assert!(bad(ContrastiveSettings { projection: 0, ..Default::default() }).contains("--projection"));
        assert!(bad(ContrastiveSettings { cluster_weight: -1.0, ..Default::default() }).contains("--cluster-weight"));
        assert!(ContrastiveSettings::default().validate().is_ok());
    }
}
