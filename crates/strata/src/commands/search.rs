//! `strata search`: try the reuse strategies on a validation split and keep the best.

use crate::flags::LabeledData;
use anyhow::Result;
use std::path::PathBuf;
use std::time::Duration;
use strata_nn::ArchSpec;
use strata_run::search::{self, Row, SearchRequest, Table};
use strata_train::FinetuneConfig;

/// The blocks of the "add hidden" trial unless `--add-hidden` names others.
const ADD_HIDDEN: &str = "dense128";

/// Flags of `strata search`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run whose lower blocks are reused (a pretraining run, or any earlier run).
    #[arg(long)]
    pub from: PathBuf,
    /// The labeled data; a stratified validation split is held out of it to choose the winner.
    #[command(flatten)]
    pub data: LabeledData,
    /// Share of the labeled images held out for validation (stratified).
    #[arg(long, default_value_t = 0.2)]
    pub val_fraction: f64,
    /// Start no new trial after this many minutes (the scratch row always runs).
    #[arg(long)]
    pub budget_minutes: Option<f64>,
    /// Train each trial with this many seeds (--seed, --seed + 1, ...), each with its own label
    /// draw and validation split; the table shows mean ± std and ties within the spread go to
    /// the simpler trial.
    #[arg(long, default_value_t = 1)]
    pub seeds: usize,
    /// The settings every trial starts from; the trials change the surgery and unfreezing.
    /// Here `--add-hidden` names the blocks of the "add hidden" trial (default dense128).
    #[command(flatten)]
    pub cfg: FinetuneConfig,
    /// Run directory for the winner (with search.md, search.csv and search.json).
    #[arg(long)]
    pub out: PathBuf,
    /// cpu (flex), ndarray, vulkan[:N] or cuda[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Replace the run directory if it exists.
    #[arg(long)]
    pub force: bool,
    /// Print the table as JSON lines (one per trial) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `strata search`.
pub fn run(a: Args, argv: Vec<String>) -> Result<()> {
    let budget = match a.budget_minutes {
        Some(m) if !(m.is_finite() && m > 0.0) => {
            anyhow::bail!("--budget-minutes {m}: give a positive number of minutes")
        }
        Some(m) => Some(Duration::from_secs_f64(m * 60.0)),
        None => None,
    };
    let req = SearchRequest {
        from: a.from,
        labels: a.data.labels()?,
        train: a.data.train,
        test: a.data.test,
        classes: a.data.classes,
        val_fraction: a.val_fraction,
        add_hidden: Some(a.cfg.add_hidden.clone().map_or_else(|| ArchSpec::parse(ADD_HIDDEN), Ok)?),
        base: FinetuneConfig { add_hidden: None, ..a.cfg },
        budget,
        seeds: a.seeds,
        out: a.out,
        force: a.force,
        device: a.device,
        argv,
    };
    let json = a.json;
    if !json {
        eprintln!("{:<40} {:>10} {:>8} {:>8}", "trial", "validation", "test", "seconds");
    }
    let res = search::search(&req, &mut |r: &Row| {
        if json {
            println!("{}", serde_json::to_string(r).unwrap_or_default());
        } else {
            let pct = |a: Option<f64>| a.map(|a| format!("{:.2}%", 100.0 * a)).unwrap_or_else(|| "-".into());
            eprintln!(
                "{:<40} {:>10} {:>8} {:>8.1}  {}",
                r.trial,
                search::spread(r.val_accuracy, r.val_std),
                pct(r.test_accuracy),
                r.seconds,
                r.status
            );
        }
    })?;
    let covered = res.rows.iter().filter(|r| r.status == "done").count();
    if json {
        println!(
            "{}",
            serde_json::json!({ "winner": res.rows[res.winner].trial, "run": res.run.path, "trials_done": covered,
                "trials": res.rows.len(), "validation_images": res.split.0, "training_images": res.split.1,
                "seconds": res.seconds })
        );
        return Ok(());
    }
    println!("\n{}", Table { rows: &res.rows, winner: res.winner }.markdown());
    println!(
        "{covered} of {} trials done in {:.0} s ({} training / {} validation images); winner `{}` → {}",
        res.rows.len(),
        res.seconds,
        res.split.1,
        res.split.0,
        res.rows[res.winner].trial,
        res.run.path.display()
    );
    Ok(())
}
