//! Stage two's inputs loaded once (labeled data, label subset, parent run), and training one
//! configuration on them: what `finetune` runs once and `search` runs for every trial.

use crate::context::{self, input_of, load_data};
use crate::error::{Context, Result, RunError};
use std::path::Path;
use strata_data::{Dataset, Normalization, Split, stratified_fraction, stratified_subset};
use strata_nn::{ArchSpec, HeadSpec, InputShape};
use strata_train::cluster_readout::ClusterReadout;
use strata_train::finetune::FinetuneOutcome;
use strata_train::finetune::HeadInit;
use strata_train::manifest::{BlockRecord, DataRecord, Manifest, ParentRecord, RunKind};
use strata_train::methods::cluster::ClusterHead;
use strata_train::reuse::load_backbone;
use strata_train::{BackbonePlan, DeviceChoice, FinetuneConfig, FinetuneJob, Init, Observer, RunDir, RunWriter};

/// Which of the labeled training images stage two may use.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
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
            (Some(_), Some(_)) => Err(RunError::invalid("give --labels-per-class or --label-fraction, not both")),
            (Some(n), None) => Ok(Self::PerClass(n)),
            (None, Some(f)) => Ok(Self::Fraction(f)),
            (None, None) => Ok(Self::All),
        }
    }

    /// The rows of a data set labeled `labels` (with `classes` classes) this subset keeps.
    pub fn rows(self, labels: &[u32], classes: usize, seed: u64) -> Result<Vec<usize>> {
        Ok(match self {
            Self::PerClass(n) => stratified_subset(labels, classes, n, seed).context("--labels-per-class")?,
            Self::Fraction(f) => stratified_fraction(labels, classes, f, seed).context("--label-fraction")?,
            Self::All => (0..labels.len()).collect(),
        })
    }
}

/// What `plan` and `head` resolved a [`FinetuneConfig`] to for this stage: the classifier
/// one trial or run trains.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// the backbone blocks and where each comes from
    pub backbone: BackbonePlan,
    /// the new head
    pub head: HeadSpec,
}

/// A parent run with its backbone and weights read once.
pub struct Parent {
    /// the run directory
    pub run: RunDir,
    /// its full backbone
    pub arch: ArchSpec,
    /// its weights file, checksum verified
    pub bytes: Vec<u8>,
}

/// Everything stage two reads before training.
pub struct Stage2 {
    /// the parent run (None: from scratch)
    pub parent: Option<Parent>,
    /// labeled training data
    pub train: Dataset,
    /// the SPEC it came from
    pub train_spec: String,
    /// labeled test data, scored after each phase
    pub test: Option<Dataset>,
    /// the SPEC it came from
    pub test_spec: Option<String>,
    /// the training rows stage two may use (the label subset)
    pub rows: Vec<usize>,
    /// how they were chosen
    pub labels: LabelSubset,
    /// the classes kept (`--classes`), when not all
    pub classes: Option<String>,
    /// image shape
    pub input: InputShape,
    /// the device
    pub device: burn::tensor::Device,
    /// its name
    pub choice: DeviceChoice,
    /// normalisation fitted on the training images, for classifiers without a parent
    scratch_norm: Normalization,
}

