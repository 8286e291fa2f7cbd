//! The two stages as plain functions: what the commands, the demo and the examples call.

use crate::context::{self, input_of, load_data};
use crate::control::{self, RunControl};
use crate::error::{Context, Result};
pub use crate::stage2::LabelSubset;
use crate::stage2::{RunInfo, Stage2, write_classifier};
use std::path::PathBuf;
use strata_data::{Normalization, Split};
use strata_nn::ArchSpec;
use strata_train::PhaseRecord;
use strata_train::evaluate::Evaluation;
use strata_train::manifest::{BlockRecord, DataRecord, Manifest, RunKind};
use strata_train::{FinetuneConfig, Observer, Origin, PretrainConfig, RunDir, method_by_name};

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
    /// checkpoints, stop flag, resume
    pub control: RunControl,
}

/// An existing complete run at `out` is an error without `--force` (cheap, before any data is read).
fn refuse_existing(out: &std::path::Path, force: bool, control: &RunControl) -> Result<()> {
    if out.exists() && !force && !control.resume {
        return Err(strata_train::TrainError::RunExists { path: out.into() }.into());
    }
    Ok(())
}

/// Stage one.
pub fn pretrain(req: &PretrainRequest, observer: &mut dyn Observer) -> Result<RunDir> {
    let method = method_by_name(&req.method)?;
    // settings first: a typo should not cost a data load
    req.cfg.validate()?;
    let (choice, device) = context::device(&req.device)?;
    // an existing run is found before the data is read; the run directory itself is only
    // staged once the data and settings have passed their checks
    refuse_existing(&req.out, req.force, &req.control)?;
    let data = load_data(&req.data, "--data", req.cfg.siamese.pairs_by_label, Split::Train)?;
    // labels are only read as identities by a siamese run that asks for it
    let mut data = if req.cfg.siamese.pairs_by_label { data } else { data.unlabeled() };
    if let Some(n) = req.max_images.filter(|&n| n < data.len()) {
        let order = strata_data::epoch_order(data.len(), req.cfg.seed, u64::MAX);
        let mut keep: Vec<usize> = order.into_iter().take(n).collect();
        keep.sort_unstable();
        data = data.subset(&keep);
    }
    let input = input_of(&data);
    let arch = method.reused_arch(&req.cfg)?;
    arch.shapes(input).context("--arch")?;
    let norm = Normalization::fit(&data);
    let mut writer = req.control.writer("pretrain", &req.out, req.force, &req.argv)?;
    let started = std::time::Instant::now();
    let outcome = match method.pretrain(&data, &norm, &req.cfg, &device, observer, &mut writer) {
        Ok(o) => o,
        Err(e) => return Err(control::explain(e, &writer, "pretrain")),
    };
    for a in &outcome.artifacts {
        writer.write_file(&a.name, &a.bytes)?;
    }
    writer.write_file("loss.png", &loss_curve(method.name(), writer.lines())?)?;
    let mut metrics = outcome.metrics;
    metrics["total_seconds"] = serde_json::json!(started.elapsed().as_secs_f64());
    let record = DataRecord {
        spec: req.data.clone(),
        fingerprint: data.fingerprint(),
        images: data.len(),
        class_names: vec![],
        label_indices: None,
    };
    let manifest = Manifest {
        method: Some(method.name().into()),
        command_line: req.argv.clone(),
        seed: req.cfg.seed,
        device: choice.to_string(),
        config: serde_json::json!({ "method": method.name(), "data": req.data, "max_images": req.max_images, "train": req.cfg }),
        arch: arch.to_string(),
        blocks: BlockRecord::all(&arch, Origin::Fresh),
        metrics,
        ..Manifest::new(RunKind::Pretrain, record, input, norm)
    };
    Ok(writer.finish(manifest, &outcome.weights)?)
}

