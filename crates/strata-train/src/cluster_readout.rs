//! Every cluster head of a run read out as classes by a handful of labeled images: each
//! sub-head of the main and of the over-clustering heads gives an image a distribution over
//! its clusters; each cluster is read as the classes of the labeled images it holds (their
//! soft assignments summed, a "many-to-one" map: two clusters may name the same class), and
//! the heads' class distributions are averaged. The over-clustering heads split what the main
//! heads merge (a 7 with a bar, a slanted 5), so the readout goes further than the kept head's
//! one-to-one match (measured in docs/RESULTS.md). No training: the labels only count.

use crate::error::{Result, TrainError};
use crate::manifest::Manifest;
use crate::probe::FeatureMatrix;
use std::path::Path;

/// Votes each (cluster, class) pair starts with: a cluster no labeled image fell into reads as
/// no class in particular, and the heads that saw labels decide. Chosen on the validation
/// split among 0.001 to 1 (the readout moves by at most 0.6 points over that range; the smaller
/// values are best, and below 0.01 nothing changes).
const PRIOR: f64 = 0.01;

/// The error for a run without cluster heads.
fn no_heads(path: &Path) -> TrainError {
    TrainError::BadRun {
        path: path.into(),
        reason: "no `cluster_heads`: the cluster readout needs a run with cluster heads (`strata pretrain --method cluster`, or `contrastive --cluster-weight`)".into(),
    }
}

/// The heads' layers of a cluster run, with the split of their logits into sub-heads.
struct HeadLayer {
    /// features x (sub-heads x clusters), as burn's `Linear` stores it
    weight: Vec<f32>,
    bias: Vec<f32>,
    sub_heads: usize,
}

impl HeadLayer {
    fn width(&self) -> usize {
        self.bias.len()
    }
    fn clusters(&self) -> usize {
        self.width() / self.sub_heads
    }
}

/// Every cluster head of a run (main and over-clustering, every sub-head), as read from its
/// weights.
pub struct ClusterReadout {
    dim: usize,
    layers: Vec<HeadLayer>,
}

/// A [`ClusterReadout`] whose clusters are named by labeled images: ready to predict.
pub struct FittedReadout<'a> {
    readout: &'a ClusterReadout,
    /// per sub-head (layers in order, sub-heads in order): clusters x classes, each row a
    /// distribution over the classes
    class_of_cluster: Vec<Vec<f64>>,
    classes: usize,
}

impl ClusterReadout {
    /// Reads the heads of the run whose weights are `bytes` (read from `path`): its
    /// `cluster_heads` and, if it has them, `overcluster_heads`, split into the manifest's
    /// `sub_heads`.
    pub fn of_run(bytes: &[u8], path: &Path, manifest: &Manifest) -> Result<Self> {
        Self::in_run(bytes, path, manifest)?.ok_or_else(|| no_heads(path))
    }

    /// [`Self::of_run`], or None for a run without cluster heads (a study's other methods).
    pub fn in_run(bytes: &[u8], path: &Path, manifest: &Manifest) -> Result<Option<Self>> {
        let sub_heads = manifest.config["train"]["sub_heads"].as_u64().unwrap_or(1) as usize;
        Self::read(bytes, path, sub_heads)
    }

    /// Reads the heads from weights `bytes` (read from `path`) whose layers hold `sub_heads`
    /// sub-heads each.
    pub fn load(bytes: &[u8], path: &Path, sub_heads: usize) -> Result<Self> {
        Self::read(bytes, path, sub_heads)?.ok_or_else(|| no_heads(path))
    }

    /// [`Self::load`], None without `cluster_heads`.
    fn read(bytes: &[u8], path: &Path, sub_heads: usize) -> Result<Option<Self>> {
        let bad = |reason: String| TrainError::BadRun { path: path.into(), reason };
        let mut layers = vec![];
        let mut dim = 0;
        for name in ["cluster_heads", "overcluster_heads"] {
            let read = |part: &str| strata_nn::weights::tensor_from_bytes(bytes, &format!("{name}.{part}"), path);
            let (Some((shape, weight)), Some((_, bias))) = (read("weight")?, read("bias")?) else {
                if name == "cluster_heads" {
                    return Ok(None);
                }
                continue;
            };
            let [inputs, width] = shape[..] else { return Err(bad(format!("{name}.weight has shape {shape:?}"))) };
            if sub_heads == 0 || width % sub_heads != 0 || bias.len() != width || (dim != 0 && inputs != dim) {
                return Err(bad(format!(
                    "{name}: {width} logits on {inputs} features do not split into {sub_heads} sub-heads"
                )));
            }
            dim = inputs;
            layers.push(HeadLayer { weight, bias, sub_heads });
        }
        Ok(Some(Self { dim, layers }))
    }

