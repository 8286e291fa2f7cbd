//! Epoch orders: the seeded permutation each training epoch walks.

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

    proptest! {
        #[test]
        fn order_is_a_permutation(n in 0usize..300, seed: u64, epoch in 0u64..5) {
            let mut o = epoch_order(n, seed, epoch);
            o.sort_unstable();
            prop_assert_eq!(o, (0..n).collect::<Vec<_>>());
        }

    }
}
