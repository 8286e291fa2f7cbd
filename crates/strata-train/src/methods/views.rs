//! The views a self-supervised method compares: strong random distortions of one unlabeled
//! image that should not change what it shows. Never a flip: a mirrored digit or letter is
//! another symbol.

use crate::error::{Result, TrainError};
use rand::Rng;
use serde::{Deserialize, Serialize};
use strata_data::ImageShape;
use strata_data::policy::AugmentPolicy;

/// How strongly each view is distorted (`cluster`, `contrastive`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(default)]
pub struct ViewSettings {
    /// Views: largest rotation either way, degrees.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = ViewSettings::default().view_rotate))]
    pub view_rotate: f64,
    /// Views: largest shift either way, a fraction of the side.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = ViewSettings::default().view_shift))]
    pub view_shift: f64,
    /// Views: largest change of size either way, relative.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = ViewSettings::default().view_scale))]
    pub view_scale: f64,
    /// Views: largest change of brightness either way, relative.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = ViewSettings::default().view_brightness))]
    pub view_brightness: f64,
    /// Views: largest change of contrast either way, relative.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = ViewSettings::default().view_contrast))]
    pub view_contrast: f64,
    /// Views: side of a square erased in half of the views, a fraction of the side (0 = off).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = ViewSettings::default().view_cutout))]
    pub view_cutout: f64,
}

impl Default for ViewSettings {
    /// The views of the PyTorch reference (`two_stage_ssl.py`): strong geometric changes, mild
    /// photometric ones, an 8-pixel square on 28-pixel images. Geometry and erasing are generic;
    /// the strengths were set for small centred objects such as digits.
    fn default() -> Self {
        Self {
            view_rotate: 25.0,
            view_shift: 0.15,
            view_scale: 0.25,
            view_brightness: 0.2,
            view_contrast: 0.4,
            view_cutout: 0.3,
        }
    }
}

impl ViewSettings {
    /// Checks every strength, naming its flag.
    pub fn validate(&self) -> Result<()> {
        let ranges: [(&str, f64, f64); 6] = [
            ("--view-rotate", self.view_rotate, 180.0),
            ("--view-shift", self.view_shift, 0.5),
            ("--view-scale", self.view_scale, 0.9),
            ("--view-brightness", self.view_brightness, 0.99),
            ("--view-contrast", self.view_contrast, 0.99),
            ("--view-cutout", self.view_cutout, 1.0),
        ];
        for (flag, value, max) in ranges {
            if !(value.is_finite() && (0.0..=max).contains(&value)) {
                return Err(TrainError::config(flag, value, &format!("use a value between 0 and {max}")));
            }
        }
        Ok(())
    }

    /// One view of `pixels`: the geometric and photometric draw, then the erased square in
    /// half of the draws.
    pub fn view<R: Rng + ?Sized>(&self, pixels: &[u8], shape: ImageShape, rng: &mut R) -> Vec<u8> {
        let policy = AugmentPolicy {
            rotate_deg: self.view_rotate,
            shift: self.view_shift,
            scale: self.view_scale,
            brightness: self.view_brightness,
            contrast: self.view_contrast,
            ..AugmentPolicy::NONE
        };
        let mut out = policy.apply(pixels, shape, rng);
        if self.view_cutout > 0.0 && rng.random_bool(0.5) {
            let erase = AugmentPolicy { cutout: self.view_cutout, ..AugmentPolicy::NONE };
            out = erase.apply(&out, shape, rng);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn views_are_seeded_keep_the_shape_and_differ_from_each_other() {
        let shape = ImageShape::new(1, 28, 28);
        let img: Vec<u8> = (0..784usize)
            .map(|i| if (i / 28).abs_diff(14) < 7 && (i % 28).abs_diff(14) < 3 { 255 } else { 0 })
            .collect();
        let v = ViewSettings::default();
        let draw = |seed| v.view(&img, shape, &mut ChaCha8Rng::seed_from_u64(seed));
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
        assert_eq!(draw(3).len(), img.len());
        // the strongest draw still leaves some ink and adds no image of its own
        for seed in 0..30 {
            let ink: u64 = draw(seed).iter().map(|&p| u64::from(p)).sum();
            let src: u64 = img.iter().map(|&p| u64::from(p)).sum();
            assert!(ink > 0 && ink < 2 * src, "seed {seed}: ink {ink} of {src}");
        }
    }

    #[test]
    fn out_of_range_strengths_name_their_flag() {
        let e = ViewSettings { view_shift: 0.8, ..ViewSettings::default() }.validate().unwrap_err();
        assert!(e.to_string().contains("--view-shift"), "{e}");
        assert!(ViewSettings { view_rotate: f64::NAN, ..ViewSettings::default() }.validate().is_err());
        assert!(ViewSettings::default().validate().is_ok());
    }
}
