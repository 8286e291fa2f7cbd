//! `strata search`: walks the source notes' reuse strategy for the user. Each trial is one
//! configuration trained with the same seed on the same labels minus a stratified validation split;
//! the best validation accuracy wins and is written as a normal run directory.

use crate::error::{Context, Result, RunError};
use crate::stage2::{LabelSubset, Resolved, RunInfo, Stage2, write_classifier};
use crate::stats::mean_std;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use strata_data::stratified_split;
use strata_nn::ArchSpec;
use strata_train::finetune::FinetuneOutcome;
use strata_train::finetune::{FEW_LABELS_CLUSTER_LABELS, HeadInit};
use strata_train::progress::Silent;
use strata_train::{FinetuneConfig, RunDir, RunWriter, evaluate};

/// Everything `strata search` needs.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    /// the pretrained (or any earlier) run whose blocks are reused
    pub from: PathBuf,
    /// labeled training data SPEC
    pub train: String,
    /// labeled test data SPEC, scored for every trial (never used to choose)
    pub test: Option<String>,
    /// only these classes of the labeled data
    pub classes: Option<String>,
    /// which labeled images the search may use
    pub labels: LabelSubset,
    /// share of them held out to choose the winner
    pub val_fraction: f64,
    /// the settings every trial starts from (the trials vary surgery and unfreezing); its
    /// seed draws the label subset, the split, inits and data order, the same for every trial
    pub base: FinetuneConfig,
    /// hidden blocks of the "add hidden" trial
    pub add_hidden: Option<ArchSpec>,
    /// stop starting trials once this much time is spent
    pub budget: Option<Duration>,
    /// seeds each trial is trained with (base.seed, base.seed + 1, ...): each draws its own
    /// label subset and validation split, and the table shows the mean and spread
    pub seeds: usize,
    /// where the winner goes
    pub out: PathBuf,
    /// replace an existing run directory
    pub force: bool,
    /// `--device`
    pub device: String,
    /// argv, for the manifest
    pub argv: Vec<String>,
}

/// One configuration the search tries.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    /// the `strata finetune` flags that turn the search's settings into this trial's
    /// (`--from scratch` for the baseline, `base settings` when nothing changes)
    pub name: String,
    /// its settings
    pub cfg: FinetuneConfig,
    /// trained from random initialisation
    pub scratch: bool,
}

/// The name of an unchanged trial.
pub const BASE: &str = "base settings";

/// The trials for a parent backbone of `depth` blocks, in the order of the source notes:
/// the scratch baseline; all blocks reused and frozen; the top one, then two, unfrozen;
/// the top block dropped, then two, ... (each frozen and with its top block unfrozen);
/// the top block re-initialised; hidden blocks added; the nearest-class-mean classifier
/// (prototype head, no training); when the parent's kept cluster head has one cluster per class
/// (`clusters.head`), the output layer started at it, then the matched clusters alone; and when
/// it has cluster heads at all (`clusters.readout`), the unlabeled images its cluster readout
/// labels (`--cluster-labels`). Every other trial trains as many steps as `base`, and its
/// name is [`FinetuneConfig::to_flags`] against `base`, so typing the name after the search's
/// own flags reproduces the trial.
pub fn trials(
    depth: usize,
    base: &FinetuneConfig,
    add_hidden: Option<&ArchSpec>,
    clusters: ClusterTrials,
) -> Vec<Trial> {
    let steps = base.steps();
    let with = |f: &dyn Fn(&mut FinetuneConfig)| {
        let mut cfg = base.clone();
        f(&mut cfg);
        let flags = cfg.to_flags(base);
        Trial { name: if flags.is_empty() { BASE.into() } else { flags }, cfg, scratch: false }
    };
    let frozen_only = |c: &mut FinetuneConfig| {
        c.frozen_steps = steps;
        c.unfreeze_steps = 0;
        c.unfreeze_top = 0;
    };
    let unfreeze = |n: usize| {
        move |c: &mut FinetuneConfig| {
            c.unfreeze_top = n;
            if c.unfreeze_steps == 0 {
                c.unfreeze_steps = steps / 2;
                c.frozen_steps = steps - steps / 2;
            }
        }
    };
    let mut out = vec![Trial { name: "--from scratch".into(), cfg: base.clone(), scratch: true }];
    for drop in 0..depth {
        let kept = depth - drop;
        out.push(with(&|c| {
            c.drop_top = drop;
            frozen_only(c);
        }));
        for n in 1..=kept.min(2) {
            out.push(with(&|c| {
                c.drop_top = drop;
                unfreeze(n)(c);
            }));
        }
    }
    if depth > 0 {
        out.push(with(&|c| {
            c.replace_top = 1;
            unfreeze(1)(c);
        }));
    }
    if let Some(spec) = add_hidden {
        out.push(with(&|c| {
            c.add_hidden = Some(spec.clone());
            unfreeze(1)(c);
        }));
    }
    if depth > 0 {
        out.push(with(&|c| {
            c.head_init = HeadInit::Prototype;
            c.frozen_steps = 0;
            c.unfreeze_steps = 0;
        }));
    }
    if depth > 0 && clusters.head {
        // the base trial's phases (every trial that trains unfreezes something)
        out.push(with(&|c| {
            unfreeze(base.unfreeze_top.max(1))(c);
            c.head_init = HeadInit::Clusters;
        }));
        out.push(with(&|c| {
            c.head_init = HeadInit::Clusters;
            c.frozen_steps = 0;
            c.unfreeze_steps = 0;
        }));
    }
    if depth > 0 && clusters.readout {
        out.push(with(&|c| {
            unfreeze(base.unfreeze_top.max(1))(c);
            c.cluster_labels = FEW_LABELS_CLUSTER_LABELS;
        }));
    }
    out
}

