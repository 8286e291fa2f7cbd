//! Errors of the training crate.

use std::path::PathBuf;

/// What can go wrong while training, evaluating or handling run directories.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Reading the data failed.
    #[error(transparent)]
    Data(#[from] strata_data::DataError),
    /// Building or loading a network failed.
    #[error(transparent)]
    Nn(#[from] strata_nn::NnError),
    /// Drawing an artifact failed.
    #[error(transparent)]
    Viz(#[from] strata_viz::VizError),
    /// A run directory already exists and would be overwritten.
    #[error("run directory {path} already exists; choose another --out, or pass --force to replace it")]
    RunExists { path: PathBuf },
    /// A run directory is missing, incomplete or unreadable.
    #[error("run {path}: {reason}")]
    BadRun { path: PathBuf, reason: String },
    /// Filesystem error while writing or reading a run (not a `source`: the message already
    /// holds it, and a chain would print it twice).
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    /// A configuration value is out of range.
    #[error("invalid setting `{field}` = {value}: {fix}")]
    Config { field: String, value: String, fix: String },
    /// The requested compute device is not available.
    #[error("device `{device}`: {reason}")]
    Device { device: String, reason: String },
    /// Training produced a NaN or infinite loss or weight.
    #[error(
        "{phase}: training diverged at step {step}: {what}; lower the learning rate (--lr), e.g. to a tenth, and try again"
    )]
    Diverged { phase: String, step: usize, what: String },
    /// The user asked the run to stop; a checkpoint was written first.
    #[error("stopped at step {step} as asked; a checkpoint was written")]
    Interrupted { step: usize },
}

/// Result with [`TrainError`].
pub type Result<T> = std::result::Result<T, TrainError>;

impl TrainError {
    /// Shorthand for a configuration error.
    pub fn config(field: &str, value: impl ToString, fix: &str) -> Self {
        Self::Config { field: field.into(), value: value.to_string(), fix: fix.into() }
    }

    /// Shorthand for an I/O error at a path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), error: source }
    }
}
