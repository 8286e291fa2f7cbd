//! A parent's cluster heads in stage two: the output layer can start as the kept sub-head,
//! its clusters put in the order of the classes they best match on the labeled images, so
//! the classifier starts as the clusters named by the labels; and the unlabeled training
//! images the readout of every head (`cluster_readout`) is sure of can join the labeled
//! ones, labeled with the class it reads.

use super::prototype::replaced;
use crate::cluster_readout::ClusterReadout;
use crate::error::{Result, TrainError};
use crate::methods::cluster::ClusterHead;
use crate::probe;
use burn::tensor::Device;
use strata_data::{Dataset, Normalization};
use strata_nn::Classifier;

/// The cluster each class is matched to (entry c: class c's cluster), from the clusters of the
/// labeled `rows` under `head` on `model`'s backbone.
fn class_clusters(
    model: &Classifier,
    head: &ClusterHead,
    data: &Dataset,
    norm: &Normalization,
    rows: &[usize],
    device: &Device,
) -> Result<Vec<usize>> {
    let labels = data.require_labels()?;
    let classes = data.num_classes();
    if head.clusters() != classes {
        return Err(TrainError::config(
            "--head-init",
            "clusters",
            &format!(
                "the parent's head has {} clusters and the labels {classes} classes; pretrain with --clusters {classes}, or use --head-init random",
                head.clusters()
            ),
        ));
    }
    let assigned = head.assign(&probe::features(&model.backbone, data, rows, norm, device))?;
    let mut counts = vec![vec![0i64; classes]; classes];
    for (&r, &c) in rows.iter().zip(&assigned) {
        counts[labels[r] as usize][c] += 1;
    }
    Ok(matching(&counts))
}

/// `model` with its output layer set to `head`, cluster `class_clusters(..)[c]` as class `c`.
pub(super) fn imprint(
    model: Classifier,
    head: &ClusterHead,
    data: &Dataset,
    norm: &Normalization,
    rows: &[usize],
    device: &Device,
) -> Result<Classifier> {
    if model.head.len() != 1 {
        return Err(TrainError::config(
            "--head",
            model.head.len() - 1,
            "--head-init clusters makes the output layer of the cluster head, which reads the backbone itself: no hidden head layers",
        ));
    }
    let (weight, bias) = head.layer(&class_clusters(&model, head, data, norm, rows, device)?);
    let (dim, classes) = (head.inputs(), head.clusters());
    let Classifier { backbone, mut head } = model;
    if let Some(linear) = head.last_mut().and_then(|b| b.linear.as_mut()) {
        linear.weight = linear.weight.clone().map(|t| replaced(t, weight, [dim, classes]));
        linear.bias = linear.bias.take().map(|b| b.map(|t| replaced(t, bias, [classes])));
    }
    Ok(Classifier { backbone, head })
}

/// `data` with every row outside the labeled `rows` relabeled as the class `readout` reads for
/// it once named by the labeled rows (so no true label of an unlabeled image is left to
/// leak), and the rows to train on: the labeled ones, then those the readout gives their class
/// with probability at least `min_confidence` (and, with `agree`, that a kNN vote of the
/// labeled rows' features puts in the same class).
pub(super) fn pseudo_labelled(
    model: &Classifier,
    readout: &ClusterReadout,
    data: &Dataset,
    norm: &Normalization,
    rows: &[usize],
    device: &Device,
    (min_confidence, agree): (f64, bool),
) -> Result<(Dataset, Vec<usize>)> {
    let mut labels = data.require_labels()?.to_vec();
    let seen: Vec<u32> = rows.iter().map(|&r| labels[r]).collect();
    let classes = data.num_classes();
    let features = probe::features(&model.backbone, data, rows, norm, device);
    let fitted = readout.fit(&features, &seen, classes)?;
    let temperature = probe::ProbeConfig::default().temperature;
    let k = agree.then(|| probe::choose_k(&features, &seen, classes, temperature));
    let labeled: std::collections::HashSet<usize> = rows.iter().copied().collect();
    let others: Vec<usize> = (0..data.len()).filter(|r| !labeled.contains(r)).collect();
    let mut train = rows.to_vec();
    // in chunks: the features of tens of thousands of images at once would be large
    for chunk in others.chunks(4096) {
        let unlabeled = probe::features(&model.backbone, data, chunk, norm, device);
        let read = fitted.predict(&unlabeled)?;
        let vote = k.map(|k| probe::knn(&features, &seen, &unlabeled, classes, (k, temperature), device));
        for (i, (&r, &(class, p))) in chunk.iter().zip(&read).enumerate() {
            labels[r] = class;
            let agreed = vote.as_ref().is_none_or(|vote| vote[i] == class);
            if f64::from(p) >= min_confidence && agreed {
                train.push(r);
            }
        }
    }
    Ok((Dataset { labels: Some(labels), ..data.clone() }, train))
}

