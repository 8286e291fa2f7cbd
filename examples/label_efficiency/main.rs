//! Label efficiency: pretrain each method once on the unlabeled pool, then for each label
//! count and seed fine-tune its backbone, probe its frozen features (nearest class mean, kNN
//! with k by leave-one-out, and the cluster readout where the run has cluster heads), and
//! train the same classifier from scratch on the same labels with the same recipe, and with
//! strata 0.2's untuned schedule; write a table (Markdown and CSV, mean ± std test accuracy)
//! and a plot of accuracy against the number of labels.
//!
//! `cargo run --release --example label_efficiency -- examples/label_efficiency/config.toml [--force]`
//!
//! Stage one does not depend on the labels: an existing `OUT/pretrain-METHOD` run whose
//! manifest matches the config is reused (as the PyTorch peer's `--ae-cache` does), so the
//! table can be regenerated without pretraining again; `--force` retrains everything.

use anyhow::{Context, Result};
use serde::Deserialize;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;
use strata_data::{Dataset, Split};
use strata_nn::ArchSpec;
use strata_run::context::load_data;
use strata_run::pipeline::{self, FinetuneRequest, LabelSubset, PretrainRequest};
use strata_run::stats::{mean_std, pct};
use strata_train::cluster_readout::ClusterReadout;
use strata_train::finetune::untuned;
use strata_train::probe::{self, FeatureMatrix, ProbeConfig, ProbeMethod};
use strata_train::progress::Silent;
use strata_train::{FinetuneConfig, PretrainConfig, RunDir};
use strata_viz::{Plot, Series};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    data: String,
    out: PathBuf,
    pretrain_seed: u64,
    #[serde(default)]
    methods: Vec<Method>,
    labels_per_class: Vec<usize>,
    seeds: Vec<u64>,
    /// also train strata 0.2's untuned scratch baseline, to show what the careful one changes
    #[serde(default = "yes")]
    untuned_scratch: bool,
    /// the stage-two settings every fine-tuned and scratch run shares (`strata finetune`'s
    /// flags as snake_case keys; unnamed ones keep its defaults)
    #[serde(default)]
    finetune: FinetuneConfig,
    /// the scratch rows' architecture: the one the methods pretrain, so the gain compares
    /// like with like (REF-CAE when not named)
    #[serde(default = "ArchSpec::reference")]
    arch: ArchSpec,
}

fn yes() -> bool {
    true
}

/// A pretraining method and its settings (`strata pretrain`'s flags as snake_case keys; the
/// method's own defaults where a key is absent, as on the command line).
#[derive(Debug, Deserialize)]
#[serde(try_from = "MethodRow")]
struct Method {
    name: String,
    /// the row's and run directories' name when one method appears twice (default: `name`)
    label: Option<String>,
    settings: PretrainConfig,
    /// the label of another row whose pretraining this row fine-tunes (same settings), so two
    /// stage-two recipes of one pretraining cost one pretraining
    pretrained: Option<String>,
    /// stage-two settings of this row over the study's `[finetune]` (e.g. `head_init`)
    finetune: toml::Table,
}

/// A `[[methods]]` table as written.
#[derive(Deserialize)]
struct MethodRow {
    name: String,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    pretrained: Option<String>,
    #[serde(default)]
    finetune: toml::Table,
    #[serde(flatten)]
    settings: toml::Table,
}

impl TryFrom<MethodRow> for Method {
    type Error = String;
    fn try_from(row: MethodRow) -> std::result::Result<Self, String> {
        let method = strata_train::method_by_name(&row.name).map_err(|e| e.to_string())?;
        let given: Vec<String> = row.settings.keys().cloned().collect();
        let typed = PretrainConfig::deserialize(toml::Value::Table(row.settings)).map_err(|e| e.to_string())?;
        let settings = typed
            .with_method_defaults(method.as_ref(), |key| given.iter().any(|g| g == key))
            .map_err(|e| e.to_string())?;
        Ok(Self { name: row.name, label: row.label, settings, pretrained: row.pretrained, finetune: row.finetune })
    }
}

impl Method {
    fn label(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.name)
    }

    /// The study's stage-two settings with this row's own over them.
    fn finetune(&self, study: &FinetuneConfig) -> Result<FinetuneConfig> {
        let mut table = toml::Table::try_from(study).context("the study's [finetune]")?;
        table.extend(self.finetune.clone());
        FinetuneConfig::deserialize(toml::Value::Table(table))
            .with_context(|| format!("[methods.finetune] of row {}", self.label()))
    }
}

