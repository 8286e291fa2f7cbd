//! The strata command line: flags → a request → a `strata_run` call → output. Kept as a
//! library so the tests and the fuzz targets can parse and run the same commands.

pub mod cli;
pub mod commands;
pub mod config_file;
pub mod control;
pub mod flags;
pub mod observer;
