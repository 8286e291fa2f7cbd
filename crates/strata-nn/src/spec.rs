//! The architecture spec: a short string such as `conv32-pool,conv64-pool,dense128` that
//! names the blocks of a backbone, and the shapes they produce.

use crate::error::{NnError, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The REF-CAE encoder of the PyTorch peer, so the two can be compared layer for layer.
pub const REF_CAE: &str = "conv32-pool,conv64-pool,dense128";

/// Non-linearity applied at the end of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// max(0, x)
    #[default]
    Relu,
    /// max(0.01 x, x) (PyTorch's default slope)
    Leaky,
    /// max(0.2 x, x): the slope of DCGAN's discriminator (Radford et al. 2016)
    #[serde(rename = "leaky0.2")]
    LeakyDcgan,
    /// tanh(x)
    Tanh,
    /// 1 / (1 + e^-x)
    Sigmoid,
    /// identity (logits, linear codes)
    None,
}

impl Activation {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "relu" => Self::Relu,
            "leaky" => Self::Leaky,
            "leaky0.2" => Self::LeakyDcgan,
            "tanh" => Self::Tanh,
            "sigmoid" => Self::Sigmoid,
            "none" | "linear" => Self::None,
            _ => return None,
        })
    }

    /// Name used in spec strings.
    pub fn name(self) -> &'static str {
        match self {
            Self::Relu => "relu",
            Self::Leaky => "leaky",
            Self::LeakyDcgan => "leaky0.2",
            Self::Tanh => "tanh",
            Self::Sigmoid => "sigmoid",
            Self::None => "none",
        }
    }
}

/// One block of a backbone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum BlockSpec {
    /// conv (same padding, optional stride) → optional batch norm → activation → optional
    /// 2x2 max pool
    Conv {
        channels: usize,
        kernel: usize,
        /// step of the kernel: 2 halves the map as a pool would, with learned weights (DCGAN)
        #[serde(default = "one")]
        stride: usize,
        batch_norm: bool,
        pool: bool,
        activation: Activation,
    },
    /// linear → optional batch norm → activation (flattens a feature map first)
    Dense { units: usize, batch_norm: bool, activation: Activation },
}

fn one() -> usize {
    1
}

impl BlockSpec {
    fn parse(token: &str, spec: &str) -> Result<Self> {
        let bad = |reason: String| NnError::BadSpec { spec: spec.to_string(), reason };
        let mut parts = token.split('-');
        let head = parts.next().unwrap_or_default();
        let (kind, rest) = if let Some(rest) = head.strip_prefix("conv") {
            ("conv", rest)
        } else if let Some(rest) = head.strip_prefix("dense") {
            ("dense", rest)
        } else {
            return Err(bad(format!("block `{token}` must start with `conv` or `dense`")));
        };
        let (rest, stride) = match rest.split_once('s') {
            Some((r, s)) if kind == "conv" => (r, Some(s)),
            _ => (rest, None),
        };
        let stride = match stride {
            Some(s) => match s.parse::<usize>() {
                Ok(s) if (1..=4).contains(&s) => s,
                _ => return Err(bad(format!("block `{token}`: stride `{s}` must be 1 to 4"))),
            },
            None => 1,
        };
        let (size, kernel) = match rest.split_once('k') {
            Some((c, k)) if kind == "conv" => (c, Some(k)),
            _ => (rest, None),
        };
        let size: usize = size.parse().map_err(|_| bad(format!("block `{token}`: `{size}` is not a size")))?;
        if size == 0 || size > 65_536 {
            return Err(bad(format!("block `{token}`: size {size} must be between 1 and 65536")));
        }
        let kernel = match kernel {
            Some(k) => match k.parse::<usize>() {
                Ok(k) if k % 2 == 1 && k <= 15 => k,
                _ => return Err(bad(format!("block `{token}`: kernel `{k}` must be odd and at most 15"))),
            },
            None => 3,
        };
        let (mut batch_norm, mut pool, mut activation) = (false, false, Activation::Relu);
        for flag in parts {
            match flag {
                "bn" => batch_norm = true,
                "pool" if kind == "conv" => pool = true,
                other => match Activation::parse(other) {
                    Some(a) => activation = a,
                    None => return Err(bad(format!("block `{token}`: unknown option `{other}`"))),
                },
            }
        }
        if pool && stride > 1 {
            return Err(bad(format!(
                "block `{token}`: a block strides or pools, not both; drop `-pool` or `s{stride}`"
            )));
        }
        Ok(match kind {
            "conv" => Self::Conv { channels: size, kernel, stride, batch_norm, pool, activation },
            _ => Self::Dense { units: size, batch_norm, activation },
        })
    }
}

