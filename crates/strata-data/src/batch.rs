//! Epoch orders and mini-batch index chunks.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// A seeded permutation of `0..n`; each epoch gets its own stream, so epoch `e`'s order
/// does not depend on how many epochs ran before it (needed for exact resume).
pub fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    order
}

/// An order of items cut into batches of `batch_size` (the last one may be smaller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchPlan {
    order: Vec<usize>,
    batch_size: usize,
}

impl BatchPlan {
    /// Batches over `order`; a batch size of 0 is treated as 1.
    pub fn new(order: Vec<usize>, batch_size: usize) -> Self {
        BatchPlan { order, batch_size: batch_size.max(1) }
    }

    /// Batches over `0..n` in order (for evaluation).
    pub fn sequential(n: usize, batch_size: usize) -> Self {
        Self::new((0..n).collect(), batch_size)
    }

    /// Batches over the seeded order of `epoch` (for training).
    pub fn shuffled(n: usize, batch_size: usize, seed: u64, epoch: u64) -> Self {
        Self::new(epoch_order(n, seed, epoch), batch_size)
    }

    /// Number of batches.
    pub fn len(&self) -> usize {
        self.order.len().div_ceil(self.batch_size)
    }

    /// True when there are no batches.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The batch size.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The whole order.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// The batches, as slices of indices.
    pub fn iter(&self) -> std::slice::Chunks<'_, usize> {
        self.order.chunks(self.batch_size)
    }
}

impl<'a> IntoIterator for &'a BatchPlan {
    type Item = &'a [usize];
    type IntoIter = std::slice::Chunks<'a, usize>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn epochs_differ_but_repeat() {
        assert_eq!(epoch_order(50, 1, 0), epoch_order(50, 1, 0));
        assert_ne!(epoch_order(50, 1, 0), epoch_order(50, 1, 1));
        assert_ne!(epoch_order(50, 1, 0), epoch_order(50, 2, 0));
        assert!(epoch_order(0, 1, 0).is_empty());
    }

    #[test]
    fn last_batch_is_smaller() {
        let p = BatchPlan::sequential(10, 4);
        let b: Vec<&[usize]> = p.iter().collect();
        assert_eq!(b, vec![&[0, 1, 2, 3][..], &[4, 5, 6, 7][..], &[8, 9][..]]);
        assert_eq!(p.len(), 3);
        assert_eq!(BatchPlan::sequential(3, 0).len(), 3);
        assert!(BatchPlan::sequential(0, 4).is_empty());
        assert_eq!((&p).into_iter().count(), 3);
    }

    proptest! {
        #[test]
        fn order_is_a_permutation(n in 0usize..300, seed: u64, epoch in 0u64..5) {
            let mut o = epoch_order(n, seed, epoch);
            o.sort_unstable();
            prop_assert_eq!(o, (0..n).collect::<Vec<_>>());
        }

        #[test]
        fn batches_cover_once(n in 0usize..300, bs in 1usize..40, seed: u64) {
            let p = BatchPlan::shuffled(n, bs, seed, 3);
            let flat: Vec<usize> = p.iter().flatten().copied().collect();
            prop_assert_eq!(&flat[..], p.order());
            prop_assert_eq!(p.iter().count(), p.len());
            prop_assert!(p.iter().all(|b| b.len() <= bs && !b.is_empty()));
        }
    }
}
