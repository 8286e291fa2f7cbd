//! Run directories: written in a hidden staging directory and renamed into place only
//! when complete, so a run directory is never half-written and an old one is never lost
//! unless `--force` was given.

use crate::checkpoint::{Checkpoint, CheckpointInfo, CheckpointPolicy, CheckpointStore};
use crate::error::{Result, TrainError};
use crate::files::{sha256_hex, write_atomic};
use crate::manifest::{Manifest, SCHEMA_VERSION, WeightsRecord};
use crate::recorder::{Recorder, StopFlag};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use strata_nn::WeightsFile;

/// File names inside a run directory.
pub const MANIFEST: &str = "manifest.json";
/// One JSON object per logged epoch or interval.
pub const METRICS: &str = "metrics.jsonl";

/// Hidden files of a run in progress.
const LOCK: &str = ".lock";
/// The command that started a run, so `--resume` continues it with the same settings.
pub const JOB: &str = "job.json";
/// Checkpoint folder inside a run in progress.
pub const CHECKPOINTS: &str = "checkpoints";

/// What started a run: enough to continue it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    /// `pretrain`, `finetune`, `train`
    pub command: String,
    /// the full argument list, `--config` already expanded
    pub argv: Vec<String>,
    /// whether it was started with `--force` (replace a complete run of the same name)
    pub force: bool,
    /// strata version that started it
    pub strata_version: String,
}

/// Where a run in progress is staged: `.NAME.partial` beside the target.
pub fn staging_path(target: &Path) -> Result<PathBuf> {
    let name = target
        .file_name()
        .ok_or_else(|| TrainError::config("--out", target.display(), "give a directory name, e.g. runs/ae"))?
        .to_string_lossy()
        .to_string();
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok(parent.join(format!(".{name}.partial")))
}

/// The state of an unfinished run, as `inspect` and `--resume` see it.
#[derive(Debug, Clone)]
pub struct Unfinished {
    /// its staging directory
    pub path: PathBuf,
    /// the command that started it, if its job file is readable
    pub job: Option<JobRecord>,
    /// true while a strata process holds it
    pub running: bool,
    /// every checkpoint, newest first, with what is wrong with the damaged ones
    pub checkpoints: Vec<CheckpointInfo>,
}

impl Unfinished {
    /// Looks for an unfinished run of `target`.
    pub fn find(target: &Path) -> Option<Self> {
        let path = staging_path(target).ok()?;
        if !path.is_dir() {
            return None;
        }
        let job = fs::read(path.join(JOB)).ok().and_then(|b| serde_json::from_slice(&b).ok());
        let running = match File::open(path.join(LOCK)) {
            Ok(f) => matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
            Err(_) => false,
        };
        let checkpoints = CheckpointStore::new(path.join(CHECKPOINTS), 1).list();
        Some(Self { path, job, running, checkpoints })
    }

    /// The newest checkpoint that verifies.
    pub fn resumable_from(&self) -> Option<&CheckpointInfo> {
        self.checkpoints.iter().find(|c| c.problem.is_none())
    }

    /// One line for users: running, resumable from step N, or incomplete and not resumable.
    pub fn describe(&self, target: &Path) -> String {
        let command = self.job.as_ref().map(|j| j.command.as_str()).unwrap_or("pretrain");
        if self.running {
            return format!("{} is being written by a running strata process", self.path.display());
        }
        match self.resumable_from() {
            Some(c) => format!(
                "INCOMPLETE, resumable: last checkpoint at step {} (phase {}); continue with `strata {command} --resume {}`",
                c.step,
                c.phase,
                target.display()
            ),
            None if self.job.is_none() => format!(
                "INCOMPLETE, not resumable: {} has no job file (it was cut off while starting); delete it or start again with --force",
                self.path.display()
            ),
            None => format!(
                "INCOMPLETE, not resumable: it stopped before its first checkpoint{}; start again with --force",
                if self.checkpoints.is_empty() { String::new() } else { " that verifies".into() }
            ),
        }
    }
}

