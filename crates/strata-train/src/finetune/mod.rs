//! Stage two: a classifier on reused (or fresh) blocks, trained in phases: reused blocks
//! frozen while the head learns, then the top reused blocks unfrozen at a reduced rate
//! (all at once or one more at a time, each block lower down at a further reduced rate).

mod cache;
pub mod clusters;
pub mod config;
pub mod phases;
pub mod prototype;

pub use config::{FEW_LABELS_CLUSTER_LABELS, FinetuneConfig, untuned};
pub use phases::{Phase, PhaseRates, apply_freeze, phase_rates, plan};
pub use prototype::HeadInit;

use crate::batch::Batcher;
use crate::checkpoint::{OPTIM_PART, Parts, part};
use crate::cluster_readout::ClusterReadout;
use crate::engine::{
    self, Figures, Objective, PhasePlan, Plan, Window, nonfinite, restore_model, restore_optim, save_parts,
};
use crate::error::{Result, TrainError};
use crate::evaluate::{Evaluation, evaluate};
use crate::layout::{BackbonePlan, Origin};
use crate::manifest::PhaseRecord;
use crate::methods::cluster::ClusterHead;
use crate::progress::{Event, Observer};
use crate::recorder::Recorder;
use crate::step::{checked_loss, smoothed_cross_entropy, step_rng};
use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::Device;
use cache::FrozenCache;
use std::collections::BTreeMap;
use strata_data::{AugmentPolicy, Dataset, Normalization};
use strata_nn::{Block, Classifier, HeadSpec, InputShape, try_seeded};

/// Where the backbone blocks come from.
pub enum Init {
    /// random initialisation: the baseline
    Scratch,
    /// the parent's lower blocks, already loaded, lowest first: as many as
    /// [`BackbonePlan::parent_blocks`] (replaced ones are loaded too, then re-initialised)
    Pretrained(Vec<Block>),
}

/// The trained classifier and its phase history.
pub struct FinetuneOutcome {
    /// the classifier, in inference mode
    pub model: Classifier,
    /// phases in order
    pub phases: Vec<PhaseRecord>,
    /// full scores on the evaluation set after the last phase, when one was given
    pub evaluation: Option<Evaluation>,
    /// unlabeled images trained on as their cluster's class (`--cluster-labels`), if any
    pub cluster_labelled: Option<usize>,
}

fn build_model(init: Init, job: &FinetuneJob, input: InputShape, device: &Device) -> Result<Classifier> {
    let (plan, head, seed) = (job.backbone, job.head, job.cfg.seed);
    match init {
        Init::Scratch => Ok(try_seeded(device, seed, || Classifier::new(&plan.arch, head, input, device))?),
        Init::Pretrained(blocks) => {
            if blocks.len() != plan.parent_blocks() {
                return Err(TrainError::config(
                    "--reuse",
                    blocks.len(),
                    &format!("the backbone plan needs {} of the parent's blocks", plan.parent_blocks()),
                ));
            }
            let mut loaded: Vec<Option<Block>> = blocks.into_iter().map(|b| Some(b.fork(device))).collect();
            let parts = plan
                .origins
                .iter()
                .map(|o| match o {
                    Origin::Parent { index } => loaded.get_mut(*index).and_then(Option::take),
                    Origin::Replaced { .. } | Origin::Added | Origin::Fresh | Origin::Imported => None,
                })
                .collect();
            Ok(try_seeded(device, seed, || Classifier::assemble(&plan.arch, parts, head, input, device))?)
        }
    }
}

/// What stage two trains: the settings, the classifier they resolved to, and the data.
#[derive(Clone, Copy)]
pub struct FinetuneJob<'a> {
    /// the stage-two settings
    pub cfg: &'a FinetuneConfig,
    /// the classifier's backbone blocks and where each comes from
    pub backbone: &'a BackbonePlan,
    /// the new head
    pub head: &'a HeadSpec,
    /// the labeled training data
    pub train: &'a Dataset,
    /// the rows of `train` to train on (the label subset)
    pub rows: &'a [usize],
    /// input normalisation (the parent's when blocks are reused)
    pub norm: &'a Normalization,
    /// compute device (without autodiff)
    pub device: &'a Device,
    /// labeled data scored after each phase
    pub eval: Option<&'a Dataset>,
    /// the parent's cluster head, read for `--head-init clusters` (None from scratch)
    pub clusters: Option<&'a ClusterHead>,
    /// the parent's cluster heads, all of them, read for `--cluster-labels` (None from scratch)
    pub readout: Option<&'a ClusterReadout>,
}

