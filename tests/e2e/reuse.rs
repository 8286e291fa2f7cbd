//! End to end: the reuse strategies of `finetune`, `search` over them, `probe`, and what
//! `inspect` says about a fine-tuned run's lineage.

use crate::common::*;
use std::path::{Path, PathBuf};

const ARCH: &str = "conv4-pool,conv8-pool,dense16";

/// A tiny dataset and a tiny autoencoder pretrained on it.
fn pretrained(tmp: &Path) -> (String, PathBuf) {
    let data = tiny_mnist(&tmp.join("mnist"), 200, 60);
    let pre = tmp.join("pre");
    let d = data.to_str().unwrap().to_string();
    ok(&[
        "pretrain",
        "--method",
        "ae",
        "--data",
        &d,
        "--arch",
        ARCH,
        "--epochs",
        "1",
        "--out",
        pre.to_str().unwrap(),
        "-q",
    ]);
    (d, pre)
}

#[test]
fn drop_replace_and_add_reshape_the_backbone() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, pre) = pretrained(tmp.path());
    let ft = tmp.path().join("ft");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "finetune",
            "--from",
            pre.to_str().unwrap(),
            "--train",
            &d,
            "--labels-per-class",
            "3",
            "--frozen-steps",
            "3",
            "--unfreeze-steps",
            "3",
            "-q",
            "--out",
            ft.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |extra: &[&str]| ok(&args(extra).iter().map(String::as_str).collect::<Vec<_>>());
    run(&["--drop-top", "1", "--replace-top", "1", "--add-hidden", "dense12", "--unfreeze-top", "1"]);
    let m = manifest(&ft);
    assert_eq!(m["arch"], "conv4-pool,conv8-pool,dense12");
    let origins: Vec<&str> = m["blocks"].as_array().unwrap().iter().map(|b| b["origin"].as_str().unwrap()).collect();
    assert_eq!(origins, ["parent", "replaced", "added"]);
    assert_eq!(m["blocks"][1]["parent_index"], 1);
    // only block 0 keeps the parent's weights, so only it is ever frozen; it is the top reused
    // block and is unfrozen in phase two
    assert_eq!(m["phases"][0]["trainable_blocks"], serde_json::json!([1, 2]));
    assert_eq!(m["phases"][1]["trainable_blocks"], serde_json::json!([0, 1, 2]));
    assert_eq!(m["phases"][1]["block_lr"], serde_json::json!([1e-4, 1e-3, 1e-3]));

    let text = ok(&["inspect", ft.to_str().unwrap()]);
    assert!(text.contains(&format!("block 0 of {}", pre.display())), "{text}");
    assert!(text.contains("re-initialised (shape of parent block 1)") && text.contains("added (fresh)"), "{text}");
    assert!(text.contains("1.0e-4"), "{text}");
    // parameter counts: conv 1→4 (3x3), conv 4→8, dense 8*7*7→12, head 12→10
    let j: serde_json::Value = serde_json::from_str(&ok(&["inspect", ft.to_str().unwrap(), "--json"])).unwrap();
    let total: u64 = j["layers"].as_array().unwrap().iter().map(|l| l["numel"].as_u64().unwrap()).sum();
    assert_eq!(total, (36 + 4) + (288 + 8) + (392 * 12 + 12) + (12 * 10 + 10));

    // too deep: a clear error, and the run already there is untouched
    let before = std::fs::read(ft.join("model.safetensors")).unwrap();
    for (flags, needle) in [
        (vec!["--drop-top", "3", "--force"], "drop at most 2"),
        (vec!["--replace-top", "4", "--force"], "--replace-top"),
        (vec!["--add-hidden", "conv3", "--force"], "conv block after a dense block"),
        (vec!["--unfreeze-top", "3", "--unfreeze-every", "4", "--force"], "--unfreeze-every"),
    ] {
        let out = run_strata(&args(&flags));
        assert!(!out.status.success(), "{flags:?} should fail");
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(e.contains(needle), "{flags:?}: {e}");
    }
    assert_eq!(std::fs::read(ft.join("model.safetensors")).unwrap(), before);
    assert!(partials(tmp.path()).is_empty());
}

fn run_strata(args: &[String]) -> std::process::Output {
    strata().args(args).output().unwrap()
}

#[test]
fn search_covers_every_strategy_and_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, pre) = pretrained(tmp.path());
    let search = |out: &Path| {
        ok(&[
            "search",
            "--from",
            pre.to_str().unwrap(),
            "--train",
            &d,
            "--test",
            &format!("{d}:test"),
            "--labels-per-class",
            "5",
            "--frozen-steps",
            "3",
            "--unfreeze-steps",
            "3",
            "--add-hidden",
            "dense8",
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let text = search(&a);
    search(&b);
    let rows: serde_json::Value = serde_json::from_slice(&std::fs::read(a.join("search.json")).unwrap()).unwrap();
    let trials: Vec<&str> = rows.as_array().unwrap().iter().map(|r| r["trial"].as_str().unwrap()).collect();
    assert_eq!(trials.len(), 12, "{trials:?}");
    assert_eq!(trials[0], "--from scratch");
    for needle in [
        "--unfreeze-top 0",
        "--unfreeze-top 2",
        "--drop-top 2",
        "--replace-top 1",
        "--add-hidden dense8",
        "--head-init prototype",
    ] {
        assert!(trials.iter().any(|t| t.contains(needle)), "no `{needle}` row in {trials:?}");
    }
    for r in rows.as_array().unwrap() {
        assert_eq!(r["status"], "done", "{r}");
        let v = r["val_accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v) && r["test_accuracy"].as_f64().is_some(), "{r}");
    }
    assert!(text.contains("(winner)"), "{text}");
    // same seed: same table (seconds aside) and the same winner, byte for byte
    let scores = |dir: &Path| -> Vec<(String, String, String)> {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("search.json")).unwrap()).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| (r["trial"].to_string(), r["val_accuracy"].to_string(), r["test_accuracy"].to_string()))
            .collect()
    };
    assert_eq!(scores(&a), scores(&b));
    assert_eq!(
        std::fs::read(a.join("model.safetensors")).unwrap(),
        std::fs::read(b.join("model.safetensors")).unwrap()
    );
    // the winner is a normal run: it evaluates, and records the split it trained on
    let m = manifest(&a);
    assert_eq!(m["data"]["label_indices"].as_array().unwrap().len(), 40, "50 labels minus 10 for validation");
    assert!(m["config"]["search"]["winner"].is_string());
    ok(&["evaluate", "--model", a.to_str().unwrap(), "--data", &format!("{d}:test")]);
    assert!(std::fs::read_to_string(a.join("search.md")).unwrap().contains("| `--from scratch`"));
}

