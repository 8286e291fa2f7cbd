//! The settings of stage two, declared once: their types, defaults, docs (the `--help` text)
//! and validation. `strata finetune`, `search`, `demo`, the examples and library callers all
//! read this one type; the manifest records it as it was used.

use super::prototype::HeadInit;
use crate::error::{Result, TrainError};
use crate::layout::Surgery;
use crate::optim::{OptimSettings, OptimizerKind};
use crate::schedule::LrSchedule;
use crate::step::validate_optim;
use serde::{Deserialize, Serialize};
use strata_data::AugmentPolicy;
use strata_nn::ArchSpec;
use strata_nn::HiddenLayers;

/// How stage two builds and trains a classifier (and the scratch baseline): backbone surgery,
/// head, schedule, optimiser, augmentation and seed. A `search` trial is one of these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(default, deny_unknown_fields)]
pub struct FinetuneConfig {
    /// Number of lower backbone blocks to reuse (default: all of them).
    #[cfg_attr(feature = "cli", arg(long))]
    pub reuse: Option<usize>,
    /// Drop this many top blocks of the reused ones (step 4 of the strategy, little data).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = DEFAULT.drop_top))]
    pub drop_top: usize,
    /// Re-initialise this many top reused blocks (same shape, trained from the start).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = DEFAULT.replace_top))]
    pub replace_top: usize,
    /// New hidden blocks on top of the reused ones, as an architecture spec (e.g. `dense256`).
    #[cfg_attr(feature = "cli", arg(long))]
    pub add_hidden: Option<ArchSpec>,
    /// Hidden layers of the new head, e.g. `256` or `256,128` (default: output layer only).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = DEFAULT.head.clone()))]
    pub head: HiddenLayers,
    /// How the output layer starts: random; prototype (each class's mean feature, so the
    /// head is a nearest-class-mean classifier before any step; with 0 steps it stays one); or
    /// clusters (a `cluster` parent's kept head, its clusters matched to the classes by the
    /// labeled images; scratch starts random).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = DEFAULT.head_init))]
    pub head_init: HeadInit,
    /// Also train on the unlabeled training images to which the parent's cluster readout (every
    /// cluster head, each cluster named by the labeled images) gives a class with at least this
    /// probability, labeled with that class (0 = off; measured best: 0.5 at 10 labels per class,
    /// 0.9 with `--labeled-share 0.5` at 100, see docs/RESULTS.md). Scratch ignores it.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = DEFAULT.cluster_labels, allow_negative_numbers = true))]
    pub cluster_labels: f64,
    /// With --cluster-labels: keep only the unlabeled images whose readout class a kNN vote of
    /// the labeled images (on the parent's features, k chosen by leave-one-out as `probe`
    /// does) names too: two readers of the labels that err on different images.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = DEFAULT.cluster_labels_agree))]
    pub cluster_labels_agree: bool,
    /// With --cluster-labels: the share of the rows each batch is drawn from that are labeled
    /// images (repeated to reach it), so tens of thousands of cluster labels do not drown the
    /// true ones (0 = each image once; 0.5 paid at 100 labels per class, see
    /// docs/RESULTS.md).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = DEFAULT.labeled_share, allow_negative_numbers = true))]
    pub labeled_share: f64,
    /// Optimiser steps with the reused blocks frozen (head and new blocks only).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = DEFAULT.frozen_steps))]
    pub frozen_steps: usize,
    /// Optimiser steps after unfreezing the top reused blocks.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = DEFAULT.unfreeze_steps))]
    pub unfreeze_steps: usize,
    /// How many top reused blocks to unfreeze (at lr x lr-mult); more than are reused: all.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = DEFAULT.unfreeze_top))]
    pub unfreeze_top: usize,
    /// Unfreeze gradually: one more block every N steps (default: all --unfreeze-top at once).
    #[cfg_attr(feature = "cli", arg(long))]
    pub unfreeze_every: Option<usize>,
    /// Learning-rate multiplier of the topmost unfrozen reused block.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = DEFAULT.lr_mult, allow_negative_numbers = true))]
    pub lr_mult: f64,
    /// Further multiplier per unfrozen block below it (discriminative rates, e.g. 0.5).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = DEFAULT.lr_decay, allow_negative_numbers = true))]
    pub lr_decay: f64,
    /// Learning rate of the head and new blocks (and of all layers from scratch).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = DEFAULT.lr, allow_negative_numbers = true))]
    pub lr: f64,
    /// Rate over each phase: cosine (warm-up, then half a cosine to zero) or constant.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = DEFAULT.schedule))]
    pub schedule: LrSchedule,
    /// Share of each phase's steps spent warming the rate up linearly (0 = none).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = DEFAULT.warmup, allow_negative_numbers = true))]
    pub warmup: f64,
    /// Label smoothing: the target puts 1 - x on the true class, x spread over all (0 = off).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = DEFAULT.label_smoothing, allow_negative_numbers = true))]
    pub label_smoothing: f64,
    /// adam (AdamW when --weight-decay is set) or sgd.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = DEFAULT.optimizer))]
    pub optimizer: OptimizerKind,
    /// SGD momentum.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = DEFAULT.momentum, allow_negative_numbers = true))]
    pub momentum: f64,
    /// Weight decay of trainable weights (never of frozen ones; biases and batch norm excluded).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = DEFAULT.weight_decay, allow_negative_numbers = true))]
    pub weight_decay: f64,
    /// Also decay biases and batch-norm parameters.
    #[cfg_attr(feature = "cli", arg(long))]
    pub decay_norm_and_bias: bool,
    /// Images per optimiser step.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = DEFAULT.batch))]
    pub batch: usize,
    /// Train on the labeled images as they are: no --augment-* draw.
    #[cfg_attr(feature = "cli", arg(long))]
    pub no_augment: bool,
    /// Largest random rotation either way, degrees.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = DEFAULT.augment_rotate, allow_negative_numbers = true))]
    pub augment_rotate: f64,
    /// Largest random shift either way, as a fraction of the image side.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = DEFAULT.augment_shift, allow_negative_numbers = true))]
    pub augment_shift: f64,
    /// Largest random change of size either way (0.1: 90 % to 110 %).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = DEFAULT.augment_scale, allow_negative_numbers = true))]
    pub augment_scale: f64,
    /// Largest random horizontal shear either way, degrees.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = DEFAULT.augment_shear, allow_negative_numbers = true))]
    pub augment_shear: f64,
    /// Elastic distortion strength in pixels (Simard et al. use 34 on 28x28 digits; 0 = off).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = DEFAULT.augment_elastic, allow_negative_numbers = true))]
    pub augment_elastic: f64,
    /// Largest random change of brightness either way, relative (0 = off).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = DEFAULT.augment_brightness, allow_negative_numbers = true))]
    pub augment_brightness: f64,
    /// Largest random change of contrast either way, relative (0 = off).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = DEFAULT.augment_contrast, allow_negative_numbers = true))]
    pub augment_contrast: f64,
    /// Side of a random square set to zero, as a fraction of the shorter side (0 = off).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = DEFAULT.augment_cutout, allow_negative_numbers = true))]
    pub augment_cutout: f64,
    /// Push every image through the frozen blocks at every step instead of caching their
    /// outputs once per phase.
    #[cfg_attr(feature = "cli", arg(long))]
    pub no_feature_cache: bool,
    /// With augmentation, the cache holds this many augmented draws of each labeled image and
    /// each step picks one at random (0 = a fresh draw at every step, no cache).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = DEFAULT.cache_draws))]
    pub cache_draws: usize,
    /// Seed of the label subset, head initialisation, data order and augmentation.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = DEFAULT.seed))]
    pub seed: u64,
}

