//! A labeled image's random augmentation: how strong each kind is, and one draw of it
//! (geometric warp, then brightness and contrast, then cut-out). Nothing here mirrors an
//! image: a flipped digit is another digit or none.

use rand::Rng;

use crate::dataset::ImageShape;
use crate::warp::{Affine, elastic_field, warp};

/// The magnitudes of each augmentation; zero turns one off, all zero is the identity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AugmentPolicy {
    /// largest rotation either way, degrees
    pub rotate_deg: f64,
    /// largest shift either way, as a fraction of the image side
    pub shift: f64,
    /// largest relative change of size either way (0.1: 90 % to 110 %)
    pub scale: f64,
    /// largest horizontal shear either way, degrees
    pub shear_deg: f64,
    /// elastic distortion strength alpha, pixels (Simard et al.: 34 on 28x28); sigma is
    /// 4 pixels per 28 of the shorter side
    pub elastic: f64,
    /// largest relative change of brightness either way
    pub brightness: f64,
    /// largest relative change of contrast either way
    pub contrast: f64,
    /// side of the square cut out (set to 0), as a fraction of the shorter image side
    pub cutout: f64,
}

impl AugmentPolicy {
    /// No augmentation.
    pub const NONE: Self = Self {
        rotate_deg: 0.0,
        shift: 0.0,
        scale: 0.0,
        shear_deg: 0.0,
        elastic: 0.0,
        brightness: 0.0,
        contrast: 0.0,
        cutout: 0.0,
    };

    /// True when a draw can change no pixel.
    pub fn is_identity(&self) -> bool {
        *self == Self::NONE
    }

    fn geometric(&self) -> bool {
        self.rotate_deg != 0.0 || self.shift != 0.0 || self.scale != 0.0 || self.shear_deg != 0.0 || self.elastic != 0.0
    }

    /// One random augmentation of `pixels` (channel-first, `shape`), drawn from `rng`.
    pub fn apply<R: Rng + ?Sized>(&self, pixels: &[u8], shape: ImageShape, rng: &mut R) -> Vec<u8> {
        let mut sym = |m: f64| if m > 0.0 { rng.random_range(-m..=m) } else { 0.0 };
        let affine = Affine {
            rotate_deg: sym(self.rotate_deg),
            scale: 1.0 + sym(self.scale),
            shear_deg: sym(self.shear_deg),
            shift_x: sym(self.shift) * shape.width as f64,
            shift_y: sym(self.shift) * shape.height as f64,
        };
        let (brightness, contrast) = (1.0 + sym(self.brightness), 1.0 + sym(self.contrast));
        let mut out = if self.geometric() {
            let side = shape.height.min(shape.width) as f64;
            let field = (self.elastic > 0.0).then(|| elastic_field(shape, self.elastic, 4.0 * side / 28.0, rng));
            warp(pixels, shape, &affine, field.as_ref())
        } else {
            pixels.to_vec()
        };
        if self.brightness > 0.0 || self.contrast > 0.0 {
            jitter(&mut out, brightness, contrast);
        }
        if self.cutout > 0.0 {
            let side = (self.cutout * shape.height.min(shape.width) as f64).round() as usize;
            let (cy, cx) = (rng.random_range(0..shape.height.max(1)), rng.random_range(0..shape.width.max(1)));
            cut_out(&mut out, shape, side, cy, cx);
        }
        out
    }
}

/// Contrast about the image's mean, then brightness as a factor (torchvision's ColorJitter
/// order for one channel), clamped to 0..=255.
pub fn jitter(pixels: &mut [u8], brightness: f64, contrast: f64) {
    let mean = pixels.iter().map(|&p| f64::from(p)).sum::<f64>() / pixels.len().max(1) as f64;
    for p in pixels.iter_mut() {
        let v = ((f64::from(*p) - mean) * contrast + mean) * brightness;
        *p = v.round().clamp(0.0, 255.0) as u8;
    }
}

/// Zeroes the `side` x `side` square centred on (`cy`, `cx`) in every channel, clipped at the
/// border (DeVries & Taylor 2017: the square may hang over the edge).
pub fn cut_out(pixels: &mut [u8], shape: ImageShape, side: usize, cy: usize, cx: usize) {
    let (y0, x0) = (cy.saturating_sub(side / 2), cx.saturating_sub(side / 2));
    let (y1, x1) = ((cy + side.div_ceil(2)).min(shape.height), (cx + side.div_ceil(2)).min(shape.width));
    for plane in pixels.chunks_exact_mut(shape.plane().max(1)) {
        for y in y0..y1 {
            plane[y * shape.width + x0..y * shape.width + x1].fill(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const SHAPE: ImageShape = ImageShape { channels: 1, height: 28, width: 28 };

    fn digit() -> Vec<u8> {
        (0..SHAPE.numel())
            .map(|i| if (i / 28).abs_diff(14) < 6 && (i % 28).abs_diff(14) < 3 { 250 } else { 0 })
            .collect()
    }

    fn full() -> AugmentPolicy {
        AugmentPolicy {
            rotate_deg: 15.0,
            shift: 0.1,
            scale: 0.1,
            shear_deg: 10.0,
            elastic: 34.0,
            brightness: 0.2,
            contrast: 0.2,
            cutout: 0.25,
        }
    }

    #[test]
    fn the_same_generator_state_gives_the_same_pixels() {
        let draw = |seed| full().apply(&digit(), SHAPE, &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
        assert_eq!(draw(5), draw(5));
        assert_ne!(draw(5), draw(6));
        assert_ne!(draw(5), digit());
    }

    #[test]
    fn no_augmentation_is_the_identity() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        assert!(AugmentPolicy::NONE.is_identity());
        assert_eq!(AugmentPolicy::NONE.apply(&digit(), SHAPE, &mut rng), digit());
        // unit brightness and contrast change nothing either
        let mut px = digit();
        jitter(&mut px, 1.0, 1.0);
        assert_eq!(px, digit());
    }

    #[test]
    fn jitter_and_cut_out_do_what_they_say() {
        let mut px = vec![100u8, 200];
        jitter(&mut px, 1.0, 2.0);
        assert_eq!(px, vec![50, 250]);
        jitter(&mut px, 2.0, 1.0);
        assert_eq!(px, vec![100, 255]);
        let shape = ImageShape::new(2, 4, 4);
        let mut img = vec![9u8; 32];
        cut_out(&mut img, shape, 2, 0, 0);
        // the square hangs over the top-left corner: one pixel per channel is cut
        assert_eq!(img.iter().filter(|&&p| p == 0).count(), 2);
        assert_eq!((img[0], img[16], img[1], img[4]), (0, 0, 9, 9));
    }

    #[test]
    fn a_mild_draw_keeps_most_of_the_ink() {
        let ink = |px: &[u8]| px.iter().map(|&p| u64::from(p)).sum::<u64>();
        let mild = AugmentPolicy { rotate_deg: 15.0, shift: 0.1, scale: 0.1, ..AugmentPolicy::NONE };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        for _ in 0..20 {
            let out = mild.apply(&digit(), SHAPE, &mut rng);
            let ratio = ink(&out) as f64 / ink(&digit()) as f64;
            assert!((0.7..1.3).contains(&ratio), "ink ratio {ratio}");
        }
    }
}
