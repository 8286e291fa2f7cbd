//! Channel conversion and resizing of whole data sets held channel-first.
//!
//! The folder reader converts each image as it decodes; the binary formats (IDX, CIFAR)
//! are converted here afterwards, so every format honours `--channels` and `--resize`.

use image::imageops::{FilterType, resize};
use image::{GrayImage, ImageBuffer};

use crate::dataset::{Dataset, ImageShape, pixel_buffer};
use crate::error::Result;
use crate::spec::LoadOptions;

/// Converts and resizes `data` as `opts` ask; a no-op when it already conforms.
pub fn conform(mut data: Dataset, opts: &LoadOptions) -> Result<Dataset> {
    if let Some(c) = opts.channels
        && c != data.shape.channels
    {
        data = to_channels(data, c)?;
    }
    if let Some((h, w)) = opts.resize
        && (h, w) != (data.shape.height, data.shape.width)
    {
        data = resize_all(data, h, w)?;
    }
    Ok(data)
}

/// Converts every image between 1 (grayscale) and 3 (RGB) channels; other counts are left as is.
pub fn to_channels(data: Dataset, channels: usize) -> Result<Dataset> {
    let s = data.shape;
    let plane = s.plane();
    let images = match (s.channels, channels) {
        (1, 3) => {
            let mut out = pixel_buffer(data.len(), ImageShape { channels, ..s }, &data.source)?;
            for img in data.images.chunks_exact(plane.max(1)) {
                for _ in 0..3 {
                    out.extend_from_slice(img);
                }
            }
            out
        }
        (3, 1) => {
            let mut out = Vec::with_capacity(data.images.len() / 3);
            for img in data.images.chunks_exact((3 * plane).max(1)) {
                let (r, rest) = img.split_at(plane);
                let (g, b) = rest.split_at(plane);
                out.extend(r.iter().zip(g).zip(b).map(|((&r, &g), &b)| luma(r, g, b)));
            }
            out
        }
        _ => return Ok(data),
    };
    Ok(Dataset { images, shape: ImageShape { channels, ..s }, ..data })
}

/// Rec. 709 luma, rounded; every reader converts colour to gray through this one function
/// so a colour folder and a colour binary file give identical grayscale.
pub fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((2126 * r as u32 + 7152 * g as u32 + 722 * b as u32 + 5000) / 10000) as u8
}

/// Resizes every image to `height` x `width` with a triangle (bilinear) filter.
pub fn resize_all(data: Dataset, height: usize, width: usize) -> Result<Dataset> {
    let s = data.shape;
    let new = ImageShape { height, width, ..s };
    let mut images = pixel_buffer(data.len(), new, &data.source)?;
    for plane in data.images.chunks_exact(s.plane().max(1)) {
        images.extend_from_slice(&resize_plane(plane, s.height, s.width, height, width));
    }
    Ok(Dataset { images, shape: new, ..data })
}

/// Resizes one channel plane; channels are independent under this filter, so a plane at a
/// time gives the same result as resizing the interleaved image.
fn resize_plane(plane: &[u8], h: usize, w: usize, nh: usize, nw: usize) -> Vec<u8> {
    let img: Option<GrayImage> = ImageBuffer::from_raw(w as u32, h as u32, plane.to_vec());
    match img {
        Some(img) => resize(&img, nw as u32, nh as u32, FilterType::Triangle).into_raw(),
        // Only reachable with a hand-built Dataset whose buffer disagrees with its shape.
        None => vec![0; nh * nw],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds(images: Vec<u8>, shape: ImageShape) -> Dataset {
        Dataset { images, shape, labels: Some(vec![0; 1]), class_names: vec!["x".into()], source: "t".into() }
    }

    #[test]
    fn gray_to_rgb_replicates() {
        let d = to_channels(ds(vec![1, 2, 3, 4], ImageShape::new(1, 2, 2)), 3).unwrap();
        assert_eq!(d.shape, ImageShape::new(3, 2, 2));
        assert_eq!(d.images, vec![1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4]);
    }

    #[test]
    fn rgb_to_gray_uses_rounded_rec709() {
        // (2126 * 200 + 7152 * 100 + 722 * 50) / 10000 = 117.65
        let d = to_channels(ds(vec![200, 100, 50], ImageShape::new(3, 1, 1)), 1).unwrap();
        assert_eq!(d.images, vec![118]);
        for v in [0, 1, 127, 254, 255] {
            assert_eq!(luma(v, v, v), v, "gray stays gray");
        }
    }

    #[test]
    fn resize_changes_shape_and_keeps_constants() {
        let d = resize_all(ds(vec![7; 3 * 4 * 4], ImageShape::new(3, 4, 4)), 2, 3).unwrap();
        assert_eq!(d.shape, ImageShape::new(3, 2, 3));
        assert_eq!(d.images, vec![7; 3 * 2 * 3]);
    }

    #[test]
    fn impossible_resize_is_an_error_not_an_abort() {
        let d = ds(vec![0; 8], ImageShape::new(1, 2, 2));
        // 2 x 2^31 x 2^31 bytes is beyond any address space; 2^40 squared overflows.
        for side in [1 << 31, 1 << 40] {
            let err = resize_all(d.clone(), side, side).unwrap_err().to_string();
            assert!(err.contains("bytes of memory"), "{err}");
        }
    }

    #[test]
    fn conform_is_noop_when_matching() {
        let d = ds(vec![1, 2, 3, 4], ImageShape::new(1, 2, 2));
        let opts = LoadOptions { channels: Some(1), resize: Some((2, 2)), ..Default::default() };
        assert_eq!(conform(d.clone(), &opts).unwrap(), d);
    }
}
