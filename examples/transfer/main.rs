//! The textbook transfer experiment: train task A (MNIST 0-7, all its images), reuse all its
//! hidden layers for task B (8 vs 9, 200 labels) with the output layer replaced, frozen then
//! fine-tuned; compare with B from scratch on the same labels; 5 seeds; mean ± std and the
//! error-rate reduction. Writes OUT/results.md and OUT/results.csv.
//!
//! `cargo run --release --example transfer -- examples/transfer/config.toml [--force]`
//! (an existing OUT/task-a run with the same settings is reused unless --force, and so is
//! every task B run already complete with the same settings). `--plan a` and `--plan b`
//! print the runs as `strata` commands, one per line, for any scheduler (a before b).

use anyhow::{Context, Result};
use serde::Deserialize;
use std::fmt::Write as _;
use std::path::PathBuf;
use strata_nn::ArchSpec;
use strata_run::pipeline::{self, FinetuneRequest, LabelSubset};
use strata_run::stats::mean_std;
use strata_train::FinetuneConfig;
use strata_train::manifest::RunKind;
use strata_train::progress::Silent;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    data: String,
    out: PathBuf,
    task_a: String,
    task_b: String,
    labels_per_class_b: usize,
    seeds: Vec<u64>,
    /// task A, plain training: `strata finetune` settings as snake_case keys, one phase of
    /// `frozen_steps` (nothing is reused, so nothing is frozen)
    a: FinetuneConfig,
    /// task B, fine-tuned and from scratch: the same settings' keys; unnamed ones keep
    /// `strata finetune`'s defaults
    #[serde(default)]
    b: FinetuneConfig,
}

fn request(cfg: &Config, argv: &[String]) -> FinetuneRequest {
    FinetuneRequest {
        from: None,
        train: format!("{}:train", cfg.data),
        test: Some(format!("{}:test", cfg.data)),
        classes: None,
        labels: LabelSubset::All,
        arch: ArchSpec::reference(),
        cfg: FinetuneConfig::default(),
        out: cfg.out.clone(),
        force: true,
        device: "cpu".into(),
        argv: argv.to_vec(),
        control: Default::default(),
        kind: None,
    }
}

/// Task A: plain supervised training on its classes, all their images.
fn task_a_request(cfg: &Config, argv: &[String]) -> FinetuneRequest {
    FinetuneRequest {
        classes: Some(cfg.task_a.clone()),
        cfg: cfg.a.clone(),
        out: cfg.out.join("task-a"),
        kind: Some(RunKind::Train),
        ..request(cfg, argv)
    }
}

/// Task A's run: reused when it was made with these settings.
fn task_a(cfg: &Config, force: bool, argv: &[String]) -> Result<(PathBuf, f64, f64)> {
    let req = task_a_request(cfg, argv);
    if req.out.exists() && !force {
        let Some(run) = req.completed() else {
            anyhow::bail!("{} was made with other settings; pass --force to retrain task A", req.out.display());
        };
        eprintln!("reusing {}", req.out.display());
        let acc = run.manifest.metrics["test_accuracy"].as_f64().unwrap_or(f64::NAN);
        return Ok((req.out, acc, run.manifest.metrics["seconds"].as_f64().unwrap_or(f64::NAN)));
    }
    let t = std::time::Instant::now();
    let res = pipeline::finetune(&req, &mut Silent)?;
    let acc = res.test.as_ref().map(|e| e.accuracy).unwrap_or(f64::NAN);
    eprintln!("task A ({} classes): test accuracy {acc:.4}", cfg.task_a);
    Ok((req.out, acc, t.elapsed().as_secs_f64()))
}

/// Task B's two runs for `seed`: A's layers reused, and from scratch on the same labels.
fn task_b(cfg: &Config, a_run: &std::path::Path, seed: u64, argv: &[String]) -> [FinetuneRequest; 2] {
    let transfer = FinetuneRequest {
        from: Some(a_run.to_path_buf()),
        classes: Some(cfg.task_b.clone()),
        labels: LabelSubset::PerClass(cfg.labels_per_class_b),
        cfg: FinetuneConfig { seed, ..cfg.b.clone() },
        out: cfg.out.join(format!("b-transfer-s{seed}")),
        ..request(cfg, argv)
    };
    let scratch = FinetuneRequest { from: None, out: cfg.out.join(format!("b-scratch-s{seed}")), ..transfer.clone() };
    [transfer, scratch]
}

