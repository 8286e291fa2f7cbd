//! The two stages as plain functions: what the commands, the demo and the examples call.

use crate::context::{self, input_of, load_data, now_unix};
use anyhow::{Context, Result};
use std::path::PathBuf;
use strata_data::{Normalization, Split, stratified_fraction, stratified_subset};
use strata_nn::{ArchSpec, HeadSpec};
use strata_train::evaluate::Evaluation;
use strata_train::finetune::PhaseRecord;
use strata_train::manifest::{BlockRecord, DataRecord, Manifest, ParentRecord, RunKind, SCHEMA_VERSION, WeightsRecord};
use strata_train::reuse::load_backbone;
use strata_train::{FinetuneConfig, Init, Observer, PretrainConfig, RunDir, RunWriter, method_by_name};

/// Everything `strata pretrain` needs.
#[derive(Debug, Clone)]
pub struct PretrainRequest {
    /// unlabeled data SPEC
    pub data: String,
    /// method name (`ae`, `dae`)
    pub method: String,
    /// run directory to create
    pub out: PathBuf,
    /// replace an existing run directory
    pub force: bool,
    /// use at most this many images (a seeded sample), for quick trials
    pub max_images: Option<usize>,
    /// training settings
    pub cfg: PretrainConfig,
    /// `--device`
    pub device: String,
    /// argv, for the manifest
    pub argv: Vec<String>,
}

fn empty_weights() -> WeightsRecord {
    WeightsRecord { file: String::new(), sha256: String::new(), bytes: 0 }
}

/// Stage one.
pub fn pretrain(req: &PretrainRequest, observer: &mut dyn Observer) -> Result<RunDir> {
    let method = method_by_name(&req.method)?;
    // settings first: a typo should not cost a data load
    req.cfg.validate()?;
    let (choice, device) = context::device(&req.device)?;
    let mut writer = RunWriter::create(&req.out, req.force)?;
    let mut data = load_data(&req.data, "--data", false, Split::Train)?.unlabeled();
    if let Some(n) = req.max_images.filter(|&n| n < data.len()) {
        let order = strata_data::epoch_order(data.len(), req.cfg.seed, u64::MAX);
        let mut keep: Vec<usize> = order.into_iter().take(n).collect();
        keep.sort_unstable();
        data = data.subset(&keep);
    }
    let input = input_of(&data);
    req.cfg.arch.shapes(input).context("--arch")?;
    let norm = Normalization::fit(&data);
    let started = std::time::Instant::now();
    let outcome = method.pretrain(&data, &norm, &req.cfg, &device, observer, &mut |v| writer.log(&v))?;
    let mut metrics = outcome.metrics;
    metrics["total_seconds"] = serde_json::json!(started.elapsed().as_secs_f64());
    let manifest = Manifest {
        schema_version: SCHEMA_VERSION,
        strata_version: env!("CARGO_PKG_VERSION").into(),
        kind: RunKind::Pretrain,
        method: Some(method.name().into()),
        created_unix: now_unix(),
        command_line: req.argv.clone(),
        seed: req.cfg.seed,
        device: choice.to_string(),
        config: serde_json::json!({ "method": method.name(), "data": req.data, "max_images": req.max_images, "train": req.cfg }),
        data: DataRecord {
            spec: req.data.clone(),
            fingerprint: data.fingerprint(),
            images: data.len(),
            class_names: vec![],
            label_indices: None,
        },
        input,
        arch: req.cfg.arch.to_string(),
        head: None,
        normalization: norm,
        parent: None,
        blocks: req
            .cfg
            .arch
            .blocks
            .iter()
            .enumerate()
            .map(|(i, b)| BlockRecord { index: i, spec: b.to_string(), origin: "fresh".into(), frozen_in: vec![] })
            .collect(),
        phases: vec![],
        weights: empty_weights(),
        metrics,
    };
    Ok(writer.finish(manifest, &outcome.weights)?)
}

/// Which of the labeled training images stage two may use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LabelSubset {
    /// every labeled image
    All,
    /// a stratified, seeded subset of N images per class
    PerClass(usize),
    /// a stratified, seeded fraction of each class (at least one image per class)
    Fraction(f64),
}

