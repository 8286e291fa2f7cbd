//! Progress events sent by training loops to whoever displays them (the CLI's bars).

/// Something a training loop reports.
#[derive(Debug, Clone)]
pub enum Event {
    /// A phase begins with this many optimiser steps.
    PhaseStart { phase: String, steps: usize },
    /// One optimiser step finished.
    Step { phase: String, step: usize, loss: f32 },
    /// A phase ended; `summary` is a one-line human summary.
    PhaseEnd { phase: String, summary: String },
    /// Something the user should know while training goes on (e.g. a collapsing GAN).
    Warning { phase: String, message: String },
}

/// Receives progress events.
pub trait Observer {
    /// Called for every event.
    fn event(&mut self, event: Event);
}

/// Discards all events (library use, tests).
pub struct Silent;

impl Observer for Silent {
    fn event(&mut self, _event: Event) {}
}
