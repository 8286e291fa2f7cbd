//! Choosing the compute device from `--device cpu|ndarray|vulkan[:N]|cuda[:N]`.

use crate::error::{Result, TrainError};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A device the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceChoice {
    /// burn's flex CPU backend (the default)
    Cpu,
    /// burn's deprecated ndarray CPU backend (feature `ndarray`)
    Ndarray,
    /// a GPU through Vulkan (feature `vulkan`)
    Vulkan(usize),
    /// an NVIDIA GPU through CUDA (feature `cuda`)
    Cuda(usize),
}

impl DeviceChoice {
    /// Parses `cpu`, `ndarray`, `vulkan`, `vulkan:1`, `cuda`, `cuda:0`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |reason: &str| TrainError::Device { device: s.into(), reason: reason.into() };
        let (name, index) = match s.split_once(':') {
            Some((n, i)) => (n, Some(i.parse::<usize>().map_err(|_| bad("the index after `:` must be a number"))?)),
            None => (s, None),
        };
        match (name, index) {
            ("cpu" | "flex", None) => Ok(Self::Cpu),
            ("ndarray", None) => Ok(Self::Ndarray),
            ("vulkan" | "gpu", i) => Ok(Self::Vulkan(i.unwrap_or(0))),
            ("cuda", i) => Ok(Self::Cuda(i.unwrap_or(0))),
            _ => Err(bad("expected cpu, ndarray, vulkan[:N] or cuda[:N]")),
        }
    }

    /// The burn device (without autodiff), checked to work with a tiny computation.
    pub fn device(self) -> Result<Device> {
        let device = self.build()?;
        // GPU devices initialise lazily and panic on first use when absent: probe once here
        // so the user gets an error naming the device instead of a panic mid-run.
        let probe = device.clone();
        let ok = std::panic::catch_unwind(move || {
            let t = Tensor::<1>::from_floats([1.0, 2.0], &probe);
            t.sum().into_scalar::<f32>()
        });
        match ok {
            Ok(v) if (v - 3.0).abs() < 1e-6 => Ok(device),
            Ok(v) => Err(TrainError::Device {
                device: self.to_string(),
                reason: format!("self-test computed {v} instead of 3"),
            }),
            Err(_) => Err(TrainError::Device {
                device: self.to_string(),
                reason: "the device could not be initialised (no such GPU, or its driver is missing); use --device cpu"
                    .into(),
            }),
        }
    }

    fn build(self) -> Result<Device> {
        let missing = |feature: &str| TrainError::Device {
            device: self.to_string(),
            reason: format!(
                "this strata binary was built without the `{feature}` feature; rebuild with `cargo build --release --features {feature}`"
            ),
        };
        match self {
            Self::Cpu => Ok(Device::flex()),
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)]
            Self::Ndarray => Ok(Device::ndarray()),
            #[cfg(not(feature = "ndarray"))]
            Self::Ndarray => Err(missing("ndarray")),
            #[cfg(feature = "vulkan")]
            Self::Vulkan(i) => Ok(Device::vulkan(burn::tensor::DeviceKind::DiscreteGpu(i))),
            #[cfg(not(feature = "vulkan"))]
            Self::Vulkan(_) => Err(missing("vulkan")),
            #[cfg(feature = "cuda")]
            Self::Cuda(i) => Ok(Device::cuda(i)),
            #[cfg(not(feature = "cuda"))]
            Self::Cuda(_) => Err(missing("cuda")),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => write!(f, "cpu"),
            Self::Ndarray => write!(f, "ndarray"),
            Self::Vulkan(i) => write!(f, "vulkan:{i}"),
            Self::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        assert_eq!(DeviceChoice::parse("cpu").unwrap(), DeviceChoice::Cpu);
        assert_eq!(DeviceChoice::parse("cuda:1").unwrap(), DeviceChoice::Cuda(1));
        assert_eq!(DeviceChoice::parse("vulkan").unwrap().to_string(), "vulkan:0");
        assert!(DeviceChoice::parse("tpu").unwrap_err().to_string().contains("expected cpu"));
        assert!(DeviceChoice::parse("cuda:x").unwrap_err().to_string().contains("number"));
    }

    #[test]
    fn cpu_works() {
        assert!(DeviceChoice::Cpu.device().is_ok());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn missing_feature_names_the_fix() {
        let e = DeviceChoice::Cuda(0).device().unwrap_err().to_string();
        assert!(e.contains("--features cuda"), "{e}");
    }
}
