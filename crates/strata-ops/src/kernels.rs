//! Convolution and transposed convolution, forward and backward, on raw NCHW `f32` slices:
//! per-image im2col / col2im and matrix products of the `gemm` crate, one rayon task per image.
//!
//! Every sum over images (weight and bias gradients) runs over a fixed partition of the batch
//! into [`CHUNKS`] ranges added in order, so results are the same bytes whatever the thread
//! count or the order rayon runs the tasks in.

use crate::geometry::Geometry;
use rayon::prelude::*;
use std::cell::Cell;

/// The batch is cut into at most this many ranges for the gradient sums: enough to keep two to
/// sixteen threads busy, few enough that adding the partial sums costs nothing.
pub const CHUNKS: usize = 16;

/// The gradients of one convolution call; a gradient nobody asked for is `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct Grads {
    /// gradient of the operation's input
    pub dx: Option<Vec<f32>>,
    /// gradient of the weight, in the weight's own layout
    pub dw: Option<Vec<f32>>,
    /// gradient of the bias
    pub db: Option<Vec<f32>>,
}

/// Which gradients to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    /// the input's (skipped for the first layer and frozen stacks below)
    pub dx: bool,
    /// the weight's (skipped for frozen layers)
    pub dw: bool,
    /// the bias's
    pub db: bool,
}

/// A logical `rows` x `cols` matrix over a slice, stored row-major either as it is or as its
/// transpose (`cols` x `rows`), so a transposed operand costs no copy.
#[derive(Clone, Copy)]
struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    transposed: bool,
}

impl<'a> Mat<'a> {
    fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self { data, rows, cols, transposed: false }
    }

    /// The transpose of the row-major `cols` x `rows` matrix in `data`.
    fn t(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self { data, rows, cols, transposed: true }
    }

    /// (column stride, row stride) of the logical matrix.
    fn strides(&self) -> (isize, isize) {
        if self.transposed { (self.rows as isize, 1) } else { (1, self.cols as isize) }
    }
}

/// `dst = lhs · rhs`, or `dst += lhs · rhs` with `accumulate`; `dst` is row-major.
fn matmul(dst: &mut [f32], accumulate: bool, lhs: Mat, rhs: Mat, threads: gemm::Parallelism) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(rhs.rows, k, "inner dimensions");
    assert!(lhs.data.len() >= m * k && rhs.data.len() >= k * n && dst.len() >= m * n, "operand lengths");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    let (lcs, lrs) = lhs.strides();
    let (rcs, rrs) = rhs.strides();
    // SAFETY: the asserts above keep every index the strides reach inside the three slices, and
    // `dst` is borrowed mutably, so it aliases neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.data.as_ptr(),
            lcs,
            lrs,
            rhs.data.as_ptr(),
            rcs,
            rrs,
            1.0,
            1.0,
            false,
            false,
            false,
            threads,
        )
    }
}

thread_local! {
    /// Each worker's im2col buffer, grown to the largest image it has seen and kept: no
    /// allocation per image or per step.
    static SCRATCH: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch buffer of `len` elements (contents unspecified). The
/// buffer is taken out while `f` runs: a thread that waits inside a parallel product may run
/// another image's task, whose own call then works in a fresh buffer instead of this one.
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut buf = SCRATCH.take();
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    let r = f(&mut buf[..len]);
    SCRATCH.set(buf);
    r
}

/// Runs `f` on the im2col matrix of one image (`g.k()` x `g.p()`): the image itself for a
/// pointwise convolution, else the matrix written into this thread's scratch.
fn with_cols<R>(g: &Geometry, img: &[f32], f: impl FnOnce(&[f32]) -> R) -> R {
    if g.is_pointwise() {
        return f(img);
    }
    with_scratch(g.k() * g.p(), |cols| {
        g.im2col(img, cols);
        f(cols)
    })
}

/// Lets `f` overwrite an im2col-shaped matrix and adds it into the image `out` (col2im); a
/// pointwise convolution's `f` writes `out` itself.
fn into_image(g: &Geometry, out: &mut [f32], f: impl FnOnce(&mut [f32])) {
    if g.is_pointwise() {
        return f(out);
    }
    with_scratch(g.k() * g.p(), |cols| {
        f(cols);
        g.col2im_add(cols, out);
    });
}

/// Parallelism inside one matrix product: none when the images alone fill the threads.
fn inner_threads(images: usize) -> gemm::Parallelism {
    if images >= rayon::current_num_threads() { gemm::Parallelism::None } else { gemm::Parallelism::Rayon(0) }
}

