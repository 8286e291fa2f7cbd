//! Writers of the binary formats, for tests and fixtures: they make small IDX and CIFAR
//! files so that the readers can be tested on real bytes. Not a feature: a feature that only
//! the test build turns on would change strata-data's build and rebuild every crate above it
//! for `cargo test` instead of reusing the release build of `cargo run --release -- demo`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::formats::cifar::RECORD_PIXELS;
use crate::formats::file_name;
use crate::formats::idx::{IMAGES_MAGIC, LABELS_MAGIC};

/// Creates `path`, gzipped when its name ends in `.gz`.
fn create(path: &Path) -> std::io::Result<Box<dyn Write>> {
    let file = BufWriter::new(File::create(path)?);
    if file_name(path).ends_with(".gz") {
        Ok(Box::new(flate2::write::GzEncoder::new(file, flate2::Compression::fast())))
    } else {
        Ok(Box::new(file))
    }
}

/// Writes `n` images of `h` x `w` bytes as an IDX images file (gzipped if the name ends in `.gz`).
pub fn write_idx_images(path: impl AsRef<Path>, n: usize, h: usize, w: usize, pixels: &[u8]) -> std::io::Result<()> {
    let path = path.as_ref();
    if pixels.len() != n * h * w {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} pixels given for {n} images of {h}x{w}", pixels.len()),
        ));
    }
    let mut f = create(path)?;
    f.write_all(&IMAGES_MAGIC.to_be_bytes())?;
    for d in [n, h, w] {
        f.write_all(&(d as u32).to_be_bytes())?;
    }
    f.write_all(pixels)?;
    f.flush()
}

/// Writes labels (each below 256) as an IDX labels file (gzipped if the name ends in `.gz`).
pub fn write_idx_labels(path: impl AsRef<Path>, labels: &[u32]) -> std::io::Result<()> {
    let path = path.as_ref();
    let bytes = labels
        .iter()
        .map(|&l| u8::try_from(l))
        .collect::<std::result::Result<Vec<u8>, _>>()
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "IDX labels must be below 256"))?;
    let mut f = create(path)?;
    f.write_all(&LABELS_MAGIC.to_be_bytes())?;
    f.write_all(&(labels.len() as u32).to_be_bytes())?;
    f.write_all(&bytes)?;
    f.flush()
}

/// Writes CIFAR-10 records (label byte + 3x32x32 channel-first pixels).
pub fn write_cifar10_batch(path: impl AsRef<Path>, labels: &[u8], pixels: &[u8]) -> std::io::Result<()> {
    if pixels.len() != labels.len() * RECORD_PIXELS {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} pixels given for {} CIFAR images of {RECORD_PIXELS}", pixels.len(), labels.len()),
        ));
    }
    let mut out = Vec::with_capacity(labels.len() * (1 + RECORD_PIXELS));
    for (l, px) in labels.iter().zip(pixels.chunks_exact(RECORD_PIXELS)) {
        out.push(*l);
        out.extend_from_slice(px);
    }
    std::fs::write(path, out)
}
