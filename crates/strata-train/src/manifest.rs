//! The manifest: everything needed to understand and reproduce a run.

use serde::{Deserialize, Serialize};
use strata_data::Normalization;
use strata_nn::{HeadSpec, InputShape};

/// Version of the manifest layout; bumped on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// What kind of run produced the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    /// stage one on unlabeled data
    Pretrain,
    /// stage two on a parent run's blocks
    Finetune,
    /// the same classifier from random initialisation
    Scratch,
    /// plain supervised training (`strata train`): a source network to reuse
    Train,
    /// weights trained elsewhere (`strata import`)
    Import,
}

/// Which data the run used.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataRecord {
    /// the SPEC the user gave
    pub spec: String,
    /// sha256 over shape, pixels and labels of the loaded dataset
    pub fingerprint: String,
    /// images loaded
    pub images: usize,
    /// class names, in label order (empty for unlabeled data)
    pub class_names: Vec<String>,
    /// indices of the labeled images used (stratified subset), when a subset was drawn
    pub label_indices: Option<Vec<usize>>,
}

/// The run this one reused blocks from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParentRecord {
    /// the parent's directory as given
    pub path: String,
    /// sha256 of the parent's weights file
    pub weights_sha256: String,
    /// the parent's full backbone
    pub arch: String,
    /// how many of the parent's blocks kept their weights
    pub reused_blocks: usize,
}

/// Where each backbone block came from and when it was trainable.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlockRecord {
    /// block index
    pub index: usize,
    /// block spec
    pub spec: String,
    /// `parent` (reused weights), `replaced` (parent's shape, re-initialised), `added` or `fresh`
    pub origin: String,
    /// the parent's block this one was taken from (parent and replaced blocks)
    #[serde(default)]
    pub parent_index: Option<usize>,
    /// phases in which the block was frozen
    pub frozen_in: Vec<String>,
}

/// What happened in one phase (recorded in the manifest).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseRecord {
    /// `frozen`, `unfrozen` (`unfrozen-N` when unfreezing gradually) or `scratch`
    pub name: String,
    /// optimiser steps taken
    pub steps: usize,
    /// indices of backbone blocks that were trainable
    pub trainable_blocks: Vec<usize>,
    /// learning rate of the topmost trainable reused block (None: all reused blocks frozen)
    pub backbone_lr: Option<f64>,
    /// learning rate of each backbone block (None: frozen)
    #[serde(default)]
    pub block_lr: Vec<Option<f64>>,
    /// learning rate of the head
    pub head_lr: f64,
    /// mean loss over the phase's last logging window
    pub final_loss: f32,
    /// accuracy on the evaluation set at the end of the phase, when one was given
    pub eval_accuracy: Option<f64>,
    /// wall-clock seconds
    pub seconds: f64,
}

/// The weights file and its checksum.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WeightsRecord {
    /// file name inside the run directory
    pub file: String,
    /// sha256 of its bytes
    pub sha256: String,
    /// its size
    pub bytes: u64,
}

/// `manifest.json` of a run directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// layout version ([`SCHEMA_VERSION`])
    pub schema_version: u32,
    /// strata version that wrote it
    pub strata_version: String,
    /// kind of run
    pub kind: RunKind,
    /// pretraining method (pretrain runs)
    pub method: Option<String>,
    /// seconds since the Unix epoch at completion
    pub created_unix: u64,
    /// argv of the command that made it
    pub command_line: Vec<String>,
    /// the seed
    pub seed: u64,
    /// compute device
    pub device: String,
    /// the full resolved configuration
    pub config: serde_json::Value,
    /// training data
    pub data: DataRecord,
    /// image shape the network takes
    pub input: InputShape,
    /// backbone of this run's model
    pub arch: String,
    /// head of a classifier run
    pub head: Option<HeadSpec>,
    /// input normalisation (inherited from the parent when blocks are reused)
    pub normalization: Normalization,
    /// parent run, when blocks were reused
    pub parent: Option<ParentRecord>,
    /// per-block origin and freezing
    pub blocks: Vec<BlockRecord>,
    /// fine-tuning phases
    pub phases: Vec<PhaseRecord>,
    /// the weights file
    pub weights: WeightsRecord,
    /// final figures (loss, accuracy, seconds ...)
    pub metrics: serde_json::Value,
}
