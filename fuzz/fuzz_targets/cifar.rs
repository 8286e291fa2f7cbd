//! The CIFAR-10 and CIFAR-100 batch readers and class-names parsers on arbitrary bytes.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use strata_data::formats::cifar::{parse_cifar_batch, parse_cifar_names};

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz_batch.bin");
    for (cifar100, classes) in [(false, 10), (true, 100)] {
        match parse_cifar_batch(data, cifar100, path) {
            Ok((pixels, labels)) => {
                assert_eq!(pixels.len(), labels.len() * 3 * 32 * 32);
                assert!(labels.iter().all(|&l| l < classes), "label out of range accepted");
            }
            Err(e) => assert!(e.to_string().contains("fuzz_batch.bin"), "error does not name the file: {e}"),
        }
        if let Ok(names) = parse_cifar_names(data, cifar100, path) {
            assert_eq!(names.len(), classes as usize);
        }
    }
});
