//! The in-memory data set every reader produces and every trainer consumes.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{DataError, Result};
use crate::subset::stratified_subset;

/// Shape of one image: channel-first, 8-bit pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ImageShape {
    /// Number of channels (1 grayscale, 3 RGB).
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl ImageShape {
    /// Builds a shape from channels, height and width.
    pub fn new(channels: usize, height: usize, width: usize) -> Self {
        ImageShape { channels, height, width }
    }

    /// Pixels per image (channels x height x width).
    pub fn numel(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Pixels per channel plane (height x width).
    pub fn plane(&self) -> usize {
        self.height * self.width
    }

    /// The shape as a (channels, height, width) tuple.
    pub fn as_tuple(&self) -> (usize, usize, usize) {
        (self.channels, self.height, self.width)
    }
}

impl std::fmt::Display for ImageShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}x{}", self.channels, self.height, self.width)
    }
}

/// An empty buffer with room for `n` images of `shape`, or an error instead of an abort
/// when that much memory cannot be had (a huge `--resize`, a huge folder).
pub(crate) fn pixel_buffer(n: usize, shape: ImageShape, what: &str) -> Result<Vec<u8>> {
    let too_much = |bytes: u64| DataError::OutOfMemory { what: what.to_string(), bytes };
    let bytes = [shape.channels, shape.height, shape.width]
        .into_iter()
        .try_fold(n, usize::checked_mul)
        .ok_or_else(|| too_much(u64::MAX))?;
    let mut v = Vec::new();
    v.try_reserve_exact(bytes).map_err(|_| too_much(bytes as u64))?;
    Ok(v)
}

