//! Pieces shared by every training loop: the batch schedule, losses, divergence checks.

use crate::error::{Result, TrainError};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Int, Tensor};

/// Mean cross-entropy of logits against class indices.
pub fn cross_entropy(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    let device = logits.device();
    CrossEntropyLossConfig::new().init(&device).forward(logits, labels)
}

/// Mean cross-entropy against targets smoothed to `1 - alpha` on the true class and
/// `alpha / classes` everywhere (Szegedy et al. 2016); `alpha` 0 is [`cross_entropy`].
pub fn smoothed_cross_entropy(logits: Tensor<2>, labels: Tensor<1, Int>, alpha: f64) -> Tensor<1> {
    if alpha <= 0.0 {
        return cross_entropy(logits, labels);
    }
    let device = logits.device();
    CrossEntropyLossConfig::new().with_smoothing(Some(alpha as f32)).init(&device).forward(logits, labels)
}

/// Mean squared error.
pub fn mse(output: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
    (output - target).powi_scalar(2).mean()
}

/// The generator of one step's noise: a pure function of (seed, salt, step), so a step's
/// corruption does not depend on the steps before it (reproducible, and resumable later).
pub fn step_rng(seed: u64, salt: u64, step: u64) -> rand_chacha::ChaCha8Rng {
    use rand::SeedableRng;
    rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ salt ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// `len` draws from a standard normal distribution, from a seeded generator so the noise of
/// a step is reproducible.
pub fn standard_normal(len: usize, rng: &mut rand_chacha::ChaCha8Rng) -> Vec<f32> {
    use rand::Rng;
    (0..len).map(|_| rng.sample(rand_distr::StandardNormal)).collect()
}

/// Checks the optimiser settings every training loop shares, naming the flag.
pub fn validate_optim(batch: usize, lr: f64) -> Result<()> {
    if batch == 0 || batch > 65_536 {
        return Err(TrainError::config("--batch", batch, "use a batch size between 1 and 65536"));
    }
    if !(lr.is_finite() && lr > 0.0 && lr < 10.0) {
        return Err(TrainError::config("--lr", lr, "use a positive learning rate below 10, e.g. 1e-3"));
    }
    Ok(())
}

/// Reads a scalar loss and stops the run on NaN or infinity (the loop that catches the
/// error names the first tensor that went non-finite).
pub fn checked_loss(loss: &Tensor<1>, phase: &str, step: usize) -> Result<f32> {
    let value = loss.clone().into_scalar::<f32>();
    if !value.is_finite() {
        return Err(TrainError::Diverged { phase: phase.into(), step, what: format!("the loss became {value}") });
    }
    Ok(value)
}

/// A [`BatchSchedule`]'s place: the epoch and how far into its order (None = not started).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SchedulePosition {
    /// completed passes
    pub epoch: u64,
    /// rows of this epoch's order already handed out
    pub pos: Option<usize>,
}

/// Yields the row indices of each optimiser step: seeded shuffles of `rows`, epoch after
/// epoch, cut into batches; a step count rather than an epoch count drives training, so a
/// run with 100 labels still gets enough optimiser steps.
pub struct BatchSchedule {
    rows: Vec<usize>,
    batch: usize,
    seed: u64,
    epoch: u64,
    order: Vec<usize>,
    pos: usize,
}

impl BatchSchedule {
    /// A schedule over `rows` (dataset indices) with batches of `batch`.
    pub fn new(rows: Vec<usize>, batch: usize, seed: u64) -> Self {
        Self { rows, batch: batch.max(1), seed, epoch: 0, order: Vec::new(), pos: usize::MAX }
    }

    /// Number of batches in one pass over the rows.
    pub fn steps_per_epoch(&self) -> usize {
        self.rows.len().div_ceil(self.batch)
    }

    /// Completed passes over the data so far.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Where the schedule stands, to be saved in a checkpoint.
    pub fn position(&self) -> SchedulePosition {
        SchedulePosition { epoch: self.epoch, pos: (self.pos != usize::MAX).then_some(self.pos) }
    }