impl LabelSubset {
    /// From `--labels-per-class` and `--label-fraction` (at most one may be given).
    pub fn from_flags(per_class: Option<usize>, fraction: Option<f64>) -> Result<Self> {
        match (per_class, fraction) {
            (Some(_), Some(_)) => anyhow::bail!("give --labels-per-class or --label-fraction, not both"),
            (Some(n), None) => Ok(Self::PerClass(n)),
            (None, Some(f)) => Ok(Self::Fraction(f)),
            (None, None) => Ok(Self::All),
        }
    }
}

/// Everything `strata finetune` needs.
#[derive(Debug, Clone)]
pub struct FinetuneRequest {
    /// parent run, or None for the from-scratch baseline
    pub from: Option<PathBuf>,
    /// labeled training data SPEC
    pub train: String,
    /// optional labeled test data SPEC, scored after each phase and at the end
    pub test: Option<String>,
    /// which labeled images to train on
    pub labels: LabelSubset,
    /// reused blocks (None: all of the parent's; scratch: all of `arch`)
    pub reuse: Option<usize>,
    /// backbone of a scratch run
    pub arch: ArchSpec,
    /// hidden layers of the head
    pub head_hidden: Vec<usize>,
    /// settings; `arch` and `head` inside are filled in here
    pub batch: usize,
    /// head learning rate
    pub lr: f64,
    /// seed of the label subset, head init, data order
    pub seed: u64,
    /// steps with reused blocks frozen
    pub frozen_steps: usize,
    /// steps after unfreezing
    pub unfreeze_steps: usize,
    /// top reused blocks to unfreeze
    pub unfreeze_top: usize,
    /// their learning-rate multiplier
    pub lr_mult: f64,
    /// random translation (pixels) of labeled images
    pub augment_shift: usize,
    /// run directory to create
    pub out: PathBuf,
    /// replace an existing run directory
    pub force: bool,
    /// `--device`
    pub device: String,
    /// argv, for the manifest
    pub argv: Vec<String>,
}

/// What stage two produced.
pub struct FinetuneResult {
    /// the run directory
    pub run: RunDir,
    /// score on `--test`, when given
    pub test: Option<Evaluation>,
    /// phase history
    pub phases: Vec<PhaseRecord>,
}

