//! `strata probe`: how good are a run's frozen features, without fine-tuning?

use crate::flags::LabeledData;
use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use strata_run::stage2::Stage2;
use strata_train::Evaluation;
use strata_train::cluster_readout::ClusterReadout;
use strata_train::methods::cluster::ClusterHead;
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
    /// linear (logistic regression on frozen features), knn (cosine, similarity-weighted vote)
    /// ncm (nearest class mean), cluster (a `cluster` run's kept head, each cluster named by
    /// its labeled images) or readout (every cluster head of such a run, each cluster read as
    /// its labeled images' classes, the heads averaged); repeat or separate with commas.
    #[arg(long, value_delimiter = ',', default_value = "linear,knn,ncm")]
    pub method: Vec<ProbeMethod>,
    /// Skip the kNN on every labeled training image (the representation's ceiling), which is
    /// reported when the probe learns from a subset of the labels.
    #[arg(long)]
    pub no_ceiling: bool,
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
    if cfg.pooled && (a.method.contains(&ProbeMethod::Cluster) || a.method.contains(&ProbeMethod::Readout)) {
        bail!(
            "--pooled cannot be used with --method cluster or readout: the cluster heads read the top block's output; probe the clusters without --pooled"
        );
    }
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
    let read = if cfg.pooled { probe::pooled_features } else { probe::features };
    let train_f = read(&blocks, train, rows, &m.normalization, device);
    let all_test: Vec<usize> = (0..test.len()).collect();
    let test_f = read(&blocks, test, &all_test, &m.normalization, device);
    let feature_s = t0.elapsed().as_secs_f64();
    let train_labels: Vec<u32> = rows.iter().map(|&r| labels[r]).collect();
    let truth = test.require_labels()?;
    let classes = train.num_classes();
    let report = |what: &str, method: ProbeMethod, pred: &[u32], k_used: Option<usize>, images: usize, t: f64| {
        let e = Evaluation::from_predictions(truth, pred, &test.class_names, classes);
        if a.json {
            println!(
                "{}",
                serde_json::json!({
                    "run": a.run, "method": method, "probe": what, "reuse": k, "feature_dim": train_f.dim, "pooled": cfg.pooled,
                    "train_images": images, "test_images": test.len(), "accuracy": e.accuracy,
                    "macro_f1": e.macro_f1, "seconds": t, "feature_seconds": feature_s, "k": k_used,
                })
            );
        } else {
            println!(
                "{what:<28} accuracy {:.2}%  on {} test images; {images} training images, {} features from {k} block(s){}; {t:.1} s (+{feature_s:.1} s features)",
                100.0 * e.accuracy,
                test.len(),
                train_f.dim,
                if cfg.pooled { " (each conv block pooled to 4x4)" } else { "" },
            );
        }
    };
    for method in a.method {
        let t = std::time::Instant::now();
        if method == ProbeMethod::Cluster {
            let head = ClusterHead::of_run(&parent.bytes, &parent.run.weights_path(), m)?;
            let (seen, unseen) = (head.assign(&train_f)?, head.assign(&test_f)?);
            let named = probe::cluster_map(&seen, &train_labels, &unseen, head.clusters(), classes);
            // a cluster none of the labeled images fell into names no class: counted wrong
            let pred: Vec<u32> = named.iter().map(|c| c.unwrap_or(classes as u32)).collect();
            let what = format!("clusters ({}) named by labels", head.clusters());
            report(&what, method, &pred, None, rows.len(), t.elapsed().as_secs_f64());
            continue;
        }
        if method == ProbeMethod::Readout {
            let readout = ClusterReadout::of_run(&parent.bytes, &parent.run.weights_path(), m)?;
            let pred = readout.fit(&train_f, &train_labels, classes)?.classify(&test_f)?;
            let what = format!("cluster readout ({} heads)", readout.heads());
            report(&what, method, &pred, None, rows.len(), t.elapsed().as_secs_f64());
            continue;
        }
        let (pred, k_used) = probe::predict(method, &train_f, &train_labels, &test_f, classes, &cfg, device)?;
        let what = match (method, k_used) {
            (ProbeMethod::Knn, Some(n)) if cfg.k.is_none() => format!("kNN (k={n} by leave-one-out)"),
            (ProbeMethod::Knn, n) => format!("kNN (k={}, cosine)", n.unwrap_or_default()),
            (ProbeMethod::Linear, _) => format!("linear ({} steps)", cfg.steps),
            (ProbeMethod::Ncm, _) => "nearest class mean".into(),
            (ProbeMethod::Cluster | ProbeMethod::Readout, _) => unreachable!("handled above"),
        };
        report(&what, method, &pred, k_used, rows.len(), t.elapsed().as_secs_f64());
    }
    // the same kNN with every training label: what the features could give with all labels
    if !a.no_ceiling && rows.len() < train.len() {
        let t = std::time::Instant::now();
        let every: Vec<usize> = (0..train.len()).collect();
        let all_f = read(&blocks, train, &every, &m.normalization, device);
        let k_all = cfg.k.unwrap_or(CEILING_K);
        let pred = probe::knn(&all_f, labels, &test_f, classes, (k_all, cfg.temperature), device);
        let what = format!("ceiling: kNN, all labels (k={k_all})");
        report(&what, ProbeMethod::Knn, &pred, Some(k_all), train.len(), t.elapsed().as_secs_f64());
    }
    Ok(())
}

/// Neighbours of the all-labels kNN: the common choice of self-supervised benchmarks (DINO uses 20).
const CEILING_K: usize = 20;
