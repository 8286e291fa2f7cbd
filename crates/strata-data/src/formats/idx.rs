//! MNIST-family IDX files (MNIST, Fashion-MNIST, KMNIST, EMNIST), raw or gzipped.
//!
//! Layout: a folder with `train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`,
//! `t10k-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]` (or any names holding
//! `train`/`test`/`t10k` and `images-idx3`/`labels-idx1`, as EMNIST uses), or one images
//! file whose labels file sits beside it.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::io::{expect_end, from_bytes, open, read_exact_len, read_up_to};
use super::{Format, MAX_SIDE, describe, file_name, is_hidden};
use crate::dataset::{Dataset, ImageShape};
use crate::error::{DataError, Result};
use crate::spec::LoadOptions;
use crate::split::Split;

/// Magic number of an IDX file of unsigned bytes with three dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with one dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// The IDX reader.
pub struct Idx;

impl Format for Idx {
    fn name(&self) -> &'static str {
        "IDX"
    }

    fn layout(&self) -> &'static str {
        "folder with train-images-idx3-ubyte[.gz] + train-labels-idx1-ubyte[.gz] (and t10k-* for test), or one *images-idx3-ubyte[.gz] file"
    }

    fn detect(&self, path: &Path) -> bool {
        if path.is_dir() {
            list_images_files(path).is_ok_and(|files| !files.is_empty())
        } else {
            is_idx_name(file_name(path))
        }
    }

    fn has_splits(&self, path: &Path) -> bool {
        path.is_dir()
    }

    fn load(&self, path: &Path, split: Split, opts: &LoadOptions) -> Result<Dataset> {
        let (images_path, split) = if path.is_dir() {
            (images_file_for_split(path, split)?, Some(split))
        } else {
            if file_name(path).contains("idx1") {
                return Err(DataError::BadOption {
                    path: path.to_path_buf(),
                    reason: "this is an IDX labels file; pass the images file (*images-idx3-ubyte) or the folder holding both".into(),
                });
            }
            (path.to_path_buf(), None)
        };
        let (images, shape, n) = read_idx_images(&images_path)?;
        let labels_path = labels_path_for(&images_path);
        let labels = match &labels_path {
            Some(lp) => {
                let labels = read_idx_labels(lp)?;
                if labels.len() != n {
                    return Err(DataError::CountMismatch {
                        images_path: images_path.clone(),
                        labels_path: lp.clone(),
                        images: n,
                        labels: labels.len(),
                    });
                }
                Some(labels)
            }
            None if opts.require_labels => {
                return Err(DataError::MissingLabels {
                    path: images_path.clone(),
                    hint: format!(
                        "no labels file {} beside it; put the matching *labels-idx1-ubyte[.gz] file there",
                        labels_name_for(file_name(&images_path))
                    ),
                });
            }
            None => None,
        };
        let class_names = match (&labels, &labels_path) {
            (Some(l), Some(lp)) => idx_class_names(l, lp)?,
            _ => Vec::new(),
        };
        Ok(Dataset {
            images,
            shape,
            labels,
            class_names,
            source: describe(if split.is_some() { path } else { &images_path }, split, self.name()),
        })
    }
}

/// True for names of IDX files (images or labels, raw or gzipped).
fn is_idx_name(name: &str) -> bool {
    name.contains("idx3-ubyte") || name.contains("idx1-ubyte")
}

/// True for names of IDX image files.
fn is_images_name(name: &str) -> bool {
    (name.contains("images-idx3-ubyte") || name.contains("images.idx3-ubyte"))
        && (name.ends_with("idx3-ubyte") || name.ends_with("idx3-ubyte.gz"))
}

/// Which split a file name belongs to, from its `-`/`.`/`_`-separated words.
fn split_of(name: &str) -> Option<Split> {
    let words: Vec<&str> = name.split(['-', '.', '_']).collect();
    if words.contains(&"train") {
        Some(Split::Train)
    } else if words.contains(&"t10k") || words.contains(&"test") {
        Some(Split::Test)
    } else {
        None
    }
}

/// The IDX image files directly in `dir`, sorted; a raw file hides its `.gz` twin.
fn list_images_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| !is_hidden(p) && p.is_file() && is_images_name(file_name(p)))
        .collect();
    files.sort();
    // After `gunzip -k` both copies sit side by side; they hold the same data.
    let raw: Vec<PathBuf> = files.iter().filter(|p| !file_name(p).ends_with(".gz")).cloned().collect();
    files.retain(|p| match file_name(p).strip_suffix(".gz") {
        Some(stem) => !raw.iter().any(|r| file_name(r) == stem),
        None => true,
    });
    Ok(files)
}

