//! `strata finetune`: stage two (and the scratch baseline with `--from scratch`).

use crate::observer::Progress;
use anyhow::Result;
use std::path::PathBuf;
use strata_nn::ArchSpec;
use strata_nn::spec::REF_CAE;
use strata_run::pipeline::{self, FinetuneRequest, LabelSubset};
use strata_train::FinetuneConfig;

/// Flags of `strata finetune`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Parent run whose lower blocks are reused, or `scratch` for the from-scratch baseline.
    #[arg(long)]
    pub from: String,
    #[command(flatten)]
    pub data: LabeledData,
    /// Backbone of a `--from scratch` run.
    #[arg(long, default_value = REF_CAE)]
    pub arch: ArchSpec,
    #[command(flatten)]
    pub cfg: FinetuneConfig,
    #[command(flatten)]
    pub run: crate::control::RunArgs,
}

/// The labeled data of stage two, shared with `search` and `probe`.
#[derive(Debug, Clone, clap::Args)]
pub struct LabeledData {
    /// Labeled training images (IDX with labels, class folders, CIFAR).
    #[arg(long)]
    pub train: String,
    /// Labeled test images: scored after each phase (finetune), for every trial (search,
    /// never used to choose), or by the probe.
    #[arg(long)]
    pub test: Option<String>,
    /// Only these classes of the labeled data, e.g. `8,9` or `0-7` (indices or names).
    #[arg(long)]
    pub classes: Option<String>,
    /// Use a stratified, seeded subset of N labeled images per class (indices go to the manifest).
    #[arg(long)]
    pub labels_per_class: Option<usize>,
    /// Or use a stratified, seeded fraction of each class (e.g. 0.01; at least one image per class).
    #[arg(long)]
    pub label_fraction: Option<f64>,
}

impl LabeledData {
    /// The label subset these flags ask for.
    pub fn labels(&self) -> Result<LabelSubset> {
        Ok(LabelSubset::from_flags(self.labels_per_class, self.label_fraction)?)
    }
}

/// Runs `strata finetune`.
pub fn run(a: Args, argv: Vec<String>) -> Result<()> {
    let from = if a.from == "scratch" { None } else { Some(PathBuf::from(&a.from)) };
    let req = FinetuneRequest {
        from,
        labels: a.data.labels()?,
        train: a.data.train,
        test: a.data.test,
        classes: a.data.classes,
        arch: a.arch,
        cfg: a.cfg,
        out: a.run.out,
        force: a.run.force,
        device: a.run.device,
        argv,
        kind: None,
        control: a.run.checkpoints.control()?,
    };
    let res = pipeline::finetune(&req, &mut Progress::new(a.run.quiet))?;
    println!("fine-tuned → {}", res.run.path.display());
    if let Some(e) = &res.test {
        println!("test accuracy {:.2}% ({} images)", 100.0 * e.accuracy, e.images);
    }
    Ok(())
}