/// The rows to draw batches from: the `labeled` ones repeated until they make about `share` of
/// all (at least once; `share` 0: once), then the `joined` ones. Drawing from the union alone
/// would give a thousand true labels under 2 % of the batches beside fifty thousand cluster
/// labels, and the student would learn the readout's errors before the labels.
pub(super) fn with_labeled_share(labeled: &[usize], joined: &[usize], share: f64) -> Vec<usize> {
    let copies = if share > 0.0 && !labeled.is_empty() {
        let wanted = share / (1.0 - share) * joined.len() as f64;
        ((wanted / labeled.len() as f64).round() as usize).max(1)
    } else {
        1
    };
    let mut rows = labeled.repeat(copies);
    rows.extend_from_slice(joined);
    rows
}

/// A warning when the cluster labels leave a class nearly out: fewer than a quarter of the
/// mean count of images joined per class (`joined`: the unlabeled rows that join, `labels`
/// their cluster labels). A readout that spreads a class over clusters is less sure of it, so
/// a high threshold can drop it whole, and the student then learns it from its few labels.
pub(super) fn imbalance(labels: &[u32], joined: &[usize], classes: usize) -> Option<String> {
    let mut counts = vec![0usize; classes];
    for &r in joined {
        counts[labels[r] as usize] += 1;
    }
    let mean = joined.len() as f64 / classes as f64;
    let (class, &least) = counts.iter().enumerate().min_by_key(|(_, n)| **n)?;
    (mean > 0.0 && (least as f64) < mean / 4.0).then(|| {
        format!(
            "class {class} has {least} of the {} images joined (a class averages {mean:.0}); the readout is less sure of some classes: a lower --cluster-labels (e.g. {}) keeps them",
            joined.len(),
            super::FEW_LABELS_CLUSTER_LABELS
        )
    })
}

