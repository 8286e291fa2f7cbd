//! Weights from and for other frameworks. PyTorch names batch-norm parameters `weight` and
//! `bias` (strata: `gamma`, `beta`), keeps a `num_batches_tracked` counter, and stores a
//! Linear weight as out x in (burn: in x out); conv weights agree. Import maps the file's
//! names with user rules, converts layouts, and compares every tensor with the model: a
//! [`MatchReport`] says what matched, what is missing, unused or of another shape.

use crate::error::{NnError, Result};
use regex::Regex;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// One tensor, as f32 values (or the i64 counter PyTorch keeps in batch norm).
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// floating point values (f16, bf16 and f64 are converted)
    F32(Vec<f32>),
    /// integer values
    I64(Vec<i64>),
}

/// A named tensor's shape and values.
#[derive(Debug, Clone, PartialEq)]
pub struct RawTensor {
    /// dimensions
    pub shape: Vec<usize>,
    /// values, row-major
    pub values: Values,
}

/// Tensors by name, sorted.
pub type TensorMap = BTreeMap<String, RawTensor>;

/// Element types a weights file may hold.
#[derive(Debug, Clone, Copy)]
enum Element {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
}

/// Little-endian f32 bytes as values (the element type of every file strata writes).
pub(crate) fn f32_values(d: &[u8]) -> Vec<f32> {
    d.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// Little-endian bytes of one tensor as values.
fn decode(kind: Element, d: &[u8]) -> Values {
    match kind {
        Element::F32 => Values::F32(f32_values(d)),
        Element::F64 => {
            Values::F32(d.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32).collect())
        }
        Element::F16 => Values::F32(d.chunks_exact(2).map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect()),
        Element::BF16 => Values::F32(
            d.chunks_exact(2).map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16)).collect(),
        ),
        Element::I64 => {
            Values::I64(d.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect())
        }
        Element::I32 => {
            Values::I64(d.chunks_exact(4).map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect())
        }
    }
}

/// Reads every tensor of a safetensors file (`path` is for messages).
pub fn read_safetensors(bytes: &[u8], path: &Path) -> Result<TensorMap> {
    let bad = |reason: String| NnError::Weights { path: path.into(), reason };
    let st = SafeTensors::deserialize(bytes).map_err(|e| bad(format!("not a safetensors file ({e})")))?;
    let mut out = TensorMap::new();
    for (name, view) in st.tensors() {
        let kind = match view.dtype() {
            Dtype::F32 => Element::F32,
            Dtype::F64 => Element::F64,
            Dtype::F16 => Element::F16,
            Dtype::BF16 => Element::BF16,
            Dtype::I64 => Element::I64,
            Dtype::I32 => Element::I32,
            other => {
                return Err(bad(format!("tensor `{name}` has dtype {other:?}; only numeric tensors can be imported")));
            }
        };
        out.insert(name, RawTensor { shape: view.shape().to_vec(), values: decode(kind, view.data()) });
    }
    Ok(out)
}

/// Reads every tensor of a PyTorch `torch.save` file (`.pt`, `.pth`; zip or legacy format).
/// A dict around the state dict shows up as a name prefix (`state_dict.`), removed later.
pub fn read_pytorch(path: &Path) -> Result<TensorMap> {
    use burn::store::pytorch_reader::{DType, PytorchReader};
    let bad = |reason: String| NnError::Weights { path: path.into(), reason };
    let reader = PytorchReader::new(path).map_err(|e| bad(format!("not a readable PyTorch file ({e})")))?;
    let mut out = TensorMap::new();
    for (name, t) in reader.into_tensors() {
        let kind = match t.dtype() {
            DType::F32 => Element::F32,
            DType::F64 => Element::F64,
            DType::F16 => Element::F16,
            DType::BF16 => Element::BF16,
            DType::I64 => Element::I64,
            DType::I32 => Element::I32,
            other => {
                return Err(bad(format!("tensor `{name}` has dtype {other:?}; only numeric tensors can be imported")));
            }
        };
        let bytes = t.read().map_err(|e| bad(format!("tensor `{name}`: {e}")))?;
        out.insert(name, RawTensor { shape: t.shape().to_vec(), values: decode(kind, &bytes) });
    }
    Ok(out)
}

