//! The epoch loop every pretraining method shares: seeded batches, one optimiser step per
//! batch (the method's [`Objective`]), divergence checks, progress events and one log line
//! per epoch with the mean of each figure the method reports.

use super::PretrainConfig;
use crate::error::Result;
use crate::progress::{Event, Observer};
use crate::step::BatchSchedule;
use std::collections::BTreeMap;
use std::time::Instant;

/// The figures of one step: `loss` first, then anything else worth averaging per epoch
/// (loss terms, accuracies).
pub(crate) type Figures = Vec<(&'static str, f64)>;

/// What a method does per step and per epoch.
pub(crate) trait Objective {
    /// One optimiser step on dataset rows `idx` (global step number `step`).
    fn step(&mut self, idx: &[usize], step: usize) -> Result<Figures>;

    /// Called after each epoch with its mean figures; may write artifacts; returns extra log
    /// fields, and a string field `warning` is also shown to the user at once.
    fn end_epoch(&mut self, _epoch: usize, _means: &BTreeMap<String, f64>) -> Result<serde_json::Value> {
        Ok(serde_json::Value::Null)
    }
}

/// The model an objective held through the loop, in inference mode.
pub(crate) fn trained<M: burn::module::Module>(slot: Option<M>) -> M {
    slot.unwrap_or_else(|| unreachable!("the model is put back after every step")).valid()
}

/// How the loop went.
pub(crate) struct LoopSummary {
    /// mean figures of the last epoch
    pub last: BTreeMap<String, f64>,
    /// optimiser steps taken
    pub steps: usize,
    /// wall-clock seconds
    pub seconds: f64,
}

impl LoopSummary {
    /// The metrics every method reports in its manifest.
    pub fn metrics(&self, batch: usize) -> serde_json::Value {
        let mut m = serde_json::json!({
            "final_loss": self.last.get("loss"), "steps": self.steps, "seconds": self.seconds,
            "images_per_s": (self.steps * batch) as f64 / self.seconds.max(1e-9),
        });
        for (k, v) in &self.last {
            if k != "loss" {
                m[format!("final_{k}")] = serde_json::json!(v);
            }
        }
        m
    }
}

/// Runs `cfg.epochs` passes over `images` rows (phase name `phase`) through `objective`.
/// `min_batch` rows per step at least (a shorter last batch borrows from the next epoch).
pub(crate) fn run_epochs(
    phase: &str,
    cfg: &PretrainConfig,
    images: usize,
    min_batch: usize,
    objective: &mut dyn Objective,
    observer: &mut dyn Observer,
    log: &mut dyn FnMut(serde_json::Value) -> Result<()>,
) -> Result<LoopSummary> {
    let mut schedule = BatchSchedule::new((0..images).collect(), cfg.batch, cfg.seed);
    let steps_per_epoch = schedule.steps_per_epoch();
    observer.event(Event::PhaseStart { phase: phase.into(), steps: cfg.epochs * steps_per_epoch });
    let started = Instant::now();
    let mut step = 0usize;
    let mut last = BTreeMap::new();
    for epoch in 0..cfg.epochs {
        let t0 = Instant::now();
        let mut sums: BTreeMap<String, f64> = BTreeMap::new();
        let mut count = 0usize;
        for _ in 0..steps_per_epoch {
            let mut idx = schedule.next_batch();
            while idx.len() < min_batch.min(images) {
                let more = schedule.next_batch();
                let room = min_batch - idx.len();
                idx.extend(more.into_iter().take(room));
            }
            let figures = objective.step(&idx, step)?;
            step += 1;
            for (k, v) in &figures {
                *sums.entry((*k).to_string()).or_default() += v * idx.len() as f64;
            }
            count += idx.len();
            let loss = figures.first().map(|f| f.1).unwrap_or(f64::NAN) as f32;
            observer.event(Event::Step { phase: phase.into(), step, loss });
        }
        let secs = t0.elapsed().as_secs_f64();
        last = sums.into_iter().map(|(k, v)| (k, v / count.max(1) as f64)).collect();
        let extra = objective.end_epoch(epoch + 1, &last)?;
        let mut line = serde_json::json!({
            "phase": phase, "epoch": epoch + 1, "step": step, "lr": cfg.lr, "seconds": secs,
            "images_per_s": count as f64 / secs.max(1e-9),
        });
        for (k, v) in &last {
            line[k] = serde_json::json!(v);
        }
        if let Some(w) = extra.get("warning").and_then(|w| w.as_str()) {
            observer.event(Event::Warning { phase: phase.into(), message: w.into() });
        }
        if let serde_json::Value::Object(map) = extra {
            for (k, v) in map {
                line[k] = v;
            }
        }
        log(line)?;
    }
    let summary = last.iter().map(|(k, v)| format!("{k} {v:.5}")).collect::<Vec<_>>().join(", ");
    observer.event(Event::PhaseEnd { phase: phase.into(), summary });
    Ok(LoopSummary { last, steps: step, seconds: started.elapsed().as_secs_f64() })
}
