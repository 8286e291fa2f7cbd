//! `strata demo`: the whole pipeline on the bundled data, with a comparison table.

use crate::observer::Progress;
use anyhow::{Result, bail};
use std::path::PathBuf;
use std::time::Instant;
use strata_run::pipeline::{self, FinetuneRequest, LabelSubset, PretrainRequest};
use strata_train::finetune::untuned;
use strata_train::{Corruption, PretrainConfig};

/// Flags of `strata demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder with train-*/t10k-* IDX files: train = unlabeled pool and label source, t10k = test.
    #[arg(long, default_value = "data/mnist")]
    pub data: String,
    /// Where the runs go (`pretrain`, `finetune`, `scratch`, `scratch-untuned` inside).
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    /// Labeled images per class for stage two.
    #[arg(long, default_value_t = 10)]
    pub labels_per_class: usize,
    /// Pretraining method, with its own defaults as `strata pretrain` gives them: `cluster`
    /// is the one that beats the same-recipe scratch (see README's headline table).
    #[arg(long, default_value = "cluster", value_parser = clap::builder::PossibleValuesParser::new(strata_train::method_names()))]
    pub method: String,
    /// Pretraining epochs over the unlabeled images [default: the method's own].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Masking noise: the fraction of pixels `dae` zeroes, the most `siamese` zeroes
    /// [default: `strata pretrain`'s].
    #[arg(long)]
    pub noise: Option<f32>,
    /// Stage two of the fine-tuned and the scratch classifier alike.
    #[command(flatten)]
    pub cfg: strata_train::FinetuneConfig,
    /// cpu (flex), ndarray, vulkan[:N] or cuda[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Skip the untuned scratch row (strata 0.2's schedule: 1000 plain Adam steps, no
    /// augmentation), which shows what the careful baseline changes.
    #[arg(long)]
    pub no_untuned: bool,
    /// Replace an earlier demo's runs.
    #[arg(long)]
    pub force: bool,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `--cluster-labels` of the fine-tuned row after `cluster` when the flag is not given: the
/// README quick start's value, measured best at 10 labels per class on the validation split
/// (docs/RESULTS.md). Scratch ignores it, so both rows still share one recipe.
const QUICK_START_CLUSTER_LABELS: f64 = 0.5;

