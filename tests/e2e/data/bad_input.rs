//! Bad data gives an error that names the file and says what is wrong.

use std::path::Path;
use std::time::Instant;

use super::common::*;
use strata_data::*;

fn load_path(path: &Path, opts: &LoadOptions) -> Result<Dataset> {
    load(&DataSpec::new(path), opts)
}

fn err(path: &Path, opts: &LoadOptions) -> String {
    load_path(path, opts).unwrap_err().to_string()
}

#[test]
fn missing_path() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nope");
    let msg = err(&p, &LoadOptions::default());
    assert!(msg.contains("nope") && msg.contains("no such file or directory"), "{msg}");
}

#[test]
fn idx_with_bad_magic() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("train-images-idx3-ubyte");
    let mut bytes = 0x0000_0804u32.to_be_bytes().to_vec();
    bytes.extend([0u8; 12]);
    std::fs::write(&p, bytes).unwrap();
    let msg = err(dir.path(), &LoadOptions::default());
    assert!(msg.contains("train-images-idx3-ubyte") && msg.contains("bad magic number 0x00000804"), "{msg}");
    assert!(msg.contains("expected 0x00000803"), "{msg}");
}

#[test]
fn truncated_idx() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("train-images-idx3-ubyte");
    gunzip(&mnist5k_dir().join("train-images-idx3-ubyte.gz"), &p);
    let full = std::fs::read(&p).unwrap();
    std::fs::write(&p, &full[..full.len() / 2]).unwrap();
    let msg = err(&p, &LoadOptions::default());
    let expected = 4000 * 28 * 28;
    assert!(msg.contains("train-images-idx3-ubyte") && msg.contains("truncated"), "{msg}");
    assert!(
        msg.contains(&format!("expected {expected} bytes")) && msg.contains(&format!("found {}", full.len() / 2 - 16)),
        "{msg}"
    );
}

#[test]
fn label_image_count_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    gunzip(&mnist5k_dir().join("train-images-idx3-ubyte.gz"), &dir.path().join("train-images-idx3-ubyte"));
    // Labels of the test split: 1000 labels for 4000 images.
    gunzip(&mnist5k_dir().join("t10k-labels-idx1-ubyte.gz"), &dir.path().join("train-labels-idx1-ubyte"));
    let msg = err(dir.path(), &LoadOptions::default());
    assert!(
        msg.contains("4000 images") && msg.contains("1000 labels") && msg.contains("train-labels-idx1-ubyte"),
        "{msg}"
    );
}

#[test]
fn header_claiming_billions_of_images_does_not_allocate_for_them() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("huge-images-idx3-ubyte");
    // u32::MAX images of 28x28 (3.4 TB claimed) followed by a single image.
    let mut b = 0x0000_0803u32.to_be_bytes().to_vec();
    for d in [u32::MAX, 28, 28] {
        b.extend(d.to_be_bytes());
    }
    b.extend([0u8; 784]);
    std::fs::write(&p, b).unwrap();
    let t = Instant::now();
    let msg = err(&p, &LoadOptions::default());
    assert!(t.elapsed().as_secs() < 5, "took {:?}", t.elapsed());
    let claimed = u32::MAX as u64 * 784;
    assert!(msg.contains("huge-images-idx3-ubyte") && msg.contains(&format!("expected {claimed} bytes")), "{msg}");
    assert!(msg.contains("found 784"), "{msg}");
}

#[test]
fn corrupt_image_file() {
    let dir = tempfile::tempdir().unwrap();
    write_gray(&dir.path().join("a/ok.png"), 4, 4, 1);
    std::fs::write(dir.path().join("a/bad.png"), b"this is not a png at all").unwrap();
    let msg = err(dir.path(), &LoadOptions::default());
    assert!(msg.contains("bad.png") && msg.contains("cannot decode image"), "{msg}");
    // A real PNG cut short is caught too.
    let good = std::fs::read(dir.path().join("a/ok.png")).unwrap();
    std::fs::write(dir.path().join("a/bad.png"), &good[..good.len() - 20]).unwrap();
    let msg = err(dir.path(), &LoadOptions::default());
    assert!(msg.contains("bad.png"), "{msg}");
}

