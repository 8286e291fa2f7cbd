//! Fixtures shared by the integration tests: the bundled MNIST subset and folders built from it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use strata_data::{DataSpec, Dataset, LoadOptions, Split, load};

/// The bundled 5,000-image MNIST subset (gzipped IDX).
pub fn mnist5k_dir() -> PathBuf {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/mnist5k"));
    assert!(p.join("train-images-idx3-ubyte.gz").is_file(), "bundled data missing at {}", p.display());
    p
}

/// One split of the bundled MNIST subset.
pub fn mnist5k(split: Split) -> Dataset {
    load(&DataSpec::new(mnist5k_dir()).with_split(split), &LoadOptions::default()).unwrap()
}

/// Writes `data` as `root/<class>/<index>.<ext>` (index zero-padded), returning the
/// order in which a folder reader must list them: by class, then by index.
pub fn write_image_folder(data: &Dataset, root: &Path, ext: &str) -> Vec<usize> {
    let labels = data.labels().unwrap();
    let s = data.shape;
    assert_eq!(s.channels, 1, "fixture writes grayscale only");
    for (i, &label) in labels.iter().enumerate() {
        let dir = root.join(&data.class_names[label as usize]);
        std::fs::create_dir_all(&dir).unwrap();
        let img = image::GrayImage::from_raw(s.width as u32, s.height as u32, data.image(i).to_vec()).unwrap();
        img.save(dir.join(format!("{i:05}.{ext}"))).unwrap();
    }
    let mut order: Vec<usize> = (0..data.len()).collect();
    order.sort_by_key(|&i| (labels[i], i));
    order
}

/// Writes a grayscale image of one value.
pub fn write_gray(path: &Path, w: u32, h: u32, v: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::GrayImage::from_pixel(w, h, image::Luma([v])).save(path).unwrap();
}

/// Decompresses a gzipped file to `dst`.
pub fn gunzip(src: &Path, dst: &Path) {
    let mut d = flate2::read::GzDecoder::new(std::fs::File::open(src).unwrap());
    let mut out = std::fs::File::create(dst).unwrap();
    std::io::copy(&mut d, &mut out).unwrap();
}
