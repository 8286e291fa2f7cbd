//! `strata train`: plain supervised training of a backbone and head on a labeled task ("task
//! A"); the run is a source network that `finetune --from` reuses like a pretraining run.

use crate::observer::Progress;
use anyhow::Result;
use strata_nn::ArchSpec;
use strata_nn::HiddenLayers;
use strata_nn::spec::REF_CAE;
use strata_run::pipeline::{self, FinetuneRequest, LabelSubset};
use strata_train::FinetuneConfig;
use strata_train::manifest::RunKind;

/// Flags of `strata train`: one phase of plain training, so only the stage-two settings that
/// apply to it, with the same defaults (but for the step count).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Labeled training images (IDX with labels, class folders, CIFAR).
    #[arg(long)]
    pub data: String,
    /// Labeled test images, scored at the end.
    #[arg(long)]
    pub test: Option<String>,
    /// Only these classes, e.g. `0-7` (task A) while `8,9` stays for task B.
    #[arg(long)]
    pub classes: Option<String>,
    /// Use a stratified, seeded subset of N labeled images per class.
    #[arg(long)]
    pub labels_per_class: Option<usize>,
    /// Backbone blocks.
    #[arg(long, default_value = REF_CAE)]
    pub arch: ArchSpec,
    /// Hidden layers of the head, e.g. `256` (default: output layer only).
    #[arg(long, default_value_t = FinetuneConfig::default().head)]
    pub head: HiddenLayers,
    /// Optimiser steps.
    #[arg(long, default_value_t = 3000)]
    pub steps: usize,
    /// Images per step.
    #[arg(long, default_value_t = FinetuneConfig::default().batch)]
    pub batch: usize,
    /// Peak learning rate (AdamW, warm-up and cosine decay, as `strata finetune`'s defaults).
    #[arg(long, default_value_t = FinetuneConfig::default().lr, allow_negative_numbers = true)]
    pub lr: f64,
    /// Train on the images as they are (default: the augmentation, schedule and label
    /// smoothing of `strata finetune`'s defaults).
    #[arg(long)]
    pub no_augment: bool,
    /// Seed of initialisation and data order.
    #[arg(long, default_value_t = FinetuneConfig::default().seed)]
    pub seed: u64,
    #[command(flatten)]
    pub run: crate::flags::RunArgs,
}

/// Runs `strata train`.
pub fn run(a: Args, argv: Vec<String>) -> Result<()> {
    let req = FinetuneRequest {
        from: None,
        train: a.data,
        test: a.test,
        classes: a.classes,
        labels: LabelSubset::from_flags(a.labels_per_class, None)?,
        arch: a.arch,
        cfg: FinetuneConfig {
            head: a.head,
            batch: a.batch,
            lr: a.lr,
            frozen_steps: a.steps,
            unfreeze_steps: 0,
            no_augment: a.no_augment,
            seed: a.seed,
            ..FinetuneConfig::default()
        },
        out: a.run.out,
        force: a.run.force,
        device: a.run.device,
        argv,
        kind: Some(RunKind::Train),
        control: a.run.checkpoints.control()?,
    };
    let res = pipeline::finetune(&req, &mut Progress::new(a.run.quiet))?;
    println!(
        "trained → {} (reuse it with `strata finetune --from {}`)",
        res.run.path.display(),
        res.run.path.display()
    );
    if let Some(e) = &res.test {
        println!("test accuracy {:.2}% ({} images)", 100.0 * e.accuracy, e.images);
    }
    Ok(())
}
