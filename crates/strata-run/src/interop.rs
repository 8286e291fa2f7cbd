//! `strata import` and `strata export`: runs from weights trained elsewhere, and weights a
//! PyTorch user can `load_state_dict`.

use crate::context;
use crate::error::{Context, Result, RunError};
use regex::Regex;
use std::path::{Path, PathBuf};
use strata_data::Normalization;
use strata_nn::block::build_stack;
use strata_nn::interop::{
    Layout, MapRule, MatchReport, from_file, read_pytorch, read_safetensors, to_pytorch, write_safetensors,
};
use strata_nn::{ArchSpec, Backbone, Classifier, FeatureShape, HeadSpec, InputShape, try_seeded, weights};
use strata_train::Origin;
use strata_train::files::{sha256_hex, write_atomic};
use strata_train::manifest::{BlockRecord, DataRecord, Manifest, RunKind};
use strata_train::{RunDir, RunWriter};

/// Everything `strata import` needs.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    /// the weights file (safetensors)
    pub weights: PathBuf,
    /// the backbone those weights are for
    pub arch: ArchSpec,
    /// image shape the network takes
    pub input: InputShape,
    /// the head, when the file holds a whole classifier
    pub head: Option<HeadSpec>,
    /// names and layouts of the file
    pub layout: Layout,
    /// renaming rules `FROM=TO`, first match wins
    pub rules: Vec<String>,
    /// regular expressions of file tensors to leave out
    pub drop: Vec<String>,
    /// model tensors (or prefixes, e.g. `head`) to re-initialise instead of importing
    pub reinit: Vec<String>,
    /// input normalisation the network expects (None: pixels scaled to [0, 1] only)
    pub norm: Option<Normalization>,
    /// run directory to create
    pub out: PathBuf,
    /// replace an existing run directory
    pub force: bool,
    /// argv, for the manifest
    pub argv: Vec<String>,
}

/// Reads a weights file by its extension: `.pt`, `.pth`, `.bin` as PyTorch, else safetensors.
fn read_weights(path: &Path) -> Result<(Vec<u8>, strata_nn::interop::TensorMap)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading --weights {}", path.display()))?;
    let tensors = match path.extension().and_then(|e| e.to_str()) {
        Some("pt" | "pth" | "bin") => read_pytorch(path)?,
        _ => read_safetensors(&bytes, path)?,
    };
    Ok((bytes, tensors))
}