fn f16_to_f32(h: u16) -> f32 {
    half::f16::from_bits(h).to_f32()
}

/// Writes tensors as safetensors bytes (keys sorted, so equal maps give equal bytes).
pub fn write_safetensors(tensors: &TensorMap) -> Result<Vec<u8>> {
    let fail = |e: String| NnError::Weights { path: "<memory>".into(), reason: e };
    let raw: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(k, t)| {
            let (dtype, bytes) = match &t.values {
                Values::F32(v) => (Dtype::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
                Values::I64(v) => (Dtype::I64, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            };
            (k.clone(), dtype, t.shape.clone(), bytes)
        })
        .collect();
    let views = raw
        .iter()
        .map(|(k, d, s, b)| TensorView::new(*d, s.clone(), b).map(|v| (k.as_str(), v)))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| fail(e.to_string()))?;
    safetensors::serialize(views, None).map_err(|e| fail(e.to_string()))
}

fn transpose(t: &RawTensor) -> RawTensor {
    match (&t.values, t.shape.as_slice()) {
        (Values::F32(v), &[r, c]) => {
            let mut out = vec![0f32; v.len()];
            for i in 0..r {
                for j in 0..c {
                    out[j * r + i] = v[i * c + j];
                }
            }
            RawTensor { shape: vec![c, r], values: Values::F32(out) }
        }
        _ => t.clone(),
    }
}

/// strata's tensors with PyTorch's names and layouts: batch norm `weight`/`bias` and a
/// `num_batches_tracked` counter, Linear weights transposed to out x in.
pub fn to_pytorch(ours: &TensorMap) -> TensorMap {
    let mut out = TensorMap::new();
    for (name, t) in ours {
        if let Some(base) = name.strip_suffix(".norm.gamma") {
            out.insert(format!("{base}.norm.weight"), t.clone());
            out.insert(
                format!("{base}.norm.num_batches_tracked"),
                RawTensor { shape: vec![], values: Values::I64(vec![0]) },
            );
        } else if let Some(base) = name.strip_suffix(".norm.beta") {
            out.insert(format!("{base}.norm.bias"), t.clone());
        } else if name.ends_with(".linear.weight") {
            out.insert(name.clone(), transpose(t));
        } else {
            out.insert(name.clone(), t.clone());
        }
    }
    out
}

/// A renaming rule `FROM=TO`: a regular expression and its replacement (`$1` for groups).
#[derive(Debug, Clone)]
pub struct MapRule {
    from: Regex,
    to: String,
}

impl MapRule {
    /// Parses `FROM=TO`.
    pub fn parse(rule: &str) -> Result<Self> {
        let bad = |reason: String| NnError::BadSpec { spec: rule.into(), reason };
        let (from, to) = rule
            .split_once('=')
            .ok_or_else(|| bad("a --map rule is FROM=TO, e.g. 'features\\.(\\d+)=backbone.$1'".into()))?;
        let from = Regex::new(from).map_err(|e| bad(format!("`{from}` is not a regular expression: {e}")))?;
        Ok(Self { from, to: to.into() })
    }

    /// The rule as given.
    pub fn text(&self) -> String {
        format!("{}={}", self.from.as_str(), self.to)
    }
}

/// Where a file's tensors go: PyTorch conventions undone and names mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// PyTorch names and layouts (what `strata export --pytorch-names` writes)
    Pytorch,
    /// strata's own names and layouts
    Strata,
}