/// A run being written: staged in `.NAME.partial` (log, checkpoints, job file, a lock held
/// while a process writes it) and renamed into place only when complete.
pub struct RunWriter {
    target: PathBuf,
    staging: PathBuf,
    force: bool,
    metrics: File,
    metrics_len: u64,
    lines: Vec<serde_json::Value>,
    finished: bool,
    // held for the writer's lifetime: a second process cannot write the same run
    _lock: File,
    store: CheckpointStore,
    policy: Option<CheckpointPolicy>,
    keep_checkpoints: bool,
    stop: StopFlag,
    resume: Option<Checkpoint>,
    last_checkpoint: Option<usize>,
}

fn lock_staging(staging: &Path) -> Result<File> {
    let p = staging.join(LOCK);
    let f = OpenOptions::new().create(true).truncate(false).write(true).open(&p).map_err(|e| TrainError::io(&p, e))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(TrainError::BadRun {
            path: staging.into(),
            reason: "another strata process is writing this run; wait for it or stop it first".into(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(TrainError::io(&p, e)),
    }
}

impl RunWriter {
    /// Starts a run that will land at `target`; fails if it exists and `force` is false, or if
    /// an interrupted run of the same name could be resumed (`force` discards it).
    pub fn create(target: &Path, force: bool) -> Result<Self> {
        Self::start(target, force, None)
    }

    /// Like [`RunWriter::create`], recording the command so the run can be resumed.
    pub fn create_resumable(target: &Path, force: bool, job: &JobRecord) -> Result<Self> {
        Self::start(target, force, Some(job))
    }

    fn start(target: &Path, force: bool, job: Option<&JobRecord>) -> Result<Self> {
        if target.exists() && !force {
            return Err(TrainError::RunExists { path: target.into() });
        }
        let staging = staging_path(target)?;
        if let Some(unfinished) = Unfinished::find(target) {
            if unfinished.running {
                return Err(TrainError::BadRun { path: target.into(), reason: unfinished.describe(target) });
            }
            if unfinished.resumable_from().is_some() && !force {
                return Err(TrainError::BadRun {
                    path: target.into(),
                    reason: format!("{}; or pass --force to discard it and start again", unfinished.describe(target)),
                });
            }
            fs::remove_dir_all(&staging).map_err(|e| TrainError::io(&staging, e))?;
        }
        if let Some(parent) = staging.parent() {
            fs::create_dir_all(parent).map_err(|e| TrainError::io(parent, e))?;
        }
        fs::create_dir(&staging).map_err(|e| TrainError::io(&staging, e))?;
        let lock = lock_staging(&staging)?;
        if let Some(job) = job {
            let json = serde_json::to_vec_pretty(job)
                .map_err(|e| TrainError::BadRun { path: staging.clone(), reason: e.to_string() })?;
            write_atomic(&staging.join(JOB), &json)?;
        }
        Self::open_staging(target, staging, force, lock, 0)
    }

    fn open_staging(target: &Path, staging: PathBuf, force: bool, lock: File, keep_bytes: u64) -> Result<Self> {
        let metrics_path = staging.join(METRICS);
        let metrics = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&metrics_path)
            .map_err(|e| TrainError::io(&metrics_path, e))?;
        // lines written after the checkpoint (or half a line cut by a kill) are dropped
        metrics.set_len(keep_bytes).map_err(|e| TrainError::io(&metrics_path, e))?;
        let text = fs::read(&metrics_path).map_err(|e| TrainError::io(&metrics_path, e))?;
        let lines = text.split(|&b| b == b'\n').filter_map(|l| serde_json::from_slice(l).ok()).collect();
        let mut metrics = metrics;
        use std::io::Seek;
        metrics.seek(std::io::SeekFrom::End(0)).map_err(|e| TrainError::io(&metrics_path, e))?;
        let store = CheckpointStore::new(staging.join(CHECKPOINTS), 2);
        store.clean_leftovers();
        Ok(Self {
            target: target.into(),
            staging,
            force,
            metrics,
            metrics_len: keep_bytes,
            lines,
            finished: false,
            _lock: lock,
            store,
            policy: None,
            keep_checkpoints: false,
            stop: StopFlag::new(),
            resume: None,
            last_checkpoint: None,
        })
    }

    /// Reopens the interrupted run of `target` at its newest checkpoint that verifies.
    pub fn resume(target: &Path) -> Result<(Self, JobRecord)> {
        let Some(unfinished) = Unfinished::find(target) else {
            let reason = if target.join(MANIFEST).exists() {
                "the run is complete; there is nothing to resume".to_string()
            } else {
                format!("no interrupted run of this name ({} does not exist)", staging_path(target)?.display())
            };
            return Err(TrainError::BadRun { path: target.into(), reason });
        };
        let staging = unfinished.path.clone();
        let lock = lock_staging(&staging)?;
        let job = unfinished.job.clone().ok_or_else(|| TrainError::BadRun {
            path: staging.join(JOB),
            reason: "missing or damaged: the run cannot be resumed; start it again with --force".into(),
        })?;
        let store = CheckpointStore::new(staging.join(CHECKPOINTS), 2);
        let (ck, problems) = store.latest();
        let Some(ck) = ck else {
            let why =
                if problems.is_empty() { "it stopped before its first checkpoint".into() } else { problems.join("; ") };
            return Err(TrainError::BadRun {
                path: target.into(),
                reason: format!("cannot resume: {why}; start it again with --force"),
            });
        };
        let mut writer = Self::open_staging(target, staging, job.force, lock, ck.metrics_len)?;
        writer.last_checkpoint = Some(ck.step);
        writer.resume = Some(ck);
        Ok((writer, job))
    }

    /// Writes checkpoints as `policy` says (None: none), keeping them after completion if
    /// `keep` is set, and stops when `stop` is raised.
    pub fn with_checkpoints(mut self, policy: Option<CheckpointPolicy>, keep: bool, stop: StopFlag) -> Self {
        if let Some(p) = policy {
            self.store = CheckpointStore::new(self.staging.join(CHECKPOINTS), p.keep_last);
        }
        self.policy = policy;
        self.keep_checkpoints = keep;
        self.stop = stop;
        self
    }

    /// Where the run will land.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Where it is staged until complete.
    pub fn staging(&self) -> &Path {
        &self.staging
    }

    /// The step of the newest checkpoint written or resumed from.
    pub fn last_checkpoint(&self) -> Option<usize> {
        self.last_checkpoint
    }

    /// Every line logged so far (including those before a resume).
    pub fn lines(&self) -> &[serde_json::Value] {
        &self.lines
    }

    /// Appends one line to `metrics.jsonl`.
    pub fn log(&mut self, value: &serde_json::Value) -> Result<()> {
        let path = self.staging.join(METRICS);
        let text = format!("{value}\n");
        self.metrics.write_all(text.as_bytes()).map_err(|e| TrainError::io(path, e))?;
        self.metrics_len += text.len() as u64;
        self.lines.push(value.clone());
        Ok(())
    }

    /// Writes an extra file (a plot, a report) into the run.
    pub fn write_file(&self, name: &str, bytes: &[u8]) -> Result<()> {
        write_atomic(&self.staging.join(name), bytes)
    }

    /// Writes weights and manifest, then moves the complete run into place.
    pub fn finish(mut self, mut manifest: Manifest, weights: &[u8]) -> Result<RunDir> {
        manifest.weights =
            WeightsRecord { file: WeightsFile::NAME.into(), sha256: sha256_hex(weights), bytes: weights.len() as u64 };
        write_atomic(&self.staging.join(WeightsFile::NAME), weights)?;
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| TrainError::BadRun { path: self.target.clone(), reason: e.to_string() })?;
        write_atomic(&self.staging.join(MANIFEST), &json)?;
        self.metrics.sync_all().map_err(|e| TrainError::io(self.staging.join(METRICS), e))?;
        if !self.keep_checkpoints {
            let dir = self.staging.join(CHECKPOINTS);
            if dir.exists() {
                fs::remove_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
            }
        }
        let _ = fs::remove_file(self.staging.join(LOCK));
        if self.target.exists() {
            if !self.force {
                return Err(TrainError::RunExists { path: self.target.clone() });
            }
            // move the old run aside first so a failure here never leaves neither run
            let old = self.staging.with_extension("old");
            fs::rename(&self.target, &old).map_err(|e| TrainError::io(&self.target, e))?;
            fs::rename(&self.staging, &self.target).map_err(|e| TrainError::io(&self.target, e))?;
            let _ = fs::remove_dir_all(&old);
        } else {
            fs::rename(&self.staging, &self.target).map_err(|e| TrainError::io(&self.target, e))?;
        }
        self.finished = true;
        Ok(RunDir { path: self.target.clone(), manifest })
    }
}

