//! The one training loop of strata. Pretraining methods and stage two are [`Objective`]s
//! plugged into it; the engine owns everything around their steps: the seeded batch order,
//! phases, the log window, progress events, checkpoints and their cadence, stopping on
//! request, resuming from a checkpoint, and naming the tensor when training diverges.

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

/// The figures of one step: `loss` first, then anything else worth averaging over a log
/// window (loss terms, accuracies).
pub type Figures = Vec<(&'static str, f64)>;

/// One phase of a run: a name for logs, checkpoints and the manifest, and its steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhasePlan {
    /// name in logs, checkpoints and the manifest
    pub name: String,
    /// optimiser steps
    pub steps: usize,
}

/// A log window that just closed.
#[derive(Debug, Clone)]
pub struct Window<'a> {
    /// index of the phase in the plan
    pub phase: usize,
    /// how many windows of this phase have closed, this one included
    pub index: usize,
    /// the mean of each figure over the window's rows
    pub means: &'a BTreeMap<String, f64>,
    /// passes over the rows completed when the window ended
    pub epoch: u64,
}

/// What a method or fine-tuning schedule does; the engine calls it.
pub trait Objective {
    /// Makes phase `index` of the plan take effect (freezing, learning rates); called when
    /// the phase starts, also when a run resumes inside it.
    fn begin_phase(&mut self, _index: usize, _phase: &PhasePlan) -> Result<()> {
        Ok(())
    }

    /// One optimiser step on dataset rows `idx` (step number `step`, counted over all phases).
    fn step(&mut self, idx: &[usize], step: usize) -> Result<Figures>;

    /// Called when a log window closes; returns extra fields of its log line (a string field
    /// `warning` is also shown to the user at once). May write pictures.
    fn end_window(&mut self, _window: &Window) -> Result<serde_json::Value> {
        Ok(serde_json::Value::Null)
    }

    /// Called when phase `index` ends, `seconds` into it; returns the one-line summary shown
    /// to the user (None: the last window's means).
    fn end_phase(&mut self, _index: usize, _last: &BTreeMap<String, f64>, _seconds: f64) -> Result<Option<String>> {
        Ok(None)
    }

    /// Everything the objective needs to continue: weights, optimiser state, what it recorded.
    fn save(&self) -> Result<Parts>;

    /// Continues from the parts [`Objective::save`] wrote.
    fn restore(&mut self, parts: &Parts) -> Result<()>;

    /// The first tensor holding NaN or infinity, to name it when training diverges.
    fn first_nonfinite(&self) -> Option<String>;
}

/// How the engine runs an objective.
#[derive(Debug, Clone)]
pub struct Plan {
    /// the phases, in order
    pub phases: Vec<PhasePlan>,
    /// the dataset rows a batch is drawn from
    pub rows: Vec<usize>,
    /// rows per step
    pub batch: usize,
    /// seed of the batch order
    pub seed: u64,
    /// at least this many rows per step: a shorter last batch of an epoch borrows from the next
    pub min_batch: usize,
    /// steps per log window (a phase's end also closes one)
    pub window: usize,
    /// when the recorder's policy names no interval: a checkpoint every this many steps
    /// (None: only at window or phase ends)
    pub checkpoint_every: Option<usize>,
    /// a checkpoint whenever a window closes (pretraining: every epoch)
    pub checkpoint_windows: bool,
}

impl Plan {
    /// Optimiser steps in one pass over the rows.
    pub fn steps_per_epoch(rows: usize, batch: usize) -> usize {
        rows.div_ceil(batch.max(1)).max(1)
    }
}

/// How the run went.
#[derive(Debug, Clone)]
pub struct Summary {
    /// mean figures of the last log window
    pub last: BTreeMap<String, f64>,
    /// optimiser steps taken
    pub steps: usize,
    /// wall-clock seconds, those before a resume included
    pub seconds: f64,
}