/// Runs `strata demo`; `given` names the flags the user set, which the method's defaults and
/// the quick start's stage two leave alone.
pub fn run(a: Args, argv: Vec<String>, given: &[String]) -> Result<()> {
    if a.out.exists() && !a.force {
        bail!("{} already exists (an earlier demo?); pass --force to replace it, or --out elsewhere", a.out.display());
    }
    let quiet = a.json;
    let t0 = Instant::now();
    let method = strata_train::method_by_name(&a.method)?;
    let mut pre_cfg = PretrainConfig { seed: a.cfg.seed, ..PretrainConfig::default() };
    if let Some(epochs) = a.epochs {
        pre_cfg.epochs = epochs;
    }
    if let Some(noise) = a.noise {
        pre_cfg.corruption = Corruption { noise, ..pre_cfg.corruption };
    }
    let pre_cfg = pre_cfg.with_method_defaults(method.as_ref(), |field| match field {
        "epochs" => a.epochs.is_some(),
        "noise" => a.noise.is_some(),
        // one --seed draws the labels, the initialisations and the pretraining's data order
        "seed" => true,
        _ => false,
    })?;
    // the scratch rows get the pretrained backbone's architecture (batch norm included)
    let arch = pre_cfg.arch.clone();
    let mut cfg = a.cfg.clone();
    if a.method == "cluster" && !given.iter().any(|g| g == "cluster_labels") {
        cfg.cluster_labels = QUICK_START_CLUSTER_LABELS;
    }
    let cluster_labels = cfg.cluster_labels;
    let pre = PretrainRequest {
        data: format!("{}:train", a.data),
        method: a.method.clone(),
        out: a.out.join("pretrain"),
        force: a.force,
        max_images: None,
        cfg: pre_cfg,
        device: a.device.clone(),
        argv: argv.clone(),
        control: Default::default(),
    };
    let pre_run = pipeline::pretrain(&pre, &mut Progress::new(quiet))?;
    let pretrain_s = t0.elapsed().as_secs_f64();
    let base = FinetuneRequest {
        from: Some(pre_run.path.clone()),
        train: format!("{}:train", a.data),
        test: Some(format!("{}:test", a.data)),
        classes: None,
        labels: LabelSubset::PerClass(a.labels_per_class),
        arch,
        cfg,
        out: a.out.join("finetune"),
        force: a.force,
        device: a.device.clone(),
        argv: argv.clone(),
        kind: None,
        control: Default::default(),
    };
    let t1 = Instant::now();
    let ft = pipeline::finetune(&base, &mut Progress::new(quiet))?;
    let finetune_s = t1.elapsed().as_secs_f64();
    let scratch_req = FinetuneRequest { from: None, out: a.out.join("scratch"), ..base.clone() };
    let t2 = Instant::now();
    let sc = pipeline::finetune(&scratch_req, &mut Progress::new(quiet))?;
    let scratch_s = t2.elapsed().as_secs_f64();
    // strata 0.2's schedule, to show what the careful baseline changes
    let untuned_req = FinetuneRequest {
        from: None,
        out: a.out.join("scratch-untuned"),
        cfg: strata_train::FinetuneConfig { seed: a.cfg.seed, ..untuned() },
        ..base
    };
    let t3 = Instant::now();
    let un = if a.no_untuned { None } else { Some(pipeline::finetune(&untuned_req, &mut Progress::new(quiet))?) };
    let untuned_s = t3.elapsed().as_secs_f64();

    let acc = |r: &pipeline::FinetuneResult| r.test.as_ref().map(|e| e.accuracy).unwrap_or(f64::NAN);
    let frozen = ft.phases.iter().find(|p| p.name == "frozen").and_then(|p| p.eval_accuracy);
    let summary = serde_json::json!({
        "data": a.data,
        "labels_per_class": a.labels_per_class,
        "method": a.method,
        "accuracy_frozen": frozen,
        "accuracy_finetuned": acc(&ft),
        "accuracy_scratch": acc(&sc),
        "accuracy_scratch_untuned": un.as_ref().map(acc),
        "gain_points": 100.0 * (acc(&ft) - acc(&sc)),
        "seconds_pretrain": pretrain_s,
        "seconds_finetune": finetune_s,
        "seconds_scratch": scratch_s,
        "seconds_scratch_untuned": un.as_ref().map(|_| untuned_s),
        "seconds_total": t0.elapsed().as_secs_f64(),
        "runs": a.out.display().to_string(),
    });
    if a.json {
        println!("{summary}");
    } else {
        println!("\n{} labeled images per class, test set {}:test", a.labels_per_class, a.data);
        println!("{:<34} {:>9} {:>9}", "classifier", "accuracy", "seconds");
        if let Some(f) = frozen {
            println!("{:<34} {:>8.2}% {:>9}", format!("{} pretrained, reused frozen", a.method), 100.0 * f, "");
        }
        println!(
            "{:<34} {:>8.2}% {:>9.1}",
            format!("{} pretrained, fine-tuned", a.method),
            100.0 * acc(&ft),
            finetune_s
        );
        println!("{:<34} {:>8.2}% {:>9.1}", "from scratch (same recipe, labels)", 100.0 * acc(&sc), scratch_s);
        if let Some(un) = &un {
            println!("{:<34} {:>8.2}% {:>9.1}", "from scratch, untuned (strata 0.2)", 100.0 * acc(un), untuned_s);
        }
        if cluster_labels > 0.0 {
            println!(
                "(the fine-tuned row also learns from the unlabeled images its clusters name with \
                 probability >= {}: --cluster-labels)",
                cluster_labels
            );
        }
        println!(
            "gain from pretraining over the same-recipe scratch: {:+.2} points (pretraining took {:.1} s)",
            100.0 * (acc(&ft) - acc(&sc)),
            pretrain_s
        );
        println!("runs in {}; look inside with `strata inspect {}`", a.out.display(), a.out.join("finetune").display());
    }
    Ok(())
}
