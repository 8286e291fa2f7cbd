//! End to end for every pretraining method: it trains on tiny data from the CLI, leaves its
//! pictures in the run directory, and its backbone fine-tunes.

use crate::common::*;

#[test]
fn every_method_pretrains_leaves_its_pictures_and_fine_tunes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_mnist(&tmp.path().join("mnist"), 120, 30);
    let d = data.to_str().unwrap();
    for (method, pictures) in [
        ("ae", vec!["reconstructions.png"]),
        ("dae", vec!["reconstructions.png"]),
        ("vae", vec!["reconstructions.png"]),
        ("stacked", vec!["reconstructions.png"]),
        ("gan", vec!["samples-epoch-1.png", "samples-epoch-2.png"]),
        ("rotation", vec![]),
        ("siamese", vec![]),
        ("cluster", vec![]),
        ("contrastive", vec![]),
    ] {
        let pre = tmp.path().join(method);
        ok(&[
            "pretrain",
            "--data",
            d,
            "--method",
            method,
            "--arch",
            "conv4-pool,dense16",
            "--epochs",
            "2",
            "--batch",
            "16",
            "--out",
            pre.to_str().unwrap(),
            "-q",
        ]);
        for f in pictures.iter().chain(&["loss.png"]) {
            let bytes = std::fs::read(pre.join(f)).unwrap_or_else(|_| panic!("{method}: {f} missing"));
            assert!(bytes.starts_with(b"\x89PNG"), "{method}: {f} is not a PNG");
        }
        assert_eq!(manifest(&pre)["method"], method);
        let ft = tmp.path().join(format!("{method}-ft"));
        ok(&[
            "finetune",
            "--from",
            pre.to_str().unwrap(),
            "--train",
            d,
            "--frozen-steps",
            "2",
            "--unfreeze-steps",
            "2",
            "--out",
            ft.to_str().unwrap(),
            "-q",
        ]);
        assert_eq!(manifest(&ft)["parent"]["reused_blocks"], 2, "{method}");
    }
}

#[test]
fn dae_takes_gaussian_noise_and_siamese_takes_identity_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_mnist(&tmp.path().join("mnist"), 100, 10);
    let d = data.to_str().unwrap();
    let base = ["pretrain", "--data", d, "--arch", "conv4-pool,dense8", "--epochs", "1", "-q"];
    let out = tmp.path().join("g");
    ok(&[
        &base[..],
        &["--method", "dae", "--noise-kind", "gaussian", "--noise", "0.2", "--out", out.to_str().unwrap()],
    ]
    .concat());
    assert_eq!(manifest(&out)["config"]["train"]["noise_kind"], "gaussian");
    let out = tmp.path().join("s");
    ok(&[&base[..], &["--method", "siamese", "--pairs-by-label", "--out", out.to_str().unwrap()]].concat());
    assert_eq!(manifest(&out)["config"]["train"]["pairs_by_label"], true);
    let e = fails(&[&base[..], &["--method", "dae", "--noise-kind", "salt", "--out", out.to_str().unwrap()]].concat());
    assert!(e.contains("mask or gaussian"), "{e}");
}

