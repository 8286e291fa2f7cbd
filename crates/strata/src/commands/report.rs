//! `strata report`: one self-contained HTML page over one or more runs.

use anyhow::{Context, Result};
use std::path::PathBuf;

/// Flags of `strata report`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run directories, or folders standing for the complete runs under them: one run gives
    /// its page; several add a comparison table (mean ± std over seeds, gain over scratch)
    /// and an accuracy-against-labels plot.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Where to write the page.
    #[arg(long, default_value = "report.html")]
    pub out: PathBuf,
}

/// Runs `strata report`.
pub fn run(a: Args) -> Result<()> {
    let page = strata_run::report::html(&a.runs)?;
    strata_train::files::write_atomic(&a.out, page.as_bytes())
        .with_context(|| format!("writing {}", a.out.display()))?;
    let n = strata_run::report::expand(&a.runs).len();
    println!("wrote {} ({n} run{})", a.out.display(), if n == 1 { "" } else { "s" });
    Ok(())
}
