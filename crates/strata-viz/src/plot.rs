//! Line plots: loss curves, accuracy against the number of labels, drawn with plotters and
//! an embedded font.

use crate::{Result, VizError};
use plotters::prelude::*;
use plotters::style::FontStyle;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Colours of successive series (colour-blind friendly: Okabe-Ito, then Tol's wine and grey,
/// so a study's nine rows get nine colours).
const PALETTE: [[u8; 3]; 10] = [
    [0, 114, 178],
    [213, 94, 0],
    [0, 158, 115],
    [204, 121, 167],
    [230, 159, 0],
    [86, 180, 233],
    [0, 0, 0],
    [240, 228, 66],
    [136, 34, 85],
    [153, 153, 153],
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
    /// points only, no lines (a 2-D map of features: each series one class)
    pub scatter: bool,
}

const W: i64 = 720;
const H: i64 = 440;
const LEFT: i64 = 80;
const RIGHT: i64 = 20;
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

/// Name under which the embedded font is registered with plotters.
const FONT: &str = "strata-sans";

/// Registers the embedded font once: the pictures need no system fonts and come out the same
/// on every machine.
fn font() -> Result<&'static str> {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, epaint_default_fonts::UBUNTU_LIGHT).is_ok()
    });
    if ok { Ok(FONT) } else { Err(VizError::Encode("the embedded font could not be loaded".into())) }
}

fn draw_error<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> VizError {
    VizError::Encode(format!("drawing the plot: {e}"))
}

impl Plot {
    /// PNG bytes of the plot.
    pub fn to_png(&self) -> Result<Vec<u8>> {
        let font = font()?;
        let tx = |x: f64| if self.log_x { x.max(f64::MIN_POSITIVE).log10() } else { x };
        let visible = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && (!self.log_x || x > 0.0);
        let pts: Vec<(f64, f64)> = self.series.iter().flat_map(|s| s.points.iter().copied()).filter(visible).collect();
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
        // a margin around the points, so none sits on the frame and end labels fit
        let pad = ((y1 - y0) * 0.05).max(1e-9);
        (y0, y1) = (y0 - pad, y1 + pad);
        let pad = (x1 - x0) * 0.04;
        (x0, x1) = (x0 - pad, x1 + pad);
        let mut buffer = vec![255u8; (W * H * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut buffer, (W as u32, H as u32)).into_drawing_area();
            root.fill(&WHITE).map_err(draw_error)?;
            let mut chart = ChartBuilder::on(&root)
                .caption(&self.title, (font, 20))
                .margin_left(10)
                .margin_right(RIGHT as u32)
                .margin_top(10)
                .x_label_area_size(BOTTOM as u32 - 10)
                .y_label_area_size(LEFT as u32 - 10)
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(draw_error)?;
            // log x: one tick at each x a series has (the label counts), labelled in plain units
            let log_ticks: Vec<f64> = {
                let mut v: Vec<f64> = pts.iter().map(|p| p.0).collect();
                v.sort_by(f64::total_cmp);
                v.dedup();
                v
            };
            let x_fmt = |x: &f64| if self.log_x { tick(10f64.powf(*x)) } else { tick(*x) };
            let mut mesh = chart.configure_mesh();
            mesh.x_desc(&self.x_label)
                .y_desc(&self.y_label)
                .label_style((font, 12))
                .axis_desc_style((font, 13))
                .x_label_formatter(&x_fmt)
                .y_label_formatter(&|y| tick(*y))
                .light_line_style(WHITE);
            if self.log_x {
                mesh.x_labels(0).disable_x_mesh();
            } else {
                mesh.x_labels(5);
            }
            mesh.y_labels(5).draw().map_err(draw_error)?;
            if self.log_x {
                let grey = RGBColor(200, 200, 200);
                for &x in &log_ticks {
                    let at = tx(x);
                    chart.draw_series(LineSeries::new([(at, y0), (at, y1)], grey)).map_err(draw_error)?;
                    let style = (font, 12).into_font().color(&BLACK).pos(Pos::new(HPos::Center, VPos::Bottom));
                    chart.draw_series(std::iter::once(Text::new(tick(x), (at, y0), style))).map_err(draw_error)?;
                }
            }
            for (i, s) in self.series.iter().enumerate() {
                let [r, g, b] = PALETTE[i % PALETTE.len()];
                let color = RGBColor(r, g, b);
                let line: Vec<(f64, f64)> = s.points.iter().copied().filter(visible).map(|(x, y)| (tx(x), y)).collect();
                let (radius, width) = if self.scatter { (2, 0) } else { (3, 2) };
                chart
                    .draw_series(LineSeries::new(
                        if self.scatter { Vec::new() } else { line.clone() },
                        color.stroke_width(width),
                    ))
                    .map_err(draw_error)?
                    .label(&s.name)
                    .legend(move |(x, y)| Rectangle::new([(x, y - 3), (x + 14, y + 2)], color.filled()));
                chart.draw_series(line.iter().map(|&p| Circle::new(p, radius, color.filled()))).map_err(draw_error)?;
            }
            if !self.series.is_empty() {
                // the legend goes in the right-hand corner the lines end away from
                let ends: Vec<f64> = self
                    .series
                    .iter()
                    .filter_map(|s| s.points.iter().rev().find(|p| visible(p)))
                    .map(|p| p.1)
                    .collect();
                let high = ends.iter().sum::<f64>() / ends.len().max(1) as f64 > (y0 + y1) / 2.0;
                let corner = if high { SeriesLabelPosition::LowerRight } else { SeriesLabelPosition::UpperRight };
                chart
                    .configure_series_labels()
                    .position(corner)
                    .label_font((font, 12))
                    .background_style(WHITE.mix(0.8))
                    .border_style(RGBColor(200, 200, 200))
                    .draw()
                    .map_err(draw_error)?;
            }
            root.present().map_err(draw_error)?;
        }
        let img = image::RgbImage::from_raw(W as u32, H as u32, buffer)
            .ok_or_else(|| VizError::Encode("the plot buffer has the wrong size".into()))?;
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).map_err(|e| VizError::Encode(e.to_string()))?;
        Ok(out.into_inner())
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
            scatter: false,
        };
        let png = plot.to_png().unwrap();
        let img = decode(&png);
        assert_eq!((img.width(), img.height()), (W as u32, H as u32));
        let blue = PALETTE[0];
        let blues: Vec<(u32, u32)> =
            img.enumerate_pixels().filter(|(_, _, p)| p.0 == blue).map(|(x, y, _)| (x, y)).collect();
        // the line's own pixels (the legend swatch sits top right, above the line's end)
        let left = blues.iter().min_by_key(|p| p.0).unwrap();
        let right = blues.iter().filter(|p| p.1 > 60).max_by_key(|p| p.0).unwrap();
        assert!(left.0 < W as u32 / 4 && left.1 > H as u32 * 2 / 3, "first point at {left:?}");
        assert!(right.0 > W as u32 * 3 / 4 && right.1 < H as u32 / 3, "last point at {right:?}");
        // text was drawn: dark pixels in the title band
        assert!((0..W as u32).any(|x| (0..30).any(|y| img.get_pixel(x, y).0[0] < 100)), "no title");
        // the same plot gives the same bytes
        assert_eq!(plot.to_png().unwrap(), png);
    }

    #[test]
    fn empty_and_log_plots_still_render() {
        let empty = Plot {
            title: String::new(),
            x_label: String::new(),
            y_label: String::new(),
            series: vec![],
            log_x: true,
            scatter: false,
        };
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
