//! The epoch loop every pretraining method shares: seeded batches, one optimiser step per
//! batch (the method's [`Objective`]), divergence checks, progress events and one log line
//! per epoch with the mean of each figure the method reports.

use super::PretrainConfig;
pub(crate) use crate::checkpoint::OPTIM_PART;
use crate::checkpoint::{
    Checkpoint, MODEL_PART, Parts, load_module, load_optimizer, module_bytes, name_nonfinite, optimizer_bytes, part,
    refuse_nonfinite,
};
use crate::error::{Result, TrainError};
use crate::progress::{Event, Observer};
use crate::recorder::Recorder;
use crate::step::{BatchSchedule, SchedulePosition};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use serde::{Deserialize, Serialize};
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

    /// Everything the objective needs to continue: weights, optimiser state, artifacts so far.
    fn save(&self) -> Result<Parts>;

    /// Continues from the parts [`Objective::save`] wrote.
    fn restore(&mut self, parts: &Parts) -> Result<()>;

    /// The first tensor holding NaN or infinity, to name it when training diverges.
    fn first_nonfinite(&self) -> Option<String>;
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

/// The loop's position, saved in each checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LoopState {
    /// epochs completed
    epoch: usize,
    /// steps taken in the current epoch
    in_epoch: usize,
    /// steps taken in this phase
    step: usize,
    schedule: SchedulePosition,
    /// running sums of the current epoch, and the rows they cover
    sums: BTreeMap<String, f64>,
    count: usize,
    /// mean figures of the last finished epoch
    last: BTreeMap<String, f64>,
    seconds: f64,
}

/// Writes a checkpoint of `objective` at `state`, after checking that its weights are finite.
fn checkpoint(phase: &str, state: &LoopState, objective: &dyn Objective, rec: &mut dyn Recorder) -> Result<()> {
    refuse_nonfinite(objective.first_nonfinite(), phase, state.step)?;
    let metric = state.last.get("loss").copied();
    let json =
        serde_json::to_value(state).map_err(|e| TrainError::BadRun { path: phase.into(), reason: e.to_string() })?;
    rec.checkpoint(Checkpoint {
        step: state.step,
        phase: phase.into(),
        state: json,
        parts: objective.save()?,
        metric,
        metrics_len: 0,
    })
}

