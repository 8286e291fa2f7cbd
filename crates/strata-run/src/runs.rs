//! Every run under a folder at a glance: what `strata runs` prints and what reports and
//! research scripts aggregate. Reading never fails: a damaged run or a folder that is not a
//! run is an entry that says so.

use serde::Serialize;
use std::path::{Path, PathBuf};
use strata_train::run_dir::{self, RunDir, Unfinished};

/// Where a run stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "reason")]
pub enum RunStatus {
    /// finished: its manifest is readable
    Complete,
    /// a strata process is writing it now
    Running,
    /// interrupted with a usable checkpoint: `--resume` continues it
    Resumable,
    /// interrupted before any usable checkpoint: run it again
    Incomplete,
    /// a manifest that cannot be read, and why
    Broken(String),
    /// a folder with files but no run anywhere in it
    Foreign,
}

impl RunStatus {
    /// The one word the table shows.
    pub fn word(&self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Running => "running",
            Self::Resumable => "resumable",
            Self::Incomplete => "incomplete",
            Self::Broken(_) => "broken",
            Self::Foreign => "foreign",
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
pub struct RunEntry {
    /// the run's directory, relative to the folder listed (`.` for the folder itself)
    pub name: String,
    /// where it stands
    #[serde(flatten)]
    pub status: RunStatus,
    /// pretrain, finetune, scratch, train or import (complete runs)
    pub kind: Option<String>,
    /// the pretraining method, where there is one
    pub method: Option<String>,
    /// the run's key figure: test accuracy of a classifier, final loss of a pretraining
    pub metric: Option<Metric>,
    /// when it was created (complete runs) or last written (the others), seconds since 1970
    pub time_unix: Option<u64>,
}

/// A named figure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metric {
    /// `test_accuracy` or `final_loss`
    pub name: String,
    /// its value (accuracy as a fraction)
    pub value: f64,
}

/// Folders below the listed one that are walked at most (runs are rarely deeper).
const MAX_DEPTH: usize = 8;

/// Every run under `dir` (or `dir` itself when it is a run), in path order.
pub fn list(dir: &Path) -> Vec<RunEntry> {
    let mut out = Vec::new();
    visit(dir, dir, 0, &mut out);
    // staged runs are found under their hidden `.NAME.partial`: order by the names shown
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn relative(root: &Path, path: &Path) -> String {
    match path.strip_prefix(root) {
        Ok(p) if p.as_os_str().is_empty() => ".".into(),
        Ok(p) => p.to_string_lossy().into_owned(),
        Err(_) => path.to_string_lossy().into_owned(),
    }
}

fn modified_unix(path: &Path) -> Option<u64> {
    let t = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
    t.duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// The staged target of a `.NAME.partial` folder.
fn staged_target(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    let target = name.strip_prefix('.')?.strip_suffix(".partial")?;
    Some(path.with_file_name(target))
}

fn complete(root: &Path, path: &Path) -> RunEntry {
    let name = relative(root, path);
    match RunDir::open(path) {
        Ok(run) => {
            let m = &run.manifest;
            let metric = ["test_accuracy", "final_loss"].iter().find_map(|k| {
                m.metrics.get(*k).and_then(|v| v.as_f64()).map(|value| Metric { name: k.to_string(), value })
            });
            let kind = serde_json::to_value(m.kind).ok().and_then(|v| v.as_str().map(str::to_string));
            RunEntry {
                name,
                status: RunStatus::Complete,
                kind,
                method: m.method.clone(),
                metric,
                time_unix: Some(m.created_unix),
            }
        }
        Err(e) => RunEntry {
            name,
            status: RunStatus::Broken(e.to_string()),
            kind: None,
            method: None,
            metric: None,
            time_unix: modified_unix(path),
        },
    }
}

fn unfinished(root: &Path, staging: &Path, target: &Path) -> Option<RunEntry> {
    let u = Unfinished::find(target)?;
    let status = if u.running {
        RunStatus::Running
    } else if u.resumable_from().is_some() {
        RunStatus::Resumable
    } else {
        RunStatus::Incomplete
    };
    let method = u
        .job
        .as_ref()
        .and_then(|j| j.argv.iter().position(|a| a == "--method").and_then(|i| j.argv.get(i + 1)).cloned());
    let kind = u.job.as_ref().map(|j| j.command.clone());
    let mut name = relative(root, target);
    if target.join(run_dir::MANIFEST).exists() {
        name.push_str(" (replacement)");
    }
    Some(RunEntry { name, status, kind, method, metric: None, time_unix: modified_unix(staging) })
}

/// Adds the runs at or below `path`; returns whether it found any.
fn visit(root: &Path, path: &Path, depth: usize, out: &mut Vec<RunEntry>) -> bool {
    if path.join(run_dir::MANIFEST).is_file() {
        out.push(complete(root, path));
        return true;
    }
    let Ok(read) = std::fs::read_dir(path) else {
        out.push(RunEntry {
            name: relative(root, path),
            status: RunStatus::Broken("cannot be read".into()),
            kind: None,
            method: None,
            metric: None,
            time_unix: None,
        });
        return true;
    };
    let mut entries: Vec<PathBuf> = read.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    let (mut found, mut files) = (false, false);
    for e in &entries {
        if !e.is_dir() {
            files = true;
            continue;
        }
        if let Some(target) = staged_target(e) {
            if let Some(entry) = unfinished(root, e, &target) {
                out.push(entry);
                found = true;
            }
            continue;
        }
        let hidden = e.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
        if !hidden && depth < MAX_DEPTH {
            found |= visit(root, e, depth + 1, out);
        }
    }
    if !found && files && depth > 0 {
        out.push(RunEntry {
            name: relative(root, path),
            status: RunStatus::Foreign,
            kind: None,
            method: None,
            metric: None,
            time_unix: modified_unix(path),
        });
        return true;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_folders_name_their_target() {
        assert_eq!(staged_target(Path::new("runs/.ae.partial")), Some(PathBuf::from("runs/ae")));
        assert_eq!(staged_target(Path::new("runs/ae")), None);
        assert_eq!(staged_target(Path::new("runs/.hidden")), None);
    }

    #[test]
    fn a_folder_without_runs_is_foreign_and_an_unreadable_manifest_broken() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("notes")).unwrap();
        std::fs::write(d.path().join("notes/a.txt"), "x").unwrap();
        std::fs::create_dir_all(d.path().join("bad")).unwrap();
        std::fs::write(d.path().join("bad/manifest.json"), "{not json").unwrap();
        std::fs::create_dir_all(d.path().join("empty")).unwrap();
        let l = list(d.path());
        let got: Vec<(&str, &str)> = l.iter().map(|e| (e.name.as_str(), e.status.word())).collect();
        assert_eq!(got, [("bad", "broken"), ("notes", "foreign")]);
        assert!(matches!(&l[0].status, RunStatus::Broken(r) if r.contains("not valid JSON")), "{:?}", l[0]);
    }
}
