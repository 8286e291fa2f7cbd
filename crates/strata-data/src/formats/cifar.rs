//! CIFAR-10 and CIFAR-100 binary batches.
//!
//! CIFAR-10: records of 1 label byte + 3072 pixel bytes (3x32x32, channel-first) in
//! `data_batch_1.bin`..`data_batch_5.bin` (train) and `test_batch.bin` (test), usually in
//! `cifar-10-batches-bin/`. CIFAR-100: records of a coarse and a fine label byte + 3072
//! pixels in `train.bin` and `test.bin`, usually in `cifar-100-binary/`; the fine label is used.

use std::path::{Path, PathBuf};

use super::io::read_all;
use super::{Format, describe, file_name};
use crate::dataset::{Dataset, ImageShape};
use crate::error::{DataError, Result};
use crate::spec::LoadOptions;
use crate::split::Split;

const SHAPE: ImageShape = ImageShape { channels: 3, height: 32, width: 32 };

/// Pixel bytes of one record (3 x 32 x 32).
pub(crate) const RECORD_PIXELS: usize = 3 * 32 * 32;

/// The fixed facts of one CIFAR flavour.
struct Variant {
    name: &'static str,
    /// Label bytes before the pixels; the last one is the label used.
    label_bytes: usize,
    num_classes: usize,
    train_files: &'static [&'static str],
    test_files: &'static [&'static str],
    subdir: &'static str,
    meta_file: &'static str,
    default_names: &'static [&'static str],
}

const CIFAR10: Variant = Variant {
    name: "CIFAR-10",
    label_bytes: 1,
    num_classes: 10,
    train_files: &["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"],
    test_files: &["test_batch.bin"],
    subdir: "cifar-10-batches-bin",
    meta_file: "batches.meta.txt",
    default_names: &["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
};

const CIFAR100: Variant = Variant {
    name: "CIFAR-100",
    label_bytes: 2,
    num_classes: 100,
    train_files: &["train.bin"],
    test_files: &["test.bin"],
    subdir: "cifar-100-binary",
    meta_file: "fine_label_names.txt",
    // Without the names file, classes are named by index.
    default_names: &[],
};

impl Variant {
    fn record(&self) -> usize {
        self.label_bytes + SHAPE.numel()
    }

    fn files(&self, split: Split) -> &'static [&'static str] {
        match split {
            Split::Train => self.train_files,
            Split::Test => self.test_files,
        }
    }

    /// True when `dir` directly holds any of this variant's batch files.
    fn holds(&self, dir: &Path) -> bool {
        self.train_files.iter().chain(self.test_files).any(|f| dir.join(f).is_file())
    }
}

/// The CIFAR binary reader.
pub struct Cifar;

/// The folder actually holding the batches and the variant they are, if any.
fn resolve_dir(path: &Path) -> Option<(PathBuf, &'static Variant)> {
    for v in [&CIFAR10, &CIFAR100] {
        for dir in [path.to_path_buf(), path.join(v.subdir)] {
            if v.holds(&dir) {
                return Some((dir, v));
            }
        }
    }
    None
}

/// The variant of a single batch file, from its name or the names file beside it.
fn variant_of_file(path: &Path) -> &'static Variant {
    let name = file_name(path);
    let beside_fine_names = path.parent().is_some_and(|d| d.join(CIFAR100.meta_file).is_file());
    if CIFAR100.train_files.contains(&name) || CIFAR100.test_files.contains(&name) || beside_fine_names {
        &CIFAR100
    } else {
        &CIFAR10
    }
}

impl Format for Cifar {
    fn name(&self) -> &'static str {
        "CIFAR"
    }

    fn layout(&self) -> &'static str {
        "CIFAR-10 folder with data_batch_1..5.bin + test_batch.bin (or cifar-10-batches-bin/ inside), CIFAR-100 folder with train.bin + test.bin, or one .bin batch file"
    }

    fn detect(&self, path: &Path) -> bool {
        if path.is_dir() {
            resolve_dir(path).is_some()
        } else {
            path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("bin"))
        }
    }

    fn has_splits(&self, path: &Path) -> bool {
        path.is_dir()
    }

    fn load(&self, path: &Path, split: Split, _opts: &LoadOptions) -> Result<Dataset> {
        let (files, variant, meta_dir, split) = if path.is_dir() {
            let Some((dir, v)) = resolve_dir(path) else {
                return Err(DataError::UnknownFormat { path: path.to_path_buf(), accepted: self.layout().into() });
            };
            let files: Vec<PathBuf> = v.files(split).iter().map(|f| dir.join(f)).filter(|p| p.is_file()).collect();
            if files.is_empty() {
                return Err(DataError::SplitNotFound {
                    path: path.to_path_buf(),
                    split,
                    looked_for: v.files(split).join(", "),
                });
            }
            (files, v, dir, Some(split))
        } else {
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            (vec![path.to_path_buf()], variant_of_file(path), dir, None)
        };
        let mut images = Vec::new();
        let mut labels = Vec::new();
        for f in &files {
            read_batch(f, variant, &mut images, &mut labels)?;
        }
        Ok(Dataset {
            images,
            shape: SHAPE,
            labels: Some(labels),
            class_names: class_names(&meta_dir, variant)?,
            source: describe(path, split, variant.name),
        })
    }
}

