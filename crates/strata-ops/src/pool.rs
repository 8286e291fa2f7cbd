//! Non-overlapping max pooling (kernel = stride, no padding, floor) on raw NCHW `f32` planes,
//! optionally fused with the ReLU before it: `max(0, max(window)) = max(window of relu(x))`,
//! so one pass replaces two and the activation's full-size map is never written.
//!
//! burn-flex 0.22 pools through a generic 3-D loop that recomputes every index with divisions;
//! on strata's REF-CAE step that loop alone took about a third of the time.

use rayon::prelude::*;

/// The argmax of a window that passes no gradient (ReLU cut it off).
pub const NO_GRADIENT: i32 = -1;

/// Planes per rayon task: a plane of a small map is too little work on its own.
const PLANES_PER_TASK: usize = 8;

/// Output side of a pooled side.
pub fn pooled(side: usize, k: usize) -> usize {
    side / k
}

/// Pools `x` (`planes` planes of `h` x `w`) with a `k` window; returns the pooled planes and,
/// when `with_argmax`, each output's source index within its plane (first maximum in window
/// order; NaN wins, as in burn; [`NO_GRADIENT`] where `relu` clipped the output to zero).
pub fn forward(
    x: &[f32],
    planes: usize,
    h: usize,
    w: usize,
    k: [usize; 2],
    relu: bool,
    with_argmax: bool,
) -> (Vec<f32>, Vec<i32>) {
    let (ho, wo) = (pooled(h, k[0]), pooled(w, k[1]));
    let (pin, pout) = (h * w, ho * wo);
    let mut y = vec![0.0f32; planes * pout];
    let mut arg = vec![0i32; if with_argmax { planes * pout } else { 0 }];
    if pout == 0 || planes == 0 {
        return (y, arg);
    }
    let plane = |xp: &[f32], yp: &mut [f32], ap: Option<&mut [i32]>| {
        if k == [2, 2] {
            return pool2x2(xp, w, ho, wo, relu, yp, ap);
        }
        let mut ap = ap;
        for oh in 0..ho {
            for ow in 0..wo {
                let (mut best, mut at) = (f32::NEG_INFINITY, (oh * k[0]) * w + ow * k[1]);
                for ki in 0..k[0] {
                    let row = (oh * k[0] + ki) * w + ow * k[1];
                    for (kj, &v) in xp[row..row + k[1]].iter().enumerate() {
                        if wins(v, best) {
                            best = v;
                            at = row + kj;
                        }
                    }
                }
                let o = oh * wo + ow;
                let clipped = relu && best <= 0.0;
                yp[o] = if clipped { 0.0 } else { best };
                if let Some(ap) = ap.as_deref_mut() {
                    ap[o] = if clipped { NO_GRADIENT } else { at as i32 };
                }
            }
        }
    };
    let per = PLANES_PER_TASK;
    if with_argmax {
        y.par_chunks_mut(pout * per).zip(arg.par_chunks_mut(pout * per)).zip(x.par_chunks(pin * per)).for_each(
            |((ys, as_), xs)| {
                for ((yp, ap), xp) in ys.chunks_mut(pout).zip(as_.chunks_mut(pout)).zip(xs.chunks(pin)) {
                    plane(xp, yp, Some(ap));
                }
            },
        );
    } else {
        y.par_chunks_mut(pout * per).zip(x.par_chunks(pin * per)).for_each(|(ys, xs)| {
            for (yp, xp) in ys.chunks_mut(pout).zip(xs.chunks(pin)) {
                plane(xp, yp, None);
            }
        });
    }
    (y, arg)
}

/// `a` replaces `b` as the maximum: greater, or a NaN over a number (a NaN must reach the
/// loss, where divergence is caught). Written without branches: the comparison of random
/// activations is a coin flip the branch predictor loses.
#[inline(always)]
fn wins(a: f32, b: f32) -> bool {
    (a > b) | (a.is_nan() & !b.is_nan())
}

/// `if c { a } else { b }` on bits: a select the compiler cannot turn back into a branch.
#[inline(always)]
fn pick(c: bool, a: f32, b: f32) -> f32 {
    let m = (c as u32).wrapping_neg();
    f32::from_bits((a.to_bits() & m) | (b.to_bits() & !m))
}

/// [`pick`] for indices.
#[inline(always)]
fn pick_index(c: bool, a: i32, b: i32) -> i32 {
    let m = -(c as i32);
    (a & m) | (b & !m)
}

