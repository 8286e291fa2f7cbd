//! Batch normalisation in training mode on raw `[n, c, plane]` `f32` slices (NCHW maps with
//! `plane = h * w`, or `[n, c]` features with `plane = 1`): the batch statistics, the
//! normalised output and the gradients, each in one pass over the data.
//!
//! burn 0.22's default `batch_norm_train` (which flex keeps) swaps the batch and channel axes
//! and copies the whole map to reduce it, twice in the forward pass and twice in the backward,
//! then runs about ten element-wise passes; on `cluster`'s batch-norm backbone those copies
//! alone took a fifth of the train step.

use rayon::prelude::*;

/// Per-channel batch statistics: the mean and the biased variance (what burn returns and feeds
/// its running statistics).
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    /// mean per channel
    pub mean: Vec<f32>,
    /// biased variance per channel
    pub var: Vec<f32>,
}

/// The `plane`-long runs of channel `ch` in `x`, one per image.
fn planes_of(x: &[f32], c: usize, plane: usize, ch: usize) -> impl Iterator<Item = &[f32]> {
    x.chunks_exact(c * plane).map(move |img| &img[ch * plane..(ch + 1) * plane])
}

/// Lanes of the partial sums: 16 independent f32 accumulators vectorise (one AVX-512 register)
/// where a single running sum is a chain of dependent scalar adds.
const LANES: usize = 16;

/// `sum(f(a[i], b[i]))` over one plane in f32 lanes, returned as f64 (planes are at most a few
/// thousand values; the sum over planes is taken in f64).
fn lane_sum(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f64 {
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (xa, xb) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += f(xa[i], xb[i]);
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(&x, &y)| f(x, y)).sum();
    acc.iter().map(|&v| f64::from(v)).sum::<f64>() + f64::from(tail)
}

/// The mean and biased variance of every channel (two passes: the variance of values far from
/// zero stays exact where one-pass sums of squares cancel).
pub fn stats(x: &[f32], c: usize, plane: usize) -> Stats {
    let m = (x.len() / c.max(1)) as f64;
    let (mean, var): (Vec<f32>, Vec<f32>) = (0..c)
        .into_par_iter()
        .map(|ch| {
            let sum: f64 = planes_of(x, c, plane, ch).map(|p| lane_sum(p, p, |v, _| v)).sum();
            let mean = (sum / m) as f32;
            let sq: f64 = planes_of(x, c, plane, ch)
                .map(|p| {
                    lane_sum(p, p, |v, _| {
                        let d = v - mean;
                        d * d
                    })
                })
                .sum();
            (mean, (sq / m) as f32)
        })
        .unzip();
    Stats { mean, var }
}

/// `1 / sqrt(var + eps)` per channel.
fn inv_std(var: &[f32], epsilon: f64) -> Vec<f32> {
    var.iter().map(|&v| (1.0 / (f64::from(v) + epsilon).sqrt()) as f32).collect()
}

/// `gamma * (x - mean) / sqrt(var + eps) + beta`, channel by channel.
pub fn forward(x: &[f32], c: usize, plane: usize, s: &Stats, gamma: &[f32], beta: &[f32], epsilon: f64) -> Vec<f32> {
    let inv = inv_std(&s.var, epsilon);
    let scale: Vec<f32> = gamma.iter().zip(&inv).map(|(g, i)| g * i).collect();
    let mut y = vec![0.0f32; x.len()];
    y.par_chunks_mut(c * plane).zip(x.par_chunks(c * plane)).for_each(|(yi, xi)| {
        for ch in 0..c {
            let (mean, a, b) = (s.mean[ch], scale[ch], beta[ch]);
            let r = ch * plane..(ch + 1) * plane;
            for (o, &v) in yi[r.clone()].iter_mut().zip(&xi[r]) {
                *o = (v - mean) * a + b;
            }
        }
    });
    y
}

/// The gradients asked for of the input, `gamma` and `beta`, given the output's gradient `dy`
/// and the statistics of the forward pass.
pub struct Grads {
    /// input gradient, when asked for
    pub dx: Option<Vec<f32>>,
    /// `gamma` gradient (`sum(dy * x_hat)` per channel)
    pub dgamma: Vec<f32>,
    /// `beta` gradient (`sum(dy)` per channel)
    pub dbeta: Vec<f32>,
}

