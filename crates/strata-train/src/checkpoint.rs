//! Checkpoints: everything a training loop needs to continue exactly where it stopped —
//! weights with their parameter ids, optimiser state, the loop's position (step, epoch, place
//! in the data order, partial sums) — written as one directory that appears atomically.
//!
//! Random draws need no saving: every step's noise comes from `step_rng(seed, salt, step)` and
//! every epoch's order from `epoch_order(seed, epoch)`, pure functions of the position.

use crate::error::{Result, TrainError};
use crate::files::{sha256_hex, write_atomic};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::optim::record::OptimizerRecord;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Version of the checkpoint layout; a checkpoint of another version is not resumed.
pub const CHECKPOINT_VERSION: u32 = 1;
/// The description file inside each checkpoint directory, written last.
const INDEX: &str = "checkpoint.json";
/// Which checkpoint has the best metric, beside the checkpoint directories.
const BEST: &str = "best.json";

/// Named binary parts of a checkpoint (`model.bpk`, `optim.bpk`, pictures made so far).
pub type Parts = BTreeMap<String, Vec<u8>>;

/// Part name of the model's weights (with their parameter ids).
pub const MODEL_PART: &str = "model.bpk";
/// Part name of the optimiser state, for loops with a single optimiser.
pub const OPTIM_PART: &str = "optim.bpk";

/// Refuses to checkpoint weights holding NaN or infinity (`tensor`: the first such one): the
/// last good checkpoint stays the newest.
pub fn refuse_nonfinite(tensor: Option<String>, phase: &str, step: usize) -> Result<()> {
    match tensor {
        Some(t) => Err(TrainError::Diverged {
            phase: phase.into(),
            step,
            what: format!("tensor {t} holds NaN or infinite values"),
        }),
        None => Ok(()),
    }
}

/// Adds to a divergence error the first non-finite tensor of the model (`tensor`), or says the
/// weights are still finite; other errors pass through.
pub fn name_nonfinite(e: TrainError, tensor: Option<String>) -> TrainError {
    match e {
        TrainError::Diverged { phase, step, what } => {
            let tensor = match tensor {
                Some(t) => format!("; first non-finite tensor: {t}"),
                None => "; the weights are still finite (the loss itself overflowed)".into(),
            };
            TrainError::Diverged { phase, step, what: format!("{what}{tensor}") }
        }
        other => other,
    }
}

/// One checkpoint in memory.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// optimiser steps taken (across phases)
    pub step: usize,
    /// the phase (pretraining method or fine-tuning phase) it was taken in
    pub phase: String,
    /// the loop's own position and sums, restored by the same loop
    pub state: serde_json::Value,
    /// weights, optimiser state and other binary parts
    pub parts: Parts,
    /// the figure "best" is chosen by (lower is better): the epoch's mean training loss
    pub metric: Option<f64>,
    /// bytes of `metrics.jsonl` this checkpoint covers; later lines are dropped on resume
    pub metrics_len: u64,
}

/// What `checkpoint.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Index {
    version: u32,
    step: usize,
    phase: String,
    metric: Option<f64>,
    metrics_len: u64,
    created_unix: u64,
    state: serde_json::Value,
    /// every part's checksum and size, so a truncated or altered file is found before use
    files: BTreeMap<String, FileRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FileRecord {
    sha256: String,
    bytes: u64,
}

/// A checkpoint on disk, as listed without loading its parts.
#[derive(Debug, Clone)]
pub struct CheckpointInfo {
    /// its directory
    pub path: PathBuf,
    /// optimiser steps taken
    pub step: usize,
    /// phase it was taken in
    pub phase: String,
    /// the metric "best" is chosen by
    pub metric: Option<f64>,
    /// None if it verifies; otherwise what is wrong with it
    pub problem: Option<String>,
}

/// When checkpoints are written and how many are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointPolicy {
    /// every this many optimiser steps; None = at the end of every epoch (pretraining) or
    /// every `max(epoch, 100)` steps and at every phase end (fine-tuning)
    pub every_steps: Option<usize>,
    /// the newest this many are kept (the best one is kept as well)
    pub keep_last: usize,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        Self { every_steps: None, keep_last: 2 }
    }
}

/// The `checkpoints/` folder of a run.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
    keep_last: usize,
}

