//! Accuracy, per-class precision/recall/F1 and the confusion matrix.

use crate::batch::Batcher;
use crate::error::Result;
use burn::module::Module;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use strata_data::{Dataset, Normalization};
use strata_nn::Classifier;

/// Scores of one class.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// class name
    pub name: String,
    /// correct predictions of this class / predictions of this class
    pub precision: f64,
    /// correct predictions of this class / images of this class
    pub recall: f64,
    /// harmonic mean of precision and recall
    pub f1: f64,
    /// images of this class
    pub support: usize,
}

/// An evaluation of a classifier on labeled data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evaluation {
    /// images scored
    pub images: usize,
    /// fraction classified correctly
    pub accuracy: f64,
    /// mean F1 over classes
    pub macro_f1: f64,
    /// per-class scores
    pub classes: Vec<ClassMetrics>,
    /// confusion[true][predicted]
    pub confusion: Vec<Vec<usize>>,
}

/// Predicted class of each row (all rows when `rows` is None).
pub fn predict(
    model: &Classifier,
    data: &Dataset,
    rows: Option<&[usize]>,
    norm: &Normalization,
    device: &Device,
) -> Vec<u32> {
    let model = model.valid();
    let batcher = Batcher::new(data, norm);
    let all: Vec<usize>;
    let rows = match rows {
        Some(r) => r,
        None => {
            all = (0..data.len()).collect();
            &all
        }
    };
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(256) {
        let logits = model.forward(batcher.inputs(chunk, device));
        let pred = logits.argmax(1).into_data().convert::<i64>();
        out.extend(pred.try_to_vec::<i64>().unwrap_or_default().into_iter().map(|p| p as u32));
    }
    out
}

/// Class probabilities (softmax of the logits) of every image of `data`, one row per image.
pub fn probabilities(model: &Classifier, data: &Dataset, norm: &Normalization, device: &Device) -> Vec<Vec<f32>> {
    let model = model.valid();
    let batcher = Batcher::new(data, norm);
    let rows: Vec<usize> = (0..data.len()).collect();
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(256) {
        let p = burn::tensor::activation::softmax(model.forward(batcher.inputs(chunk, device)), 1);
        let k = p.dims()[1];
        let values = p.into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default();
        out.extend(values.chunks(k.max(1)).map(<[f32]>::to_vec));
    }
    out
}

/// Scores `model` on rows of labeled `data` (all rows when None).
pub fn evaluate(
    model: &Classifier,
    data: &Dataset,
    rows: Option<&[usize]>,
    norm: &Normalization,
    device: &Device,
) -> Result<Evaluation> {
    let labels = data.require_labels()?;
    let k = data.class_names.len().max(1);
    let pred = predict(model, data, rows, norm, device);
    let truth: Vec<u32> = match rows {
        Some(r) => r.iter().map(|&i| labels[i]).collect(),
        None => labels.to_vec(),
    };
    Ok(Evaluation::from_predictions(&truth, &pred, &data.class_names, k))
}

impl Evaluation {
    /// Builds the scores from true and predicted class indices.
    pub fn from_predictions(truth: &[u32], pred: &[u32], names: &[String], k: usize) -> Self {
        let mut confusion = vec![vec![0usize; k]; k];
        for (&t, &p) in truth.iter().zip(pred) {
            let (t, p) = (t as usize, p as usize);
            if t < k && p < k {
                confusion[t][p] += 1;
            }
        }
        let correct: usize = (0..k).map(|c| confusion[c][c]).sum();
        let classes: Vec<ClassMetrics> = (0..k)
            .map(|c| {
                let tp = confusion[c][c] as f64;
                let support: usize = confusion[c].iter().sum();
                let predicted: usize = confusion.iter().map(|row| row[c]).sum();
                let precision = if predicted > 0 { tp / predicted as f64 } else { 0.0 };
                let recall = if support > 0 { tp / support as f64 } else { 0.0 };
                let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
                ClassMetrics {
                    name: names.get(c).cloned().unwrap_or_else(|| c.to_string()),
                    precision,
                    recall,
                    f1,
                    support,
                }
            })
            .collect();
        let images = truth.len();
        Self {
            images,
            accuracy: if images > 0 { correct as f64 / images as f64 } else { 0.0 },
            macro_f1: classes.iter().map(|c| c.f1).sum::<f64>() / k as f64,
            classes,
            confusion,
        }
    }

    /// The report for people.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "accuracy  {:.2}%  ({} images)   macro F1 {:.4}",
            100.0 * self.accuracy,
            self.images,
            self.macro_f1
        );
        let _ = writeln!(s, "\n{:>12} {:>9} {:>9} {:>9} {:>8}", "class", "precision", "recall", "f1", "support");
        for c in &self.classes {
            let _ = writeln!(s, "{:>12} {:>9.4} {:>9.4} {:>9.4} {:>8}", c.name, c.precision, c.recall, c.f1, c.support);
        }
        let _ = writeln!(s, "\nconfusion matrix (rows: true class, columns: predicted)");
        let _ = write!(s, "{:>12}", "");
        for c in &self.classes {
            let _ = write!(s, " {:>6}", truncate(&c.name, 6));
        }
        let _ = writeln!(s);
        for (c, row) in self.classes.iter().zip(&self.confusion) {
            let _ = write!(s, "{:>12}", truncate(&c.name, 12));
            for v in row {
                let _ = write!(s, " {v:>6}");
            }
            let _ = writeln!(s);
        }
        s
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_a_known_confusion() {
        let names: Vec<String> = vec!["a".into(), "b".into()];
        // truth a a a b, predicted a a b b
        let e = Evaluation::from_predictions(&[0, 0, 0, 1], &[0, 0, 1, 1], &names, 2);
        assert_eq!(e.confusion, vec![vec![2, 1], vec![0, 1]]);
        assert!((e.accuracy - 0.75).abs() < 1e-12);
        assert!((e.classes[0].precision - 1.0).abs() < 1e-12);
        assert!((e.classes[0].recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((e.classes[1].precision - 0.5).abs() < 1e-12);
        assert!((e.classes[1].f1 - 2.0 / 3.0).abs() < 1e-12);
        assert!(e.to_text().contains("accuracy  75.00%"));
    }
}
