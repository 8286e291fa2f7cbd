//! The kernels as burn operations: a backend extension implemented for `Flex` (raw slices in
//! and out) and for `Autodiff<B, C>` (a graph node whose backward calls the hand-written
//! gradients, asking only for those the graph needs).

use crate::geometry::Geometry;
use crate::kernels::{self, Wanted};
use crate::{norm, pool};
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::ops::conv::{calculate_conv_output_size_asymmetric, calculate_conv_transpose_output_size};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Autodiff, AutodiffBackend, Backend, Flex, TensorMetadata, backend_extension};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{Bytes, DType, Shape};

/// Gradients of one call: input, weight, bias; `None` where not asked for.
type GradTriple<B> = (Option<FloatTensor<B>>, Option<FloatTensor<B>>, Option<FloatTensor<B>>);

/// strata's operations as backend operations (groups = 1, f32): what the crate's functions
/// call through burn's dispatch.
#[backend_extension(Flex, Autodiff)]
pub trait OpsBackend: Backend {
    /// `conv2d(x, w) + b`, NCHW, weight OIHW.
    fn strata_conv2d(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self>;

    /// `conv_transpose2d(x, w) + b`, NCHW, weight `[in, out, kh, kw]`.
    fn strata_conv_transpose2d(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        options: ConvTransposeOptions<2>,
    ) -> FloatTensor<Self>;

    /// Max pooling with a `kernel` window and the same stride, no padding; with `relu`, the
    /// ReLU before it fused in.
    fn strata_max_pool2d(x: FloatTensor<Self>, kernel: [usize; 2], relu: bool) -> FloatTensor<Self>;

    /// Batch norm in training mode over every axis but the channels (axis 1): the output, and
    /// the batch mean and biased variance per channel (no gradient flows through those two).
    fn strata_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// Which convolution a backward pass belongs to, with its options.
#[derive(Debug, Clone)]
pub enum ConvKind {
    /// [`OpsBackend::strata_conv2d`]
    Conv(ConvOptions<2>),
    /// [`OpsBackend::strata_conv_transpose2d`]
    Transpose(ConvTransposeOptions<2>),
}

/// What the backward passes call on the inner backend: never dispatched, so a plain trait.
pub trait Kernels: Backend {
    /// The gradients of a convolution of either kind asked for by `want` = (dx, dw, db).
    fn conv_gradients(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        kind: ConvKind,
        want: [bool; 3],
    ) -> GradTriple<Self>;

    /// [`OpsBackend::strata_max_pool2d`] and each output's source index in its plane.
    fn max_pool2d_with_argmax(
        x: FloatTensor<Self>,
        kernel: [usize; 2],
        relu: bool,
    ) -> (FloatTensor<Self>, IntTensor<Self>);

    /// The input gradient of the pooling that gave `argmax`, for an input of `input` dims.
    fn max_pool2d_backward(
        dy: FloatTensor<Self>,
        argmax: IntTensor<Self>,
        kernel: [usize; 2],
        input: [usize; 4],
    ) -> FloatTensor<Self>;

    /// The gradients of [`OpsBackend::strata_batch_norm_train`] asked for by `want` = (dx,
    /// dgamma, dbeta), given the statistics it returned.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_gradients(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        epsilon: f64,
        want: [bool; 3],
    ) -> GradTriple<Self>;
}

fn dims4(t: &FlexTensor) -> [usize; 4] {
    let s = t.layout().shape();
    assert_eq!(s.num_dims(), 4, "strata conv: a 4-D tensor was expected, got {s:?}");
    [s[0], s[1], s[2], s[3]]
}

/// The tensor's values in row-major order (copied only when it is a strided view).
fn values(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match t.layout().contiguous_offsets() {
        Some((start, end)) => std::borrow::Cow::Borrowed(&t.storage::<f32>()[start..end]),
        None => {
            let c = t.to_contiguous();
            let (start, end) = c.layout().contiguous_offsets().expect("to_contiguous gives a contiguous layout");
            std::borrow::Cow::Owned(c.storage::<f32>()[start..end].to_vec())
        }
    }
}

/// `[n, c, plane]` of a tensor with at least two axes, `plane` the product of the others.
fn channels(t: &FlexTensor) -> [usize; 3] {
    let s = t.layout().shape();
    assert!(s.num_dims() >= 2, "strata batch norm: an input with a channel axis was expected, got {s:?}");
    let (n, c) = (s[0], s[1]);
    [n, c, s.num_elements() / (n * c).max(1)]
}

fn tensor(v: Vec<f32>, shape: &[usize]) -> FlexTensor {
    debug_assert_eq!(v.len(), shape.iter().product::<usize>());
    FlexTensor::new(Bytes::from_elems(v), Layout::contiguous(Shape::from(shape.to_vec())), DType::F32)
}

/// The geometry of a convolution from x `[n, c, h, w]` with weight `[o, c, kh, kw]`; output
/// sides by burn's own rule, so the two implementations cannot disagree on a shape.
pub fn conv_geometry(x: [usize; 4], w: [usize; 4], options: &ConvOptions<2>) -> Geometry {
    let [_, c, h, wd] = x;
    let [o, _, kh, kw] = w;
    let side = |i: usize, k: usize, size: usize| {
        calculate_conv_output_size_asymmetric(k, options.stride[i], options.padding[i], options.dilation[i], size)
    };
    Geometry {
        c,
        h,
        w: wd,
        o,
        ho: side(0, kh, h),
        wo: side(1, kw, wd),
        kernel: [kh, kw],
        stride: options.stride,
        pad: options.padding_begin(),
        dilation: options.dilation,
    }
}

/// The geometry of the convolution whose adjoint is a transposed convolution from x
/// `[n, in, h, w]` with weight `[in, out, kh, kw]`; output sides by burn's own rule.
pub fn conv_transpose_geometry(x: [usize; 4], w: [usize; 4], options: &ConvTransposeOptions<2>) -> Geometry {
    let [_, cin, hin, win] = x;
    let [_, cout, kh, kw] = w;
    let side = |i: usize, k: usize, size: usize| {
        calculate_conv_transpose_output_size(
            k,
            options.stride[i],
            options.padding[i],
            options.padding_out[i],
            options.dilation[i],
            size,
        )
    };
    Geometry {
        c: cout,
        h: side(0, kh, hin),
        w: side(1, kw, win),
        o: cin,
        ho: hin,
        wo: win,
        kernel: [kh, kw],
        stride: options.stride,
        pad: options.padding,
        dilation: options.dilation,
    }
}

fn wanted(want: [bool; 3]) -> Wanted {
    Wanted { dx: want[0], dw: want[1], db: want[2] }
}

impl OpsBackend for Flex {
    fn strata_conv2d(x: FlexTensor, w: FlexTensor, b: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
        let g = conv_geometry(dims4(&x), dims4(&w), &options);
        let n = dims4(&x)[0];
        let y = kernels::conv_forward(&g, n, &values(&x), &values(&w), Some(&values(&b)));
        tensor(y, &[n, g.o, g.ho, g.wo])
    }

