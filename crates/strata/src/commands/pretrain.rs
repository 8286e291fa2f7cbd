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
    /// Pretraining method. A method starts from its own defaults where they differ from the
    /// ones shown here (cluster: --arch conv32-bn-pool,conv64-bn-pool,dense128 --batch 128
    /// --lr 5e-4; gan: DCGAN's --arch conv64k5s2-leaky0.2,conv128k5s2-bn-leaky0.2,dense128-leaky0.2
    /// --lr 2e-4); a flag given always wins, and the manifest records what was used.
    #[arg(long, default_value = "cluster", value_parser = clap::builder::PossibleValuesParser::new(strata_train::method_names()))]
    pub method: String,
    #[command(flatten)]
    pub cfg: PretrainConfig,
    /// Use a seeded sample of at most this many images.
    #[arg(long)]
    pub max_images: Option<usize>,
    #[command(flatten)]
    pub run: crate::flags::RunArgs,
}

/// Runs `strata pretrain`; `given` names the settings the user chose (typed or from
/// `--config`), which the method's own defaults leave alone.
pub fn run(a: Args, argv: Vec<String>, given: &[String]) -> Result<()> {
    let method = strata_train::method_by_name(&a.method)?;
    let cfg = a.cfg.with_method_defaults(method.as_ref(), |field| given.iter().any(|g| g == field))?;
    let req = PretrainRequest {
        data: a.data,
        method: a.method,
        out: a.run.out,
        force: a.run.force,
        max_images: a.max_images,
        cfg,
        device: a.run.device,
        argv,
        control: a.run.checkpoints.control()?,
    };
    let run = pipeline::pretrain(&req, &mut Progress::new(a.run.quiet))?;
    println!("pretrained {} → {}", req.method, run.path.display());
    println!("{}", serde_json::to_string(&run.manifest.metrics)?);
    Ok(())
}
