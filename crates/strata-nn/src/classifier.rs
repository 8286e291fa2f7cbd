//! The lower blocks of a backbone under a new head.

use crate::block::{Block, Features, build_stack, forward_stack};
use crate::error::{NnError, Result};
use crate::spec::{Activation, ArchSpec, BlockSpec, FeatureShape, InputShape};
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// The new head: optional hidden dense layers, then an output layer sized to the classes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadSpec {
    /// hidden layer widths (ReLU), lowest first
    pub hidden: Vec<usize>,
    /// number of classes (output units)
    pub classes: usize,
}

/// The hidden dense layers a user asks for in front of the output layer (`256,128`; empty
/// for none); the class count comes from the data. Serialised as that text.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HiddenLayers(pub Vec<usize>);

impl HiddenLayers {
    /// No hidden layer: the output layer alone.
    pub const NONE: Self = Self(Vec::new());
}

impl std::str::FromStr for HiddenLayers {
    type Err = NnError;
    fn from_str(s: &str) -> Result<Self> {
        // the class count is only known with the data; 2 lets the widths be checked now
        Ok(Self(HeadSpec::parse(s, 2)?.hidden))
    }
}

impl std::fmt::Display for HiddenLayers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let widths: Vec<String> = self.0.iter().map(usize::to_string).collect();
        f.write_str(&widths.join(","))
    }
}

impl TryFrom<String> for HiddenLayers {
    type Error = NnError;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<HiddenLayers> for String {
    fn from(h: HiddenLayers) -> String {
        h.to_string()
    }
}

impl HeadSpec {
    /// Parses a comma-separated list of hidden widths (`""` for none).
    pub fn parse(hidden: &str, classes: usize) -> Result<Self> {
        let widths = hidden
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<usize>().map_err(|_| NnError::BadSpec {
                    spec: hidden.to_string(),
                    reason: format!("head width `{s}` must be a number between 1 and 65536"),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Self::new(widths, classes).map_err(|e| match e {
            NnError::BadSpec { reason, .. } => NnError::BadSpec { spec: hidden.to_string(), reason },
            other => other,
        })
    }

    /// A head with these hidden widths, checked: widths in 1..=65536, at least 2 classes.
    pub fn new(hidden: Vec<usize>, classes: usize) -> Result<Self> {
        let bad = |reason: String| NnError::BadSpec { spec: format!("{hidden:?}"), reason };
        if let Some(w) = hidden.iter().find(|&&w| w == 0 || w > 65_536) {
            return Err(bad(format!("head width `{w}` must be a number between 1 and 65536")));
        }
        if classes < 2 {
            return Err(bad(format!("a classifier needs at least 2 classes, the data has {classes}")));
        }
        Ok(Self { hidden, classes })
    }

    fn blocks(&self) -> Vec<BlockSpec> {
        let hidden = self.hidden.iter().map(|&units| BlockSpec::Dense {
            units,
            batch_norm: false,
            activation: Activation::Relu,
        });
        let output = BlockSpec::Dense { units: self.classes, batch_norm: false, activation: Activation::None };
        hidden.chain(std::iter::once(output)).collect()
    }
}

/// Backbone blocks (reused or fresh) under a head; outputs logits.
#[derive(Module, Debug)]
pub struct Classifier {
    /// the lower blocks, reused from a parent run or trained from scratch
    pub backbone: Vec<Block>,
    /// new layers, always initialised fresh; the last one is the output layer
    pub head: Vec<Block>,
}

impl Classifier {
    /// A classifier with a freshly initialised backbone `arch` (the from-scratch baseline).
    pub fn new(arch: &ArchSpec, head: &HeadSpec, input: InputShape, device: &Device) -> Result<Self> {
        let backbone = build_stack(&arch.blocks, input.into(), device)?;
        Self::with_backbone(backbone, arch, head, input, device)
    }

    /// A classifier on existing backbone blocks (which must be built from `arch`) and a fresh head.
    pub fn with_backbone(
        backbone: Vec<Block>,
        arch: &ArchSpec,
        head: &HeadSpec,
        input: InputShape,
        device: &Device,
    ) -> Result<Self> {
        let features = arch.output_shape(input)?;
        let head = build_stack(&head.blocks(), FeatureShape::Flat(features.numel()), device)?;
        Ok(Self { backbone, head })
    }

    /// A classifier on backbone `arch` where block `i` is `parts[i]` when given and freshly
    /// initialised otherwise (re-initialised or added blocks), under a fresh head.
    pub fn assemble(
        arch: &ArchSpec,
        parts: Vec<Option<Block>>,
        head: &HeadSpec,
        input: InputShape,
        device: &Device,
    ) -> Result<Self> {
        let shapes = arch.shapes(input)?;
        let mut previous = FeatureShape::from(input);
        let mut backbone = Vec::with_capacity(arch.blocks.len());
        for (i, (&spec, part)) in
            arch.blocks.iter().zip(parts.into_iter().chain(std::iter::repeat_with(|| None))).enumerate()
        {
            backbone.push(part.unwrap_or_else(|| Block::new(spec, previous, device)));
            previous = shapes[i];
        }
        Self::with_backbone(backbone, arch, head, input, device)
    }

    /// Backbone features, flattened.
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        forward_stack(&self.backbone, Features::Map(x)).flat()
    }

    /// Logits from the output of the lowest `depth` backbone blocks (cached features of frozen
    /// blocks go in here).
    pub fn forward_from(&self, depth: usize, x: Features) -> Tensor<2> {
        let features = forward_stack(&self.backbone[depth.min(self.backbone.len())..], x).flat();
        forward_stack(&self.head, Features::Flat(features)).flat()
    }

    /// Logits, batch x classes.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        forward_stack(&self.head, Features::Flat(self.features(x))).flat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_widths_are_checked_and_named() {
        assert_eq!(HeadSpec::parse("256, 128", 10).unwrap().hidden, vec![256, 128]);
        assert!(HeadSpec::parse("", 10).unwrap().hidden.is_empty());
        for (bad, needle) in [("abc", "`abc`"), ("0", "`0`"), ("70000", "`70000`")] {
            let e = HeadSpec::parse(bad, 10).unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains(bad), "{bad}: {e}");
        }
        assert!(HeadSpec::new(vec![], 1).unwrap_err().to_string().contains("at least 2 classes"));
    }
}
