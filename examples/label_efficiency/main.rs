//! Label efficiency: pretrain each method once on the unlabeled pool, then for each label
//! count and seed fine-tune its backbone, and train the same classifier from scratch on the
//! same labels; write a table (Markdown and CSV, mean ± std test accuracy) and a plot of
//! accuracy against the number of labels, one line per method.
//!
//! `cargo run --release --example label_efficiency -- examples/label_efficiency/config.toml [--force]`
//!
//! Stage one does not depend on the labels: an existing `OUT/pretrain-METHOD` run whose
//! manifest matches the config is reused (as the PyTorch peer's `--ae-cache` does), so the
//! table can be regenerated without pretraining again; `--force` retrains everything.

use anyhow::{Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use strata_nn::ArchSpec;
use strata_run::pipeline::{self, FinetuneRequest, LabelSubset, PretrainRequest};
use strata_train::progress::Silent;
use strata_train::{FinetuneConfig, PretrainConfig};
use strata_viz::{Plot, Series};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    data: String,
    out: PathBuf,
    pretrain_seed: u64,
    methods: Vec<Method>,
    labels_per_class: Vec<usize>,
    seeds: Vec<u64>,
    /// the stage-two settings every fine-tuned and scratch run shares (`strata finetune`'s
    /// flags as snake_case keys; unnamed ones keep its defaults)
    #[serde(default)]
    finetune: FinetuneConfig,
}

/// A pretraining method and its settings (`strata pretrain`'s flags as snake_case keys).
#[derive(Debug, Deserialize)]
struct Method {
    name: String,
    #[serde(flatten)]
    settings: PretrainConfig,
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 { v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (m, var.sqrt())
}

/// Mean ± std of one (method, label count) cell over the seeds.
struct Cell {
    frozen: (f64, f64),
    finetuned: (f64, f64),
}

fn pct((m, sd): (f64, f64)) -> String {
    format!("{:.1} ± {:.1} %", 100.0 * m, 100.0 * sd)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).context("usage: label_efficiency CONFIG.toml [--force]")?;
    let force = args.iter().any(|a| a == "--force");
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let cfg: Config = toml::from_str(&text).with_context(|| format!("parsing {path}"))?;
    let t0 = std::time::Instant::now();
    let s = &cfg.finetune;
    let mut csv = String::from("method,labels,seed,frozen,finetuned,scratch,finetune_s,scratch_s\n");
    // the scratch baseline does not depend on the method: train it once per (labels, seed)
    let mut scratch: BTreeMap<(usize, u64), (f64, f64)> = BTreeMap::new();
    let mut table: Vec<(String, f64, Vec<Cell>)> = Vec::new();
    let mut pool = 0;
    for method in &cfg.methods {
        let pre = pretrained(&cfg, method, force, &args)?;
        pool = pre.manifest.data.images;
        let mut cells = Vec::new();
        for &n in &cfg.labels_per_class {
            let (mut fr, mut ft) = (vec![], vec![]);
            for &seed in &cfg.seeds {
                let base = FinetuneRequest {
                    from: Some(pre.path.clone()),
                    train: format!("{}:train", cfg.data),
                    test: Some(format!("{}:test", cfg.data)),
                    classes: None,
                    labels: LabelSubset::PerClass(n),
                    arch: ArchSpec::reference(),
                    cfg: FinetuneConfig { seed, ..s.clone() },
                    out: cfg.out.join(format!("ft-{}-{n}-s{seed}", method.name)),
                    force: true,
                    device: "cpu".into(),
                    argv: args.clone(),
                    control: Default::default(),
                    kind: None,
                };
                let t = std::time::Instant::now();
                let f = pipeline::finetune(&base, &mut Silent)?;
                let f_s = t.elapsed().as_secs_f64();
                let (ca, c_s) = match scratch.get(&(n, seed)) {
                    Some(v) => *v,
                    None => {
                        let req =
                            FinetuneRequest { from: None, out: cfg.out.join(format!("scratch-{n}-s{seed}")), ..base };
                        let t = std::time::Instant::now();
                        let c = pipeline::finetune(&req, &mut Silent)?;
                        let v = (c.test.as_ref().map(|e| e.accuracy).unwrap_or(f64::NAN), t.elapsed().as_secs_f64());
                        scratch.insert((n, seed), v);
                        v
                    }
                };
                let frozen =
                    f.phases.iter().find(|p| p.name == "frozen").and_then(|p| p.eval_accuracy).unwrap_or(f64::NAN);
                let fa = f.test.as_ref().map(|e| e.accuracy).unwrap_or(f64::NAN);
                eprintln!(
                    "{} labels/class {n} seed {seed}: frozen {frozen:.4} fine-tuned {fa:.4} scratch {ca:.4}",
                    method.name
                );
                let _ =
                    writeln!(csv, "{},{},{seed},{frozen:.4},{fa:.4},{ca:.4},{f_s:.1},{c_s:.1}", method.name, n * 10);
                fr.push(frozen);
                ft.push(fa);
            }
            cells.push(Cell { frozen: mean_std(&fr), finetuned: mean_std(&ft) });
        }
        let secs = pre.manifest.metrics["seconds"].as_f64().unwrap_or(f64::NAN);
        let epochs = method.settings.epochs;
        let plural = if epochs == 1 { "" } else { "s" };
        table.push((format!("{} ({epochs} epoch{plural})", method.name), secs, cells));
    }
    let scratch_cells: Vec<(f64, f64)> = cfg
        .labels_per_class
        .iter()
        .map(|&n| {
            mean_std(&cfg.seeds.iter().filter_map(|&seed| scratch.get(&(n, seed)).map(|v| v.0)).collect::<Vec<_>>())
        })
        .collect();