impl Recorder for RunWriter {
    fn log(&mut self, line: serde_json::Value) -> Result<()> {
        RunWriter::log(self, &line)
    }

    fn policy(&self) -> Option<CheckpointPolicy> {
        self.policy
    }

    fn checkpoint(&mut self, mut ck: Checkpoint) -> Result<()> {
        // the log lines a checkpoint covers must be on disk before the checkpoint is
        self.metrics.sync_data().map_err(|e| TrainError::io(self.staging.join(METRICS), e))?;
        ck.metrics_len = self.metrics_len;
        self.store.write(&ck)?;
        self.last_checkpoint = Some(ck.step);
        Ok(())
    }

    fn take_resume(&mut self) -> Option<Checkpoint> {
        self.resume.take()
    }

    fn resume_phase(&self) -> Option<String> {
        self.resume.as_ref().map(|c| c.phase.clone())
    }

    fn stop_requested(&self) -> bool {
        self.stop.is_raised()
    }
}

impl Drop for RunWriter {
    fn drop(&mut self) {
        // an unfinished run is kept only if it can be resumed
        if !self.finished && self.last_checkpoint.is_none() {
            let _ = fs::remove_dir_all(&self.staging);
        }
    }
}

/// A complete run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// its path
    pub path: PathBuf,
    /// its manifest
    pub manifest: Manifest,
}

