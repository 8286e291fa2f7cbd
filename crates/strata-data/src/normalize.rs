//! Per-channel normalisation statistics, fitted on training data and stored in the manifest.

use serde::{Deserialize, Serialize};

use crate::dataset::{Dataset, ImageShape};
use crate::error::{DataError, Result};

/// Smallest standard deviation used, so a constant channel does not divide by zero.
pub const STD_FLOOR: f32 = 1e-6;

/// Largest mean or standard deviation accepted from outside (`--mean`, a manifest): pixel
/// statistics are of values in [0, 1], or 0..255 for those who forgot to scale.
pub const STATS_LIMIT: f32 = 255.0;

/// Per-channel mean and standard deviation of pixels scaled to [0, 1].
///
/// Read from a manifest, the statistics are checked as [`Normalization::new`] checks them:
/// a float too large for `f32` would otherwise become infinity, silently zero every input,
/// and be written back as `null` into the manifest of any run reusing these statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Stats")]
pub struct Normalization {
    /// Mean of each channel.
    pub mean: Vec<f32>,
    /// Standard deviation of each channel (at least [`STD_FLOOR`]).
    pub std: Vec<f32>,
}

/// The stored form of [`Normalization`], checked on the way in.
#[derive(Deserialize)]
struct Stats {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl TryFrom<Stats> for Normalization {
    type Error = DataError;
    fn try_from(s: Stats) -> Result<Normalization> {
        Normalization::new(s.mean, s.std)
    }
}

impl Normalization {
    /// Statistics given by hand or read from a file, checked: as many means as standard
    /// deviations (at least one), every mean finite and at most [`STATS_LIMIT`] in size,
    /// every standard deviation between [`STD_FLOOR`] and [`STATS_LIMIT`], so that
    /// normalising can neither divide by zero nor overflow.
    pub fn new(mean: Vec<f32>, std: Vec<f32>) -> Result<Normalization> {
        let bad = |reason: String| DataError::BadNormalization { reason };
        if mean.is_empty() || mean.len() != std.len() {
            return Err(bad(format!(
                "{} mean(s) and {} standard deviation(s); give one of each per channel",
                mean.len(),
                std.len()
            )));
        }
        if let Some((c, m)) = mean.iter().enumerate().find(|(_, m)| !m.is_finite() || m.abs() > STATS_LIMIT) {
            return Err(bad(format!("mean[{c}] = {m} is not a number between -{STATS_LIMIT} and {STATS_LIMIT}")));
        }
        if let Some((c, s)) = std.iter().enumerate().find(|(_, s)| !(STD_FLOOR..=STATS_LIMIT).contains(*s)) {
            return Err(bad(format!(
                "std[{c}] = {s} is not a standard deviation between {STD_FLOOR} and {STATS_LIMIT}"
            )));
        }
        Ok(Normalization { mean, std })
    }

    /// Statistics of every pixel of `data`, per channel (population standard deviation).
    pub fn fit(data: &Dataset) -> Normalization {
        let s = data.shape;
        let plane = s.plane();
        // Integer sums are exact; f64 only enters at the end.
        let mut sum = vec![0u64; s.channels];
        let mut sq = vec![0u128; s.channels];
        if plane > 0 {
            for (i, p) in data.images.chunks_exact(plane).enumerate() {
                let c = i % s.channels;
                sum[c] += p.iter().map(|&x| x as u64).sum::<u64>();
                sq[c] += p.iter().map(|&x| (x as u64 * x as u64) as u128).sum::<u128>();
            }
        }
        let count = (data.len() * plane) as f64;
        let (mut mean, mut std) = (Vec::with_capacity(s.channels), Vec::with_capacity(s.channels));
        for c in 0..s.channels {
            if count == 0.0 {
                mean.push(0.0);
                std.push(1.0);
                continue;
            }
            let m = sum[c] as f64 / count / 255.0;
            let var = (sq[c] as f64 / count / (255.0 * 255.0) - m * m).max(0.0);
            mean.push(m as f32);
            std.push((var.sqrt() as f32).max(STD_FLOOR));
        }
        Normalization { mean, std }
    }

    /// Mean 0, std 1: pixels are only scaled to [0, 1].
    pub fn identity(channels: usize) -> Normalization {
        Normalization { mean: vec![0.0; channels], std: vec![1.0; channels] }
    }

    /// Number of channels these statistics cover.
    pub fn channels(&self) -> usize {
        self.mean.len()
    }

    /// Writes `(x / 255 - mean[c]) / std[c]` for one or more whole images into `out`.
    ///
    /// Panics if `pixels` is not whole images of `shape`, `out` differs in length, or the
    /// channel count differs from these statistics: all are programming errors.
    pub fn apply_into(&self, pixels: &[u8], shape: ImageShape, out: &mut [f32]) {
        assert_eq!(pixels.len(), out.len(), "output length must equal pixel count");
        assert_eq!(shape.channels, self.channels(), "channel count differs from the statistics");
        let plane = shape.plane().max(1);
        assert_eq!(pixels.len() % (plane * shape.channels.max(1)), 0, "pixels must be whole images");
        for (i, (src, dst)) in pixels.chunks_exact(plane).zip(out.chunks_exact_mut(plane)).enumerate() {
            let c = i % shape.channels;
            // One multiply-add per pixel: x * (1 / (255 std)) - mean / std.
            let scale = 1.0 / (255.0 * self.std[c]);
            let shift = self.mean[c] / self.std[c];
            for (d, &x) in dst.iter_mut().zip(src) {
                *d = x as f32 * scale - shift;
            }
        }
    }

