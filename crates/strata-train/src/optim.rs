//! The optimiser of stage two: Adam or SGD, with weight decay that skips biases and
//! batch-norm parameters unless asked. Frozen parameters get no gradient, so neither the
//! update nor the decay ever touches them.

use crate::error::{Result, TrainError};
use burn::module::ParamGroup;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, ModuleOptimizer, SgdConfig};
use serde::{Deserialize, Serialize};

/// Which update rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Adam (AdamW, decoupled decay, when weight decay is set)
    #[default]
    Adam,
    /// stochastic gradient descent with momentum (L2 weight decay)
    Sgd,
}

impl std::str::FromStr for OptimizerKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "adam" | "adamw" => Ok(Self::Adam),
            "sgd" => Ok(Self::Sgd),
            _ => Err(format!("unknown optimizer `{s}`; use adam or sgd")),
        }
    }
}

impl std::fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Adam => "adam",
            Self::Sgd => "sgd",
        })
    }
}

/// Optimiser settings of a fine-tuning run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OptimSettings {
    /// update rule
    pub kind: OptimizerKind,
    /// SGD momentum (ignored by Adam)
    pub momentum: f64,
    /// weight decay (0 = off)
    pub weight_decay: f64,
    /// also decay biases and batch-norm parameters
    pub decay_norm_and_bias: bool,
}

impl Default for OptimSettings {
    fn default() -> Self {
        Self { kind: OptimizerKind::Adam, momentum: 0.9, weight_decay: 0.0, decay_norm_and_bias: false }
    }
}

/// Parameters that weight decay leaves alone by default: biases and batch-norm gamma/beta.
pub fn no_decay_group() -> ParamGroup {
    ParamGroup::from_any_predicates(vec![".bias", ".norm."])
}

impl OptimSettings {
    /// Checks ranges and gives an error naming the flag.
    pub fn validate(&self) -> Result<()> {
        if !(self.weight_decay.is_finite() && (0.0..1.0).contains(&self.weight_decay)) {
            return Err(TrainError::config("--weight-decay", self.weight_decay, "use a value in [0, 1), e.g. 1e-4"));
        }
        if !(self.momentum.is_finite() && (0.0..1.0).contains(&self.momentum)) {
            return Err(TrainError::config("--momentum", self.momentum, "use a value in [0, 1), e.g. 0.9"));
        }
        Ok(())
    }

    /// The optimiser; learning rates come from the per-group schedule at each step.
    pub fn build(&self) -> ModuleOptimizer {
        let wd = self.weight_decay as f32;
        let optim = match self.kind {
            // plain Adam when there is no decay, so runs without it match earlier versions bit for bit
            OptimizerKind::Adam if wd == 0.0 => return AdamConfig::new().init(),
            OptimizerKind::Adam => AdamWConfig::new().with_weight_decay(wd).init(),
            OptimizerKind::Sgd => self.sgd(wd).init(),
        };
        if self.decay_norm_and_bias || wd == 0.0 {
            return optim;
        }
        match self.kind {
            OptimizerKind::Adam => {
                optim.with_group(no_decay_group(), AdamWConfig::new().with_weight_decay(0.0).build(), None)
            }
            OptimizerKind::Sgd => optim.with_group(no_decay_group(), self.sgd(0.0).build(), None),
        }
    }

    fn sgd(&self, wd: f32) -> SgdConfig {
        let momentum =
            (self.momentum > 0.0).then(|| MomentumConfig::new().with_momentum(self.momentum).with_dampening(0.0));
        SgdConfig::new().with_momentum(momentum).with_weight_decay((wd > 0.0).then(|| WeightDecayConfig::new(wd)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::GradientsParams;
    use burn::tensor::Device;

    #[derive(Module, Debug)]
    struct Net {
        linear: Linear,
    }

    /// One SGD step at lr 1 with a zero gradient: only weight decay moves anything.
    fn decayed(settings: OptimSettings) -> (f32, f32) {
        let device = Device::default().autodiff();
        let net = Net { linear: LinearConfig::new(3, 2).init(&device) };
        let w0: f32 = net.linear.weight.val().inner().sum().into_scalar();
        let b0: f32 = net.linear.bias.as_ref().unwrap().val().inner().sum().into_scalar();
        let loss = (net.linear.weight.val().sum() + net.linear.bias.as_ref().unwrap().val().sum()) * 0.0;
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        let net = settings.build().step(1.0, net, grads);
        let w1: f32 = net.linear.weight.val().inner().sum().into_scalar();
        let b1: f32 = net.linear.bias.as_ref().unwrap().val().inner().sum().into_scalar();
        (w1 / w0, b1 / b0)
    }

    #[test]
    fn weight_decay_skips_biases_unless_asked() {
        let sgd =
            OptimSettings { kind: OptimizerKind::Sgd, momentum: 0.0, weight_decay: 0.5, decay_norm_and_bias: false };
        let (w, b) = decayed(sgd);
        assert!((w - 0.5).abs() < 1e-5 && (b - 1.0).abs() < 1e-6, "weights x{w}, biases x{b}");
        let (w, b) = decayed(OptimSettings { decay_norm_and_bias: true, ..sgd });
        assert!((w - 0.5).abs() < 1e-5 && (b - 0.5).abs() < 1e-5, "weights x{w}, biases x{b}");
        let adamw = OptimSettings { kind: OptimizerKind::Adam, weight_decay: 0.5, ..sgd };
        let (w, b) = decayed(adamw);
        assert!((w - 0.5).abs() < 1e-5 && (b - 1.0).abs() < 1e-6, "AdamW: weights x{w}, biases x{b}");
    }

    #[test]
    fn out_of_range_settings_name_the_flag() {
        let e = OptimSettings { weight_decay: -1.0, ..Default::default() }.validate().unwrap_err().to_string();
        assert!(e.contains("--weight-decay"), "{e}");
        let e = OptimSettings { momentum: 1.5, ..Default::default() }.validate().unwrap_err().to_string();
        assert!(e.contains("--momentum"), "{e}");
    }
}
