//! Pretraining on the engine: one phase of `epochs` passes over the unlabeled rows, a log
//! line and (when checkpointing) a checkpoint per epoch, and the helpers the methods share
//! to save and restore their models.

use super::PretrainConfig;
pub(crate) use crate::checkpoint::OPTIM_PART;
use crate::checkpoint::{MODEL_PART, Parts, load_module, load_optimizer, module_bytes, optimizer_bytes, part};
use crate::engine::{self, PhasePlan, Plan, Summary, Window};
pub(crate) use crate::engine::{Figures, Objective};
use crate::error::Result;
use crate::progress::Observer;
use crate::recorder::Recorder;
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use std::collections::BTreeMap;

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

/// A method's objective seen by the engine: its windows are epochs, whose log lines carry the
/// epoch number and the learning rate.
struct Epochs<'a> {
    inner: &'a mut dyn Objective,
    lr: f64,
}

impl Objective for Epochs<'_> {
    fn step(&mut self, idx: &[usize], step: usize) -> Result<Figures> {
        self.inner.step(idx, step)
    }
    fn end_window(&mut self, window: &Window) -> Result<serde_json::Value> {
        let mut line = serde_json::json!({ "epoch": window.index, "lr": self.lr });
        if let serde_json::Value::Object(extra) = self.inner.end_window(window)? {
            for (k, v) in extra {
                line[k] = v;
            }
        }
        Ok(line)
    }
    fn save(&self) -> Result<Parts> {
        self.inner.save()
    }
    fn restore(&mut self, parts: &Parts) -> Result<()> {
        self.inner.restore(parts)
    }
    fn first_nonfinite(&self) -> Option<String> {
        self.inner.first_nonfinite()
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
    rec: &mut dyn Recorder,
) -> Result<LoopSummary> {
    let steps_per_epoch = Plan::steps_per_epoch(images, cfg.batch);
    let plan = Plan {
        phases: vec![PhasePlan { name: phase.into(), steps: cfg.epochs * steps_per_epoch }],
        rows: (0..images).collect(),
        batch: cfg.batch,
        seed: cfg.seed,
        min_batch,
        window: steps_per_epoch,
        checkpoint_every: None,
        checkpoint_windows: true,
    };
    let Summary { last, steps, seconds } =
        engine::run(&plan, &mut Epochs { inner: objective, lr: cfg.lr }, observer, rec)?;
    Ok(LoopSummary { last, steps, seconds })
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
