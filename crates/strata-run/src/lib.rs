//! strata's two stages as library calls: what the `strata` command line, the examples and
//! library users call. Each call reads its inputs, checks them before any work, trains on
//! the engine of `strata-train` and writes a complete run directory.

pub mod context;
pub mod control;
pub mod error;
pub mod feature_map;
pub mod interop;
pub mod pipeline;
pub mod report;
pub mod runs;
pub mod search;
pub mod stage2;
pub mod stats;

pub use control::RunControl;
pub use error::{Context, Result, RunError};
pub use pipeline::{FinetuneRequest, FinetuneResult, LabelSubset, PretrainRequest, finetune, pretrain};
