//! The prototype head: an output layer whose weights are the class means of the labeled
//! images' features (Qi et al. 2018, "imprinted weights"), so the classifier is a nearest
//! class mean before any step and a well-started linear layer after.

use crate::probe::{self, Prototypes};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use strata_data::{Dataset, Normalization};
use strata_nn::{Block, Classifier};

/// How the output layer of a new head starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum HeadInit {
    /// random, as every other new layer
    #[default]
    Random,
    /// each class's prototype: the nearest-class-mean classifier of the labeled images
    Prototype,
    /// the parent `cluster` run's kept head, its clusters matched to the classes
    Clusters,
}

impl std::str::FromStr for HeadInit {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "random" => Ok(Self::Random),
            "prototype" => Ok(Self::Prototype),
            "clusters" => Ok(Self::Clusters),
            _ => Err(format!("unknown head init `{s}`; use random, prototype or clusters")),
        }
    }
}

impl std::fmt::Display for HeadInit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Random => "random",
            Self::Prototype => "prototype",
            Self::Clusters => "clusters",
        })
    }
}

/// Logit of an image whose centred feature has the average length and points exactly at a
/// prototype: a cosine classifier's usual scale, confident without saturating the softmax.
const SCALE: f32 = 10.0;

/// `model` with its output layer set to the prototypes of `rows`: logit_c = s·<f − μ, p_c>,
/// which ranks classes exactly as the cosine of the centred feature to each prototype does.
pub(super) fn imprint(
    model: Classifier,
    data: &Dataset,
    norm: &Normalization,
    rows: &[usize],
    device: &Device,
) -> Classifier {
    let Some(labels) = data.labels.as_ref() else { return model };
    // the output layer's inputs: the backbone, then the hidden head layers, unaugmented
    let below: Vec<Block> =
        model.backbone.iter().chain(&model.head[..model.head.len().saturating_sub(1)]).cloned().collect();
    let features = probe::features(&below, data, rows, norm, device);
    let row_labels: Vec<u32> = rows.iter().map(|&r| labels[r]).collect();
    let classes = data.num_classes();
    let protos = Prototypes::fit(&features, &row_labels, classes);
    let dim = features.dim;
    let mean_len = (0..features.rows())
        .map(|i| {
            let row = &features.values[i * dim..(i + 1) * dim];
            row.iter().zip(&protos.centre).map(|(v, c)| (v - c) * (v - c)).sum::<f32>().sqrt()
        })
        .sum::<f32>()
        / features.rows().max(1) as f32;
    let s = if mean_len > 0.0 { SCALE / mean_len } else { 1.0 };
    // burn's Linear weight is [inputs, outputs]
    let mut weight = vec![0f32; dim * classes];
    let mut bias = vec![0f32; classes];
    for c in 0..classes {
        let p = &protos.means[c * dim..(c + 1) * dim];
        for d in 0..dim {
            weight[d * classes + c] = s * p[d];
        }
        bias[c] = -s * p.iter().zip(&protos.centre).map(|(a, b)| a * b).sum::<f32>();
    }
    let Classifier { backbone, mut head } = model;
    if let Some(linear) = head.last_mut().and_then(|b| b.linear.as_mut()) {
        linear.weight = linear.weight.clone().map(|t| replaced(t, weight, [dim, classes]));
        linear.bias = linear.bias.take().map(|b| b.map(|t| replaced(t, bias, [classes])));
    }
    Classifier { backbone, head }
}

/// A tensor holding `values`, on `old`'s device and with its gradient requirement.
pub(super) fn replaced<const D: usize>(old: Tensor<D>, values: Vec<f32>, shape: [usize; D]) -> Tensor<D> {
    let grad = old.is_require_grad();
    Tensor::<D>::from_data(TensorData::new(values, shape), &old.device()).set_require_grad(grad)
}