fn dir_name(step: usize) -> String {
    format!("step-{step:010}")
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl CheckpointStore {
    /// The store in `dir` (created on first write), keeping the newest `keep_last`.
    pub fn new(dir: impl Into<PathBuf>, keep_last: usize) -> Self {
        Self { dir: dir.into(), keep_last: keep_last.max(1) }
    }

    /// Its folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `ck` as `step-NNNNNNNNNN/`: parts and index into a hidden temporary directory,
    /// each file synced, then one rename, so a checkpoint directory is whole or absent.
    /// Older checkpoints beyond `keep_last` are then removed, except the best.
    pub fn write(&self, ck: &Checkpoint) -> Result<PathBuf> {
        let io = |p: &Path, e: std::io::Error| TrainError::io(p, e);
        fs::create_dir_all(&self.dir).map_err(|e| io(&self.dir, e))?;
        let final_dir = self.dir.join(dir_name(ck.step));
        let tmp = self.dir.join(format!(".tmp-{}-{}", dir_name(ck.step), std::process::id()));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
        }
        fs::create_dir(&tmp).map_err(|e| io(&tmp, e))?;
        let mut files = BTreeMap::new();
        for (name, bytes) in &ck.parts {
            let p = tmp.join(name);
            write_synced(&p, bytes).map_err(|e| io(&p, e))?;
            files.insert(name.clone(), FileRecord { sha256: sha256_hex(bytes), bytes: bytes.len() as u64 });
        }
        let index = Index {
            version: CHECKPOINT_VERSION,
            step: ck.step,
            phase: ck.phase.clone(),
            metric: ck.metric,
            metrics_len: ck.metrics_len,
            created_unix: now_unix(),
            state: ck.state.clone(),
            files,
        };
        let json = serde_json::to_vec_pretty(&index)
            .map_err(|e| TrainError::BadRun { path: tmp.clone(), reason: format!("checkpoint index: {e}") })?;
        let p = tmp.join(INDEX);
        write_synced(&p, &json).map_err(|e| io(&p, e))?;
        fsync_dir(&tmp).map_err(|e| io(&tmp, e))?;
        if final_dir.exists() {
            // a resumed run passing the step it was resumed from again: same content
            fs::remove_dir_all(&final_dir).map_err(|e| io(&final_dir, e))?;
        }
        fs::rename(&tmp, &final_dir).map_err(|e| io(&final_dir, e))?;
        fsync_dir(&self.dir).map_err(|e| io(&self.dir, e))?;
        self.update_best(ck)?;
        self.prune()?;
        Ok(final_dir)
    }

    fn best_step(&self) -> Option<(usize, Option<f64>)> {
        let text = fs::read(self.dir.join(BEST)).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
        Some((v.get("step")?.as_u64()? as usize, v.get("metric").and_then(|m| m.as_f64())))
    }

    fn update_best(&self, ck: &Checkpoint) -> Result<()> {
        let Some(metric) = ck.metric.filter(|m| m.is_finite()) else { return Ok(()) };
        let better = match self.best_step() {
            Some((step, _)) if step == ck.step => true,
            Some((step, Some(best))) => metric < best || !self.dir.join(dir_name(step)).exists(),
            _ => true,
        };
        if better {
            let json = serde_json::json!({ "step": ck.step, "metric": metric, "dir": dir_name(ck.step) });
            write_atomic(&self.dir.join(BEST), json.to_string().as_bytes())?;
        }
        Ok(())
    }

    /// Removes all but the newest `keep_last` checkpoints and the best; also leftovers of
    /// writes that never finished.
    fn prune(&self) -> Result<()> {
        let best = self.best_step().map(|b| b.0);
        let mut steps = self.steps();
        steps.sort_unstable_by(|a, b| b.cmp(a));
        for step in steps.into_iter().skip(self.keep_last) {
            if Some(step) != best {
                let p = self.dir.join(dir_name(step));
                fs::remove_dir_all(&p).map_err(|e| TrainError::io(&p, e))?;
            }
        }
        Ok(())
    }

    /// Removes temporary directories of checkpoint writes that were cut off.
    pub fn clean_leftovers(&self) {
        for entry in fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }

    /// Steps of the checkpoint directories present (not verified).
    fn steps(&self) -> Vec<usize> {
        fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_prefix("step-")?.parse().ok())
            .collect()
    }

    /// Every checkpoint, newest first, each verified against its checksums.
    pub fn list(&self) -> Vec<CheckpointInfo> {
        let mut steps = self.steps();
        steps.sort_unstable_by(|a, b| b.cmp(a));
        steps
            .into_iter()
            .map(|step| {
                let path = self.dir.join(dir_name(step));
                match read_checkpoint(&path) {
                    Ok(ck) => CheckpointInfo { path, step: ck.step, phase: ck.phase, metric: ck.metric, problem: None },
                    Err(e) => {
                        CheckpointInfo { path, step, phase: String::new(), metric: None, problem: Some(e.to_string()) }
                    }
                }
            })
            .collect()
    }

    /// The newest checkpoint that verifies, with the problems of newer ones that did not.
    pub fn latest(&self) -> (Option<Checkpoint>, Vec<String>) {
        let mut problems = Vec::new();
        let mut steps = self.steps();
        steps.sort_unstable_by(|a, b| b.cmp(a));
        for step in steps {
            match read_checkpoint(&self.dir.join(dir_name(step))) {
                Ok(ck) => return (Some(ck), problems),
                Err(e) => problems.push(e.to_string()),
            }
        }
        (None, problems)
    }
}

