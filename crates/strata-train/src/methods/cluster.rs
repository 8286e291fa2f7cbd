//! `cluster`: invariant information clustering (Ji et al. 2019). Each unlabeled image is seen
//! as it is and in several strong views; cluster heads on the backbone are trained so that the
//! image and its views fall into the same cluster while all clusters stay in use (the mutual
//! information of the two assignments). Several sub-heads learn side by side and the one with
//! the lowest loss is kept; an over-clustering head with more clusters than classes helps the
//! backbone separate finer shapes. Stage two reuses the backbone.

use super::epochs::{Figures, Objective, one_model_checkpoint, run_epochs, trained};
use super::mutual_info::{ClusterReport, best_head, negative_mutual_information};
use super::{Job, Log, PretrainConfig, PretrainOutcome, Pretrainer};
use crate::batch::Batcher;
use crate::engine::{Plan, Window};
use crate::error::{Result, TrainError};
use crate::progress::Observer;
use crate::schedule::LrSchedule;
use crate::step::{checked_loss, step_rng};
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use strata_data::Dataset;
use strata_nn::block::{build_stack, forward_stack};
use strata_nn::{ArchSpec, Block, Features, try_seeded};

/// Names of the per-sub-head figures (mutual information of the main head's sub-heads).
const HEAD_FIGURES: [&str; 8] = ["mi_0", "mi_1", "mi_2", "mi_3", "mi_4", "mi_5", "mi_6", "mi_7"];
/// Images the clusters are counted on at the end of each epoch (evenly spaced rows).
const REPORT_IMAGES: usize = 2_000;
/// Share of the steps the learning rate warms up over before its cosine decay.
const WARMUP: f64 = 0.05;
/// What usually mends collapsed clusters, for the warning.
const REMEDY: &str = "more --epochs, more --repeats or a lower --lr usually help";
/// The REF-CAE layers with batch norm after each convolution: `cluster`'s default backbone.
pub const BATCH_NORM_ARCH: &str = "conv32-bn-pool,conv64-bn-pool,dense128";

/// The settings only `cluster` reads.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(default)]
pub struct ClusterSettings {
    /// `cluster`: clusters of the main heads (the number of classes you expect).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = ClusterSettings::default().clusters))]
    pub clusters: usize,
    /// `cluster`: the over-clustering heads have this many times more clusters (0 = none).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = ClusterSettings::default().overcluster))]
    pub overcluster: usize,
    /// `cluster`: sub-heads per head (1 to 8); the one with the lowest loss is kept.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = ClusterSettings::default().sub_heads))]
    pub sub_heads: usize,
    /// `cluster`: views of each image per step, each paired with the image itself.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = ClusterSettings::default().repeats))]
    pub repeats: usize,
}

impl Default for ClusterSettings {
    /// IIC's MNIST set-up: 10 clusters, 5x over-clustering, 5 sub-heads; 4 views per image
    /// (IIC uses 5) to keep a step's cost near 5 forward passes of the batch.
    fn default() -> Self {
        Self { clusters: 10, overcluster: 5, sub_heads: 5, repeats: 4 }
    }
}

impl ClusterSettings {
    /// Checks the settings, naming the flag.
    pub fn validate(&self) -> Result<()> {
        if !(2..=4096).contains(&self.clusters) {
            return Err(TrainError::config("--clusters", self.clusters, "use between 2 and 4096 clusters"));
        }
        if self.overcluster > 64 {
            return Err(TrainError::config(
                "--overcluster",
                self.overcluster,
                "use a factor of 0 (none) to 64, e.g. 5",
            ));
        }
        if !(1..=HEAD_FIGURES.len()).contains(&self.sub_heads) {
            return Err(TrainError::config("--sub-heads", self.sub_heads, "use between 1 and 8 sub-heads"));
        }
        if !(1..=16).contains(&self.repeats) {
            return Err(TrainError::config("--repeats", self.repeats, "use between 1 and 16 views per image"));
        }
        Ok(())
    }
}