impl fmt::Display for BlockSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (batch_norm, pool, activation) = match *self {
            Self::Conv { channels, kernel, stride, batch_norm, pool, activation } => {
                write!(f, "conv{channels}")?;
                if kernel != 3 {
                    write!(f, "k{kernel}")?;
                }
                if stride != 1 {
                    write!(f, "s{stride}")?;
                }
                (batch_norm, pool, activation)
            }
            Self::Dense { units, batch_norm, activation } => {
                write!(f, "dense{units}")?;
                (batch_norm, false, activation)
            }
        };
        if batch_norm {
            write!(f, "-bn")?;
        }
        if pool {
            write!(f, "-pool")?;
        }
        if activation != Activation::Relu {
            write!(f, "-{}", activation.name())?;
        }
        Ok(())
    }
}

/// Shape of one image fed to the network (channels, height, width).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputShape {
    /// channels (1 grayscale, 3 colour)
    pub channels: usize,
    /// height in pixels
    pub height: usize,
    /// width in pixels
    pub width: usize,
}

impl fmt::Display for InputShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}x{}", self.channels, self.height, self.width)
    }
}

/// What a block produces for one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FeatureShape {
    /// a feature map (channels, height, width)
    Map(usize, usize, usize),
    /// a flat vector
    Flat(usize),
}

/// Most values one image may take at the input or at any block's output (2^31): more is
/// no network that can be trained, and a product of three sizes from a hostile manifest
/// must not overflow.
pub const MAX_VALUES: usize = 1 << 31;

impl From<InputShape> for FeatureShape {
    fn from(i: InputShape) -> Self {
        Self::Map(i.channels, i.height, i.width)
    }
}

impl FeatureShape {
    /// What `block` makes of features of this shape: the shape rule, written once for
    /// [`ArchSpec::shapes`] and the stacks that are built from it. The error completes
    /// "block N …".
    pub fn after(self, block: BlockSpec) -> std::result::Result<FeatureShape, String> {
        match (block, self) {
            (BlockSpec::Conv { channels, pool, stride, .. }, FeatureShape::Map(_, h, w)) => {
                if pool && (h < 2 || w < 2) {
                    return Err(format!("pools a {h}x{w} map; remove a `-pool`"));
                }
                // same padding (k / 2, odd k): the kernel visits every stride-th position
                let s = stride.max(1);
                let (h, w) = ((h.max(1) - 1) / s + 1, (w.max(1) - 1) / s + 1);
                let (h, w) = if pool { (h / 2, w / 2) } else { (h, w) };
                let map = FeatureShape::Map(channels, h, w);
                if map.numel() > MAX_VALUES {
                    return Err(format!(
                        "would output {channels}x{h}x{w} values per image, more than {MAX_VALUES}; use fewer channels or pool earlier"
                    ));
                }
                Ok(map)
            }
            (BlockSpec::Conv { .. }, FeatureShape::Flat(_)) => Err("is a conv block after a dense block".into()),
            (BlockSpec::Dense { units, .. }, _) => Ok(FeatureShape::Flat(units)),
        }
    }

    /// Number of values per image (saturating: shapes that [`ArchSpec::shapes`] returns
    /// never come near, but one built by hand cannot overflow).
    pub fn numel(self) -> usize {
        match self {
            Self::Map(c, h, w) => c.saturating_mul(h).saturating_mul(w),
            Self::Flat(n) => n,
        }
    }
}

impl fmt::Display for FeatureShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Map(c, h, w) => write!(f, "{c}x{h}x{w}"),
            Self::Flat(n) => write!(f, "{n}"),
        }
    }
}

/// A backbone architecture: the ordered blocks. Serialised as its spec text
/// (`conv32-pool,conv64-pool,dense128`), the form users type in flags and config files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ArchSpec {
    /// blocks, lowest first
    pub blocks: Vec<BlockSpec>,
}