/// Reads and verifies the checkpoint in `dir`.
pub fn read_checkpoint(dir: &Path) -> Result<Checkpoint> {
    let bad = |reason: String| TrainError::BadRun { path: dir.into(), reason };
    let text = fs::read(dir.join(INDEX)).map_err(|e| bad(format!("{INDEX} unreadable: {e}")))?;
    let index: Index = serde_json::from_slice(&text).map_err(|e| bad(format!("{INDEX} is damaged: {e}")))?;
    if index.version != CHECKPOINT_VERSION {
        return Err(bad(format!(
            "checkpoint version {} (this strata reads version {CHECKPOINT_VERSION}); resume it with the strata that wrote it",
            index.version
        )));
    }
    let mut parts = Parts::new();
    for (name, rec) in &index.files {
        let p = dir.join(name);
        let bytes = fs::read(&p).map_err(|e| TrainError::io(&p, e))?;
        if bytes.len() as u64 != rec.bytes || sha256_hex(&bytes) != rec.sha256 {
            return Err(TrainError::BadRun {
                path: p,
                reason: format!(
                    "checksum mismatch ({} bytes, {} expected): the checkpoint file is truncated or was altered",
                    bytes.len(),
                    rec.bytes
                ),
            });
        }
        parts.insert(name.clone(), bytes);
    }
    Ok(Checkpoint {
        step: index.step,
        phase: index.phase,
        state: index.state,
        parts,
        metric: index.metric,
        metrics_len: index.metrics_len,
    })
}

/// A module's parameters with their ids (the optimiser's state is keyed by them).
pub fn module_bytes<M: Module>(module: &M) -> Result<Vec<u8>> {
    // burn's running statistics (batch norm) read back one update stale until synchronised,
    // and `valid()` is the public way to synchronise them: without it a resumed run would
    // start from the statistics of the step before its checkpoint
    let bytes = module
        .clone()
        .valid()
        .into_record()
        .into_bytes()
        .map_err(|e| TrainError::BadRun { path: "<checkpoint>".into(), reason: format!("saving weights: {e}") })?;
    Ok(bytes.to_vec())
}

/// `module` with the parameters (and ids) of [`module_bytes`] output; every tensor must match.
pub fn load_module<M: Module>(module: M, bytes: &[u8], part: &str) -> Result<M> {
    let bad = |e: String| TrainError::BadRun { path: part.into(), reason: format!("checkpoint weights: {e}") };
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes.to_vec())).map_err(|e| bad(e.to_string()))?;
    module.try_load_record(record).map_err(|e| bad(e.to_string()))
}

/// An optimiser's state.
pub fn optimizer_bytes(optim: &ModuleOptimizer) -> Result<Vec<u8>> {
    let bytes = optim
        .to_record()
        .into_bytes()
        .map_err(|e| TrainError::BadRun { path: "<checkpoint>".into(), reason: format!("saving optimiser: {e}") })?;
    Ok(bytes.to_vec())
}

/// `optim` with the state of [`optimizer_bytes`] output.
pub fn load_optimizer(optim: ModuleOptimizer, bytes: &[u8], part: &str) -> Result<ModuleOptimizer> {
    let record = OptimizerRecord::from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
        .map_err(|e| TrainError::BadRun { path: part.into(), reason: format!("checkpoint optimiser: {e}") })?;
    Ok(optim.load_record(record))
}

