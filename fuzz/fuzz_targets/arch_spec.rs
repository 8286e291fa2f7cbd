//! Architecture specs (`conv32-pool,dense128`) on arbitrary strings, and the shapes they
//! produce for a few inputs plus one taken from the fuzz input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_nn::{ArchSpec, InputShape};

const INPUTS: [InputShape; 4] = [
    InputShape { channels: 1, height: 28, width: 28 },
    InputShape { channels: 3, height: 32, width: 32 },
    InputShape { channels: 1, height: 1, width: 1 },
    InputShape { channels: 3, height: 8192, width: 8192 },
];

fuzz_target!(|data: &[u8]| {
    // The first 12 bytes, when there are that many, are one more input shape.
    let (extra, text) = if data.len() >= 12 {
        let d = |i: usize| u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]) as usize;
        (Some(InputShape { channels: d(0), height: d(4), width: d(8) }), &data[12..])
    } else {
        (None, data)
    };
    let Ok(text) = std::str::from_utf8(text) else { return };
    let Ok(spec) = text.parse::<ArchSpec>() else { return };
    let again = ArchSpec::parse(&spec.to_string()).expect("a parsed spec prints as a valid spec");
    assert_eq!(again, spec, "print and parse again changed the spec");
    for input in INPUTS.into_iter().chain(extra) {
        if let Ok(shapes) = spec.shapes(input) {
            assert_eq!(shapes.len(), spec.blocks.len());
            for s in &shapes {
                let _ = s.numel();
            }
            assert_eq!(spec.output_shape(input).ok(), shapes.last().copied());
        }
    }
    for k in 0..=spec.blocks.len() + 1 {
        assert_eq!(spec.lower(k).is_ok(), k <= spec.blocks.len());
    }
});
