//! `strata pretrain`: stage one on unlabeled images.

use crate::observer::Progress;
use crate::pipeline::{self, PretrainRequest};
use anyhow::Result;
use strata_nn::ArchSpec;
use strata_nn::spec::REF_CAE;
use strata_train::PretrainConfig;
use strata_train::methods::NoiseKind;

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
    /// Backbone blocks, e.g. `conv32-pool,conv64-pool,dense128` (REF-CAE).
    #[arg(long, default_value = REF_CAE)]
    pub arch: ArchSpec,
    /// Passes over the unlabeled images.
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Images per optimiser step.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3, allow_negative_numbers = true)]
    pub lr: f64,
    /// Seed of initialisation, data order and noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Noise level: the fraction of pixels `dae` zeroes (or its gaussian sigma, as a share of
    /// the pixel range), the most `siamese` zeroes per view.
    #[arg(long, default_value_t = 0.25)]
    pub noise: f32,
    /// `dae` corruption: mask (zero pixels) or gaussian (add noise).
    #[arg(long, default_value = "mask")]
    pub noise_kind: NoiseKind,
    /// `siamese` on identity-labeled data: two images with the same label are twins
    /// (e.g. many people with a few photos each).
    #[arg(long)]
    pub pairs_by_label: bool,
    /// Use a seeded sample of at most this many images.
    #[arg(long)]
    pub max_images: Option<usize>,
    #[command(flatten)]
    pub run: crate::control::RunArgs,
}

/// Runs `strata pretrain`.
pub fn run(a: Args, argv: Vec<String>) -> Result<()> {
    let req = PretrainRequest {
        data: a.data,
        method: a.method,
        out: a.run.out,
        force: a.run.force,
        max_images: a.max_images,
        cfg: PretrainConfig {
            arch: a.arch,
            epochs: a.epochs,
            batch: a.batch,
            lr: a.lr,
            seed: a.seed,
            noise: a.noise,
            noise_kind: a.noise_kind,
            pairs_by_label: a.pairs_by_label,
        },
        device: a.run.device,
        argv,
        control: a.run.checkpoints.control()?,
    };
    let run = pipeline::pretrain(&req, &mut Progress::new(a.run.quiet))?;
    println!("pretrained {} → {}", req.method, run.path.display());
    println!("{}", serde_json::to_string(&run.manifest.metrics)?);
    Ok(())
}