#[test]
fn search_stops_at_its_budget_but_always_runs_the_baseline() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, pre) = pretrained(tmp.path());
    let out = tmp.path().join("s");
    ok(&[
        "search",
        "--from",
        pre.to_str().unwrap(),
        "--train",
        &d,
        "--labels-per-class",
        "4",
        "--frozen-steps",
        "2",
        "--unfreeze-steps",
        "2",
        "--budget-minutes",
        "0.00001",
        "--out",
        out.to_str().unwrap(),
    ]);
    let rows: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("search.json")).unwrap()).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows[0]["status"], "done");
    assert!(rows[1..].iter().all(|r| r["status"] == "skipped (budget)"), "{rows:?}");
    assert_eq!(manifest(&out)["kind"], "scratch");
}

#[test]
fn probe_scores_frozen_features_both_ways() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, pre) = pretrained(tmp.path());
    let out =
        ok(&["probe", pre.to_str().unwrap(), "--train", &d, "--test", &format!("{d}:test"), "--steps", "50", "--json"]);
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["method"], "linear");
    assert_eq!(lines[1]["method"], "knn");
    assert_eq!(lines[2]["method"], "ncm");
    // every label is used, so there is no all-labels ceiling to add; k came from leave-one-out
    assert!(lines[1]["k"].as_u64().is_some_and(|k| k >= 1), "{}", lines[1]);
    for l in &lines {
        let acc = l["accuracy"].as_f64().unwrap();
        // ten classes: well-trained or not, frozen features carry more than chance
        assert!(acc > 0.2 && acc <= 1.0, "{l}");
        assert_eq!(l["feature_dim"], 16);
        assert_eq!(l["test_images"], 60);
    }
    let text = ok(&[
        "probe",
        pre.to_str().unwrap(),
        "--train",
        &d,
        "--test",
        &format!("{d}:test"),
        "--method",
        "knn",
        "--reuse",
        "1",
    ]);
    assert!(text.contains("kNN") && text.contains("784 features"), "{text}");
    let e = fails(&["probe", pre.to_str().unwrap(), "--train", &d, "--test", &format!("{d}:test"), "--k", "0"]);
    assert!(e.contains("--k"), "{e}");
    let e = fails(&["probe", pre.to_str().unwrap(), "--train", &d, "--test", &format!("{d}:test"), "--method", "svm"]);
    assert!(e.contains("linear, knn, ncm, cluster or readout"), "{e}");
    // from a label subset, the kNN on every label is added as the representation's ceiling
    let out = ok(&[
        "probe",
        pre.to_str().unwrap(),
        "--train",
        &d,
        "--test",
        &format!("{d}:test"),
        "--labels-per-class",
        "3",
        "--method",
        "ncm,knn",
        "--json",
    ]);
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!((lines[0]["train_images"].as_u64(), lines[1]["k"].as_u64()), (Some(30), Some(1)), "{out}");
    assert!(lines[2]["probe"].as_str().unwrap().starts_with("ceiling") && lines[2]["train_images"].as_u64() > Some(30));
}

#[test]
fn an_untrained_prototype_head_is_the_nearest_class_mean_probe() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, pre) = pretrained(tmp.path());
    let test = format!("{d}:test");
    let ft = tmp.path().join("ncm");
    let common = ["--train", &d, "--test", &test, "--labels-per-class", "4", "--seed", "2"];
    let mut args = vec!["finetune", "--from", pre.to_str().unwrap()];
    args.extend(common);
    args.extend(["--head-init", "prototype", "--frozen-steps", "0", "--unfreeze-steps", "0"]);
    args.extend(["--out", ft.to_str().unwrap(), "-q"]);
    ok(&args);
    let eval: serde_json::Value = serde_json::from_slice(&std::fs::read(ft.join("evaluation.json")).unwrap()).unwrap();
    let mut args = vec!["probe", pre.to_str().unwrap()];
    args.extend(common);
    args.extend(["--method", "ncm", "--no-ceiling", "--json"]);
    let probe: serde_json::Value = serde_json::from_str(ok(&args).trim()).unwrap();
    // the imprinted output layer ranks classes as the cosine to each prototype does
    assert_eq!(eval["accuracy"], probe["accuracy"], "finetune {eval} vs probe {probe}");
    assert!(manifest(&ft)["phases"].as_array().unwrap().is_empty());
    // without the prototype head, zero steps is refused with the flag named
    let e = fails(&[
        "finetune",
        "--from",
        pre.to_str().unwrap(),
        "--train",
        &d,
        "--frozen-steps",
        "0",
        "--unfreeze-steps",
        "0",
        "--out",
        tmp.path().join("none").to_str().unwrap(),
    ]);
    assert!(e.contains("--steps") && e.contains("--head-init prototype"), "{e}");
}