/// Appends one batch file's pixels and labels.
fn read_batch(path: &Path, v: &Variant, images: &mut Vec<u8>, labels: &mut Vec<u32>) -> Result<()> {
    let bytes = read_all(path)?;
    parse_batch(&bytes, v, path, images, labels)
}

/// Appends the records in `bytes` (one batch file) to `images` and `labels`.
fn parse_batch(bytes: &[u8], v: &Variant, path: &Path, images: &mut Vec<u8>, labels: &mut Vec<u32>) -> Result<()> {
    let rec = v.record();
    if bytes.is_empty() || !bytes.len().is_multiple_of(rec) {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected_bytes: bytes.len().div_ceil(rec).max(1) as u64 * rec as u64,
            found_bytes: bytes.len() as u64,
        });
    }
    images.reserve(bytes.len() / rec * SHAPE.numel());
    labels.reserve(bytes.len() / rec);
    for (i, r) in bytes.chunks_exact(rec).enumerate() {
        let label = r[v.label_bytes - 1] as u32;
        if label as usize >= v.num_classes {
            return Err(DataError::LabelOutOfRange {
                path: path.to_path_buf(),
                index: i,
                label,
                num_classes: v.num_classes,
            });
        }
        labels.push(label);
        images.extend_from_slice(&r[v.label_bytes..]);
    }
    Ok(())
}

/// Reads one CIFAR batch held in memory: (pixels N x 3 x 32 x 32, labels). `cifar100`
/// selects the record layout (coarse + fine label byte, the fine one used); `path` only
/// names the bytes in errors.
pub fn parse_cifar_batch(bytes: &[u8], cifar100: bool, path: &Path) -> Result<(Vec<u8>, Vec<u32>)> {
    let v = if cifar100 { &CIFAR100 } else { &CIFAR10 };
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    parse_batch(bytes, v, path, &mut images, &mut labels)?;
    Ok((images, labels))
}

/// Class names from the names file in `dir` when present, else the standard ones.
fn class_names(dir: &Path, v: &Variant) -> Result<Vec<String>> {
    let meta = dir.join(v.meta_file);
    if !meta.is_file() {
        return Ok(if v.default_names.is_empty() {
            (0..v.num_classes).map(|c| c.to_string()).collect()
        } else {
            v.default_names.iter().map(|s| s.to_string()).collect()
        });
    }
    let bytes = read_all(&meta)?;
    parse_names(&bytes, v, &meta)
}

/// Parses a class-names file: one name per line, blank lines ignored, exactly one per class.
fn parse_names(bytes: &[u8], v: &Variant, path: &Path) -> Result<Vec<String>> {
    let bad = |reason: String| DataError::BadMeta { path: path.to_path_buf(), reason };
    let text = std::str::from_utf8(bytes).map_err(|e| bad(format!("not UTF-8 text ({e})")))?;
    let names: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    if names.len() != v.num_classes {
        return Err(bad(format!("{} names, expected {} (one per line)", names.len(), v.num_classes)));
    }
    for (i, name) in names.iter().enumerate() {
        if let Some(j) = names[..i].iter().position(|n| n == name) {
            return Err(bad(format!("names {} and {} are both `{name}`", j + 1, i + 1)));
        }
    }
    Ok(names)
}

