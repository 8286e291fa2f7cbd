//! Images side by side: reconstructions under their inputs, GAN samples.

use crate::{Result, VizError};

/// A PNG of `images` (each `channels` x `height` x `width`, channel-first, 0..=255) in rows
/// of `columns`, with a 2-pixel grey gutter, each image magnified `scale` times.
pub fn image_grid(
    images: &[Vec<u8>],
    (channels, height, width): (usize, usize, usize),
    columns: usize,
    scale: usize,
) -> Result<Vec<u8>> {
    if images.is_empty() || columns == 0 || scale == 0 {
        return Err(VizError::Shape("nothing to draw (no images, columns or scale)".into()));
    }
    if !(channels == 1 || channels == 3) {
        return Err(VizError::Shape(format!("{channels} channels; only 1 (grey) and 3 (RGB) can be drawn")));
    }
    let plane = height * width;
    if let Some((i, img)) = images.iter().enumerate().find(|(_, im)| im.len() != channels * plane) {
        return Err(VizError::Shape(format!(
            "image {i} has {} values, expected {channels}x{height}x{width}",
            img.len()
        )));
    }
    let gap = 2;
    let rows = images.len().div_ceil(columns);
    let (cell_w, cell_h) = (width * scale + gap, height * scale + gap);
    let (w, h) = (columns * cell_w + gap, rows * cell_h + gap);
    let mut canvas = image::RgbImage::from_pixel(w as u32, h as u32, image::Rgb([128, 128, 128]));
    for (i, img) in images.iter().enumerate() {
        let (ox, oy) = ((i % columns) * cell_w + gap, (i / columns) * cell_h + gap);
        for y in 0..height * scale {
            for x in 0..width * scale {
                let p = (y / scale) * width + x / scale;
                let c = if channels == 1 { [img[p]; 3] } else { [img[p], img[plane + p], img[2 * plane + p]] };
                canvas.put_pixel((ox + x) as u32, (oy + y) as u32, image::Rgb(c));
            }
        }
    }
    let mut out = std::io::Cursor::new(Vec::new());
    canvas.write_to(&mut out, image::ImageFormat::Png).map_err(|e| VizError::Encode(e.to_string()))?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_grid_of_the_expected_size() {
        let imgs = vec![vec![255u8; 4], vec![0u8; 4], vec![128u8; 4]];
        let png = image_grid(&imgs, (1, 2, 2), 2, 3).unwrap();
        let img = image::load_from_memory(&png).unwrap().to_rgb8();
        // 2 columns of 2*3 px + gutters, 2 rows
        assert_eq!((img.width(), img.height()), (2 * 8 + 2, 2 * 8 + 2));
        assert_eq!(img.get_pixel(2, 2).0, [255, 255, 255]);
        assert_eq!(img.get_pixel(10, 2).0, [0, 0, 0]);
    }

    #[test]
    fn a_wrong_size_names_the_image() {
        let e = image_grid(&[vec![0u8; 4], vec![0u8; 3]], (1, 2, 2), 2, 1).unwrap_err().to_string();
        assert!(e.contains("image 1 has 3 values"), "{e}");
    }
}