/// Stage two (or the scratch baseline when `from` is None).
pub fn finetune(req: &FinetuneRequest, observer: &mut dyn Observer) -> Result<FinetuneResult> {
    strata_train::step::validate_optim(req.batch, req.lr)?;
    let (choice, device) = context::device(&req.device)?;
    let parent = match &req.from {
        Some(p) => Some(context::open_run(p)?),
        None => None,
    };
    let mut writer = RunWriter::create(&req.out, req.force)?;
    let train = load_data(&req.train, "--train", true, Split::Train)?;
    let test = match &req.test {
        Some(spec) => {
            let t = load_data(spec, "--test", true, Split::Test)?;
            train.check_same_classes(&t).with_context(|| format!("--train {} vs --test {spec}", req.train))?;
            Some(t)
        }
        None => None,
    };
    let labels = train.require_labels()?;
    let rows: Vec<usize> = match req.labels {
        LabelSubset::PerClass(n) => {
            stratified_subset(labels, train.num_classes(), n, req.seed).context("--labels-per-class")?
        }
        LabelSubset::Fraction(f) => {
            stratified_fraction(labels, train.num_classes(), f, req.seed).context("--label-fraction")?
        }
        LabelSubset::All => (0..train.len()).collect(),
    };
    let input = input_of(&train);
    let (full_arch, norm, init, parent_record) = match &parent {
        Some(run) => {
            let m = &run.manifest;
            if m.input != input {
                anyhow::bail!(
                    "--train {} has images of shape {} but parent run {} was trained on {}; use data of the same size and channels",
                    req.train,
                    input,
                    run.path.display(),
                    m.input
                );
            }
            let arch = ArchSpec::parse(&m.arch)?;
            let k = req.reuse.unwrap_or(arch.blocks.len());
            arch.lower(k).context("--reuse")?;
            let bytes = run.weights_bytes()?;
            let blocks = load_backbone(bytes, &run.weights_path(), &arch, input, k, &device)?;
            let parent_record = ParentRecord {
                path: run.path.display().to_string(),
                weights_sha256: m.weights.sha256.clone(),
                arch: m.arch.clone(),
                reused_blocks: k,
            };
            // the reused blocks expect inputs normalised as in their own training
            (arch, m.normalization.clone(), Init::Pretrained(blocks), Some(parent_record))
        }
        None => (req.arch.clone(), Normalization::fit(&train), Init::Scratch, None),
    };
    let k = req.reuse.unwrap_or(full_arch.blocks.len());
    let arch = full_arch.lower(k).context("--reuse")?;
    arch.shapes(input).context("--arch")?;
    let head = HeadSpec::new(req.head_hidden.clone(), train.num_classes()).context("--head")?;
    let cfg = FinetuneConfig {
        arch: arch.clone(),
        head: head.clone(),
        batch: req.batch,
        lr: req.lr,
        seed: req.seed,
        frozen_steps: req.frozen_steps,
        unfreeze_steps: req.unfreeze_steps,
        unfreeze_top: req.unfreeze_top.min(k),
        lr_mult: req.lr_mult,
        augment_shift: req.augment_shift,
    };
    let started = std::time::Instant::now();
    let outcome =
        strata_train::finetune(init, &cfg, &train, &rows, &norm, &device, test.as_ref(), observer, &mut |v| {
            writer.log(&v)
        })?;
    let seconds = started.elapsed().as_secs_f64();
    // scored after the last phase by finetune itself
    let test_eval = outcome.evaluation.clone();
    let is_scratch = parent.is_none();
    let blocks = arch
        .blocks
        .iter()
        .enumerate()
        .map(|(i, b)| BlockRecord {
            index: i,
            spec: b.to_string(),
            origin: if is_scratch { "fresh".into() } else { "parent".into() },
            frozen_in: outcome
                .phases
                .iter()
                .filter(|p| !p.trainable_blocks.contains(&i))
                .map(|p| p.name.clone())
                .collect(),
        })
        .collect();
    let mut metrics = serde_json::json!({ "seconds": seconds });
    for p in &outcome.phases {
        if let Some(a) = p.eval_accuracy {
            metrics[format!("test_accuracy_after_{}", p.name)] = serde_json::json!(a);
        }
    }
    if let Some(e) = &test_eval {
        metrics["test_accuracy"] = serde_json::json!(e.accuracy);
        metrics["test_macro_f1"] = serde_json::json!(e.macro_f1);
        writer.write_file("evaluation.json", &serde_json::to_vec_pretty(e)?)?;
    }
    let manifest = Manifest {
        schema_version: SCHEMA_VERSION,
        strata_version: env!("CARGO_PKG_VERSION").into(),
        kind: if is_scratch { RunKind::Scratch } else { RunKind::Finetune },
        method: None,
        created_unix: now_unix(),
        command_line: req.argv.clone(),
        seed: req.seed,
        device: choice.to_string(),
        config: serde_json::json!({
            "from": req.from.as_ref().map(|p| p.display().to_string()),
            "train": req.train, "test": req.test, "labels": format!("{:?}", req.labels),
            "reuse": k, "finetune": cfg,
        }),
        data: DataRecord {
            spec: req.train.clone(),
            fingerprint: train.fingerprint(),
            images: train.len(),
            class_names: train.class_names.clone(),
            label_indices: (req.labels != LabelSubset::All).then(|| rows.clone()),
        },
        input,
        arch: arch.to_string(),
        head: Some(head),
        normalization: norm,
        parent: parent_record,
        blocks,
        phases: outcome.phases.clone(),
        weights: empty_weights(),
        metrics,
    };
    let bytes = strata_nn::weights::to_bytes(&outcome.model)?;
    let run = writer.finish(manifest, &bytes)?;
    Ok(FinetuneResult { run, test: test_eval, phases: outcome.phases })
}
