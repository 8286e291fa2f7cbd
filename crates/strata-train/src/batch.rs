//! Turning dataset rows into tensors: normalised inputs, [0, 1] targets, labels.

use burn::tensor::{Device, Int, Tensor, TensorData};
use strata_data::{Dataset, Normalization};
use strata_nn::InputShape;

/// The image shape of `data` as a network's input: where a data set's shape becomes a
/// network's (the two crates do not know each other).
pub fn input_of(data: &Dataset) -> InputShape {
    let s = data.shape;
    InputShape { channels: s.channels, height: s.height, width: s.width }
}

/// A dataset plus the normalisation its network was trained with.
pub struct Batcher<'a> {
    data: &'a Dataset,
    norm: &'a Normalization,
}

impl<'a> Batcher<'a> {
    /// Wraps `data`; inputs are normalised with `norm`.
    pub fn new(data: &'a Dataset, norm: &'a Normalization) -> Self {
        Self { data, norm }
    }

    /// Shape of one image as the network sees it.
    pub fn input_shape(&self) -> InputShape {
        input_of(self.data)
    }

    fn dims(&self, n: usize) -> [usize; 4] {
        let s = self.data.shape;
        [n, s.channels, s.height, s.width]
    }

    /// Normalised inputs for rows `idx`.
    pub fn inputs(&self, idx: &[usize], device: &Device) -> Tensor<4> {
        let per = self.data.shape.channels * self.data.shape.height * self.data.shape.width;
        let mut buf = vec![0f32; idx.len() * per];
        for (row, &i) in idx.iter().enumerate() {
            self.norm.apply_into(self.data.image(i), self.data.shape, &mut buf[row * per..(row + 1) * per]);
        }
        Tensor::from_data(TensorData::new(buf, self.dims(idx.len())), device)
    }

    /// Normalised inputs built from already-transformed pixel rows (augmentation, noise).
    pub fn inputs_from_pixels(&self, rows: &[Vec<u8>], device: &Device) -> Tensor<4> {
        let per = self.data.shape.channels * self.data.shape.height * self.data.shape.width;
        let mut buf = vec![0f32; rows.len() * per];
        for (r, px) in rows.iter().enumerate() {
            self.norm.apply_into(px, self.data.shape, &mut buf[r * per..(r + 1) * per]);
        }
        Tensor::from_data(TensorData::new(buf, self.dims(rows.len())), device)
    }

    /// Pixels of rows `idx` scaled to [0, 1] (reconstruction targets).
    pub fn targets(&self, idx: &[usize], device: &Device) -> Tensor<4> {
        let buf: Vec<f32> =
            idx.iter().flat_map(|&i| self.data.image(i).iter().map(|&p| f32::from(p) / 255.0)).collect();
        Tensor::from_data(TensorData::new(buf, self.dims(idx.len())), device)
    }

    /// Class indices of rows `idx` (the dataset must be labeled; callers check first).
    pub fn labels(&self, idx: &[usize], device: &Device) -> Tensor<1, Int> {
        let labels = self.data.labels.as_deref().unwrap_or(&[]);
        let buf: Vec<i64> = idx.iter().map(|&i| i64::from(labels.get(i).copied().unwrap_or(0))).collect();
        Tensor::from_data(TensorData::new(buf, [idx.len()]), device)
    }
}
