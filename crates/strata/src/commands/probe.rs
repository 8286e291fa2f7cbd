//! `strata probe`: how good are a run's frozen features, without fine-tuning?

use crate::flags::LabeledData;
use anyhow::{Context, Result};
use std::path::PathBuf;
use strata_run::stage2::Stage2;
use strata_train::Evaluation;
use strata_train::probe::{self, ProbeConfig, ProbeMethod};
use strata_train::reuse::load_backbone;

/// Flags of `strata probe`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run whose backbone is probed (pretraining or any other run).
    pub run: PathBuf,
    /// The labeled images the probe learns from (--train) and is scored on (--test).
    #[command(flatten)]
    pub data: LabeledData,
    /// linear (logistic regression on frozen features) or knn (cosine, similarity-weighted vote);
    /// repeat or separate with commas for both.
    #[arg(long, value_delimiter = ',', default_value = "linear,knn")]
    pub method: Vec<ProbeMethod>,
    /// Lower backbone blocks whose output is the feature (default: all).
    #[arg(long)]
    pub reuse: Option<usize>,
    #[command(flatten)]
    pub cfg: ProbeConfig,
    /// cpu (flex), ndarray, vulkan[:N] or cuda[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// One JSON object per method instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `strata probe`.
pub fn run(a: Args) -> Result<()> {
    let cfg = a.cfg;
    cfg.validate()?;
    let subset = a.data.labels()?;
    let test_spec = a.data.test.as_deref().context("--test: the probe needs labeled test images to score")?;
    // the probed run plays the parent: same loading, class selection and shape checks as stage two
    let stage = Stage2::load(
        Some(&a.run),
        &a.data.train,
        Some(test_spec),
        a.data.classes.as_deref(),
        subset,
        cfg.seed,
        &a.device,
    )?;
    let parent = stage.parent.as_ref().context("the run to probe")?;
    let test = stage.test.as_ref().context("--test")?;
    let (train, rows, device, m) = (&stage.train, &stage.rows, &stage.device, &parent.run.manifest);
    let k = a.reuse.unwrap_or(parent.arch.blocks.len());
    let blocks = load_backbone(parent.bytes.clone(), &parent.run.weights_path(), &parent.arch, m.input, k, device)?;
    let labels = train.require_labels()?;
    let t0 = std::time::Instant::now();
    let train_f = probe::features(&blocks, train, rows, &m.normalization, device);
    let all_test: Vec<usize> = (0..test.len()).collect();
    let test_f = probe::features(&blocks, test, &all_test, &m.normalization, device);
    let feature_s = t0.elapsed().as_secs_f64();
    let train_labels: Vec<u32> = rows.iter().map(|&r| labels[r]).collect();
    let truth = test.require_labels()?;
    let classes = train.num_classes();
    for method in a.method {
        let t = std::time::Instant::now();
        let pred = match method {
            ProbeMethod::Knn => probe::knn(&train_f, &train_labels, &test_f, classes, &cfg, device),
            ProbeMethod::Linear => probe::linear(&train_f, &train_labels, &test_f, classes, &cfg, device)?,
        };
        let e = Evaluation::from_predictions(truth, &pred, &test.class_names, classes);
        let seconds = t.elapsed().as_secs_f64();
        if a.json {
            println!(
                "{}",
                serde_json::json!({
                    "run": a.run, "method": method, "reuse": k, "feature_dim": train_f.dim,
                    "train_images": rows.len(), "test_images": test.len(), "accuracy": e.accuracy,
                    "macro_f1": e.macro_f1, "seconds": seconds, "feature_seconds": feature_s,
                    "k": (method == ProbeMethod::Knn).then_some(cfg.k),
                })
            );
        } else {
            let what = match method {
                ProbeMethod::Knn => format!("kNN (k={}, cosine)", cfg.k),
                ProbeMethod::Linear => format!("linear ({} steps)", cfg.steps),
            };
            println!(
                "{what:<22} accuracy {:.2}%  on {} test images; {} training images, {} features from {k} block(s); {:.1} s (+{:.1} s features)",
                100.0 * e.accuracy,
                test.len(),
                rows.len(),
                train_f.dim,
                seconds,
                feature_s
            );
        }
    }
    Ok(())
}