/// Name of the checkpoint part holding the finished phases' records.
const RECORDS_PART: &str = "phases.json";

/// Stage two as an engine objective: the classifier, its optimiser, the per-phase freezing,
/// learning rates and feature cache, and the record of each finished phase.
struct Tuning<'a> {
    job: &'a FinetuneJob<'a>,
    phases: Vec<Phase>,
    /// index of the phase in progress
    current: usize,
    model: Option<Classifier>,
    optim: ModuleOptimizer,
    batcher: Batcher<'a>,
    device: Device,
    /// the current phase's peak rates, scaled at each step by the schedule
    rates: Option<PhaseRates>,
    /// the step the current phase started at (steps count over all phases)
    phase_start: usize,
    /// the augmentation of labeled images
    policy: AugmentPolicy,
    /// the schedule's factor at the last step, for logs
    factor: f64,
    cache: Option<FrozenCache>,
    /// the rate of the current phase's topmost unfrozen reused block, for logs and the manifest
    reused_lr: Option<f64>,
    records: Vec<PhaseRecord>,
    evaluation: Option<Evaluation>,
}

impl Tuning<'_> {
    fn model(&self) -> &Classifier {
        self.model.as_ref().unwrap_or_else(|| unreachable!("the model is put back after every step"))
    }

    /// Scores the classifier on the evaluation data, when there is some.
    fn evaluate(&self) -> Result<Option<Evaluation>> {
        match self.job.eval {
            Some(data) => Ok(Some(evaluate(self.model(), data, None, self.job.norm, self.job.device)?)),
            None => Ok(None),
        }
    }
}

