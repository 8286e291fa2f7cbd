//! Run directories: written in a hidden staging directory and renamed into place only
//! when complete, so a run directory is never half-written and an old one is never lost
//! unless `--force` was given.

use crate::error::{Result, TrainError};
use crate::manifest::{Manifest, SCHEMA_VERSION, WeightsRecord};
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use strata_nn::WeightsFile;

/// File names inside a run directory.
pub const MANIFEST: &str = "manifest.json";
/// One JSON object per logged epoch or interval.
pub const METRICS: &str = "metrics.jsonl";

/// Hex sha256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `bytes` to `path` atomically: temp file beside it, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let res = (|| -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(TrainError::io(path, e));
    }
    Ok(())
}

/// A run being written.
pub struct RunWriter {
    target: PathBuf,
    staging: PathBuf,
    force: bool,
    metrics: File,
    finished: bool,
}

impl RunWriter {
    /// Starts a run that will land at `target`; fails if it exists and `force` is false.
    pub fn create(target: &Path, force: bool) -> Result<Self> {
        if target.exists() && !force {
            return Err(TrainError::RunExists { path: target.into() });
        }
        let name = target
            .file_name()
            .ok_or_else(|| TrainError::config("--out", target.display(), "give a directory name, e.g. runs/ae"))?
            .to_string_lossy()
            .to_string();
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent).map_err(|e| TrainError::io(&parent, e))?;
        let staging = parent.join(format!(".{name}.partial-{}", std::process::id()));
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(|e| TrainError::io(&staging, e))?;
        }
        fs::create_dir(&staging).map_err(|e| TrainError::io(&staging, e))?;
        let metrics_path = staging.join(METRICS);
        let metrics = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&metrics_path)
            .map_err(|e| TrainError::io(&metrics_path, e))?;
        Ok(Self { target: target.into(), staging, force, metrics, finished: false })
    }

    /// Where the run will land.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Appends one line to `metrics.jsonl`.
    pub fn log(&mut self, value: &serde_json::Value) -> Result<()> {
        let path = self.staging.join(METRICS);
        writeln!(self.metrics, "{value}").map_err(|e| TrainError::io(path, e))
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

impl Drop for RunWriter {
    fn drop(&mut self) {
        if !self.finished {
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
            return Err(bad(format!(
                "{MANIFEST} has schema_version {version:?}; this strata reads version {SCHEMA_VERSION}"
            )));
        }
        let manifest: Manifest =
            serde_json::from_value(value).map_err(|e| bad(format!("{MANIFEST} field error: {e}")))?;
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
