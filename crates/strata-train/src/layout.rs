//! Which blocks a fine-tuned backbone is made of: the parent's lower blocks (some of them
//! re-initialised) and new hidden blocks on top. This is step 4 of the source notes' reuse
//! strategy ("drop the top hidden layers", "replace them", "add more") as data.

use crate::error::{Result, TrainError};
use serde::{Deserialize, Serialize};
use strata_nn::{ArchSpec, BlockSpec, InputShape};

/// Where one backbone block of a classifier comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "origin", rename_all = "lowercase")]
pub enum Origin {
    /// the parent's block `index` with its weights: the only kind that is ever frozen
    Parent {
        /// block index in the parent's backbone
        index: usize,
    },
    /// the parent's block `index` re-initialised (same shape) and trained from the start
    Replaced {
        /// block index in the parent's backbone
        index: usize,
    },
    /// a new hidden block from `--add-hidden`
    Added,
    /// random initialisation in a from-scratch run
    Fresh,
    /// weights trained elsewhere (`strata import`)
    Imported,
}

impl Origin {
    /// The origin called `name` (as [`Origin::name`] gives it), for a block taken from the
    /// parent's block `parent_index` when it is one.
    pub fn from_name(name: &str, parent_index: Option<usize>) -> Option<Self> {
        Some(match (name, parent_index) {
            ("parent", Some(index)) => Self::Parent { index },
            ("replaced", Some(index)) => Self::Replaced { index },
            ("added", _) => Self::Added,
            ("fresh", _) => Self::Fresh,
            ("imported", _) => Self::Imported,
            _ => return None,
        })
    }

    /// Short name for tables and manifests.
    pub fn name(self) -> &'static str {
        match self {
            Self::Parent { .. } => "parent",
            Self::Replaced { .. } => "replaced",
            Self::Added => "added",
            Self::Fresh => "fresh",
            Self::Imported => "imported",
        }
    }

    /// The parent's block index, for blocks taken from the parent.
    pub fn parent_index(self) -> Option<usize> {
        match self {
            Self::Parent { index } | Self::Replaced { index } => Some(index),
            Self::Added | Self::Fresh | Self::Imported => None,
        }
    }
}

/// How to cut and extend a parent's backbone: `--reuse`, `--drop-top`, `--replace-top`,
/// `--add-hidden`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Surgery {
    /// lower blocks of the parent to take (None: all of them)
    pub reuse: Option<usize>,
    /// of those, how many top blocks to drop
    pub drop_top: usize,
    /// of the remaining ones, how many top blocks to re-initialise (same shape, trainable)
    pub replace_top: usize,
    /// new hidden blocks stacked on top, lowest first
    pub add_hidden: Vec<BlockSpec>,
}

/// The resolved backbone of a classifier: its architecture and the origin of each block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackbonePlan {
    /// the classifier's backbone blocks, lowest first
    pub arch: ArchSpec,
    /// origin of each block of `arch`
    pub origins: Vec<Origin>,
}

impl BackbonePlan {
    /// Every block freshly initialised: the from-scratch baseline.
    pub fn scratch(arch: ArchSpec) -> Self {
        let origins = vec![Origin::Fresh; arch.blocks.len()];
        Self { arch, origins }
    }

    /// Applies `surgery` to the parent's backbone `parent` for images of shape `input`.
    pub fn from_parent(parent: &ArchSpec, surgery: &Surgery, input: InputShape) -> Result<Self> {
        let k = surgery.reuse.unwrap_or(parent.blocks.len());
        parent.lower(k)?;
        if surgery.drop_top > 0 && surgery.drop_top >= k {
            return Err(TrainError::config(
                "--drop-top",
                surgery.drop_top,
                &format!(
                    "{k} block(s) are reused ({}); drop at most {} so that one is left, or use --from scratch",
                    parent.lower(k)?,
                    k.saturating_sub(1)
                ),
            ));
        }
        let kept = k - surgery.drop_top;
        if surgery.replace_top > kept {
            return Err(TrainError::config(
                "--replace-top",
                surgery.replace_top,
                &format!("only {kept} reused block(s) are left after --reuse/--drop-top; replace at most {kept}"),
            ));
        }
        let mut blocks = parent.blocks[..kept].to_vec();
        let mut origins: Vec<Origin> = (0..kept)
            .map(|index| {
                if index + surgery.replace_top >= kept { Origin::Replaced { index } } else { Origin::Parent { index } }
            })
            .collect();
        blocks.extend_from_slice(&surgery.add_hidden);
        origins.extend(std::iter::repeat_n(Origin::Added, surgery.add_hidden.len()));
        if blocks.is_empty() {
            return Err(TrainError::config(
                "--reuse",
                k,
                "no backbone block is left; reuse at least one block, add one with --add-hidden, or use --from scratch",
            ));
        }
        let arch = ArchSpec { blocks };
        arch.shapes(input)?;
        Ok(Self { arch, origins })
    }