/// ((accuracy after the frozen phase, final test accuracy), seconds) of `req`'s run: the
/// complete run already there when it has the same settings, else trained now; either way
/// read from the run's manifest.
fn figures(req: &FinetuneRequest) -> Result<((f64, f64), f64)> {
    let run = match req.completed() {
        Some(run) => {
            eprintln!("reusing {}", req.out.display());
            run
        }
        None => pipeline::finetune(req, &mut Silent)?.run,
    };
    let m = &run.manifest.metrics;
    let num = |k: &str| m.get(k).and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN);
    Ok(((num("test_accuracy_after_frozen"), num("test_accuracy")), num("seconds")))
}

/// Prints task A's run (`a`) or task B's (`b`, which need A) as `strata` commands.
fn plan(cfg: &Config, argv: &[String], stage: &str) -> Result<()> {
    let a = task_a_request(cfg, argv);
    let lines: Vec<Vec<String>> = match stage {
        "a" => vec![a.command()],
        "b" => cfg.seeds.iter().flat_map(|&seed| task_b(cfg, &a.out, seed, argv).map(|r| r.command())).collect(),
        other => anyhow::bail!("--plan {other}: choose a (run first) or b"),
    };
    for l in lines {
        println!("{}", shell_words::join(l));
    }
    Ok(())
}

fn main() -> Result<()> {
    let argv: Vec<String> = std::env::args().collect();
    let path = argv.get(1).context("usage: transfer CONFIG.toml [--force | --plan a|b]")?;
    let force = argv.iter().any(|a| a == "--force");
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let cfg: Config = toml::from_str(&text).with_context(|| format!("parsing {path}"))?;
    if let Some(i) = argv.iter().position(|a| a == "--plan") {
        return plan(&cfg, &argv, argv.get(i + 1).map_or("", String::as_str));
    }
    let t0 = std::time::Instant::now();
    let (a_run, a_acc, a_secs) = task_a(&cfg, force, &argv)?;
    let b = &cfg.b;
    let mut csv = String::from("seed,frozen,fine_tuned,scratch,transfer_s,scratch_s\n");
    let (mut frozen, mut tuned, mut scratch) = (vec![], vec![], vec![]);
    for &seed in &cfg.seeds {
        let [transfer, scratch_req] = task_b(&cfg, &a_run, seed, &argv);
        let (f, f_s) = figures(&transfer)?;
        let (s, s_s) = figures(&scratch_req)?;
        let (fr, ft, sc) = (f.0, f.1, s.1);
        eprintln!("seed {seed}: frozen {fr:.4} fine-tuned {ft:.4} scratch {sc:.4}");
        let _ = writeln!(csv, "{seed},{fr:.4},{ft:.4},{sc:.4},{f_s:.1},{s_s:.1}");
        frozen.push(fr);
        tuned.push(ft);
        scratch.push(sc);
    }
    let (fr, ft, sc) = (mean_std(&frozen), mean_std(&tuned), mean_std(&scratch));
    let reduction = |acc: f64| 100.0 * ((1.0 - sc.0) - (1.0 - acc)) / (1.0 - sc.0);
    let pct = |(m, s): (f64, f64)| format!("{:.2} ± {:.2} %", 100.0 * m, 100.0 * s);
    let mut md = format!(
        "Task A: MNIST classes {} (all their training images), {} steps: test accuracy {:.2} % ({a_secs:.0} s).\n\
         Task B: classes {}, {} labeled images per class, tested on all their t10k images; seeds {:?}.\n\n\
         | task B classifier | test accuracy | error-rate reduction vs scratch |\n|---|---:|---:|\n",
        cfg.task_a,
        cfg.a.steps(),
        100.0 * a_acc,
        cfg.task_b,
        cfg.labels_per_class_b,
        cfg.seeds
    );
    let _ = writeln!(md, "| from scratch ({} steps) | {} | - |", b.frozen_steps + b.unfreeze_steps, pct(sc));
    let _ = writeln!(
        md,
        "| A's layers reused, frozen ({} steps) | {} | {:+.1} % |",
        b.frozen_steps,
        pct(fr),
        reduction(fr.0)
    );
    let _ = writeln!(
        md,
        "| A's layers reused, then top {} unfrozen at lr x {} ({} more steps) | {} | {:+.1} % |",
        b.unfreeze_top,
        b.lr_mult,
        b.unfreeze_steps,
        pct(ft),
        reduction(ft.0)
    );
    let _ = writeln!(md, "\ntotal {:.0} s", t0.elapsed().as_secs_f64());
    std::fs::create_dir_all(&cfg.out)?;
    std::fs::write(cfg.out.join("results.md"), &md)?;
    std::fs::write(cfg.out.join("results.csv"), &csv)?;
    print!("{md}");
    Ok(())
}
