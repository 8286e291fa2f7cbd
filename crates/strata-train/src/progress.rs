//! The event stream of a run: what the engine emits once and both the progress display (an
//! [`Observer`]) and the run writer (a [`crate::Recorder`]) subscribe to.

/// Something a training loop reports.
#[derive(Debug, Clone)]
pub enum Event {
    /// A phase begins with this many optimiser steps.
    PhaseStart { phase: String, steps: usize },
    /// One optimiser step finished.
    Step { phase: String, step: usize, loss: f32 },
    /// A log window closed: its line of `metrics.jsonl` (means of every figure, seconds, and
    /// what the objective adds).
    Window { phase: String, line: serde_json::Value },
    /// A phase ended; `summary` is a one-line human summary.
    PhaseEnd { phase: String, summary: String },
    /// Something the user should know while training goes on (e.g. a collapsing GAN).
    Warning { phase: String, message: String },
}

/// Receives the events of a run to show them.
pub trait Observer {
    /// Called for every event.
    fn event(&mut self, event: Event);
}

/// Discards all events (library use, tests).
pub struct Silent;

impl Observer for Silent {
    fn event(&mut self, _event: Event) {}
}