impl ArchSpec {
    /// Parses `conv32-pool,conv64-pool,dense128`-style specs.
    pub fn parse(spec: &str) -> Result<Self> {
        let trimmed = spec.trim();
        if trimmed.is_empty() {
            return Err(NnError::BadSpec { spec: spec.into(), reason: "it is empty".into() });
        }
        let blocks = trimmed.split(',').map(|t| BlockSpec::parse(t.trim(), spec)).collect::<Result<Vec<_>>>()?;
        if blocks.len() > 64 {
            return Err(NnError::BadSpec { spec: spec.into(), reason: "more than 64 blocks".into() });
        }
        let mut seen_dense = false;
        for b in &blocks {
            match b {
                BlockSpec::Dense { .. } => seen_dense = true,
                BlockSpec::Conv { .. } if seen_dense => {
                    return Err(NnError::BadSpec {
                        spec: spec.into(),
                        reason: "a conv block cannot follow a dense block".into(),
                    });
                }
                BlockSpec::Conv { .. } => {}
            }
        }
        Ok(Self { blocks })
    }

    /// The reference architecture REF-CAE.
    pub fn reference() -> Self {
        Self::parse(REF_CAE).unwrap_or_else(|_| unreachable!("REF_CAE is a valid spec"))
    }

    /// The first `k` blocks.
    pub fn lower(&self, k: usize) -> Result<Self> {
        if k > self.blocks.len() {
            return Err(NnError::ReuseTooDeep { asked: k, available: self.blocks.len(), spec: self.to_string() });
        }
        Ok(Self { blocks: self.blocks[..k].to_vec() })
    }

    /// Shape after each block for the given input (index i = output of block i).
    pub fn shapes(&self, input: InputShape) -> Result<Vec<FeatureShape>> {
        let err = |reason: String| NnError::ShapeMismatch { spec: self.to_string(), input: input.to_string(), reason };
        if input.channels == 0 || input.height == 0 || input.width == 0 {
            return Err(err("the input has a zero dimension".into()));
        }
        if FeatureShape::from(input).numel() > MAX_VALUES {
            return Err(err(format!("the input holds more than {MAX_VALUES} values per image")));
        }
        let mut cur = FeatureShape::from(input);
        let mut out = Vec::with_capacity(self.blocks.len());
        for (i, b) in self.blocks.iter().enumerate() {
            cur = cur.after(*b).map_err(|reason| err(format!("block {i} {reason}")))?;
            out.push(cur);
        }
        Ok(out)
    }

    /// Shape of the backbone's output (the input itself when there are no blocks).
    pub fn output_shape(&self, input: InputShape) -> Result<FeatureShape> {
        Ok(self.shapes(input)?.last().copied().unwrap_or(input.into()))
    }
}

