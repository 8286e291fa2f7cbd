//! The settings of stage two, declared once: their types, defaults, docs (the `--help` text)
//! and validation. `strata finetune`, `search`, `demo`, the examples and library callers all
//! read this one type; the manifest records it as it was used.

use crate::error::{Result, TrainError};
use crate::layout::Surgery;
use crate::optim::{OptimSettings, OptimizerKind};
use crate::step::validate_optim;
use serde::{Deserialize, Serialize};
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
    /// Randomly shift labeled images by up to this many pixels (0 = off).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = DEFAULT.augment_shift))]
    pub augment_shift: usize,
    /// Push every image through the frozen blocks at every step instead of caching their
    /// outputs once per phase (the cache is used only without augmentation).
    #[cfg_attr(feature = "cli", arg(long))]
    pub no_feature_cache: bool,
    /// Seed of the label subset, head initialisation, data order and augmentation.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = DEFAULT.seed))]
    pub seed: u64,
}

/// The defaults of every stage-two setting: the one place they are written.
pub const DEFAULT: FinetuneConfig = FinetuneConfig {
    reuse: None,
    drop_top: 0,
    replace_top: 0,
    add_hidden: None,
    head: HiddenLayers::NONE,
    frozen_steps: 400,
    unfreeze_steps: 600,
    unfreeze_top: 1,
    unfreeze_every: None,
    lr_mult: 0.1,
    lr_decay: 1.0,
    lr: 1e-3,
    optimizer: OptimizerKind::Adam,
    momentum: 0.9,
    weight_decay: 0.0,
    decay_norm_and_bias: false,
    batch: 64,
    augment_shift: 0,
    no_feature_cache: false,
    seed: 0,
};

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
        if self.steps() == 0 {
            return Err(TrainError::config("--steps", 0, "train for at least one step"));
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
        let (Ok(serde_json::Value::Object(me)), Ok(serde_json::Value::Object(them))) =
            (serde_json::to_value(self), serde_json::to_value(base))
        else {
            return String::new();
        };
        let mut flags = Vec::new();
        for (key, value) in &me {
            if them.get(key) == Some(value) {
                continue;
            }
            let flag = format!("--{}", key.replace('_', "-"));
            match value {
                serde_json::Value::Bool(true) => flags.push(flag),
                // a switch cannot be typed off, nor an optional setting unset: the base has them
                serde_json::Value::Bool(false) | serde_json::Value::Null => {}
                serde_json::Value::String(s) => flags.push(format!("{flag} {s}")),
                other => flags.push(format!("{flag} {other}")),
            }
        }
        flags.join(" ")
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
            frozen_steps: 1000,
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
            "--frozen-steps 1000",
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
                c.unfreeze_every = Some(300)
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