/// The `--cluster-labels` threshold measured best with 10 labels per class (validation split,
/// 20-epoch `cluster` run: 97.3 % against 96.1 % without; at 100 labels per class it did not
/// pay, so it is a recommendation, not a default). `search` tries it on parents with cluster heads.
pub const FEW_LABELS_CLUSTER_LABELS: f64 = 0.5;

/// The defaults of every stage-two setting: the one place they are written. The recipe is
/// the careful one of `../shared/peer/careful_scratch.py` (AdamW, warm-up + cosine, label
/// smoothing 0.1, random affine draws of ±15°, ±10 % shift and size, 3 000 steps), which
/// scratch and fine-tuned classifiers share; see docs/RESULTS.md for how it was chosen.
pub const DEFAULT: FinetuneConfig = FinetuneConfig {
    reuse: None,
    drop_top: 0,
    replace_top: 0,
    add_hidden: None,
    head: HiddenLayers::NONE,
    head_init: HeadInit::Random,
    cluster_labels: 0.0,
    cluster_labels_agree: false,
    labeled_share: 0.0,
    frozen_steps: 1000,
    unfreeze_steps: 2000,
    unfreeze_top: 1,
    unfreeze_every: None,
    lr_mult: 0.1,
    lr_decay: 1.0,
    lr: 1e-3,
    schedule: LrSchedule::Cosine,
    warmup: 0.05,
    label_smoothing: 0.1,
    optimizer: OptimizerKind::Adam,
    momentum: 0.9,
    weight_decay: 5e-4,
    decay_norm_and_bias: false,
    batch: 64,
    no_augment: false,
    augment_rotate: 15.0,
    augment_shift: 0.1,
    augment_scale: 0.1,
    augment_shear: 0.0,
    augment_elastic: 0.0,
    augment_brightness: 0.0,
    augment_contrast: 0.0,
    augment_cutout: 0.0,
    no_feature_cache: false,
    cache_draws: 16,
    seed: 0,
};