/// Invariant-information-clustering pretraining.
pub struct Cluster;

/// The backbone under the cluster heads (dropped at reuse).
#[derive(Module, Debug)]
pub struct ClusterNet {
    /// what stage two reuses
    pub backbone: Vec<Block>,
    /// the main heads: sub-heads x clusters logits
    pub cluster_heads: Linear,
    /// the over-clustering heads (None with `--overcluster 0`)
    pub overcluster_heads: Option<Linear>,
}

impl ClusterNet {
    /// Soft assignments of `x`'s images by every sub-head of `heads`: sub-heads x images x k.
    fn assign(heads: &Linear, h: Tensor<2>, sub_heads: usize) -> Tensor<3> {
        let n = h.dims()[0];
        let logits = heads.forward(h);
        let k = logits.dims()[1] / sub_heads;
        softmax(logits.reshape([n, sub_heads, k]), 2).swap_dims(0, 1)
    }
}

struct Clustering<'a> {
    model: Option<ClusterNet>,
    optim: ModuleOptimizer,
    data: &'a Dataset,
    batcher: Batcher<'a>,
    device: Device,
    cfg: &'a PretrainConfig,
    total_steps: usize,
    /// the sub-head kept and how it splits the images, as of the last epoch
    report: Option<(usize, ClusterReport)>,
}

impl Objective for Clustering<'_> {
    one_model_checkpoint!();

    fn step(&mut self, idx: &[usize], step: usize) -> Result<Figures> {
        let Some(model) = self.model.take() else { unreachable!("the model is put back after every step") };
        let (data, cfg) = (self.data, self.cfg);
        let s = &cfg.cluster;
        let mut rng = step_rng(cfg.seed, 0x636c_7573, step as u64);
        // views in repeat-major order: view r of image i sits at r * batch + i
        let views: Vec<Vec<u8>> = (0..s.repeats)
            .flat_map(|_| idx.iter())
            .map(|&i| cfg.views.view(data.image(i), data.shape, &mut rng))
            .collect();
        // the image itself is the same in every repeat, so one forward pass serves all of them
        // (batch-norm statistics of repeated copies equal those of the unique images)
        let h_orig = forward_stack(&model.backbone, Features::Map(self.batcher.inputs(idx, &self.device))).flat();
        let h_view =
            forward_stack(&model.backbone, Features::Map(self.batcher.inputs_from_pixels(&views, &self.device))).flat();
        let pair = |heads: &Linear| {
            let a = ClusterNet::assign(heads, h_orig.clone(), s.sub_heads).repeat_dim(1, s.repeats);
            let b = ClusterNet::assign(heads, h_view.clone(), s.sub_heads);
            negative_mutual_information(a, b)
        };
        let main = pair(&model.cluster_heads);
        let mut loss = main.clone().mean();
        if let Some(over) = &model.overcluster_heads {
            loss = loss + pair(over).mean();
        }
        let value = checked_loss(&loss, "cluster", step)?;
        let per_head = main.into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let lr = cfg.lr * LrSchedule::Cosine.factor(WARMUP, step, self.total_steps);
        self.model = Some(self.optim.step(lr, model, grads));
        let mut figures: Figures = vec![("loss", f64::from(value)), ("lr", lr)];
        figures.extend(head_figures(&per_head));
        Ok(figures)
    }

    fn end_window(&mut self, window: &Window) -> Result<serde_json::Value> {
        let Some(model) = &self.model else { unreachable!("the model is put back after every step") };
        let model = model.valid();
        let device = self.device.clone().inner();
        let (head, report, line) = kept_head(
            &model.backbone,
            &model.cluster_heads,
            self.data,
            &self.batcher,
            self.cfg,
            window,
            &device,
            REMEDY,
        );
        self.report = Some((head, report));
        Ok(line)
    }
}

