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