/// Backward of [`forward`]: `dx = gamma / std * (dy - mean(dy) - x_hat * mean(dy * x_hat))`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    x: &[f32],
    dy: &[f32],
    c: usize,
    plane: usize,
    s: &Stats,
    gamma: &[f32],
    epsilon: f64,
    want_dx: bool,
) -> Grads {
    let m = (x.len() / c.max(1)) as f64;
    let inv = inv_std(&s.var, epsilon);
    let (dbeta, dgamma): (Vec<f32>, Vec<f32>) = (0..c)
        .into_par_iter()
        .map(|ch| {
            let mean = s.mean[ch];
            let (mut sdy, mut sdyx) = (0.0f64, 0.0f64);
            for (xp, dp) in planes_of(x, c, plane, ch).zip(planes_of(dy, c, plane, ch)) {
                sdy += lane_sum(dp, dp, |d, _| d);
                sdyx += lane_sum(xp, dp, |v, d| d * (v - mean));
            }
            (sdy as f32, (sdyx * f64::from(inv[ch])) as f32)
        })
        .unzip();
    let dx = want_dx.then(|| {
        // dx = a * dy + b * x + k per channel, the three folded from the formula above
        let coef: Vec<(f32, f32, f32)> = (0..c)
            .map(|ch| {
                let (g, i, mean) = (f64::from(gamma[ch]), f64::from(inv[ch]), f64::from(s.mean[ch]));
                let (mdy, mdyx) = (f64::from(dbeta[ch]) / m, f64::from(dgamma[ch]) / m);
                let a = g * i;
                let b = -a * mdyx * i;
                let k = -a * mdy - b * mean;
                (a as f32, b as f32, k as f32)
            })
            .collect();
        let mut dx = vec![0.0f32; x.len()];
        dx.par_chunks_mut(c * plane).zip(x.par_chunks(c * plane)).zip(dy.par_chunks(c * plane)).for_each(
            |((gi, xi), di)| {
                for (ch, &(a, b, k)) in coef.iter().enumerate() {
                    let r = ch * plane..(ch + 1) * plane;
                    for ((o, &v), &d) in gi[r.clone()].iter_mut().zip(&xi[r.clone()]).zip(&di[r]) {
                        *o = a * d + b * v + k;
                    }
                }
            },
        );
        dx
    });
    Grads { dx, dgamma, dbeta }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_and_output_by_hand() {
        // two images, two channels of two pixels: channel 0 holds 1, 2 | 3, 4; channel 1 holds
        // 10 everywhere (zero variance)
        let x = [1.0, 2.0, 10.0, 10.0, 3.0, 4.0, 10.0, 10.0];
        let s = stats(&x, 2, 2);
        assert_eq!(s.mean, vec![2.5, 10.0]);
        assert_eq!(s.var, vec![1.25, 0.0]);
        let y = forward(&x, 2, 2, &s, &[2.0, 1.0], &[0.5, -1.0], 1e-5);
        let k = 2.0 / (1.25f32 + 1e-5).sqrt();
        // a constant channel normalises to its beta
        let expect = [-1.5 * k + 0.5, -0.5 * k + 0.5, -1.0, -1.0, 0.5 * k + 0.5, 1.5 * k + 0.5, -1.0, -1.0];
        for (got, want) in y.iter().zip(expect) {
            assert!((got - want).abs() < 1e-5, "{y:?}");
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let (n, c, plane) = (3, 2, 4);
        let x: Vec<f32> = (0..n * c * plane).map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.3).collect();
        let dy: Vec<f32> = (0..x.len()).map(|i| ((i * 13 % 7) as f32 - 3.0) * 0.2).collect();
        let (gamma, beta, eps) = ([1.5f32, -0.7], [0.2f32, 0.1], 1e-5);
        // the loss sum(dy * y) as a function of x and gamma, in f64 through f32 kernels
        let loss = |x: &[f32], gamma: &[f32]| -> f64 {
            let y = forward(x, c, plane, &stats(x, c, plane), gamma, &beta, eps);
            y.iter().zip(&dy).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum()
        };
        let g = backward(&x, &dy, c, plane, &stats(&x, c, plane), &gamma, eps, true);
        let dx = g.dx.expect("asked for");
        let h = 1e-2f32;
        for i in [0, 5, 13, 23] {
            let (mut up, mut down) = (x.clone(), x.clone());
            up[i] += h;
            down[i] -= h;
            let numeric = (loss(&up, &gamma) - loss(&down, &gamma)) / f64::from(2.0 * h);
            assert!((numeric - f64::from(dx[i])).abs() < 2e-3, "dx[{i}]: {} vs {numeric}", dx[i]);
        }
        for ch in 0..c {
            let (mut up, mut down) = (gamma, gamma);
            up[ch] += h;
            down[ch] -= h;
            let numeric = (loss(&x, &up) - loss(&x, &down)) / f64::from(2.0 * h);
            assert!((numeric - f64::from(g.dgamma[ch])).abs() < 2e-3, "dgamma[{ch}]");
            let dbeta: f32 = planes_of(&dy, c, plane, ch).flat_map(|p| p.iter()).sum();
            assert!((dbeta - g.dbeta[ch]).abs() < 1e-5, "dbeta[{ch}]");
        }
        assert!(backward(&x, &dy, c, plane, &stats(&x, c, plane), &gamma, eps, false).dx.is_none());
    }
}
