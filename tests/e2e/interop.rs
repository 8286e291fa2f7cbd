//! Reusing networks trained elsewhere: `strata import` reproduces a PyTorch network's
//! outputs, export → import is bit-exact, every mismatch is named; and `strata train` makes
//! a source network for task B.

use crate::common::*;
use std::path::{Path, PathBuf};
use strata_nn::interop::{RawTensor, TensorMap, Values, read_safetensors};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/torch_tiny.safetensors")
}

const MAPS: [&str; 6] = [
    "--map",
    r"features\.0\.=backbone.0.conv.",
    "--map",
    r"features\.1\.=backbone.0.norm.",
    "--map",
    r"^classifier\.=head.0.linear.",
];

fn import_args(out: &Path, extra: &[&str]) -> Vec<String> {
    let fx = fixture();
    let mut v: Vec<String> =
        ["import", "--weights", fx.to_str().unwrap(), "--arch", "conv3-bn-pool", "--input", "1x6x6"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v.extend(["--out".to_string(), out.to_str().unwrap().to_string()]);
    v
}

fn strata_args(args: &[String]) -> std::process::Output {
    strata().args(args).output().unwrap()
}

fn f32s(t: &RawTensor) -> Vec<f32> {
    match &t.values {
        Values::F32(v) => v.clone(),
        Values::I64(_) => panic!("not a float tensor"),
    }
}

#[test]
fn an_imported_pytorch_network_gives_its_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("imported");
    let out = strata_args(&import_args(&run, &[&["--classes", "4", "--drop", r"^fixture\."][..], &MAPS[..]].concat()));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("matched 8, missing 0, unused 0"), "{text}");
    assert!(text.contains("backbone.0.norm.gamma ← module.features.1.weight"), "{text}");

    let fx = read_safetensors(&std::fs::read(fixture()).unwrap(), &fixture()).unwrap();
    let input = &fx["fixture.input"];
    let expected = f32s(&fx["fixture.output"]);
    let device = burn::tensor::Device::default();
    let dir = strata_train::RunDir::open(&run).unwrap();
    let model = strata_run::context::load_classifier(&dir, &device).unwrap();
    let x = burn::tensor::Tensor::<4>::from_data(
        burn::tensor::TensorData::new(f32s(input), [input.shape[0], 1, 6, 6]),
        &device,
    );
    let got = model.forward(x).into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    let worst = got.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert_eq!(got.len(), expected.len());
    assert!(worst < 1e-5, "max abs difference {worst}");
    eprintln!("import fidelity: max abs difference {worst:e} over {} outputs", got.len());

    let shown = ok(&["inspect", run.to_str().unwrap()]);
    assert!(shown.contains("module.classifier.weight") && shown.contains("imported"), "{shown}");
}

#[test]
fn every_mismatch_is_named_and_nothing_stays_random_silently() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("r");
    // a 5-class head does not fit the file's 4-class one
    let out = strata_args(&import_args(&run, &[&["--classes", "5", "--drop", r"^fixture\."][..], &MAPS[..]].concat()));
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("mismatched  head.0.linear.weight ← module.classifier.weight: model [27, 5], file [27, 4]"),
        "{e}"
    );
    assert!(e.contains("--reinit"), "{e}");
    assert!(!run.exists(), "nothing written");
    // naming the head re-initialises it, and the report says so
    let out = strata_args(&import_args(
        &run,
        &[&["--classes", "5", "--drop", r"^fixture\.", "--reinit", "head"][..], &MAPS[..]].concat(),
    ));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("re-initialised head.0.linear.weight") && text.contains("re-initialised head.0.linear.bias"),
        "{text}"
    );
    // without the batch-norm rule its tensors are missing from the model's view and unused in the file's
    let out = strata_args(&import_args(
        &tmp.path().join("m"),
        &["--classes", "4", "--drop", r"^fixture\.", "--map", MAPS[1], "--map", MAPS[5]],
    ));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        e.contains("missing     backbone.0.norm.gamma") && e.contains("unused      module.features.1.running_var"),
        "{e}"
    );
    // a backbone-only import must drop the file's head explicitly
    let out = strata_args(&import_args(&tmp.path().join("b"), &[&["--drop", r"^fixture\."][..], &MAPS[..4]].concat()));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && e.contains("unused      module.classifier.weight"), "{e}");
}