/// The images file of `split` in `dir`.
fn images_file_for_split(dir: &Path, split: Split) -> Result<PathBuf> {
    let files = list_images_files(dir).map_err(|e| DataError::io(dir, e))?;
    let mut matching: Vec<PathBuf> = files.into_iter().filter(|p| split_of(file_name(p)) == Some(split)).collect();
    match matching.len() {
        1 => Ok(matching.remove(0)),
        0 => Err(DataError::SplitNotFound {
            path: dir.to_path_buf(),
            split,
            looked_for: match split {
                Split::Train => "train-images-idx3-ubyte[.gz]".into(),
                Split::Test => "t10k-images-idx3-ubyte[.gz] or *test-images-idx3-ubyte[.gz]".into(),
            },
        }),
        _ => Err(DataError::Ambiguous { path: dir.to_path_buf(), candidates: matching }),
    }
}

/// The labels file name that goes with an images file name.
fn labels_name_for(images_name: &str) -> String {
    let name = images_name.replacen("idx3", "idx1", 1);
    match name.rfind("images") {
        Some(i) => format!("{}labels{}", &name[..i], &name[i + "images".len()..]),
        None => name,
    }
}

/// The existing labels file beside an images file, raw or gzipped, if any.
fn labels_path_for(images_path: &Path) -> Option<PathBuf> {
    let name = labels_name_for(file_name(images_path));
    let other = match name.strip_suffix(".gz") {
        Some(stem) => stem.to_string(),
        None => format!("{name}.gz"),
    };
    [name, other].into_iter().map(|n| images_path.with_file_name(n)).find(|p| p.is_file())
}

/// Length in bytes of the header of an IDX file with `ndims` dimensions.
fn header_len(ndims: u8) -> u64 {
    4 + 4 * ndims as u64
}

/// What an IDX type byte stands for, if it is one.
fn idx_type_name(t: u8) -> Option<&'static str> {
    Some(match t {
        0x08 => "unsigned byte",
        0x09 => "signed byte",
        0x0b => "16-bit integer",
        0x0c => "32-bit integer",
        0x0d => "32-bit float",
        0x0e => "64-bit float",
        _ => return None,
    })
}

/// Reads the magic number and the `ndims` big-endian dimensions it must announce; `what`
/// names the kind of file in errors ("images", "labels").
fn read_header(reader: &mut dyn Read, ndims: u8, what: &str, path: &Path) -> Result<Vec<usize>> {
    let magic = 0x0800 | ndims as u32;
    let mut head = [0u8; 4];
    let got = read_up_to(reader, &mut head, path)?;
    if got < 4 {
        return Err(header_truncated(path, ndims, got));
    }
    let found = u32::from_be_bytes(head);
    if found != magic {
        let layout = if ndims == 3 { "3 (count x height x width)" } else { "1 (count)" };
        let hint = match (head[0], head[1], idx_type_name(head[2])) {
            (0, 0, Some(_)) if head[2] == 0x08 => format!(
                "it declares {} dimension(s) but an IDX {what} file has {layout}; pass the {what} file",
                head[3]
            ),
            (0, 0, Some(t)) => {
                format!("it holds {t} values; strata reads IDX files of unsigned bytes (type 0x08) only")
            }
            _ => "this is not the kind of file its name says (or it is compressed without a .gz name)".into(),
        };
        return Err(DataError::BadMagic { path: path.to_path_buf(), found, expected: magic, hint });
    }
    let mut dims = vec![0u8; 4 * ndims as usize];
    let got = read_up_to(reader, &mut dims, path)?;
    if got < dims.len() {
        return Err(header_truncated(path, ndims, 4 + got));
    }
    Ok(dims.chunks_exact(4).map(|d| u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize).collect())
}

/// The error for a file that ends inside its header.
fn header_truncated(path: &Path, ndims: u8, got: usize) -> DataError {
    DataError::BadHeader {
        path: path.to_path_buf(),
        reason: format!(
            "truncated inside its {}-byte header, after {got} bytes; the file is incomplete, download or copy it again",
            header_len(ndims)
        ),
    }
}

/// Checks the bytes a header promises against the length of an uncompressed file, before
/// anything is allocated for them.
fn check_length(total: Option<u64>, ndims: u8, expected: u64, path: &Path) -> Result<()> {
    let Some(total) = total else { return Ok(()) };
    let found = total.saturating_sub(header_len(ndims));
    if found < expected {
        return Err(DataError::Truncated { path: path.to_path_buf(), expected_bytes: expected, found_bytes: found });
    }
    if found > expected {
        return Err(DataError::TrailingBytes { path: path.to_path_buf(), expected_bytes: expected });
    }
    Ok(())
}