impl Objective for Tuning<'_> {
    fn begin_phase(&mut self, index: usize, _plan: &PhasePlan) -> Result<()> {
        self.current = index;
        self.phase_start = self.phases[..index].iter().map(|p| p.steps).sum();
        let phase = &self.phases[index];
        let model = apply_freeze(self.model.take().unwrap_or_else(|| unreachable!("the model is always there")), phase);
        self.rates = Some(phase_rates(&model, phase, self.job.cfg.lr));
        let reused = self.job.backbone.reused();
        self.reused_lr = reused.iter().rev().find_map(|&i| phase.block_lr[i]);
        let (job, rows) = (self.job, self.job.rows);
        self.cache =
            FrozenCache::build(job.cfg, job.backbone, phase, &model, &self.batcher, job.train, rows, job.device);
        self.model = Some(model);
        Ok(())
    }

    fn step(&mut self, idx: &[usize], step: usize) -> Result<Figures> {
        let FinetuneJob { cfg, train, .. } = *self.job;
        let model = self.model.take().unwrap_or_else(|| unreachable!("the model is put back after every step"));
        let ad = &self.device;
        let y = self.batcher.labels(idx, ad);
        let logits = if let Some(cache) = &self.cache {
            model.forward_from(cache.depth, cache.batch(idx, step))
        } else if !self.policy.is_identity() {
            // one generator per step, so a resumed run draws the same augmentations
            let mut rng = step_rng(cfg.seed, 0x6175_676d, step as u64);
            let px: Vec<Vec<u8>> =
                idx.iter().map(|&i| self.policy.apply(train.image(i), train.shape, &mut rng)).collect();
            model.forward(self.batcher.inputs_from_pixels(&px, ad))
        } else {
            model.forward(self.batcher.inputs(idx, ad))
        };
        let loss = smoothed_cross_entropy(logits, y, cfg.label_smoothing);
        let value = match checked_loss(&loss, &self.phases[self.current].name, step) {
            Ok(v) => v,
            Err(e) => {
                self.model = Some(model);
                return Err(e);
            }
        };
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let phase_steps = self.phases[self.current].steps;
        let factor = cfg.schedule.factor(cfg.warmup, step - self.phase_start, phase_steps);
        let lr = self.rates.as_ref().map(|r| r.at(factor)).unwrap_or_else(|| unreachable!("begin_phase sets it"));
        self.factor = factor;
        self.model = Some(self.optim.step(lr, model, grads));
        Ok(vec![("loss", f64::from(value))])
    }

    fn end_window(&mut self, window: &Window) -> Result<serde_json::Value> {
        Ok(serde_json::json!({
            "epoch": window.epoch, "lr_head": self.job.cfg.lr * self.factor,
            "lr_backbone": self.reused_lr.map(|lr| lr * self.factor),
        }))
    }

    fn end_phase(&mut self, index: usize, last: &BTreeMap<String, f64>, seconds: f64) -> Result<Option<String>> {
        let phase = &self.phases[index];
        self.evaluation = self.evaluate()?;
        let eval_accuracy = self.evaluation.as_ref().map(|e| e.accuracy);
        let last_loss = last.get("loss").map_or(f32::NAN, |&l| l as f32);
        self.records.push(PhaseRecord {
            name: phase.name.clone(),
            steps: phase.steps,
            backbone_lr: self.reused_lr,
            trainable_blocks: phase.trainable(),
            block_lr: phase.block_lr.clone(),
            head_lr: self.job.cfg.lr,
            final_loss: last_loss,
            eval_accuracy,
            seconds,
        });
        Ok(Some(match eval_accuracy {
            Some(a) => format!("loss {last_loss:.4}, accuracy {:.2}%", 100.0 * a),
            None => format!("loss {last_loss:.4}"),
        }))
    }

    fn save(&self) -> Result<Parts> {
        let mut parts = save_parts(&self.model, &[(OPTIM_PART, &self.optim)])?;
        let records = serde_json::to_vec(&self.records)
            .map_err(|e| TrainError::BadRun { path: RECORDS_PART.into(), reason: e.to_string() })?;
        parts.insert(RECORDS_PART.into(), records);
        Ok(parts)
    }

    fn restore(&mut self, parts: &Parts) -> Result<()> {
        restore_model(&mut self.model, parts)?;
        restore_optim(&mut self.optim, parts, OPTIM_PART)?;
        self.records = serde_json::from_slice(part(parts, RECORDS_PART)?)
            .map_err(|e| TrainError::BadRun { path: RECORDS_PART.into(), reason: format!("checkpoint part: {e}") })?;
        Ok(())
    }

    fn first_nonfinite(&self) -> Option<String> {
        nonfinite(&self.model)
    }
}

