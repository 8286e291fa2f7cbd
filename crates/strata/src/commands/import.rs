//! `strata import`: a run directory from weights trained elsewhere (PyTorch, another tool).

use anyhow::{Context, Result};
use std::path::PathBuf;
use strata_data::Normalization;
use strata_nn::interop::Layout;
use strata_nn::{ArchSpec, HeadSpec, InputShape};
use strata_run::interop::{self, ImportRequest};

/// Flags of `strata import`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Weights file: safetensors, or a PyTorch `torch.save` file (.pt, .pth) holding a state dict.
    #[arg(long)]
    pub weights: PathBuf,
    /// The backbone the weights are for, e.g. `conv32-pool,conv64-pool,dense128`.
    #[arg(long)]
    pub arch: ArchSpec,
    /// Image shape the network takes, CxHxW.
    #[arg(long, default_value = "1x28x28")]
    pub input: String,
    /// The file also holds a classifier head with this many classes (default: backbone only).
    #[arg(long)]
    pub classes: Option<usize>,
    /// Hidden layers of that head, e.g. `256`.
    #[arg(long, default_value_t = strata_nn::HiddenLayers::NONE)]
    pub head: strata_nn::HiddenLayers,
    /// Names and layouts in the file: pytorch (Linear out x in, BN weight/bias) or strata.
    #[arg(long, default_value = "pytorch", value_parser = ["pytorch", "strata"])]
    pub layout: String,
    /// Rename file tensors: 'REGEX=REPLACEMENT' (first matching rule wins; `$1` for groups),
    /// e.g. 'features\.(\d+)\.=backbone.$1.conv.'. Repeat for more rules.
    #[arg(long = "map")]
    pub map: Vec<String>,
    /// Leave out file tensors matching this regular expression (e.g. '^fc\.' for an old head).
    #[arg(long)]
    pub drop: Vec<String>,
    /// Re-initialise this model tensor or layer (e.g. `head`) instead of importing it.
    #[arg(long)]
    pub reinit: Vec<String>,
    /// Per-channel mean of pixels in [0, 1] the network was trained with (e.g. 0.1307).
    #[arg(long, value_delimiter = ',')]
    pub mean: Vec<f32>,
    /// Per-channel standard deviation to go with --mean (e.g. 0.3081).
    #[arg(long, value_delimiter = ',')]
    pub std: Vec<f32>,
    /// Run directory to create.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace the run directory if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Parses `1x28x28`.
pub fn parse_input(s: &str) -> Result<InputShape> {
    let dims: Vec<usize> = s
        .split('x')
        .map(|d| d.trim().parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .ok()
        .filter(|d: &Vec<usize>| d.len() == 3 && d.iter().all(|&v| v > 0))
        .with_context(|| format!("--input {s}: give channels x height x width, e.g. 1x28x28 or 3x32x32"))?;
    Ok(InputShape { channels: dims[0], height: dims[1], width: dims[2] })
}

/// Runs `strata import`.
pub fn run(a: Args, argv: Vec<String>) -> Result<()> {
    let input = parse_input(&a.input)?;
    let head = match a.classes {
        Some(c) => Some(HeadSpec::new(a.head.0.clone(), c).context("--classes")?),
        None => None,
    };
    let norm = match (a.mean.is_empty(), a.std.is_empty()) {
        (true, true) => None,
        (false, false) if a.mean.len() == input.channels && a.std.len() == input.channels => {
            // the same checks a manifest's statistics get when the run is opened later
            Some(Normalization::new(a.mean, a.std).context("--mean / --std")?)
        }
        _ => anyhow::bail!("--mean and --std: give both, one value per channel ({} here)", input.channels),
    };
    let req = ImportRequest {
        weights: a.weights,
        arch: a.arch,
        input,
        head,
        layout: if a.layout == "strata" { Layout::Strata } else { Layout::Pytorch },
        rules: a.map,
        drop: a.drop,
        reinit: a.reinit,
        norm,
        out: a.out,
        force: a.force,
        argv,
    };
    let (run, report) = interop::import(&req)?;
    print!("{}", report.to_text());
    println!("imported → {} (reuse it with `strata finetune --from {}`)", run.path.display(), run.path.display());
    Ok(())
}
