//! `strata export`: a run's weights for PyTorch users.

use anyhow::Result;
use std::path::PathBuf;
use strata_run::interop;

/// Flags of `strata export`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run to export.
    pub run: PathBuf,
    /// File to write (safetensors).
    #[arg(long)]
    pub out: PathBuf,
    /// Only the file format there is today.
    #[arg(long, default_value = "safetensors", value_parser = ["safetensors"])]
    pub format: String,
    /// PyTorch names and layouts (BN weight/bias + num_batches_tracked, Linear out x in), so
    /// `model.load_state_dict(safetensors.torch.load_file(OUT))` works on a mirror module.
    #[arg(long)]
    pub pytorch_names: bool,
    /// Only the backbone (`backbone.*`), without head, decoder or other parts.
    #[arg(long)]
    pub backbone_only: bool,
    /// Replace the file if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Runs `strata export`.
pub fn run(a: Args) -> Result<()> {
    let e = interop::export(&a.run, &a.out, a.pytorch_names, a.backbone_only, a.force)?;
    println!("exported {} tensors ({} bytes) → {}", e.tensors, e.bytes, a.out.display());
    Ok(())
}
