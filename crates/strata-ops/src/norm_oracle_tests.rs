//! Oracle tests: strata's batch norm in training mode against burn's own `BatchNorm` on flex:
//! output, input and parameter gradients, running statistics, within 1e-4 relative.

use crate::oracle_tests::assert_tensors_close;
use crate::{ConvImpl, batch_norm_using};
use burn::module::Param;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::{Device, Distribution, Tensor};

fn device() -> Device {
    Device::flex().autodiff()
}

fn assert_close<const D: usize>(what: &str, shape: &[usize], a: Tensor<D>, b: Tensor<D>) {
    assert_tensors_close(&format!("{what} {shape:?}"), a, b);
}

/// A layer of `c` channels with the given gamma and beta and fresh running statistics.
fn layer(gamma: &Tensor<1>, beta: &Tensor<1>, track_params: bool) -> BatchNorm {
    let c = gamma.dims()[0];
    let mut norm = BatchNormConfig::new(c).init(&device());
    let param = |t: &Tensor<1>| {
        let t = t.clone().detach();
        Param::from_tensor(if track_params { t.require_grad() } else { t })
    };
    norm.gamma = param(gamma);
    norm.beta = param(beta);
    norm
}

/// Runs both implementations on the same input, parameters and upstream gradient, twice (the
/// second step sees the running statistics the first one left), and compares everything.
fn compare<const D: usize>(shape: [usize; D], track_x: bool, track_params: bool, offset: f32) {
    let device = device();
    device.seed(shape.iter().product::<usize>() as u64);
    let c = shape[1];
    let x0 = Tensor::<D>::random(shape, Distribution::Normal(0.0, 2.0), &device).add_scalar(offset);
    let w = Tensor::<D>::random(shape, Distribution::Normal(0.0, 1.0), &device);
    let gamma = Tensor::<1>::random([c], Distribution::Normal(1.0, 0.5), &device);
    let beta = Tensor::<1>::random([c], Distribution::Normal(0.0, 0.5), &device);
    let mut runs = Vec::new();
    for choice in [ConvImpl::Strata, ConvImpl::Burn] {
        let norm = layer(&gamma, &beta, track_params);
        let mut outs = Vec::new();
        for step in 0..2 {
            let x = x0.clone().detach().mul_scalar(1.0 + step as f32);
            let x = if track_x { x.require_grad() } else { x };
            let y = batch_norm_using(&norm, x.clone(), choice);
            let grads = y.clone().mul(w.clone()).sum().backward();
            let dx = x.grad(&grads);
            let dg = norm.gamma.val().grad(&grads);
            let db = norm.beta.val().grad(&grads);
            outs.push((y.detach(), dx, dg, db));
        }
        runs.push((outs, norm.running_mean.value(), norm.running_var.value()));
    }
    let (burn, strata) = (runs.pop().unwrap(), runs.pop().unwrap());
    for (step, (s, b)) in strata.0.into_iter().zip(burn.0).enumerate() {
        let what = |w: &str| format!("{w} (step {step}, x tracked {track_x}, params tracked {track_params})");
        assert_close(&what("output"), &shape, s.0, b.0);
        assert_eq!(s.1.is_some(), b.1.is_some(), "{}", what("input gradient present"));
        if let (Some(a), Some(b)) = (s.1, b.1) {
            assert_close(&what("input gradient"), &shape, a, b);
        }
        for (name, a, b) in [("gamma gradient", s.2, b.2), ("beta gradient", s.3, b.3)] {
            assert_eq!(a.is_some(), b.is_some(), "{}", what(name));
            if let (Some(a), Some(b)) = (a, b) {
                assert_close(&what(name), &shape, a, b);
            }
        }
    }
    assert_close("running mean", &shape, strata.1, burn.1);
    assert_close("running variance", &shape, strata.2, burn.2);
}

#[test]
fn conv_maps_match_burn() {
    for shape in [[7, 5, 6, 4], [3, 32, 9, 9], [1, 3, 5, 7], [16, 64, 3, 3]] {
        compare(shape, true, true, 0.0);
    }
}

#[test]
fn dense_features_match_burn() {
    for shape in [[16, 128], [5, 3], [64, 10]] {
        compare(shape, true, true, 0.0);
    }
}

#[test]
fn frozen_input_or_frozen_parameters_match_burn() {
    // the input of a frozen lower block carries no gradient; a frozen layer's parameters none
    compare([6, 4, 5, 5], false, true, 0.0);
    compare([6, 4, 5, 5], true, false, 0.0);
    compare([6, 4, 5, 5], false, false, 0.0);
}

#[test]
fn values_far_from_zero_keep_their_variance() {
    // a mean of 1000 against a spread of 2: one-pass sums of squares would cancel in f32
    compare([8, 3, 4, 4], true, true, 1000.0);
}

#[test]
fn inference_mode_is_burns_own() {
    // a device without autodiff: burn's inference path, running statistics untouched
    let norm = BatchNormConfig::new(3).init(&Device::flex());
    let x = Tensor::<4>::random([2, 3, 4, 4], Distribution::Normal(0.0, 1.0), &Device::flex());
    let a = batch_norm_using(&norm, x.clone(), ConvImpl::Strata);
    let b = norm.forward(x);
    assert_eq!(a.into_data(), b.into_data());
    assert_eq!(norm.running_var.value().into_data(), Tensor::<1>::ones([3], &Device::flex()).into_data());
}

#[test]
fn the_oracle_compares_two_different_paths_for_dense_features_too() {
    // the gate for rank 2: without it the dense case would compare burn with itself
    let x = Tensor::<2>::zeros([4, 3], &device());
    assert!(crate::strata_applies(&x, ConvImpl::Strata));
    assert!(!crate::strata_applies(&x, ConvImpl::Burn));
}
