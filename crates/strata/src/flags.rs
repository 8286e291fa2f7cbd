//! The flag groups several commands share, declared once: where a run goes and how it is
//! checkpointed (`pretrain`, `train`, `finetune`), and the labeled data of stage two
//! (`finetune`, `search`, `probe`). The training settings themselves are the library's
//! `PretrainConfig`, `FinetuneConfig` and `ProbeConfig`, flattened by each command.

use crate::control::stop_flag;
use anyhow::{Result, bail};
use strata_run::{LabelSubset, RunControl};
use strata_train::CheckpointPolicy;

/// Where a training command writes its run and how: shared by `pretrain`, `train` and `finetune`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Run directory to create.
    #[arg(long)]
    pub out: std::path::PathBuf,
    /// cpu (flex), ndarray, vulkan[:N] or cuda[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[command(flatten)]
    pub checkpoints: CheckpointArgs,
    /// Replace the run directory if it exists.
    #[arg(long)]
    pub force: bool,
    /// Print only phase summaries.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Checkpoint flags shared by `pretrain`, `finetune` and `train`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckpointArgs {
    /// Write a checkpoint every N optimiser steps (default: every epoch when pretraining,
    /// every max(epoch, 100) steps and at each phase change when fine-tuning).
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
    /// Keep this many newest checkpoints while the run goes (the best, by training loss, is kept too).
    #[arg(long, default_value_t = 2)]
    pub checkpoint_keep: usize,
    /// Keep the checkpoints in the run directory after it completes (they are removed by default:
    /// the final weights are in model.safetensors).
    #[arg(long)]
    pub keep_checkpoints: bool,
    /// Continue the interrupted run RUN (the `--out` it was started with) from its last
    /// checkpoint, with its own settings; only --lr, --device, --quiet and the checkpoint flags
    /// may be given beside it.
    #[arg(long, value_name = "RUN")]
    pub resume: Option<std::path::PathBuf>,
}

impl CheckpointArgs {
    /// The run control these flags describe, stopped by Ctrl-C / SIGTERM.
    pub fn control(&self) -> Result<RunControl> {
        if self.checkpoint_every == Some(0) {
            bail!("invalid setting `--checkpoint-every` = 0: give a number of steps of at least 1");
        }
        if self.checkpoint_keep == 0 {
            bail!("invalid setting `--checkpoint-keep` = 0: keep at least 1 checkpoint, or resuming is impossible");
        }
        Ok(RunControl {
            resumable: true,
            policy: CheckpointPolicy { every_steps: self.checkpoint_every, keep_last: self.checkpoint_keep },
            keep_checkpoints: self.keep_checkpoints,
            stop: stop_flag(),
            resume: self.resume.is_some(),
        })
    }
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