/// The file's tensors under strata's names and layouts, and for each the name it had in
/// the file. `module.` prefixes (DataParallel) and a `state_dict.` level are removed, then the
/// first matching rule renames; names matching `drop` are left out.
pub fn from_file(
    file: &TensorMap,
    layout: Layout,
    rules: &[MapRule],
    drop: &[Regex],
) -> (TensorMap, BTreeMap<String, String>) {
    let mut out = TensorMap::new();
    let mut source = BTreeMap::new();
    for (theirs, t) in file {
        if drop.iter().any(|d| d.is_match(theirs)) {
            continue;
        }
        let mut name = theirs.strip_prefix("state_dict.").unwrap_or(theirs).to_string();
        while let Some(rest) = name.strip_prefix("module.") {
            name = rest.to_string();
        }
        if let Some(rule) = rules.iter().find(|r| r.from.is_match(&name)) {
            name = rule.from.replace(&name, rule.to.as_str()).into_owned();
        }
        let (name, t) = match layout {
            Layout::Strata => (name, t.clone()),
            Layout::Pytorch => {
                if name.ends_with(".num_batches_tracked") {
                    continue;
                }
                if let Some(base) = name.strip_suffix(".norm.weight") {
                    (format!("{base}.norm.gamma"), t.clone())
                } else if let Some(base) = name.strip_suffix(".norm.bias") {
                    (format!("{base}.norm.beta"), t.clone())
                } else if name.ends_with(".linear.weight") {
                    (name, transpose(t))
                } else {
                    (name, t.clone())
                }
            }
        };
        source.insert(name.clone(), theirs.clone());
        out.insert(name, t);
    }
    (out, source)
}

/// A tensor whose shape differs between file and model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mismatch {
    /// strata's name
    pub name: String,
    /// the file's name for it
    pub source: String,
    /// the shape the model declares
    pub expected: Vec<usize>,
    /// the shape in the file (after layout conversion)
    pub found: Vec<usize>,
}

/// What an import found, tensor by tensor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MatchReport {
    /// strata name → the file's name, for tensors taken from the file
    pub matched: BTreeMap<String, String>,
    /// model tensors the file lacks
    pub missing: Vec<String>,
    /// file tensors (their names) the model has no place for
    pub unused: Vec<String>,
    /// tensors of the wrong shape
    pub mismatched: Vec<Mismatch>,
    /// model tensors left at their initialisation because the user asked (`--reinit`)
    pub reinitialised: Vec<String>,
}

impl MatchReport {
    /// Compares the converted file with the model's tensors (`(name, shape)`); tensors under
    /// a `reinit` prefix may be missing or mismatched and are then re-initialised.
    pub fn compare(
        converted: &TensorMap,
        source: &BTreeMap<String, String>,
        model: &[(String, Vec<usize>)],
        reinit: &[String],
    ) -> Self {
        let mut r = MatchReport::default();
        let reinit_ok = |n: &str| reinit.iter().any(|p| n == p || n.starts_with(&format!("{p}.")));
        for (name, shape) in model {
            match converted.get(name) {
                Some(t) if &t.shape == shape => {
                    r.matched.insert(name.clone(), source.get(name).cloned().unwrap_or_default());
                }
                _ if reinit_ok(name) => r.reinitialised.push(name.clone()),
                Some(t) => r.mismatched.push(Mismatch {
                    name: name.clone(),
                    source: source.get(name).cloned().unwrap_or_default(),
                    expected: shape.clone(),
                    found: t.shape.clone(),
                }),
                None => r.missing.push(name.clone()),
            }
        }
        let known: std::collections::BTreeSet<&String> = model.iter().map(|(n, _)| n).collect();
        r.unused = converted
            .keys()
            .filter(|k| !known.contains(k))
            .map(|k| source.get(k).cloned().unwrap_or_else(|| k.clone()))
            .collect();
        r
    }

