//! An RGB raster with the few drawing operations plots need.

use crate::font;
use crate::{Result, VizError};

/// An RGB image being drawn on.
pub struct Canvas {
    width: usize,
    height: usize,
    pixels: Vec<[u8; 3]>,
}

impl Canvas {
    /// A canvas filled with `background`.
    pub fn new(width: usize, height: usize, background: [u8; 3]) -> Self {
        Self { width, height, pixels: vec![background; width * height] }
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Sets one pixel; points outside the canvas are ignored.
    pub fn set(&mut self, x: i64, y: i64, color: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            self.pixels[y as usize * self.width + x as usize] = color;
        }
    }

    /// The colour at a pixel (None outside).
    pub fn get(&self, x: usize, y: usize) -> Option<[u8; 3]> {
        (x < self.width && y < self.height).then(|| self.pixels[y * self.width + x])
    }

    /// Fills a rectangle.
    pub fn fill(&mut self, x: i64, y: i64, w: i64, h: i64, color: [u8; 3]) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.set(xx, yy, color);
            }
        }
    }

    /// A line `thickness` pixels wide (Bresenham, thickened with a square brush).
    pub fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), thickness: i64, color: [u8; 3]) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        let r = thickness / 2;
        loop {
            self.fill(x - r, y - r, thickness.max(1), thickness.max(1), color);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Text in the built-in 5x7 font, `scale` pixels per font pixel, top-left at (x, y).
    /// Lowercase letters are drawn as capitals; characters without a glyph as a box.
    pub fn text(&mut self, x: i64, y: i64, s: &str, scale: i64, color: [u8; 3]) {
        for (i, c) in s.chars().enumerate() {
            let rows = font::glyph(c);
            let left = x + i as i64 * 6 * scale;
            for (ry, row) in rows.iter().enumerate() {
                for rx in 0..5 {
                    if row & (0b10000 >> rx) != 0 {
                        self.fill(left + rx * scale, y + ry as i64 * scale, scale, scale, color);
                    }
                }
            }
        }
    }

    /// Width in pixels of `s` drawn at `scale`.
    pub fn text_width(s: &str, scale: i64) -> i64 {
        (s.chars().count() as i64 * 6 - 1).max(0) * scale
    }

    /// PNG bytes of the canvas.
    pub fn to_png(&self) -> Result<Vec<u8>> {
        let raw: Vec<u8> = self.pixels.iter().flatten().copied().collect();
        let img = image::RgbImage::from_raw(self.width as u32, self.height as u32, raw)
            .ok_or_else(|| VizError::Shape("canvas buffer does not match its size".into()))?;
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).map_err(|e| VizError::Encode(e.to_string()))?;
        Ok(out.into_inner())
    }
}