/// Reads IDX images from `reader`; `total` is the input's length when known (uncompressed).
fn images_from(reader: &mut dyn Read, total: Option<u64>, path: &Path) -> Result<(Vec<u8>, ImageShape, usize)> {
    let dims = read_header(reader, 3, "images", path)?;
    let (n, h, w) = (dims[0], dims[1], dims[2]);
    let bad = |reason: String| DataError::BadHeader { path: path.to_path_buf(), reason };
    if n == 0 || h == 0 || w == 0 {
        return Err(bad(format!("dimensions {n}x{h}x{w} include a zero")));
    }
    if h > MAX_SIDE as usize || w > MAX_SIDE as usize {
        return Err(bad(format!("images of {h}x{w} exceed the {MAX_SIDE}x{MAX_SIDE} limit")));
    }
    // At most 2^32 x 2^13 x 2^13 = 2^58: fits, but check rather than trust it.
    let expected = (n as u64)
        .checked_mul(h as u64)
        .and_then(|x| x.checked_mul(w as u64))
        .ok_or_else(|| bad(format!("{n} images of {h}x{w} overflow")))?;
    check_length(total, 3, expected, path)?;
    let pixels = read_exact_len(reader, expected, total.is_some(), path)?;
    expect_end(reader, expected, path)?;
    Ok((pixels, ImageShape::new(1, h, w), n))
}

/// Reads IDX labels from `reader`; `total` is the input's length when known (uncompressed).
fn labels_from(reader: &mut dyn Read, total: Option<u64>, path: &Path) -> Result<Vec<u32>> {
    let dims = read_header(reader, 1, "labels", path)?;
    let n = dims[0];
    if n == 0 {
        return Err(DataError::BadHeader { path: path.to_path_buf(), reason: "it holds zero labels".into() });
    }
    check_length(total, 1, n as u64, path)?;
    let bytes = read_exact_len(reader, n as u64, total.is_some(), path)?;
    expect_end(reader, n as u64, path)?;
    Ok(bytes.into_iter().map(u32::from).collect())
}

/// Reads an IDX images file (raw or gzipped): (pixels N x 1 x H x W, shape, N).
///
/// A header promising more (or fewer) bytes than an uncompressed file holds is refused
/// before anything is allocated; a gzipped one is read only as far as its data goes.
pub fn read_idx_images(path: impl AsRef<Path>) -> Result<(Vec<u8>, ImageShape, usize)> {
    let path = path.as_ref();
    let (mut r, total) = open(path)?;
    images_from(&mut *r, total, path)
}

/// Reads an IDX labels file (raw or gzipped).
pub fn read_idx_labels(path: impl AsRef<Path>) -> Result<Vec<u32>> {
    let path = path.as_ref();
    let (mut r, total) = open(path)?;
    labels_from(&mut *r, total, path)
}

/// [`read_idx_images`] on bytes in memory (raw or gzipped); `path` only names them in errors.
pub fn parse_idx_images(bytes: &[u8], path: &Path) -> Result<(Vec<u8>, ImageShape, usize)> {
    let (mut r, total) = from_bytes(bytes);
    images_from(&mut *r, total, path)
}

/// [`read_idx_labels`] on bytes in memory (raw or gzipped); `path` only names them in errors.
pub fn parse_idx_labels(bytes: &[u8], path: &Path) -> Result<Vec<u32>> {
    let (mut r, total) = from_bytes(bytes);
    labels_from(&mut *r, total, path)
}

