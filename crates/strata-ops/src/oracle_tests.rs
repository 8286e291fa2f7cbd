//! Oracle tests: strata's operations against burn's own `Conv2d` / `ConvTranspose2d` on flex,
//! outputs and every gradient, within 1e-4 relative.

use crate::{ConvImpl, conv_transpose2d_using, conv2d_using};
use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::tensor::{Device, Distribution, Tensor};

/// One case: batch, in and out channels, input side (h, w), kernel, stride, padding.
#[derive(Debug, Clone, Copy)]
struct Case {
    n: usize,
    cin: usize,
    cout: usize,
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    p: usize,
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for (i, &(n, cin, cout)) in
        [(1, 1, 1), (7, 3, 64), (1, 32, 1), (7, 1, 64), (7, 32, 64), (1, 3, 1)].iter().enumerate()
    {
        for (j, &(s, p)) in [(1, 0), (1, 1), (2, 0), (2, 1)].iter().enumerate() {
            // odd and even sides, square and not
            let (h, w) = [(9, 7), (8, 8), (5, 11)][(i + j) % 3];
            let k = if s == 2 && j % 2 == 0 { 2 } else { 3 };
            v.push(Case { n, cin, cout, h, w, k, s, p });
        }
    }
    v
}

fn device() -> Device {
    Device::flex().autodiff()
}

fn assert_close(what: &str, case: &Case, a: Option<Tensor<4>>, b: Option<Tensor<4>>) {
    assert_eq!(a.is_some(), b.is_some(), "{what} present in one implementation only: {case:?}");
    let (Some(a), Some(b)) = (a, b) else { return };
    assert_tensors_close(&format!("{what} {case:?}"), a, b);
}

/// Same shape, and every element within 1e-4 of the oracle's (`b`) largest value: relative to
/// the tensor's scale because sums of mixed signs cancel to near zero.
pub(crate) fn assert_tensors_close<const D: usize>(what: &str, a: Tensor<D>, b: Tensor<D>) {
    assert_eq!(a.dims(), b.dims(), "{what}: shape");
    let a = a.into_data().try_to_vec::<f32>().unwrap();
    let b = b.into_data().try_to_vec::<f32>().unwrap();
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!((x - y).abs() <= 1e-4 * scale, "{what}: element {i}: strata {x} burn {y} (scale {scale})");
    }
}

fn bias_grad(t: Option<Tensor<1>>) -> Option<Tensor<4>> {
    t.map(|t| {
        let n = t.dims()[0];
        t.reshape([1, 1, 1, n])
    })
}

/// Runs `forward` with both implementations on the same input and upstream gradient and
/// compares output, input gradient and the parameters' gradients.
fn compare<M>(
    case: &Case,
    module: &M,
    x_shape: [usize; 4],
    track_x: bool,
    forward: impl Fn(&M, Tensor<4>, ConvImpl) -> Tensor<4>,
    params: impl Fn(&M) -> (Tensor<4>, Option<Tensor<1>>),
) {
    let device = device();
    device.seed(case.n as u64 * 1000 + case.cin as u64 * 10 + case.s as u64);
    let x0 = Tensor::<4>::random(x_shape, Distribution::Normal(0.0, 1.0), &device);
    let mut outs = Vec::new();
    for choice in [ConvImpl::Strata, ConvImpl::Burn] {
        let x = if track_x { x0.clone().detach().require_grad() } else { x0.clone().detach() };
        let y = forward(module, x.clone(), choice);
        outs.push((x, y));
    }
    let r = Tensor::<4>::random(outs[0].1.dims(), Distribution::Normal(0.0, 1.0), &device);
    let mut got = Vec::new();
    for (x, y) in outs {
        let grads = (y.clone() * r.clone()).sum().backward();
        let (w, b) = params(module);
        got.push((y, x.grad(&grads), w.grad(&grads), bias_grad(b.and_then(|b| b.grad(&grads)))));
    }
    let (s, b) = (got.remove(0), got.remove(0));
    assert_close("output", case, Some(s.0), Some(b.0));
    assert_close("input gradient", case, s.1, b.1);
    assert_close("weight gradient", case, s.2, b.2);
    assert_close("bias gradient", case, s.3, b.3);
}

fn conv(case: &Case) -> Conv2d {
    device().seed(7);
    Conv2dConfig::new([case.cin, case.cout], [case.k, case.k])
        .with_stride([case.s, case.s])
        .with_padding(PaddingConfig2d::Explicit(case.p, case.p, case.p, case.p))
        .init(&device())
}

