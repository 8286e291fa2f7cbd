//! The corruption settings of the methods that corrupt their input: `dae` corrupts what it
//! reconstructs from, `siamese` masks the views it compares.

use crate::error::{Result, TrainError};
use serde::{Deserialize, Serialize};

/// How `dae` corrupts its input and how much `siamese` masks its views.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(default)]
pub struct Corruption {
    /// Noise level: the fraction of pixels `dae` zeroes (or its gaussian sigma, as a share of
    /// the pixel range), the most `siamese` zeroes per view.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = Corruption::default().noise))]
    pub noise: f32,
    /// `dae` corruption: mask (zero pixels) or gaussian (add noise).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = Corruption::default().noise_kind))]
    pub noise_kind: NoiseKind,
}

impl Default for Corruption {
    fn default() -> Self {
        Self { noise: 0.25, noise_kind: NoiseKind::Mask }
    }
}

impl Corruption {
    /// Checks the level, naming the flag.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..1.0).contains(&self.noise) {
            return Err(TrainError::config("--noise", self.noise, "the masked fraction must be in [0, 1)"));
        }
        Ok(())
    }
}

/// Corruption of a denoising autoencoder's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoiseKind {
    /// zero each pixel with probability `noise`
    #[default]
    Mask,
    /// add gaussian noise of standard deviation `noise` x 255
    Gaussian,
}

impl std::str::FromStr for NoiseKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "mask" => Ok(Self::Mask),
            "gaussian" => Ok(Self::Gaussian),
            _ => Err(format!("unknown noise `{s}`; use mask or gaussian")),
        }
    }
}

impl std::fmt::Display for NoiseKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Mask => "mask",
            Self::Gaussian => "gaussian",
        })
    }
}