impl Stage2 {
    /// Opens the parent, loads the data (only the `classes`, when given) and draws the label
    /// subset with `seed`.
    pub fn load(
        from: Option<&Path>,
        train_spec: &str,
        test_spec: Option<&str>,
        classes: Option<&str>,
        labels: LabelSubset,
        seed: u64,
        device: &str,
    ) -> Result<Self> {
        let (choice, device) = context::device(device)?;
        let parent = match from {
            Some(p) => {
                let run = context::open_run(p)?;
                let arch = ArchSpec::parse(&run.manifest.arch)
                    .with_context(|| format!("run {}: manifest field `arch`", run.path.display()))?;
                let bytes = run.weights_bytes()?;
                Some(Parent { run, arch, bytes })
            }
            None => None,
        };
        let pick = |d: strata_data::Dataset, flag: &str, spec: &str| -> Result<strata_data::Dataset> {
            match classes {
                Some(c) => d.select_classes(c).with_context(|| format!("{flag} {spec}")),
                None => Ok(d),
            }
        };
        let train = pick(load_data(train_spec, "--train", true, Split::Train)?, "--train", train_spec)?;
        let test = match test_spec {
            Some(spec) => {
                let t = pick(load_data(spec, "--test", true, Split::Test)?, "--test", spec)?;
                train.check_same_classes(&t).with_context(|| format!("--train {train_spec} vs --test {spec}"))?;
                Some(t)
            }
            None => None,
        };
        let rows = labels.rows(train.require_labels()?, train.num_classes(), seed)?;
        let input = input_of(&train);
        if let Some(p) = &parent
            && p.run.manifest.input != input
        {
            return Err(RunError::invalid(format!(
                "--train {train_spec} has images of shape {input} but parent run {} was trained on {}; use data of the same size and channels",
                p.run.path.display(),
                p.run.manifest.input
            )));
        }
        let scratch_norm = Normalization::fit(&train);
        Ok(Self {
            parent,
            train,
            train_spec: train_spec.into(),
            test,
            test_spec: test_spec.map(str::to_string),
            rows,
            labels,
            classes: classes.map(str::to_string),
            input,
            device,
            choice,
            scratch_norm,
        })
    }

    /// The classifier `cfg` makes of the parent's backbone (its surgery) with a head for this
    /// data; without a parent, or with `scratch`, of `scratch_arch` with every block fresh.
    pub fn resolve(&self, cfg: &FinetuneConfig, scratch_arch: &ArchSpec, scratch: bool) -> Result<Resolved> {
        let surgery = cfg.surgery();
        let backbone = match &self.parent {
            Some(p) if !scratch => BackbonePlan::from_parent(&p.arch, &surgery, self.input)?,
            Some(p) => BackbonePlan::scratch(BackbonePlan::from_parent(&p.arch, &surgery, self.input)?.arch),
            None => BackbonePlan::scratch(BackbonePlan::from_parent(scratch_arch, &surgery, self.input)?.arch),
        };
        let head = HeadSpec::new(cfg.head.0.clone(), self.train.num_classes()).context("--head")?;
        Ok(Resolved { backbone, head })
    }

    /// The input normalisation of a classifier on `plan`: the parent's when it reuses blocks,
    /// whose weights expect inputs normalised as in their own training.
    pub fn norm(&self, plan: &BackbonePlan) -> &Normalization {
        match &self.parent {
            Some(p) if !plan.is_scratch() => &p.run.manifest.normalization,
            _ => &self.scratch_norm,
        }
    }

    /// Trains `cfg` as `model` on `rows` of the training data; `eval` is scored after each phase.
    pub fn train(
        &self,
        cfg: &FinetuneConfig,
        model: &Resolved,
        rows: &[usize],
        eval: Option<&Dataset>,
        observer: &mut dyn Observer,
        log: &mut dyn strata_train::Recorder,
    ) -> strata_train::Result<FinetuneOutcome> {
        let plan = &model.backbone;
        let init = match &self.parent {
            Some(p) if !plan.is_scratch() => Init::Pretrained(load_backbone(
                p.bytes.clone(),
                &p.run.weights_path(),
                &p.arch,
                self.input,
                plan.parent_blocks(),
                &self.device,
            )?),
            _ => Init::Scratch,
        };
        let clusters = match &self.parent {
            Some(p) if cfg.head_init == HeadInit::Clusters && !plan.is_scratch() => {
                Some(ClusterHead::of_run(&p.bytes, &p.run.weights_path(), &p.run.manifest)?)
            }
            _ => None,
        };
        let readout = match &self.parent {
            Some(p) if cfg.cluster_labels > 0.0 && !plan.is_scratch() => {
                Some(ClusterReadout::of_run(&p.bytes, &p.run.weights_path(), &p.run.manifest)?)
            }
            _ => None,
        };
        let job = FinetuneJob {
            cfg,
            backbone: plan,
            head: &model.head,
            train: &self.train,
            rows,
            norm: self.norm(plan),
            device: &self.device,
            eval,
            clusters: clusters.as_ref(),
            readout: readout.as_ref(),
        };
        strata_train::finetune(init, &job, observer, log)
    }

