//! How a run is checkpointed, stopped and resumed, and what the user reads when it stops.

use crate::error::{Result, RunError};
use std::path::Path;
use strata_train::run_dir::JobRecord;
use strata_train::{CheckpointPolicy, RunWriter, StopFlag, TrainError};

/// How a run is checkpointed, stopped and resumed. The default (library calls, `demo`, the
/// examples) writes no checkpoints: only a command that can be given `--resume` makes
/// resumable runs.
#[derive(Debug, Clone, Default)]
pub struct RunControl {
    /// write checkpoints and the job file, so that `--resume` can continue the run
    pub resumable: bool,
    /// when checkpoints are written and how many are kept
    pub policy: CheckpointPolicy,
    /// keep them after the run completes
    pub keep_checkpoints: bool,
    /// raised to stop after the current step (with a checkpoint)
    pub stop: StopFlag,
    /// continue the interrupted run at `--out` instead of starting one
    pub resume: bool,
}

impl RunControl {
    /// The run writer: a new resumable run, or the interrupted one reopened.
    pub fn writer(&self, command: &str, out: &Path, force: bool, argv: &[String]) -> Result<RunWriter> {
        if !self.resumable {
            return Ok(RunWriter::create(out, force)?.with_checkpoints(None, false, self.stop.clone()));
        }
        let writer = if self.resume {
            RunWriter::resume(out)?.0
        } else {
            let job = JobRecord {
                command: command.into(),
                argv: argv.to_vec(),
                force,
                strata_version: env!("CARGO_PKG_VERSION").into(),
            };
            RunWriter::create_resumable(out, force, &job)?
        };
        Ok(writer.with_checkpoints(Some(self.policy), self.keep_checkpoints, self.stop.clone()))
    }
}

/// Turns a training error into what the user should read: how to resume after a stop, where
/// the last good checkpoint is after a divergence.
pub fn explain(e: TrainError, writer: &RunWriter, command: &str) -> RunError {
    let out = writer.target().to_path_buf();
    match (&e, writer.last_checkpoint()) {
        (TrainError::Interrupted { step, .. }, _) => {
            RunError::Stopped { step: *step, staging: writer.staging().to_path_buf(), command: command.into(), out }
        }
        (TrainError::Diverged { .. }, Some(step)) => RunError::Invalid(format!(
            "{e}. The last good checkpoint (step {step}) is kept in {}; continue from it at a lower rate with: strata {command} --resume {} --lr <lower>",
            writer.staging().display(),
            out.display()
        )),
        _ => e.into(),
    }
}
