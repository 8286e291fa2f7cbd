//! strata's training: pretraining methods behind one trait, fine-tuning in phases,
//! evaluation, and run directories with manifests.

pub mod batch;
pub mod checkpoint;
pub mod cluster_readout;
pub mod device;
pub mod engine;
pub mod error;
pub mod evaluate;
pub mod files;
pub mod finetune;
pub mod flags;
pub mod layout;
pub mod manifest;
pub mod methods;
pub mod optim;
pub mod probe;
pub mod progress;
pub mod recorder;
#[cfg(feature = "replicas")]
pub mod replicas;
pub mod reuse;
pub mod run_dir;
pub mod schedule;
pub mod step;

pub use checkpoint::{CheckpointPolicy, CheckpointStore};
pub use device::DeviceChoice;
pub use error::{Result, TrainError};
pub use evaluate::{Evaluation, evaluate};
pub use finetune::{FinetuneConfig, FinetuneJob, FinetuneOutcome, Init, finetune};
pub use layout::{BackbonePlan, Origin, Surgery};
pub use manifest::{Manifest, PhaseRecord};
pub use methods::{Corruption, NoiseKind, PretrainConfig, PretrainOutcome, Pretrainer, method_by_name, method_names};
pub use optim::{OptimSettings, OptimizerKind};
pub use progress::{Event, Observer};
pub use recorder::{Discard, Recorder, StopFlag};
pub use run_dir::{RunDir, RunWriter};
pub use schedule::LrSchedule;