fn deconv(case: &Case) -> ConvTranspose2d {
    device().seed(8);
    ConvTranspose2dConfig::new([case.cin, case.cout], [case.k, case.k])
        .with_stride([case.s, case.s])
        .with_padding([case.p, case.p])
        .with_padding_out([case.s - 1, case.s - 1])
        .init(&device())
}

fn conv_params(c: &Conv2d) -> (Tensor<4>, Option<Tensor<1>>) {
    (c.weight.val(), c.bias.as_ref().map(|b| b.val()))
}

fn deconv_params(c: &ConvTranspose2d) -> (Tensor<4>, Option<Tensor<1>>) {
    (c.weight.val(), c.bias.as_ref().map(|b| b.val()))
}

#[test]
fn conv2d_equals_burn_outputs_and_all_gradients() {
    for case in cases() {
        let shape = [case.n, case.cin, case.h, case.w];
        compare(&case, &conv(&case), shape, true, conv2d_using, conv_params);
    }
}

#[test]
fn conv2d_skips_the_gradients_nobody_needs() {
    for case in cases().into_iter().step_by(3) {
        let shape = [case.n, case.cin, case.h, case.w];
        // an input that needs no gradient (the first layer)
        compare(&case, &conv(&case), shape, false, conv2d_using, conv_params);
        // frozen weights: no weight or bias gradient, the input's still flows
        let frozen = conv(&case).no_grad();
        compare(&case, &frozen, shape, true, conv2d_using, conv_params);
    }
}

#[test]
fn conv_transpose2d_equals_burn_outputs_and_all_gradients() {
    for case in cases() {
        let shape = [case.n, case.cin, case.h, case.w];
        compare(&case, &deconv(&case), shape, true, conv_transpose2d_using, deconv_params);
        let frozen = deconv(&case).no_grad();
        compare(&case, &frozen, shape, true, conv_transpose2d_using, deconv_params);
    }
}

#[test]
fn without_autodiff_the_forward_still_equals_burn() {
    let case = cases()[5];
    let device = Device::flex();
    device.seed(3);
    let c = Conv2dConfig::new([case.cin, case.cout], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(&device);
    let x = Tensor::<4>::random([case.n, case.cin, case.h, case.w], Distribution::Normal(0.0, 1.0), &device);
    let a = conv2d_using(&c, x.clone(), ConvImpl::Strata);
    let b = conv2d_using(&c, x, ConvImpl::Burn);
    assert_close("inference output", &case, Some(a), Some(b));
}

#[test]
fn the_oracle_compares_two_different_paths() {
    // without this, a routing mistake would compare burn with itself and pass
    for device in [Device::flex(), Device::flex().autodiff()] {
        let x = Tensor::<4>::zeros([1, 1, 2, 2], &device);
        assert!(crate::strata_applies(&x, ConvImpl::Strata), "{device:?}");
        assert!(!crate::strata_applies(&x, ConvImpl::Burn), "{device:?}");
    }
}

#[test]
fn max_pool2d_equals_burn_with_and_without_the_relu() {
    use crate::max_pool2d_using;
    use burn::nn::pool::MaxPool2dConfig;
    for (n, c, h, w, k) in [(1, 1, 4, 4, 2), (7, 3, 9, 7, 2), (2, 32, 28, 28, 2), (3, 2, 9, 9, 3)] {
        let case = Case { n, cin: c, cout: c, h, w, k, s: k, p: 0 };
        let pool = MaxPool2dConfig::new([k, k]).with_strides([k, k]).init();
        for relu in [false, true] {
            let shape = [n, c, h, w];
            compare(
                &case,
                &pool,
                shape,
                true,
                |m, x, choice| max_pool2d_using(m, x, relu, choice),
                |_| (Tensor::<4>::zeros([1, 1, 1, 1], &device()), None),
            );
        }
    }
}

#[test]
fn every_name_parses_to_its_choice_and_the_switch_round_trips() {
    for (i, name) in ConvImpl::NAMES.iter().enumerate() {
        let c = ConvImpl::parse(name).unwrap();
        assert_eq!(c as usize, i);
        assert_eq!(crate::with_implementation(c, crate::implementation), c);
    }
    assert_eq!(ConvImpl::parse("fast"), None);
}
