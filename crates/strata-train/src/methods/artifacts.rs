//! Pictures a pretraining method leaves in its run directory.

use crate::batch::Batcher;
use crate::error::Result;
use burn::tensor::{Device, Tensor};
use strata_data::{Dataset, Normalization};

/// A file a method wants written beside its weights.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// file name inside the run directory
    pub name: String,
    /// its bytes
    pub bytes: Vec<u8>,
}

/// Images in [0, 1] (N x C x H x W) as 0..=255 pixel rows.
pub(crate) fn to_pixels(images: Tensor<4>) -> Vec<Vec<u8>> {
    let [n, c, h, w] = images.dims();
    let values = images.clamp(0.0, 1.0).into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default();
    let per = c * h * w;
    (0..n)
        .map(|i| values.get(i * per..(i + 1) * per).unwrap_or(&[]).iter().map(|v| (v * 255.0).round() as u8).collect())
        .collect()
}

/// `reconstructions.png`: the first images of `data` (top row) above what `reconstruct`
/// makes of them (bottom row).
pub(crate) fn reconstructions(
    data: &Dataset,
    norm: &Normalization,
    device: &Device,
    reconstruct: impl Fn(Tensor<4>) -> Tensor<4>,
) -> Result<Artifact> {
    let idx: Vec<usize> = (0..data.len().min(10)).collect();
    let batcher = Batcher::new(data, norm);
    let out = to_pixels(reconstruct(batcher.inputs(&idx, device)));
    let mut images: Vec<Vec<u8>> = idx.iter().map(|&i| data.image(i).to_vec()).collect();
    images.extend(out);
    let s = data.shape;
    let bytes = strata_viz::image_grid(&images, (s.channels, s.height, s.width), idx.len(), 3)?;
    Ok(Artifact { name: "reconstructions.png".into(), bytes })
}
