//! Seeded, class-balanced choices of indices: labeled subsets and train/validation splits.
//!
//! Each class draws from its own random stream (seed, class), so a class's pick does not
//! change when another class gains or loses examples.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::error::{DataError, Result};

/// Indices of each class in ascending order, and of labels not below `num_classes`.
///
/// Readers never produce such labels; they are set aside rather than used to size the
/// grouping, so a stray `u32::MAX` cannot ask for four billion classes.
fn group(labels: &[u32], num_classes: usize) -> (Vec<Vec<usize>>, Vec<usize>) {
    let mut by_class = vec![Vec::new(); num_classes];
    let mut stray = Vec::new();
    for (i, &l) in labels.iter().enumerate() {
        match by_class.get_mut(l as usize) {
            Some(c) => c.push(i),
            None => stray.push(i),
        }
    }
    (by_class, stray)
}

/// The indices of one class in a seeded random order.
fn shuffled(mut idx: Vec<usize>, seed: u64, class: usize) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(class as u64);
    idx.shuffle(&mut rng);
    idx
}

/// Exactly `per_class` indices of every class, chosen by a seeded shuffle, sorted ascending.
///
/// Labels not below `num_classes` are never chosen (here and in [`stratified_fraction`]).
pub fn stratified_subset(labels: &[u32], num_classes: usize, per_class: usize, seed: u64) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(per_class * num_classes);
    for (class, idx) in group(labels, num_classes).0.into_iter().enumerate() {
        if idx.len() < per_class {
            return Err(DataError::NotEnoughLabels {
                class: class.to_string(),
                available: idx.len(),
                requested: per_class,
            });
        }
        out.extend(shuffled(idx, seed, class).into_iter().take(per_class));
    }
    out.sort_unstable();
    Ok(out)
}

/// How many of `n` items a fraction takes: rounded, at least one of a non-empty class.
fn share(n: usize, fraction: f64) -> usize {
    ((n as f64 * fraction).round() as usize).clamp(n.min(1), n)
}

/// About `fraction` of every class (at least one each), chosen by a seeded shuffle, sorted.
pub fn stratified_fraction(labels: &[u32], num_classes: usize, fraction: f64, seed: u64) -> Result<Vec<usize>> {
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(DataError::BadFraction {
            name: "label fraction",
            value: fraction,
            allowed: "it must be in (0, 1]",
        });
    }
    let mut out = Vec::new();
    for (class, idx) in group(labels, num_classes).0.into_iter().enumerate() {
        let k = share(idx.len(), fraction);
        out.extend(shuffled(idx, seed, class).into_iter().take(k));
    }
    out.sort_unstable();
    Ok(out)
}

