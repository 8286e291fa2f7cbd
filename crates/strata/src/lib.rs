//! The strata command line as a library, so examples and tests can drive the same code.

pub mod cli;
pub mod commands;
pub mod config_file;
pub mod context;
pub mod control;
pub mod interop;
pub mod observer;
pub mod pipeline;
pub mod search;
pub mod stage2;