    fn strata_conv_transpose2d(
        x: FlexTensor,
        w: FlexTensor,
        b: FlexTensor,
        options: ConvTransposeOptions<2>,
    ) -> FlexTensor {
        let g = conv_transpose_geometry(dims4(&x), dims4(&w), &options);
        let n = dims4(&x)[0];
        let y = kernels::conv_transpose_forward(&g, n, &values(&x), &values(&w), Some(&values(&b)));
        tensor(y, &[n, g.c, g.h, g.w])
    }

    fn strata_max_pool2d(x: FlexTensor, kernel: [usize; 2], relu: bool) -> FlexTensor {
        let [n, c, h, w] = dims4(&x);
        let (y, _) = pool::forward(&values(&x), n * c, h, w, kernel, relu, false);
        tensor(y, &[n, c, pool::pooled(h, kernel[0]), pool::pooled(w, kernel[1])])
    }

    fn strata_batch_norm_train(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let [_, c, plane] = channels(&x);
        let xv = values(&x);
        let s = norm::stats(&xv, c, plane);
        let y = norm::forward(&xv, c, plane, &s, &values(&gamma), &values(&beta), epsilon);
        (tensor(y, x.layout().shape()), tensor(s.mean, &[c]), tensor(s.var, &[c]))
    }
}

impl Kernels for Flex {
    fn conv_gradients(
        x: FlexTensor,
        w: FlexTensor,
        dy: FlexTensor,
        kind: ConvKind,
        want: [bool; 3],
    ) -> GradTriple<Self> {
        let (xd, wd) = (dims4(&x), dims4(&w));
        let (x, w, dy) = (values(&x), values(&w), values(&dy));
        let (grads, bias_len) = match &kind {
            ConvKind::Conv(options) => {
                let g = conv_geometry(xd, wd, options);
                (kernels::conv_backward(&g, xd[0], &x, &w, &dy, wanted(want)), g.o)
            }
            ConvKind::Transpose(options) => {
                let g = conv_transpose_geometry(xd, wd, options);
                (kernels::conv_transpose_backward(&g, xd[0], &x, &w, &dy, wanted(want)), g.c)
            }
        };
        (grads.dx.map(|v| tensor(v, &xd)), grads.dw.map(|v| tensor(v, &wd)), grads.db.map(|v| tensor(v, &[bias_len])))
    }