impl Summary {
    /// The figures a run reports in its manifest: the last window's means (`final_*`), steps,
    /// seconds and images per second at `batch` images a step.
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

/// The usual checkpoint parts: a model (with its parameter ids) and its optimisers by name.
pub fn save_parts<M: Module>(model: &Option<M>, optims: &[(&str, &ModuleOptimizer)]) -> Result<Parts> {
    let Some(model) = model else { unreachable!("the model is put back after every step") };
    let mut parts = Parts::new();
    parts.insert(MODEL_PART.into(), module_bytes(model)?);
    for (name, optim) in optims {
        parts.insert((*name).into(), optimizer_bytes(optim)?);
    }
    Ok(parts)
}

/// Puts the model of [`save_parts`] back into `slot`.
pub fn restore_model<M: Module>(slot: &mut Option<M>, parts: &Parts) -> Result<()> {
    let Some(model) = slot.take() else { unreachable!("the model is put back after every step") };
    *slot = Some(load_module(model, part(parts, MODEL_PART)?, MODEL_PART)?);
    Ok(())
}

/// Puts the optimiser state called `name` back into `optim`.
pub fn restore_optim(optim: &mut ModuleOptimizer, parts: &Parts, name: &str) -> Result<()> {
    *optim = load_optimizer(optim.clone(), part(parts, name)?, name)?;
    Ok(())
}

/// The first non-finite tensor of the model in `slot`.
pub fn nonfinite<M: Module>(slot: &Option<M>) -> Option<String> {
    slot.as_ref().and_then(strata_nn::weights::first_nonfinite)
}

/// The engine's position, saved in each checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LoopState {
    /// index of the current phase
    phase: usize,
    /// steps taken in it
    in_phase: usize,
    /// steps taken in all phases
    step: usize,
    schedule: SchedulePosition,
    /// running sums of the current window, and the rows they cover
    sums: BTreeMap<String, f64>,
    count: usize,
    /// mean figures of the last closed window
    last: BTreeMap<String, f64>,
    /// seconds spent in the current phase and in the whole run before the checkpoint
    phase_seconds: f64,
    seconds: f64,
}

/// Sends `event` to both subscribers of the run's stream: the recorder (which may fail, e.g.
/// on a full disk) and the display.
fn emit(event: Event, observer: &mut dyn Observer, rec: &mut dyn Recorder) -> Result<()> {
    rec.record(&event)?;
    observer.event(event);
    Ok(())
}

/// Writes a checkpoint of `objective` at `state`, after checking that its weights are finite.
fn checkpoint(name: &str, state: &LoopState, objective: &dyn Objective, rec: &mut dyn Recorder) -> Result<()> {
    refuse_nonfinite(objective.first_nonfinite(), name, state.step)?;
    let metric = state.last.get("loss").copied().filter(|m| m.is_finite());
    let json =
        serde_json::to_value(state).map_err(|e| TrainError::BadRun { path: name.into(), reason: e.to_string() })?;
    rec.checkpoint(Checkpoint {
        step: state.step,
        phase: name.into(),
        state: json,
        parts: objective.save()?,
        metric,
        metrics_len: 0,
    })
}

