//! Progress display: bars on a terminal, plain lines otherwise; one subscriber of a run's
//! event stream (the run writer is the other).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use strata_train::{Event, Observer};

/// Shows training progress on stderr.
pub struct Progress {
    bar: Option<ProgressBar>,
    terminal: bool,
    quiet: bool,
}

impl Progress {
    /// Bars when stderr is a terminal; `quiet` prints only phase summaries.
    pub fn new(quiet: bool) -> Self {
        Self { bar: None, terminal: std::io::stderr().is_terminal(), quiet }
    }
}

impl Observer for Progress {
    fn event(&mut self, event: Event) {
        match event {
            Event::PhaseStart { phase, steps } => {
                if self.terminal && !self.quiet {
                    let bar = ProgressBar::new(steps as u64);
                    let style = ProgressStyle::with_template(
                        "{prefix:>10} [{bar:30}] {pos}/{len} steps {msg} ({elapsed}<{eta})",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
                    bar.set_style(style);
                    bar.set_prefix(phase);
                    self.bar = Some(bar);
                } else if !self.quiet {
                    eprintln!("{phase}: {steps} steps");
                }
            }
            Event::Step { step, loss, .. } => {
                if let Some(bar) = &self.bar {
                    bar.set_position(step as u64);
                    if step % 10 == 0 {
                        bar.set_message(format!("loss {loss:.4}"));
                    }
                }
            }
            // the run writer keeps the window's line; the bar already shows the loss
            Event::Window { .. } => {}
            Event::PhaseEnd { phase, summary } => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
                eprintln!("{phase}: {summary}");
            }
            Event::Warning { phase, message } => match &self.bar {
                Some(bar) => bar.println(format!("{phase}: warning: {message}")),
                None => eprintln!("{phase}: warning: {message}"),
            },
        }
    }
}
