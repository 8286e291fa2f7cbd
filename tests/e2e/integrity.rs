//! Integrity of run directories: a manifest from another schema version, weights whose shapes
//! disagree with the declared architecture, a truncated weights file, and a reader that closes
//! the pipe early — each a clear error (or a quiet exit), never a panic or a silently
//! re-initialised layer.

use crate::common::{fails, ok, tiny_mnist};
use std::path::Path;

fn pretrained(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let d = tiny_mnist(&dir.join("d"), 64, 10);
    let pre = dir.join("pre");
    ok(&[
        "pretrain",
        "--method",
        "ae",
        "--data",
        d.to_str().unwrap(),
        "--epochs",
        "1",
        "--out",
        pre.to_str().unwrap(),
        "-q",
    ]);
    (d, pre)
}

fn edit_manifest(run: &Path, edit: impl Fn(&mut serde_json::Value)) {
    let mut m = crate::common::manifest(run);
    edit(&mut m);
    std::fs::write(run.join("manifest.json"), serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}

fn finetune_from(d: &Path, pre: &Path, out: &Path) -> String {
    fails(&[
        "finetune",
        "--from",
        pre.to_str().unwrap(),
        "--train",
        d.to_str().unwrap(),
        "--frozen-steps",
        "2",
        "--unfreeze-steps",
        "0",
        "--out",
        out.to_str().unwrap(),
    ])
}

#[test]
fn a_manifest_of_another_schema_version_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, pre) = pretrained(tmp.path());
    edit_manifest(&pre, |m| m["schema_version"] = serde_json::json!(99));
    let e = finetune_from(&d, &pre, &tmp.path().join("ft"));
    assert!(e.contains("schema_version 99") && e.contains("reads version 1"), "{e}");
    assert!(!e.contains("panicked"), "{e}");
    let e = fails(&["inspect", pre.to_str().unwrap()]);
    assert!(e.contains("schema_version 99"), "{e}");
}

#[test]
fn weights_that_disagree_with_the_declared_architecture_name_the_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, pre) = pretrained(tmp.path());
    edit_manifest(&pre, |m| m["arch"] = serde_json::json!("conv16-pool,conv64-pool,dense128"));
    let out = tmp.path().join("ft");
    let e = finetune_from(&d, &pre, &out);
    assert!(
        e.contains("backbone.0.conv.weight: the architecture needs [16, 1, 3, 3], the file has [32, 1, 3, 3]"),
        "{e}"
    );
    assert!(!out.exists() && crate::common::partials(tmp.path()).is_empty());
}

#[test]
fn a_truncated_weights_file_is_refused_before_use() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, pre) = pretrained(tmp.path());
    let w = pre.join("model.safetensors");
    let b = std::fs::read(&w).unwrap();
    std::fs::write(&w, &b[..b.len() - 100]).unwrap();
    let e = finetune_from(&d, &pre, &tmp.path().join("ft"));
    assert!(e.contains("model.safetensors") && e.contains("checksum mismatch") && e.contains("truncated"), "{e}");
}

#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, pre) = pretrained(tmp.path());
    let mut child = crate::common::strata()
        .args(["inspect", pre.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // the reader goes away before strata has written anything
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