    fn max_pool2d_with_argmax(x: FlexTensor, kernel: [usize; 2], relu: bool) -> (FlexTensor, FlexTensor) {
        let [n, c, h, w] = dims4(&x);
        let (y, arg) = pool::forward(&values(&x), n * c, h, w, kernel, relu, true);
        let out = [n, c, pool::pooled(h, kernel[0]), pool::pooled(w, kernel[1])];
        let arg = FlexTensor::new(Bytes::from_elems(arg), Layout::contiguous(Shape::from(out.to_vec())), DType::I32);
        (tensor(y, &out), arg)
    }

    fn max_pool2d_backward(dy: FlexTensor, argmax: FlexTensor, kernel: [usize; 2], input: [usize; 4]) -> FlexTensor {
        let [n, c, h, w] = input;
        let (start, end) = argmax.layout().contiguous_offsets().expect("the argmax is made contiguous");
        let dx = pool::backward(&values(&dy), &argmax.storage::<i32>()[start..end], n * c, h, w, kernel);
        tensor(dx, &input)
    }

    fn batch_norm_gradients(
        x: FlexTensor,
        gamma: FlexTensor,
        mean: FlexTensor,
        var: FlexTensor,
        dy: FlexTensor,
        epsilon: f64,
        want: [bool; 3],
    ) -> GradTriple<Self> {
        let [_, c, plane] = channels(&x);
        let stats = norm::Stats { mean: values(&mean).into_owned(), var: values(&var).into_owned() };
        let g = norm::backward(&values(&x), &values(&dy), c, plane, &stats, &values(&gamma), epsilon, want[0]);
        (
            g.dx.map(|v| tensor(v, x.layout().shape())),
            want[1].then(|| tensor(g.dgamma, &[c])),
            want[2].then(|| tensor(g.dbeta, &[c])),
        )
    }
}

/// The ids of a three-parent node's parents that need a gradient (None where none is needed).
fn parent_ids<S>(ops: &Ops<S, 3>) -> [Option<NodeId>; 3] {
    ops.parents.each_ref().map(|p| p.as_ref().map(|node| node.id))
}

/// Registers each gradient computed for a parent in `ids` that needs one.
fn register_grads<B: Backend>(grads: &mut Gradients, ids: [Option<NodeId>; 3], computed: GradTriple<B>) {
    let (a, b, c) = computed;
    for (id, grad) in ids.into_iter().zip([a, b, c]) {
        if let (Some(id), Some(grad)) = (id, grad) {
            grads.register::<B>(id, grad);
        }
    }
}

/// Backward of [`OpsBackend::strata_conv2d`] and [`OpsBackend::strata_conv_transpose2d`]:
/// parents (x, w, b); x and w are kept, the bias is not needed.
#[derive(Debug)]
struct ConvBackward;

impl<B: Kernels> Backward<B, 3> for ConvBackward {
    type State = (NodeId, NodeId, ConvKind);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let ids = parent_ids(&ops);
        let dy = grads.consume::<B>(&ops.node);
        let (xid, wid, kind) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(xid);
        let w = checkpointer.retrieve_node_output::<FloatTensor<B>>(wid);
        let computed = B::conv_gradients(x, w, dy, kind, ids.map(|id| id.is_some()));
        register_grads::<B>(grads, ids, computed);
    }
}