/// The fixed partition of `n` images into at most [`CHUNKS`] consecutive ranges.
fn chunks(n: usize) -> Vec<std::ops::Range<usize>> {
    let parts = n.clamp(1, CHUNKS);
    (0..parts).map(|i| i * n / parts..(i + 1) * n / parts).filter(|r| !r.is_empty()).collect()
}

/// Adds per-chunk partial sums in chunk order.
fn sum_in_order(partials: Vec<Vec<f32>>, len: usize) -> Vec<f32> {
    let mut out = vec![0.0; len];
    for p in partials {
        for (o, v) in out.iter_mut().zip(&p) {
            *o += *v;
        }
    }
    out
}

/// Adds `bias[ch]` to every pixel of channel `ch` of one image.
fn add_bias(img: &mut [f32], bias: &[f32]) {
    let plane = img.len() / bias.len();
    for (row, b) in img.chunks_exact_mut(plane).zip(bias) {
        row.iter_mut().for_each(|v| *v += *b);
    }
}

/// Adds the per-channel sums of one image to `acc`.
fn add_channel_sums(acc: &mut [f32], img: &[f32]) {
    let plane = img.len() / acc.len();
    for (a, row) in acc.iter_mut().zip(img.chunks_exact(plane)) {
        *a += row.iter().sum::<f32>();
    }
}

/// Convolution: `x` is `n` images of `g.input_len()`, `w` is OIHW (`g.o` x `g.k()`), `b` has
/// `g.o` values; returns `n` images of `g.output_len()`.
pub fn conv_forward(g: &Geometry, n: usize, x: &[f32], w: &[f32], b: Option<&[f32]>) -> Vec<f32> {
    let (k, p) = (g.k(), g.p());
    let mut y = vec![0.0; n * g.output_len()];
    if n == 0 || g.output_len() == 0 {
        return y;
    }
    let threads = inner_threads(n);
    let weight = Mat::new(w, g.o, k);
    y.par_chunks_mut(g.output_len()).zip(x.par_chunks(g.input_len())).for_each(|(yi, xi)| {
        with_cols(g, xi, |cols| matmul(yi, false, weight, Mat::new(cols, k, p), threads));
        if let Some(b) = b {
            add_bias(yi, b);
        }
    });
    y
}

/// Gradients of [`conv_forward`] given the output's gradient `dy`.
pub fn conv_backward(g: &Geometry, n: usize, x: &[f32], w: &[f32], dy: &[f32], want: Wanted) -> Grads {
    let (k, p) = (g.k(), g.p());
    let threads = inner_threads(n);
    let dx = want.dx.then(|| {
        let mut dx = vec![0.0; n * g.input_len()];
        if n == 0 || g.input_len() == 0 {
            return dx;
        }
        let wt = Mat::t(w, k, g.o);
        dx.par_chunks_mut(g.input_len()).zip(dy.par_chunks(g.output_len())).for_each(|(dxi, dyi)| {
            into_image(g, dxi, |dcols| matmul(dcols, false, wt, Mat::new(dyi, g.o, p), threads));
        });
        dx
    });
    let (dw, db) = weight_and_bias_grads(n, want, g.o, g.o * k, |i, dw, db| {
        let dyi = &dy[i * g.output_len()..][..g.output_len()];
        if let Some(dw) = dw {
            let xi = &x[i * g.input_len()..][..g.input_len()];
            with_cols(g, xi, |cols| matmul(dw, true, Mat::new(dyi, g.o, p), Mat::t(cols, p, k), threads));
        }
        if let Some(db) = db {
            add_channel_sums(db, dyi);
        }
    });
    Grads { dx, dw, db }
}

/// Transposed convolution, the adjoint of the convolution `g`: `x` is `n` images of
/// `g.output_len()` (`g.o` channels), `w` is `[g.o, g.c, kh, kw]` (burn's layout for a
/// transposed convolution), `b` has `g.c` values; returns `n` images of `g.input_len()`.
pub fn conv_transpose_forward(g: &Geometry, n: usize, x: &[f32], w: &[f32], b: Option<&[f32]>) -> Vec<f32> {
    let (k, p) = (g.k(), g.p());
    let mut y = vec![0.0; n * g.input_len()];
    if n == 0 || g.input_len() == 0 {
        return y;
    }
    let threads = inner_threads(n);
    let wt = Mat::t(w, k, g.o);
    y.par_chunks_mut(g.input_len()).zip(x.par_chunks(g.output_len())).for_each(|(yi, xi)| {
        into_image(g, yi, |cols| matmul(cols, false, wt, Mat::new(xi, g.o, p), threads));
        if let Some(b) = b {
            add_bias(yi, b);
        }
    });
    y
}