    /// Continues from a saved position: the same batches follow as would have without the stop.
    pub fn seek(&mut self, at: SchedulePosition) {
        self.epoch = at.epoch;
        match at.pos {
            Some(pos) => {
                let perm = strata_data::epoch_order(self.rows.len(), self.seed, self.epoch);
                self.order = perm.into_iter().map(|i| self.rows[i]).collect();
                self.pos = pos.min(self.order.len());
            }
            None => {
                self.order.clear();
                self.pos = usize::MAX;
            }
        }
    }

    /// The next batch (the last batch of an epoch may be smaller).
    pub fn next_batch(&mut self) -> Vec<usize> {
        if self.pos >= self.order.len() {
            if self.pos != usize::MAX {
                self.epoch += 1;
            }
            let perm = strata_data::epoch_order(self.rows.len(), self.seed, self.epoch);
            self.order = perm.into_iter().map(|i| self.rows[i]).collect();
            self.pos = 0;
        }
        let end = (self.pos + self.batch).min(self.order.len());
        let out = self.order[self.pos..end].to_vec();
        self.pos = end;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_smoothing_gives_the_hand_computed_loss() {
        use burn::tensor::{Device, TensorData};
        let device = Device::default();
        // softmax of (ln 3, 0) is (0.75, 0.25); smoothing 0.2 over 2 classes targets (0.9, 0.1)
        let logits = || Tensor::<2>::from_data(TensorData::new(vec![3f32.ln(), 0.0], [1, 2]), &device);
        let label = || Tensor::<1, Int>::from_data(TensorData::new(vec![0i64], [1]), &device);
        let smoothed: f32 = smoothed_cross_entropy(logits(), label(), 0.2).into_scalar();
        let by_hand = -(0.9 * 0.75f32.ln() + 0.1 * 0.25f32.ln());
        assert!((smoothed - by_hand).abs() < 1e-6, "{smoothed} vs {by_hand}");
        let plain: f32 = smoothed_cross_entropy(logits(), label(), 0.0).into_scalar();
        assert!((plain + 0.75f32.ln()).abs() < 1e-6, "{plain}");
    }

    #[test]
    fn schedule_covers_each_row_once_per_epoch() {
        let mut s = BatchSchedule::new((100..110).collect(), 4, 7);
        assert_eq!(s.steps_per_epoch(), 3);
        let mut seen: Vec<usize> = (0..3).flat_map(|_| s.next_batch()).collect();
        seen.sort();
        assert_eq!(seen, (100..110).collect::<Vec<_>>());
        let next: Vec<usize> = (0..3).flat_map(|_| s.next_batch()).collect();
        assert_eq!(s.epoch(), 1);
        assert_eq!(next.len(), 10);
    }

    #[test]
    fn a_schedule_continues_from_its_position() {
        let mut whole = BatchSchedule::new((0..23).collect(), 5, 9);
        let all: Vec<_> = (0..14).map(|_| whole.next_batch()).collect();
        for cut in [0, 1, 4, 5, 7, 13] {
            let mut first = BatchSchedule::new((0..23).collect(), 5, 9);
            let head: Vec<_> = (0..cut).map(|_| first.next_batch()).collect();
            let mut second = BatchSchedule::new((0..23).collect(), 5, 9);
            second.seek(first.position());
            let tail: Vec<_> = (cut..14).map(|_| second.next_batch()).collect();
            assert_eq!([head, tail].concat(), all, "cut after {cut} batches");
        }
    }

    #[test]
    fn schedule_is_deterministic() {
        let a: Vec<_> = {
            let mut s = BatchSchedule::new((0..50).collect(), 8, 3);
            (0..20).map(|_| s.next_batch()).collect()
        };
        let b: Vec<_> = {
            let mut s = BatchSchedule::new((0..50).collect(), 8, 3);
            (0..20).map(|_| s.next_batch()).collect()
        };
        assert_eq!(a, b);
    }
}