impl fmt::Display for ArchSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.blocks.iter().enumerate() {
            if i > 0 {
                write!(f, ",")?;
            }
            write!(f, "{b}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for ArchSpec {
    type Err = NnError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl TryFrom<String> for ArchSpec {
    type Error = NnError;
    fn try_from(s: String) -> Result<Self> {
        Self::parse(&s)
    }
}

impl From<ArchSpec> for String {
    fn from(a: ArchSpec) -> String {
        a.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MNIST: InputShape = InputShape { channels: 1, height: 28, width: 28 };

    #[test]
    fn reference_shapes_match_ref_cae() {
        let s = ArchSpec::reference();
        assert_eq!(
            s.shapes(MNIST).unwrap(),
            vec![FeatureShape::Map(32, 14, 14), FeatureShape::Map(64, 7, 7), FeatureShape::Flat(128)]
        );
    }

    #[test]
    fn parses_options() {
        let s = ArchSpec::parse("conv16k5-bn-pool-tanh, dense10-none").unwrap();
        assert_eq!(
            s.blocks[0],
            BlockSpec::Conv {
                channels: 16,
                kernel: 5,
                stride: 1,
                batch_norm: true,
                pool: true,
                activation: Activation::Tanh
            }
        );
        assert_eq!(s.blocks[1], BlockSpec::Dense { units: 10, batch_norm: false, activation: Activation::None });
        assert_eq!(s.to_string(), "conv16k5-bn-pool-tanh,dense10-none");
    }

    #[test]
    fn strided_leaky_blocks_halve_the_map_like_dcgan() {
        let s = ArchSpec::parse("conv64s2-leaky0.2,conv128k5s2-bn-leaky0.2,dense32").unwrap();
        assert!(matches!(s.blocks[0], BlockSpec::Conv { stride: 2, activation: Activation::LeakyDcgan, .. }));
        assert_eq!(s.to_string(), "conv64s2-leaky0.2,conv128k5s2-bn-leaky0.2,dense32");
        let shapes = s.shapes(MNIST).unwrap();
        assert_eq!(shapes[..2], [FeatureShape::Map(64, 14, 14), FeatureShape::Map(128, 7, 7)]);
        // odd sides round up: 7 -> 4 -> 2
        let odd = ArchSpec::parse("conv4s2,conv4s2").unwrap();
        let seven = InputShape { channels: 1, height: 7, width: 5 };
        assert_eq!(odd.shapes(seven).unwrap(), vec![FeatureShape::Map(4, 4, 3), FeatureShape::Map(4, 2, 2)]);
    }

    #[test]
    fn rejects_bad_specs_with_reason() {
        for (bad, needle) in [
            ("", "empty"),
            ("conv", "not a size"),
            ("convx", "not a size"),
            ("conv0", "between 1"),
            ("conv8k4", "odd"),
            ("mlp3", "must start"),
            ("dense8,conv8", "cannot follow"),
            ("conv8-wat", "unknown option"),
            ("dense8-pool", "unknown option"),
            ("conv8s0", "stride"),
            ("conv8s5", "stride"),
            ("conv8s2-pool", "strides or pools"),
            ("conv8-leaky0.3", "unknown option"),
        ] {
            let e = ArchSpec::parse(bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn too_much_pooling_is_an_error() {
        let s = ArchSpec::parse("conv8-pool,conv8-pool,conv8-pool,conv8-pool,conv8-pool").unwrap();
        let e = s.shapes(MNIST).unwrap_err().to_string();
        assert!(e.contains("pools a 1x1 map"), "{e}");
    }

    #[test]
    fn huge_inputs_and_maps_are_errors_not_overflows() {
        // Found by the arch_spec fuzz target: the input shape came from the bytes
        // "conv32-pool," (as a manifest's `input` could), and numel() overflowed.
        let bytes = b"conv32-pool,conv64-pool,dense128";
        let d = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]) as usize;
        let input = InputShape { channels: d(0), height: d(4), width: d(8) };
        let spec = ArchSpec::parse(std::str::from_utf8(&bytes[12..]).unwrap()).unwrap();
        let e = spec.shapes(input).unwrap_err().to_string();
        assert!(e.contains("more than 2147483648 values"), "{e}");
        let e = ArchSpec::parse("conv65536").unwrap().shapes(InputShape { channels: 3, height: 8192, width: 8192 });
        assert!(e.unwrap_err().to_string().contains("block 0 would output 65536x8192x8192"));
        assert_eq!(FeatureShape::Map(usize::MAX, 2, 2).numel(), usize::MAX);
        let big = InputShape { channels: 3, height: 8192, width: 8192 };
        assert_eq!(ArchSpec::reference().output_shape(big).unwrap(), FeatureShape::Flat(128));
    }

    #[test]
    fn lower_checks_depth() {
        let s = ArchSpec::reference();
        assert_eq!(s.lower(2).unwrap().blocks.len(), 2);
        assert!(s.lower(4).unwrap_err().to_string().contains("--reuse 4"));
    }

    fn block() -> impl Strategy<Value = BlockSpec> {
        let act = prop_oneof![
            Just(Activation::Relu),
            Just(Activation::Leaky),
            Just(Activation::LeakyDcgan),
            Just(Activation::Tanh),
            Just(Activation::Sigmoid),
            Just(Activation::None)
        ];
        prop_oneof![
            (1usize..512, 0usize..4, 1usize..=3, any::<bool>(), any::<bool>(), act.clone()).prop_map(
                |(channels, k, stride, batch_norm, pool, activation)| BlockSpec::Conv {
                    channels,
                    kernel: 2 * k + 1,
                    stride: if pool { 1 } else { stride },
                    batch_norm,
                    pool,
                    activation
                }
            ),
            (1usize..512, any::<bool>(), act).prop_map(|(units, batch_norm, activation)| BlockSpec::Dense {
                units,
                batch_norm,
                activation
            }),
        ]
    }

    proptest! {
        #[test]
        fn display_round_trips(mut blocks in proptest::collection::vec(block(), 1..6)) {
            // convs first, then denses: the only valid order
            blocks.sort_by_key(|b| matches!(b, BlockSpec::Dense { .. }));
            let spec = ArchSpec { blocks };
            let again = ArchSpec::parse(&spec.to_string()).unwrap();
            prop_assert_eq!(spec, again);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = ArchSpec::parse(&s);
        }
    }
}