/// strata 0.2's stage two, kept to show what the careful recipe changes: 400 frozen and
/// 600 unfrozen steps of plain Adam at a constant rate, no augmentation, no smoothing.
/// `--from scratch` with it is the "untuned scratch" row of the results.
pub fn untuned() -> FinetuneConfig {
    FinetuneConfig {
        frozen_steps: 400,
        unfreeze_steps: 600,
        schedule: LrSchedule::Constant,
        warmup: 0.0,
        label_smoothing: 0.0,
        weight_decay: 0.0,
        no_augment: true,
        ..DEFAULT
    }
}

impl Default for FinetuneConfig {
    fn default() -> Self {
        DEFAULT
    }
}

impl FinetuneConfig {
    /// The backbone surgery these settings ask for.
    pub fn surgery(&self) -> Surgery {
        Surgery {
            reuse: self.reuse,
            drop_top: self.drop_top,
            replace_top: self.replace_top,
            add_hidden: self.add_hidden.as_ref().map(|a| a.blocks.clone()).unwrap_or_default(),
        }
    }

    /// The update rule these settings ask for.
    pub fn optim(&self) -> OptimSettings {
        OptimSettings {
            kind: self.optimizer,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            decay_norm_and_bias: self.decay_norm_and_bias,
        }
    }

    /// The augmentation each labeled image gets at every step (none with `no_augment`).
    pub fn augmentation(&self) -> AugmentPolicy {
        if self.no_augment {
            return AugmentPolicy::NONE;
        }
        AugmentPolicy {
            rotate_deg: self.augment_rotate,
            shift: self.augment_shift,
            scale: self.augment_scale,
            shear_deg: self.augment_shear,
            elastic: self.augment_elastic,
            brightness: self.augment_brightness,
            contrast: self.augment_contrast,
            cutout: self.augment_cutout,
        }
    }

    /// Steps of all phases together.
    pub fn steps(&self) -> usize {
        self.frozen_steps + self.unfreeze_steps
    }