/// Images (and optionally labels) held in memory as one contiguous pixel buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// All pixels, N x C x H x W, channel-first, 0..=255.
    pub images: Vec<u8>,
    /// Shape of each image.
    pub shape: ImageShape,
    /// One class index per image, each below `class_names.len()`; `None` for unlabeled data.
    pub labels: Option<Vec<u32>>,
    /// Class names, indexed by label; empty for unlabeled data.
    pub class_names: Vec<String>,
    /// Where the data came from, for messages and manifests (path, split, format).
    pub source: String,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.len().checked_div(self.shape.numel()).unwrap_or(0)
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pixels of image `i` (C x H x W); panics if `i >= len()`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.shape.numel();
        &self.images[i * n..(i + 1) * n]
    }

    /// Number of classes (0 for unlabeled data).
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// The labels, if any.
    pub fn labels(&self) -> Option<&[u32]> {
        self.labels.as_deref()
    }

    /// The labels, or an error naming this data set when it has none.
    pub fn require_labels(&self) -> Result<&[u32]> {
        self.labels.as_deref().ok_or_else(|| DataError::Unlabeled { dataset: self.source.clone() })
    }

    /// A new data set holding the images at `idx`, in that order; panics on an index out of range.
    pub fn subset(&self, idx: &[usize]) -> Dataset {
        let mut images = Vec::with_capacity(idx.len() * self.shape.numel());
        for &i in idx {
            images.extend_from_slice(self.image(i));
        }
        Dataset {
            images,
            shape: self.shape,
            labels: self.labels.as_ref().map(|l| idx.iter().map(|&i| l[i]).collect()),
            class_names: self.class_names.clone(),
            source: format!("{} [subset of {}]", self.source, idx.len()),
        }
    }

    /// The same images without labels (and without class names).
    pub fn unlabeled(mut self) -> Dataset {
        self.labels = None;
        self.class_names.clear();
        self
    }

    /// SHA-256 (hex) of the shape, class names, pixels and labels: equal data gives equal prints.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"strata-dataset-v1");
        for d in [self.shape.channels, self.shape.height, self.shape.width, self.len()] {
            h.update((d as u64).to_le_bytes());
        }
        h.update(&self.images);
        match &self.labels {
            None => h.update([0u8]),
            Some(labels) => {
                h.update([1u8]);
                for l in labels {
                    h.update(l.to_le_bytes());
                }
            }
        }
        // Length-prefixed so that ["ab", "c"] and ["a", "bc"] differ.
        h.update((self.class_names.len() as u64).to_le_bytes());
        for name in &self.class_names {
            h.update((name.len() as u64).to_le_bytes());
            h.update(name.as_bytes());
        }
        hex::encode(h.finalize())
    }

    /// Images per class, indexed by label (all zero for unlabeled data).
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes()];
        for &l in self.labels().unwrap_or(&[]) {
            if let Some(c) = counts.get_mut(l as usize) {
                *c += 1;
            }
        }
        counts
    }

    /// Errors unless `other` (the test data) has the same class names in the same order.
    pub fn check_same_classes(&self, other: &Dataset) -> Result<()> {
        if self.class_names == other.class_names {
            Ok(())
        } else {
            Err(DataError::ClassMismatch { train: self.class_names.clone(), test: other.class_names.clone() })
        }
    }

    /// Keeps only images whose label is in `keep`, relabelled to their position in `keep`.
    ///
    /// Unlabeled data is returned unchanged, since there is nothing to filter on.
    pub fn filter_classes(&self, keep: &[u32]) -> Dataset {
        let Some(labels) = &self.labels else {
            return self.clone();
        };
        let mut new_label = vec![None; self.num_classes()];
        for (new, &old) in keep.iter().enumerate() {
            if let Some(slot) = new_label.get_mut(old as usize) {
                slot.get_or_insert(new as u32);
            }
        }
        let idx: Vec<usize> =
            (0..labels.len()).filter(|&i| new_label.get(labels[i] as usize).copied().flatten().is_some()).collect();
        let mut out = self.subset(&idx);
        out.labels = Some(idx.iter().filter_map(|&i| new_label[labels[i] as usize]).collect());
        out.class_names =
            keep.iter().map(|&c| self.class_names.get(c as usize).cloned().unwrap_or_else(|| c.to_string())).collect();
        out.source = format!("{} [classes {}]", self.source, out.class_names.join(","));
        out
    }

    /// `per_class` images of every class, drawn by a seeded shuffle (see [`stratified_subset`]).
    pub fn take_per_class(&self, per_class: usize, seed: u64) -> Result<Dataset> {
        let labels = self.require_labels()?;
        let idx = stratified_subset(labels, self.num_classes(), per_class, seed).map_err(|e| match e {
            // The index alone means little to a user; give the folder name.
            DataError::NotEnoughLabels { class, available, requested } => {
                let class = class
                    .parse::<usize>()
                    .ok()
                    .and_then(|c| self.class_names.get(c))
                    .map(|name| format!("{name:?}"))
                    .unwrap_or(class);
                DataError::NotEnoughLabels { class, available, requested }
            }
            other => other,
        })?;
        let mut out = self.subset(&idx);
        out.source = format!("{} [{} per class, seed {}]", self.source, per_class, seed);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Dataset {
        // 4 images of 1x1x2: pixels encode the index so subsets are easy to check.
        Dataset {
            images: vec![0, 1, 10, 11, 20, 21, 30, 31],
            shape: ImageShape::new(1, 1, 2),
            labels: Some(vec![0, 1, 2, 1]),
            class_names: vec!["a".into(), "b".into(), "c".into()],
            source: "tiny".into(),
        }
    }

    #[test]
    fn basics() {
        let d = tiny();
        assert_eq!(d.len(), 4);
        assert!(!d.is_empty());
        assert_eq!(d.image(2), &[20, 21]);
        assert_eq!(d.num_classes(), 3);
        assert_eq!(d.class_counts(), vec![1, 2, 1]);
        assert_eq!(d.require_labels().unwrap(), &[0, 1, 2, 1]);
    }

    #[test]
    fn zero_sized_shape_is_empty_not_a_panic() {
        let d = Dataset {
            images: vec![],
            shape: ImageShape::new(0, 0, 0),
            labels: None,
            class_names: vec![],
            source: "x".into(),
        };
        assert!(d.is_empty());
    }

    #[test]
    fn subset_keeps_order_and_labels() {
        let s = tiny().subset(&[3, 0]);
        assert_eq!(s.images, vec![30, 31, 0, 1]);
        assert_eq!(s.labels(), Some(&[1, 0][..]));
        assert_eq!(s.class_names.len(), 3);
    }

    #[test]
    fn unlabeled_drops_labels() {
        let d = tiny().unlabeled();
        assert!(d.labels().is_none());
        assert_eq!(d.num_classes(), 0);
        let err = d.require_labels().unwrap_err().to_string();
        assert!(err.contains("tiny") && err.contains("labeled data is needed"), "{err}");
    }

    #[test]
    fn fingerprint_sees_pixels_labels_and_names() {
        let a = tiny();
        assert_eq!(a.fingerprint(), tiny().fingerprint());
        assert_eq!(a.fingerprint().len(), 64);
        let mut b = tiny();
        b.images[0] = 1;
        assert_ne!(a.fingerprint(), b.fingerprint());
        let mut c = tiny();
        c.labels = Some(vec![0, 1, 2, 2]);
        assert_ne!(a.fingerprint(), c.fingerprint());
        assert_ne!(a.fingerprint(), tiny().unlabeled().fingerprint());
        let mut d = tiny();
        d.class_names[0] = "z".into();
        assert_ne!(a.fingerprint(), d.fingerprint());
        let mut e = tiny();
        e.source = "elsewhere".into();
        assert_eq!(a.fingerprint(), e.fingerprint(), "the source is not part of the data");
    }

    #[test]
    fn class_mismatch_names_both_sides() {
        let a = tiny();
        let mut b = tiny();
        b.class_names[2] = "d".into();
        assert!(a.check_same_classes(&tiny()).is_ok());
        let err = a.check_same_classes(&b).unwrap_err().to_string();
        assert!(err.contains("[a, b, c]") && err.contains("[a, b, d]"), "{err}");
    }

    #[test]
    fn filter_classes_relabels_in_keep_order() {
        let f = tiny().filter_classes(&[2, 0]);
        assert_eq!(f.images, vec![0, 1, 20, 21]);
        assert_eq!(f.labels(), Some(&[1, 0][..]));
        assert_eq!(f.class_names, vec!["c", "a"]);
        assert_eq!(f.class_counts(), vec![1, 1]);
    }

    #[test]
    fn take_per_class_names_the_short_class() {
        let err = tiny().take_per_class(2, 0).unwrap_err().to_string();
        assert!(err.contains("\"a\"") && err.contains("only 1"), "{err}");
        let d = Dataset { labels: Some(vec![0, 0, 1, 1]), ..tiny() };
        let mut d = d;
        d.class_names.truncate(2);
        let t = d.take_per_class(1, 7).unwrap();
        assert_eq!(t.class_counts(), vec![1, 1]);
    }
}
