//! Geometric warps of channel-first images: an affine map about the image centre and an
//! optional elastic displacement field (Simard et al. 2003), resampled bilinearly with zero
//! fill, in one pass so an image is interpolated only once.

use rand::Rng;

use crate::dataset::ImageShape;

/// An affine map about the image centre, as a person would describe it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    /// rotation in degrees, counter-clockwise as the image is seen
    pub rotate_deg: f64,
    /// scale factor (1 = unchanged, 1.1 = 10 % larger)
    pub scale: f64,
    /// horizontal shear in degrees
    pub shear_deg: f64,
    /// translation to the right, in pixels
    pub shift_x: f64,
    /// translation downwards, in pixels
    pub shift_y: f64,
}

impl Affine {
    /// The map that moves nothing.
    pub const IDENTITY: Self = Self { rotate_deg: 0.0, scale: 1.0, shear_deg: 0.0, shift_x: 0.0, shift_y: 0.0 };

    /// The inverse of the linear part (destination → source), row-major 2x2, in image
    /// coordinates (x right, y down).
    fn inverse_linear(&self) -> [f64; 4] {
        let (s, c) = self.rotate_deg.to_radians().sin_cos();
        let t = self.shear_deg.to_radians().tan();
        // y points down, so a counter-clockwise turn on screen is (x, y) -> (cx + sy, -sx + cy)
        let rot = [c, s, -s, c];
        let shear = [1.0, t, 0.0, 1.0];
        let m = mul(rot, mul(shear, [self.scale, 0.0, 0.0, self.scale]));
        let det = m[0] * m[3] - m[1] * m[2];
        [m[3] / det, -m[1] / det, -m[2] / det, m[0] / det]
    }
}

fn mul(a: [f64; 4], b: [f64; 4]) -> [f64; 4] {
    [a[0] * b[0] + a[1] * b[2], a[0] * b[1] + a[1] * b[3], a[2] * b[0] + a[3] * b[2], a[2] * b[1] + a[3] * b[3]]
}

/// A displacement per destination pixel, (dx, dy) in pixels, row-major.
pub type Field = Vec<(f64, f64)>;

/// A smooth random displacement field: uniform noise in [-1, 1] per pixel, blurred by a
/// gaussian of `sigma` pixels and scaled by `alpha` (Simard et al. use alpha 34, sigma 4 on
/// 28x28 digits).
pub fn elastic_field<R: Rng + ?Sized>(shape: ImageShape, alpha: f64, sigma: f64, rng: &mut R) -> Field {
    let (h, w) = (shape.height, shape.width);
    let mut dx: Vec<f64> = (0..h * w).map(|_| rng.random_range(-1.0..=1.0)).collect();
    let mut dy: Vec<f64> = (0..h * w).map(|_| rng.random_range(-1.0..=1.0)).collect();
    blur(&mut dx, h, w, sigma);
    blur(&mut dy, h, w, sigma);
    dx.into_iter().zip(dy).map(|(x, y)| (alpha * x, alpha * y)).collect()
}

/// Separable gaussian blur with zero padding, in place.
fn blur(v: &mut [f64], h: usize, w: usize, sigma: f64) {
    if sigma <= 0.0 {
        return;
    }
    let r = (3.0 * sigma).ceil() as isize;
    let kernel: Vec<f64> = (-r..=r).map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp()).collect();
    let total: f64 = kernel.iter().sum();
    let kernel: Vec<f64> = kernel.into_iter().map(|k| k / total).collect();
    let pass = |src: &[f64], along_x: bool| -> Vec<f64> {
        let mut out = vec![0.0; src.len()];
        for y in 0..h as isize {
            for x in 0..w as isize {
                let mut acc = 0.0;
                for (k, weight) in (-r..=r).zip(&kernel) {
                    let (sy, sx) = if along_x { (y, x + k) } else { (y + k, x) };
                    if (0..h as isize).contains(&sy) && (0..w as isize).contains(&sx) {
                        acc += weight * src[(sy * w as isize + sx) as usize];
                    }
                }
                out[(y * w as isize + x) as usize] = acc;
            }
        }
        out
    };
    let once = pass(v, true);
    v.copy_from_slice(&pass(&once, false));
}

