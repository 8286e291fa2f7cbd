//! `strata finetune`: stage two (and the scratch baseline with `--from scratch`).

use crate::observer::Progress;
use crate::pipeline::{self, FinetuneRequest, LabelSubset};
use anyhow::Result;
use std::path::PathBuf;
use strata_nn::ArchSpec;
use strata_nn::spec::REF_CAE;

/// Flags of `strata finetune`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Parent run whose lower blocks are reused, or `scratch` for the from-scratch baseline.
    #[arg(long)]
    pub from: String,
    /// Labeled training images (IDX with labels, class folders, CIFAR).
    #[arg(long)]
    pub train: String,
    /// Labeled test images, scored after each phase and at the end.
    #[arg(long)]
    pub test: Option<String>,
    /// Use a stratified, seeded subset of N labeled images per class (indices go to the manifest).
    #[arg(long)]
    pub labels_per_class: Option<usize>,
    /// Or use a stratified, seeded fraction of each class (e.g. 0.01; at least one image per class).
    #[arg(long)]
    pub label_fraction: Option<f64>,
    /// Number of lower backbone blocks to reuse (default: all of them).
    #[arg(long)]
    pub reuse: Option<usize>,
    /// Backbone of a `--from scratch` run.
    #[arg(long, default_value = REF_CAE)]
    pub arch: ArchSpec,
    /// Hidden layers of the new head, e.g. `256` or `256,128` (default: output layer only).
    #[arg(long, default_value = "")]
    pub head: String,
    #[command(flatten)]
    pub schedule: Schedule,
    /// Run directory to create.
    #[arg(long)]
    pub out: PathBuf,
    /// cpu (flex), ndarray, vulkan[:N] or cuda[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Replace the run directory if it exists.
    #[arg(long)]
    pub force: bool,
    /// Print only phase summaries.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Training schedule flags, shared with `demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct Schedule {
    /// Optimiser steps with the reused blocks frozen (head only).
    #[arg(long, default_value_t = 400)]
    pub frozen_steps: usize,
    /// Optimiser steps after unfreezing the top reused blocks.
    #[arg(long, default_value_t = 600)]
    pub unfreeze_steps: usize,
    /// How many top reused blocks to unfreeze (at lr x lr-mult).
    #[arg(long, default_value_t = 1)]
    pub unfreeze_top: usize,
    /// Learning-rate multiplier of unfrozen reused blocks.
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    pub lr_mult: f64,
    /// Adam learning rate of the head (and of all layers from scratch).
    #[arg(long, default_value_t = 1e-3, allow_negative_numbers = true)]
    pub lr: f64,
    /// Images per optimiser step.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Randomly shift labeled images by up to this many pixels (0 = off).
    #[arg(long, default_value_t = 0)]
    pub augment_shift: usize,
    /// Seed of the label subset, head initialisation and data order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Parses `--head 256,128`.
pub fn parse_hidden(s: &str) -> Result<Vec<usize>> {
    Ok(strata_nn::HeadSpec::parse(s, 2)?.hidden)
}

/// Runs `strata finetune`.
pub fn run(a: Args, argv: Vec<String>) -> Result<()> {
    let from = if a.from == "scratch" { None } else { Some(PathBuf::from(&a.from)) };
    let s = a.schedule;
    let req = FinetuneRequest {
        from,
        train: a.train,
        test: a.test,
        labels: LabelSubset::from_flags(a.labels_per_class, a.label_fraction)?,
        reuse: a.reuse,
        arch: a.arch,
        head_hidden: parse_hidden(&a.head)?,
        batch: s.batch,
        lr: s.lr,
        seed: s.seed,
        frozen_steps: s.frozen_steps,
        unfreeze_steps: s.unfreeze_steps,
        unfreeze_top: s.unfreeze_top,
        lr_mult: s.lr_mult,
        augment_shift: s.augment_shift,
        out: a.out,
        force: a.force,
        device: a.device,
        argv,
    };
    let res = pipeline::finetune(&req, &mut Progress::new(a.quiet))?;
    println!("fine-tuned → {}", res.run.path.display());
    if let Some(e) = &res.test {
        println!("test accuracy {:.2}% ({} images)", 100.0 * e.accuracy, e.images);
    }
    Ok(())
}