/// Gradients of [`conv_transpose_forward`] given the output's gradient `dy`.
pub fn conv_transpose_backward(g: &Geometry, n: usize, x: &[f32], w: &[f32], dy: &[f32], want: Wanted) -> Grads {
    let (k, p) = (g.k(), g.p());
    let threads = inner_threads(n);
    let weight = Mat::new(w, g.o, k);
    let dx = want.dx.then(|| {
        let mut dx = vec![0.0; n * g.output_len()];
        if n == 0 || g.output_len() == 0 {
            return dx;
        }
        dx.par_chunks_mut(g.output_len()).zip(dy.par_chunks(g.input_len())).for_each(|(dxi, dyi)| {
            with_cols(g, dyi, |cols| matmul(dxi, false, weight, Mat::new(cols, k, p), threads));
        });
        dx
    });
    let (dw, db) = weight_and_bias_grads(n, want, g.c, g.o * k, |i, dw, db| {
        let dyi = &dy[i * g.input_len()..][..g.input_len()];
        if let Some(dw) = dw {
            let xi = &x[i * g.output_len()..][..g.output_len()];
            with_cols(g, dyi, |cols| matmul(dw, true, Mat::new(xi, g.o, p), Mat::t(cols, p, k), threads));
        }
        if let Some(db) = db {
            add_channel_sums(db, dyi);
        }
    });
    Grads { dx, dw, db }
}

