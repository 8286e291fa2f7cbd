//! The IDX reader on arbitrary bytes, raw or gzipped: images, labels and the class names
//! labels imply. Errors are fine; a panic, an overflow or an allocation for a size the
//! input only claims is a bug.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use strata_data::formats::idx::{idx_class_names, parse_idx_images, parse_idx_labels};

fuzz_target!(|data: &[u8]| {
    let images = Path::new("fuzz-images-idx3-ubyte");
    match parse_idx_images(data, images) {
        Ok((pixels, shape, n)) => {
            assert_eq!(shape.channels, 1);
            assert_eq!(pixels.len(), n * shape.numel(), "pixel count disagrees with the header");
        }
        Err(e) => assert!(e.to_string().contains("fuzz-images-idx3-ubyte"), "error does not name the file: {e}"),
    }
    let labels_path = Path::new("fuzz-labels-idx1-ubyte");
    match parse_idx_labels(data, labels_path) {
        Ok(labels) => {
            if let Ok(names) = idx_class_names(&labels, labels_path) {
                assert!(labels.iter().all(|&l| (l as usize) < names.len()), "a label without a class");
            }
        }
        Err(e) => assert!(e.to_string().contains("fuzz-labels-idx1-ubyte"), "error does not name the file: {e}"),
    }
});