/// The sub-head with the lowest mean loss over `window` (its `mi_*` figures), how it splits
/// evenly spaced images (unaugmented, inference mode), and the log line saying so, with a
/// warning when the clusters look collapsed (`remedy`: what to try). Shared by every method
/// with cluster heads.
#[allow(clippy::too_many_arguments)]
pub(super) fn kept_head(
    backbone: &[Block],
    heads: &Linear,
    data: &Dataset,
    batcher: &Batcher,
    cfg: &PretrainConfig,
    window: &Window,
    device: &Device,
    remedy: &str,
) -> (usize, ClusterReport, serde_json::Value) {
    let s = &cfg.cluster;
    let losses: Vec<f64> =
        HEAD_FIGURES[..s.sub_heads].iter().map(|k| -window.means.get(*k).copied().unwrap_or(f64::NAN)).collect();
    let head = best_head(&losses);
    let n = data.len();
    let m = n.min(REPORT_IMAGES);
    let rows: Vec<usize> = (0..m).map(|i| i * n / m).collect();
    let mut assigned = Vec::with_capacity(m);
    for chunk in rows.chunks(500) {
        let h = forward_stack(backbone, Features::Map(batcher.inputs(chunk, device))).flat();
        let p = ClusterNet::assign(heads, h, s.sub_heads);
        let [_, c, k] = p.dims();
        let best = p.slice([head..head + 1, 0..c, 0..k]).reshape([c, k]).argmax(1);
        let picked = best.into_data().convert::<i64>().try_to_vec::<i64>().unwrap_or_default();
        assigned.extend(picked.into_iter().map(|c| c as usize));
    }
    let report = ClusterReport::new(&assigned, s.clusters);
    let warning = report.collapse().map(|why| {
        format!("epoch {}: sub-head {head}: {why} — the clusters have collapsed so far; {remedy}", window.index)
    });
    let line = serde_json::json!({
        "head": head,
        "head_mi": -losses[head],
        "effective_clusters": report.effective,
        "empty_clusters": report.empty,
        "warning": warning,
    });
    (head, report, line)
}

/// The manifest figures of the sub-head kept at the end (see [`kept_head`]).
pub(super) fn kept_head_metrics(metrics: &mut serde_json::Value, kept: Option<&(usize, ClusterReport)>) {
    if let Some((head, report)) = kept {
        metrics["chosen_head"] = serde_json::json!(head);
        metrics["cluster_sizes"] = serde_json::json!(report.sizes);
        metrics["effective_clusters"] = serde_json::json!(report.effective);
        metrics["collapse"] = serde_json::json!(report.collapse());
    }
}

/// The per-sub-head figures of one step: minus each sub-head's loss as `mi_<i>`.
pub(super) fn head_figures(per_head: &[f32]) -> Figures {
    HEAD_FIGURES.iter().zip(per_head).map(|(name, l)| (*name, -f64::from(*l))).collect()
}

/// Soft assignments of features `h` by every sub-head of `heads` (see [`ClusterNet`]).
pub(super) fn assign(heads: &Linear, h: Tensor<2>, sub_heads: usize) -> Tensor<3> {
    ClusterNet::assign(heads, h, sub_heads)
}