/// Sums per-image weight and bias gradients over the batch: `image(i, dw, db)` adds image i's
/// share into the partial sums of its chunk; chunks run in parallel and are added in order.
fn weight_and_bias_grads(
    n: usize,
    want: Wanted,
    bias_len: usize,
    weight_len: usize,
    image: impl Fn(usize, Option<&mut [f32]>, Option<&mut [f32]>) + Sync,
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    if !want.dw && !want.db {
        return (None, None);
    }
    let partials: Vec<(Vec<f32>, Vec<f32>)> = chunks(n)
        .into_par_iter()
        .map(|range| {
            let mut dw = vec![0.0; if want.dw { weight_len } else { 0 }];
            let mut db = vec![0.0; if want.db { bias_len } else { 0 }];
            for i in range {
                image(i, want.dw.then_some(&mut dw[..]), want.db.then_some(&mut db[..]));
            }
            (dw, db)
        })
        .collect();
    let (pw, pb): (Vec<_>, Vec<_>) = partials.into_iter().unzip();
    (want.dw.then(|| sum_in_order(pw, weight_len)), want.db.then(|| sum_in_order(pb, bias_len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len).map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 17) as f32 / 8.0 - 1.0).collect()
    }

    /// The convolution by its definition, in f64.
    fn naive_conv(g: &Geometry, n: usize, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f64> {
        let mut y = vec![0.0f64; n * g.output_len()];
        for i in 0..n {
            for o in 0..g.o {
                for oh in 0..g.ho {
                    for ow in 0..g.wo {
                        let mut s = b[o] as f64;
                        for c in 0..g.c {
                            for ki in 0..g.kernel[0] {
                                for kj in 0..g.kernel[1] {
                                    let ih = (oh * g.stride[0] + ki * g.dilation[0]) as isize - g.pad[0] as isize;
                                    let iw = (ow * g.stride[1] + kj * g.dilation[1]) as isize - g.pad[1] as isize;
                                    if ih >= 0 && iw >= 0 && (ih as usize) < g.h && (iw as usize) < g.w {
                                        let xv = x[i * g.input_len() + (c * g.h + ih as usize) * g.w + iw as usize];
                                        let wv = w[((o * g.c + c) * g.kernel[0] + ki) * g.kernel[1] + kj];
                                        s += xv as f64 * wv as f64;
                                    }
                                }
                            }
                        }
                        y[i * g.output_len() + (o * g.ho + oh) * g.wo + ow] = s;
                    }
                }
            }
        }
        y
    }

    fn geometries() -> Vec<Geometry> {
        let g = |c, h, w, o, k: usize, s: usize, p: usize| Geometry {
            c,
            h,
            w,
            o,
            ho: (h + 2 * p - k) / s + 1,
            wo: (w + 2 * p - k) / s + 1,
            kernel: [k, k],
            stride: [s, s],
            pad: [p, p],
            dilation: [1, 1],
        };
        vec![
            g(3, 7, 5, 4, 3, 1, 1),
            g(2, 9, 9, 3, 3, 2, 1),
            g(4, 6, 6, 5, 1, 1, 0),
            g(1, 8, 8, 2, 2, 2, 0),
            g(3, 5, 8, 2, 3, 2, 0),
        ]
    }

    fn close(a: &[f32], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((*x as f64 - y).abs() <= 1e-4 * (1.0 + y.abs()), "element {i}: {x} vs {y}");
        }
    }

    #[test]
    fn forward_equals_the_definition() {
        for g in geometries() {
            let n = 3;
            let (x, w, b) = (values(n * g.input_len(), 1), values(g.o * g.k(), 2), values(g.o, 3));
            close(&conv_forward(&g, n, &x, &w, Some(&b)), &naive_conv(&g, n, &x, &w, &b));
        }
    }

    /// Gradients by the adjoint identity: for the linear map y = conv(x, w), <dy, y(x)> is
    /// linear in x and in w, so each gradient must reproduce it through a dot product.
    #[test]
    fn gradients_satisfy_the_adjoint_identities() {
        for g in geometries() {
            let n = 3;
            let (x, w, dy) = (values(n * g.input_len(), 4), values(g.o * g.k(), 5), values(n * g.output_len(), 6));
            let all = Wanted { dx: true, dw: true, db: true };
            let grads = conv_backward(&g, n, &x, &w, &dy, all);
            let y = conv_forward(&g, n, &x, &w, None);
            let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(p, q)| *p as f64 * *q as f64).sum::<f64>();
            let lhs = dot(&dy, &y);
            let (dx, dw, db) = (grads.dx.unwrap(), grads.dw.unwrap(), grads.db.unwrap());
            assert!((lhs - dot(&dx, &x)).abs() < 1e-3 * (1.0 + lhs.abs()), "dx {g:?}");
            assert!((lhs - dot(&dw, &w)).abs() < 1e-3 * (1.0 + lhs.abs()), "dw {g:?}");
            let total: f64 = dy.iter().map(|v| *v as f64).sum();
            assert!((db.iter().map(|v| *v as f64).sum::<f64>() - total).abs() < 1e-3, "db {g:?}");

            // the transposed convolution is the adjoint: its forward is conv's dx, and its dx is conv's forward
            let t = conv_transpose_forward(&g, n, &dy, &w, None);
            assert_eq!(t, dx, "transposed forward = conv input gradient {g:?}");
            let tg = conv_transpose_backward(&g, n, &dy, &w, &x, all);
            assert_eq!(tg.dx.unwrap(), y, "transposed input gradient = conv forward {g:?}");
        }
    }

    #[test]
    fn sums_over_the_batch_do_not_depend_on_the_thread_count() {
        let g = geometries()[0];
        let n = 37;
        let (x, w, dy) = (values(n * g.input_len(), 7), values(g.o * g.k(), 8), values(n * g.output_len(), 9));
        let all = Wanted { dx: true, dw: true, db: true };
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let three = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let a = one.install(|| conv_backward(&g, n, &x, &w, &dy, all));
        let b = three.install(|| conv_backward(&g, n, &x, &w, &dy, all));
        assert_eq!(a, b);
    }

    #[test]
    fn unwanted_gradients_are_not_computed() {
        let g = geometries()[1];
        let (x, w, dy) = (values(2 * g.input_len(), 1), values(g.o * g.k(), 2), values(2 * g.output_len(), 3));
        let only_dw = conv_backward(&g, 2, &x, &w, &dy, Wanted { dx: false, dw: true, db: false });
        assert!(only_dw.dx.is_none() && only_dw.db.is_none() && only_dw.dw.is_some());
        let only_dx = conv_transpose_backward(&g, 2, &dy, &w, &x, Wanted { dx: true, dw: false, db: false });
        assert!(only_dx.dw.is_none() && only_dx.db.is_none() && only_dx.dx.is_some());
    }

    #[test]
    fn scratch_can_be_entered_again_on_the_same_thread() {
        // what happens when a thread waiting inside a parallel product runs another image's task
        with_scratch(4, |outer| {
            outer.fill(1.0);
            with_scratch(8, |inner| inner.fill(2.0));
            assert_eq!(outer, &[1.0; 4], "the inner call must not write the outer buffer");
        });
    }

    #[test]
    fn chunks_cover_the_batch_once_in_order() {
        for n in [0, 1, 5, 16, 17, 64, 1000] {
            let c = chunks(n);
            assert!(c.len() <= CHUNKS);
            assert_eq!(c.iter().map(|r| r.len()).sum::<usize>(), n);
            assert!(c.windows(2).all(|w| w[0].end == w[1].start));
        }
    }
}
