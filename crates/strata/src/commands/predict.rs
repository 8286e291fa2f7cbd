//! `strata predict`: class of each image, as CSV.

use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use strata_data::{DataSpec, LoadOptions, Split};
use strata_run::context::{self, input_of};

/// Flags of `strata predict`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A finetune or scratch run directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Images to classify (any data SPEC; labels are ignored).
    pub data: String,
    /// cpu (flex), ndarray, vulkan[:N] or cuda[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Runs `strata predict`.
pub fn run(a: Args) -> Result<()> {
    let run = context::open_run(&a.model)?;
    let (_, device) = context::device(&a.device)?;
    let spec = DataSpec::parse(&a.data).with_context(|| a.data.clone())?;
    let m = &run.manifest;
    let opts = LoadOptions {
        channels: Some(m.input.channels),
        resize: Some((m.input.height, m.input.width)),
        default_split: Split::Test,
        ..LoadOptions::default()
    };
    let data = strata_data::load(&spec, &opts).with_context(|| format!("loading {}", a.data))?;
    if input_of(&data) != m.input {
        bail!("{} has images of shape {} but the model takes {}", a.data, input_of(&data), m.input);
    }
    let model = context::load_classifier(&run, &device)?;
    let pred = strata_train::evaluate::predict(&model, &data, None, &m.normalization, &device);
    println!("index,class");
    for (i, p) in pred.iter().enumerate() {
        let name = m.data.class_names.get(*p as usize).cloned().unwrap_or_else(|| p.to_string());
        println!("{i},{name}");
    }
    Ok(())
}