    let mut md = format!(
        "MNIST test set (10 000 images), REF-CAE backbone pretrained on the {} unlabeled training images; \
         stage two `{}`; seeds {:?}; mean ± std test accuracy\n\n",
        pool,
        FinetuneConfig { seed: 0, ..s.clone() }.to_flags(&FinetuneConfig::default()),
        cfg.seeds
    );
    md.push_str("| method | pretraining |");
    for &n in &cfg.labels_per_class {
        let _ = write!(md, " {} labels: frozen | fine-tuned | gain |", n * 10);
    }
    md.push_str("\n|---|---:|");
    md.push_str(&"---:|---:|---:|".repeat(cfg.labels_per_class.len()));
    md.push('\n');
    let _ = write!(md, "| scratch (same labels, same steps) | - |");
    for sc in &scratch_cells {
        let _ = write!(md, " - | {} | - |", pct(*sc));
    }
    md.push('\n');
    for (name, secs, cells) in &table {
        let _ = write!(md, "| {name} | {secs:.0} s |");
        for (c, sc) in cells.iter().zip(&scratch_cells) {
            let _ = write!(md, " {} | {} | {:+.1} |", pct(c.frozen), pct(c.finetuned), 100.0 * (c.finetuned.0 - sc.0));
        }
        md.push('\n');
    }
    let _ = writeln!(md, "\ntotal {:.0} s", t0.elapsed().as_secs_f64());
    let labels: Vec<f64> = cfg.labels_per_class.iter().map(|&n| (n * 10) as f64).collect();
    let mut series = vec![Series {
        name: "scratch".into(),
        points: labels.iter().zip(&scratch_cells).map(|(&x, c)| (x, 100.0 * c.0)).collect(),
    }];
    series.extend(table.iter().map(|(name, _, cells)| Series {
        name: name.split(' ').next().unwrap_or(name).to_string(),
        points: labels.iter().zip(cells).map(|(&x, c)| (x, 100.0 * c.finetuned.0)).collect(),
    }));
    let plot = Plot {
        title: "MNIST test accuracy vs labels".into(),
        x_label: "labeled images (log scale)".into(),
        y_label: "accuracy %".into(),
        series,
        log_x: true,
    };
    std::fs::create_dir_all(&cfg.out)?;
    std::fs::write(cfg.out.join("results.md"), &md)?;
    std::fs::write(cfg.out.join("results.csv"), &csv)?;
    std::fs::write(cfg.out.join("accuracy.png"), plot.to_png()?)?;
    print!("{md}");
    eprintln!("wrote {}/results.md, results.csv and accuracy.png", cfg.out.display());
    Ok(())
}

/// Fingerprint of the unlabeled pool as a pretraining run records it.
fn fingerprint(spec: &str) -> Result<String> {
    Ok(strata_run::context::load_data(spec, "data", false, strata_data::Split::Train)?.unlabeled().fingerprint())
}

/// The pretraining settings of `method` under the study's seed.
fn settings(cfg: &Config, method: &Method) -> PretrainConfig {
    PretrainConfig { seed: cfg.pretrain_seed, ..method.settings.clone() }
}

/// The pretrained run of `method`: reused when its manifest matches the config, else trained.
fn pretrained(cfg: &Config, method: &Method, force: bool, args: &[String]) -> Result<strata_train::RunDir> {
    let out = cfg.out.join(format!("pretrain-{}", method.name));
    if out.exists() && !force {
        let run = strata_train::RunDir::open(&out)?;
        let recorded = serde_json::from_value::<PretrainConfig>(run.manifest.config["train"].clone()).ok();
        let same = run.manifest.method.as_deref() == Some(method.name.as_str())
            && recorded.as_ref() == Some(&settings(cfg, method))
            && run.manifest.data.fingerprint == fingerprint(&format!("{}:train", cfg.data))?;
        if !same {
            anyhow::bail!(
                "{} was made with other settings than {}; pass --force to retrain it",
                out.display(),
                method.name
            );
        }
        eprintln!("reusing {}", out.display());
        return Ok(run);
    }
    let t0 = std::time::Instant::now();
    let run = pipeline::pretrain(
        &PretrainRequest {
            data: format!("{}:train", cfg.data),
            method: method.name.clone(),
            out,
            force,
            max_images: None,
            cfg: settings(cfg, method),
            device: "cpu".into(),
            argv: args.to_vec(),
            control: Default::default(),
        },
        &mut Silent,
    )?;
    eprintln!("pretrained {} in {:.0} s", method.name, t0.elapsed().as_secs_f64());
    Ok(run)
}