#[test]
fn a_cluster_run_reports_its_clusters_and_its_head_probes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_mnist(&tmp.path().join("mnist"), 120, 30);
    let d = data.to_str().unwrap();
    let pre = tmp.path().join("cluster");
    let p = pre.to_str().unwrap();
    let base = ["pretrain", "--data", d, "--arch", "conv4-pool,dense16", "--epochs", "2", "--batch", "16", "-q"];
    ok(&[&base[..], &["--method", "cluster", "--clusters", "4", "--sub-heads", "3", "--out", p]].concat());
    let m = manifest(&pre);
    let sizes: Vec<u64> =
        m["metrics"]["cluster_sizes"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(sizes.len(), 4, "{}", m["metrics"]);
    assert_eq!(sizes.iter().sum::<u64>(), 120, "every counted image falls into one cluster");
    assert!(m["metrics"]["chosen_head"].as_u64().unwrap() < 3);
    assert_eq!(m["config"]["train"]["clusters"], 4);
    // each epoch logs the mean rate it trained at: under warm-up + cosine, below --lr and falling
    let rates: Vec<f64> = std::fs::read_to_string(pre.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["lr"].as_f64().unwrap())
        .collect();
    let lr = m["config"]["train"]["lr"].as_f64().unwrap();
    assert!(rates.len() == 2 && rates[1] < rates[0] && rates[0] < lr, "{rates:?} against --lr {lr}");
    // the collapse verdict is recorded either way: null, or the reason
    assert!(m["metrics"]["collapse"].is_null() || m["metrics"]["collapse"].is_string());
    let test = format!("{d}:test");
    let out = ok(&["probe", p, "--train", d, "--test", &test, "--method", "cluster,readout,ncm", "--json"]);
    let lines: Vec<serde_json::Value> = out.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert_eq!(lines[0]["method"], "cluster", "{out}");
    assert_eq!(lines[1]["method"], "readout", "{out}");
    // the readout reads every head: 3 main and 3 over-clustering sub-heads
    assert!(lines[1]["probe"].as_str().unwrap().contains("6 heads"), "{out}");
    for line in &lines[..2] {
        let acc = line["accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc), "{acc}");
    }
    // the pooled reading has no cluster head to feed: refused, naming the flag
    let e = fails(&["probe", p, "--train", d, "--test", &test, "--method", "readout", "--pooled"]);
    assert!(e.contains("--pooled") && e.contains("--method cluster or readout"), "{e}");
    let out = ok(&["probe", p, "--train", d, "--test", &test, "--method", "ncm", "--pooled", "--json"]);
    let line: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!((line["pooled"].as_bool(), line["feature_dim"].as_u64()), (Some(true), Some(4 * 16)), "{out}");
    // a run without cluster heads is refused, naming what the probe needs
    let ae = tmp.path().join("ae");
    ok(&[&base[..], &["--method", "ae", "--out", ae.to_str().unwrap()]].concat());
    let e = fails(&["probe", ae.to_str().unwrap(), "--train", d, "--test", &test, "--method", "cluster"]);
    assert!(e.contains("cluster_heads") && e.contains("--method cluster"), "{e}");
    let e = fails(&["probe", ae.to_str().unwrap(), "--train", d, "--test", &test, "--method", "readout"]);
    assert!(e.contains("cluster_heads") && e.contains("--method cluster"), "{e}");
    let e = fails(&[&base[..], &["--method", "cluster", "--sub-heads", "9", "--out", &format!("{p}2")]].concat());
    assert!(e.contains("--sub-heads"), "{e}");
    // stage two can start from the clusters: with no step the classifier is the matched head
    let ft = tmp.path().join("ft");
    let f = ft.to_str().unwrap();
    let tune = ["finetune", "--train", d, "--test", &test, "--labels-per-class", "5", "--out", f, "--force", "-q"];
    let zero = ["--head-init", "clusters", "--frozen-steps", "0", "--unfreeze-steps", "0"];
    let e = fails(&[&tune[..], &zero, &["--from", p]].concat());
    assert!(e.contains("--clusters 10"), "4 clusters cannot name 10 classes: {e}");
    let e = fails(&[&tune[..], &zero, &["--from", ae.to_str().unwrap()]].concat());
    assert!(e.contains("cluster_heads"), "{e}");
    let pre10 = tmp.path().join("cluster10");
    ok(&[&base[..], &["--method", "cluster", "--sub-heads", "2", "--out", pre10.to_str().unwrap()]].concat());
    ok(&[&tune[..], &zero, &["--from", pre10.to_str().unwrap()]].concat());
    let m = manifest(&ft);
    assert_eq!(m["config"]["finetune"]["head_init"], "clusters", "{}", m["config"]);
    assert!(m["metrics"]["test_accuracy"].as_f64().is_some_and(|a| (0.0..=1.0).contains(&a)), "{}", m["metrics"]);
    let pseudo = ["--cluster-labels", "0.5", "--frozen-steps", "2", "--unfreeze-steps", "2"];
    ok(&[&tune[..], &pseudo, &["--from", pre10.to_str().unwrap()]].concat());
    let m = manifest(&ft);
    assert_eq!(m["config"]["finetune"]["cluster_labels"], 0.5);
    let joined = m["metrics"]["cluster_labelled_images"].as_u64().unwrap();
    assert!(joined <= 120 - 50, "only unlabeled images join: {joined}");
    let e = fails(&[&tune[..], &pseudo, &["--from", ae.to_str().unwrap()]].concat());
    assert!(e.contains("cluster_heads"), "{e}");
    // the readout names clusters many-to-one: 4 clusters can label images of 10 classes; a kNN
    // vote may veto its labels, and the labeled images may be repeated to half the rows
    let companions = ["--cluster-labels-agree", "--labeled-share", "0.5"];
    ok(&[&tune[..], &pseudo, &companions, &["--from", p]].concat());
    let m = manifest(&ft);
    assert_eq!(m["config"]["finetune"]["cluster_labels"], 0.5);
    assert_eq!(m["config"]["finetune"]["cluster_labels_agree"], true);
    assert_eq!(m["config"]["finetune"]["labeled_share"], 0.5);
    let e = fails(&[&tune[..], &["--labeled-share", "0.5", "--from", p]].concat());
    assert!(e.contains("--labeled-share") && e.contains("--cluster-labels"), "{e}");
    let e =
        fails(&[&tune[..], &["--head-init", "clusters", "--head", "8", "--from", pre10.to_str().unwrap()]].concat());
    assert!(e.contains("--head") && e.contains("--head-init clusters"), "{e}");
}

#[test]
fn contrastive_reuses_its_projector_layer_and_takes_the_decoupled_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_mnist(&tmp.path().join("mnist"), 64, 10);
    let d = data.to_str().unwrap();
    let pre = tmp.path().join("v2");
    ok(&[
        "pretrain",
        "--data",
        d,
        "--method",
        "contrastive",
        "--arch",
        "conv4-pool,dense16",
        "--reuse-projector",
        "--contrast-loss",
        "decoupled",
        "--epochs",
        "1",
        "--batch",
        "16",
        "--out",
        pre.to_str().unwrap(),
        "-q",
    ]);
    let m = manifest(&pre);
    // the projector's hidden layer is the backbone's top block, recorded and reused as one
    assert_eq!(m["arch"], "conv4-pool,dense16,dense128");
    assert_eq!(m["config"]["train"]["contrast_loss"], "decoupled");
    let ft = tmp.path().join("ft");
    let finetune = |out: &std::path::Path, extra: &[&str]| {
        let base = ["finetune", "--from", pre.to_str().unwrap(), "--train", d, "--frozen-steps", "1"];
        ok(&[&base[..], extra, &["--unfreeze-steps", "1", "--out", out.to_str().unwrap(), "-q"]].concat());
    };
    finetune(&ft, &[]);
    assert_eq!(manifest(&ft)["parent"]["reused_blocks"], 3);
    // SimCLR's reuse is one flag away
    let v1 = tmp.path().join("ft-v1");
    finetune(&v1, &["--drop-top", "1"]);
    assert_eq!(manifest(&v1)["parent"]["reused_blocks"], 2);
    let e = fails(&[
        "pretrain",
        "--data",
        d,
        "--method",
        "contrastive",
        "--contrast-loss",
        "infonce",
        "--out",
        tmp.path().join("bad").to_str().unwrap(),
    ]);
    assert!(e.contains("nt-xent or decoupled"), "{e}");
}