/// The image seen through `affine` (and `field`, when given): each destination pixel takes
/// the bilinear sample of the source at the inverse-mapped position; outside the source is 0.
pub fn warp(pixels: &[u8], shape: ImageShape, affine: &Affine, field: Option<&Field>) -> Vec<u8> {
    let (h, w) = (shape.height, shape.width);
    let inv = affine.inverse_linear();
    let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    let plane = shape.plane().max(1);
    let mut out = vec![0u8; pixels.len()];
    for (src, dst) in pixels.chunks_exact(plane).zip(out.chunks_exact_mut(plane)) {
        let at = |x: isize, y: isize| -> f64 {
            if x < 0 || y < 0 || x >= w as isize || y >= h as isize {
                0.0
            } else {
                f64::from(src[y as usize * w + x as usize])
            }
        };
        for y in 0..h {
            for x in 0..w {
                let (ddx, ddy) = field.map_or((0.0, 0.0), |f| f[y * w + x]);
                let u = x as f64 + ddx - cx - affine.shift_x;
                let v = y as f64 + ddy - cy - affine.shift_y;
                let sx = inv[0] * u + inv[1] * v + cx;
                let sy = inv[2] * u + inv[3] * v + cy;
                let (x0, y0) = (sx.floor(), sy.floor());
                let (fx, fy) = (sx - x0, sy - y0);
                let (ix, iy) = (x0 as isize, y0 as isize);
                let top = (1.0 - fx) * at(ix, iy) + fx * at(ix + 1, iy);
                let bottom = (1.0 - fx) * at(ix, iy + 1) + fx * at(ix + 1, iy + 1);
                dst[y * w + x] = ((1.0 - fy) * top + fy * bottom).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::rotate90;
    use proptest::prelude::{prop_assert, proptest};
    use rand::SeedableRng;

    fn image(shape: ImageShape, seed: u64) -> Vec<u8> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..shape.numel()).map(|_| rng.random_range(0..=255u8)).collect()
    }

    #[test]
    fn the_identity_moves_nothing() {
        let shape = ImageShape::new(2, 7, 5);
        let img = image(shape, 1);
        assert_eq!(warp(&img, shape, &Affine::IDENTITY, None), img);
        let still = vec![(0.0, 0.0); shape.plane()];
        assert_eq!(warp(&img, shape, &Affine::IDENTITY, Some(&still)), img);
    }

    #[test]
    fn a_quarter_turn_equals_the_exact_rotation() {
        for side in [4, 5, 28] {
            let shape = ImageShape::new(1, side, side);
            let img = image(shape, side as u64);
            let turned = warp(&img, shape, &Affine { rotate_deg: 90.0, ..Affine::IDENTITY }, None);
            assert_eq!(turned, rotate90(&img, shape, 1), "side {side}");
            let half = warp(&img, shape, &Affine { rotate_deg: 180.0, ..Affine::IDENTITY }, None);
            assert_eq!(half, rotate90(&img, shape, 2), "side {side}");
        }
    }

    #[test]
    fn a_whole_pixel_shift_moves_the_image() {
        let shape = ImageShape::new(1, 3, 3);
        let img: Vec<u8> = (1..=9).collect();
        let right = warp(&img, shape, &Affine { shift_x: 1.0, ..Affine::IDENTITY }, None);
        assert_eq!(right, vec![0, 1, 2, 0, 4, 5, 0, 7, 8]);
        let down = warp(&img, shape, &Affine { shift_y: 1.0, ..Affine::IDENTITY }, None);
        assert_eq!(down, vec![0, 0, 0, 1, 2, 3, 4, 5, 6]);
        // a uniform field of (-1, 0) samples one pixel to the left, the same as shifting right
        let field = vec![(-1.0, 0.0); 9];
        assert_eq!(warp(&img, shape, &Affine::IDENTITY, Some(&field)), right);
    }

    #[test]
    fn scaling_up_keeps_the_centre_pixel() {
        let shape = ImageShape::new(1, 5, 5);
        let img = image(shape, 9);
        let big = warp(&img, shape, &Affine { scale: 2.0, ..Affine::IDENTITY }, None);
        assert_eq!(big[12], img[12]);
        assert_ne!(big, img);
    }

    #[test]
    fn an_elastic_field_is_smooth_seeded_and_scaled() {
        let shape = ImageShape::new(1, 28, 28);
        let f = |seed| elastic_field(shape, 34.0, 4.0, &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
        assert_eq!(f(3), f(3));
        assert_ne!(f(3), f(4));
        let field = f(3);
        let biggest = field.iter().map(|(x, y)| x.abs().max(y.abs())).fold(0.0, f64::max);
        assert!(biggest > 0.3 && biggest < 10.0, "largest displacement {biggest}");
        // neighbours move together: the field is smooth
        let jump = (0..27).map(|x| (field[x].0 - field[x + 1].0).abs()).fold(0.0, f64::max);
        assert!(jump < biggest / 2.0, "jump {jump} vs {biggest}");
    }

    proptest! {
        #[test]
        fn any_warp_keeps_values_in_the_image_range(
            rotate in -180.0..180.0f64, scale in 0.5..2.0f64, shear in -30.0..30.0f64,
            sx in -5.0..5.0f64, sy in -5.0..5.0f64, seed in 0..100u64,
        ) {
            let shape = ImageShape::new(1, 9, 7);
            let img = vec![200u8; shape.numel()];
            let a = Affine { rotate_deg: rotate, scale, shear_deg: shear, shift_x: sx, shift_y: sy };
            let field = elastic_field(shape, 5.0, 2.0, &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
            // bilinear sampling mixes source pixels and zeros, so it never leaves their range
            let out = warp(&img, shape, &a, Some(&field));
            prop_assert!(out.iter().all(|&p| p <= 200), "a constant image warped above its value");
            let src = image(shape, seed).into_iter().map(|p| p / 2 + 64).collect::<Vec<u8>>();
            let out = warp(&src, shape, &a, Some(&field));
            let top = *src.iter().max().unwrap_or(&0);
            prop_assert!(out.iter().all(|&p| p <= top), "a warped pixel exceeds the source maximum {}", top);
        }
    }
}