/// Builds a run directory from `req.weights`; fails, naming every tensor, unless each one of
/// the model is matched (or re-initialised on request) and each one of the file is used.
pub fn import(req: &ImportRequest) -> Result<(RunDir, MatchReport)> {
    let rules = req.rules.iter().map(|r| MapRule::parse(r)).collect::<strata_nn::Result<Vec<_>>>().context("--map")?;
    let drop = req
        .drop
        .iter()
        .map(|d| Regex::new(d).with_context(|| format!("--drop {d}: not a regular expression")))
        .collect::<Result<Vec<_>>>()?;
    req.arch.shapes(req.input).context("--arch / --input")?;
    let writer = RunWriter::create(&req.out, req.force)?;
    let (file_bytes, file) = read_weights(&req.weights)?;
    let (converted, source) = from_file(&file, req.layout, &rules, &drop);
    let device = burn::tensor::Device::default();
    let first = FeatureShape::from(req.input);
    // the model is built before matching so its own tensor list is the reference
    enum Model {
        Classifier(Classifier),
        Backbone(Backbone),
    }
    let model = match &req.head {
        Some(h) => Model::Classifier(
            try_seeded(&device, 0, || Classifier::new(&req.arch, h, req.input, &device)).context("--head")?,
        ),
        None => Model::Backbone(try_seeded(&device, 0, || {
            Ok::<_, strata_nn::NnError>(Backbone { backbone: build_stack(&req.arch.blocks, first, &device)? })
        })?),
    };
    let table = match &model {
        Model::Classifier(m) => weights::layer_table(m),
        Model::Backbone(m) => weights::layer_table(m),
    };
    let expected: Vec<(String, Vec<usize>)> = table.into_iter().map(|l| (l.name, l.shape)).collect();
    let report = MatchReport::compare(&converted, &source, &expected, &req.reinit);
    if !report.is_clean() {
        return Err(RunError::invalid(format!(
            "--weights {} does not fit --arch {}{}:\n{}fix: rename with --map 'FROM=TO', leave file tensors out with --drop REGEX, \
             or re-initialise model layers with --reinit NAME (e.g. --reinit head)",
            req.weights.display(),
            req.arch,
            req.head.as_ref().map(|h| format!(" with a {}-class head", h.classes)).unwrap_or_default(),
            report.to_text()
        )));
    }
    let keep: strata_nn::interop::TensorMap =
        converted.into_iter().filter(|(k, _)| report.matched.contains_key(k)).collect();
    let bytes = write_safetensors(&keep)?;
    let may_miss = |n: &str| report.reinitialised.iter().any(|r| r == n);
    let weights_bytes = match model {
        Model::Classifier(m) => {
            weights::to_bytes(&weights::load_bytes_partial(m, bytes, &req.weights, |_| false, may_miss)?)?
        }
        Model::Backbone(m) => {
            weights::to_bytes(&weights::load_bytes_partial(m, bytes, &req.weights, |_| false, may_miss)?)?
        }
    };
    writer.write_file("import-report.txt", report.to_text().as_bytes())?;
    let sha = sha256_hex(&file_bytes);
    let record = DataRecord {
        spec: req.weights.display().to_string(),
        fingerprint: sha.clone(),
        images: 0,
        class_names: req.head.as_ref().map(|h| (0..h.classes).map(|c| c.to_string()).collect()).unwrap_or_default(),
        label_indices: None,
    };
    let normalization = req.norm.clone().unwrap_or_else(|| Normalization::identity(req.input.channels));
    let manifest = Manifest {
        command_line: req.argv.clone(),
        device: "cpu".into(),
        config: serde_json::json!({ "import": {
            "file": req.weights.display().to_string(), "sha256": sha, "layout": req.layout,
            "map": rules.iter().map(MapRule::text).collect::<Vec<_>>(), "drop": req.drop, "reinit": req.reinit,
            "report": report,
        }}),
        arch: req.arch.to_string(),
        head: req.head.clone(),
        blocks: BlockRecord::all(&req.arch, Origin::Imported),
        metrics: serde_json::json!({ "tensors_imported": report.matched.len(), "tensors_reinitialised": report.reinitialised.len() }),
        ..Manifest::new(RunKind::Import, record, req.input, normalization)
    };
    Ok((writer.finish(manifest, &weights_bytes)?, report))
}

/// What `export` wrote.
pub struct Exported {
    /// tensors in the file
    pub tensors: usize,
    /// its size
    pub bytes: usize,
}

/// Writes a run's weights (or only its backbone) to `out`, with PyTorch names and layouts
/// when `pytorch` is set; refuses to overwrite `out` unless `force`.
pub fn export(run: &Path, out: &Path, pytorch: bool, backbone_only: bool, force: bool) -> Result<Exported> {
    if out.exists() && !force {
        return Err(RunError::invalid(format!(
            "{} already exists; choose another --out, or pass --force to replace it",
            out.display()
        )));
    }
    let run = context::open_run(run)?;
    let mut tensors = read_safetensors(&run.weights_bytes()?, &run.weights_path())?;
    if backbone_only {
        tensors.retain(|k, _| k.starts_with("backbone."));
    }
    let tensors = if pytorch { to_pytorch(&tensors) } else { tensors };
    let bytes = write_safetensors(&tensors)?;
    write_atomic(out, &bytes)?;
    Ok(Exported { tensors: tensors.len(), bytes: bytes.len() })
}