/// One run's figures; NaN where a column does not apply.
#[derive(Clone, Copy)]
struct Figures {
    frozen: f64,
    finetuned: f64,
    ncm: f64,
    knn: f64,
    knn_k: usize,
    /// the cluster readout (`strata probe --method readout`), where the run has cluster heads
    readout: f64,
    seconds: f64,
}

/// Every seed of one (row, label count) cell.
type Cell = Vec<Figures>;

fn column(cell: &Cell, f: impl Fn(&Figures) -> f64) -> (f64, f64) {
    mean_std(&cell.iter().map(f).collect::<Vec<_>>())
}

struct Study<'a> {
    cfg: &'a Config,
    args: &'a [String],
    train: Dataset,
    test: Dataset,
}

/// The fine-tuning (or scratch, `from` None) run `out` of the study at `n` labels per class.
fn request(
    cfg: &Config,
    args: &[String],
    from: Option<PathBuf>,
    prefix: &str,
    n: usize,
    fcfg: FinetuneConfig,
) -> FinetuneRequest {
    FinetuneRequest {
        from,
        train: format!("{}:train", cfg.data),
        test: Some(format!("{}:test", cfg.data)),
        classes: None,
        labels: LabelSubset::PerClass(n),
        arch: cfg.arch.clone(),
        out: cfg.out.join(format!("{prefix}-{n}-s{}", fcfg.seed)),
        cfg: fcfg,
        force: true,
        device: "cpu".into(),
        argv: args.to_vec(),
        control: Default::default(),
        kind: None,
    }
}

/// The scratch baselines, which do not depend on the method: (row name, settings, run-name
/// prefix).
fn baselines(cfg: &Config) -> Vec<(&'static str, FinetuneConfig, &'static str)> {
    let mut b = vec![("scratch, same recipe", cfg.finetune.clone(), "scratch")];
    if cfg.untuned_scratch {
        b.push(("scratch, untuned (strata 0.2)", untuned(), "untuned"));
    }
    b
}

/// Where `method`'s pretraining is.
fn pretrain_out(cfg: &Config, method: &Method) -> PathBuf {
    cfg.out.join(format!("pretrain-{}", method.pretrained.as_deref().unwrap_or(method.label())))
}

/// `method`'s pretraining.
fn pretrain_request(cfg: &Config, method: &Method, force: bool, args: &[String]) -> PretrainRequest {
    PretrainRequest {
        data: format!("{}:train", cfg.data),
        method: method.name.clone(),
        out: pretrain_out(cfg, method),
        force,
        max_images: None,
        cfg: settings(cfg, method),
        device: "cpu".into(),
        argv: args.to_vec(),
        control: Default::default(),
    }
}

impl Study<'_> {
    fn request(&self, from: Option<PathBuf>, prefix: &str, n: usize, cfg: FinetuneConfig) -> FinetuneRequest {
        request(self.cfg, self.args, from, prefix, n, cfg)
    }

    /// Trains one classifier and reads its figures; a complete run already at its place made
    /// with the same settings (an earlier run of this study, or its `--plan` run by a
    /// scheduler) is read instead of trained again.
    fn classifier(&self, req: &FinetuneRequest) -> Result<Figures> {
        if let Some(f) = self.finished(req) {
            eprintln!("reusing {}", req.out.display());
            return Ok(f);
        }
        pipeline::finetune(req, &mut Silent)?;
        // read back from the run written, as for a reused one: the table and `strata
        // report` then take every figure from the same manifest
        self.finished(req).with_context(|| format!("{} was written but does not read back", req.out.display()))
    }

    /// The figures of the complete run at `req.out` made with the same settings, if any.
    fn finished(&self, req: &FinetuneRequest) -> Option<Figures> {
        let run = req.completed()?;
        let m = &run.manifest.metrics;
        let num = |k: &str| m.get(k).and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN);
        Some(Figures {
            frozen: num("test_accuracy_after_frozen"),
            finetuned: num("test_accuracy"),
            ncm: f64::NAN,
            knn: f64::NAN,
            knn_k: 0,
            readout: f64::NAN,
            seconds: num("seconds"),
        })
    }

    /// Nearest class mean, leave-one-out kNN and the cluster readout (NaN without cluster
    /// heads) on the frozen backbone's features of `rows`.
    fn probes(&self, pre: &Pretrained, rows: &[usize]) -> Result<(f64, f64, usize, f64)> {
        let Pretrained { run: pre, blocks, device, test_f, readout } = pre;
        let labels = self.train.require_labels()?;
        let train_f = probe::features(blocks, &self.train, rows, &pre.manifest.normalization, device);
        let train_labels: Vec<u32> = rows.iter().map(|&r| labels[r]).collect();
        let truth = self.test.require_labels()?;
        let classes = self.train.num_classes();
        let score = |pred: &[u32]| pred.iter().zip(truth).filter(|(p, t)| p == t).count() as f64 / truth.len() as f64;
        let cfg = ProbeConfig::default();
        let (ncm, _) = probe::predict(ProbeMethod::Ncm, &train_f, &train_labels, test_f, classes, &cfg, device)?;
        let (knn, k) = probe::predict(ProbeMethod::Knn, &train_f, &train_labels, test_f, classes, &cfg, device)?;
        let read = match readout {
            Some(r) => score(&r.fit(&train_f, &train_labels, classes)?.classify(test_f)?),
            None => f64::NAN,
        };
        Ok((score(&ncm), score(&knn), k.unwrap_or_default(), read))
    }
}

