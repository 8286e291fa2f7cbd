//! `strata completions` and `strata man`: shell completions and the manual page, generated
//! from the same clap definitions as the parser, so they cannot drift from the flags.

use anyhow::{Context, Result};
use clap::CommandFactory;
use std::path::PathBuf;

/// Flags of `strata completions`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}

/// Flags of `strata man`.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write `strata.1` and one `strata-COMMAND.1` per command into this folder instead of
    /// printing `strata.1`.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Prints the completion script of `shell` (e.g. `strata completions bash > /etc/bash_completion.d/strata`).
pub fn run(a: Args) -> Result<()> {
    let mut cmd = crate::cli::Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "strata", &mut std::io::stdout());
    Ok(())
}

/// Prints or writes the manual pages.
pub fn man(a: ManArgs) -> Result<()> {
    let cmd = crate::cli::Cli::command();
    match a.out {
        None => clap_mangen::Man::new(cmd).render(&mut std::io::stdout()).context("writing the manual page"),
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, &dir)
                .with_context(|| format!("writing manual pages into {}", dir.display()))?;
            Ok(())
        }
    }
}