    /// The manifest of a classifier run trained on this stage with `cfg`.
    pub fn manifest(
        &self,
        cfg: &FinetuneConfig,
        model: &Resolved,
        outcome: &FinetuneOutcome,
        extra: RunInfo,
    ) -> Manifest {
        let plan = &model.backbone;
        let parent = self.parent.as_ref().filter(|_| !plan.is_scratch());
        let blocks = plan
            .arch
            .blocks
            .iter()
            .zip(&plan.origins)
            .enumerate()
            .map(|(i, (b, o))| BlockRecord {
                index: i,
                spec: b.to_string(),
                origin: *o,
                frozen_in: outcome
                    .phases
                    .iter()
                    .filter(|p| !p.trainable_blocks.contains(&i))
                    .map(|p| p.name.clone())
                    .collect(),
            })
            .collect();
        let mut metrics = extra.metrics;
        if let Some(n) = outcome.cluster_labelled {
            metrics["cluster_labelled_images"] = serde_json::json!(n);
        }
        for p in &outcome.phases {
            if let Some(a) = p.eval_accuracy {
                metrics[format!("{}_accuracy_after_{}", extra.eval_name, p.name)] = serde_json::json!(a);
            }
        }
        let kind = extra.kind.unwrap_or(if parent.is_some() { RunKind::Finetune } else { RunKind::Scratch });
        let record = DataRecord {
            spec: self.train_spec.clone(),
            fingerprint: self.train.fingerprint(),
            images: self.train.len(),
            class_names: self.train.class_names.clone(),
            label_indices: (self.labels != LabelSubset::All || extra.rows_subset).then(|| extra.rows.clone()),
        };
        Manifest {
            command_line: extra.argv,
            seed: cfg.seed,
            device: self.choice.to_string(),
            config: serde_json::json!({
                "from": parent.map(|p| p.run.path.display().to_string()),
                "train": self.train_spec, "test": self.test_spec, "labels": self.labels,
                "classes": self.classes,
                "finetune": cfg, "search": extra.search,
            }),
            arch: plan.arch.to_string(),
            head: Some(model.head.clone()),
            parent: parent.map(|p| ParentRecord {
                path: p.run.path.display().to_string(),
                weights_sha256: p.run.manifest.weights.sha256.clone(),
                arch: p.arch.to_string(),
                reused_blocks: plan.reused().len(),
            }),
            blocks,
            phases: outcome.phases.clone(),
            metrics,
            ..Manifest::new(kind, record, self.input, self.norm(plan).clone())
        }
    }
}

/// What a manifest needs beyond the stage and the outcome.
pub struct RunInfo {
    /// argv of the command
    pub argv: Vec<String>,
    /// figures so far (seconds, test scores)
    pub metrics: serde_json::Value,
    /// name of the set scored after each phase (`test` or `validation`)
    pub eval_name: &'static str,
    /// the training rows used
    pub rows: Vec<usize>,
    /// true when `rows` is a subset of the label subset (search holds some out)
    pub rows_subset: bool,
    /// the search that chose this run, if any
    pub search: Option<serde_json::Value>,
    /// the run kind, when not the one the parent implies (`train`)
    pub kind: Option<RunKind>,
}

/// Writes a finished classifier: evaluation (when given), manifest, weights.
pub fn write_classifier(
    writer: RunWriter,
    manifest: Manifest,
    outcome: &FinetuneOutcome,
    test: Option<&strata_train::Evaluation>,
) -> Result<RunDir> {
    if let Some(e) = test {
        writer.write_file("evaluation.json", &serde_json::to_vec_pretty(e)?)?;
    }
    let bytes = strata_nn::weights::to_bytes(&outcome.model)?;
    Ok(writer.finish(manifest, &bytes)?)
}