/// What a parent's cluster heads let the search try.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterTrials {
    /// the kept head has one cluster per class: it can start the output layer
    pub head: bool,
    /// the parent has cluster heads: their readout can label the unlabeled images
    pub readout: bool,
}

/// One row of the search table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// the trial's finetune flags
    pub trial: String,
    /// the classifier's backbone
    pub backbone: String,
    /// accuracy on the held-out validation split, mean over the seeds (None: not run)
    pub val_accuracy: Option<f64>,
    /// its standard deviation over the seeds (0 with one seed)
    pub val_std: Option<f64>,
    /// accuracy on `--test`, mean over the seeds (None: no test set, or not run)
    pub test_accuracy: Option<f64>,
    /// training seconds, all seeds together
    pub seconds: f64,
    /// `done`, `skipped (budget)` or the error that stopped it
    pub status: String,
}

/// The finished search.
pub struct SearchResult {
    /// the rows, in trial order
    pub rows: Vec<Row>,
    /// index of the winning row
    pub winner: usize,
    /// the winner's run directory
    pub run: RunDir,
    /// validation images per class, training images
    pub split: (usize, usize),
    /// seconds the whole search took
    pub seconds: f64,
}

/// Runs the search and writes the winner (with the table) to `req.out`.
pub fn search(req: &SearchRequest, progress: &mut dyn FnMut(&Row)) -> Result<SearchResult> {
    let started = Instant::now();
    req.base.validate()?;
    if !(req.val_fraction > 0.0 && req.val_fraction < 1.0) {
        return Err(RunError::invalid(format!("--val-fraction {}: use a share in (0, 1), e.g. 0.2", req.val_fraction)));
    }
    let mut writer = RunWriter::create(&req.out, req.force)?;
    let stage = Stage2::load(
        Some(&req.from),
        &req.train,
        req.test.as_deref(),
        req.classes.as_deref(),
        req.labels,
        req.base.seed,
        &req.device,
    )?;
    if req.seeds == 0 {
        return Err(RunError::invalid("--seeds 0: train each trial with at least one seed"));
    }
    let all = stage.train.require_labels()?;
    let classes = stage.train.num_classes();
    // each seed draws its own labels and validation split, so a lucky split cannot pick the winner
    let mut splits = Vec::with_capacity(req.seeds);
    for seed in (0..req.seeds as u64).map(|i| req.base.seed + i) {
        let subset = if seed == req.base.seed { stage.rows.clone() } else { stage.labels.rows(all, classes, seed)? };
        let subset_labels: Vec<u32> = subset.iter().map(|&r| all[r]).collect();
        let (fit, val) = stratified_split(&subset_labels, classes, req.val_fraction, seed).context("--val-fraction")?;
        let fit: Vec<usize> = fit.into_iter().map(|i| subset[i]).collect();
        let val: Vec<usize> = val.into_iter().map(|i| subset[i]).collect();
        if val.is_empty() {
            return Err(RunError::invalid(format!(
                "--val-fraction {}: no image is left for validation ({} labeled images); use more labels or a larger fraction",
                req.val_fraction,
                subset.len()
            )));
        }
        let val_data = stage.train.subset(&val);
        splits.push((seed, fit, val, val_data));
    }
    let depth = stage.parent.as_ref().map(|p| p.arch.blocks.len()).unwrap_or(0);
    let scratch_arch = stage.parent.as_ref().map(|p| p.arch.clone()).unwrap_or_else(ArchSpec::reference);

    let mut rows = Vec::new();
    // the first seed's classifier of every finished trial, one of which is written
    let mut kept: Vec<Option<(FinetuneConfig, Resolved, FinetuneOutcome)>> = Vec::new();
    // a parent whose kept cluster head has one cluster per class can start the output layer;
    // one with cluster heads at all can label the unlabeled images
    let has_heads = stage.parent.as_ref().is_some_and(|p| p.run.manifest.metrics.get("chosen_head").is_some());
    let clusters = ClusterTrials {
        head: has_heads
            && stage.parent.as_ref().is_some_and(|p| {
                p.run.manifest.config["train"]["clusters"].as_u64() == Some(stage.train.num_classes() as u64)
            }),
        readout: has_heads,
    };
    for trial in trials(depth, &req.base, req.add_hidden.as_ref(), clusters) {
        let spent = started.elapsed();
        let typical = rows.iter().map(|r: &Row| r.seconds).fold(0.0, f64::max);
        // the scratch row always runs: without it there is nothing to compare with
        if let Some(budget) = req.budget
            && !trial.scratch
            && spent.as_secs_f64() + typical > budget.as_secs_f64()
        {
            rows.push(Row {
                trial: trial.name,
                backbone: String::new(),
                val_accuracy: None,
                val_std: None,
                test_accuracy: None,
                seconds: 0.0,
                status: "skipped (budget)".into(),
            });
            kept.push(None);
            continue;
        }
        let t0 = Instant::now();
        let model = stage
            .resolve(&trial.cfg, &scratch_arch, trial.scratch)
            .with_context(|| format!("trial `{}`", trial.name))?;
        let (mut vals, mut tests, mut first, mut failure) = (Vec::new(), Vec::new(), None, None);
        for (seed, fit, _, val_data) in &splits {
            let cfg = FinetuneConfig { seed: *seed, ..trial.cfg.clone() };
            let log = &mut strata_train::recorder::Discard;
            match stage.train(&cfg, &model, fit, Some(val_data), &mut Silent, log) {
                Ok(outcome) => {
                    vals.push(outcome.evaluation.as_ref().map(|e| e.accuracy).unwrap_or(0.0));
                    if let Some(t) = &stage.test {
                        tests.push(
                            evaluate(&outcome.model, t, None, stage.norm(&model.backbone), &stage.device)?.accuracy,
                        );
                    }
                    if first.is_none() {
                        first = Some((cfg, outcome));
                    }
                }
                // a diverging trial is a result, not the end of the search
                Err(e) => {
                    failure = Some(format!("failed (seed {seed}): {e:#}"));
                    break;
                }
            }
        }
        let (mean, std) = mean_std(&vals);
        let done = failure.is_none();
        rows.push(Row {
            trial: trial.name,
            backbone: model.backbone.arch.to_string(),
            val_accuracy: done.then_some(mean),
            val_std: done.then_some(std),
            test_accuracy: (done && !tests.is_empty()).then(|| mean_std(&tests).0),
            seconds: t0.elapsed().as_secs_f64(),
            status: failure.unwrap_or_else(|| "done".into()),
        });
        kept.push(if done { first.map(|(cfg, outcome)| (cfg, model, outcome)) } else { None });
        progress(rows.last().unwrap_or_else(|| unreachable!()));
        writer.log(&serde_json::to_value(rows.last())?)?;
    }
    let winner = choose(&rows).context("no trial finished; see the table's status column")?;
    let (cfg, model, outcome) = kept[winner].take().context("the winner's classifier")?;
    let (fit, val) = (splits[0].1.clone(), splits[0].2.clone());
    let table = Table { rows: &rows, winner };
    writer.write_file("search.md", table.markdown().as_bytes())?;
    writer.write_file("search.csv", table.csv().as_bytes())?;
    writer.write_file("search.json", &serde_json::to_vec_pretty(&rows)?)?;
    let mut metrics = serde_json::json!({ "seconds": started.elapsed().as_secs_f64() });
    metrics["validation_accuracy"] = serde_json::json!(rows[winner].val_accuracy);
    let test_eval = match &stage.test {
        Some(t) => Some(evaluate(&outcome.model, t, None, stage.norm(&model.backbone), &stage.device)?),
        None => None,
    };
    if let Some(e) = &test_eval {
        metrics["test_accuracy"] = serde_json::json!(e.accuracy);
        metrics["test_macro_f1"] = serde_json::json!(e.macro_f1);
    }
    let info = RunInfo {
        argv: req.argv.clone(),
        metrics,
        eval_name: "validation",
        rows: fit.clone(),
        rows_subset: true,
        search: Some(serde_json::json!({
            "winner": rows[winner].trial, "validation_images": val.len(), "val_fraction": req.val_fraction,
            "seeds": req.seeds, "rows": rows,
        })),
        kind: None,
    };
    let manifest = stage.manifest(&cfg, &model, &outcome, info);
    let run = write_classifier(writer, manifest, &outcome, test_eval.as_ref())?;
    Ok(SearchResult { rows, winner, run, split: (val.len(), fit.len()), seconds: started.elapsed().as_secs_f64() })
}