#[test]
fn export_then_import_is_bit_exact_and_pytorch_shaped() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_mnist(&tmp.path().join("mnist"), 120, 20);
    let d = data.to_str().unwrap();
    let run = tmp.path().join("sc");
    ok(&[
        "finetune",
        "--from",
        "scratch",
        "--train",
        d,
        "--arch",
        "conv4-bn-pool,dense8",
        "--frozen-steps",
        "3",
        "--unfreeze-steps",
        "0",
        "--out",
        run.to_str().unwrap(),
        "-q",
    ]);
    let original = std::fs::read(run.join("model.safetensors")).unwrap();
    for (flags, layout) in [(vec!["--pytorch-names"], "pytorch"), (vec![], "strata")] {
        let file = tmp.path().join(format!("{layout}.safetensors"));
        ok(&[&["export", run.to_str().unwrap(), "--out", file.to_str().unwrap()][..], &flags[..]].concat());
        let back = tmp.path().join(format!("back-{layout}"));
        ok(&[
            "import",
            "--weights",
            file.to_str().unwrap(),
            "--arch",
            "conv4-bn-pool,dense8",
            "--classes",
            "10",
            "--layout",
            layout,
            "--out",
            back.to_str().unwrap(),
        ]);
        assert_eq!(std::fs::read(back.join("model.safetensors")).unwrap(), original, "{layout} round trip");
    }
    // what a PyTorch user's load_state_dict sees
    let t: TensorMap =
        read_safetensors(&std::fs::read(tmp.path().join("pytorch.safetensors")).unwrap(), Path::new("x")).unwrap();
    let names: Vec<&str> = t.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "backbone.0.conv.bias",
            "backbone.0.conv.weight",
            "backbone.0.norm.bias",
            "backbone.0.norm.num_batches_tracked",
            "backbone.0.norm.running_mean",
            "backbone.0.norm.running_var",
            "backbone.0.norm.weight",
            "backbone.1.linear.bias",
            "backbone.1.linear.weight",
            "head.0.linear.bias",
            "head.0.linear.weight",
        ]
    );
    assert_eq!(t["backbone.1.linear.weight"].shape, vec![8, 784], "Linear as out x in");
    assert_eq!(t["head.0.linear.weight"].shape, vec![10, 8]);
    assert_eq!(t["backbone.0.conv.weight"].shape, vec![4, 1, 3, 3]);
    // refuses to overwrite, and --backbone-only keeps only backbone tensors
    let e =
        fails(&["export", run.to_str().unwrap(), "--out", tmp.path().join("pytorch.safetensors").to_str().unwrap()]);
    assert!(e.contains("already exists"), "{e}");
    let bb = tmp.path().join("bb.safetensors");
    ok(&["export", run.to_str().unwrap(), "--out", bb.to_str().unwrap(), "--backbone-only"]);
    let t = read_safetensors(&std::fs::read(&bb).unwrap(), &bb).unwrap();
    assert!(t.keys().all(|k| k.starts_with("backbone.")) && t.len() == 8);
}

#[test]
fn train_on_task_a_then_reuse_for_task_b() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_mnist(&tmp.path().join("mnist"), 300, 60);
    let d = data.to_str().unwrap();
    let a = tmp.path().join("a");
    ok(&[
        "train",
        "--data",
        d,
        "--classes",
        "0-7",
        "--arch",
        "conv4-pool,dense16",
        "--steps",
        "5",
        "--out",
        a.to_str().unwrap(),
        "-q",
    ]);
    let m = manifest(&a);
    assert_eq!(m["kind"], "train");
    assert_eq!(m["head"]["classes"], 8);
    assert_eq!(m["data"]["class_names"], serde_json::json!(["0", "1", "2", "3", "4", "5", "6", "7"]));
    let b = tmp.path().join("b");
    ok(&[
        "finetune",
        "--from",
        a.to_str().unwrap(),
        "--train",
        d,
        "--test",
        &format!("{d}:test"),
        "--classes",
        "8,9",
        "--labels-per-class",
        "10",
        "--frozen-steps",
        "3",
        "--unfreeze-steps",
        "3",
        "--out",
        b.to_str().unwrap(),
        "-q",
    ]);
    let m = manifest(&b);
    assert_eq!(m["head"]["classes"], 2);
    assert_eq!(m["parent"]["reused_blocks"], 2);
    assert_eq!(m["data"]["label_indices"].as_array().unwrap().len(), 20);
    let e = fails(&["train", "--data", d, "--classes", "0-12", "--out", tmp.path().join("x").to_str().unwrap()]);
    assert!(e.contains("--classes 0-12") && e.contains("out of range"), "{e}");
}

#[test]
fn a_pytorch_pt_file_imports_like_its_safetensors_twin() {
    let tmp = tempfile::tempdir().unwrap();
    let pt = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/torch_tiny.pt");
    let (a, b) = (tmp.path().join("pt"), tmp.path().join("st"));
    let mut args = import_args(&a, &[&["--classes", "4"][..], &MAPS[..]].concat());
    args[2] = pt.to_str().unwrap().to_string();
    let out = strata_args(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("matched 8, missing 0, unused 0"));
    let out = strata_args(&import_args(&b, &[&["--classes", "4", "--drop", r"^fixture\."][..], &MAPS[..]].concat()));
    assert!(out.status.success());
    assert_eq!(
        std::fs::read(a.join("model.safetensors")).unwrap(),
        std::fs::read(b.join("model.safetensors")).unwrap()
    );
    let bad = tmp.path().join("bad.pt");
    std::fs::write(&bad, b"not a zip").unwrap();
    let mut args = import_args(&tmp.path().join("c"), &["--classes", "4"]);
    args[2] = bad.to_str().unwrap().to_string();
    let out = strata_args(&args);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && e.contains("bad.pt") && e.contains("not a readable PyTorch file"), "{e}");
}
