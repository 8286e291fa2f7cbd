//! The manifest: everything needed to understand and reproduce a run.

use crate::layout::Origin;
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
    /// where its weights came from: written as `origin` (`parent`, `replaced`, `added`,
    /// `fresh`, `imported`) and `parent_index` (the parent's block, for parent and replaced)
    #[serde(flatten, with = "origin_fields")]
    pub origin: Origin,
    /// phases in which the block was frozen
    pub frozen_in: Vec<String>,
}

/// An [`Origin`] as the two flat fields a manifest has always had.
mod origin_fields {
    use crate::layout::Origin;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Fields {
        origin: String,
        #[serde(default)]
        parent_index: Option<usize>,
    }

    pub fn serialize<S: Serializer>(o: &Origin, s: S) -> Result<S::Ok, S::Error> {
        Fields { origin: o.name().into(), parent_index: o.parent_index() }.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Origin, D::Error> {
        let f = Fields::deserialize(d)?;
        Origin::from_name(&f.origin, f.parent_index).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "block origin `{}` (parent_index {:?}) is not one of parent, replaced (both with a parent_index), added, fresh, imported",
                f.origin, f.parent_index
            ))
        })
    }
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

impl BlockRecord {
    /// Records of `arch`'s blocks, all of one origin and trainable throughout (a pretraining
    /// run's, an import's).
    pub fn all(arch: &strata_nn::ArchSpec, origin: Origin) -> Vec<Self> {
        let record =
            |(index, b): (usize, &strata_nn::BlockSpec)| Self { index, spec: b.to_string(), origin, frozen_in: vec![] };
        arch.blocks.iter().enumerate().map(record).collect()
    }
}

impl WeightsRecord {
    /// The record before the weights are written ([`crate::RunWriter::finish`] fills it in).
    pub fn pending() -> Self {
        Self { file: String::new(), sha256: String::new(), bytes: 0 }
    }
}

impl Manifest {
    /// The manifest of a run of `kind` on `data` (`input` images, normalised with
    /// `normalization`), stamped with the schema and strata versions and the time now; the
    /// fields a kind uses are set on it, and the weights record is filled when the run is
    /// written.
    pub fn new(kind: RunKind, data: DataRecord, input: InputShape, normalization: Normalization) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            strata_version: env!("CARGO_PKG_VERSION").into(),
            kind,
            method: None,
            created_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            command_line: vec![],
            seed: 0,
            device: String::new(),
            config: serde_json::Value::Null,
            data,
            input,
            arch: String::new(),
            head: None,
            normalization,
            parent: None,
            blocks: vec![],
            phases: vec![],
            weights: WeightsRecord::pending(),
            metrics: serde_json::json!({}),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_origin_is_written_as_the_two_flat_fields_and_read_back() {
        for origin in
            [Origin::Parent { index: 2 }, Origin::Replaced { index: 1 }, Origin::Added, Origin::Fresh, Origin::Imported]
        {
            let b = BlockRecord { index: 3, spec: "dense8".into(), origin, frozen_in: vec!["frozen".into()] };
            let json = serde_json::to_value(&b).unwrap();
            assert_eq!(json["origin"], origin.name());
            assert_eq!(json["parent_index"], serde_json::json!(origin.parent_index()));
            assert_eq!(serde_json::from_value::<BlockRecord>(json).unwrap().origin, origin);
        }
        // as earlier versions wrote it, and a name no version wrote
        let old =
            serde_json::json!({"index": 0, "spec": "dense8", "origin": "added", "parent_index": null, "frozen_in": []});
        assert_eq!(serde_json::from_value::<BlockRecord>(old).unwrap().origin, Origin::Added);
        let bad = serde_json::json!({"index": 0, "spec": "dense8", "origin": "parent", "frozen_in": []});
        let e = serde_json::from_value::<BlockRecord>(bad).unwrap_err().to_string();
        assert!(e.contains("block origin `parent`"), "{e}");
    }
}
