//! The phases of stage two: which backbone blocks train in each, at which rate, and the
//! freezing and per-block learning rates that put a phase into effect.

use super::config::FinetuneConfig;
use crate::layout::BackbonePlan;
use burn::module::{Module, ParamGroup};
use burn::optim::lr_scheduler::module_lr_scheduler::{ModuleLearningRate, ModuleLrScheduler};
use strata_nn::{Classifier, weights};

/// One phase of the schedule: how long, and the learning rate of each backbone block.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    /// name in logs and the manifest
    pub name: String,
    /// optimiser steps
    pub steps: usize,
    /// learning rate of each backbone block; None = frozen
    pub block_lr: Vec<Option<f64>>,
}

impl Phase {
    /// Indices of the trainable backbone blocks.
    pub fn trainable(&self) -> Vec<usize> {
        (0..self.block_lr.len()).filter(|&i| self.block_lr[i].is_some()).collect()
    }
}

/// The phases of `cfg`: frozen, then the top reused blocks unfrozen (at once, or one more
/// every `unfreeze_every` steps), each unfrozen block at `lr × lr_mult × lr_decay^depth`
/// where depth counts blocks down from the topmost reused one. New blocks always train at `lr`.
pub fn plan(cfg: &FinetuneConfig, backbone: &BackbonePlan) -> Vec<Phase> {
    let n = backbone.origins.len();
    if backbone.is_scratch() {
        return vec![Phase { name: "scratch".into(), steps: cfg.steps(), block_lr: vec![Some(cfg.lr); n] }];
    }
    let reused = backbone.reused();
    let base: Vec<Option<f64>> = (0..n).map(|i| (!reused.contains(&i)).then_some(cfg.lr)).collect();
    let unfrozen = |count: usize| -> Vec<Option<f64>> {
        let mut lrs = base.clone();
        for (depth, &i) in reused.iter().rev().take(count).enumerate() {
            lrs[i] = Some(cfg.lr * cfg.lr_mult * cfg.lr_decay.powi(depth as i32));
        }
        lrs
    };
    let mut phases = vec![Phase { name: "frozen".into(), steps: cfg.frozen_steps, block_lr: base.clone() }];
    let top = cfg.unfreeze_count(reused.len());
    match cfg.unfreeze_every {
        Some(every) if top > 1 => {
            for count in 1..=top {
                let steps = if count < top { every } else { cfg.unfreeze_steps.saturating_sub(every * (top - 1)) };
                phases.push(Phase { name: format!("unfrozen-{count}"), steps, block_lr: unfrozen(count) });
            }
        }
        _ => phases.push(Phase { name: "unfrozen".into(), steps: cfg.unfreeze_steps, block_lr: unfrozen(top) }),
    }
    phases.into_iter().filter(|p| p.steps > 0).collect()
}

/// The peak learning rates of a phase: the head's as the base, one group per trainable
/// backbone block with its own rate; the schedule scales them all by one factor per step.
pub struct PhaseRates {
    head: f64,
    groups: Vec<(ParamGroup, f64)>,
}

impl PhaseRates {
    /// Every rate times `factor` (the schedule's value at this step).
    pub fn at(&self, factor: f64) -> ModuleLearningRate {
        let mut policy = ModuleLrScheduler::new(self.head * factor);
        for (group, lr) in &self.groups {
            policy = policy.with_group(group.clone(), lr * factor);
        }
        policy.step()
    }
}

/// The peak rates of `phase` for `model`'s parameters, the head at `head_lr`.
pub fn phase_rates(model: &Classifier, phase: &Phase, head_lr: f64) -> PhaseRates {
    let groups = phase
        .block_lr
        .iter()
        .enumerate()
        .filter_map(|(i, lr)| {
            let (lr, block) = (lr.as_ref()?, model.backbone.get(i)?);
            Some((ParamGroup::from_ids(weights::param_ids(block).into_values().collect()), *lr))
        })
        .collect();
    PhaseRates { head: head_lr, groups }
}

/// Freezes the blocks `phase` leaves frozen (which also switches their batch norm to running
/// statistics, left untouched) and unfreezes the others.
pub fn apply_freeze(model: Classifier, phase: &Phase) -> Classifier {
    let Classifier { backbone, head } = model;
    let backbone = backbone
        .into_iter()
        .enumerate()
        .map(|(i, b)| if phase.block_lr.get(i).copied().flatten().is_some() { b.unfreeze() } else { b.freeze() })
        .collect();
    Classifier { backbone, head }
}