/// The class names IDX labels imply: one per index up to the largest label, so that a
/// label's value and its class index agree.
///
/// IDX files do not say how many classes there are. A label far above the others (a
/// damaged byte such as 255 among digits) would create hundreds of classes without a
/// single example, so when classes without examples would outnumber those with, the
/// largest label is reported as out of range, naming its record.
pub fn idx_class_names(labels: &[u32], path: &Path) -> Result<Vec<String>> {
    let Some(&max) = labels.iter().max() else { return Ok(Vec::new()) };
    let classes = max as usize + 1;
    let mut seen = vec![false; classes];
    for &l in labels {
        seen[l as usize] = true;
    }
    let used = seen.iter().filter(|&&s| s).count();
    if classes - used > used {
        let index = labels.iter().position(|&l| l == max).unwrap_or(0);
        return Err(DataError::SparseLabels { path: path.to_path_buf(), index, label: max, empty: classes - used });
    }
    Ok((0..classes).map(|c| c.to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{write_idx_images, write_idx_labels};
    use std::io::Write;

    #[test]
    fn names() {
        assert!(is_images_name("train-images-idx3-ubyte.gz"));
        assert!(is_images_name("train-images.idx3-ubyte"));
        assert!(is_images_name("emnist-balanced-test-images-idx3-ubyte"));
        assert!(!is_images_name("train-labels-idx1-ubyte.gz"));
        assert!(!is_images_name("train-images-idx3-ubyte.txt"));
        assert_eq!(split_of("t10k-images-idx3-ubyte.gz"), Some(Split::Test));
        assert_eq!(split_of("emnist-digits-test-images-idx3-ubyte"), Some(Split::Test));
        assert_eq!(split_of("train-images.idx3-ubyte"), Some(Split::Train));
        assert_eq!(split_of("images-idx3-ubyte"), None);
        assert_eq!(labels_name_for("train-images-idx3-ubyte.gz"), "train-labels-idx1-ubyte.gz");
        assert_eq!(labels_name_for("train-images.idx3-ubyte"), "train-labels.idx1-ubyte");
        assert_eq!(labels_name_for("emnist-letters-train-images-idx3-ubyte"), "emnist-letters-train-labels-idx1-ubyte");
    }

    #[test]
    fn write_then_read_raw_and_gz() {
        let dir = tempfile::tempdir().unwrap();
        let px: Vec<u8> = (0..2 * 3 * 4).map(|i| i as u8).collect();
        for name in ["x-images-idx3-ubyte", "y-images-idx3-ubyte.gz"] {
            let p = dir.path().join(name);
            write_idx_images(&p, 2, 3, 4, &px).unwrap();
            let (got, shape, n) = read_idx_images(&p).unwrap();
            assert_eq!((got, shape, n), (px.clone(), ImageShape::new(1, 3, 4), 2));
        }
        let lp = dir.path().join("x-labels-idx1-ubyte");
        write_idx_labels(&lp, &[3, 1]).unwrap();
        assert_eq!(read_idx_labels(&lp).unwrap(), vec![3, 1]);
        assert!(write_idx_labels(&lp, &[300]).is_err());
        assert!(write_idx_images(&lp, 2, 2, 2, &[0; 7]).is_err());
    }

    #[test]
    fn gz_twin_is_hidden_by_raw() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["train-images-idx3-ubyte", "train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"] {
            write_idx_images(dir.path().join(name), 1, 1, 1, &[0]).unwrap();
        }
        let files = list_images_files(dir.path()).unwrap();
        let names: Vec<&str> = files.iter().map(|p| file_name(p)).collect();
        assert_eq!(names, vec!["t10k-images-idx3-ubyte.gz", "train-images-idx3-ubyte"]);
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a-labels-idx1-ubyte");
        write_idx_labels(&p, &[1, 2]).unwrap();
        let mut bytes = std::fs::read(&p).unwrap();
        bytes.push(9);
        std::fs::write(&p, bytes).unwrap();
        let msg = read_idx_labels(&p).unwrap_err().to_string();
        assert!(msg.contains("more data than the header"), "{msg}");
    }

    #[test]
    fn zero_dims_and_oversized_sides_are_bad_headers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("z-images-idx3-ubyte");
        let mut b = IMAGES_MAGIC.to_be_bytes().to_vec();
        for d in [5u32, 0, 28] {
            b.extend(d.to_be_bytes());
        }
        std::fs::write(&p, &b).unwrap();
        let msg = read_idx_images(&p).unwrap_err().to_string();
        assert!(msg.contains("bad header") && msg.contains("zero"), "{msg}");
        let mut b = IMAGES_MAGIC.to_be_bytes().to_vec();
        for d in [1u32, 100_000, 100_000] {
            b.extend(d.to_be_bytes());
        }
        std::fs::write(&p, &b).unwrap();
        let msg = read_idx_images(&p).unwrap_err().to_string();
        assert!(msg.contains("limit"), "{msg}");
    }

    #[test]
    fn labels_file_given_as_images_is_explained() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("train-labels-idx1-ubyte");
        write_idx_labels(&p, &[1]).unwrap();
        assert!(Idx.detect(&p));
        let msg = Idx.load(&p, Split::Train, &LoadOptions::default()).unwrap_err().to_string();
        assert!(msg.contains("labels file"), "{msg}");
    }

    fn header(magic: u32, dims: &[u32]) -> Vec<u8> {
        let mut b = magic.to_be_bytes().to_vec();
        dims.iter().for_each(|d| b.extend(d.to_be_bytes()));
        b
    }

    #[test]
    fn bytes_in_memory_read_like_files() {
        let p = Path::new("mem-images-idx3-ubyte");
        let mut b = header(IMAGES_MAGIC, &[2, 1, 2]);
        b.extend([1, 2, 3, 4]);
        assert_eq!(parse_idx_images(&b, p).unwrap(), (vec![1, 2, 3, 4], ImageShape::new(1, 1, 2), 2));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&b).unwrap();
        assert_eq!(parse_idx_images(&gz.finish().unwrap(), p).unwrap().0, vec![1, 2, 3, 4]);
        let mut l = header(LABELS_MAGIC, &[3]);
        l.extend([2, 0, 1]);
        assert_eq!(parse_idx_labels(&l, p).unwrap(), vec![2, 0, 1]);
        let msg = parse_idx_labels(&l[..9], p).unwrap_err().to_string();
        assert!(msg.contains("mem-images-idx3-ubyte") && msg.contains("expected 3 bytes") && msg.contains("found 1"));
    }

    #[test]
    fn magic_numbers_are_explained() {
        let p = Path::new("x-images-idx3-ubyte");
        for (magic, needle) in [
            (0x0000_0804, "declares 4 dimension(s) but an IDX images file has 3 (count x height x width)"),
            (0x0000_0801, "declares 1 dimension(s)"),
            (0x0000_0d03, "holds 32-bit float values"),
            (0x8950_4e47, "not the kind of file its name says"),
        ] {
            let msg = parse_idx_images(&header(magic, &[1, 1, 1, 1]), p).unwrap_err().to_string();
            assert!(msg.contains(&format!("bad magic number 0x{magic:08x}")) && msg.contains(needle), "{msg}");
        }
        let msg = parse_idx_labels(&header(IMAGES_MAGIC, &[1, 1, 1]), p).unwrap_err().to_string();
        assert!(msg.contains("declares 3 dimension(s) but an IDX labels file has 1 (count)"), "{msg}");
    }

    #[test]
    fn claims_are_checked_against_the_length_before_reading() {
        let p = Path::new("c-images-idx3-ubyte");
        let mut b = header(IMAGES_MAGIC, &[u32::MAX, 28, 28]);
        b.extend([0; 784]);
        let msg = parse_idx_images(&b, p).unwrap_err().to_string();
        assert!(msg.contains(&format!("expected {} bytes", u32::MAX as u64 * 784)) && msg.contains("found 784"));
        let mut b = header(IMAGES_MAGIC, &[1, 2, 2]);
        b.extend([0; 5]);
        assert!(parse_idx_images(&b, p).unwrap_err().to_string().contains("more data than the header"));
        let msg = parse_idx_images(&header(IMAGES_MAGIC, &[1, 2])[..11], p).unwrap_err().to_string();
        assert!(msg.contains("truncated inside its 16-byte header, after 11 bytes"), "{msg}");
    }

    #[test]
    fn sparse_labels_are_out_of_range() {
        let p = Path::new("l-labels-idx1-ubyte");
        let digits: Vec<u32> = (0..10).chain([3, 7]).collect();
        assert_eq!(idx_class_names(&digits, p).unwrap().len(), 10);
        // EMNIST letters count from 1; a small test set may miss a few classes.
        assert_eq!(idx_class_names(&(1..=26).collect::<Vec<u32>>(), p).unwrap().len(), 27);
        assert_eq!(idx_class_names(&[7, 2, 1, 0, 4], p).unwrap().len(), 8);
        let mut damaged = digits.clone();
        damaged[4] = 255;
        let msg = idx_class_names(&damaged, p).unwrap_err().to_string();
        assert!(msg.contains("record 4 has label 255") && msg.contains("256 classes of which 246 have no example"));
        assert!(idx_class_names(&[], p).unwrap().is_empty());
    }

    #[test]
    fn a_fifo_is_refused_without_opening_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("train-images-idx3-ubyte");
        assert!(std::process::Command::new("mkfifo").arg(&p).status().unwrap().success());
        let msg = read_idx_images(&p).unwrap_err().to_string();
        assert!(msg.contains("not a regular file"), "{msg}");
        let msg = read_idx_images(dir.path()).unwrap_err().to_string();
        assert!(msg.contains("not a regular file"), "{msg}");
    }

    #[test]
    fn missing_header_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e-images-idx3-ubyte");
        std::fs::write(&p, [0u8, 0]).unwrap();
        let msg = read_idx_images(&p).unwrap_err().to_string();
        assert!(msg.contains("truncated"), "{msg}");
    }
}
