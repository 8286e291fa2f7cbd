//! Pretraining methods: each one file behind [`Pretrainer`], registered in [`registry`].

mod ae;
pub mod artifacts;
mod dae;
mod epochs;
pub mod gan;
pub mod rotation;
mod siamese;
pub mod stacked;
pub mod vae;

use crate::error::{Result, TrainError};
use crate::progress::Observer;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use strata_data::{Dataset, Normalization};
use strata_nn::ArchSpec;

/// Settings shared by all pretraining methods.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PretrainConfig {
    /// backbone architecture
    pub arch: ArchSpec,
    /// passes over the unlabeled data
    pub epochs: usize,
    /// images per optimiser step
    pub batch: usize,
    /// Adam learning rate
    pub lr: f64,
    /// seed of initialisation, data order and noise
    pub seed: u64,
    /// corruption level: fraction of pixels masked by `dae` (or the gaussian sigma, in units
    /// of the pixel range), at most that fraction masked by `siamese`
    pub noise: f32,
    /// the kind of corruption `dae` applies
    #[serde(default)]
    pub noise_kind: NoiseKind,
    /// `siamese` with identity labels: images with the same label are twins
    #[serde(default)]
    pub pairs_by_label: bool,
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

impl Default for PretrainConfig {
    /// The defaults of `strata pretrain`.
    fn default() -> Self {
        Self {
            arch: ArchSpec::reference(),
            epochs: 10,
            batch: 64,
            lr: 1e-3,
            seed: 0,
            noise: 0.25,
            noise_kind: NoiseKind::Mask,
            pairs_by_label: false,
        }
    }
}

impl PretrainConfig {
    /// Checks ranges and gives an error naming the flag.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(TrainError::config("--epochs", 0, "train for at least 1 epoch"));
        }
        crate::step::validate_optim(self.batch, self.lr)?;
        if !(0.0..1.0).contains(&self.noise) {
            return Err(TrainError::config("--noise", self.noise, "the masked fraction must be in [0, 1)"));
        }
        Ok(())
    }
}

impl PretrainOutcome {
    /// The weights of `model` with its metrics and pictures.
    pub(crate) fn new<M: burn::module::Module>(
        model: &M,
        metrics: serde_json::Value,
        artifacts: Vec<artifacts::Artifact>,
    ) -> Result<Self> {
        Ok(Self { weights: strata_nn::weights::to_bytes(model)?, metrics, artifacts })
    }
}

/// What a pretraining method hands back.
pub struct PretrainOutcome {
    /// safetensors bytes of the whole pretraining model; `backbone.*` is what stage two reuses
    pub weights: Vec<u8>,
    /// final figures (loss, seconds, throughput) for the manifest
    pub metrics: serde_json::Value,
    /// pictures for the run directory (reconstructions, samples)
    pub artifacts: Vec<artifacts::Artifact>,
}

/// What a pretraining method trains on, and how.
#[derive(Clone, Copy)]
pub struct Job<'a> {
    /// the unlabeled images (labels only read as identities by `siamese --pairs-by-label`)
    pub data: &'a Dataset,
    /// input normalisation, fitted on `data`
    pub norm: &'a Normalization,
    /// settings, already validated
    pub cfg: &'a PretrainConfig,
    /// compute device (without autodiff)
    pub device: &'a Device,
}

/// Receives one JSON object per epoch (the run's `metrics.jsonl`) and the checkpoints.
pub type Log<'a> = dyn crate::recorder::Recorder + 'a;

/// One pretraining method.
pub trait Pretrainer {
    /// Name used with `--method`.
    fn name(&self) -> &'static str;
    /// One-line description for `--help` and the manifest.
    fn describe(&self) -> &'static str;
    /// Trains on the job; implemented by each method.
    fn train(&self, job: &Job, observer: &mut dyn Observer, log: &mut Log) -> Result<PretrainOutcome>;

    /// Checks the settings, then trains on `data`.
    fn pretrain(
        &self,
        data: &Dataset,
        norm: &Normalization,
        cfg: &PretrainConfig,
        device: &Device,
        observer: &mut dyn Observer,
        log: &mut Log,
    ) -> Result<PretrainOutcome> {
        cfg.validate()?;
        self.train(&Job { data, norm, cfg, device }, observer, log)
    }
}

/// Every method strata knows; adding one means adding its file and one line here.
pub fn registry() -> Vec<Box<dyn Pretrainer>> {
    vec![
        Box::new(ae::Autoencoding),
        Box::new(dae::Denoising),
        Box::new(vae::Variational),
        Box::new(stacked::Stacked),
        Box::new(gan::Gan),
        Box::new(rotation::Rotation),
        Box::new(siamese::Siamese),
    ]
}

/// Names of all methods.
pub fn method_names() -> Vec<&'static str> {
    registry().iter().map(|m| m.name()).collect()
}

/// The method called `name`.
pub fn method_by_name(name: &str) -> Result<Box<dyn Pretrainer>> {
    registry()
        .into_iter()
        .find(|m| m.name() == name)
        .ok_or_else(|| TrainError::config("--method", name, &format!("choose one of: {}", method_names().join(", "))))
}

pub(crate) use ae::train_autoencoder;