/// Runs `cfg.epochs` passes over `images` rows (phase name `phase`) through `objective`.
/// `min_batch` rows per step at least (a shorter last batch borrows from the next epoch).
/// Checkpoints go to `rec` as its policy says; a checkpoint it hands back is continued from;
/// a stop it asks for ends the loop after a checkpoint with [`TrainError::Interrupted`].
pub(crate) fn run_epochs(
    phase: &str,
    cfg: &PretrainConfig,
    images: usize,
    min_batch: usize,
    objective: &mut dyn Objective,
    observer: &mut dyn Observer,
    rec: &mut dyn Recorder,
) -> Result<LoopSummary> {
    let mut schedule = BatchSchedule::new((0..images).collect(), cfg.batch, cfg.seed);
    let steps_per_epoch = schedule.steps_per_epoch();
    let policy = rec.policy();
    let mut st = LoopState {
        epoch: 0,
        in_epoch: 0,
        step: 0,
        schedule: schedule.position(),
        sums: BTreeMap::new(),
        count: 0,
        last: BTreeMap::new(),
        seconds: 0.0,
    };
    if let Some(ck) = rec.take_resume() {
        if ck.phase != phase {
            return Err(TrainError::BadRun {
                path: phase.into(),
                reason: format!("the checkpoint was taken in phase `{}`, not in this one", ck.phase),
            });
        }
        st = serde_json::from_value(ck.state)
            .map_err(|e| TrainError::BadRun { path: phase.into(), reason: format!("checkpoint state: {e}") })?;
        schedule.seek(st.schedule);
        objective.restore(&ck.parts)?;
    }
    observer.event(Event::PhaseStart { phase: phase.into(), steps: cfg.epochs * steps_per_epoch });
    let started = Instant::now()
        .checked_sub(std::time::Duration::from_secs_f64(st.seconds.max(0.0)))
        .unwrap_or_else(Instant::now);
    while st.epoch < cfg.epochs {
        let t0 = Instant::now();
        while st.in_epoch < steps_per_epoch {
            let mut idx = schedule.next_batch();
            while idx.len() < min_batch.min(images) {
                let more = schedule.next_batch();
                let room = min_batch - idx.len();
                idx.extend(more.into_iter().take(room));
            }
            let figures = match objective.step(&idx, st.step) {
                Err(e) => return Err(name_nonfinite(e, objective.first_nonfinite())),
                Ok(f) => f,
            };
            st.step += 1;
            st.in_epoch += 1;
            for (k, v) in &figures {
                *st.sums.entry((*k).to_string()).or_default() += v * idx.len() as f64;
            }
            st.count += idx.len();
            st.schedule = schedule.position();
            let loss = figures.first().map(|f| f.1).unwrap_or(f64::NAN) as f32;
            observer.event(Event::Step { phase: phase.into(), step: st.step, loss });
            let due = policy.and_then(|p| p.every_steps).is_some_and(|n| st.step.is_multiple_of(n.max(1)));
            let stop = rec.stop_requested();
            // the epoch's last step is checkpointed (and stopped) after its log line, below
            if (due || stop) && st.in_epoch < steps_per_epoch {
                st.seconds = started.elapsed().as_secs_f64();
                checkpoint(phase, &st, objective, rec)?;
                if stop {
                    return Err(TrainError::Interrupted { step: st.step });
                }
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        st.last = std::mem::take(&mut st.sums).into_iter().map(|(k, v)| (k, v / st.count.max(1) as f64)).collect();
        st.epoch += 1;
        let extra = objective.end_epoch(st.epoch, &st.last)?;
        let mut line = serde_json::json!({
            "phase": phase, "epoch": st.epoch, "step": st.step, "lr": cfg.lr, "seconds": secs,
            "images_per_s": st.count as f64 / secs.max(1e-9),
        });
        st.count = 0;
        st.in_epoch = 0;
        for (k, v) in &st.last {
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
        rec.log(line)?;
        let stop = rec.stop_requested();
        if policy.is_some() || stop {
            st.seconds = started.elapsed().as_secs_f64();
            checkpoint(phase, &st, objective, rec)?;
        }
        if stop && st.epoch < cfg.epochs {
            return Err(TrainError::Interrupted { step: st.step });
        }
    }
    let summary = st.last.iter().map(|(k, v)| format!("{k} {v:.5}")).collect::<Vec<_>>().join(", ");
    observer.event(Event::PhaseEnd { phase: phase.into(), summary });
    Ok(LoopSummary { last: st.last, steps: st.step, seconds: started.elapsed().as_secs_f64() })
}

/// The usual checkpoint parts: a model (with its parameter ids) and its optimisers by name.
pub(crate) fn save_parts<M: Module>(model: &Option<M>, optims: &[(&str, &ModuleOptimizer)]) -> Result<Parts> {
    let Some(model) = model else { unreachable!("the model is put back after every step") };
    let mut parts = Parts::new();
    parts.insert(MODEL_PART.into(), module_bytes(model)?);
    for (name, optim) in optims {
        parts.insert((*name).into(), optimizer_bytes(optim)?);
    }
    Ok(parts)
}

/// Puts the model of [`save_parts`] back into `slot`.
pub(crate) fn restore_model<M: Module>(slot: &mut Option<M>, parts: &Parts) -> Result<()> {
    let Some(model) = slot.take() else { unreachable!("the model is put back after every step") };
    *slot = Some(load_module(model, part(parts, MODEL_PART)?, MODEL_PART)?);
    Ok(())
}

/// Puts the optimiser state called `name` back into `optim`.
pub(crate) fn restore_optim(optim: &mut ModuleOptimizer, parts: &Parts, name: &str) -> Result<()> {
    *optim = load_optimizer(optim.clone(), part(parts, name)?, name)?;
    Ok(())
}

/// The first non-finite tensor of the model in `slot`.
pub(crate) fn nonfinite<M: Module>(slot: &Option<M>) -> Option<String> {
    slot.as_ref().and_then(strata_nn::weights::first_nonfinite)
}

/// The checkpoint methods of an [`Objective`] with one `model: Option<_>` and one `optim`.
macro_rules! one_model_checkpoint {
    () => {
        fn save(&self) -> $crate::error::Result<$crate::checkpoint::Parts> {
            $crate::methods::epochs::save_parts(&self.model, &[($crate::methods::epochs::OPTIM_PART, &self.optim)])
        }

        fn restore(&mut self, parts: &$crate::checkpoint::Parts) -> $crate::error::Result<()> {
            $crate::methods::epochs::restore_model(&mut self.model, parts)?;
            $crate::methods::epochs::restore_optim(&mut self.optim, parts, $crate::methods::epochs::OPTIM_PART)
        }

        fn first_nonfinite(&self) -> Option<String> {
            $crate::methods::epochs::nonfinite(&self.model)
        }
    };
}
pub(crate) use one_model_checkpoint;