    /// Checks every range that does not depend on the backbone, naming the flag.
    pub fn validate(&self) -> Result<()> {
        validate_optim(self.batch, self.lr)?;
        self.optim().validate()?;
        if !(self.lr_mult.is_finite() && self.lr_mult > 0.0 && self.lr_mult <= 1.0) {
            return Err(TrainError::config("--lr-mult", self.lr_mult, "use a multiplier in (0, 1], e.g. 0.1"));
        }
        if !(self.lr_decay.is_finite() && self.lr_decay > 0.0 && self.lr_decay <= 1.0) {
            return Err(TrainError::config(
                "--lr-decay",
                self.lr_decay,
                "use a multiplier per block in (0, 1], e.g. 0.5 (1 = the same rate for every unfrozen block)",
            ));
        }
        if self.steps() == 0 && self.head_init == HeadInit::Random {
            return Err(TrainError::config(
                "--steps",
                0,
                "train for at least one step (only --head-init prototype or clusters makes a classifier without training)",
            ));
        }
        if !(self.cluster_labels.is_finite() && (0.0..=1.0).contains(&self.cluster_labels)) {
            return Err(TrainError::config(
                "--cluster-labels",
                self.cluster_labels,
                "use 0 (off) or a probability up to 1, e.g. 0.99",
            ));
        }
        if !(self.labeled_share.is_finite() && (0.0..1.0).contains(&self.labeled_share)) {
            return Err(TrainError::config(
                "--labeled-share",
                self.labeled_share,
                "use 0 (each image once) or a share of the rows below 1, e.g. 0.5",
            ));
        }
        if self.cluster_labels == 0.0 && (self.cluster_labels_agree || self.labeled_share > 0.0) {
            let (flag, value) = if self.cluster_labels_agree {
                ("--cluster-labels-agree", "true".to_string())
            } else {
                ("--labeled-share", self.labeled_share.to_string())
            };
            return Err(TrainError::config(
                flag,
                value,
                "acts on the images --cluster-labels joins: give --cluster-labels too (e.g. 0.5)",
            ));
        }
        if self.head_init == HeadInit::Clusters || self.cluster_labels > 0.0 {
            // the cluster head reads the parent's whole backbone, as the parent trained it
            let head_layers = self.head_init == HeadInit::Clusters && !self.head.0.is_empty();
            let surgery = [
                ("--drop-top", (self.drop_top > 0).then(|| self.drop_top.to_string())),
                ("--replace-top", (self.replace_top > 0).then(|| self.replace_top.to_string())),
                ("--add-hidden", self.add_hidden.as_ref().map(ToString::to_string)),
                ("--head", head_layers.then(|| self.head.to_string())),
            ];
            if let Some((flag, Some(value))) = surgery.iter().find(|(_, set)| set.is_some()) {
                return Err(TrainError::config(
                    flag,
                    value,
                    "--head-init clusters and --cluster-labels read the parent's cluster head on its whole backbone: leave the backbone (and, for the head init, the head) as they are",
                ));
            }
        }
        if !(self.warmup.is_finite() && (0.0..1.0).contains(&self.warmup)) {
            return Err(TrainError::config("--warmup", self.warmup, "use a share of the phase in [0, 1), e.g. 0.05"));
        }
        if !(self.label_smoothing.is_finite() && (0.0..1.0).contains(&self.label_smoothing)) {
            return Err(TrainError::config(
                "--label-smoothing",
                self.label_smoothing,
                "use a value in [0, 1), e.g. 0.1",
            ));
        }
        let ranges: [(&str, f64, f64, &str); 8] = [
            ("--augment-rotate", self.augment_rotate, 180.0, "degrees, e.g. 15"),
            ("--augment-shift", self.augment_shift, 0.5, "a fraction of the side, e.g. 0.1 (not pixels)"),
            ("--augment-scale", self.augment_scale, 0.9, "a relative change, e.g. 0.1"),
            ("--augment-shear", self.augment_shear, 60.0, "degrees, e.g. 10"),
            ("--augment-elastic", self.augment_elastic, 100.0, "pixels, e.g. 34 on 28x28 images"),
            ("--augment-brightness", self.augment_brightness, 0.99, "a relative change, e.g. 0.2"),
            ("--augment-contrast", self.augment_contrast, 0.99, "a relative change, e.g. 0.2"),
            ("--augment-cutout", self.augment_cutout, 1.0, "a fraction of the side, e.g. 0.25"),
        ];
        for (flag, value, max, hint) in ranges {
            if !(value.is_finite() && (0.0..=max).contains(&value)) {
                return Err(TrainError::config(flag, value, &format!("use a value between 0 and {max}: {hint}")));
            }
        }
        Ok(())
    }

    /// How many blocks unfreeze on a backbone with `reused` reused blocks (at most all of them).
    pub fn unfreeze_count(&self, reused: usize) -> usize {
        self.unfreeze_top.min(reused)
    }