/// A pretrained run with its whole backbone loaded once on the CPU and its features of the
/// test images, which every label draw's probes share.
struct Pretrained {
    run: RunDir,
    blocks: Vec<strata_nn::Block>,
    device: burn::tensor::Device,
    test_f: FeatureMatrix,
    /// every cluster head of the run, if it has any
    readout: Option<ClusterReadout>,
}

impl Pretrained {
    fn load(run: RunDir, test: &Dataset) -> Result<Self> {
        let (_, device) = strata_run::context::device("cpu")?;
        let arch = ArchSpec::parse(&run.manifest.arch)?;
        let bytes = run.weights_bytes()?;
        let blocks = strata_train::reuse::load_backbone(
            bytes.clone(),
            &run.weights_path(),
            &arch,
            run.manifest.input,
            arch.blocks.len(),
            &device,
        )?;
        let every: Vec<usize> = (0..test.len()).collect();
        let test_f = probe::features(&blocks, test, &every, &run.manifest.normalization, &device);
        let readout = ClusterReadout::in_run(&bytes, &run.weights_path(), &run.manifest)?;
        Ok(Self { run, blocks, device, test_f, readout })
    }
}

/// Prints the study as one `strata` command per line: `pretrain` (the pretrainings) or
/// `finetune` (every classifier, which needs the pretrainings). Each writes its own run
/// directory, so any scheduler can run the lines; running the study afterwards reuses every
/// complete run and only adds the probes and the tables.
fn plan(cfg: &Config, args: &[String], stage: &str) -> Result<()> {
    let mut lines: Vec<Vec<String>> = Vec::new();
    match stage {
        "pretrain" => lines.extend(
            cfg.methods
                .iter()
                .filter(|m| m.pretrained.is_none())
                .map(|m| pretrain_request(cfg, m, false, args).command()),
        ),
        "finetune" => {
            let mut rows: Vec<(Option<PathBuf>, String, FinetuneConfig)> =
                baselines(cfg).into_iter().map(|(_, base, prefix)| (None, prefix.to_string(), base)).collect();
            for m in &cfg.methods {
                rows.push((Some(pretrain_out(cfg, m)), format!("ft-{}", m.label()), m.finetune(&cfg.finetune)?));
            }
            for (from, prefix, base) in rows {
                for &n in &cfg.labels_per_class {
                    for &seed in &cfg.seeds {
                        let req = request(cfg, args, from.clone(), &prefix, n, FinetuneConfig { seed, ..base.clone() });
                        lines.push(req.command());
                    }
                }
            }
        }
        other => anyhow::bail!("--plan {other}: choose pretrain (run first) or finetune"),
    }
    for l in lines {
        println!("{}", shell_words::join(l));
    }
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).context("usage: label_efficiency CONFIG.toml [--force | --plan pretrain|finetune]")?;
    let force = args.iter().any(|a| a == "--force");
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let cfg: Config = toml::from_str(&text).with_context(|| format!("parsing {path}"))?;
    if let Some(i) = args.iter().position(|a| a == "--plan") {
        return plan(&cfg, &args, args.get(i + 1).map_or("", String::as_str));
    }
    let t0 = Instant::now();
    let study = Study {
        cfg: &cfg,
        args: &args,
        train: load_data(&format!("{}:train", cfg.data), "data", true, Split::Train)?,
        test: load_data(&format!("{}:test", cfg.data), "data", true, Split::Test)?,
    };
    let mut csv = String::from("row,labels,seed,frozen,finetuned,ncm,knn,knn_k,readout,seconds\n");
    // (row name, pretraining seconds, one cell per label count)
    let mut table: Vec<(String, Option<f64>, Vec<Cell>)> = Vec::new();
    let classes = study.train.num_classes();
    let labels = study.train.require_labels()?;
    for (name, base_cfg, dir) in baselines(&cfg) {
        let mut cells = Vec::new();
        for &n in &cfg.labels_per_class {
            let mut cell = Vec::new();
            for &seed in &cfg.seeds {
                let req = study.request(None, dir, n, FinetuneConfig { seed, ..base_cfg.clone() });
                let f = study.classifier(&req)?;
                eprintln!("{name} labels/class {n} seed {seed}: {:.4} ({:.0} s)", f.finetuned, f.seconds);
                add_csv(&mut csv, dir, n, seed, &f);
                cell.push(f);
            }
            cells.push(cell);
        }
        table.push((name.to_string(), None, cells));
        write_results(&cfg, &study, &table, &csv, study.train.len(), t0)?;
    }
    let mut pool = study.train.len();
    for method in &cfg.methods {
        let pre = Pretrained::load(pretrained(&cfg, method, force, &args)?, &study.test)?;
        pool = pre.run.manifest.data.images;
        let s = method.finetune(&cfg.finetune)?;
        let mut cells = Vec::new();
        for &n in &cfg.labels_per_class {
            let mut cell = Vec::new();
            for &seed in &cfg.seeds {
                let prefix = format!("ft-{}", method.label());
                let req = study.request(Some(pre.run.path.clone()), &prefix, n, FinetuneConfig { seed, ..s.clone() });
                let mut f = study.classifier(&req)?;
                let rows = LabelSubset::PerClass(n).rows(labels, classes, seed)?;
                (f.ncm, f.knn, f.knn_k, f.readout) = study.probes(&pre, &rows)?;
                eprintln!(
                    "{} labels/class {n} seed {seed}: frozen {:.4} fine-tuned {:.4} ncm {:.4} knn(k={}) {:.4} readout {:.4}",
                    method.label(),
                    f.frozen,
                    f.finetuned,
                    f.ncm,
                    f.knn_k,
                    f.knn,
                    f.readout
                );
                add_csv(&mut csv, method.label(), n, seed, &f);
                cell.push(f);
            }
            cells.push(cell);
        }
        let secs = pre.run.manifest.metrics["seconds"].as_f64().unwrap_or(f64::NAN);
        let epochs = method.settings.epochs;
        let plural = if epochs == 1 { "" } else { "s" };
        table.push((format!("{} ({epochs} epoch{plural})", method.label()), Some(secs), cells));
        write_results(&cfg, &study, &table, &csv, pool, t0)?;
    }

    let md = write_results(&cfg, &study, &table, &csv, pool, t0)?;
    print!("{md}");
    // the same runs as one page, through strata report's code (its table and this one agree)
    let page = strata_run::report::html(std::slice::from_ref(&cfg.out))?;
    std::fs::write(cfg.out.join("report.html"), page)?;
    eprintln!("wrote {}/results.md, results.csv, accuracy.png, compute.png and report.html", cfg.out.display());
    Ok(())
}

