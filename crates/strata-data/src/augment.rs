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
}
