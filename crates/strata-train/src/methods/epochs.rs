//! Pretraining on the engine: one phase of `epochs` passes over the unlabeled rows, a log
//! line and (when checkpointing) a checkpoint per epoch, and the helpers the methods share
//! to save and restore their models.

use super::PretrainConfig;
pub(crate) use crate::checkpoint::OPTIM_PART;
use crate::checkpoint::Parts;
use crate::engine::{self, PhasePlan, Plan, Summary, Window};
pub(crate) use crate::engine::{Figures, Objective, nonfinite, restore_model, restore_optim, save_parts};
use crate::error::Result;
use crate::progress::Observer;
use crate::recorder::Recorder;

/// The model an objective held through the loop, in inference mode.
pub(crate) fn trained<M: burn::module::Module>(slot: Option<M>) -> M {
    slot.unwrap_or_else(|| unreachable!("the model is put back after every step")).valid()
}

/// A method's objective seen by the engine: its windows are epochs, whose log lines carry the
/// epoch number and the learning rate (`--lr`, unless the method reports the epoch's mean rate
/// as its `lr` figure, as the scheduled ones do).
struct Epochs<'a> {
    inner: &'a mut dyn Objective,
    lr: f64,
}

impl Objective for Epochs<'_> {
    fn step(&mut self, idx: &[usize], step: usize) -> Result<Figures> {
        self.inner.step(idx, step)
    }
    fn end_window(&mut self, window: &Window) -> Result<serde_json::Value> {
        let mut line = serde_json::json!({ "epoch": window.index });
        if !window.means.contains_key("lr") {
            line["lr"] = serde_json::json!(self.lr);
        }
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
) -> Result<Summary> {
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
    engine::run(&plan, &mut Epochs { inner: objective, lr: cfg.lr }, observer, rec)
}

/// The checkpoint methods of an [`Objective`] with one `model: Option<_>` and one `optim`.
macro_rules! one_model_checkpoint {
    () => {
        fn save(&self) -> $crate::error::Result<$crate::checkpoint::Parts> {
            $crate::engine::save_parts(&self.model, &[($crate::checkpoint::OPTIM_PART, &self.optim)])
        }

        fn restore(&mut self, parts: &$crate::checkpoint::Parts) -> $crate::error::Result<()> {
            $crate::engine::restore_model(&mut self.model, parts)?;
            $crate::engine::restore_optim(&mut self.optim, parts, $crate::checkpoint::OPTIM_PART)
        }

        fn first_nonfinite(&self) -> Option<String> {
            $crate::engine::nonfinite(&self.model)
        }
    };
}
pub(crate) use one_model_checkpoint;
