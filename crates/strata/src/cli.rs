//! Command-line definition (clap) and dispatch.

use crate::commands;
use clap::{Parser, Subcommand};

/// Unsupervised pretraining on unlabeled images, then fine-tuning on the few labeled ones.
///
/// Any command takes `--config FILE.toml` with a table named after the command whose keys
/// are its long flags (`[finetune] labels-per-class = 10`); flags typed on the command line win.
#[derive(Debug, Parser)]
#[command(name = "strata", version = env!("STRATA_VERSION"), about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Convolution, pooling and batch-norm implementation: `strata` (own kernels on the CPU
    /// backend; burn's elsewhere) or `burn` (burn's own everywhere: the reference, and the way
    /// back if a kernel is doubted).
    #[arg(long, global = true, default_value = "strata",
          value_parser = clap::builder::PossibleValuesParser::new(strata_ops::ConvImpl::NAMES))]
    pub conv: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Stage one: pretrain a backbone on unlabeled images.
    Pretrain(commands::pretrain::Args),
    /// Plain supervised training of a backbone + head (a source network for `finetune --from`).
    Train(commands::train::Args),
    /// Stage two: reuse the lower blocks of a run under a new head and fine-tune on labels.
    Finetune(commands::finetune::Args),
    /// Walk the reuse strategy (depth, freezing, drop/replace/add) on a validation split; keep the best.
    Search(commands::search::Args),
    /// Score a run's frozen features without fine-tuning: linear probe and k nearest neighbours.
    Probe(commands::probe::Args),
    /// Score a classifier run on labeled data: accuracy, per-class P/R/F1, confusion matrix.
    Evaluate(commands::evaluate::Args),
    /// Predict the class of each image of a folder or dataset (CSV on stdout).
    Predict(commands::predict::Args),
    /// Build a run from weights trained elsewhere (safetensors, PyTorch names), with a match report.
    Import(commands::import::Args),
    /// Write a run's weights as safetensors, optionally with PyTorch names and layouts.
    Export(commands::export::Args),
    /// Show a run's manifest and layer table.
    Inspect(commands::inspect::Args),
    /// Every run under a folder at a glance: kind, method, status, key metric, age.
    Runs(commands::runs::Args),
    /// One self-contained HTML page over runs: what each is, phases, curves, confusion, pictures, comparison.
    Report(commands::report::Args),
    /// Pretrain → fine-tune → scratch baseline → comparison, on the bundled data.
    Demo(commands::demo::Args),
    /// Print the shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(commands::completions::Args),
    /// Print the manual page (or write one per command with --out DIR).
    Man(commands::completions::ManArgs),
    /// Train-step and inference throughput (images/s), one JSON line per figure.
    #[cfg(feature = "bench")]
    Bench(commands::bench::Args),
}

/// The flags of `command` that `argv` sets itself (typed, or expanded from `--config`), by
/// field name: settings a method's own defaults must not replace.
fn given_flags(argv: &[String], command: &str) -> Vec<String> {
    let parser = <Cli as clap::CommandFactory>::command().mut_subcommands(|s| s.args_override_self(true));
    let Ok(matches) = parser.try_get_matches_from(argv) else { return vec![] };
    let Some(m) = matches.subcommand_matches(command) else { return vec![] };
    m.ids()
        .filter(|id| m.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine))
        .map(|id| id.as_str().to_string())
        .collect()
}

/// Runs the parsed command; `argv` (with `--config` and `--resume` expanded) is recorded in
/// the run's manifest and job file.
pub fn run(cli: Cli, argv: Vec<String>) -> anyhow::Result<()> {
    let conv = strata_ops::ConvImpl::parse(&cli.conv).ok_or_else(|| {
        anyhow::anyhow!("--conv {}: choose one of {}", cli.conv, strata_ops::ConvImpl::NAMES.join(", "))
    })?;
    strata_ops::set_implementation(conv);
    match cli.command {
        Command::Pretrain(a) => {
            let given = given_flags(&argv, "pretrain");
            commands::pretrain::run(a, argv, &given)
        }
        Command::Train(a) => commands::train::run(a, argv),
        Command::Finetune(a) => commands::finetune::run(a, argv),
        Command::Search(a) => commands::search::run(a, argv),
        Command::Probe(a) => commands::probe::run(a),
        Command::Evaluate(a) => commands::evaluate::run(a),
        Command::Predict(a) => commands::predict::run(a),
        Command::Import(a) => commands::import::run(a, argv),
        Command::Export(a) => commands::export::run(a),
        Command::Inspect(a) => commands::inspect::run(a),
        Command::Runs(a) => commands::runs::run(a),
        Command::Report(a) => commands::report::run(a),
        Command::Demo(a) => {
            let given = given_flags(&argv, "demo");
            commands::demo::run(a, argv, &given)
        }
        Command::Completions(a) => commands::completions::run(a, <Cli as clap::CommandFactory>::command()),
        Command::Man(a) => commands::completions::man(a, <Cli as clap::CommandFactory>::command()),
        #[cfg(feature = "bench")]
        Command::Bench(a) => commands::bench::run(a),
    }
}