    /// How many lower blocks of the parent must be loaded (kept and replaced ones).
    pub fn parent_blocks(&self) -> usize {
        self.origins.iter().filter(|o| o.parent_index().is_some()).count()
    }

    /// Indices of the blocks holding the parent's weights (the freezable ones), lowest first.
    pub fn reused(&self) -> Vec<usize> {
        (0..self.origins.len()).filter(|&i| matches!(self.origins[i], Origin::Parent { .. })).collect()
    }

    /// Indices of blocks trained from their initialisation in every phase (not the parent's).
    pub fn always_trainable(&self) -> Vec<usize> {
        (0..self.origins.len()).filter(|&i| !matches!(self.origins[i], Origin::Parent { .. })).collect()
    }

    /// True when no block comes from a parent run.
    pub fn is_scratch(&self) -> bool {
        self.origins.iter().all(|o| *o == Origin::Fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MNIST: InputShape = InputShape { channels: 1, height: 28, width: 28 };

    fn parent() -> ArchSpec {
        ArchSpec::reference()
    }

    fn surgery(reuse: Option<usize>, drop_top: usize, replace_top: usize, add: &str) -> Surgery {
        let add_hidden = if add.is_empty() { vec![] } else { ArchSpec::parse(add).unwrap().blocks };
        Surgery { reuse, drop_top, replace_top, add_hidden }
    }

    #[test]
    fn default_reuses_every_parent_block() {
        let p = BackbonePlan::from_parent(&parent(), &Surgery::default(), MNIST).unwrap();
        assert_eq!(p.arch, parent());
        assert_eq!(p.reused(), vec![0, 1, 2]);
        assert_eq!(p.parent_blocks(), 3);
        assert!(p.always_trainable().is_empty());
    }

    #[test]
    fn drop_replace_and_add_give_the_expected_blocks() {
        let p = BackbonePlan::from_parent(&parent(), &surgery(None, 1, 1, "dense64"), MNIST).unwrap();
        assert_eq!(p.arch.to_string(), "conv32-pool,conv64-pool,dense64");
        assert_eq!(p.origins, vec![Origin::Parent { index: 0 }, Origin::Replaced { index: 1 }, Origin::Added]);
        assert_eq!(p.parent_blocks(), 2);
        assert_eq!(p.reused(), vec![0]);
        assert_eq!(p.always_trainable(), vec![1, 2]);
    }

    #[test]
    fn too_deep_surgery_is_a_clear_error() {
        let e = BackbonePlan::from_parent(&parent(), &surgery(None, 3, 0, ""), MNIST).unwrap_err().to_string();
        assert!(e.contains("--drop-top") && e.contains("drop at most 2"), "{e}");
        let e = BackbonePlan::from_parent(&parent(), &surgery(Some(2), 2, 0, ""), MNIST).unwrap_err().to_string();
        assert!(e.contains("drop at most 1"), "{e}");
        let e = BackbonePlan::from_parent(&parent(), &surgery(None, 1, 3, ""), MNIST).unwrap_err().to_string();
        assert!(e.contains("--replace-top") && e.contains("at most 2"), "{e}");
        let e = BackbonePlan::from_parent(&parent(), &surgery(Some(4), 0, 0, ""), MNIST).unwrap_err().to_string();
        assert!(e.contains("--reuse 4"), "{e}");
        let e = BackbonePlan::from_parent(&parent(), &surgery(Some(0), 0, 0, ""), MNIST).unwrap_err().to_string();
        assert!(e.contains("no backbone block is left"), "{e}");
    }

    #[test]
    fn a_conv_added_after_a_dense_block_is_refused() {
        let e = BackbonePlan::from_parent(&parent(), &surgery(None, 0, 0, "conv8"), MNIST).unwrap_err().to_string();
        assert!(e.contains("conv block after a dense block"), "{e}");
        // on the conv part of the backbone a conv block fits
        let p = BackbonePlan::from_parent(&parent(), &surgery(Some(2), 0, 0, "conv8,dense32"), MNIST).unwrap();
        assert_eq!(p.arch.to_string(), "conv32-pool,conv64-pool,conv8,dense32");
    }
}
