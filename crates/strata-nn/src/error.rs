//! Errors of the network crate.

use std::path::PathBuf;

/// What can go wrong while building, loading or saving a network.
#[derive(Debug, thiserror::Error)]
pub enum NnError {
    /// The architecture spec string could not be parsed.
    #[error(
        "architecture spec `{spec}`: {reason}. Expected comma-separated blocks such as `conv32-pool,conv64-pool,dense128` (conv<channels>[k<kernel>][-bn][-pool][-<act>], dense<units>[-bn][-<act>], act = relu|tanh|sigmoid|leaky|none)"
    )]
    BadSpec { spec: String, reason: String },
    /// The architecture does not fit the input images.
    #[error("architecture `{spec}` does not fit input {input}: {reason}")]
    ShapeMismatch { spec: String, input: String, reason: String },
    /// More blocks were asked for than the backbone has.
    #[error(
        "--reuse {asked}: the backbone has only {available} block(s) ({spec}); choose --reuse between 0 and {available}"
    )]
    ReuseTooDeep { asked: usize, available: usize, spec: String },
    /// A weights file could not be read or written.
    #[error("weights file {path}: {reason}")]
    Weights { path: PathBuf, reason: String },
    /// Tensors the model needs were not in the weights file (never silently left at random init).
    #[error(
        "weights file {path} lacks {missing:?}: it was not written for this architecture; check --arch / --reuse against the parent run's manifest"
    )]
    MissingTensors { path: PathBuf, missing: Vec<String> },
    /// Tensors in the file have other shapes than the model declares.
    #[error(
        "weights file {path} has tensors of the wrong shape: {details}; the manifest's architecture and the weights disagree"
    )]
    WrongShapes { path: PathBuf, details: String },
}

/// Result with [`NnError`].
pub type Result<T> = std::result::Result<T, NnError>;