/// The 2 x 2 window of every convolutional block without a branch: comparing random
/// activations is a coin flip the branch predictor loses (branchy code took 16 ns per output
/// in a real step, four times the whole rest of the pass).
fn pool2x2(xp: &[f32], w: usize, ho: usize, wo: usize, relu: bool, yp: &mut [f32], mut ap: Option<&mut [i32]>) {
    let wi = w as i32;
    for oh in 0..ho {
        let r0 = &xp[2 * oh * w..][..2 * wo];
        let r1 = &xp[(2 * oh + 1) * w..][..2 * wo];
        let ys = &mut yp[oh * wo..][..wo];
        let base = (2 * oh * w) as i32;
        for (ow, ((y, p0), p1)) in ys.iter_mut().zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2)).enumerate() {
            let c0 = wins(p0[1], p0[0]);
            let (t, tb) = (pick(c0, p0[1], p0[0]), c0 as i32);
            let c1 = wins(p1[1], p1[0]);
            let (b, bb) = (pick(c1, p1[1], p1[0]), wi + c1 as i32);
            let c = wins(b, t);
            let (m, mi) = (pick(c, b, t), pick_index(c, bb, tb));
            let clipped = relu & (m <= 0.0);
            *y = pick(clipped, 0.0, m);
            if let Some(ap) = ap.as_deref_mut() {
                ap[oh * wo + ow] = pick_index(clipped, NO_GRADIENT, base + 2 * ow as i32 + mi);
            }
        }
    }
}

/// The input gradient of [`forward`]: each output's gradient goes to its argmax (windows do
/// not overlap, so no input receives two).
pub fn backward(dy: &[f32], arg: &[i32], planes: usize, h: usize, w: usize, k: [usize; 2]) -> Vec<f32> {
    let (pin, pout) = (h * w, pooled(h, k[0]) * pooled(w, k[1]));
    let mut dx = vec![0.0f32; planes * pin];
    if pout == 0 || planes == 0 {
        return dx;
    }
    let per = PLANES_PER_TASK;
    dx.par_chunks_mut(pin * per).zip(dy.par_chunks(pout * per).zip(arg.par_chunks(pout * per))).for_each(
        |(dxs, (dys, args))| {
            for (dxp, (dyp, ap)) in dxs.chunks_mut(pin).zip(dys.chunks(pout).zip(args.chunks(pout))) {
                for (&g, &a) in dyp.iter().zip(ap) {
                    if a >= 0 {
                        dxp[a as usize] = g;
                    }
                }
            }
        },
    );
    dx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_by_two_pooling_by_hand() {
        // one plane 4 x 5 (the last column is dropped by the floor)
        #[rustfmt::skip]
        let x = [
            1.0, 2.0,  -1.0, -2.0, 9.0,
            3.0, 0.5,  -3.0, -0.5, 9.0,
            -1.0, -1.0, 4.0, 4.0, 9.0,
            -1.0, -2.0, 1.0, 5.0, 9.0,
        ];
        let (y, arg) = forward(&x, 1, 4, 5, [2, 2], false, true);
        assert_eq!(y, vec![3.0, -0.5, -1.0, 5.0]);
        // ties go to the first in window order (-1 at index 10 before 11)
        assert_eq!(arg, vec![5, 8, 10, 18]);
        let (yr, argr) = forward(&x, 1, 4, 5, [2, 2], true, true);
        assert_eq!(yr, vec![3.0, 0.0, 0.0, 5.0]);
        assert_eq!(argr, vec![5, NO_GRADIENT, NO_GRADIENT, 18]);
        let dx = backward(&[1.0, 2.0, 3.0, 4.0], &argr, 1, 4, 5, [2, 2]);
        let mut want = vec![0.0; 20];
        want[5] = 1.0;
        want[18] = 4.0;
        assert_eq!(dx, want);
        // without argmax the values are the same
        assert_eq!(forward(&x, 1, 4, 5, [2, 2], true, false).0, yr);
    }

    #[test]
    fn a_nan_in_a_window_comes_out() {
        let x = [1.0, f32::NAN, 2.0, 3.0];
        for relu in [false, true] {
            let (y, arg) = forward(&x, 1, 2, 2, [2, 2], relu, true);
            assert!(y[0].is_nan(), "relu {relu}");
            assert_eq!(arg[0], 1);
        }
    }

    #[test]
    fn many_planes_in_parallel_equal_one_at_a_time() {
        let (planes, h, w) = (37, 6, 7);
        let x: Vec<f32> = (0..planes * h * w).map(|i| ((i * 7919) % 101) as f32 - 50.0).collect();
        let (y, arg) = forward(&x, planes, h, w, [2, 2], true, true);
        for p in 0..planes {
            let (yp, ap) = forward(&x[p * h * w..][..h * w], 1, h, w, [2, 2], true, true);
            assert_eq!(&y[p * 9..][..9], &yp[..]);
            assert_eq!(&arg[p * 9..][..9], &ap[..]);
        }
    }
}
