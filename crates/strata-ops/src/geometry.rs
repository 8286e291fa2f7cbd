//! The shape of one convolution and its im2col / col2im pair on one image (NCHW, raw `f32`).
//!
//! A transposed convolution is the adjoint of a convolution, so both are described by the
//! geometry of the *convolution*: `input` is what a convolution reads (a transposed
//! convolution writes it), `output` what it writes (a transposed convolution reads it).

/// Geometry of a 2-D convolution with one group: `c` input channels of `h` x `w` to `o` output
/// channels of `ho` x `wo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// input channels
    pub c: usize,
    /// input height
    pub h: usize,
    /// input width
    pub w: usize,
    /// output channels
    pub o: usize,
    /// output height
    pub ho: usize,
    /// output width
    pub wo: usize,
    /// kernel height and width
    pub kernel: [usize; 2],
    /// stride along height and width
    pub stride: [usize; 2],
    /// padding before the first row and column (the far side is implied by `ho`, `wo`)
    pub pad: [usize; 2],
    /// dilation along height and width
    pub dilation: [usize; 2],
}

impl Geometry {
    /// Rows of the im2col matrix: one per input channel and kernel tap.
    pub fn k(&self) -> usize {
        self.c * self.kernel[0] * self.kernel[1]
    }

    /// Output pixels per channel: the columns of the im2col matrix.
    pub fn p(&self) -> usize {
        self.ho * self.wo
    }

    /// Elements of one input image.
    pub fn input_len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// Elements of one output image.
    pub fn output_len(&self) -> usize {
        self.o * self.p()
    }