    /// Normalised pixels of the images at `idx`, appended to a cleared `out` (N x C x H x W).
    pub fn batch_into(&self, data: &Dataset, idx: &[usize], out: &mut Vec<f32>) {
        let n = data.shape.numel();
        out.clear();
        out.resize(idx.len() * n, 0.0);
        for (&i, dst) in idx.iter().zip(out.chunks_exact_mut(n.max(1))) {
            self.apply_into(data.image(i), data.shape, dst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds(images: Vec<u8>, shape: ImageShape) -> Dataset {
        Dataset { images, shape, labels: None, class_names: vec![], source: "t".into() }
    }

    #[test]
    fn fit_matches_hand_computation() {
        // Two 2-channel 1x2 images: channel 0 = {0, 255, 0, 255}, channel 1 = all 51.
        let d = ds(vec![0, 255, 51, 51, 0, 255, 51, 51], ImageShape::new(2, 1, 2));
        let n = Normalization::fit(&d);
        assert!((n.mean[0] - 0.5).abs() < 1e-6);
        assert!((n.std[0] - 0.5).abs() < 1e-6);
        assert!((n.mean[1] - 0.2).abs() < 1e-6);
        assert_eq!(n.std[1], STD_FLOOR);
    }

    #[test]
    fn applied_data_has_zero_mean_unit_std() {
        let px: Vec<u8> = (0..300).map(|i| (i * 37 % 256) as u8).collect();
        let d = ds(px.clone(), ImageShape::new(3, 5, 4));
        let n = Normalization::fit(&d);
        let mut out = vec![0.0; px.len()];
        n.apply_into(&px, d.shape, &mut out);
        for c in 0..3 {
            let vals: Vec<f64> = out
                .chunks_exact(20)
                .enumerate()
                .filter(|(i, _)| i % 3 == c)
                .flat_map(|(_, p)| p.iter().map(|&x| x as f64))
                .collect();
            let m = vals.iter().sum::<f64>() / vals.len() as f64;
            let v = vals.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / vals.len() as f64;
            assert!(m.abs() < 1e-4 && (v.sqrt() - 1.0).abs() < 1e-3, "channel {c}: {m} {v}");
        }
    }

    #[test]
    fn constant_data_stays_finite() {
        let d = ds(vec![9; 8], ImageShape::new(1, 2, 2));
        let n = Normalization::fit(&d);
        let mut out = vec![0.0; 8];
        n.apply_into(&d.images, d.shape, &mut out);
        assert!(out.iter().all(|x| x.is_finite()));
    }

    #[test]
    fn identity_scales_only() {
        let mut out = vec![0.0; 2];
        Normalization::identity(1).apply_into(&[0, 255], ImageShape::new(1, 1, 2), &mut out);
        assert_eq!(out, vec![0.0, 1.0]);
    }

    #[test]
    fn batch_gathers_in_index_order() {
        let d = ds(vec![0, 0, 255, 255], ImageShape::new(1, 1, 2));
        let mut out = vec![7.0];
        Normalization::identity(1).batch_into(&d, &[1, 0], &mut out);
        assert_eq!(out, vec![1.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn stats_from_outside_are_checked() {
        assert!(Normalization::new(vec![0.5, 0.4, 0.4], vec![0.2, 0.25, 0.3]).is_ok());
        for (mean, std, needle) in [
            (vec![], vec![], "0 mean(s) and 0 standard deviation(s)"),
            (vec![0.1, 0.2], vec![0.3], "2 mean(s) and 1 standard"),
            (vec![f32::NAN], vec![0.3], "mean[0] = NaN"),
            (vec![1e30], vec![0.3], "mean[0] = 1000000000000000000000000000000"),
            (vec![0.1], vec![0.0], "std[0] = 0 "),
            (vec![0.1], vec![-0.3], "std[0] = -0.3"),
            (vec![0.1], vec![f32::INFINITY], "std[0] = inf"),
        ] {
            let e = Normalization::new(mean, std).unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains("normalisation"), "{e}");
        }
    }

    /// Found by the manifest_config fuzz target (the whole input is
    /// tests/fixtures/fuzz-regressions/manifest-std-overflows-f32.json at the top of the
    /// repository): a standard deviation too large for f32 was read as infinity, and the
    /// manifest it was written back to said `null` there, which could not be read again.
    #[test]
    fn a_float_beyond_f32_is_refused_not_read_as_infinity() {
        let json = br#"{"mean":[0.13149679],"std":[0.30877e97]}"#;
        let e = serde_json::from_slice::<Normalization>(json).unwrap_err().to_string();
        // serde_json's exact float parsing (`float_roundtrip`, on in this workspace) refuses the
        // number itself; without it the value arrives as infinity and the check here refuses it
        assert!(e.contains("number out of range") || e.contains("std[0] = inf is not a standard deviation"), "{e}");
        let n: Normalization = serde_json::from_slice(br#"{"mean":[0.13149679],"std":[0.30877]}"#).unwrap();
        assert_eq!(serde_json::from_slice::<Normalization>(&serde_json::to_vec(&n).unwrap()).unwrap(), n);
        let fixture = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/fuzz-regressions/manifest-std-overflows-f32.json"
        );
        let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
        assert!(serde_json::from_value::<Normalization>(manifest["normalization"].clone()).is_err());
    }

    #[test]
    fn serde_round_trip_via_debug_eq() {
        let n = Normalization { mean: vec![0.1], std: vec![0.3] };
        assert_eq!(n.clone(), n);
    }
}