#[test]
fn mixed_image_sizes() {
    let dir = tempfile::tempdir().unwrap();
    write_gray(&dir.path().join("a/1.png"), 28, 28, 1);
    write_gray(&dir.path().join("b/2.png"), 20, 24, 1);
    let msg = err(dir.path(), &LoadOptions::default());
    assert!(msg.contains("2.png") && msg.contains("1.png") && msg.contains("1x24x20"), "{msg}");
    assert!(msg.contains("1x28x28") && msg.contains("--resize HxW"), "{msg}");
    let d = load_path(dir.path(), &LoadOptions { resize: Some((16, 16)), ..Default::default() }).unwrap();
    assert_eq!(d.shape, ImageShape::new(1, 16, 16));
    assert_eq!(d.len(), 2);
}

#[test]
fn empty_class_folder() {
    let dir = tempfile::tempdir().unwrap();
    write_gray(&dir.path().join("cat/1.png"), 4, 4, 1);
    std::fs::create_dir(dir.path().join("dog")).unwrap();
    std::fs::write(dir.path().join("dog/readme.txt"), "no images here").unwrap();
    let msg = err(dir.path(), &LoadOptions::default());
    assert!(msg.contains("dog") && msg.contains("class folder holds no images"), "{msg}");
}

#[test]
fn empty_folder_has_no_images() {
    let dir = tempfile::tempdir().unwrap();
    let msg = err(dir.path(), &LoadOptions::default());
    assert!(msg.contains("no images found"), "{msg}");
}

#[test]
fn more_labels_per_class_than_exist() {
    let test = mnist5k(Split::Test);
    let msg = test.take_per_class(101, 0).unwrap_err().to_string();
    assert!(msg.contains("class \"0\"") && msg.contains("101 labeled examples") && msg.contains("only 100"), "{msg}");
    let msg = stratified_subset(test.labels().unwrap(), 10, 500, 0).unwrap_err().to_string();
    assert!(msg.contains("only 100"), "{msg}");
}

#[test]
fn train_and_test_class_names_differ() {
    let dir = tempfile::tempdir().unwrap();
    for (split, class) in [("train", "cat"), ("train", "dog"), ("test", "cat"), ("test", "fox")] {
        write_gray(&dir.path().join(split).join(class).join("1.png"), 4, 4, 1);
    }
    let train =
        load(&DataSpec::parse(&format!("{}:train", dir.path().display())).unwrap(), &LoadOptions::default()).unwrap();
    let test =
        load(&DataSpec::parse(&format!("{}:test", dir.path().display())).unwrap(), &LoadOptions::default()).unwrap();
    let msg = train.check_same_classes(&test).unwrap_err().to_string();
    assert!(msg.contains("[cat, dog]") && msg.contains("[cat, fox]"), "{msg}");
}

#[test]
fn unlabeled_data_where_labels_are_required() {
    let dir = tempfile::tempdir().unwrap();
    write_gray(&dir.path().join("x.png"), 4, 4, 1);
    let msg = err(dir.path(), &LoadOptions { require_labels: true, ..Default::default() });
    assert!(msg.contains("labeled data is needed") && msg.contains("one subfolder per class"), "{msg}");
    let d = load_path(dir.path(), &LoadOptions::default()).unwrap();
    let msg = d.require_labels().unwrap_err().to_string();
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
}

#[test]
fn split_asked_of_an_unsplit_folder() {
    let dir = tempfile::tempdir().unwrap();
    write_gray(&dir.path().join("a/1.png"), 4, 4, 1);
    let spec = DataSpec::new(dir.path()).with_split(Split::Test);
    let msg = load(&spec, &LoadOptions::default()).unwrap_err().to_string();
    assert!(msg.contains("no separate test split") && msg.contains("drop the ':test' suffix"), "{msg}");
}

#[test]
fn idx_folder_without_the_test_split() {
    let dir = tempfile::tempdir().unwrap();
    write_idx_images(dir.path().join("train-images-idx3-ubyte"), 1, 2, 2, &[0; 4]).unwrap();
    let spec = DataSpec::new(dir.path()).with_split(Split::Test);
    let msg = load(&spec, &LoadOptions::default()).unwrap_err().to_string();
    assert!(msg.contains("no test split") && msg.contains("t10k-images-idx3-ubyte"), "{msg}");
}

#[test]
fn ambiguous_idx_folder() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["emnist-digits-train-images-idx3-ubyte", "emnist-letters-train-images-idx3-ubyte"] {
        write_idx_images(dir.path().join(name), 1, 2, 2, &[0; 4]).unwrap();
    }
    let msg = err(dir.path(), &LoadOptions::default());
    assert!(msg.contains("several candidate files") && msg.contains("emnist-letters"), "{msg}");
}