/// One CSV line per classifier.
fn add_csv(csv: &mut String, row: &str, n: usize, seed: u64, f: &Figures) {
    let _ = writeln!(
        csv,
        "{row},{},{seed},{:.4},{:.4},{:.4},{:.4},{},{:.4},{:.1}",
        n * 10,
        f.frozen,
        f.finetuned,
        f.ncm,
        f.knn,
        f.knn_k,
        f.readout,
        f.seconds
    );
}

/// Writes the table, the CSV and the plot of the rows so far (after every row, so a long
/// study that is stopped keeps what it finished); returns the table.
fn write_results(
    cfg: &Config,
    study: &Study,
    table: &[(String, Option<f64>, Vec<Cell>)],
    csv: &str,
    pool: usize,
    t0: Instant,
) -> Result<String> {
    let s = &cfg.finetune;
    let careful: Vec<f64> = table[0].2.iter().map(|c| column(c, |f| f.finetuned).0).collect();
    let mut md = format!(
        "MNIST test set ({} images), backbone `{}` (the scratch rows' too) pretrained on the {pool} unlabeled training images; \
         stage two `{}` (strata finetune's defaults when empty); seeds {:?}; mean ± std test accuracy in %; \
         gain = fine-tuned − same-recipe scratch, in points; seconds per classifier (mean)\n\n",
        study.test.len(),
        cfg.arch,
        FinetuneConfig { seed: 0, ..s.clone() }.to_flags(&FinetuneConfig::default()),
        cfg.seeds
    );
    md.push_str("| row | pretraining |");
    for &n in &cfg.labels_per_class {
        let _ = write!(md, " {0} labels: frozen | fine-tuned | NCM | kNN (k) | readout | gain | s |", n * 10);
    }
    md.push_str("\n|---|---:|");
    md.push_str(&"---:|---:|---:|---:|---:|---:|---:|".repeat(cfg.labels_per_class.len()));
    md.push('\n');
    for (name, secs, cells) in table {
        let _ = write!(md, "| {name} | {} |", secs.map(|s| format!("{s:.0} s")).unwrap_or_else(|| "-".into()));
        for (cell, base) in cells.iter().zip(&careful) {
            let ft = column(cell, |f| f.finetuned);
            let ks: Vec<String> = cell.iter().filter(|f| f.knn_k > 0).map(|f| f.knn_k.to_string()).collect();
            let knn =
                if ks.is_empty() { "-".into() } else { format!("{} ({})", pct(column(cell, |f| f.knn)), ks.join(",")) };
            let gain = if secs.is_some() { strata_run::stats::points(ft.0 - base) } else { "-".into() };
            let _ = write!(
                md,
                " {} | {} | {} | {knn} | {} | {gain} | {:.0} |",
                pct(column(cell, |f| f.frozen)),
                pct(ft),
                pct(column(cell, |f| f.ncm)),
                pct(column(cell, |f| f.readout)),
                column(cell, |f| f.seconds).0
            );
        }
        md.push('\n');
    }
    let _ = writeln!(md, "\ntotal {:.0} s", t0.elapsed().as_secs_f64());
    let xs: Vec<f64> = cfg.labels_per_class.iter().map(|&n| (n * 10) as f64).collect();
    let series = table
        .iter()
        .map(|(name, _, cells)| Series {
            name: name.split(" (").next().unwrap_or(name).to_string(),
            points: xs.iter().zip(cells).map(|(&x, c)| (x, 100.0 * column(c, |f| f.finetuned).0)).collect(),
        })
        .collect();
    let plot = Plot {
        title: "MNIST test accuracy vs labels".into(),
        x_label: "labeled images (log scale)".into(),
        y_label: "accuracy %".into(),
        series,
        log_x: true,
        scatter: false,
    };
    // what more pretraining buys: each row's fine-tuned accuracy at its pretraining minutes,
    // scratch at 0 (points, not lines: the rows may be different methods)
    let compute = Plot {
        title: "MNIST test accuracy vs pretraining time".into(),
        x_label: "pretraining minutes on this machine (scratch: 0)".into(),
        y_label: "fine-tuned accuracy %".into(),
        series: cfg
            .labels_per_class
            .iter()
            .enumerate()
            .map(|(i, &n)| Series {
                name: format!("{} labels", n * 10),
                points: table
                    .iter()
                    .filter_map(|(_, secs, cells)| {
                        let acc = 100.0 * column(&cells[i], |f| f.finetuned).0;
                        Some((secs.unwrap_or(0.0) / 60.0, acc)).filter(|(m, a)| m.is_finite() && a.is_finite())
                    })
                    .collect(),
            })
            .collect(),
        log_x: false,
        scatter: true,
    };
    std::fs::create_dir_all(&cfg.out)?;
    std::fs::write(cfg.out.join("results.md"), &md)?;
    std::fs::write(cfg.out.join("results.csv"), csv)?;
    std::fs::write(cfg.out.join("accuracy.png"), plot.to_png()?)?;
    std::fs::write(cfg.out.join("compute.png"), compute.to_png()?)?;
    Ok(md)
}

/// Fingerprint of the unlabeled pool as a pretraining run records it.
fn fingerprint(spec: &str) -> Result<String> {
    Ok(load_data(spec, "data", false, Split::Train)?.unlabeled().fingerprint())
}

/// The pretraining settings of `method` under the study's seed.
fn settings(cfg: &Config, method: &Method) -> PretrainConfig {
    PretrainConfig { seed: cfg.pretrain_seed, ..method.settings.clone() }
}

/// The pretrained run of `method`: reused when its manifest matches the config, else trained.
fn pretrained(cfg: &Config, method: &Method, force: bool, args: &[String]) -> Result<RunDir> {
    let req = pretrain_request(cfg, method, force, args);
    let out = &req.out;
    if out.exists() && !force {
        let run = RunDir::open(out)?;
        let recorded = serde_json::from_value::<PretrainConfig>(run.manifest.config["train"].clone()).ok();
        let same = run.manifest.method.as_deref() == Some(method.name.as_str())
            && recorded.as_ref() == Some(&req.cfg)
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
    let t0 = Instant::now();
    let run = pipeline::pretrain(&req, &mut Silent)?;
    eprintln!("pretrained {} in {:.0} s", method.name, t0.elapsed().as_secs_f64());
    Ok(run)
}