/// The part called `name`, or an error naming the checkpoint's missing file.
pub fn part<'a>(parts: &'a Parts, name: &str) -> Result<&'a [u8]> {
    parts.get(name).map(Vec::as_slice).ok_or_else(|| TrainError::BadRun {
        path: name.into(),
        reason: "missing from the checkpoint (written by another method or version?)".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_norm_statistics_continue_from_a_checkpoint_as_if_never_stopped() {
        use burn::tensor::{Device, Distribution, Tensor};
        use strata_nn::block::{build_stack, forward_stack};
        use strata_nn::{ArchSpec, FeatureShape, Features, seeded, weights::snapshot};
        let device = Device::flex().autodiff();
        let spec = ArchSpec::parse("conv4-bn-pool,dense8-bn").unwrap();
        let make =
            |seed| seeded(&device, seed, || build_stack(&spec.blocks, FeatureShape::Map(1, 6, 6), &device).unwrap());
        let x = Tensor::<4>::random([5, 1, 6, 6], Distribution::Default, &device);
        let step = |m: &Vec<strata_nn::Block>| drop(forward_stack(m, Features::Map(x.clone())));
        let running = make(1);
        for _ in 0..3 {
            step(&running);
        }
        // burn keeps the newest running mean and variance aside until the next update: the
        // checkpoint must hold them, not the ones before
        let resumed = load_module(make(2), &module_bytes(&running).unwrap(), "m").unwrap();
        step(&running);
        step(&resumed);
        assert_eq!(snapshot(&running.valid()), snapshot(&resumed.valid()));
    }

    fn ck(step: usize, metric: f64) -> Checkpoint {
        let mut parts = Parts::new();
        parts.insert("a.bin".into(), vec![step as u8; 10]);
        Checkpoint {
            step,
            phase: "p".into(),
            state: serde_json::json!({"x": step}),
            parts,
            metric: Some(metric),
            metrics_len: 7,
        }
    }

    #[test]
    fn divergence_errors_name_the_tensor() {
        let e = refuse_nonfinite(Some("backbone.1.conv.weight".into()), "ae", 7).unwrap_err().to_string();
        assert!(e.contains("step 7") && e.contains("backbone.1.conv.weight") && e.contains("--lr"), "{e}");
        assert!(refuse_nonfinite(None, "ae", 7).is_ok());
        let loss = || TrainError::Diverged { phase: "ae".into(), step: 3, what: "the loss became NaN".into() };
        let named = name_nonfinite(loss(), Some("head.0.linear.bias".into())).to_string();
        assert!(named.contains("NaN; first non-finite tensor: head.0.linear.bias"), "{named}");
        assert!(name_nonfinite(loss(), None).to_string().contains("weights are still finite"));
        let other = name_nonfinite(TrainError::config("--lr", 1, "fix"), Some("x".into())).to_string();
        assert!(!other.contains("non-finite"), "{other}");
    }

    #[test]
    fn keeps_the_newest_and_the_best() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path().join("checkpoints"), 2);
        for (step, metric) in [(1, 0.5), (2, 0.1), (3, 0.4), (4, 0.3), (5, 0.2)] {
            store.write(&ck(step, metric)).unwrap();
        }
        let steps: Vec<usize> = store.list().iter().map(|c| c.step).collect();
        assert_eq!(steps, vec![5, 4, 2]);
        let (latest, problems) = store.latest();
        assert!(problems.is_empty());
        let latest = latest.unwrap();
        assert_eq!((latest.step, latest.metrics_len, latest.state["x"].as_u64()), (5, 7, Some(5)));
        assert_eq!(latest.parts["a.bin"], vec![5u8; 10]);
    }

    #[test]
    fn a_damaged_checkpoint_is_named_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path().join("checkpoints"), 3);
        store.write(&ck(1, 0.5)).unwrap();
        let newest = store.write(&ck(2, 0.4)).unwrap();
        fs::write(newest.join("a.bin"), b"short").unwrap();
        let (latest, problems) = store.latest();
        assert_eq!(latest.unwrap().step, 1);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("a.bin") && problems[0].contains("truncated"), "{}", problems[0]);
        let listed = store.list();
        assert!(listed[0].problem.is_some() && listed[1].problem.is_none());
    }

    #[test]
    fn an_unfinished_write_is_not_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path().join("checkpoints"), 3);
        store.write(&ck(1, 0.5)).unwrap();
        // what a kill during a write leaves: a temporary directory without its index
        let tmp = store.dir().join(".tmp-step-0000000002-1");
        fs::create_dir_all(&tmp).unwrap();
        fs::write(tmp.join("a.bin"), b"half").unwrap();
        assert_eq!(store.latest().0.unwrap().step, 1);
        store.clean_leftovers();
        assert!(!tmp.exists());
    }
}