/// The winning row: the best mean validation accuracy, or the earliest trial (the simpler
/// change in the strategy's order) whose mean lies within the best one's spread over seeds.
pub fn choose(rows: &[Row]) -> Option<usize> {
    let best = (0..rows.len()).filter(|&i| rows[i].val_accuracy.is_some()).max_by(|&a, &b| {
        rows[a].val_accuracy.partial_cmp(&rows[b].val_accuracy).unwrap_or(std::cmp::Ordering::Equal).then(b.cmp(&a))
    })?;
    let (top, spread) = (rows[best].val_accuracy?, rows[best].val_std.unwrap_or(0.0));
    (0..rows.len()).find(|&i| rows[i].val_accuracy.is_some_and(|v| v >= top - spread))
}

/// The table as text.
pub struct Table<'a> {
    /// rows in trial order
    pub rows: &'a [Row],
    /// the winning row
    pub winner: usize,
}

fn pct(a: Option<f64>) -> String {
    a.map(|a| format!("{:.2}%", 100.0 * a)).unwrap_or_else(|| "-".into())
}

/// A mean with its spread over seeds, when there is one.
pub fn spread(mean: Option<f64>, std: Option<f64>) -> String {
    match (mean, std) {
        (Some(m), Some(s)) if s > 0.0 => format!("{:.2} ± {:.2}%", 100.0 * m, 100.0 * s),
        _ => pct(mean),
    }
}