/// Trains the classifier of `job` from `init`; `job.eval` is scored after each phase.
/// Checkpoints go to `rec` as its policy says (by default every `max(epoch, 100)` steps and at
/// every phase end); a checkpoint it hands back is continued from, across phase changes.
pub fn finetune(
    init: Init,
    job: &FinetuneJob,
    observer: &mut dyn Observer,
    rec: &mut dyn Recorder,
) -> Result<FinetuneOutcome> {
    let FinetuneJob { cfg, backbone, train, rows, norm, device, .. } = *job;
    cfg.validate_for(backbone.reused().len())?;
    train.require_labels()?;
    let ad = device.clone().autodiff();
    // loaded blocks live on a plain device; train() puts every parameter under autodiff
    let model = build_model(init, job, Batcher::new(train, norm).input_shape(), &ad)?;
    let clusters_needed = |flag: &str, value: String| {
        TrainError::config(
            flag,
            value,
            "needs a parent run with cluster heads (--from RUN of `strata pretrain --method cluster`); the scratch baseline ignores it, but must train (some --frozen-steps or --unfreeze-steps)",
        )
    };
    let model = match (cfg.head_init, job.clusters) {
        (HeadInit::Prototype, _) => prototype::imprint(model, train, norm, rows, device),
        (HeadInit::Clusters, Some(head)) => clusters::imprint(model, head, train, norm, rows, device)?,
        // the scratch baseline has no clusters: its head starts random, and must train
        (HeadInit::Clusters, None) if backbone.is_scratch() && cfg.steps() > 0 => model,
        (HeadInit::Clusters, None) => return Err(clusters_needed("--head-init", "clusters".into())),
        (HeadInit::Random, _) => model,
    };
    // the unlabeled images the cluster readout is sure of join the labeled ones; there are tens
    // of thousands, so their frozen features are not cached (computing them would cost more
    // than the phase)
    let pseudo = match (cfg.cluster_labels > 0.0, job.readout) {
        (true, Some(readout)) => {
            let confidence = (cfg.cluster_labels, cfg.cluster_labels_agree);
            Some(clusters::pseudo_labelled(&model, readout, train, norm, rows, device, confidence)?)
        }
        (true, None) if !backbone.is_scratch() => {
            return Err(clusters_needed("--cluster-labels", cfg.cluster_labels.to_string()));
        }
        _ => None,
    };
    if let Some((data, joined)) = &pseudo {
        let labels = data.require_labels()?;
        if let Some(message) = clusters::imbalance(labels, &joined[rows.len()..], data.num_classes()) {
            let event = Event::Warning { phase: "cluster labels".into(), message };
            rec.record(&event)?;
            observer.event(event);
        }
    }
    let job_rows = rows.len();
    let uncached = FinetuneConfig { no_feature_cache: true, ..cfg.clone() };
    let shared = pseudo
        .as_ref()
        .map(|(data, all)| (data, clusters::with_labeled_share(rows, &all[job_rows..], cfg.labeled_share)));
    let widened;
    let job = match &shared {
        Some((data, rows)) => {
            widened = FinetuneJob { cfg: &uncached, train: data, rows, ..*job };
            &widened
        }
        None => job,
    };
    let FinetuneJob { cfg, train, rows, .. } = *job;
    let batcher = Batcher::new(train, norm);
    let model = model.train();
    let phases = plan(cfg, backbone);
    let steps_per_epoch = Plan::steps_per_epoch(rows.len(), cfg.batch);
    let engine_plan = Plan {
        phases: phases.iter().map(|p| PhasePlan { name: p.name.clone(), steps: p.steps }).collect(),
        rows: rows.to_vec(),
        batch: cfg.batch,
        seed: cfg.seed,
        min_batch: 0,
        window: steps_per_epoch.max(20),
        checkpoint_every: Some(steps_per_epoch.max(100)),
        checkpoint_windows: false,
    };
    let mut tuning = Tuning {
        job,
        phases,
        current: 0,
        model: Some(model),
        optim: cfg.optim().build(),
        batcher,
        device: ad,
        rates: None,
        phase_start: 0,
        policy: cfg.augmentation(),
        factor: 1.0,
        cache: None,
        reused_lr: None,
        records: Vec::new(),
        evaluation: None,
    };
    engine::run(&engine_plan, &mut tuning, observer, rec)?;
    let evaluation = match tuning.evaluation.take() {
        Some(e) => Some(e),
        // resumed after the last phase's evaluation was taken: score again (same weights)
        None => tuning.evaluate()?,
    };
    let model = tuning.model.take().unwrap_or_else(|| unreachable!("the model is put back after every step"));
    let cluster_labelled = pseudo.as_ref().map(|(_, rows)| rows.len() - job_rows);
    Ok(FinetuneOutcome { model: model.valid(), phases: tuning.records, evaluation, cluster_labelled })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::cluster::ClusterNet;
    use crate::progress::Silent;
    use burn::nn::LinearConfig;
    use burn::optim::SgdConfig;
    use burn::tensor::Tensor;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use strata_data::ImageShape;
    use strata_nn::ArchSpec;
    use strata_nn::block::build_stack;
    use strata_nn::{FeatureShape, Features, seeded, weights};

    const INPUT: InputShape = InputShape { channels: 1, height: 8, width: 8 };
    const ARCH: &str = "conv4-bn-pool,conv4-bn-pool,dense8-bn";

    /// 48 random 8x8 images in two classes that differ in brightness.
    fn toy_data() -> Dataset {
        use rand::Rng;
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let labels: Vec<u32> = (0..48).map(|i| (i % 2) as u32).collect();
        let images = labels
            .iter()
            .flat_map(|&l| (0..64).map(|_| rng.random_range(0..128u8) + 100 * l as u8).collect::<Vec<_>>())
            .collect();
        Dataset {
            images,
            shape: ImageShape::new(1, 8, 8),
            labels: Some(labels),
            class_names: vec!["dark".into(), "bright".into()],
            source: "toy".into(),
        }
    }

    fn parent_blocks(device: &Device) -> Vec<Block> {
        let arch = ArchSpec::parse(ARCH).unwrap();
        seeded(device, 3, || build_stack(&arch.blocks, FeatureShape::Map(1, 8, 8), device).unwrap())
    }

    /// Small settings: 4 frozen + 4 unfrozen steps of 8 images.
    fn config() -> FinetuneConfig {
        FinetuneConfig { batch: 8, lr: 1e-2, seed: 1, frozen_steps: 4, unfreeze_steps: 4, ..Default::default() }
    }

    fn backbone(cfg: &FinetuneConfig) -> BackbonePlan {
        BackbonePlan::from_parent(&ArchSpec::parse(ARCH).unwrap(), &cfg.surgery(), INPUT).unwrap()
    }

    fn head() -> HeadSpec {
        HeadSpec::new(vec![], 2).unwrap()
    }

    fn run(cfg: &FinetuneConfig, blocks: Vec<Block>) -> FinetuneOutcome {
        let data = toy_data();
        let norm = Normalization::fit(&data);
        let rows: Vec<usize> = (0..data.len()).collect();
        let device = Device::default();
        let (backbone, head) = (backbone(cfg), head());
        let job = FinetuneJob {
            cfg,
            backbone: &backbone,
            head: &head,
            train: &data,
            rows: &rows,
            norm: &norm,
            device: &device,
            eval: None,
            clusters: None,
            readout: None,
        };
        finetune(Init::Pretrained(blocks), &job, &mut Silent, &mut crate::recorder::Discard).unwrap()
    }

    #[test]
    fn cached_frozen_features_give_the_same_weights_bit_for_bit() {
        // batch-norm blocks frozen on running statistics, a frozen prefix of 2 then 1 block
        let device = Device::default();
        let mut cfg =
            FinetuneConfig { add_hidden: Some(ArchSpec::parse("dense4").unwrap()), no_augment: true, ..config() };
        cfg.unfreeze_top = 2;
        cfg.unfreeze_every = Some(2);
        let cached = run(&cfg, parent_blocks(&device));
        cfg.no_feature_cache = true;
        let plain = run(&cfg, parent_blocks(&device));
        assert_eq!(weights::to_bytes(&cached.model).unwrap(), weights::to_bytes(&plain.model).unwrap());
        assert_eq!(
            cached.phases.iter().map(|p| p.final_loss).collect::<Vec<_>>(),
            plain.phases.iter().map(|p| p.final_loss).collect::<Vec<_>>()
        );
        // with augmentation the cache holds `cache_draws` draws of each image, or nothing at 0
        cfg.no_feature_cache = false;
        cfg.no_augment = false;
        let (data, plan_of) = (toy_data(), backbone(&cfg));
        let norm = Normalization::fit(&data);
        let batcher = Batcher::new(&data, &norm);
        let frozen = &plan(&cfg, &plan_of)[0];
        let build = |c: &FinetuneConfig| {
            FrozenCache::build(c, &plan_of, frozen, &cached.model, &batcher, &data, &[0, 1, 2], &device)
        };
        cfg.cache_draws = 0;
        assert!(build(&cfg).is_none());
        cfg.cache_draws = 4;
        let (a, b) = (build(&cfg).unwrap(), build(&cfg).unwrap());
        let values = |f: Features| f.flat().into_data().try_into_vec::<f32>().unwrap();
        assert_eq!(values(a.batch(&[0, 1, 2], 7)), values(b.batch(&[0, 1, 2], 7)));
        // other steps pick other draws of the same images
        assert!((0..10).any(|s| values(a.batch(&[0, 1, 2], s)) != values(a.batch(&[0, 1, 2], 7))));
    }

    #[test]
    fn gradual_unfreezing_with_discriminative_rates() {
        let mut cfg = FinetuneConfig { add_hidden: Some(ArchSpec::parse("dense4").unwrap()), ..config() };
        cfg.unfreeze_top = 3;
        cfg.unfreeze_every = Some(1);
        cfg.lr_decay = 0.5;
        cfg.validate_for(3).unwrap();
        let phases = plan(&cfg, &backbone(&cfg));
        let names: Vec<&str> = phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["frozen", "unfrozen-1", "unfrozen-2", "unfrozen-3"]);
        assert_eq!(phases.iter().map(|p| p.steps).collect::<Vec<_>>(), [4, 1, 1, 2]);
        // the added block 3 always trains at the head's rate; reused ones join from the top down
        let (lr, top) = (1e-2, 1e-3);
        assert_eq!(phases[0].block_lr, [None, None, None, Some(lr)]);
        assert_eq!(phases[1].block_lr, [None, None, Some(top), Some(lr)]);
        assert_eq!(phases[3].block_lr, [Some(top * 0.25), Some(top * 0.5), Some(top), Some(lr)]);
        cfg.unfreeze_every = Some(2);
        let e = cfg.validate_for(3).unwrap_err().to_string();
        assert!(e.contains("--unfreeze-every"), "{e}");
    }

    #[test]
    fn reused_update_is_lr_mult_times_the_head_update_under_sgd() {
        let device = Device::default().autodiff();
        let cfg = FinetuneConfig { lr_mult: 0.25, ..config() };
        let plan_of = backbone(&cfg);
        let phases = plan(&cfg, &plan_of);
        let unfrozen = &phases[1];
        let (rows, data, head) = ([0usize], toy_data(), head());
        let norm = Normalization::fit(&data);
        let job = FinetuneJob {
            cfg: &cfg,
            backbone: &plan_of,
            head: &head,
            train: &data,
            rows: &rows,
            norm: &norm,
            device: &device,
            eval: None,
            clusters: None,
            readout: None,
        };
        let model = build_model(Init::Pretrained(parent_blocks(&device)), &job, INPUT, &device).unwrap().train();
        let model = apply_freeze(model, unfrozen);
        let weight = |m: &Classifier, head: bool| {
            let block = if head { &m.head[0] } else { &m.backbone[2] };
            block.linear.as_ref().unwrap().weight.val()
        };
        // d(loss)/d(w) = 1 for every weight of both layers: a known gradient
        let loss = weight(&model, false).sum() + weight(&model, true).sum();
        let before = (weight(&model, false).inner(), weight(&model, true).inner());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let mut optim = SgdConfig::new().init();
        let model = optim.step(phase_rates(&model, unfrozen, cfg.lr).at(1.0), model, grads);
        let delta = |after: Tensor<2>, before: Tensor<2>| -> f32 { (before - after).mean().into_scalar() };
        let reused = delta(weight(&model, false).inner(), before.0);
        let head = delta(weight(&model, true).inner(), before.1);
        assert!((head - 1e-2).abs() < 1e-7, "head moved by {head}");
        assert!((reused - 0.25 * 1e-2).abs() < 1e-7, "reused block moved by {reused}");
        // the blocks frozen in this phase got no gradient at all
        assert!(!model.backbone[0].conv.as_ref().unwrap().weight.val().is_require_grad());
    }

    #[test]
    fn replaced_and_added_blocks_train_from_the_start() {
        let device = Device::default();
        let blocks = parent_blocks(&device);
        let cfg = FinetuneConfig {
            drop_top: 1,
            replace_top: 1,
            add_hidden: Some(ArchSpec::parse("dense6").unwrap()),
            unfreeze_steps: 0,
            ..config()
        };
        let kept = blocks[..2].to_vec();
        let out = run(&cfg, kept.clone());
        assert_eq!(out.model.backbone.len(), 3);
        assert_eq!(weights::to_bytes(&out.model.backbone[0]).unwrap(), weights::to_bytes(&kept[0]).unwrap());
        // block 1 has the parent's shape but not its weights
        let table = |b: &Block| weights::layer_table(b).into_iter().map(|l| (l.name, l.shape)).collect::<Vec<_>>();
        assert_eq!(table(&out.model.backbone[1]), table(&kept[1]));
        assert_ne!(weights::snapshot(&out.model.backbone[1]), weights::snapshot(&kept[1]));
        assert_eq!(out.phases[0].trainable_blocks, vec![1, 2]);
        // param count: conv4(1→4,3x3)+bn, conv4(4→4)+bn, dense 16→6, head 6→2
        let count: usize =
            weights::layer_table(&out.model).iter().filter(|l| !l.name.contains("running")).map(|l| l.numel).sum();
        assert_eq!(count, (36 + 4 + 8) + (144 + 4 + 8) + (16 * 6 + 6) + (6 * 2 + 2));
    }

    /// Sub-head `kept` of a seeded cluster run's `sub_heads` heads of `k` clusters on `blocks`.
    fn cluster_head(blocks: &[Block], seed: u64, sub_heads: usize, k: usize, kept: usize) -> ClusterHead {
        let device = Device::default();
        let net = seeded(&device, seed, || ClusterNet {
            backbone: blocks.to_vec(),
            cluster_heads: LinearConfig::new(8, sub_heads * k).init(&device),
            overcluster_heads: None,
        });
        ClusterHead::load(&weights::to_bytes(&net).unwrap(), "m".as_ref(), kept, sub_heads).unwrap()
    }

    #[test]
    fn the_cluster_head_starts_as_the_clusters_named_by_the_labels() {
        let device = Device::default();
        let blocks = parent_blocks(&device);
        // a cluster run's weights: 2 sub-heads of 2 clusters on the 8 features, head 1 kept
        let head = cluster_head(&blocks, 9, 2, 2, 1);
        let (data, cfg) = (toy_data(), FinetuneConfig { head_init: HeadInit::Clusters, ..config() });
        let norm = Normalization::fit(&data);
        let rows: Vec<usize> = (0..data.len()).collect();
        let (plan_of, head_spec) = (backbone(&cfg), self::head());
        let job = FinetuneJob {
            cfg: &cfg,
            backbone: &plan_of,
            head: &head_spec,
            train: &data,
            rows: &rows,
            norm: &norm,
            device: &device,
            eval: None,
            clusters: Some(&head),
            readout: None,
        };
        let model = build_model(Init::Pretrained(blocks.clone()), &job, INPUT, &device).unwrap();
        let model = clusters::imprint(model, &head, &data, &norm, &rows, &device).unwrap();
        // the clusters of each image, named by the matching of clusters to labels
        let assigned = head.assign(&crate::probe::features(&blocks, &data, &rows, &norm, &device)).unwrap();
        let labels = data.labels.as_ref().unwrap();
        let mut counts = vec![vec![0i64; 2]; 2];
        for (&r, &c) in rows.iter().zip(&assigned) {
            counts[labels[r] as usize][c] += 1;
        }
        let class_of = clusters::matching(&counts);
        let named: Vec<usize> = assigned.iter().map(|&c| class_of.iter().position(|&k| k == c).unwrap()).collect();
        let predicted = crate::probe::features(&[model.backbone, model.head].concat(), &data, &rows, &norm, &device);
        let argmax: Vec<usize> =
            (0..predicted.rows()).map(|r| if predicted.row(r)[1] > predicted.row(r)[0] { 1 } else { 0 }).collect();
        assert_eq!(argmax, named);
        // a head of another width, or hidden head layers, are refused naming the flag
        let wide = FinetuneConfig { head: "4".parse().unwrap(), ..cfg.clone() };
        assert!(wide.validate().unwrap_err().to_string().contains("--head"));
        let three = cluster_head(&blocks, 9, 1, 3, 0);
        let model = build_model(Init::Pretrained(blocks), &job, INPUT, &device).unwrap();
        let e = clusters::imprint(model, &three, &data, &norm, &rows, &device).unwrap_err().to_string();
        assert!(e.contains("--clusters 2"), "{e}");
    }

    #[test]
    fn unlabeled_images_the_readout_is_sure_of_join_as_the_class_it_reads() {
        let device = Device::default();
        let blocks = parent_blocks(&device);
        // a cluster run's weights: main heads (2 sub-heads of 2) and over-clustering ones (2 of 4)
        let net = seeded(&device, 4, || ClusterNet {
            backbone: blocks.to_vec(),
            cluster_heads: LinearConfig::new(8, 2 * 2).init(&device),
            overcluster_heads: Some(LinearConfig::new(8, 2 * 4).init(&device)),
        });
        let readout = ClusterReadout::load(&weights::to_bytes(&net).unwrap(), "m".as_ref(), 2).unwrap();
        let (data, cfg) = (toy_data(), FinetuneConfig { cluster_labels: 0.5, ..config() });
        let norm = Normalization::fit(&data);
        let labeled = [0usize, 1, 2, 3, 4, 5];
        let (plan_of, head_spec) = (backbone(&cfg), self::head());
        let job = FinetuneJob {
            cfg: &cfg,
            backbone: &plan_of,
            head: &head_spec,
            train: &data,
            rows: &labeled,
            norm: &norm,
            device: &device,
            eval: None,
            clusters: None,
            readout: Some(&readout),
        };
        let model = build_model(Init::Pretrained(blocks.clone()), &job, INPUT, &device).unwrap();
        let truth = data.labels.clone().unwrap();
        let features = |rows: &[usize]| crate::probe::features(&blocks, &data, rows, &norm, &device);
        let seen: Vec<u32> = labeled.iter().map(|&r| truth[r]).collect();
        let every: Vec<usize> = (0..data.len()).collect();
        let read = readout.fit(&features(&labeled), &seen, 2).unwrap().predict(&features(&every)).unwrap();
        // a threshold at the median confidence: about half of the others join
        let mut p: Vec<f32> = read.iter().map(|s| s.1).collect();
        p.sort_by(f32::total_cmp);
        let t = f64::from(p[p.len() / 2]);
        let (relabeled, rows) =
            clusters::pseudo_labelled(&model, &readout, &data, &norm, &labeled, &device, (t, false)).unwrap();
        let got = relabeled.labels.unwrap();
        assert_eq!(&rows[..6], &labeled, "the labeled rows come first");
        for r in 0..data.len() {
            if labeled.contains(&r) {
                assert_eq!(got[r], truth[r], "row {r} keeps its true label");
            } else {
                assert_eq!(got[r], read[r].0, "row {r} carries the class read for it, never its true label");
                assert_eq!(rows.contains(&r), f64::from(read[r].1) >= t, "row {r}");
            }
        }
        assert!(rows.len() > 6 && rows.len() < data.len(), "{} rows", rows.len());
        // with agreement, exactly those of them a kNN vote of the labeled rows reads alike
        let labeled_features = features(&labeled);
        let temperature = crate::probe::ProbeConfig::default().temperature;
        let k = crate::probe::choose_k(&labeled_features, &seen, 2, temperature);
        let knn = crate::probe::knn(&labeled_features, &seen, &features(&every), 2, (k, temperature), &device);
        let (_, agreed) =
            clusters::pseudo_labelled(&model, &readout, &data, &norm, &labeled, &device, (t, true)).unwrap();
        let expected: Vec<usize> =
            rows.iter().copied().filter(|&r| labeled.contains(&r) || knn[r] == read[r].0).collect();
        assert_eq!(agreed, expected);
        // the whole stage two runs on them, and is refused without cluster heads
        let out = finetune(Init::Pretrained(blocks.clone()), &job, &mut Silent, &mut crate::recorder::Discard);
        assert!(out.is_ok());
        let e = finetune(
            Init::Pretrained(blocks),
            &FinetuneJob { readout: None, ..job },
            &mut Silent,
            &mut crate::recorder::Discard,
        );
        assert!(e.err().unwrap().to_string().contains("--cluster-labels"));
    }

    #[test]
    fn the_same_seed_gives_the_same_bytes() {
        let device = Device::default();
        let cfg = FinetuneConfig { replace_top: 1, unfreeze_top: 1, ..config() };
        let a = run(&cfg, parent_blocks(&device));
        let b = run(&cfg, parent_blocks(&device));
        assert_eq!(weights::to_bytes(&a.model).unwrap(), weights::to_bytes(&b.model).unwrap());
    }
}