    /// True when the im2col matrix is the image itself (1x1 kernel, stride 1, no padding).
    pub fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.pad == [0, 0] && self.ho == self.h && self.wo == self.w
    }

    /// The output columns `[lo, hi)` of one kernel column `kj` that read inside the image;
    /// the rest read padding.
    fn valid_columns(&self, kj: usize) -> (usize, usize) {
        let off = (kj * self.dilation[1]) as isize - self.pad[1] as isize;
        let s = self.stride[1] as isize;
        // smallest ow with ow*s + off >= 0, and smallest with ow*s + off >= w
        let lo = if off >= 0 { 0 } else { ((-off + s - 1) / s) as usize };
        let hi_edge = self.w as isize - off;
        let hi = if hi_edge <= 0 { 0 } else { ((hi_edge + s - 1) / s) as usize };
        (lo.min(self.wo), hi.min(self.wo).max(lo.min(self.wo)))
    }

    /// The input row read by output row `oh` through kernel row `ki`, if inside the image.
    fn input_row(&self, oh: usize, ki: usize) -> Option<usize> {
        let ih = (oh * self.stride[0] + ki * self.dilation[0]) as isize - self.pad[0] as isize;
        (ih >= 0 && (ih as usize) < self.h).then_some(ih as usize)
    }

    /// Writes the im2col matrix of one image: `cols` is `k()` x `p()`, row `(ci, ki, kj)` in
    /// the order of an OIHW weight's inner dimensions; padding reads as zero. Every element of
    /// `cols` is written, so it may hold anything before.
    pub fn im2col(&self, x: &[f32], cols: &mut [f32]) {
        let (p, [kh, kw], hw) = (self.p(), self.kernel, self.h * self.w);
        debug_assert_eq!(x.len(), self.input_len());
        debug_assert_eq!(cols.len(), self.k() * p);
        let (sw, dw, pw) = (self.stride[1], self.dilation[1], self.pad[1]);
        for ci in 0..self.c {
            let plane = &x[ci * hw..][..hw];
            for ki in 0..kh {
                for kj in 0..kw {
                    let row = &mut cols[((ci * kh + ki) * kw + kj) * p..][..p];
                    let (lo, hi) = self.valid_columns(kj);
                    for (oh, seg) in row.chunks_exact_mut(self.wo).enumerate() {
                        let Some(ih) = self.input_row(oh, ki) else {
                            seg.fill(0.0);
                            continue;
                        };
                        if lo >= hi {
                            seg.fill(0.0);
                            continue;
                        }
                        let src = &plane[ih * self.w..][..self.w];
                        seg[..lo].fill(0.0);
                        seg[hi..].fill(0.0);
                        let first = lo * sw + kj * dw - pw;
                        if sw == 1 {
                            seg[lo..hi].copy_from_slice(&src[first..first + (hi - lo)]);
                        } else {
                            for (d, v) in seg[lo..hi].iter_mut().zip(src[first..].iter().step_by(sw)) {
                                *d = *v;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Adds the im2col-shaped `cols` back into one image `x` (the adjoint of [`Self::im2col`]):
    /// every tap's value lands on the input pixel it read; padding taps are dropped.
    pub fn col2im_add(&self, cols: &[f32], x: &mut [f32]) {
        let (p, [kh, kw], hw) = (self.p(), self.kernel, self.h * self.w);
        debug_assert_eq!(x.len(), self.input_len());
        debug_assert_eq!(cols.len(), self.k() * p);
        let (sw, dw, pw) = (self.stride[1], self.dilation[1], self.pad[1]);
        for ci in 0..self.c {
            let plane = &mut x[ci * hw..][..hw];
            for ki in 0..kh {
                for kj in 0..kw {
                    let row = &cols[((ci * kh + ki) * kw + kj) * p..][..p];
                    let (lo, hi) = self.valid_columns(kj);
                    if lo >= hi {
                        continue;
                    }
                    for (oh, seg) in row.chunks_exact(self.wo).enumerate() {
                        let Some(ih) = self.input_row(oh, ki) else { continue };
                        let dst = &mut plane[ih * self.w..][..self.w];
                        let first = lo * sw + kj * dw - pw;
                        if sw == 1 {
                            for (d, v) in dst[first..first + (hi - lo)].iter_mut().zip(&seg[lo..hi]) {
                                *d += *v;
                            }
                        } else {
                            for (d, v) in dst[first..].iter_mut().step_by(sw).zip(&seg[lo..hi]) {
                                *d += *v;
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definition, one element at a time.
    fn naive_im2col(g: &Geometry, x: &[f32]) -> Vec<f32> {
        let mut cols = vec![0.0; g.k() * g.p()];
        for ci in 0..g.c {
            for ki in 0..g.kernel[0] {
                for kj in 0..g.kernel[1] {
                    let r = (ci * g.kernel[0] + ki) * g.kernel[1] + kj;
                    for oh in 0..g.ho {
                        for ow in 0..g.wo {
                            let ih = (oh * g.stride[0] + ki * g.dilation[0]) as isize - g.pad[0] as isize;
                            let iw = (ow * g.stride[1] + kj * g.dilation[1]) as isize - g.pad[1] as isize;
                            if ih >= 0 && iw >= 0 && (ih as usize) < g.h && (iw as usize) < g.w {
                                cols[r * g.p() + oh * g.wo + ow] = x[(ci * g.h + ih as usize) * g.w + iw as usize];
                            }
                        }
                    }
                }
            }
        }
        cols
    }

    fn geometry() -> impl Strategy<Value = Geometry> {
        (1usize..4, 1usize..9, 1usize..9, 1usize..4, 1usize..4, 1usize..4, 1usize..4, 0usize..3, 0usize..3, 1usize..3)
            .prop_filter_map("kernel larger than the padded image", |(c, h, w, kh, kw, sh, sw, ph, pw, d)| {
                let eh = d * (kh - 1) + 1;
                let ew = d * (kw - 1) + 1;
                (h + 2 * ph >= eh && w + 2 * pw >= ew).then(|| Geometry {
                    c,
                    h,
                    w,
                    o: 1,
                    ho: (h + 2 * ph - eh) / sh + 1,
                    wo: (w + 2 * pw - ew) / sw + 1,
                    kernel: [kh, kw],
                    stride: [sh, sw],
                    pad: [ph, pw],
                    dilation: [d, d],
                })
            })
    }

    proptest! {
        #[test]
        fn im2col_equals_the_definition(g in geometry(), seed in 0u32..1000) {
            let x: Vec<f32> = (0..g.input_len()).map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 97) as f32 - 48.0).collect();
            // garbage before: every element must be written
            let mut cols = vec![f32::NAN; g.k() * g.p()];
            g.im2col(&x, &mut cols);
            prop_assert_eq!(cols, naive_im2col(&g, &x));
        }

        /// col2im is im2col's adjoint: <im2col(x), c> = <x, col2im(c)> for all x, c.
        #[test]
        fn col2im_is_the_adjoint_of_im2col(g in geometry(), seed in 0u32..1000) {
            let x: Vec<f32> = (0..g.input_len()).map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 13) as f32 - 6.0).collect();
            let c: Vec<f32> = (0..g.k() * g.p()).map(|i| (((i as u32).wrapping_mul(40503) ^ seed) % 11) as f32 - 5.0).collect();
            let mut cols = vec![0.0; g.k() * g.p()];
            g.im2col(&x, &mut cols);
            let lhs: f32 = cols.iter().zip(&c).map(|(a, b)| a * b).sum();
            let mut back = vec![0.0; g.input_len()];
            g.col2im_add(&c, &mut back);
            let rhs: f32 = x.iter().zip(&back).map(|(a, b)| a * b).sum();
            // small integers: both sums are exact in f32
            prop_assert_eq!(lhs, rhs);
        }
    }

    #[test]
    fn a_padded_three_by_three_reads_zeros_at_the_border() {
        let g = Geometry {
            c: 1,
            h: 2,
            w: 2,
            o: 1,
            ho: 2,
            wo: 2,
            kernel: [3, 3],
            stride: [1, 1],
            pad: [1, 1],
            dilation: [1, 1],
        };
        let x = [1.0, 2.0, 3.0, 4.0];
        let mut cols = vec![9.0; 9 * 4];
        g.im2col(&x, &mut cols);
        // the centre tap reads the image itself; the top-left tap reads only x[0] at output (1,1)
        assert_eq!(&cols[4 * 4..5 * 4], &x);
        assert_eq!(&cols[0..4], &[0.0, 0.0, 0.0, 1.0]);
    }
}