    /// Sub-heads in all (main and over-clustering).
    pub fn heads(&self) -> usize {
        self.layers.iter().map(|l| l.sub_heads).sum()
    }

    /// Each sub-head's distribution over its clusters for one feature row.
    fn assignments(&self, x: &[f32]) -> Vec<Vec<f64>> {
        let mut out = Vec::with_capacity(self.heads());
        for l in &self.layers {
            let width = l.width();
            let mut logits: Vec<f64> = l.bias.iter().map(|&b| f64::from(b)).collect();
            for (i, &v) in x.iter().enumerate() {
                if v != 0.0 {
                    let row = &l.weight[i * width..(i + 1) * width];
                    for (o, &w) in logits.iter_mut().zip(row) {
                        *o += f64::from(v * w);
                    }
                }
            }
            for head in logits.chunks(l.clusters()) {
                let top = head.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = head.iter().map(|z| (z - top).exp()).collect();
                let total: f64 = e.iter().sum();
                out.push(e.into_iter().map(|v| v / total).collect());
            }
        }
        out
    }

    fn check(&self, f: &FeatureMatrix) -> Result<()> {
        if f.dim != self.dim {
            return Err(TrainError::config(
                "--reuse",
                f.dim,
                &format!(
                    "the cluster heads read the {}-wide output of the whole backbone; reuse every block",
                    self.dim
                ),
            ));
        }
        Ok(())
    }

    /// Names every cluster by the labeled images `f` (one row each, class `labels[r]` of
    /// `classes`).
    pub fn fit(&self, f: &FeatureMatrix, labels: &[u32], classes: usize) -> Result<FittedReadout<'_>> {
        self.check(f)?;
        let sizes: Vec<usize> = self.layers.iter().flat_map(|l| vec![l.clusters(); l.sub_heads]).collect();
        let mut votes: Vec<Vec<f64>> = sizes.iter().map(|&k| vec![PRIOR; k * classes]).collect();
        for (r, &y) in labels.iter().enumerate().take(f.rows()) {
            for (head, q) in self.assignments(f.row(r)).iter().enumerate() {
                for (c, &p) in q.iter().enumerate() {
                    votes[head][c * classes + y as usize] += p;
                }
            }
        }
        for v in &mut votes {
            for row in v.chunks_mut(classes) {
                let total: f64 = row.iter().sum();
                row.iter_mut().for_each(|x| *x /= total);
            }
        }
        Ok(FittedReadout { readout: self, class_of_cluster: votes, classes })
    }
}

