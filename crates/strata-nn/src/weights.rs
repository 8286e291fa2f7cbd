//! Weights as safetensors bytes with readable names, strict loading, and the layer table.

use crate::error::{NnError, Result};
use crate::interop::f32_values;
use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Conventional file name of a run's weights.
pub struct WeightsFile;

impl WeightsFile {
    /// The file name inside a run directory.
    pub const NAME: &'static str = "model.safetensors";
}

/// Serialises every parameter and buffer of `module` to safetensors bytes.
pub fn to_bytes<M: Module>(module: &M) -> Result<Vec<u8>> {
    let mut store = SafetensorsStore::from_bytes(None);
    let fail = |e: String| NnError::Weights { path: "<memory>".into(), reason: e };
    module.save_into(&mut store).map_err(|e| fail(e.to_string()))?;
    let bytes = store.get_bytes().map_err(|e| fail(e.to_string()))?;
    canonical_header(bytes).ok_or_else(|| fail("the safetensors writer produced a malformed header".into()))
}

/// Rewrites the safetensors header with sorted keys: the writer iterates a hash map, so
/// without this the same weights would give different bytes from run to run.
fn canonical_header(bytes: Vec<u8>) -> Option<Vec<u8>> {
    let len = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    let header = bytes.get(8..8 + len)?;
    // serde_json's map is a BTreeMap (no preserve_order feature), so this sorts every level
    let value: serde_json::Value = serde_json::from_slice(header).ok()?;
    let mut text = serde_json::to_vec(&value).ok()?;
    while text.len() % 8 != 0 {
        text.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - 8 - len);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + len..]);
    Some(out)
}

/// Loads `bytes` (read from `path`) into `module`; every tensor of the module must be present
/// with its declared shape, and every tensor in the file must be used.
pub fn load_bytes<M: Module>(module: M, bytes: Vec<u8>, path: &Path) -> Result<M> {
    load_bytes_ignoring(module, bytes, path, |_| false)
}

/// Like [`load_bytes`], but tensors of the file for which `ignore` is true may go unused
/// (the decoder of an autoencoder when only its backbone is wanted).
pub fn load_bytes_ignoring<M: Module>(
    module: M,
    bytes: Vec<u8>,
    path: &Path,
    ignore: impl Fn(&str) -> bool,
) -> Result<M> {
    load_bytes_partial(module, bytes, path, ignore, |_| false)
}

/// Like [`load_bytes_ignoring`], and tensors of the module for which `may_miss` is true may be
/// absent from the file: they keep their initial values (an import's `--reinit` layers).
pub fn load_bytes_partial<M: Module>(
    mut module: M,
    bytes: Vec<u8>,
    path: &Path,
    ignore: impl Fn(&str) -> bool,
    may_miss: impl Fn(&str) -> bool,
) -> Result<M> {
    let mut store = SafetensorsStore::from_bytes(Some(bytes)).allow_partial(true).validate(false);
    let res =
        module.load_from(&mut store).map_err(|e| NnError::Weights { path: path.into(), reason: e.to_string() })?;
    if !res.errors.is_empty() {
        let details = res
            .errors
            .iter()
            .map(|e| match e {
                burn::store::ApplyError::ShapeMismatch { path, expected, found } => {
                    format!(
                        "{path}: the architecture needs {:?}, the file has {:?}",
                        expected.as_slice(),
                        found.as_slice()
                    )
                }
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join("; ");
        return Err(NnError::WrongShapes { path: path.into(), details });
    }
    let missing: Vec<String> = res.missing.into_iter().map(|(p, _)| p).filter(|p| !may_miss(p)).collect();
    if !missing.is_empty() {
        return Err(NnError::MissingTensors { path: path.into(), missing });
    }
    let unused: Vec<&String> = res.unused.iter().filter(|n| !ignore(n)).collect();
    if !unused.is_empty() {
        return Err(NnError::Weights {
            path: path.into(),
            reason: format!("it holds tensors this architecture does not have: {unused:?}"),
        });
    }
    Ok(module)
}

/// One row of the layer table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerInfo {
    /// dotted parameter path, e.g. `backbone.0.conv.weight`
    pub name: String,
    /// tensor shape
    pub shape: Vec<usize>,
    /// number of values
    pub numel: usize,
    /// whether an optimiser may change it (false for frozen parameters and running statistics)
    pub trainable: bool,
}

struct TableVisitor {
    path: Vec<String>,
    rows: Vec<LayerInfo>,
}

impl ModuleVisitor for TableVisitor {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let name = self.path.join(".");
        let shape = param.shape().to_vec();
        let is_buffer = name.ends_with("running_mean") || name.ends_with("running_var");
        self.rows.push(LayerInfo {
            numel: shape.iter().product(),
            shape,
            trainable: !is_buffer && param.is_require_grad(),
            name,
        });
    }
}

