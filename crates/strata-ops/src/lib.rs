//! strata's own 2-D convolution, transposed convolution and max pooling for burn's `flex` CPU
//! backend.
//!
//! burn-flex 0.22 runs a convolution's backward as generic compositions (a transposed
//! convolution for the input gradient, a batch-swapped convolution for the weight gradient)
//! that copy every activation several times and hand `gemm` long, thin matrices; on strata's
//! networks that made the train step run at under half of PyTorch's speed. Here the same
//! operations are written once on raw slices: per-image im2col + `gemm` forward, and a
//! backward that computes only the gradients the graph asks for with well-shaped products.
//! Max pooling (burn-flex runs it through a generic 3-D loop) gets a direct kernel that also
//! absorbs the ReLU before it, and batch norm in training mode (burn copies the whole map to
//! reduce it) one pass per statistic and per gradient.
//!
//! burn's `Conv2d`, `ConvTranspose2d`, `MaxPool2d` and `BatchNorm` modules stay as they are
//! (parameter names, records, safetensors, freezing, parameter groups): only their forward call
//! goes through [`conv2d`] / [`conv_transpose2d`] / [`max_pool2d`] / [`batch_norm`]. Other backends (ndarray, vulkan, cuda), other dtypes,
//! grouped convolutions, `Same` padding and bias-less layers keep burn's own operation, which
//! also stays selectable everywhere with [`ConvImpl::Burn`] and is the oracle of the tests.

pub mod extension;
pub mod geometry;
pub mod kernels;
pub mod norm;
#[cfg(test)]
mod norm_oracle_tests;
#[cfg(test)]
mod oracle_tests;
pub mod pool;

use burn::backend::{Dispatch, DispatchDevice};
use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::nn::pool::MaxPool2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{DType, Tensor};
use extension::OpsBackend;
use std::cell::Cell;
use std::sync::atomic::{AtomicU8, Ordering};

/// Which implementation runs the convolutions of strata's networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConvImpl {
    /// strata's kernels where they apply (flex backend, f32), burn's elsewhere
    #[default]
    Strata,
    /// burn's own operation everywhere
    Burn,
}

impl ConvImpl {
    /// Every choice, in the order of [`ConvImpl::NAMES`] (and of the discriminants).
    const ALL: [ConvImpl; 2] = [Self::Strata, Self::Burn];

    /// Every choice's name (the command line's possible values).
    pub const NAMES: [&'static str; 2] = ["strata", "burn"];

    /// Parses one of [`ConvImpl::NAMES`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::NAMES.iter().position(|n| *n == s).map(|i| Self::ALL[i])
    }
}

// A process-wide switch rather than a field of every module: the choice belongs to the run
// (a command-line flag), not to the model, and must not change a checkpoint's bytes.
static IMPLEMENTATION: AtomicU8 = AtomicU8::new(0);

/// Selects the implementation for the rest of the process.
pub fn set_implementation(choice: ConvImpl) {
    IMPLEMENTATION.store(choice as u8, Ordering::Relaxed);
}

thread_local! {
    /// A choice for the calling thread only (see [`with_implementation`]).
    static OVERRIDE: Cell<Option<ConvImpl>> = const { Cell::new(None) };
}

/// Runs `f` with `choice` on this thread, whatever the process-wide choice: tests compare the
/// two implementations side by side without disturbing tests running on other threads. The
/// choice is read where the forward pass is built (the calling thread); the backward pass
/// follows the graph it built.
pub fn with_implementation<R>(choice: ConvImpl, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<ConvImpl>);
    impl Drop for Restore {
        fn drop(&mut self) {
            OVERRIDE.set(self.0);
        }
    }
    let _restore = Restore(OVERRIDE.replace(Some(choice)));
    f()
}

/// The implementation in effect on this thread (default [`ConvImpl::Strata`]).
pub fn implementation() -> ConvImpl {
    OVERRIDE.get().unwrap_or(ConvImpl::ALL[IMPLEMENTATION.load(Ordering::Relaxed) as usize])
}

/// True where strata's kernels apply to `x`: chosen, flex backend (with or without
/// autodiff), f32.
fn strata_applies<const D: usize>(x: &Tensor<D>, choice: ConvImpl) -> bool {
    choice == ConvImpl::Strata
        && x.dtype() == DType::F32
        && matches!(x.device().inner().as_dispatch(), DispatchDevice::Flex(_))
}

/// `conv.forward(x)`, through strata's kernels where they apply.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    conv2d_using(conv, x, implementation())
}

