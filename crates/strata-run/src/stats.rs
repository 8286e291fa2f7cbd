//! Summary statistics over seeds, and how a table writes them: shared by `search`, `report`
//! and the research scripts, so their tables agree digit for digit.

/// Mean and sample standard deviation (0 for fewer than two values).
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n.max(1.0);
    let var = if v.len() > 1 { v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (m, var.sqrt())
}

/// A fraction's mean ± std as percent with one decimal (`95.3 ± 0.7`); `-` for NaN.
pub fn pct((mean, std): (f64, f64)) -> String {
    if mean.is_nan() {
        return "-".into();
    }
    format!("{:.1} ± {:.1}", 100.0 * mean, 100.0 * std)
}

/// A difference of fractions in points with its sign and one decimal (`+0.7`).
pub fn points(diff: f64) -> String {
    format!("{:+.1}", 100.0 * diff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_deviation_by_hand() {
        let (m, s) = mean_std(&[0.90, 0.92, 0.97]);
        assert!((m - 0.93).abs() < 1e-12);
        // deviations -0.03, -0.01, 0.04: squares sum to 0.0026, over n - 1 = 2
        assert!((s - (0.0026f64 / 2.0).sqrt()).abs() < 1e-12);
        assert_eq!(mean_std(&[0.5]), (0.5, 0.0));
        assert_eq!(pct((0.9526, 0.0071)), "95.3 ± 0.7");
        assert_eq!(pct((f64::NAN, 0.0)), "-");
        assert_eq!(points(0.0073), "+0.7");
        assert_eq!(points(-0.0013), "-0.1");
    }
}