impl RunDir {
    /// Opens a run, checking that it is complete and of a known schema.
    pub fn open(path: &Path) -> Result<Self> {
        let bad = |reason: String| TrainError::BadRun { path: path.into(), reason };
        if !path.is_dir() {
            if let Some(unfinished) = Unfinished::find(path) {
                return Err(bad(unfinished.describe(path)));
            }
            return Err(bad("no such run directory (give the --out of an earlier pretrain/finetune)".into()));
        }
        let mpath = path.join(MANIFEST);
        let text = fs::read(&mpath).map_err(|_| {
            bad(format!("{MANIFEST} is missing: the run is incomplete (interrupted?) or not a strata run"))
        })?;
        let value: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| bad(format!("{MANIFEST} is not valid JSON: {e}")))?;
        let version = value.get("schema_version").and_then(|v| v.as_u64());
        if version != Some(u64::from(SCHEMA_VERSION)) {
            let found = version.map_or_else(|| "no schema_version".to_string(), |v| format!("schema_version {v}"));
            return Err(bad(format!(
                "{MANIFEST} has {found}; this strata reads version {SCHEMA_VERSION} (a run from another strata version: use that version, or re-run the command that made it)"
            )));
        }
        let manifest: Manifest =
            serde_json::from_value(value).map_err(|e| bad(format!("{MANIFEST} field error: {e}")))?;
        let (stats, channels) = (manifest.normalization.channels(), manifest.input.channels);
        if stats != channels {
            return Err(bad(format!(
                "{MANIFEST}: `normalization` has statistics for {stats} channel(s) but `input` has {channels}; the manifest was altered or damaged"
            )));
        }
        Ok(Self { path: path.into(), manifest })
    }

    /// Path of the weights file.
    pub fn weights_path(&self) -> PathBuf {
        self.path.join(&self.manifest.weights.file)
    }

    /// The weights bytes, verified against the manifest's checksum.
    pub fn weights_bytes(&self) -> Result<Vec<u8>> {
        let p = self.weights_path();
        let bytes = fs::read(&p).map_err(|e| TrainError::io(&p, e))?;
        let sum = sha256_hex(&bytes);
        if sum != self.manifest.weights.sha256 {
            return Err(TrainError::BadRun {
                path: p,
                reason: format!(
                    "checksum mismatch (file {sum}, manifest {}): the weights are truncated or were altered; re-run the command that made this run",
                    self.manifest.weights.sha256
                ),
            });
        }
        Ok(bytes)
    }
}
