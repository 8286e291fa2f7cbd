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
