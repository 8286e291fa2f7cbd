//! `strata search`: walks the source notes' reuse strategy for the user. Each trial is one
//! configuration trained with the same seed on the same labels minus a stratified validation split;
//! the best validation accuracy wins and is written as a normal run directory.

use crate::error::{Context, Result, RunError};
use crate::stage2::{LabelSubset, Resolved, RunInfo, Stage2, write_classifier};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use strata_data::stratified_split;
use strata_nn::ArchSpec;
use strata_train::finetune::FinetuneOutcome;
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
/// the top block re-initialised; hidden blocks added. Every trial trains as many steps as
/// `base`, and its name is [`FinetuneConfig::to_flags`] against `base`, so typing the name
/// after the search's own flags reproduces the trial.
pub fn trials(depth: usize, base: &FinetuneConfig, add_hidden: Option<&ArchSpec>) -> Vec<Trial> {
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
    out
}

/// One row of the search table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// the trial's finetune flags
    pub trial: String,
    /// the classifier's backbone
    pub backbone: String,
    /// accuracy on the held-out validation split (None: not run)
    pub val_accuracy: Option<f64>,
    /// accuracy on `--test` (None: no test set, or not run)
    pub test_accuracy: Option<f64>,
    /// training seconds
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
    let all = stage.train.require_labels()?;
    let subset_labels: Vec<u32> = stage.rows.iter().map(|&r| all[r]).collect();
    let (fit, val) = stratified_split(&subset_labels, stage.train.num_classes(), req.val_fraction, req.base.seed)
        .context("--val-fraction")?;
    let fit: Vec<usize> = fit.into_iter().map(|i| stage.rows[i]).collect();
    let val: Vec<usize> = val.into_iter().map(|i| stage.rows[i]).collect();
    if val.is_empty() {
        return Err(RunError::invalid(format!(
            "--val-fraction {}: no image is left for validation ({} labeled images); use more labels or a larger fraction",
            req.val_fraction,
            stage.rows.len()
        )));
    }
    let val_data = stage.train.subset(&val);
    let depth = stage.parent.as_ref().map(|p| p.arch.blocks.len()).unwrap_or(0);
    let scratch_arch = stage.parent.as_ref().map(|p| p.arch.clone()).unwrap_or_else(ArchSpec::reference);

    let mut rows = Vec::new();
    let mut best: Option<(usize, f64, FinetuneConfig, Resolved, FinetuneOutcome)> = None;
    for trial in trials(depth, &req.base, req.add_hidden.as_ref()) {
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
                test_accuracy: None,
                seconds: 0.0,
                status: "skipped (budget)".into(),
            });
            continue;
        }
        let t0 = Instant::now();
        let cfg = trial.cfg;
        let model =
            stage.resolve(&cfg, &scratch_arch, trial.scratch).with_context(|| format!("trial `{}`", trial.name))?;
        let outcome =
            match stage.train(&cfg, &model, &fit, Some(&val_data), &mut Silent, &mut strata_train::recorder::Discard) {
                Ok(o) => o,
                // a diverging trial is a result, not the end of the search
                Err(e) => {
                    rows.push(Row {
                        trial: trial.name,
                        backbone: model.backbone.arch.to_string(),
                        val_accuracy: None,
                        test_accuracy: None,
                        seconds: t0.elapsed().as_secs_f64(),
                        status: format!("failed: {e:#}"),
                    });
                    progress(rows.last().unwrap_or_else(|| unreachable!()));
                    continue;
                }
            };
        let val_accuracy = outcome.evaluation.as_ref().map(|e| e.accuracy).unwrap_or(0.0);
        let test_accuracy = match &stage.test {
            Some(t) => Some(evaluate(&outcome.model, t, None, stage.norm(&model.backbone), &stage.device)?.accuracy),
            None => None,
        };
        rows.push(Row {
            trial: trial.name,
            backbone: model.backbone.arch.to_string(),
            val_accuracy: Some(val_accuracy),
            test_accuracy,
            seconds: t0.elapsed().as_secs_f64(),
            status: "done".into(),
        });
        progress(rows.last().unwrap_or_else(|| unreachable!()));
        writer.log(&serde_json::to_value(rows.last())?)?;
        // ties go to the earlier trial: the simpler change in the strategy's order
        if best.as_ref().is_none_or(|b| val_accuracy > b.1) {
            best = Some((rows.len() - 1, val_accuracy, cfg, model, outcome));
        }
    }
    let (winner, _, cfg, model, outcome) = best.context("no trial finished; see the table's status column")?;
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
            "rows": rows,
        })),
        kind: None,
    };
    let manifest = stage.manifest(&cfg, &model, &outcome, info);
    let run = write_classifier(writer, manifest, &outcome, test_eval.as_ref())?;
    Ok(SearchResult { rows, winner, run, split: (val.len(), fit.len()), seconds: started.elapsed().as_secs_f64() })
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
                pct(r.val_accuracy),
                pct(r.test_accuracy),
                r.seconds,
                r.status
            );
        }
        s
    }

    /// CSV with a header line.
    pub fn csv(&self) -> String {
        let mut s = String::from("trial,backbone,val_accuracy,test_accuracy,seconds,status,winner\n");
        let num = |a: Option<f64>| a.map(|a| format!("{a:.6}")).unwrap_or_default();
        for (i, r) in self.rows.iter().enumerate() {
            let _ = writeln!(
                s,
                "\"{}\",\"{}\",{},{},{:.2},\"{}\",{}",
                r.trial,
                r.backbone,
                num(r.val_accuracy),
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
        let names: Vec<String> =
            trials(3, &FinetuneConfig::default(), Some(&add)).into_iter().map(|t| t.name).collect();
        let frozen = "--frozen-steps 1000 --unfreeze-steps 0 --unfreeze-top 0";
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
            ]
        );
    }

    #[test]
    fn a_trial_name_typed_after_the_base_flags_reproduces_the_trial() {
        let base_flags = ["strata", "--frozen-steps", "30", "--unfreeze-steps", "0", "--lr", "0.01", "--seed", "4"];
        let base = Flags::parse_from(base_flags).cfg;
        for t in trials(3, &base, Some(&ArchSpec::parse("dense8").unwrap())).into_iter().filter(|t| !t.scratch) {
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
        for t in trials(2, &base, None) {
            assert_eq!(t.cfg.steps(), 30, "{}", t.name);
            if t.cfg.unfreeze_top > 0 && !t.scratch {
                assert!(t.cfg.unfreeze_steps > 0, "{}", t.name);
            }
        }
    }
}