/// A convolution of either kind as a graph node: `forward` on the inner backend, with its
/// backward recorded when anything needs a gradient.
fn conv_node<B: OpsBackend + Kernels, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    w: FloatTensor<Autodiff<B, C>>,
    b: FloatTensor<Autodiff<B, C>>,
    kind: ConvKind,
) -> FloatTensor<Autodiff<B, C>> {
    let forward = |x, w, b, kind: &ConvKind| match kind {
        ConvKind::Conv(options) => B::strata_conv2d(x, w, b, options.clone()),
        ConvKind::Transpose(options) => B::strata_conv_transpose2d(x, w, b, options.clone()),
    };
    match ConvBackward.prepare::<C>([x.node(), w.node(), b.node()]).compute_bound().stateful() {
        OpsKind::Tracked(mut prep) => {
            let (xid, wid) = (prep.checkpoint(&x), prep.checkpoint(&w));
            let y = forward(x.into_primitive(), w.into_primitive(), b.into_primitive(), &kind);
            prep.finish((xid, wid, kind), y)
        }
        OpsKind::UnTracked(prep) => {
            prep.finish(forward(x.into_primitive(), w.into_primitive(), b.into_primitive(), &kind))
        }
    }
}

/// Backward of [`OpsBackend::strata_max_pool2d`]: parent x.
#[derive(Debug)]
struct MaxPool2dBackward;

impl<B: Kernels> Backward<B, 1> for MaxPool2dBackward {
    type State = (IntTensor<B>, [usize; 2], [usize; 4]);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [nx] = ops.parents;
        let dy = grads.consume::<B>(&ops.node);
        let (argmax, kernel, input) = ops.state;
        if let Some(node) = nx {
            grads.register::<B>(node.id, B::max_pool2d_backward(dy, argmax, kernel, input));
        }
    }
}

/// Backward of [`OpsBackend::strata_batch_norm_train`]: parents (x, gamma, beta); x and gamma
/// are kept, the statistics come along as the forward pass computed them.
#[derive(Debug)]
struct BatchNormBackward;

impl<B: Kernels> Backward<B, 3> for BatchNormBackward {
    type State = (NodeId, NodeId, FloatTensor<B>, FloatTensor<B>, f64);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let ids = parent_ids(&ops);
        let dy = grads.consume::<B>(&ops.node);
        let (xid, gid, mean, var, epsilon) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(xid);
        let gamma = checkpointer.retrieve_node_output::<FloatTensor<B>>(gid);
        let computed = B::batch_norm_gradients(x, gamma, mean, var, dy, epsilon, ids.map(|id| id.is_some()));
        register_grads::<B>(grads, ids, computed);
    }
}

impl<B: OpsBackend + Kernels, C: CheckpointStrategy> OpsBackend for Autodiff<B, C> {
    fn strata_conv2d(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        conv_node::<B, C>(x, w, b, ConvKind::Conv(options))
    }

    fn strata_conv_transpose2d(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        options: ConvTransposeOptions<2>,
    ) -> FloatTensor<Self> {
        conv_node::<B, C>(x, w, b, ConvKind::Transpose(options))
    }

    fn strata_max_pool2d(x: FloatTensor<Self>, kernel: [usize; 2], relu: bool) -> FloatTensor<Self> {
        match MaxPool2dBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let s = x.primitive().shape();
                let input = [s[0], s[1], s[2], s[3]];
                let (y, argmax) = B::max_pool2d_with_argmax(x.into_primitive(), kernel, relu);
                prep.finish((argmax, kernel, input), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::strata_max_pool2d(x.into_primitive(), kernel, relu)),
        }
    }

    fn strata_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let prep = BatchNormBackward.prepare::<C>([x.node(), gamma.node(), beta.node()]).compute_bound().stateful();
        let forward = |x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>| {
            B::strata_batch_norm_train(x.into_primitive(), gamma.into_primitive(), beta.into_primitive(), epsilon)
        };
        match prep {
            OpsKind::Tracked(mut prep) => {
                let (xid, gid) = (prep.checkpoint(&x), prep.checkpoint(&gamma));
                let (y, mean, var) = forward(x, gamma, beta);
                let y = prep.finish((xid, gid, mean.clone(), var.clone(), epsilon), y);
                (y, Self::from_inner(mean), Self::from_inner(var))
            }
            OpsKind::UnTracked(prep) => {
                let (y, mean, var) = forward(x, gamma, beta);
                (prep.finish(y), Self::from_inner(mean), Self::from_inner(var))
            }
        }
    }
}
