//! One file per subcommand.

#[cfg(feature = "bench")]
pub mod bench;
pub mod completions;
pub mod demo;
pub mod evaluate;
pub mod export;
pub mod finetune;
pub mod import;
pub mod inspect;
pub mod predict;
pub mod pretrain;
pub mod probe;
pub mod report;
pub mod runs;
pub mod search;
pub mod train;