/// The tensors of a safetensors file (names and shapes, sorted by name), for models whose
/// type is not known here (a pretraining method's own parts).
pub fn table_from_bytes(bytes: &[u8], path: &Path) -> Result<Vec<LayerInfo>> {
    let bad = |reason: &str| NnError::Weights { path: path.into(), reason: reason.into() };
    let len = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| bad("shorter than a safetensors header"))?;
    let header = usize::try_from(len)
        .ok()
        .and_then(|l| bytes.get(8..8 + l))
        .ok_or_else(|| bad("its header length exceeds the file"))?;
    let value: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|e| bad(&format!("unreadable header: {e}")))?;
    Ok(value
        .into_iter()
        .filter(|(k, _)| k != "__metadata__")
        .map(|(name, v)| {
            let shape: Vec<usize> = v["shape"]
                .as_array()
                .map(|a| a.iter().filter_map(|d| d.as_u64()).map(|d| d as usize).collect())
                .unwrap_or_default();
            let is_buffer = name.ends_with("running_mean") || name.ends_with("running_var");
            LayerInfo { numel: shape.iter().product(), shape, trainable: !is_buffer, name }
        })
        .collect())
}

/// One f32 tensor of a safetensors file by name (shape, values), or None when the file has no
/// tensor of that name: for parts that only some runs carry (a method's heads).
pub fn tensor_from_bytes(bytes: &[u8], name: &str, path: &Path) -> Result<Option<(Vec<usize>, Vec<f32>)>> {
    let bad = |reason: String| NnError::Weights { path: path.into(), reason };
    let file = safetensors::SafeTensors::deserialize(bytes).map_err(|e| bad(format!("unreadable safetensors: {e}")))?;
    let Ok(view) = file.tensor(name) else { return Ok(None) };
    if view.dtype() != safetensors::Dtype::F32 {
        return Err(bad(format!("`{name}` is {:?}, not F32", view.dtype())));
    }
    Ok(Some((view.shape().to_vec(), f32_values(view.data()))))
}

/// The safetensors `bytes` with every F32 tensor passed through `f(name, values)`, which may
/// rewrite the values in place (a custom initialisation by tensor name), in name order;
/// metadata is kept.
pub fn map_tensors(bytes: &[u8], path: &Path, mut f: impl FnMut(&str, &mut [f32])) -> Result<Vec<u8>> {
    let bad = |e: safetensors::SafeTensorError| NnError::Weights { path: path.into(), reason: e.to_string() };
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(bad)?;
    let file = safetensors::SafeTensors::deserialize(bytes).map_err(bad)?;
    let mut owned = Vec::new();
    let mut tensors = file.tensors();
    // the file's index is a hash map: sort, so `f` sees the tensors in one order every run
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, view) in tensors {
        let mut data = view.data().to_vec();
        if view.dtype() == safetensors::Dtype::F32 {
            let mut values = f32_values(&data);
            f(&name, &mut values);
            data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        }
        owned.push((name, view.dtype(), view.shape().to_vec(), data));
    }
    let views = owned
        .iter()
        .map(|(name, dtype, shape, data)| {
            Ok((name.as_str(), safetensors::tensor::TensorView::new(*dtype, shape.clone(), data)?))
        })
        .collect::<std::result::Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(bad)?;
    safetensors::serialize(views, meta.metadata().clone()).map_err(bad)
}

/// The parameters and buffers of a module, in declaration order.
pub fn layer_table<M: Module>(module: &M) -> Vec<LayerInfo> {
    let mut v = TableVisitor { path: Vec::new(), rows: Vec::new() };
    module.visit(&mut v);
    v.rows
}

struct ValueVisitor {
    path: Vec<String>,
    values: BTreeMap<String, Vec<f32>>,
    ids: BTreeMap<String, ParamId>,
    with_values: bool,
}

impl ModuleVisitor for ValueVisitor {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let name = self.path.join(".");
        if self.with_values {
            let data = param.val().into_data().convert::<f32>();
            self.values.insert(name.clone(), data.try_to_vec::<f32>().unwrap_or_default());
        }
        self.ids.insert(name, param.id);
    }
}

/// Every parameter and buffer as plain values, keyed by dotted path (for exact comparisons).
pub fn snapshot<M: Module>(module: &M) -> BTreeMap<String, Vec<f32>> {
    let mut v = ValueVisitor { path: Vec::new(), values: BTreeMap::new(), ids: BTreeMap::new(), with_values: true };
    module.visit(&mut v);
    v.values
}

/// Parameter ids keyed by dotted path (optimiser groups are built from these).
pub fn param_ids<M: Module>(module: &M) -> BTreeMap<String, ParamId> {
    let mut v = ValueVisitor { path: Vec::new(), values: BTreeMap::new(), ids: BTreeMap::new(), with_values: false };
    module.visit(&mut v);
    v.ids
}

/// The dotted path of the first parameter or buffer holding a NaN or an infinity, if any
/// (divergence reports name the tensor that broke).
pub fn first_nonfinite<M: Module>(module: &M) -> Option<String> {
    snapshot(module).into_iter().find(|(_, v)| v.iter().any(|x| !x.is_finite())).map(|(name, _)| name)
}