impl Table<'_> {
    /// Markdown, the winner marked.
    pub fn markdown(&self) -> String {
        let mut s =
            String::from("| trial | backbone | validation | test | seconds | status |\n|---|---|---:|---:|---:|---|\n");
        for (i, r) in self.rows.iter().enumerate() {
            let mark = if i == self.winner { " **(winner)**" } else { "" };
            let _ = writeln!(
                s,
                "| `{}`{mark} | `{}` | {} | {} | {:.1} | {} |",
                r.trial,
                r.backbone,
                spread(r.val_accuracy, r.val_std),
                pct(r.test_accuracy),
                r.seconds,
                r.status
            );
        }
        s
    }

    /// CSV with a header line.
    pub fn csv(&self) -> String {
        let mut s = String::from("trial,backbone,val_accuracy,val_std,test_accuracy,seconds,status,winner\n");
        let num = |a: Option<f64>| a.map(|a| format!("{a:.6}")).unwrap_or_default();
        for (i, r) in self.rows.iter().enumerate() {
            let _ = writeln!(
                s,
                "\"{}\",\"{}\",{},{},{},{:.2},\"{}\",{}",
                r.trial,
                r.backbone,
                num(r.val_accuracy),
                num(r.val_std),
                num(r.test_accuracy),
                r.seconds,
                r.status.replace('"', "'"),
                i == self.winner
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// The finetune flags as typed: a repeated flag takes its last value, as in `strata`.
    #[derive(Parser)]
    #[command(args_override_self = true)]
    struct Flags {
        #[command(flatten)]
        cfg: FinetuneConfig,
    }

    #[test]
    fn the_trials_walk_the_strategy() {
        let add = ArchSpec::parse("dense64").unwrap();
        let names: Vec<String> = trials(3, &FinetuneConfig::default(), Some(&add), ClusterTrials::default())
            .into_iter()
            .map(|t| t.name)
            .collect();
        let frozen = "--frozen-steps 3000 --unfreeze-steps 0 --unfreeze-top 0";
        assert_eq!(
            names,
            [
                "--from scratch".to_string(),
                frozen.into(),
                BASE.into(),
                "--unfreeze-top 2".into(),
                format!("--drop-top 1 {frozen}"),
                "--drop-top 1".into(),
                "--drop-top 1 --unfreeze-top 2".into(),
                format!("--drop-top 2 {frozen}"),
                "--drop-top 2".into(),
                "--replace-top 1".into(),
                "--add-hidden dense64".into(),
                "--frozen-steps 0 --head-init prototype --unfreeze-steps 0".into(),
            ]
        );
        // a parent with cluster heads adds the cluster-head start, the clusters alone and the
        // readout's labels
        let all = ClusterTrials { head: true, readout: true };
        let more: Vec<String> = trials(3, &FinetuneConfig::default(), Some(&add), all)
            .into_iter()
            .map(|t| t.name)
            .skip(names.len())
            .collect();
        assert_eq!(
            more,
            [
                "--head-init clusters",
                "--frozen-steps 0 --head-init clusters --unfreeze-steps 0",
                "--cluster-labels 0.5"
            ]
        );
        // cluster heads of another count than the classes: only the readout's labels
        let readout = ClusterTrials { head: false, readout: true };
        let more: Vec<String> = trials(3, &FinetuneConfig::default(), Some(&add), readout)
            .into_iter()
            .map(|t| t.name)
            .skip(names.len())
            .collect();
        assert_eq!(more, ["--cluster-labels 0.5"]);
    }

    fn row(val: f64, std: f64) -> Row {
        Row {
            trial: String::new(),
            backbone: String::new(),
            val_accuracy: Some(val),
            val_std: Some(std),
            test_accuracy: None,
            seconds: 0.0,
            status: "done".into(),
        }
    }

    #[test]
    fn ties_within_the_spread_go_to_the_simpler_trial() {
        // the best mean is 0.90 ± 0.03: 0.88 lies within it and comes first in the strategy
        let rows = [row(0.80, 0.0), row(0.88, 0.01), row(0.90, 0.03), row(0.85, 0.0)];
        assert_eq!(choose(&rows), Some(1));
        // with one seed there is no spread: the best wins, the earlier of equals
        let rows = [row(0.80, 0.0), row(0.88, 0.0), row(0.90, 0.0), row(0.90, 0.0)];
        assert_eq!(choose(&rows), Some(2));
        let mut failed = row(0.99, 0.0);
        failed.val_accuracy = None;
        assert_eq!(choose(&[failed, row(0.5, 0.0)]), Some(1));
    }

    #[test]
    fn a_trial_name_typed_after_the_base_flags_reproduces_the_trial() {
        let base_flags = ["strata", "--frozen-steps", "30", "--unfreeze-steps", "0", "--lr", "0.01", "--seed", "4"];
        let base = Flags::parse_from(base_flags).cfg;
        for t in
            trials(3, &base, Some(&ArchSpec::parse("dense8").unwrap()), ClusterTrials { head: true, readout: true })
                .into_iter()
                .filter(|t| !t.scratch)
        {
            let mut argv: Vec<String> = base_flags.iter().map(|s| s.to_string()).collect();
            if t.name != BASE {
                argv.extend(t.name.split(' ').map(str::to_string));
            }
            assert_eq!(Flags::parse_from(argv).cfg, t.cfg, "{}", t.name);
        }
    }

    #[test]
    fn every_trial_trains_as_many_steps_as_the_baseline() {
        let base = FinetuneConfig { frozen_steps: 30, unfreeze_steps: 0, ..FinetuneConfig::default() };
        for t in trials(2, &base, None, ClusterTrials { head: true, readout: true })
            .into_iter()
            .filter(|t| t.cfg.head_init == HeadInit::Random || t.cfg.steps() > 0)
        {
            assert_eq!(t.cfg.steps(), 30, "{}", t.name);
            if t.cfg.unfreeze_top > 0 && !t.scratch {
                assert!(t.cfg.unfreeze_steps > 0, "{}", t.name);
            }
        }
    }
}
