//! `strata finetune`: stage two (and the scratch baseline with `--from scratch`).

use crate::observer::Progress;
use anyhow::Result;
use std::path::PathBuf;
use strata_nn::ArchSpec;
use strata_nn::spec::REF_CAE;
use strata_run::pipeline::{self, FinetuneRequest};
use strata_train::FinetuneConfig;

/// Flags of `strata finetune`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Parent run whose lower blocks are reused, or `scratch` for the from-scratch baseline.
    #[arg(long)]
    pub from: String,
    #[command(flatten)]
    pub data: crate::flags::LabeledData,
    /// Backbone of a `--from scratch` run.
    #[arg(long, default_value = REF_CAE)]
    pub arch: ArchSpec,
    #[command(flatten)]
    pub cfg: FinetuneConfig,
    #[command(flatten)]
    pub run: crate::flags::RunArgs,
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
