//! Bad input: each case gets a clear error naming the file or flag, and leaves no run
//! directory behind (and never touches an earlier run).

mod common;
use common::*;
use std::path::Path;

fn assert_no_run(out: &Path) {
    assert!(!out.exists(), "{} should not exist", out.display());
    assert!(partials(out.parent().unwrap()).is_empty(), "staging directory left behind");
}

/// A tiny MNIST folder and a 2-block pretrained run on it.
fn small_pretrain(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let d = tiny_mnist(&dir.join("m"), 40, 10);
    let pre = dir.join("pre");
    ok(&small_pretrain_args(&d, &pre));
    (d, pre)
}

fn small_pretrain_args<'a>(data: &'a Path, out: &'a Path) -> Vec<&'a str> {
    PRETRAIN_SMALL.iter().copied().chain(["--data", data.to_str().unwrap(), "--out", out.to_str().unwrap()]).collect()
}

const PRETRAIN_SMALL: [&str; 6] = ["pretrain", "--arch", "conv4-pool,dense8", "--epochs", "1", "-q"];

fn pretrain_fails(data: &str, out: &Path) -> String {
    fails(&["pretrain", "--data", data, "--out", out.to_str().unwrap(), "--epochs", "1", "-q"])
}

#[test]
fn missing_path() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let e = pretrain_fails("/nonexistent/strata-data", &out);
    assert!(e.contains("/nonexistent/strata-data"), "{e}");
    assert_no_run(&out);
}

#[test]
fn idx_bad_magic() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("train-images-idx3-ubyte");
    std::fs::write(&f, [0u8, 0, 9, 9, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3, 4]).unwrap();
    let out = tmp.path().join("run");
    let e = pretrain_fails(f.to_str().unwrap(), &out);
    assert!(e.contains("train-images-idx3-ubyte") && e.to_lowercase().contains("magic"), "{e}");
    assert_no_run(&out);
}

#[test]
fn idx_truncated() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tiny_mnist(&tmp.path().join("m"), 20, 5);
    let f = d.join("train-images-idx3-ubyte");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() - 100]).unwrap();
    let out = tmp.path().join("run");
    let e = pretrain_fails(d.to_str().unwrap(), &out);
    assert!(e.contains("train-images-idx3-ubyte") && e.to_lowercase().contains("truncated"), "{e}");
    assert_no_run(&out);
}

#[test]
fn idx_count_mismatch() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tiny_mnist(&tmp.path().join("m"), 20, 5);
    strata_data::write_idx_labels(d.join("train-labels-idx1-ubyte"), &[1, 2, 3]).unwrap();
    let out = tmp.path().join("run");
    let e =
        fails(&["finetune", "--from", "scratch", "--train", d.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"]);
    assert!(e.contains("train-labels-idx1-ubyte") && e.contains("20") && e.contains('3'), "{e}");
    assert_no_run(&out);
}

fn png_folder(root: &Path, classes: &[(&str, usize, u32)]) {
    for (class, n, size) in classes {
        let dir = root.join(class);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..*n {
            let img =
                image::GrayImage::from_fn(*size, *size, |x, y| image::Luma([((x + y + i as u32) * 7 % 255) as u8]));
            img.save(dir.join(format!("{i}.png"))).unwrap();
        }
    }
}

#[test]
fn corrupt_image_file() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("imgs");
    png_folder(&root, &[("a", 3, 8), ("b", 3, 8)]);
    std::fs::write(root.join("a/broken.png"), b"this is not a png").unwrap();
    let out = tmp.path().join("run");
    let e = pretrain_fails(root.to_str().unwrap(), &out);
    assert!(e.contains("broken.png"), "{e}");
    assert_no_run(&out);
}

#[test]
fn mixed_image_sizes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("imgs");
    png_folder(&root, &[("a", 2, 8), ("b", 2, 10)]);
    let out = tmp.path().join("run");
    let e = pretrain_fails(root.to_str().unwrap(), &out);
    assert!(e.contains(".png") && (e.contains("8") && e.contains("10")), "{e}");
    assert_no_run(&out);
}

