//! Where a training loop's output goes while it runs: log lines, checkpoints, and the
//! request to stop early. A run directory implements it with files; a plain closure
//! implements the log-only part (search trials, tests).

use crate::checkpoint::{Checkpoint, CheckpointPolicy};
use crate::error::Result;
use crate::progress::Event;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A shared "please stop" flag: set by a signal handler (or a test), read by the loop after
/// each optimiser step.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// A flag not yet raised.
    pub fn new() -> Self {
        Self::default()
    }
    /// Asks the loop to stop after its current step.
    pub fn raise(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether a stop was asked for.
    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The sink of a training loop: it takes in the run's events (the same stream the progress
/// display sees), stores checkpoints, hands over the one to resume from, and says when to stop.
pub trait Recorder {
    /// Takes in one event of the run; by default the line of each closed log window goes to
    /// [`Recorder::log`] and the rest is for the display alone.
    fn record(&mut self, event: &Event) -> Result<()> {
        match event {
            Event::Window { line, .. } => self.log(line.clone()),
            _ => Ok(()),
        }
    }

    /// Appends one JSON object to the run's log (`metrics.jsonl`).
    fn log(&mut self, line: serde_json::Value) -> Result<()>;

    /// When checkpoints are due; None = the loop writes none.
    fn policy(&self) -> Option<CheckpointPolicy> {
        None
    }

    /// Stores a checkpoint (the recorder fills in how much of the log it covers).
    fn checkpoint(&mut self, _ck: Checkpoint) -> Result<()> {
        Ok(())
    }

    /// The checkpoint to continue from, handed over once.
    fn take_resume(&mut self) -> Option<Checkpoint> {
        None
    }

    /// The phase of the checkpoint [`Recorder::take_resume`] will hand over, without taking it
    /// (a method with several phases skips those finished before it).
    fn resume_phase(&self) -> Option<String> {
        None
    }

    /// Whether the loop should stop after its current step (checkpoint first).
    fn stop_requested(&self) -> bool {
        false
    }
}

impl<F: FnMut(serde_json::Value) -> Result<()>> Recorder for F {
    fn log(&mut self, line: serde_json::Value) -> Result<()> {
        self(line)
    }
}

/// A recorder that rewrites each line through `map` before passing it to `inner`, and
/// forwards everything else (stacked pretraining offsets its per-stage step counts).
pub struct MapLines<'a, M> {
    /// where lines and checkpoints go
    pub inner: &'a mut dyn Recorder,
    /// the rewrite
    pub map: M,
}

impl<M: FnMut(serde_json::Value) -> serde_json::Value> Recorder for MapLines<'_, M> {
    fn log(&mut self, line: serde_json::Value) -> Result<()> {
        let line = (self.map)(line);
        self.inner.log(line)
    }
    fn policy(&self) -> Option<CheckpointPolicy> {
        self.inner.policy()
    }
    fn checkpoint(&mut self, ck: Checkpoint) -> Result<()> {
        self.inner.checkpoint(ck)
    }
    fn take_resume(&mut self) -> Option<Checkpoint> {
        self.inner.take_resume()
    }
    fn resume_phase(&self) -> Option<String> {
        self.inner.resume_phase()
    }
    fn stop_requested(&self) -> bool {
        self.inner.stop_requested()
    }
}

/// A recorder that keeps nothing (search trials, tests).
pub struct Discard;

impl Recorder for Discard {
    fn log(&mut self, _line: serde_json::Value) -> Result<()> {
        Ok(())
    }
}
