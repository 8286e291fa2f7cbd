//! `strata report`: one self-contained HTML page over one or more runs — what each run is,
//! its phases, curves, confusion matrix and pictures, and across runs one table grouped over
//! seeds. Everything is inline (CSS, pictures as `data:` URIs): the file opens offline and
//! can be mailed or archived alone.

use crate::error::{Context as _, Result, RunError};
use crate::stats::{mean_std, pct as pct_std, points};
use base64::Engine as _;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use strata_train::manifest::RunKind;
use strata_train::run_dir::{METRICS, RunDir};
use strata_viz::{Plot, Series};

/// What one classifier or pretraining run contributes to the comparison table.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// the run's directory as given
    pub path: PathBuf,
    /// pretrain, finetune, scratch, train, import
    pub kind: String,
    /// the pretraining method: its own, or its parent's for a fine-tuned run
    pub method: Option<String>,
    /// the folder name of the run it reused blocks from (fine-tuned runs)
    pub parent: Option<String>,
    /// labeled images it trained on (classifiers)
    pub labels: Option<usize>,
    /// its seed
    pub seed: u64,
    /// test accuracy after the frozen phase (fine-tuned runs)
    pub frozen: Option<f64>,
    /// final test accuracy (classifiers)
    pub accuracy: Option<f64>,
    /// wall-clock seconds of the run
    pub seconds: Option<f64>,
    /// the run's settings without seed and label count: runs that differ only by seed share it
    pub recipe: String,
    /// its stage-two settings (`config.finetune`) without the seed: what a fine-tuned run and
    /// its scratch baseline must share
    pub stage_two: String,
}

impl Summary {
    /// Reads what the table needs from a run's manifest (and its parent's, for the method).
    pub fn of(run: &RunDir) -> Self {
        let m = &run.manifest;
        let num = |k: &str| m.metrics.get(k).and_then(serde_json::Value::as_f64);
        let parent_method = m
            .parent
            .as_ref()
            .and_then(|p| RunDir::open(Path::new(&p.path)).ok())
            .and_then(|p| p.manifest.method.clone());
        let parent =
            m.parent.as_ref().and_then(|p| Path::new(&p.path).file_name().map(|n| n.to_string_lossy().into_owned()));
        let labels = m.data.label_indices.as_ref().map(Vec::len);
        Summary {
            path: run.path.clone(),
            kind: kind_name(m.kind),
            method: m.method.clone().or(parent_method),
            parent,
            labels,
            seed: m.seed,
            frozen: num("test_accuracy_after_frozen"),
            accuracy: num("test_accuracy"),
            seconds: num("seconds").or_else(|| num("total_seconds")),
            recipe: without_seeds(m.config.clone()).to_string(),
            stage_two: without_seeds(m.config.get("finetune").cloned().unwrap_or_default()).to_string(),
        }
    }

    /// The row label runs are grouped by (seeds aside): fine-tuned runs by the run they
    /// reused, so two pretrainings of one method stay apart.
    fn group(&self) -> String {
        match (&self.method, self.kind.as_str()) {
            (Some(m), "finetune") => format!("{m} ({}), fine-tuned", self.parent.as_deref().unwrap_or("?")),
            (Some(m), _) => format!("{m} ({})", self.kind),
            (None, k) => k.to_string(),
        }
    }
}

/// `v` with every field named `seed` or `labels` removed, at any depth: what is left are the
/// settings a group of seeds at one label count shares.
fn without_seeds(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(o) => serde_json::Value::Object(
            o.into_iter().filter(|(k, _)| k != "seed" && k != "labels").map(|(k, v)| (k, without_seeds(v))).collect(),
        ),
        serde_json::Value::Array(a) => serde_json::Value::Array(a.into_iter().map(without_seeds).collect()),
        other => other,
    }
}

