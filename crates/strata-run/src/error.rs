//! The error of a run-level call: what the lower crates report, with what was being done
//! when it happened.

use std::path::PathBuf;
use strata_data::DataError;
use strata_nn::NnError;
use strata_train::TrainError;
use strata_viz::VizError;

/// Result of a run-level call.
pub type Result<T> = std::result::Result<T, RunError>;

/// What went wrong in a run-level call; each message names the flag, file or field and the fix.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// From training, run directories and checkpoints.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// From reading data.
    #[error(transparent)]
    Data(#[from] DataError),
    /// From architectures and weights.
    #[error(transparent)]
    Nn(#[from] NnError),
    /// From drawing a picture.
    #[error(transparent)]
    Viz(#[from] VizError),
    /// From writing JSON.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// From the operating system (the context names the file).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// From a regular expression a user typed (the context names the flag).
    #[error(transparent)]
    Regex(#[from] regex::Error),
    /// A request that cannot be carried out as given; the message says how to fix it.
    #[error("{0}")]
    Invalid(String),
    /// `source`, met while doing `context` (shown as `context: source`).
    #[error("{context}")]
    Context {
        /// what was being done
        context: String,
        /// what went wrong
        #[source]
        source: Box<RunError>,
    },
    /// The run was stopped on request after writing a checkpoint.
    #[error("stopped after step {step}; checkpoint written in {}. Continue with: strata {command} --resume {}", staging.display(), out.display())]
    Stopped {
        /// the last step taken
        step: usize,
        /// the staging directory that holds the checkpoint
        staging: PathBuf,
        /// the command that continues it
        command: String,
        /// the run's `--out`
        out: PathBuf,
    },
}

impl RunError {
    /// An invalid request, with its fix in the message.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }
}

/// Adds what was being done to an error, like `anyhow::Context`, for results and options.
pub trait Context<T> {
    /// Wraps the error (or a missing value) with `context`.
    fn context(self, context: impl std::fmt::Display) -> Result<T>;
    /// Wraps the error (or a missing value) with the context `f` makes, only when there is one.
    fn with_context<S: std::fmt::Display>(self, f: impl FnOnce() -> S) -> Result<T>;
}

impl<T, E: Into<RunError>> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl std::fmt::Display) -> Result<T> {
        self.map_err(|e| RunError::Context { context: context.to_string(), source: Box::new(e.into()) })
    }
    fn with_context<S: std::fmt::Display>(self, f: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| RunError::Context { context: f().to_string(), source: Box::new(e.into()) })
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, context: impl std::fmt::Display) -> Result<T> {
        self.ok_or_else(|| RunError::Invalid(context.to_string()))
    }
    fn with_context<S: std::fmt::Display>(self, f: impl FnOnce() -> S) -> Result<T> {
        self.ok_or_else(|| RunError::Invalid(f().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn context_is_shown_before_its_cause_once() {
        let e = Err::<(), _>(RunError::invalid("use 1 or 3")).context("--channels 2").unwrap_err();
        assert_eq!(e.to_string(), "--channels 2");
        assert_eq!(e.source().map(|s| s.to_string()).as_deref(), Some("use 1 or 3"));
        assert_eq!(None::<u8>.context("nothing to do").unwrap_err().to_string(), "nothing to do");
    }
}