/// Splits all indices into (train, valid), about `valid_fraction` of each class in valid.
///
/// A class with at least two items appears in both parts; a single item goes to train,
/// as do items whose label is not below `num_classes`, so the two parts cover everything.
pub fn stratified_split(
    labels: &[u32],
    num_classes: usize,
    valid_fraction: f64,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(valid_fraction > 0.0 && valid_fraction < 1.0) {
        return Err(DataError::BadFraction {
            name: "validation fraction",
            value: valid_fraction,
            allowed: "it must be in (0, 1)",
        });
    }
    let (by_class, stray) = group(labels, num_classes);
    let (mut train, mut valid) = (stray, Vec::new());
    for (class, idx) in by_class.into_iter().enumerate() {
        let n = idx.len();
        let k = if n < 2 { 0 } else { ((n as f64 * valid_fraction).round() as usize).clamp(1, n - 1) };
        let idx = shuffled(idx, seed, class);
        valid.extend_from_slice(&idx[..k]);
        train.extend_from_slice(&idx[k..]);
    }
    train.sort_unstable();
    valid.sort_unstable();
    Ok((train, valid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn counts(labels: &[u32], idx: &[usize], k: usize) -> Vec<usize> {
        let mut c = vec![0; k];
        for &i in idx {
            c[labels[i] as usize] += 1;
        }
        c
    }

    #[test]
    fn not_enough_labels_names_class_and_counts() {
        let labels = [0, 0, 0, 1];
        let msg = stratified_subset(&labels, 2, 2, 0).unwrap_err().to_string();
        assert!(
            msg.contains("class 1") && msg.contains("2 labeled examples asked for") && msg.contains("only 1"),
            "{msg}"
        );
    }

    #[test]
    fn empty_class_counts_as_short() {
        let msg = stratified_subset(&[0, 0], 2, 1, 0).unwrap_err().to_string();
        assert!(msg.contains("class 1") && msg.contains("only 0"), "{msg}");
    }

    #[test]
    fn fractions_are_checked() {
        for f in [0.0, -0.5, 1.5, f64::NAN] {
            assert!(stratified_fraction(&[0], 1, f, 0).is_err());
        }
        assert!(stratified_fraction(&[0], 1, 1.0, 0).is_ok());
        let msg = stratified_split(&[0], 1, 1.0, 0).unwrap_err().to_string();
        assert!(msg.contains("validation fraction") && msg.contains("(0, 1)"), "{msg}");
    }

    #[test]
    fn stray_labels_are_set_aside() {
        let labels = [0, u32::MAX, 1, 0, 1];
        assert_eq!(stratified_subset(&labels, 2, 2, 0).unwrap(), vec![0, 2, 3, 4]);
        let (train, valid) = stratified_split(&labels, 2, 0.5, 0).unwrap();
        assert!(train.contains(&1) && !valid.contains(&1));
        assert_eq!(train.len() + valid.len(), 5);
    }

    #[test]
    fn other_classes_do_not_disturb_a_class_pick() {
        let a = [0, 0, 0, 0, 0, 1, 1];
        let b = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1];
        let pa = stratified_subset(&a, 2, 2, 9).unwrap();
        let pb = stratified_subset(&b, 2, 2, 9).unwrap();
        assert_eq!(pa[..2], pb[..2]);
    }

    fn labels_strategy() -> impl Strategy<Value = (Vec<u32>, usize)> {
        (1usize..6).prop_flat_map(|k| (proptest::collection::vec(0..k as u32, 0..200), Just(k)))
    }

    proptest! {
        #[test]
        fn subset_unique_sorted_exact((labels, k) in labels_strategy(), per in 0usize..5, seed: u64) {
            let count: Vec<usize> = (0..k).map(|c| labels.iter().filter(|&&l| l as usize == c).count()).collect();
            let min = *count.iter().min().unwrap();
            match stratified_subset(&labels, k, per, seed) {
                Ok(idx) => {
                    prop_assert!(per <= min);
                    prop_assert!(idx.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
                    prop_assert_eq!(counts(&labels, &idx, k), vec![per; k]);
                    prop_assert_eq!(stratified_subset(&labels, k, per, seed).unwrap(), idx);
                }
                Err(DataError::NotEnoughLabels { class, available, requested }) => {
                    // The first class that falls short is reported.
                    let first = count.iter().position(|&c| c < per).unwrap();
                    prop_assert_eq!(class, first.to_string());
                    prop_assert_eq!(available, count[first]);
                    prop_assert_eq!(requested, per);
                }
                Err(e) => prop_assert!(false, "unexpected {}", e),
            }
        }

        #[test]
        fn fraction_keeps_every_class((labels, k) in labels_strategy(), f in 0.01f64..=1.0, seed: u64) {
            let idx = stratified_fraction(&labels, k, f, seed).unwrap();
            prop_assert!(idx.windows(2).all(|w| w[0] < w[1]));
            let all = counts(&labels, &(0..labels.len()).collect::<Vec<_>>(), k);
            let got = counts(&labels, &idx, k);
            for c in 0..k {
                prop_assert!(got[c] <= all[c]);
                prop_assert_eq!(got[c] == 0, all[c] == 0);
            }
            prop_assert_eq!(stratified_fraction(&labels, k, f, seed).unwrap(), idx);
        }

        #[test]
        fn split_is_disjoint_and_covers((labels, k) in labels_strategy(), f in 0.01f64..0.99, seed: u64) {
            let (train, valid) = stratified_split(&labels, k, f, seed).unwrap();
            prop_assert!(train.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(valid.windows(2).all(|w| w[0] < w[1]));
            let mut all: Vec<usize> = train.iter().chain(&valid).copied().collect();
            all.sort_unstable();
            prop_assert_eq!(all, (0..labels.len()).collect::<Vec<_>>());
            let (ct, cv) = (counts(&labels, &train, k), counts(&labels, &valid, k));
            for c in 0..k {
                if ct[c] + cv[c] >= 2 {
                    prop_assert!(ct[c] >= 1 && cv[c] >= 1);
                }
            }
            prop_assert_eq!(stratified_split(&labels, k, f, seed).unwrap(), (train, valid));
        }
    }
}