/// Parses a CIFAR class-names file held in memory (`batches.meta.txt` for CIFAR-10,
/// `fine_label_names.txt` for CIFAR-100); `path` only names the bytes in errors.
pub fn parse_cifar_names(bytes: &[u8], cifar100: bool, path: &Path) -> Result<Vec<String>> {
    parse_names(bytes, if cifar100 { &CIFAR100 } else { &CIFAR10 }, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::write_cifar10_batch;

    fn pixels(n: usize) -> Vec<u8> {
        (0..n * 3072).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn folder_with_subdir_and_meta() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("cifar-10-batches-bin");
        std::fs::create_dir(&sub).unwrap();
        write_cifar10_batch(sub.join("data_batch_1.bin"), &[0, 9], &pixels(2)).unwrap();
        write_cifar10_batch(sub.join("data_batch_2.bin"), &[3], &pixels(1)).unwrap();
        write_cifar10_batch(sub.join("test_batch.bin"), &[5], &pixels(1)).unwrap();
        let names: String = (0..10).map(|i| format!("c{i}\n")).collect::<String>() + "\n";
        std::fs::write(sub.join("batches.meta.txt"), names).unwrap();

        assert!(Cifar.detect(dir.path()));
        let train = Cifar.load(dir.path(), Split::Train, &LoadOptions::default()).unwrap();
        assert_eq!(train.len(), 3);
        assert_eq!(train.shape, SHAPE);
        assert_eq!(train.labels(), Some(&[0, 9, 3][..]));
        assert_eq!(train.class_names[9], "c9");
        assert_eq!(&train.images[..3072], &pixels(1)[..]);
        let test = Cifar.load(dir.path(), Split::Test, &LoadOptions::default()).unwrap();
        assert_eq!(test.labels(), Some(&[5][..]));
        assert!(train.check_same_classes(&test).is_ok());
    }

    #[test]
    fn single_file_gets_standard_names() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("some.bin");
        write_cifar10_batch(&f, &[1, 2], &pixels(2)).unwrap();
        let d = Cifar.load(&f, Split::Train, &LoadOptions::default()).unwrap();
        assert_eq!(d.class_names[1], "automobile");
        assert_eq!(d.num_classes(), 10);
    }

    #[test]
    fn cifar100_uses_fine_labels() {
        let dir = tempfile::tempdir().unwrap();
        let mut rec = vec![3u8, 77];
        rec.extend(pixels(1));
        std::fs::write(dir.path().join("train.bin"), &rec).unwrap();
        let d = Cifar.load(dir.path(), Split::Train, &LoadOptions::default()).unwrap();
        assert_eq!(d.labels(), Some(&[77][..]));
        assert_eq!(d.num_classes(), 100);
        let err = Cifar.load(dir.path(), Split::Test, &LoadOptions::default()).unwrap_err().to_string();
        assert!(err.contains("test.bin"), "{err}");
    }

    #[test]
    fn bad_length_and_label_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("data_batch_1.bin");
        let mut bytes = vec![1u8];
        bytes.extend(pixels(1));
        bytes.pop();
        std::fs::write(&f, &bytes).unwrap();
        let msg = Cifar.load(&f, Split::Train, &LoadOptions::default()).unwrap_err().to_string();
        assert!(msg.contains("data_batch_1.bin") && msg.contains("truncated") && msg.contains("3073"), "{msg}");

        write_cifar10_batch(&f, &[1, 12], &pixels(2)).unwrap();
        let msg = Cifar.load(&f, Split::Train, &LoadOptions::default()).unwrap_err().to_string();
        assert!(msg.contains("record 1 has label 12"), "{msg}");
    }

    #[test]
    fn bytes_in_memory_and_names_files() {
        let p = Path::new("mem.bin");
        let mut rec = vec![7u8];
        rec.extend(pixels(1));
        let (px, labels) = parse_cifar_batch(&rec, false, p).unwrap();
        assert_eq!((px.len(), labels), (3072, vec![7]));
        // read as CIFAR-100, the pixel count is one short and the fine label is the first pixel
        assert!(parse_cifar_batch(&rec, true, p).unwrap_err().to_string().contains("truncated"));
        assert!(parse_cifar_batch(&[], false, p).unwrap_err().to_string().contains("mem.bin: truncated"));
        let names: String = (0..10).map(|i| format!(" c{i} \n\n")).collect();
        assert_eq!(parse_cifar_names(names.as_bytes(), false, p).unwrap()[3], "c3");
        let msg = parse_cifar_names(b"a\na\nb\nc\nd\ne\nf\ng\nh\ni\n", false, p).unwrap_err().to_string();
        assert!(msg.contains("names 1 and 2 are both `a`"), "{msg}");
        let msg = parse_cifar_names(b"\xff\xfe", true, p).unwrap_err().to_string();
        assert!(msg.contains("mem.bin") && msg.contains("not UTF-8"), "{msg}");
    }

    #[test]
    fn bad_meta_is_named() {
        let dir = tempfile::tempdir().unwrap();
        write_cifar10_batch(dir.path().join("test_batch.bin"), &[1], &pixels(1)).unwrap();
        std::fs::write(dir.path().join("batches.meta.txt"), "a\nb\n").unwrap();
        let msg = Cifar.load(dir.path(), Split::Test, &LoadOptions::default()).unwrap_err().to_string();
        assert!(msg.contains("batches.meta.txt") && msg.contains("2 names"), "{msg}");
    }
}
