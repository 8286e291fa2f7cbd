//! Helpers shared by the commands: loading data with context, devices, manifests.

use crate::error::{Context, Result, RunError};
use std::path::Path;
use strata_data::{DataSpec, Dataset, LoadOptions, Split};
use strata_nn::{ArchSpec, Classifier, weights};
use strata_train::manifest::RunKind;
use strata_train::{DeviceChoice, RunDir};

/// Loads a data SPEC; `labeled` requires labels.
pub fn load_data(spec: &str, flag: &str, labeled: bool, default_split: Split) -> Result<Dataset> {
    let parsed = DataSpec::parse(spec).with_context(|| format!("{flag} {spec}"))?;
    let opts = LoadOptions { require_labels: labeled, default_split, ..LoadOptions::default() };
    let data = strata_data::load(&parsed, &opts).with_context(|| format!("loading {flag} {spec}"))?;
    if data.is_empty() {
        return Err(RunError::invalid(format!("{flag} {spec}: no images found")));
    }
    Ok(data)
}

pub use strata_train::batch::input_of;

/// The device named by `--device`, checked.
pub fn device(name: &str) -> Result<(DeviceChoice, burn::tensor::Device)> {
    let choice = DeviceChoice::parse(name)?;
    let dev = choice.device()?;
    Ok((choice, dev))
}

/// Opens a run directory with context.
pub fn open_run(path: &Path) -> Result<RunDir> {
    // the error already names the run
    Ok(RunDir::open(path)?)
}

/// Rebuilds the classifier of a finetune/scratch run with its weights.
pub fn load_classifier(run: &RunDir, device: &burn::tensor::Device) -> Result<Classifier> {
    let m = &run.manifest;
    let head = m.head.as_ref().with_context(|| {
        format!("run {} is a {:?} run, not a classifier; evaluate a finetune run", run.path.display(), m.kind)
    })?;
    let arch = ArchSpec::parse(&m.arch)?;
    let model = Classifier::new(&arch, head, m.input, device)?;
    let bytes = run.weights_bytes()?;
    Ok(weights::load_bytes(model, bytes, &run.weights_path())?)
}

/// The layer table of any run, rebuilt from its manifest and weights.
pub fn layer_table(run: &RunDir, device: &burn::tensor::Device) -> Result<Vec<strata_nn::LayerInfo>> {
    let m = &run.manifest;
    let bytes = run.weights_bytes()?;
    Ok(match m.kind {
        // each method saves its own parts beside the backbone: read names and shapes from the file
        RunKind::Pretrain => weights::table_from_bytes(&bytes, &run.weights_path())?,
        // an import may hold only a backbone
        RunKind::Import if m.head.is_none() => weights::table_from_bytes(&bytes, &run.weights_path())?,
        RunKind::Finetune | RunKind::Scratch | RunKind::Train | RunKind::Import => {
            weights::layer_table(&load_classifier(run, device)?)
        }
    })
}