/// `loss.png`: every figure whose name mentions a loss, per epoch.
fn loss_curve(method: &str, lines: &[serde_json::Value]) -> Result<Vec<u8>> {
    let mut names: Vec<String> = lines
        .iter()
        .filter_map(|l| l.as_object())
        .flat_map(|o| o.keys().filter(|k| k.contains("loss")).cloned().collect::<Vec<_>>())
        .collect();
    names.sort();
    names.dedup();
    let series = names
        .into_iter()
        .map(|name| strata_viz::Series {
            points: lines.iter().filter_map(|l| Some((l["epoch"].as_f64()?, l[name.as_str()].as_f64()?))).collect(),
            name,
        })
        .collect();
    let plot = strata_viz::Plot {
        title: format!("{method} pretraining"),
        x_label: "epoch".into(),
        y_label: "loss".into(),
        series,
        log_x: false,
        scatter: false,
    };
    Ok(plot.to_png()?)
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
    /// only these classes of the labeled data (`0-7`, `8,9`), relabelled in that order
    pub classes: Option<String>,
    /// which labeled images to train on
    pub labels: LabelSubset,
    /// backbone of a scratch run (the parent's backbone otherwise)
    pub arch: ArchSpec,
    /// the stage-two settings (surgery, head, schedule, seed)
    pub cfg: FinetuneConfig,
    /// run directory to create
    pub out: PathBuf,
    /// replace an existing run directory
    pub force: bool,
    /// `--device`
    pub device: String,
    /// argv, for the manifest
    pub argv: Vec<String>,
    /// the run kind to record, when not implied by `from` (`strata train`)
    pub kind: Option<RunKind>,
    /// checkpoints, stop flag, resume
    pub control: RunControl,
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

impl PretrainRequest {
    /// The `strata pretrain` command line that makes this run (the binary named `strata`).
    pub fn command(&self) -> Vec<String> {
        let mut c: Vec<String> = ["strata", "pretrain", "--data"].map(String::from).into();
        c.extend([self.data.clone(), "--method".into(), self.method.clone()]);
        if let Some(n) = self.max_images {
            c.extend(["--max-images".into(), n.to_string()]);
        }
        c.extend(strata_train::flags::between(&self.cfg, &PretrainConfig::default()));
        c.extend(["--out".into(), self.out.display().to_string(), "-q".into()]);
        c
    }
}

impl FinetuneRequest {
    /// The complete run already at `out` made from the same parent, data, classes, labels,
    /// architecture and stage-two settings, if there is one: what a research script reuses
    /// instead of training again (its own earlier run, or its printed plan run elsewhere).
    pub fn completed(&self) -> Option<RunDir> {
        let run = RunDir::open(&self.out).ok()?;
        let (m, c) = (&run.manifest, &run.manifest.config);
        let same = serde_json::from_value::<FinetuneConfig>(c["finetune"].clone()).ok().as_ref() == Some(&self.cfg)
            && c["from"].as_str().map(PathBuf::from) == self.from
            && c["labels"] == serde_json::to_value(self.labels).ok()?
            && c["classes"].as_str() == self.classes.as_deref()
            && c["train"].as_str() == Some(self.train.as_str())
            && c["test"].as_str() == self.test.as_deref()
            && (self.from.is_some() || m.arch == self.arch.to_string());
        same.then_some(run)
    }

    /// The `strata finetune` command line that makes this run (the binary named `strata`).
    pub fn command(&self) -> Vec<String> {
        let mut c: Vec<String> = ["strata", "finetune", "--from"].map(String::from).into();
        match &self.from {
            Some(p) => c.push(p.display().to_string()),
            None => c.extend(["scratch".into(), "--arch".into(), self.arch.to_string()]),
        }
        c.extend(["--train".into(), self.train.clone()]);
        if let Some(t) = &self.test {
            c.extend(["--test".into(), t.clone()]);
        }
        if let Some(k) = &self.classes {
            c.extend(["--classes".into(), k.clone()]);
        }
        match self.labels {
            LabelSubset::PerClass(n) => c.extend(["--labels-per-class".into(), n.to_string()]),
            LabelSubset::Fraction(f) => c.extend(["--label-fraction".into(), f.to_string()]),
            LabelSubset::All => {}
        }
        c.extend(strata_train::flags::between(&self.cfg, &FinetuneConfig::default()));
        c.extend(["--out".into(), self.out.display().to_string(), "--force".into(), "-q".into()]);
        c
    }
}

/// Stage two (or the scratch baseline when `from` is None).
pub fn finetune(req: &FinetuneRequest, observer: &mut dyn Observer) -> Result<FinetuneResult> {
    let cfg = &req.cfg;
    cfg.validate()?;
    let command = if req.kind == Some(RunKind::Train) { "train" } else { "finetune" };
    refuse_existing(&req.out, req.force, &req.control)?;
    let stage = Stage2::load(
        req.from.as_deref(),
        &req.train,
        req.test.as_deref(),
        req.classes.as_deref(),
        req.labels,
        cfg.seed,
        &req.device,
    )?;
    let model = stage.resolve(cfg, &req.arch, false)?;
    let mut writer = req.control.writer(command, &req.out, req.force, &req.argv)?;
    let started = std::time::Instant::now();
    let outcome = match stage.train(cfg, &model, &stage.rows, stage.test.as_ref(), observer, &mut writer) {
        Ok(o) => o,
        Err(e) => return Err(control::explain(e, &writer, command)),
    };
    // scored after the last phase by finetune itself
    let test = outcome.evaluation.clone();
    let mut metrics = serde_json::json!({ "seconds": started.elapsed().as_secs_f64() });
    if let Some(e) = &test {
        metrics["test_accuracy"] = serde_json::json!(e.accuracy);
        metrics["test_macro_f1"] = serde_json::json!(e.macro_f1);
    }
    let info = RunInfo {
        argv: req.argv.clone(),
        metrics,
        eval_name: "test",
        rows: stage.rows.clone(),
        rows_subset: false,
        search: None,
        kind: req.kind,
    };
    let manifest = stage.manifest(cfg, &model, &outcome, info);
    let run = write_classifier(writer, manifest, &outcome, test.as_ref())?;
    Ok(FinetuneResult { run, test, phases: outcome.phases })
}