    /// True when nothing is missing, unused or mismatched.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.unused.is_empty() && self.mismatched.is_empty()
    }

    /// The report for people, one line per tensor that needs attention.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "matched {}, missing {}, unused {}, shape-mismatched {}, re-initialised {}\n",
            self.matched.len(),
            self.missing.len(),
            self.unused.len(),
            self.mismatched.len(),
            self.reinitialised.len()
        );
        for (ours, theirs) in &self.matched {
            s.push_str(&format!("  matched     {ours} ← {theirs}\n"));
        }
        for m in &self.missing {
            s.push_str(&format!("  missing     {m} (not in the file)\n"));
        }
        for u in &self.unused {
            s.push_str(&format!("  unused      {u} (no place in the model)\n"));
        }
        for m in &self.mismatched {
            s.push_str(&format!(
                "  mismatched  {} ← {}: model {:?}, file {:?}\n",
                m.name, m.source, m.expected, m.found
            ));
        }
        for r in &self.reinitialised {
            s.push_str(&format!("  re-initialised {r} (--reinit)\n"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: &[usize], v: &[f32]) -> RawTensor {
        RawTensor { shape: shape.to_vec(), values: Values::F32(v.to_vec()) }
    }

    #[test]
    fn pytorch_round_trip_renames_and_transposes() {
        let mut ours = TensorMap::new();
        ours.insert("head.0.linear.weight".into(), t(&[2, 3], &[1., 2., 3., 4., 5., 6.]));
        ours.insert("backbone.0.norm.gamma".into(), t(&[2], &[1., 1.]));
        ours.insert("backbone.0.norm.beta".into(), t(&[2], &[0., 0.]));
        let theirs = to_pytorch(&ours);
        assert_eq!(theirs["head.0.linear.weight"], t(&[3, 2], &[1., 4., 2., 5., 3., 6.]));
        assert!(
            theirs.contains_key("backbone.0.norm.weight") && theirs.contains_key("backbone.0.norm.num_batches_tracked")
        );
        let (back, source) = from_file(&theirs, Layout::Pytorch, &[], &[]);
        assert_eq!(back, ours);
        assert_eq!(source["backbone.0.norm.gamma"], "backbone.0.norm.weight");
        let bytes = write_safetensors(&theirs).unwrap();
        assert_eq!(read_safetensors(&bytes, Path::new("x")).unwrap(), theirs);
    }

    #[test]
    fn rules_prefixes_and_the_report() {
        let mut file = TensorMap::new();
        file.insert("module.features.0.weight".into(), t(&[4, 1, 3, 3], &[0.; 36]));
        file.insert("module.fc.weight".into(), t(&[10, 4], &[0.; 40]));
        file.insert("module.extra".into(), t(&[1], &[0.]));
        let rules = vec![
            MapRule::parse(r"features\.(\d+)\.=backbone.$1.conv.").unwrap(),
            MapRule::parse(r"^fc\.=head.0.linear.").unwrap(),
        ];
        let (conv, source) = from_file(&file, Layout::Pytorch, &rules, &[]);
        assert_eq!(source["backbone.0.conv.weight"], "module.features.0.weight");
        let model = vec![
            ("backbone.0.conv.weight".to_string(), vec![4, 1, 3, 3]),
            ("backbone.0.conv.bias".to_string(), vec![4]),
            ("head.0.linear.weight".to_string(), vec![4, 2]),
        ];
        let r = MatchReport::compare(&conv, &source, &model, &[]);
        assert_eq!(r.matched.len(), 1);
        assert_eq!(r.missing, vec!["backbone.0.conv.bias"]);
        assert_eq!(r.unused, vec!["module.extra"]);
        assert_eq!(r.mismatched[0].expected, vec![4, 2]);
        assert_eq!(r.mismatched[0].found, vec![4, 10]);
        let text = r.to_text();
        assert!(
            text.contains("missing     backbone.0.conv.bias") && text.contains("model [4, 2], file [4, 10]"),
            "{text}"
        );
        let r = MatchReport::compare(&conv, &source, &model, &["head".into(), "backbone.0.conv.bias".into()]);
        assert_eq!(r.reinitialised, vec!["backbone.0.conv.bias", "head.0.linear.weight"]);
        assert!(r.mismatched.is_empty() && r.missing.is_empty());
        assert!(MapRule::parse("no-equals-sign").is_err());
    }

    #[test]
    fn half_precision_converts() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0000), 0.0);
        assert!((f16_to_f32(0x0001) - 5.960_464_5e-8).abs() < 1e-12);
    }
}
