//! Fixtures shared by the end-to-end tests: tiny IDX datasets cut from the bundled MNIST.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The strata binary under test.
pub fn strata() -> Command {
    Command::new(env!("CARGO_BIN_EXE_strata"))
}

/// Runs strata with `args`, returns the output.
pub fn run(args: &[&str]) -> Output {
    strata().args(args).output().expect("spawn strata")
}

/// Asserts success and returns stdout.
pub fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "strata {args:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts failure and returns stderr.
pub fn fails(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        !out.status.success(),
        "strata {args:?} should have failed; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Writes a tiny MNIST folder: the first `train` / `test` images of mnist5k as raw IDX.
pub fn tiny_mnist(dir: &Path, train: usize, test: usize) -> PathBuf {
    let src = repo().join("data/mnist5k");
    std::fs::create_dir_all(dir).unwrap();
    for (prefix, n) in [("train", train), ("t10k", test)] {
        let (px, shape, _) = strata_data::read_idx_images(src.join(format!("{prefix}-images-idx3-ubyte.gz"))).unwrap();
        let labels = strata_data::read_idx_labels(src.join(format!("{prefix}-labels-idx1-ubyte.gz"))).unwrap();
        let per = shape.height * shape.width;
        strata_data::write_idx_images(
            dir.join(format!("{prefix}-images-idx3-ubyte")),
            n,
            shape.height,
            shape.width,
            &px[..n * per],
        )
        .unwrap();
        strata_data::write_idx_labels(dir.join(format!("{prefix}-labels-idx1-ubyte")), &labels[..n]).unwrap();
    }
    dir.to_path_buf()
}

/// Entries of a directory whose names contain `.partial` (leftover staging directories).
pub fn partials(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".partial"))
                .collect()
        })
        .unwrap_or_default()
}

/// Reads a run's manifest as JSON.
pub fn manifest(run: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run.join("manifest.json")).unwrap()).unwrap()
}

/// Runs strata with `args` behind `wrapper`, a command that runs another (e.g.
/// `["prlimit", "--as=4000000000", "--"]`); an empty wrapper runs strata directly.
pub fn run_wrapped(wrapper: &[&str], args: &[&str]) -> Output {
    let bin = env!("CARGO_BIN_EXE_strata");
    let mut cmd = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.args(args).output().expect("spawn strata")
}

/// Asserts that strata refused its input the way a user error should be refused: exit
/// status 1 (an error) or 2 (a command-line error), not 101 (a panic) nor a signal (an
/// abort, e.g. a failed allocation), and no "panicked" on stderr. Returns stderr.
pub fn assert_clean_failure(out: &Output, args: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        matches!(out.status.code(), Some(1) | Some(2)),
        "strata {args:?} should have failed with status 1 or 2, got {:?}:\nstdout: {}\nstderr: {stderr}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!stderr.contains("panicked"), "strata {args:?} panicked:\n{stderr}");
    stderr
}

/// Every file under `dir` (recursively) with its bytes, keyed by path relative to `dir`:
/// compare two snapshots to show that a run directory was not touched.
pub fn snapshot(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut std::collections::BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(path.strip_prefix(root).unwrap().to_path_buf(), std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// True when the tests run as root, who ignores file permissions.
pub fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let probe = dir.path().join("probe");
    std::fs::write(&probe, b"").unwrap();
    std::fs::metadata(&probe).unwrap().uid() == 0
}