/// [`conv2d`] with the implementation given rather than the process-wide one.
pub fn conv2d_using(conv: &Conv2d, x: Tensor<4>, choice: ConvImpl) -> Tensor<4> {
    let padding = match conv.padding {
        PaddingConfig2d::Valid => [(0, 0), (0, 0)],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
        PaddingConfig2d::Same => return conv.forward(x),
    };
    let Some(bias) = &conv.bias else { return conv.forward(x) };
    if conv.groups != 1 || !strata_applies(&x, choice) {
        return conv.forward(x);
    }
    let options = ConvOptions::new_with_padding(conv.stride, padding, conv.dilation, 1);
    let y = <Dispatch as OpsBackend>::strata_conv2d(
        x.into_dispatch(),
        conv.weight.val().into_dispatch(),
        bias.val().into_dispatch(),
        options,
    );
    Tensor::from_dispatch(y)
}

/// `conv.forward(x)` of a transposed convolution, through strata's kernels where they apply.
pub fn conv_transpose2d(conv: &ConvTranspose2d, x: Tensor<4>) -> Tensor<4> {
    conv_transpose2d_using(conv, x, implementation())
}

/// [`conv_transpose2d`] with the implementation given rather than the process-wide one.
pub fn conv_transpose2d_using(conv: &ConvTranspose2d, x: Tensor<4>, choice: ConvImpl) -> Tensor<4> {
    let Some(bias) = &conv.bias else { return conv.forward(x) };
    if conv.groups != 1 || !strata_applies(&x, choice) {
        return conv.forward(x);
    }
    let options = ConvTransposeOptions::new(conv.stride, conv.padding, conv.padding_out, conv.dilation, 1);
    let y = <Dispatch as OpsBackend>::strata_conv_transpose2d(
        x.into_dispatch(),
        conv.weight.val().into_dispatch(),
        bias.val().into_dispatch(),
        options,
    );
    Tensor::from_dispatch(y)
}

/// `pool.forward(relu(x))` with `relu_first`, else `pool.forward(x)`; through strata's kernel
/// where it applies (a window equal to its stride, no padding, no dilation, floor mode).
pub fn max_pool2d(pool: &MaxPool2d, x: Tensor<4>, relu_first: bool) -> Tensor<4> {
    max_pool2d_using(pool, x, relu_first, implementation())
}

/// [`max_pool2d`] with the implementation given rather than the process-wide one.
pub fn max_pool2d_using(pool: &MaxPool2d, x: Tensor<4>, relu_first: bool, choice: ConvImpl) -> Tensor<4> {
    let unpadded = matches!(pool.padding, PaddingConfig2d::Valid | PaddingConfig2d::Explicit(0, 0, 0, 0));
    let simple = pool.kernel_size == pool.stride && pool.dilation == [1, 1] && !pool.ceil_mode && unpadded;
    if !simple || !strata_applies(&x, choice) {
        return pool.forward(if relu_first { relu(x) } else { x });
    }
    let y = <Dispatch as OpsBackend>::strata_max_pool2d(x.into_dispatch(), pool.kernel_size, relu_first);
    Tensor::from_dispatch(y)
}

/// `norm.forward(x)`; in training mode (an autodiff device, the layer's training flag on)
/// through strata's one-pass kernel where it applies, with burn's own update of the running
/// statistics. Inference mode keeps burn's operation (one element-wise pass, no copy).
pub fn batch_norm<const D: usize>(norm: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    batch_norm_using(norm, x, implementation())
}

/// [`batch_norm`] with the implementation given rather than the process-wide one.
pub fn batch_norm_using<const D: usize>(norm: &BatchNorm, x: Tensor<D>, choice: ConvImpl) -> Tensor<D> {
    let device = x.device();
    let training = device.is_autodiff() && norm.training.is_enabled();
    let channels_match = D >= 2 && x.dims()[1] == norm.gamma.dims()[0];
    if !training || !channels_match || !strata_applies(&x, choice) {
        return norm.forward(x);
    }
    let (y, mean, var) = <Dispatch as OpsBackend>::strata_batch_norm_train(
        x.into_dispatch(),
        norm.gamma.val().into_dispatch(),
        norm.beta.val().into_dispatch(),
        norm.epsilon,
    );
    // exactly burn's BatchNorm::forward_train update (a running mean of the biased variance)
    let update = |state: &burn::module::RunningState<Tensor<1>>, batch: Tensor<1>| {
        let running = state.value_sync().to_device(&device);
        let next = running.mul_scalar(1.0 - norm.momentum).add(batch.detach().mul_scalar(norm.momentum));
        state.update(next.detach());
    };
    update(&norm.running_mean, Tensor::from_dispatch(mean));
    update(&norm.running_var, Tensor::from_dispatch(var));
    Tensor::from_dispatch(y)
}
