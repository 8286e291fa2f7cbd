//! Pretraining methods: each one file behind [`Pretrainer`], registered in [`registry`].

mod ae;
pub mod artifacts;
pub mod cluster;
pub mod contrastive;
mod corruption;
mod dae;
mod epochs;
pub mod gan;
pub mod mutual_info;
pub mod rotation;
pub mod siamese;
pub mod stacked;
pub mod vae;
pub mod views;

use crate::error::{Result, TrainError};
use crate::progress::Observer;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use strata_data::{Dataset, Normalization};
use strata_nn::ArchSpec;

pub use cluster::ClusterSettings;
pub use contrastive::ContrastiveSettings;
pub use corruption::{Corruption, NoiseKind};
pub use siamese::SiameseSettings;
pub use views::ViewSettings;

/// The settings of stage one, declared once (type, default, `--help` text, validation) for
/// `strata pretrain`, `demo`, the examples and library callers. Settings only some methods
/// read are flattened groups declared beside those methods.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(default)]
pub struct PretrainConfig {
    /// Backbone blocks, e.g. `conv32-pool,conv64-pool,dense128` (REF-CAE).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = PretrainConfig::default().arch))]
    pub arch: ArchSpec,
    /// Passes over the unlabeled images.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = PretrainConfig::default().epochs))]
    pub epochs: usize,
    /// Images per optimiser step.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = PretrainConfig::default().batch))]
    pub batch: usize,
    /// Adam learning rate.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = PretrainConfig::default().lr, allow_negative_numbers = true))]
    pub lr: f64,
    /// Seed of initialisation, data order and noise.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = PretrainConfig::default().seed))]
    pub seed: u64,
    /// corruption of the input (`dae`) or of the views (`siamese`)
    #[cfg_attr(feature = "cli", command(flatten))]
    #[serde(flatten)]
    pub corruption: Corruption,
    /// settings of `siamese`
    #[cfg_attr(feature = "cli", command(flatten))]
    #[serde(flatten)]
    pub siamese: SiameseSettings,
    /// settings of `cluster`
    #[cfg_attr(feature = "cli", command(flatten))]
    #[serde(flatten)]
    pub cluster: ClusterSettings,
    /// settings of `contrastive`
    #[cfg_attr(feature = "cli", command(flatten))]
    #[serde(flatten)]
    pub contrastive: ContrastiveSettings,
    /// how the views of `cluster` and `contrastive` are drawn
    #[cfg_attr(feature = "cli", command(flatten))]
    #[serde(flatten)]
    pub views: ViewSettings,
}

impl Default for PretrainConfig {
    /// The defaults of `strata pretrain`: the one place they are written.
    fn default() -> Self {
        Self {
            arch: ArchSpec::reference(),
            epochs: 10,
            batch: 64,
            lr: 1e-3,
            seed: 0,
            corruption: Corruption::default(),
            siamese: SiameseSettings::default(),
            cluster: ClusterSettings::default(),
            contrastive: ContrastiveSettings::default(),
            views: ViewSettings::default(),
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
        self.views.validate()?;
        self.corruption.validate()
    }
}

impl PretrainConfig {
    /// `self` with `method`'s own defaults ([`Pretrainer::defaults`]) in every setting that
    /// `given` says was not chosen by the user (typed, or in a `--config` file): a flag given
    /// always wins. `given` receives the field name (`lr`, `arch`).
    pub fn with_method_defaults(self, method: &dyn Pretrainer, given: impl Fn(&str) -> bool) -> Result<Self> {
        // a value JSON cannot hold (NaN) is refused here, naming its flag, not mangled below
        self.validate()?;
        let json =
            |cfg: &Self| serde_json::to_value(cfg).map_err(|e| TrainError::config("settings", e, "report a bug"));
        let (base, theirs, mut mine) = (json(&Self::default())?, json(&method.defaults())?, json(&self)?);
        if let (Some(base), Some(theirs)) = (base.as_object(), theirs.as_object()) {
            for (key, value) in theirs {
                if base.get(key) != Some(value) && !given(key) {
                    mine[key] = value.clone();
                }
            }
        }
        serde_json::from_value(mine).map_err(|e| TrainError::config("settings", e, "report a bug"))
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
    /// The settings the method starts from where the user gives none: [`PretrainConfig`]'s
    /// defaults, except where a method was measured to need others (see each method's file).
    fn defaults(&self) -> PretrainConfig {
        PretrainConfig::default()
    }
    /// The blocks stage two reuses, as the manifest records them: `--arch`, unless the method
    /// trains more of its network as backbone (`contrastive --reuse-projector`).
    fn reused_arch(&self, cfg: &PretrainConfig) -> Result<ArchSpec> {
        Ok(cfg.arch.clone())
    }
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
        Box::new(cluster::Cluster),
        Box::new(contrastive::Contrastive),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_method_default_fills_only_what_the_user_left_alone() {
        let cluster = method_by_name("cluster").unwrap();
        let own = cluster.defaults();
        assert_ne!(own, PretrainConfig::default(), "cluster has defaults of its own");
        assert_eq!(own.arch.to_string(), cluster::BATCH_NORM_ARCH);
        assert_eq!(method_by_name("gan").unwrap().defaults().arch.to_string(), gan::DCGAN_ARCH);
        // nothing given: the method's defaults, every other setting as typed
        let typed = PretrainConfig { epochs: 3, seed: 7, ..Default::default() };
        let got = typed.clone().with_method_defaults(cluster.as_ref(), |_| false).unwrap();
        assert_eq!(got, PretrainConfig { seed: 7, ..own.clone() });
        let got = typed.clone().with_method_defaults(cluster.as_ref(), |f| f == "epochs").unwrap();
        assert_eq!(got, PretrainConfig { epochs: 3, seed: 7, ..own.clone() });
        // a given flag wins even where it equals the global default
        let got = typed.with_method_defaults(cluster.as_ref(), |f| f == "lr").unwrap();
        assert_eq!(got.lr, PretrainConfig::default().lr);
        assert_eq!((got.batch, &got.arch), (own.batch, &own.arch));
        // a method without defaults of its own changes nothing
        let ae = method_by_name("ae").unwrap();
        let cfg = PretrainConfig { lr: 0.1, ..Default::default() };
        assert_eq!(cfg.clone().with_method_defaults(ae.as_ref(), |_| false).unwrap(), cfg);
    }
}
