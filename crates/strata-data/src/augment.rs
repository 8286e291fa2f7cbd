//! Cheap pixel augmentations applied to single channel-first images.

use rand::Rng;

use crate::dataset::ImageShape;

/// Translates the image by (`dy`, `dx`) pixels, filling uncovered pixels with zero.
pub fn shift(pixels: &[u8], shape: ImageShape, dy: isize, dx: isize) -> Vec<u8> {
    let (h, w) = (shape.height as isize, shape.width as isize);
    let mut out = vec![0u8; pixels.len()];
    // Destination columns whose source column is inside the image.
    let (x0, x1) = (dx.max(0).min(w), (w + dx).clamp(0, w));
    for (src, dst) in pixels.chunks_exact(shape.plane().max(1)).zip(out.chunks_exact_mut(shape.plane().max(1))) {
        for y in 0..h {
            let sy = y - dy;
            if sy < 0 || sy >= h || x0 >= x1 {
                continue;
            }
            let d = (y * w) as usize;
            let s = (sy * w) as usize;
            dst[d + x0 as usize..d + x1 as usize].copy_from_slice(&src[s + (x0 - dx) as usize..s + (x1 - dx) as usize]);
        }
    }
    out
}

/// Translates the image by a random offset in `-max_shift..=max_shift` on each axis, zero-padded.
pub fn random_shift<R: Rng + ?Sized>(pixels: &[u8], shape: ImageShape, max_shift: usize, rng: &mut R) -> Vec<u8> {
    let m = max_shift as i64;
    let dy = rng.random_range(-m..=m) as isize;
    let dx = rng.random_range(-m..=m) as isize;
    shift(pixels, shape, dy, dx)
}

/// Zeroes each pixel independently with probability `p` (masking noise).
pub fn mask<R: Rng + ?Sized>(pixels: &mut [u8], p: f64, rng: &mut R) {
    for px in pixels.iter_mut() {
        if rng.random_bool(p) {
            *px = 0;
        }
    }
}

/// Rotates a square image by `quarter_turns` x 90 degrees counter-clockwise (each channel);
/// a non-square image is rotated only by multiples of 180 degrees (odd turns count as two).
pub fn rotate90(pixels: &[u8], shape: ImageShape, quarter_turns: u8) -> Vec<u8> {
    let (h, w) = (shape.height, shape.width);
    let turns = if h == w { quarter_turns % 4 } else { (quarter_turns % 4).div_ceil(2) * 2 % 4 };
    let mut out = vec![0u8; pixels.len()];
    for (src, dst) in pixels.chunks_exact(shape.plane().max(1)).zip(out.chunks_exact_mut(shape.plane().max(1))) {
        for y in 0..h {
            for x in 0..w {
                // where source pixel (y, x) lands
                let (ny, nx) = match turns {
                    0 => (y, x),
                    1 => (w - 1 - x, y),
                    2 => (h - 1 - y, w - 1 - x),
                    _ => (x, h - 1 - y),
                };
                dst[ny * w + nx] = src[y * w + x];
            }
        }
    }
    out
}

/// Adds gaussian noise of standard deviation `sigma` (in units of the full 0..=255 range),
/// clamped back to 0..=255.
pub fn gaussian<R: Rng + ?Sized>(pixels: &mut [u8], sigma: f64, rng: &mut R) {
    if sigma <= 0.0 {
        return;
    }
    for px in pixels.iter_mut() {
        let z: f64 = rng.sample(rand_distr::StandardNormal);
        *px = (f64::from(*px) + z * sigma * 255.0).round().clamp(0.0, 255.0) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const S: ImageShape = ImageShape { channels: 2, height: 2, width: 3 };

    #[test]
    fn mask_zeroes_the_given_share_and_is_seeded() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut none = vec![9u8; 1000];
        mask(&mut none, 0.0, &mut rng);
        assert!(none.iter().all(|&p| p == 9));
        let mut all = vec![9u8; 1000];
        mask(&mut all, 1.0, &mut rng);
        assert!(all.iter().all(|&p| p == 0));
        let run = |seed| {
            let mut v = vec![9u8; 1000];
            mask(&mut v, 0.3, &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
            v
        };
        let zeros = run(5).iter().filter(|&&p| p == 0).count();
        assert!((230..370).contains(&zeros), "about 30 % masked, got {zeros}");
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }
    // Channel 0: 1 2 3 / 4 5 6; channel 1: the same plus 10.
    const PX: [u8; 12] = [1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15, 16];

    #[test]
    fn shifts_each_channel_with_zero_fill() {
        assert_eq!(shift(&PX, S, 0, 0), PX.to_vec());
        assert_eq!(shift(&PX, S, 0, 1), vec![0, 1, 2, 0, 4, 5, 0, 11, 12, 0, 14, 15]);
        assert_eq!(shift(&PX, S, 1, -1), vec![0, 0, 0, 2, 3, 0, 0, 0, 0, 12, 13, 0]);
        assert_eq!(shift(&PX, S, 0, 5), vec![0; 12]);
        assert_eq!(shift(&PX, S, -3, 0), vec![0; 12]);
    }

    #[test]
    fn random_shift_is_seeded_and_bounded() {
        let mut a = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let mut b = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        for _ in 0..20 {
            let x = random_shift(&PX, S, 1, &mut a);
            assert_eq!(x, random_shift(&PX, S, 1, &mut b));
            // A shift of at most one keeps pixel (0,1) or (1,1) of channel 0 visible somewhere.
            assert!(x.iter().any(|&v| v != 0));
        }
        assert_eq!(random_shift(&PX, S, 0, &mut a), PX.to_vec());
    }

    #[test]
    fn four_quarter_turns_are_the_identity_and_one_moves_the_corner() {
        let sq = ImageShape { channels: 1, height: 3, width: 3 };
        let img: Vec<u8> = (1..=9).collect();
        let once = rotate90(&img, sq, 1);
        // counter-clockwise: the top-right pixel (3) ends at the top-left
        assert_eq!(once, vec![3, 6, 9, 2, 5, 8, 1, 4, 7]);
        let mut back = img.clone();
        for _ in 0..4 {
            back = rotate90(&back, sq, 1);
        }
        assert_eq!(back, img);
        assert_eq!(rotate90(&img, sq, 2), (1..=9).rev().collect::<Vec<u8>>());
    }

    #[test]
    fn gaussian_noise_is_seeded_and_bounded() {
        let run = |seed| {
            let mut px = vec![128u8; 500];
            gaussian(&mut px, 0.1, &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
            px
        };
        assert_eq!(run(3), run(3));
        let px = run(3);
        let mean = px.iter().map(|&p| f64::from(p)).sum::<f64>() / 500.0;
        let sd = (px.iter().map(|&p| (f64::from(p) - mean).powi(2)).sum::<f64>() / 500.0).sqrt();
        assert!((mean - 128.0).abs() < 5.0 && (sd - 25.5).abs() < 5.0, "mean {mean}, sd {sd}");
    }
}