/// Runs `objective` through the phases of `plan`. Checkpoints go to `rec` as its policy
/// says; a checkpoint it hands back is continued from; a stop it asks for ends the run after
/// a checkpoint with [`TrainError::Interrupted`].
pub fn run(
    plan: &Plan,
    objective: &mut dyn Objective,
    observer: &mut dyn Observer,
    rec: &mut dyn Recorder,
) -> Result<Summary> {
    let rows = plan.rows.len();
    let mut schedule = BatchSchedule::new(plan.rows.clone(), plan.batch, plan.seed);
    let window = plan.window.max(1);
    let policy = rec.policy();
    let every = policy.and_then(|p| p.every_steps.or(plan.checkpoint_every)).map(|n| n.max(1));
    let mut st = LoopState {
        phase: 0,
        in_phase: 0,
        step: 0,
        schedule: schedule.position(),
        sums: BTreeMap::new(),
        count: 0,
        last: BTreeMap::new(),
        phase_seconds: 0.0,
        seconds: 0.0,
    };
    if let Some(ck) = rec.take_resume() {
        if !plan.phases.iter().any(|p| p.name == ck.phase) {
            let names: Vec<&str> = plan.phases.iter().map(|p| p.name.as_str()).collect();
            return Err(TrainError::BadRun {
                path: ck.phase.clone().into(),
                reason: format!("the checkpoint was taken in phase `{}`, not in one of {names:?}", ck.phase),
            });
        }
        st = serde_json::from_value(ck.state).map_err(|e| TrainError::BadRun {
            path: ck.phase.clone().into(),
            reason: format!("checkpoint state: {e}"),
        })?;
        schedule.seek(st.schedule);
        objective.restore(&ck.parts)?;
    }
    let run_started = Instant::now();
    let run_seconds = |st: &LoopState, t: Instant| st.seconds + t.elapsed().as_secs_f64();
    while st.phase < plan.phases.len() {
        let phase = &plan.phases[st.phase];
        let name = phase.name.as_str();
        objective.begin_phase(st.phase, phase)?;
        emit(Event::PhaseStart { phase: name.into(), steps: phase.steps }, observer, rec)?;
        let phase_started = Instant::now();
        let phase_seconds = |st: &LoopState| st.phase_seconds + phase_started.elapsed().as_secs_f64();
        // the state a checkpoint saves: the loop position with the time spent so far
        let snapshot = |st: &LoopState| LoopState {
            phase_seconds: phase_seconds(st),
            seconds: run_seconds(st, run_started),
            ..st.clone()
        };
        let mut window_started = Instant::now();
        while st.in_phase < phase.steps {
            let mut idx = schedule.next_batch();
            while idx.len() < plan.min_batch.min(rows) {
                let more = schedule.next_batch();
                let room = plan.min_batch - idx.len();
                idx.extend(more.into_iter().take(room));
            }
            let figures = objective.step(&idx, st.step).map_err(|e| name_nonfinite(e, objective.first_nonfinite()))?;
            st.step += 1;
            st.in_phase += 1;
            st.schedule = schedule.position();
            for (k, v) in &figures {
                *st.sums.entry((*k).to_string()).or_default() += v * idx.len() as f64;
            }
            st.count += idx.len();
            let loss = figures.first().map(|f| f.1).unwrap_or(f64::NAN) as f32;
            emit(Event::Step { phase: name.into(), step: st.in_phase, loss }, observer, rec)?;
            let phase_end = st.in_phase == phase.steps;
            let window_end = st.in_phase.is_multiple_of(window) || phase_end;
            if window_end {
                let secs = window_started.elapsed().as_secs_f64();
                window_started = Instant::now();
                st.last =
                    std::mem::take(&mut st.sums).into_iter().map(|(k, v)| (k, v / st.count.max(1) as f64)).collect();
                let closed = Window {
                    phase: st.phase,
                    index: st.in_phase.div_ceil(window),
                    means: &st.last,
                    epoch: schedule.epoch(),
                };
                let extra = objective.end_window(&closed)?;
                let mut line = serde_json::json!({
                    "phase": name, "step": st.step, "seconds": secs,
                    "images_per_s": st.count as f64 / secs.max(1e-9),
                });
                for (k, v) in &st.last {
                    line[k] = serde_json::json!(v);
                }
                if let Some(w) = extra.get("warning").and_then(|w| w.as_str()) {
                    emit(Event::Warning { phase: name.into(), message: w.into() }, observer, rec)?;
                }
                if let serde_json::Value::Object(map) = extra {
                    for (k, v) in map {
                        line[k] = v;
                    }
                }
                st.count = 0;
                emit(Event::Window { phase: name.into(), line }, observer, rec)?;
            }
            let stop = rec.stop_requested();
            let last_step = phase_end && st.phase + 1 == plan.phases.len();
            if window_end && plan.checkpoint_windows {
                if policy.is_some() || stop {
                    checkpoint(name, &snapshot(&st), objective, rec)?;
                }
                if stop && !last_step {
                    return Err(TrainError::Interrupted { step: st.step });
                }
            } else if !phase_end && (stop || every.is_some_and(|n| st.step.is_multiple_of(n))) {
                checkpoint(name, &snapshot(&st), objective, rec)?;
                if stop {
                    return Err(TrainError::Interrupted { step: st.step });
                }
            }
        }
        let summary = match objective.end_phase(st.phase, &st.last, phase_seconds(&st))? {
            Some(s) => s,
            None => st.last.iter().map(|(k, v)| format!("{k} {v:.5}")).collect::<Vec<_>>().join(", "),
        };
        emit(Event::PhaseEnd { phase: name.into(), summary }, observer, rec)?;
        st.phase += 1;
        st.in_phase = 0;
        st.phase_seconds = 0.0;
        // a checkpoint at every phase change but the last (the run is complete right after it),
        // unless the window that closed the phase was just checkpointed
        let stop = rec.stop_requested();
        if (policy.is_some() || stop) && st.phase < plan.phases.len() && !plan.checkpoint_windows {
            let saved = LoopState { seconds: run_seconds(&st, run_started), ..st.clone() };
            checkpoint(&plan.phases[st.phase].name, &saved, objective, rec)?;
            if stop {
                return Err(TrainError::Interrupted { step: st.step });
            }
        }
    }
    let seconds = run_seconds(&st, run_started);
    Ok(Summary { last: st.last, steps: st.step, seconds })
}