fn kind_name(k: RunKind) -> String {
    serde_json::to_value(k).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// `&`, `<`, `>`, `"` and `'` as entities: the only escaping an HTML text or attribute needs
/// (a five-line function rather than a crate).
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn png_uri(bytes: &[u8]) -> String {
    format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |v| format!("{:.2} %", 100.0 * v))
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}\
th{background:#f3f3f3}td.l,th.l{text-align:left}h1{font-size:1.5em}h2{margin-top:2em;border-bottom:1px solid #ddd}\
img{max-width:100%;border:1px solid #eee}.muted{color:#777}.cm td{min-width:2.2em}";

/// Loss curves of every logged figure of a run (one plot per figure that changes).
fn curves(run: &RunDir) -> Vec<(String, Vec<u8>)> {
    let Ok(text) = std::fs::read_to_string(run.path.join(METRICS)) else { return Vec::new() };
    let skip = ["step", "epoch", "seconds", "images_per_s", "head", "empty_clusters"];
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let mut offset = 0.0;
    let mut last_phase = String::new();
    let mut last_step = 0.0;
    for line in text.lines() {
        let Ok(serde_json::Value::Object(o)) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let step = o.get("step").and_then(|v| v.as_f64()).unwrap_or(0.0);
        // phases restart their step count: lay them end to end
        let phase = o.get("phase").and_then(|v| v.as_str()).unwrap_or("").to_string();
        if phase != last_phase {
            offset += last_step;
            last_phase = phase;
        }
        last_step = step;
        for (k, v) in &o {
            if skip.contains(&k.as_str()) || k.starts_with("lr") {
                continue;
            }
            if let Some(y) = v.as_f64().filter(|y| y.is_finite()) {
                series.entry(k.clone()).or_default().push((offset + step, y));
            }
        }
    }
    series
        .into_iter()
        .filter(|(_, p)| p.len() > 1)
        .filter_map(|(name, points)| {
            let plot = Plot {
                title: name.clone(),
                x_label: "step".into(),
                y_label: name.clone(),
                series: vec![Series { name: name.clone(), points }],
                log_x: false,
                scatter: false,
            };
            plot.to_png().ok().map(|png| (name, png))
        })
        .collect()
}

/// The confusion matrix of `evaluation.json` as a heat-mapped table (rows: true class).
fn confusion(run: &RunDir, out: &mut String) {
    let Ok(text) = std::fs::read_to_string(run.path.join("evaluation.json")) else { return };
    let Ok(e) = serde_json::from_str::<serde_json::Value>(&text) else { return };
    let Some(rows) = e["confusion"].as_array() else { return };
    let names: Vec<String> = run.manifest.data.class_names.clone();
    let _ = write!(
        out,
        "<h3>Confusion matrix (rows: true class, columns: predicted)</h3><table class=\"cm\"><tr><th></th>"
    );
    for n in &names {
        let _ = write!(out, "<th>{}</th>", esc(n));
    }
    out.push_str("</tr>");
    for (i, r) in rows.iter().enumerate() {
        let cells: Vec<u64> = r.as_array().map(|a| a.iter().filter_map(|v| v.as_u64()).collect()).unwrap_or_default();
        let total = cells.iter().sum::<u64>().max(1) as f64;
        let _ = write!(out, "<tr><th>{}</th>", esc(names.get(i).map_or("?", String::as_str)));
        for (j, c) in cells.iter().enumerate() {
            let share = *c as f64 / total;
            // correct predictions in blue, mistakes in red, the deeper the more
            let (r, g, b) = if i == j {
                (255.0 - 180.0 * share, 255.0 - 120.0 * share, 255.0)
            } else {
                (255.0, 255.0 - 200.0 * share, 255.0 - 200.0 * share)
            };
            let _ = write!(out, "<td style=\"background:rgb({r:.0},{g:.0},{b:.0})\">{c}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

/// The section of one run.
fn run_section(run: &RunDir, tests: &mut crate::feature_map::TestSets, out: &mut String) -> Result<()> {
    let m = &run.manifest;
    let s = Summary::of(run);
    let _ = write!(out, "<h2>{}</h2><table>", esc(&run.path.display().to_string()));
    let mut row = |k: &str, v: String| {
        let _ = write!(out, "<tr><th class=\"l\">{k}</th><td class=\"l\">{v}</td></tr>");
    };
    row("kind", esc(&format!("{}{}", s.kind, s.method.as_ref().map(|x| format!(" ({x})")).unwrap_or_default())));
    row("command", format!("<code>{}</code>", esc(&m.command_line.join(" "))));
    row("strata", esc(&m.strata_version));
    row("data", esc(&format!("{} ({} images, fingerprint {})", m.data.spec, m.data.images, m.data.fingerprint)));
    if let Some(n) = s.labels {
        row("labels", format!("{n}"));
    }
    row("input", esc(&m.input.to_string()));
    row("architecture", esc(&m.arch));
    row("seed", m.seed.to_string());
    out.push_str("</table>");
    if !m.blocks.is_empty() {
        out.push_str("<h3>Blocks: where each came from</h3><table><tr><th>block</th><th class=\"l\">spec</th><th class=\"l\">origin</th><th class=\"l\">frozen in</th></tr>");
        for b in &m.blocks {
            let origin = serde_json::to_value(b).ok();
            let origin =
                origin.as_ref().and_then(|v| v.get("origin")).and_then(|v| v.as_str()).unwrap_or("?").to_string();
            let _ = write!(
                out,
                "<tr><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
                b.index,
                esc(&b.spec),
                esc(&origin),
                esc(&b.frozen_in.join(", "))
            );
        }
        out.push_str("</table>");
    }
    if !m.phases.is_empty() {
        out.push_str("<h3>Phases</h3><table><tr><th class=\"l\">phase</th><th>steps</th><th class=\"l\">learning rate per block</th><th>head</th><th>final loss</th><th>accuracy after</th><th>seconds</th></tr>");
        for p in &m.phases {
            let rates: Vec<String> =
                p.block_lr.iter().map(|r| r.map_or_else(|| "frozen".into(), |r| format!("{r:.2e}"))).collect();
            let _ = write!(
                out,
                "<tr><td class=\"l\">{}</td><td>{}</td><td class=\"l\">{}</td><td>{:.2e}</td><td>{:.4}</td><td>{}</td><td>{:.1}</td></tr>",
                esc(&p.name),
                p.steps,
                esc(&rates.join(" / ")),
                p.head_lr,
                p.final_loss,
                pct(p.eval_accuracy),
                p.seconds
            );
        }
        out.push_str("</table>");
    }
    if let serde_json::Value::Object(metrics) = &m.metrics {
        out.push_str("<h3>Metrics</h3><table>");
        for (k, v) in metrics {
            if let Some(x) = v.as_f64() {
                let _ = write!(out, "<tr><th class=\"l\">{}</th><td>{}</td></tr>", esc(k), x);
            }
        }
        out.push_str("</table>");
    }
    confusion(run, out);
    if let Some(png) = crate::feature_map::picture(run, tests)? {
        let _ = write!(
            out,
            "<h3>Backbone features on the test images</h3><figure><img alt=\"feature map\" src=\"{}\" /><figcaption>first two principal components, one colour per class</figcaption></figure>",
            png_uri(&png)
        );
    }
    let plots = curves(run);
    if !plots.is_empty() {
        out.push_str("<h3>Curves</h3>");
        for (name, png) in plots {
            let _ = write!(
                out,
                "<figure><img alt=\"{0}\" src=\"{1}\" /><figcaption>{0}</figcaption></figure>",
                esc(&name),
                png_uri(&png)
            );
        }
    }
    // the pictures the run wrote itself: reconstructions, samples, its own loss plot
    let mut pictures: Vec<PathBuf> = std::fs::read_dir(&run.path)
        .with_context(|| format!("listing {}", run.path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    pictures.sort();
    if !pictures.is_empty() {
        out.push_str("<h3>Pictures</h3>");
        for p in pictures {
            let bytes = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let _ = write!(
                out,
                "<figure><img alt=\"{0}\" src=\"{1}\" /><figcaption>{0}</figcaption></figure>",
                esc(&name),
                png_uri(&bytes)
            );
        }
    }
    Ok(())
}

/// The comparison of several runs: one row per group (same kind, parent, labels and settings
/// but the seed) over its seeds, the gain over the scratch group with the same labels, and
/// accuracy against labels. Figures are written by [`crate::stats`], as the research
/// scripts write theirs.
fn comparison(summaries: &[Summary], out: &mut String) -> Result<()> {
    let mut groups: BTreeMap<(String, usize, String), Vec<&Summary>> = BTreeMap::new();
    for s in summaries.iter().filter(|s| s.accuracy.is_some()) {
        groups.entry((s.group(), s.labels.unwrap_or(0), s.recipe.clone())).or_default().push(s);
    }
    if groups.is_empty() {
        return Ok(());
    }
    // one name per group: a second recipe under the same name is told apart by a number
    let mut recipes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (g, _, r) in groups.keys() {
        let list = recipes.entry(g.clone()).or_default();
        if !list.contains(r) {
            list.push(r.clone());
        }
    }
    let name = |g: &str, r: &str| -> String {
        let list = &recipes[g];
        match list.iter().position(|x| x == r) {
            Some(i) if list.len() > 1 => format!("{g} [settings {}]", i + 1),
            _ => g.to_string(),
        }
    };
    // a group's baseline: the scratch group at the same labels trained with the same
    // stage-two settings, or the only scratch group there is at those labels
    let scratch_mean = |n: usize, stage_two: &str| -> Option<f64> {
        let at_n: Vec<&Vec<&Summary>> =
            groups.iter().filter(|((g, m, _), _)| g == "scratch" && *m == n).map(|(_, v)| v).collect();
        let same =
            at_n.iter().find(|v| v[0].stage_two == stage_two).or(if at_n.len() == 1 { at_n.first() } else { None })?;
        Some(mean_std(&same.iter().filter_map(|s| s.accuracy).collect::<Vec<_>>()).0)
    };
    out.push_str("<h2>Comparison (test accuracy %, mean ± std over seeds)</h2><table><tr><th class=\"l\">runs</th><th>labels</th><th>seeds</th><th>frozen</th><th>fine-tuned / final</th><th>gain over scratch (points)</th><th>seconds</th></tr>");
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for ((group, labels, recipe), runs) in &groups {
        let label = name(group, recipe);
        let acc: Vec<f64> = runs.iter().filter_map(|s| s.accuracy).collect();
        let frozen: Vec<f64> = runs.iter().filter_map(|s| s.frozen).collect();
        let secs: Vec<f64> = runs.iter().filter_map(|s| s.seconds).collect();
        let (a, sd) = mean_std(&acc);
        let fz = if frozen.is_empty() { "-".into() } else { pct_std(mean_std(&frozen)) };
        let gain = match scratch_mean(*labels, &runs[0].stage_two) {
            Some(b) if group != "scratch" => points(a - b),
            _ => "-".into(),
        };
        let seeds: Vec<String> = runs.iter().map(|s| s.seed.to_string()).collect();
        let _ = write!(
            out,
            "<tr><td class=\"l\">{}</td><td>{labels}</td><td>{}</td><td>{fz}</td><td>{}</td><td>{gain}</td><td>{}</td></tr>",
            esc(&label),
            seeds.join(", "),
            pct_std((a, sd)),
            if secs.is_empty() { "-".into() } else { format!("{:.0}", mean_std(&secs).0) }
        );
        series.entry(label).or_default().push((*labels as f64, 100.0 * a));
    }
    out.push_str("</table>");
    if series.values().any(|p| p.len() > 1) {
        let plot = Plot {
            title: "test accuracy against labels".into(),
            x_label: "labeled images (log scale)".into(),
            y_label: "accuracy %".into(),
            series: series.into_iter().map(|(name, points)| Series { name, points }).collect(),
            log_x: true,
            scatter: false,
        };
        let png = plot.to_png().context("drawing the accuracy plot")?;
        let _ = write!(out, "<figure><img alt=\"accuracy against labels\" src=\"{}\" /></figure>", png_uri(&png));
    }
    Ok(())
}

/// The runs `paths` name: a run directory is itself; a folder that is not a run stands for
/// the complete runs under it (what `strata runs` lists as complete).
pub fn expand(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() && !p.join(strata_train::run_dir::MANIFEST).exists() {
            let found = crate::runs::list(p);
            out.extend(
                found.into_iter().filter(|e| e.status == crate::runs::RunStatus::Complete).map(|e| p.join(e.name)),
            );
        } else {
            out.push(p.clone());
        }
    }
    out
}

/// The whole page over `runs` (folders expanded by [`expand`]; a run that cannot be opened
/// is an error naming it).
pub fn html(runs: &[PathBuf]) -> Result<String> {
    let runs = expand(runs);
    if runs.is_empty() {
        return Err(RunError::Invalid("no complete run to report on (strata runs DIR lists what there is)".into()));
    }
    let opened: Vec<RunDir> = runs.iter().map(|p| RunDir::open(p).map_err(RunError::from)).collect::<Result<_>>()?;
    let mut out = String::new();
    let title = if opened.len() == 1 {
        format!("strata run {}", opened[0].path.display())
    } else {
        format!("strata: {} runs", opened.len())
    };
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\" /><title>{}</title><style>{STYLE}</style></head><body><h1>{}</h1>",
        esc(&title),
        esc(&title)
    );
    let summaries: Vec<Summary> = opened.iter().map(Summary::of).collect();
    if opened.len() > 1 {
        comparison(&summaries, &mut out)?;
    }
    let mut tests = crate::feature_map::TestSets::default();
    for run in &opened {
        run_section(run, &mut tests, &mut out)?;
    }
    out.push_str("<p class=\"muted\">Written by strata report; self-contained: no network, no external files.</p></body></html>\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_and_label_counts_are_left_out_of_a_recipe_at_any_depth() {
        let v = serde_json::json!({"seed": 1, "labels": {"per_class": 10}, "finetune": {"seed": 2, "lr": 0.1}, "list": [{"seed": 3, "x": 1}]});
        assert_eq!(without_seeds(v), serde_json::json!({"finetune": {"lr": 0.1}, "list": [{"x": 1}]}));
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
