//! A 2-D map of a run's backbone features on labeled test images: the features projected on
//! their two principal components, one colour per class — how far the classes already stand
//! apart before (or after) any head is trained.

use crate::context::{self, input_of, load_data};
use crate::error::Result;
use std::collections::HashMap;
use strata_data::{DataSpec, Dataset, Split};
use strata_nn::ArchSpec;
use strata_train::manifest::RunKind;
use strata_train::run_dir::RunDir;
use strata_viz::{Plot, Series};

/// Images mapped at most (evenly spaced through the test set): enough to see the classes,
/// few enough to take a second.
pub const MAX_IMAGES: usize = 2000;

/// Each row of `values` (`rows` x `dim`, row-major) on the first two principal components
/// of the rows: centred, then projected on the top two eigenvectors of their covariance
/// (power iteration from a fixed start, so the same rows give the same map).
pub fn principal_plane(values: &[f32], dim: usize) -> Vec<(f64, f64)> {
    let rows = values.len().checked_div(dim).unwrap_or(0);
    if rows == 0 {
        return Vec::new();
    }
    let mut mean = vec![0.0f64; dim];
    for r in values.chunks_exact(dim) {
        for (m, v) in mean.iter_mut().zip(r) {
            *m += *v as f64 / rows as f64;
        }
    }
    let centred: Vec<Vec<f64>> =
        values.chunks_exact(dim).map(|r| r.iter().zip(&mean).map(|(v, m)| *v as f64 - m).collect()).collect();
    let mut cov = vec![0.0f64; dim * dim];
    for r in &centred {
        for i in 0..dim {
            let ri = r[i];
            if ri == 0.0 {
                continue;
            }
            for (c, rj) in cov[i * dim..(i + 1) * dim].iter_mut().zip(r) {
                *c += ri * rj;
            }
        }
    }
    let top = |cov: &[f64]| -> (f64, Vec<f64>) {
        // a start with a component along every axis, the same every time
        let mut v: Vec<f64> = (0..dim).map(|i| 1.0 + (i % 7) as f64 * 0.1).collect();
        let mut lambda = 0.0;
        for _ in 0..200 {
            let w: Vec<f64> =
                (0..dim).map(|i| cov[i * dim..(i + 1) * dim].iter().zip(&v).map(|(c, x)| c * x).sum()).collect();
            let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm == 0.0 {
                break;
            }
            lambda = norm;
            v = w.into_iter().map(|x| x / norm).collect();
        }
        (lambda, v)
    };
    let (l1, v1) = top(&cov);
    let deflated: Vec<f64> = (0..dim * dim).map(|k| cov[k] - l1 * v1[k / dim] * v1[k % dim]).collect();
    let (_, v2) = top(&deflated);
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    centred.iter().map(|r| (dot(r, &v1), dot(r, &v2))).collect()
}

/// Where a run's labeled test images are: its `--test` data, or for a pretraining the test
/// split of the data it pretrained on.
fn test_spec(run: &RunDir) -> Option<String> {
    let m = &run.manifest;
    match m.config.get("test").and_then(|v| v.as_str()) {
        Some(t) => Some(t.to_string()),
        None if m.kind == RunKind::Pretrain => {
            let parsed = DataSpec::parse(&m.data.spec).ok()?;
            Some(format!("{}:test", parsed.path.display()))
        }
        None => None,
    }
}

/// The labeled test sets read so far, by spec: a report over a study's runs, which share one
/// test set, reads it once.
#[derive(Default)]
pub struct TestSets(HashMap<String, Option<Dataset>>);

impl TestSets {
    /// The run's labeled test images; `None` when there are none of its input shape.
    fn of(&mut self, run: &RunDir) -> Option<&Dataset> {
        let spec = test_spec(run)?;
        let data = self.0.entry(spec).or_insert_with_key(|s| load_data(s, "test", true, Split::Test).ok()).as_ref()?;
        (input_of(data) == run.manifest.input).then_some(data)
    }
}

/// The map of `run` as a PNG, or `None` when the run has no labeled test images to map.
pub fn picture(run: &RunDir, tests: &mut TestSets) -> Result<Option<Vec<u8>>> {
    let Some(data) = tests.of(run) else { return Ok(None) };
    let m = &run.manifest;
    let (_, device) = context::device("cpu")?;
    let arch = ArchSpec::parse(&m.arch)?;
    let blocks = strata_train::reuse::load_backbone(
        run.weights_bytes()?,
        &run.weights_path(),
        &arch,
        m.input,
        arch.blocks.len(),
        &device,
    )?;
    let n = data.len();
    let rows: Vec<usize> = (0..n.min(MAX_IMAGES)).map(|i| i * n / n.min(MAX_IMAGES)).collect();
    let f = strata_train::probe::features(&blocks, data, &rows, &m.normalization, &device);
    let points = principal_plane(&f.values, f.dim);
    let labels = data.labels.as_deref().unwrap_or_default();
    let series = data
        .class_names
        .iter()
        .enumerate()
        .map(|(c, name)| Series {
            name: name.clone(),
            points: rows
                .iter()
                .zip(&points)
                .filter(|(r, _)| labels.get(**r) == Some(&(c as u32)))
                .map(|(_, p)| *p)
                .collect(),
        })
        .collect();
    let plot = Plot {
        title: format!("backbone features of {} test images, first two principal components", rows.len()),
        x_label: "component 1".into(),
        y_label: "component 2".into(),
        series,
        log_x: false,
        scatter: true,
    };
    Ok(Some(plot.to_png()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_along_a_line_map_onto_the_first_component() {
        // a long spread along (1, 1, 0), a short one along (0, 0, 1)
        let mut v = Vec::new();
        for t in -5..=5 {
            let (t, s) = (t as f32, if t % 2 == 0 { 0.1 } else { -0.1 });
            v.extend([t, t, s]);
        }
        let p = principal_plane(&v, 3);
        assert_eq!(p.len(), 11);
        for (i, (a, b)) in p.iter().enumerate() {
            let t = i as f64 - 5.0;
            assert!((a.abs() - t.abs() * 2f64.sqrt()).abs() < 1e-6, "{i}: {a}");
            // the short spread, centred (its mean is -0.1/11)
            assert!(b.abs() < 0.11 && b.abs() > 0.09, "{i}: {b}");
        }
        // the same rows, the same map
        assert_eq!(principal_plane(&v, 3), p);
    }
}