/// The one-to-one matching of rows to columns of the square matrix `score` with the largest
/// total (the Hungarian method, O(n³)): entry `r` of the result is row `r`'s column. IIC names
/// its clusters this way; a majority vote could give two clusters the same class.
pub fn matching(score: &[Vec<i64>]) -> Vec<usize> {
    // Kuhn-Munkres with potentials on the cost -score; rows and columns counted from 1, and
    // column 0 is the free column each new row starts from (the standard compact form)
    let n = score.len();
    let cost = |i: usize, j: usize| -score[i - 1][j - 1];
    let (mut u, mut v) = (vec![0i64; n + 1], vec![0i64; n + 1]);
    let (mut owner, mut way) = (vec![0usize; n + 1], vec![0usize; n + 1]);
    for i in 1..=n {
        owner[0] = i;
        let mut j0 = 0;
        let mut minv = vec![i64::MAX; n + 1];
        let mut used = vec![false; n + 1];
        loop {
            used[j0] = true;
            let i0 = owner[j0];
            let (mut delta, mut j1) = (i64::MAX, 0);
            for j in 1..=n {
                if !used[j] {
                    let cur = cost(i0, j) - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=n {
                if used[j] {
                    u[owner[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if owner[j0] == 0 {
                break;
            }
        }
        while j0 != 0 {
            let j1 = way[j0];
            owner[j0] = owner[j1];
            j0 = j1;
        }
    }
    let mut column = vec![0; n];
    for j in 1..=n {
        column[owner[j] - 1] = j - 1;
    }
    column
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn total(score: &[Vec<i64>], cols: &[usize]) -> i64 {
        cols.iter().enumerate().map(|(r, &c)| score[r][c]).sum()
    }

    /// Every permutation of 0..n (Heap's algorithm).
    fn permutations(n: usize) -> Vec<Vec<usize>> {
        fn go(k: usize, a: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
            if k <= 1 {
                out.push(a.clone());
                return;
            }
            for i in 0..k {
                go(k - 1, a, out);
                let j = if k.is_multiple_of(2) { i } else { 0 };
                a.swap(j, k - 1);
            }
        }
        let mut out = vec![];
        go(n, &mut (0..n).collect(), &mut out);
        out
    }

    #[test]
    fn matching_finds_the_best_total_of_all_permutations() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for n in 1..=6 {
            let all = permutations(n);
            for _ in 0..40 {
                let score: Vec<Vec<i64>> = (0..n).map(|_| (0..n).map(|_| rng.random_range(0..20)).collect()).collect();
                let got = matching(&score);
                let mut seen = got.clone();
                seen.sort_unstable();
                assert_eq!(seen, (0..n).collect::<Vec<_>>(), "not a permutation: {got:?}");
                let best = all.iter().map(|p| total(&score, p)).max().unwrap();
                assert_eq!(total(&score, &got), best, "{score:?} -> {got:?}");
            }
        }
    }

    #[test]
    fn a_majority_vote_would_name_two_clusters_alike_the_matching_does_not() {
        // cluster 0 holds most of class 0 and class 1: the majority names it 0 for both
        let score = vec![vec![9, 2, 0], vec![5, 4, 0], vec![0, 0, 7]];
        assert_eq!(matching(&score), vec![0, 1, 2]);
        let score = vec![vec![0, 8, 1], vec![1, 0, 6], vec![5, 0, 0]];
        assert_eq!(matching(&score), vec![1, 2, 0]);
    }

    #[test]
    fn the_labeled_rows_repeat_to_their_share_of_the_rows() {
        let (labeled, joined): (Vec<usize>, Vec<usize>) = ((0..10).collect(), (10..1010).collect());
        assert_eq!(with_labeled_share(&labeled, &joined, 0.0), (0..1010).collect::<Vec<_>>());
        for (share, copies) in [(0.5, 100), (0.2, 25), (0.001, 1)] {
            let rows = with_labeled_share(&labeled, &joined, share);
            assert_eq!(rows.len(), copies * 10 + 1000, "share {share}");
            assert_eq!(&rows[copies * 10..], &joined[..], "the joined rows once, after the labeled ones");
            assert!(rows[..copies * 10].chunks(10).all(|c| c == &labeled[..]));
        }
        // nothing joined: the labeled rows once
        assert_eq!(with_labeled_share(&labeled, &[], 0.5), labeled);
    }

    #[test]
    fn a_class_the_cluster_labels_leave_nearly_out_is_named() {
        // rows 0-16: class 0 x8, class 1 x8, class 2 x1 (a quarter of the mean is 1.4); all join
        let labels = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2];
        let every: Vec<usize> = (0..17).collect();
        let w = imbalance(&labels, &every, 3).unwrap();
        assert!(w.contains("class 2 has 1 of the 17") && w.contains("--cluster-labels"), "{w}");
        // two of class 2 are a quarter of the mean or more: no warning
        assert!(imbalance(&[&labels[..], &[2]].concat(), &(0..18).collect::<Vec<_>>(), 3).is_none());
        // a class no image joins is the first named
        assert!(imbalance(&labels, &every, 9).unwrap().contains("class 3 has 0"));
        assert!(imbalance(&[0, 1, 0, 1], &[0, 1, 2, 3], 2).is_none());
        assert!(imbalance(&labels, &[], 3).is_none(), "nothing joined: nothing to say");
    }
}