    /// Checks the settings that depend on how many blocks are reused.
    pub fn validate_for(&self, reused: usize) -> Result<()> {
        self.validate()?;
        if let Some(every) = self.unfreeze_every {
            let top = self.unfreeze_count(reused);
            let stages = top.max(1) - 1;
            if every == 0 || every.saturating_mul(stages) >= self.unfreeze_steps.max(1) {
                return Err(TrainError::config(
                    "--unfreeze-every",
                    every,
                    &format!(
                        "unfreezing {top} block(s) one every {every} steps needs more than {} --unfreeze-steps (got {}); \
                         lower --unfreeze-every or raise --unfreeze-steps",
                        every.saturating_mul(stages),
                        self.unfreeze_steps
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The `strata finetune` flags that turn `base` into these settings, in field order of the
    /// serialised form: a search trial's name, which reproduces the trial when typed.
    pub fn to_flags(&self, base: &FinetuneConfig) -> String {
        crate::flags::between(self, base).join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_flags_names_only_what_differs() {
        let base = FinetuneConfig::default();
        assert_eq!(base.to_flags(&base), "");
        let trial = FinetuneConfig {
            drop_top: 1,
            unfreeze_top: 0,
            frozen_steps: 500,
            unfreeze_steps: 0,
            add_hidden: Some(ArchSpec::parse("dense128").unwrap()),
            head: "256,128".parse().unwrap(),
            lr: 3e-4,
            decay_norm_and_bias: true,
            ..base.clone()
        };
        let flags = trial.to_flags(&base);
        for part in [
            "--drop-top 1",
            "--unfreeze-top 0",
            "--frozen-steps 500",
            "--unfreeze-steps 0",
            "--add-hidden dense128",
            "--head 256,128",
            "--lr 0.0003",
            "--decay-norm-and-bias",
        ] {
            assert!(flags.contains(part), "{part} missing from {flags}");
        }
        assert!(!flags.contains("--batch"), "{flags}");
    }

    #[test]
    fn ranges_are_checked_with_the_flag_named() {
        let bad = |f: &dyn Fn(&mut FinetuneConfig)| {
            let mut c = FinetuneConfig::default();
            f(&mut c);
            c.validate_for(3).unwrap_err().to_string()
        };
        assert!(bad(&|c| c.lr_mult = 0.0).contains("--lr-mult"));
        assert!(bad(&|c| c.lr_decay = 1.5).contains("--lr-decay"));
        assert!(bad(&|c| c.batch = 0).contains("--batch"));
        assert!(bad(&|c| c.weight_decay = -1.0).contains("--weight-decay"));
        // the cluster-label companions need cluster labels, and a share below 1
        assert!(bad(&|c| c.cluster_labels_agree = true).contains("--cluster-labels-agree"));
        assert!(bad(&|c| c.labeled_share = 0.5).contains("give --cluster-labels too"));
        assert!(
            bad(&|c| {
                c.cluster_labels = 0.5;
                c.labeled_share = 1.0
            })
            .contains("--labeled-share")
        );
        assert!(
            bad(&|c| {
                c.frozen_steps = 0;
                c.unfreeze_steps = 0
            })
            .contains("--steps")
        );
        assert!(
            bad(&|c| {
                c.unfreeze_top = 3;
                c.unfreeze_every = Some(1000)
            })
            .contains("--unfreeze-every")
        );
    }

    #[test]
    fn a_config_table_needs_only_what_it_changes_and_refuses_typos() {
        let c: FinetuneConfig = serde_json::from_str(r#"{"frozen_steps": 10, "head": "32"}"#).unwrap();
        assert_eq!(c, FinetuneConfig { frozen_steps: 10, head: "32".parse().unwrap(), ..Default::default() });
        let e = serde_json::from_str::<FinetuneConfig>(r#"{"frozen_stepz": 10}"#).unwrap_err().to_string();
        assert!(e.contains("frozen_stepz"), "{e}");
        // the serialised form reads back as the same settings
        let all = FinetuneConfig { add_hidden: Some(ArchSpec::parse("dense8").unwrap()), ..c };
        assert_eq!(serde_json::from_value::<FinetuneConfig>(serde_json::to_value(&all).unwrap()).unwrap(), all);
    }
}