impl Pretrainer for Cluster {
    fn name(&self) -> &'static str {
        "cluster"
    }
    fn describe(&self) -> &'static str {
        "clustering (IIC): an image and its strong views fall into the same of k balanced clusters"
    }
    /// IIC's set-up where it differs from the others' (Ji et al. 2019: batch norm after every
    /// convolution, larger batches), as the PyTorch reference found it works at a laptop's
    /// budget (without batch norm its heads stalled at about three clusters in effect). Adam at
    /// its usual 1e-3 under warm-up + cosine for 20 epochs: on the validation split that reads
    /// out as well as 40 epochs at 5e-4 did (RESULTS.md), and 20 epochs fit issue 16's budget of
    /// 20 minutes on 2 cores for 60 000 images (about 59 s an epoch since batch norm is
    /// strata's own operation). Generic choices, not fitted to MNIST.
    fn defaults(&self) -> PretrainConfig {
        PretrainConfig {
            arch: ArchSpec::parse(BATCH_NORM_ARCH).expect("BATCH_NORM_ARCH is a valid spec"),
            batch: 128,
            lr: 1e-3,
            epochs: 20,
            ..PretrainConfig::default()
        }
    }
    fn train(&self, job: &Job, observer: &mut dyn Observer, log: &mut Log) -> Result<PretrainOutcome> {
        let Job { data, norm, cfg, device } = *job;
        let s = cfg.cluster;
        s.validate()?;
        let batcher = Batcher::new(data, norm);
        let input = batcher.input_shape();
        let features = cfg.arch.output_shape(input)?.numel();
        let ad = device.clone().autodiff();
        let model = try_seeded(&ad, cfg.seed, || {
            Ok::<_, strata_nn::NnError>(ClusterNet {
                backbone: build_stack(&cfg.arch.blocks, input.into(), &ad)?,
                cluster_heads: LinearConfig::new(features, s.sub_heads * s.clusters).init(&ad),
                overcluster_heads: (s.overcluster > 0)
                    .then(|| LinearConfig::new(features, s.sub_heads * s.clusters * s.overcluster).init(&ad)),
            })
        })?;
        let total_steps = cfg.epochs * Plan::steps_per_epoch(data.len(), cfg.batch);
        let mut objective = Clustering {
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

/// A `cluster` run's kept sub-head read from its weights, applied to frozen backbone features
/// (what `strata probe --method cluster` uses).
pub struct ClusterHead {
    /// features x (sub-heads x clusters), as burn's `Linear` stores it
    weight: Vec<f32>,
    bias: Vec<f32>,
    dim: usize,
    width: usize,
    /// first logit of the kept sub-head and its cluster count
    offset: usize,
    k: usize,
}

impl ClusterHead {
    /// Reads sub-head `head` of `sub_heads` from a cluster run's weights (`path` names the file).
    pub fn load(bytes: &[u8], path: &std::path::Path, head: usize, sub_heads: usize) -> Result<Self> {
        let read = |name: &str| {
            strata_nn::weights::tensor_from_bytes(bytes, name, path)?.ok_or_else(|| TrainError::BadRun {
                path: path.into(),
                reason: format!("no `{name}`: the cluster probe needs a `strata pretrain --method cluster` run"),
            })
        };
        let (shape, weight) = read("cluster_heads.weight")?;
        let (_, bias) = read("cluster_heads.bias")?;
        let [dim, width] = shape[..] else {
            return Err(TrainError::BadRun {
                path: path.into(),
                reason: format!("cluster_heads.weight has shape {shape:?}"),
            });
        };
        if sub_heads == 0 || width % sub_heads != 0 || head >= sub_heads || bias.len() != width {
            return Err(TrainError::BadRun {
                path: path.into(),
                reason: format!("{width} cluster logits do not split into {sub_heads} sub-heads with head {head} kept"),
            });
        }
        let k = width / sub_heads;
        Ok(Self { weight, bias, dim, width, offset: head * k, k })
    }

    /// Reads the sub-head a cluster run kept (its manifest's `chosen_head`, of its
    /// `sub_heads`) from that run's weights `bytes` (read from `path`).
    pub fn of_run(bytes: &[u8], path: &std::path::Path, manifest: &crate::manifest::Manifest) -> Result<Self> {
        let head = manifest.metrics["chosen_head"].as_u64().unwrap_or(0) as usize;
        let sub_heads = manifest.config["train"]["sub_heads"].as_u64().unwrap_or(1) as usize;
        Self::load(bytes, path, head, sub_heads)
    }

    /// Clusters of the head.
    pub fn clusters(&self) -> usize {
        self.k
    }

    /// Width of the features the head reads.
    pub fn inputs(&self) -> usize {
        self.dim
    }

    /// The kept sub-head as a linear layer of its own: weights `inputs x clusters` (burn's
    /// layout) and biases, cluster `order[j]` in output `j`.
    pub fn layer(&self, order: &[usize]) -> (Vec<f32>, Vec<f32>) {
        let n = order.len();
        let mut weight = vec![0f32; self.dim * n];
        for i in 0..self.dim {
            for (j, &c) in order.iter().enumerate() {
                weight[i * n + j] = self.weight[i * self.width + self.offset + c];
            }
        }
        (weight, order.iter().map(|&c| self.bias[self.offset + c]).collect())
    }

    /// The cluster of each row of `f` (the most likely one).
    pub fn assign(&self, f: &crate::probe::FeatureMatrix) -> Result<Vec<usize>> {
        Ok(self.assign_with_confidence(f)?.into_iter().map(|(c, _)| c).collect())
    }

    /// The most likely cluster of each row of `f` and its probability under the head.
    pub fn assign_with_confidence(&self, f: &crate::probe::FeatureMatrix) -> Result<Vec<(usize, f32)>> {
        if f.dim != self.dim {
            return Err(TrainError::config(
                "--reuse",
                f.dim,
                &format!(
                    "the cluster head reads the {}-wide output of the whole backbone; reuse every block",
                    self.dim
                ),
            ));
        }
        Ok((0..f.rows())
            .map(|r| {
                let x = f.row(r);
                let logits: Vec<f32> = (0..self.k)
                    .map(|c| {
                        let o = self.offset + c;
                        self.bias[o]
                            + x.iter().enumerate().map(|(i, v)| v * self.weight[i * self.width + o]).sum::<f32>()
                    })
                    .collect();
                let best = (0..self.k).fold(0, |b, c| if logits[c] > logits[b] { c } else { b });
                let total: f32 = logits.iter().map(|l| (l - logits[best]).exp()).sum();
                (best, 1.0 / total)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_out_of_range_name_their_flag() {
        let bad = |s: ClusterSettings| s.validate().unwrap_err().to_string();
        assert!(bad(ClusterSettings { clusters: 1, ..Default::default() }).contains("--clusters"));
        assert!(bad(ClusterSettings { sub_heads: 9, ..Default::default() }).contains("--sub-heads"));
        assert!(bad(ClusterSettings { repeats: 0, ..Default::default() }).contains("--repeats"));
        assert!(ClusterSettings::default().validate().is_ok());
    }

    #[test]
    fn the_cluster_head_read_back_assigns_like_the_model() {
        let device = Device::flex();
        let net = strata_nn::seeded(&device, 5, || ClusterNet {
            backbone: vec![],
            cluster_heads: LinearConfig::new(6, 3 * 4).init(&device),
            overcluster_heads: None,
        });
        let bytes = strata_nn::weights::to_bytes(&net).unwrap();
        let values: Vec<f32> = (0..5 * 6).map(|i| ((i * 37 % 11) as f32 - 5.0) / 3.0).collect();
        let f = crate::probe::FeatureMatrix { values: values.clone(), dim: 6 };
        let x = Tensor::<2>::from_data(burn::tensor::TensorData::new(values, [5, 6]), &device);
        for head in 0..3 {
            let p = ClusterNet::assign(&net.cluster_heads, x.clone(), 3);
            let want: Vec<i64> = p
                .slice([head..head + 1, 0..5, 0..4])
                .reshape([5, 4])
                .argmax(1)
                .into_data()
                .convert::<i64>()
                .try_to_vec()
                .unwrap();
            let got = ClusterHead::load(&bytes, "m".as_ref(), head, 3).unwrap().assign(&f).unwrap();
            assert_eq!(got, want.iter().map(|&c| c as usize).collect::<Vec<_>>(), "sub-head {head}");
        }
        assert!(ClusterHead::load(&bytes, "m".as_ref(), 3, 3).is_err());
        assert!(ClusterHead::load(&bytes, "m".as_ref(), 0, 5).is_err());
    }
}