impl FittedReadout<'_> {
    /// The class distribution of one feature row: the sub-heads' readouts averaged.
    fn distribution(&self, x: &[f32]) -> Vec<f64> {
        let mut p = vec![0.0; self.classes];
        let heads = self.class_of_cluster.len() as f64;
        for (q, map) in self.readout.assignments(x).iter().zip(&self.class_of_cluster) {
            for (c, &qc) in q.iter().enumerate() {
                for (y, &m) in map[c * self.classes..(c + 1) * self.classes].iter().enumerate() {
                    p[y] += qc * m / heads;
                }
            }
        }
        p
    }

    /// The most likely class of each row of `f`.
    pub fn classify(&self, f: &FeatureMatrix) -> Result<Vec<u32>> {
        Ok(self.predict(f)?.into_iter().map(|(c, _)| c).collect())
    }

    /// The most likely class of each row of `f` and its probability under the readout.
    pub fn predict(&self, f: &FeatureMatrix) -> Result<Vec<(u32, f32)>> {
        self.readout.check(f)?;
        Ok((0..f.rows())
            .map(|r| {
                let p = self.distribution(f.row(r));
                let best = (0..p.len()).fold(0, |b, y| if p[y] > p[b] { y } else { b });
                (best as u32, p[best] as f32)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::cluster::ClusterNet;
    use burn::nn::LinearConfig;
    use burn::tensor::Device;

    /// A readout with one layer of `sub_heads` heads over 2 features, weights given.
    fn readout(weight: Vec<f32>, bias: Vec<f32>, sub_heads: usize) -> ClusterReadout {
        ClusterReadout { dim: 2, layers: vec![HeadLayer { weight, bias, sub_heads }] }
    }

    #[test]
    fn a_sure_head_reads_each_cluster_as_its_labeled_images_class() {
        // one head of 3 clusters, logits 50 x feature: feature i puts an image in cluster i (2: none)
        let r = readout(vec![50.0, 0.0, 0.0, 0.0, 50.0, 0.0], vec![0.0, 0.0, 25.0], 1);
        let f = FeatureMatrix { values: vec![1.0, 0.0, 1.0, 0.0, 0.0, 1.0], dim: 2 };
        // two images of class 2 in cluster 0, one of class 0 in cluster 1 (many-to-one allowed)
        let fitted = r.fit(&f, &[2, 2, 0], 3).unwrap();
        let got = fitted.predict(&FeatureMatrix { values: vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0], dim: 2 }).unwrap();
        assert_eq!(got[0].0, 2);
        assert_eq!(got[1].0, 0);
        // cluster 2 holds no labeled image: its reading is the prior, no class in particular
        assert!((got[2].1 - 1.0 / 3.0).abs() < 1e-3, "{:?}", got[2]);
        // the exact probability: (2 + prior) / (2 + 3 prior) for a sure assignment
        let want = (2.0 + PRIOR) / (2.0 + 3.0 * PRIOR);
        assert!((f64::from(got[0].1) - want).abs() < 1e-4, "{} vs {want}", got[0].1);
    }

    #[test]
    fn the_heads_are_averaged() {
        // two sub-heads of 2 clusters: the first splits by feature 0, the second is undecided
        let r = readout(vec![40.0, 0.0, 0.0, 0.0, 0.0, 40.0, 0.0, 0.0], vec![0.0; 4], 2);
        let f = FeatureMatrix { values: vec![1.0, 0.0, 0.0, 1.0], dim: 2 };
        let fitted = r.fit(&f, &[1, 0], 2).unwrap();
        let got = fitted.predict(&f).unwrap();
        assert_eq!((got[0].0, got[1].0), (1, 0));
        // the undecided head reads 1/2 for either class; the sure one about 1: mean about 3/4
        assert!((got[0].1 - 0.75).abs() < 0.01, "{:?}", got);
    }

    #[test]
    fn the_readout_reads_a_cluster_runs_weights_and_refuses_other_widths() {
        let device = Device::flex();
        let net = strata_nn::seeded(&device, 3, || ClusterNet {
            backbone: vec![],
            cluster_heads: LinearConfig::new(4, 2 * 3).init(&device),
            overcluster_heads: Some(LinearConfig::new(4, 2 * 6).init(&device)),
        });
        let bytes = strata_nn::weights::to_bytes(&net).unwrap();
        let r = ClusterReadout::load(&bytes, "m".as_ref(), 2).unwrap();
        assert_eq!(r.heads(), 4);
        let f = FeatureMatrix { values: (0..12).map(|i| i as f32 / 7.0 - 0.8).collect(), dim: 4 };
        let fitted = r.fit(&f, &[0, 1, 1], 2).unwrap();
        for (class, p) in fitted.predict(&f).unwrap() {
            assert!(class < 2 && (0.5..=1.0).contains(&p), "{class} {p}");
        }
        let narrow = FeatureMatrix { values: vec![0.0; 3], dim: 3 };
        assert!(r.fit(&narrow, &[0], 2).err().unwrap().to_string().contains("reuse every block"));
        assert!(ClusterReadout::load(&bytes, "m".as_ref(), 4).is_err());
        let plain =
            strata_nn::weights::to_bytes(&strata_nn::seeded(&device, 1, || LinearConfig::new(2, 2).init(&device)));
        assert!(
            ClusterReadout::load(&plain.unwrap(), "m".as_ref(), 1).err().unwrap().to_string().contains("cluster heads")
        );
    }
}
