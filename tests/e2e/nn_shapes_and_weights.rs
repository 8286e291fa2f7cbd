//! Autoencoders reconstruct at the input's shape for any valid architecture; classifiers
//! give one logit per class; weights round-trip exactly and deterministically.

use burn::tensor::{Device, Distribution, Tensor};
use proptest::prelude::*;
use std::path::Path;
use strata_nn::{ArchSpec, Autoencoder, Classifier, HeadSpec, InputShape, try_seeded, weights};

fn arch_and_input() -> impl Strategy<Value = (String, InputShape)> {
    let conv = (1usize..6, 0usize..2, any::<bool>(), any::<bool>()).prop_map(|(c, k, bn, pool)| {
        format!("conv{c}k{}{}{}", 2 * k + 1, if bn { "-bn" } else { "" }, if pool { "-pool" } else { "" })
    });
    let dense = (1usize..9, any::<bool>()).prop_map(|(n, bn)| format!("dense{n}{}", if bn { "-bn" } else { "" }));
    (proptest::collection::vec(conv, 0..3), proptest::collection::vec(dense, 0..2), 1usize..4, 4usize..13, 4usize..13)
        .prop_filter("at least one block", |(c, d, ..)| !c.is_empty() || !d.is_empty())
        .prop_map(|(c, d, ch, h, w)| {
            let spec = c.into_iter().chain(d).collect::<Vec<_>>().join(",");
            (spec, InputShape { channels: ch, height: h, width: w })
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn autoencoder_reconstructs_at_input_shape((spec, input) in arch_and_input()) {
        let arch = ArchSpec::parse(&spec).unwrap();
        prop_assume!(arch.shapes(input).is_ok());
        let device = Device::flex();
        let ae = Autoencoder::new(&arch, input, &device).unwrap();
        let x = Tensor::<4>::random([2, input.channels, input.height, input.width], Distribution::Uniform(0.0, 1.0), &device);
        let y = ae.forward(x);
        prop_assert_eq!(y.dims(), [2, input.channels, input.height, input.width]);
        let v = y.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        prop_assert!(v.iter().all(|p| (0.0..=1.0).contains(p)), "sigmoid output");
        let clf = Classifier::new(&arch, &HeadSpec { hidden: vec![3], classes: 4 }, input, &device).unwrap();
        let x = Tensor::<4>::zeros([2, input.channels, input.height, input.width], &device);
        prop_assert_eq!(clf.forward(x).dims(), [2, 4]);
    }
}

#[test]
fn reference_parameter_names_are_readable_and_stable() {
    let device = Device::flex();
    let input = InputShape { channels: 1, height: 28, width: 28 };
    let ae = Autoencoder::new(&ArchSpec::reference(), input, &device).unwrap();
    let names: Vec<(String, Vec<usize>)> = weights::layer_table(&ae).into_iter().map(|l| (l.name, l.shape)).collect();
    // burn stores linear weights as [in, out]
    let expect: Vec<(&str, Vec<usize>)> = vec![
        ("backbone.0.conv.weight", vec![32, 1, 3, 3]),
        ("backbone.0.conv.bias", vec![32]),
        ("backbone.1.conv.weight", vec![64, 32, 3, 3]),
        ("backbone.1.conv.bias", vec![64]),
        ("backbone.2.linear.weight", vec![3136, 128]),
        ("backbone.2.linear.bias", vec![128]),
        ("decoder.blocks.0.linear.weight", vec![128, 3136]),
        ("decoder.blocks.0.linear.bias", vec![3136]),
        ("decoder.blocks.1.deconv.weight", vec![64, 32, 2, 2]),
        ("decoder.blocks.1.deconv.bias", vec![32]),
        ("decoder.blocks.2.deconv.weight", vec![32, 1, 2, 2]),
        ("decoder.blocks.2.deconv.bias", vec![1]),
    ];
    let expect: Vec<(String, Vec<usize>)> = expect.into_iter().map(|(n, s)| (n.to_string(), s)).collect();
    assert_eq!(names, expect);
}

#[test]
fn weights_round_trip_bit_for_bit_and_deterministically() {
    let device = Device::flex();
    let input = InputShape { channels: 1, height: 8, width: 8 };
    let arch = ArchSpec::parse("conv4-bn-pool,dense6-bn").unwrap();
    let a = try_seeded(&device, 5, || Classifier::new(&arch, &HeadSpec { hidden: vec![], classes: 3 }, input, &device))
        .unwrap();
    let bytes = weights::to_bytes(&a).unwrap();
    assert_eq!(bytes, weights::to_bytes(&a).unwrap(), "same module, same bytes");
    let b = try_seeded(&device, 6, || Classifier::new(&arch, &HeadSpec { hidden: vec![], classes: 3 }, input, &device))
        .unwrap();
    assert_ne!(weights::snapshot(&a), weights::snapshot(&b));
    let b = weights::load_bytes(b, bytes, Path::new("mem")).unwrap();
    assert_eq!(weights::snapshot(&a), weights::snapshot(&b));
}

#[test]
fn loading_the_wrong_architecture_names_the_tensors() {
    let device = Device::flex();
    let input = InputShape { channels: 1, height: 8, width: 8 };
    let small = Classifier::new(
        &ArchSpec::parse("conv4-pool").unwrap(),
        &HeadSpec { hidden: vec![], classes: 3 },
        input,
        &device,
    )
    .unwrap();
    let bytes = weights::to_bytes(&small).unwrap();
    let wide = Classifier::new(
        &ArchSpec::parse("conv5-pool").unwrap(),
        &HeadSpec { hidden: vec![], classes: 3 },
        input,
        &device,
    )
    .unwrap();
    let e = weights::load_bytes(wide, bytes.clone(), Path::new("w.safetensors")).unwrap_err().to_string();
    assert!(e.contains("w.safetensors") && e.contains("backbone.0.conv.weight"), "{e}");
    let deeper = Classifier::new(
        &ArchSpec::parse("conv4-pool,dense3").unwrap(),
        &HeadSpec { hidden: vec![], classes: 3 },
        input,
        &device,
    )
    .unwrap();
    let e = weights::load_bytes(deeper, bytes, Path::new("w.safetensors")).unwrap_err().to_string();
    assert!(e.contains("backbone.1.linear.weight") || e.contains("head.0.linear.weight"), "{e}");
}

#[test]
fn reuse_deeper_than_the_backbone_is_an_error() {
    let e = ArchSpec::reference().lower(4).unwrap_err().to_string();
    assert!(e.contains("--reuse 4") && e.contains("3 block"), "{e}");
}
