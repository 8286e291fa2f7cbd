//! `strata completions` and `strata man`: shell completions and the manual page, generated
//! from the same clap definitions as the parser, so they cannot drift from the flags.

use anyhow::{Context, Result};
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

/// Prints the completion script of `shell` for the parser `cmd` (the caller passes strata's
/// own, so this module does not import the one that dispatches to it).
pub fn run(a: Args, mut cmd: clap::Command) -> Result<()> {
    clap_complete::generate(a.shell, &mut cmd, "strata", &mut std::io::stdout());
    Ok(())
}

/// Prints or writes the manual pages of the parser `cmd`.
pub fn man(a: ManArgs, cmd: clap::Command) -> Result<()> {
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
