//! Line plots: loss curves, accuracy against the number of labels.

use crate::{Canvas, Result};

/// Colours of successive series (colour-blind friendly, Okabe-Ito).
const PALETTE: [[u8; 3]; 8] = [
    [0, 114, 178],
    [213, 94, 0],
    [0, 158, 115],
    [204, 121, 167],
    [230, 159, 0],
    [86, 180, 233],
    [0, 0, 0],
    [240, 228, 66],
];

/// One named line.
#[derive(Debug, Clone)]
pub struct Series {
    /// legend entry
    pub name: String,
    /// points, in drawing order (non-finite ones are skipped)
    pub points: Vec<(f64, f64)>,
}

/// A plot with a title, axis labels and one or more series.
#[derive(Debug, Clone)]
pub struct Plot {
    /// drawn above the frame
    pub title: String,
    /// under the x axis
    pub x_label: String,
    /// above the y axis
    pub y_label: String,
    /// the lines
    pub series: Vec<Series>,
    /// log10 scale on x (label counts)
    pub log_x: bool,
}

const W: i64 = 720;
const H: i64 = 440;
const LEFT: i64 = 80;
const RIGHT: i64 = 20;
const TOP: i64 = 50;
const BOTTOM: i64 = 60;

/// Readable tick label: few digits, scientific notation for tiny or huge values.
fn tick(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

impl Plot {
    /// PNG bytes of the plot.
    pub fn to_png(&self) -> Result<Vec<u8>> {
        let tx = |x: f64| if self.log_x { x.max(f64::MIN_POSITIVE).log10() } else { x };
        let pts: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|(x, y)| x.is_finite() && y.is_finite() && (!self.log_x || *x > 0.0))
            .collect();
        let (mut x0, mut x1, mut y0, mut y1) = pts
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY), |(a, b, c, d), &(x, y)| {
                (a.min(tx(x)), b.max(tx(x)), c.min(y), d.max(y))
            });
        if pts.is_empty() {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        if x1 - x0 < 1e-12 {
            (x0, x1) = (x0 - 0.5, x1 + 0.5);
        }
        let pad = ((y1 - y0) * 0.05).max(1e-9);
        (y0, y1) = (y0 - pad, y1 + pad);
        let mut c = Canvas::new(W as usize, H as usize, [255, 255, 255]);
        let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
        let px = |x: f64| LEFT + ((tx(x) - x0) / (x1 - x0) * pw as f64).round() as i64;
        let py = |y: f64| TOP + ph - ((y - y0) / (y1 - y0) * ph as f64).round() as i64;
        let grey = [200, 200, 200];
        let ink = [40, 40, 40];
        for i in 0..=4 {
            let y = y0 + (y1 - y0) * f64::from(i) / 4.0;
            let yy = py(y);
            c.line((LEFT, yy), (LEFT + pw, yy), 1, grey);
            let label = tick(y);
            c.text(LEFT - 8 - Canvas::text_width(&label, 1), yy - 3, &label, 1, ink);
        }
        let xs: Vec<f64> = if self.log_x {
            let mut v: Vec<f64> = pts.iter().map(|p| p.0).collect();
            v.sort_by(f64::total_cmp);
            v.dedup();
            v
        } else {
            (0..=4).map(|i| x0 + (x1 - x0) * f64::from(i) / 4.0).collect()
        };
        for x in xs {
            let xx = px(x);
            c.line((xx, TOP), (xx, TOP + ph), 1, grey);
            let label = tick(x);
            c.text(xx - Canvas::text_width(&label, 1) / 2, TOP + ph + 8, &label, 1, ink);
        }
        c.line((LEFT, TOP), (LEFT, TOP + ph), 1, ink);
        c.line((LEFT, TOP + ph), (LEFT + pw, TOP + ph), 1, ink);
        c.line((LEFT, TOP), (LEFT + pw, TOP), 1, ink);
        c.line((LEFT + pw, TOP), (LEFT + pw, TOP + ph), 1, ink);
        c.text((W - Canvas::text_width(&self.title, 2)) / 2, 14, &self.title, 2, ink);
        c.text(LEFT + (pw - Canvas::text_width(&self.x_label, 1)) / 2, H - 24, &self.x_label, 1, ink);
        c.text(8, TOP - 16, &self.y_label, 1, ink);
        for (i, s) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let visible: Vec<(i64, i64)> = s
                .points
                .iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite() && (!self.log_x || *x > 0.0))
                .map(|&(x, y)| (px(x), py(y)))
                .collect();
            for w in visible.windows(2) {
                c.line(w[0], w[1], 2, color);
            }
            for &(x, y) in &visible {
                c.fill(x - 2, y - 2, 5, 5, color);
            }
            // legend, top right, one line per series
            let ly = TOP + 8 + i as i64 * 14;
            let lx = LEFT + pw - 12 - Canvas::text_width(&s.name, 1) - 20;
            c.fill(lx, ly + 1, 14, 5, color);
            c.text(lx + 20, ly, &s.name, 1, ink);
        }
        c.to_png()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(png: &[u8]) -> image::RgbImage {
        image::load_from_memory(png).unwrap().to_rgb8()
    }

    #[test]
    fn a_rising_line_is_drawn_from_bottom_left_to_top_right() {
        let plot = Plot {
            title: "loss".into(),
            x_label: "epoch".into(),
            y_label: "mse".into(),
            series: vec![Series { name: "ae".into(), points: vec![(1.0, 1.0), (2.0, 2.0), (3.0, 3.0)] }],
            log_x: false,
        };
        let img = decode(&plot.to_png().unwrap());
        assert_eq!((img.width(), img.height()), (W as u32, H as u32));
        let blue = PALETTE[0];
        let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
        // the first point sits near the bottom-left of the frame, the last near the top-right
        let near = |x: i64, y: i64| {
            (-3..=3).any(|dx| (-3..=3).any(|dy| img.get_pixel((x + dx) as u32, (y + dy) as u32).0 == blue))
        };
        let bottom = TOP + ph - (ph as f64 * 0.05 / 1.1).round() as i64;
        assert!(near(LEFT, bottom), "first point");
        assert!(near(LEFT + pw, TOP + (ph as f64 * 0.05 / 1.1).round() as i64), "last point");
        assert!(!near(LEFT + pw, bottom), "nothing at the bottom right");
    }

    #[test]
    fn empty_and_log_plots_still_render() {
        let empty =
            Plot { title: String::new(), x_label: String::new(), y_label: String::new(), series: vec![], log_x: true };
        assert!(decode(&empty.to_png().unwrap()).width() > 0);
        let log = Plot {
            series: vec![Series { name: "scratch".into(), points: vec![(10.0, 0.8), (100.0, 0.95), (f64::NAN, 1.0)] }],
            ..empty
        };
        assert!(decode(&log.to_png().unwrap()).width() > 0);
        assert_eq!(tick(0.00001234), "1.2e-5");
        assert_eq!(tick(1000.0), "1000");
    }
}