#[test]
fn empty_class_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("imgs");
    png_folder(&root, &[("a", 3, 8), ("b", 3, 8)]);
    std::fs::create_dir_all(root.join("c")).unwrap();
    let out = tmp.path().join("run");
    let e = fails(&[
        "finetune",
        "--from",
        "scratch",
        "--train",
        root.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert!(e.contains("imgs/c") || e.contains("`c`") || e.contains("\"c\""), "{e}");
    assert_no_run(&out);
}

#[test]
fn more_labels_than_exist() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tiny_mnist(&tmp.path().join("m"), 50, 10);
    let out = tmp.path().join("run");
    let e = fails(&[
        "finetune",
        "--from",
        "scratch",
        "--train",
        d.to_str().unwrap(),
        "--labels-per-class",
        "40",
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert!(e.contains("--labels-per-class") && e.contains("40"), "{e}");
    assert_no_run(&out);
}

#[test]
fn train_and_test_classes_differ() {
    let tmp = tempfile::tempdir().unwrap();
    let train = tmp.path().join("train");
    let test = tmp.path().join("test");
    png_folder(&train, &[("cat", 3, 8), ("dog", 3, 8)]);
    png_folder(&test, &[("cat", 2, 8), ("cow", 2, 8)]);
    let out = tmp.path().join("run");
    let e = fails(&[
        "finetune",
        "--from",
        "scratch",
        "--arch",
        "conv4-pool,dense8",
        "--train",
        train.to_str().unwrap(),
        "--test",
        test.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert!(e.contains("dog") && e.contains("cow"), "{e}");
    assert_no_run(&out);
}

#[test]
fn reuse_deeper_than_backbone() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, pre) = small_pretrain(tmp.path());
    let out = tmp.path().join("run");
    let e = fails(&[
        "finetune",
        "--from",
        pre.to_str().unwrap(),
        "--train",
        d.to_str().unwrap(),
        "--reuse",
        "5",
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert!(e.contains("--reuse 5") && e.contains("2 block"), "{e}");
    assert_no_run(&out);
}

#[test]
fn existing_run_needs_force_and_is_left_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, pre) = small_pretrain(tmp.path());
    let args = small_pretrain_args(&d, &pre);
    let before = std::fs::read(pre.join("manifest.json")).unwrap();
    let e = fails(&args);
    assert!(e.contains("already exists") && e.contains("--force"), "{e}");
    assert_eq!(std::fs::read(pre.join("manifest.json")).unwrap(), before, "earlier run untouched");
    let mut forced = args.to_vec();
    forced.push("--force");
    ok(&forced);
    assert!(pre.join("model.safetensors").is_file());
    assert!(partials(tmp.path()).is_empty());
}

#[test]
fn bad_flags_name_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tiny_mnist(&tmp.path().join("m"), 40, 10);
    let out = tmp.path().join("run");
    let ds = d.to_str().unwrap();
    let o = out.to_str().unwrap();
    for (extra, needle) in [
        (vec!["--lr", "-1"], "--lr"),
        (vec!["--batch", "0"], "--batch"),
        (vec!["--noise", "1.5"], "--noise"),
        (vec!["--epochs", "0"], "--epochs"),
        (vec!["--arch", "conv32-pool,wat"], "wat"),
        (vec!["--device", "tpu"], "tpu"),
        (vec!["--device", "cuda"], "--features cuda"),
    ] {
        let mut args = vec!["pretrain", "--data", ds, "--out", o, "--epochs", "1", "-q"];
        args.extend(extra.iter());
        let e = fails(&args);
        assert!(e.contains(needle), "{extra:?}: {e}");
        assert_no_run(&out);
    }
}

#[test]
fn tampered_weights_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, pre) = small_pretrain(tmp.path());
    let w = pre.join("model.safetensors");
    let bytes = std::fs::read(&w).unwrap();
    std::fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
    let out = tmp.path().join("ft");
    let e = fails(&[
        "finetune",
        "--from",
        pre.to_str().unwrap(),
        "--train",
        d.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert!(e.contains("model.safetensors") && e.contains("checksum"), "{e}");
    assert_no_run(&out);
}
