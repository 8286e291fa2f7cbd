//! Learning-rate schedules: the factor each step's rate is multiplied by. A pure function of
//! the step, so a resumed run continues on the same curve without saving scheduler state.

use serde::{Deserialize, Serialize};

/// The shape of the rate over a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// the same rate at every step
    Constant,
    /// linear warm-up, then half a cosine down to zero (Loshchilov & Hutter 2017)
    #[default]
    Cosine,
}

impl std::str::FromStr for LrSchedule {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "constant" => Ok(Self::Constant),
            "cosine" => Ok(Self::Cosine),
            _ => Err(format!("unknown schedule `{s}`; use cosine or constant")),
        }
    }
}

impl std::fmt::Display for LrSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Constant => "constant",
            Self::Cosine => "cosine",
        })
    }
}

impl LrSchedule {
    /// The factor of step `step` (0-based) of `total`, with the first `warmup` share of the
    /// steps rising linearly (as PyTorch's `LambdaLR(min(1, (s+1)/warm) * cosine)`; the
    /// constant schedule warms up too, then stays at 1).
    pub fn factor(self, warmup: f64, step: usize, total: usize) -> f64 {
        let warm = (warmup * total as f64).round().max(1.0);
        let rise = ((step + 1) as f64 / warm).min(1.0);
        match self {
            Self::Constant => rise,
            Self::Cosine => {
                let t = step.min(total) as f64 / total.max(1) as f64;
                rise * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_then_cosine_gives_the_hand_computed_rates() {
        let c = LrSchedule::Cosine;
        // 1000 steps, 5 % warm-up = 50 steps
        let cos = |s: f64| 0.5 * (1.0 + (std::f64::consts::PI * s / 1000.0).cos());
        assert!((c.factor(0.05, 0, 1000) - cos(0.0) / 50.0).abs() < 1e-12);
        assert!((c.factor(0.05, 24, 1000) - 0.5 * cos(24.0)).abs() < 1e-12);
        assert!((c.factor(0.05, 49, 1000) - cos(49.0)).abs() < 1e-12);
        assert!((c.factor(0.05, 500, 1000) - 0.5).abs() < 1e-12);
        assert!((c.factor(0.05, 750, 1000) - (0.5 * (1.0 - 0.5f64.sqrt()))).abs() < 1e-12);
        assert!(c.factor(0.05, 999, 1000) < 1e-4);
        // no warm-up: the first step runs at the full rate
        assert_eq!(c.factor(0.0, 0, 1000), 1.0);
        assert_eq!(LrSchedule::Constant.factor(0.0, 999, 1000), 1.0);
        assert_eq!(LrSchedule::Constant.factor(0.1, 4, 100), 0.5);
    }
}
