//! `strata finetune`: stage two (and the scratch baseline with `--from scratch`).

use crate::observer::Progress;
use crate::pipeline::{self, FinetuneRequest, LabelSubset, Recipe};
use anyhow::Result;
use std::path::PathBuf;
use strata_nn::ArchSpec;
use strata_nn::spec::REF_CAE;
use strata_train::{OptimSettings, OptimizerKind, Surgery};

/// Flags of `strata finetune`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Parent run whose lower blocks are reused, or `scratch` for the from-scratch baseline.
    #[arg(long)]
    pub from: String,
    #[command(flatten)]
    pub data: LabeledData,
    /// Number of lower backbone blocks to reuse (default: all of them).
    #[arg(long)]
    pub reuse: Option<usize>,
    /// Drop this many top blocks of the reused ones (step 4 of the strategy, little data).
    #[arg(long, default_value_t = 0)]
    pub drop_top: usize,
    /// Re-initialise this many top reused blocks (same shape, trained from the start).
    #[arg(long, default_value_t = 0)]
    pub replace_top: usize,
    /// New hidden blocks on top of the reused ones, as an architecture spec (e.g. `dense256`).
    #[arg(long)]
    pub add_hidden: Option<ArchSpec>,
    /// Backbone of a `--from scratch` run.
    #[arg(long, default_value = REF_CAE)]
    pub arch: ArchSpec,
    /// Hidden layers of the new head, e.g. `256` or `256,128` (default: output layer only).
    #[arg(long, default_value = "")]
    pub head: String,
    #[command(flatten)]
    pub schedule: Schedule,
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
        LabelSubset::from_flags(self.labels_per_class, self.label_fraction)
    }
}

/// Training schedule flags, shared with `demo` and `search`.
#[derive(Debug, Clone, clap::Args)]
pub struct Schedule {
    /// Optimiser steps with the reused blocks frozen (head and new blocks only).
    #[arg(long, default_value_t = 400)]
    pub frozen_steps: usize,
    /// Optimiser steps after unfreezing the top reused blocks.
    #[arg(long, default_value_t = 600)]
    pub unfreeze_steps: usize,
    /// How many top reused blocks to unfreeze (at lr x lr-mult).
    #[arg(long, default_value_t = 1)]
    pub unfreeze_top: usize,
    /// Unfreeze gradually: one more block every N steps (default: all --unfreeze-top at once).
    #[arg(long)]
    pub unfreeze_every: Option<usize>,
    /// Learning-rate multiplier of the topmost unfrozen reused block.
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    pub lr_mult: f64,
    /// Further multiplier per unfrozen block below it (discriminative rates, e.g. 0.5).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub lr_decay: f64,
    /// Learning rate of the head and new blocks (and of all layers from scratch).
    #[arg(long, default_value_t = 1e-3, allow_negative_numbers = true)]
    pub lr: f64,
    /// adam (AdamW when --weight-decay is set) or sgd.
    #[arg(long, default_value = "adam")]
    pub optimizer: OptimizerKind,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9, allow_negative_numbers = true)]
    pub momentum: f64,
    /// Weight decay of trainable weights (never of frozen ones; biases and batch norm excluded).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub weight_decay: f64,
    /// Also decay biases and batch-norm parameters.
    #[arg(long)]
    pub decay_norm_and_bias: bool,
    /// Images per optimiser step.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Randomly shift labeled images by up to this many pixels (0 = off).
    #[arg(long, default_value_t = 0)]
    pub augment_shift: usize,
    /// Push every image through the frozen blocks at every step instead of caching their
    /// outputs once per phase (the cache is used only without augmentation).
    #[arg(long)]
    pub no_feature_cache: bool,
    /// Seed of the label subset, head initialisation and data order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl Schedule {
    /// The recipe of these flags with `surgery` and head `hidden` layers.
    pub fn recipe(&self, surgery: Surgery, head_hidden: Vec<usize>) -> Recipe {
        Recipe {
            surgery,
            head_hidden,
            batch: self.batch,
            lr: self.lr,
            frozen_steps: self.frozen_steps,
            unfreeze_steps: self.unfreeze_steps,
            unfreeze_top: self.unfreeze_top,
            unfreeze_every: self.unfreeze_every,
            lr_mult: self.lr_mult,
            lr_decay: self.lr_decay,
            optim: OptimSettings {
                kind: self.optimizer,
                momentum: self.momentum,
                weight_decay: self.weight_decay,
                decay_norm_and_bias: self.decay_norm_and_bias,
            },
            augment_shift: self.augment_shift,
            no_feature_cache: self.no_feature_cache,
        }
    }
}

/// Parses `--head 256,128`.
pub fn parse_hidden(s: &str) -> Result<Vec<usize>> {
    Ok(strata_nn::HeadSpec::parse(s, 2)?.hidden)
}

/// The backbone surgery flags.
pub fn surgery(reuse: Option<usize>, drop_top: usize, replace_top: usize, add_hidden: Option<&ArchSpec>) -> Surgery {
    Surgery { reuse, drop_top, replace_top, add_hidden: add_hidden.map(|a| a.blocks.clone()).unwrap_or_default() }
}

/// Runs `strata finetune`.
pub fn run(a: Args, argv: Vec<String>) -> Result<()> {
    let from = if a.from == "scratch" { None } else { Some(PathBuf::from(&a.from)) };
    let surgery = surgery(a.reuse, a.drop_top, a.replace_top, a.add_hidden.as_ref());
    let req = FinetuneRequest {
        from,
        labels: a.data.labels()?,
        train: a.data.train,
        test: a.data.test,
        classes: a.data.classes,
        arch: a.arch,
        recipe: a.schedule.recipe(surgery, parse_hidden(&a.head)?),
        seed: a.schedule.seed,
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
