//! The invariant-information-clustering objective (Ji et al. 2019): the mutual information
//! between the cluster assignments of two views of the same images, for several sub-heads at
//! once, and the reading of the clusters it makes (sizes, effective count, collapse).

use burn::tensor::Tensor;

/// Floor of a joint probability before its logarithm (IIC's `sys.float_info.epsilon`).
const EPS: f64 = f64::EPSILON;

/// Minus the mutual information (nats) of each sub-head: `a` and `b` are soft assignments of
/// the same images seen two ways, `heads x images x clusters`, each row summing to 1. The joint
/// distribution is symmetrised, as IIC does, since which view comes first means nothing.
pub fn negative_mutual_information(a: Tensor<3>, b: Tensor<3>) -> Tensor<1> {
    let [heads, _, _] = a.dims();
    let joint = a.swap_dims(1, 2).matmul(b); // heads x k x k
    let joint = (joint.clone() + joint.swap_dims(1, 2)).div_scalar(2.0);
    let total = joint.clone().sum_dim(2).sum_dim(1); // heads x 1 x 1
    let joint = (joint / total).clamp_min(EPS);
    let row = joint.clone().sum_dim(2); // heads x k x 1
    let col = joint.clone().sum_dim(1); // heads x 1 x k
    let ratio = joint.clone().log() - row.log() - col.log();
    (joint * ratio).sum_dim(2).sum_dim(1).reshape([heads]).neg()
}

/// How a head splits a set of images: the size of each cluster, read without labels.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClusterReport {
    /// images per cluster
    pub sizes: Vec<usize>,
    /// clusters holding no image
    pub empty: usize,
    /// exp of the entropy of the cluster sizes: k when all are equal, 1 when one holds all
    pub effective: f64,
}

impl ClusterReport {
    /// Counts the hard assignments `assigned` (cluster of each image) over `k` clusters.
    pub fn new(assigned: &[usize], k: usize) -> Self {
        let mut sizes = vec![0usize; k];
        for &c in assigned {
            if let Some(s) = sizes.get_mut(c) {
                *s += 1;
            }
        }
        let n = assigned.len().max(1) as f64;
        let entropy: f64 = sizes.iter().filter(|&&s| s > 0).map(|&s| s as f64 / n).map(|p| -p * p.ln()).sum();
        Self { empty: sizes.iter().filter(|&&s| s == 0).count(), effective: entropy.exp(), sizes }
    }

    /// Why the clusters look collapsed (some empty, or fewer than half of them in effect
    /// carrying the images), or None.
    pub fn collapse(&self) -> Option<String> {
        let k = self.sizes.len();
        if self.empty > 0 {
            Some(format!("{} of {k} clusters are empty", self.empty))
        } else if self.effective < k as f64 / 2.0 {
            Some(format!("the images fall into {:.1} effective clusters of {k} (merged clusters)", self.effective))
        } else {
            None
        }
    }
}

/// The sub-head with the lowest loss (the first of equals): how IIC picks a head without labels.
pub fn best_head(losses: &[f64]) -> usize {
    losses.iter().enumerate().fold(0, |best, (i, &l)| if l < losses[best] { i } else { best })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn assignments(rows: &[[f32; 2]], device: &Device) -> Tensor<3> {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        Tensor::from_data(TensorData::new(flat, [1, rows.len(), 2]), device)
    }

    fn mi(a: &[[f32; 2]], b: &[[f32; 2]]) -> f64 {
        let device = Device::flex();
        let loss = negative_mutual_information(assignments(a, &device), assignments(b, &device));
        -f64::from(loss.into_scalar::<f32>())
    }

    #[test]
    fn a_known_joint_distribution_gives_its_mutual_information() {
        // 4 images agree on cluster 0, 4 on cluster 1, 2 disagree: joint [[.4 .1] [.1 .4]]
        let (x, y) = ([1.0, 0.0], [0.0, 1.0]);
        let a = [x, x, x, x, y, y, y, y, x, y];
        let b = [x, x, x, x, y, y, y, y, y, x];
        let expected = 0.8 * (0.4f64 / 0.25).ln() + 0.2 * (0.1f64 / 0.25).ln();
        assert!((mi(&a, &b) - expected).abs() < 1e-5, "{} vs {expected}", mi(&a, &b));
        // agreement on two balanced clusters: ln 2; independent views: 0
        assert!((mi(&[x, y], &[x, y]) - 2f64.ln()).abs() < 1e-5);
        let h = [0.5, 0.5];
        assert!(mi(&[h, h], &[x, y]).abs() < 1e-6);
        // everything in one cluster carries no information even though the views agree
        assert!(mi(&[x, x, x], &[x, x, x]).abs() < 1e-6);
    }

    #[test]
    fn each_sub_head_gets_its_own_loss() {
        let device = Device::flex();
        // head 0 agrees across views, head 1 is uniform
        let a = Tensor::<3>::from_data(
            TensorData::new(vec![1.0f32, 0.0, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5], [2, 2, 2]),
            &device,
        );
        let loss = negative_mutual_information(a.clone(), a).into_data().try_to_vec::<f32>().unwrap();
        assert!((f64::from(loss[0]) + 2f64.ln()).abs() < 1e-5 && loss[1].abs() < 1e-6, "{loss:?}");
        assert_eq!(best_head(&[f64::from(loss[0]), f64::from(loss[1])]), 0);
        assert_eq!(best_head(&[0.3, -0.2, 0.1, -0.2]), 1);
    }

    #[test]
    fn empty_and_merged_clusters_are_called_collapse() {
        let balanced = ClusterReport::new(&[0, 1, 2, 3, 0, 1, 2, 3], 4);
        assert_eq!((balanced.empty, balanced.collapse()), (0, None));
        assert!((balanced.effective - 4.0).abs() < 1e-12);
        let empty = ClusterReport::new(&[0, 1, 2, 0, 1, 2], 4);
        assert!(empty.collapse().unwrap().contains("1 of 4 clusters are empty"));
        // every cluster used, but nearly all images in one
        let mut merged = vec![0; 97];
        merged.extend([1, 2, 3]);
        let merged = ClusterReport::new(&merged, 4);
        assert_eq!(merged.empty, 0);
        assert!(merged.collapse().unwrap().contains("effective clusters"), "{merged:?}");
    }
}
