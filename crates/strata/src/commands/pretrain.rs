//! `strata pretrain`: stage one on unlabeled images.

use crate::observer::Progress;
use anyhow::Result;
use strata_run::pipeline::{self, PretrainRequest};
use strata_train::PretrainConfig;

/// Flags of `strata pretrain`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Unlabeled images: an IDX folder or file, an image folder tree, or CIFAR binaries
    /// (`PATH` or `PATH:train|test`; labels, if any, are ignored).
    #[arg(long)]
    pub data: String,
    /// Pretraining method.
    #[arg(long, default_value = "ae", value_parser = clap::builder::PossibleValuesParser::new(strata_train::method_names()))]
    pub method: String,
    #[command(flatten)]
    pub cfg: PretrainConfig,
    /// Use a seeded sample of at most this many images.
    #[arg(long)]
    pub max_images: Option<usize>,
    #[command(flatten)]
    pub run: crate::flags::RunArgs,
}

/// Runs `strata pretrain`.
pub fn run(a: Args, argv: Vec<String>) -> Result<()> {
    let req = PretrainRequest {
        data: a.data,
        method: a.method,
        out: a.run.out,
        force: a.run.force,
        max_images: a.max_images,
        cfg: a.cfg,
        device: a.run.device,
        argv,
        control: a.run.checkpoints.control()?,
    };
    let run = pipeline::pretrain(&req, &mut Progress::new(a.run.quiet))?;
    println!("pretrained {} → {}", req.method, run.path.display());
    println!("{}", serde_json::to_string(&run.manifest.metrics)?);
    Ok(())
}
