//! `strata evaluate`: accuracy, per-class precision/recall/F1, confusion matrix.

use anyhow::{Result, bail};
use std::path::PathBuf;
use strata_data::Split;
use strata_run::context::{self, input_of, load_data};

/// Flags of `strata evaluate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A finetune or scratch run directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Labeled data to score (default split: test).
    #[arg(long)]
    pub data: String,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    pub json: bool,
    /// cpu (flex), ndarray, vulkan[:N] or cuda[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Runs `strata evaluate`.
pub fn run(a: Args) -> Result<()> {
    let run = context::open_run(&a.model)?;
    let (_, device) = context::device(&a.device)?;
    let data = load_data(&a.data, "--data", true, Split::Test)?;
    if input_of(&data) != run.manifest.input {
        bail!("--data {} has images of shape {} but the model takes {}", a.data, input_of(&data), run.manifest.input);
    }
    if data.class_names != run.manifest.data.class_names {
        bail!(
            "--data {} has classes {:?} but the model was trained on {:?}; evaluate on data with the same classes",
            a.data,
            data.class_names,
            run.manifest.data.class_names
        );
    }
    let model = context::load_classifier(&run, &device)?;
    let e = strata_train::evaluate(&model, &data, None, &run.manifest.normalization, &device)?;
    if a.json {
        println!("{}", serde_json::to_string(&e)?);
    } else {
        print!("{}", e.to_text());
    }
    Ok(())
}
