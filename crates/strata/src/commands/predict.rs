//! `strata predict`: the class of each image, keyed by its file (image folders) or its row
//! (IDX, CIFAR), as CSV, JSON or JSON lines.

use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::path::PathBuf;
use strata_data::{DataSpec, Dataset, ImageShape, LoadOptions, Split};
use strata_run::context::{self, input_of};

/// How predictions are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// a header, then one comma-separated row per image
    Csv,
    /// one JSON array of row objects
    Json,
    /// one JSON object per line
    Jsonl,
}

/// Flags of `strata predict`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A finetune or scratch run directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Images to classify (any data SPEC; labels are ignored). A folder's rows are keyed by
    /// file path, relative to it; IDX and CIFAR rows by index.
    pub data: String,
    /// cpu (flex), ndarray, vulkan[:N] or cuda[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// The K most probable classes of each image, most probable first.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub top_k: u32,
    /// csv, json or jsonl.
    #[arg(long, value_enum, default_value_t = OutputFormat::Csv)]
    pub format: OutputFormat,
    /// Resize images whose size differs from the model's input (otherwise such an image is
    /// an error naming it).
    #[arg(long)]
    pub resize: bool,
    /// Write a row with the reason for a file that cannot be read or has the wrong size,
    /// instead of stopping at it.
    #[arg(long)]
    pub skip_bad: bool,
}

/// One alternative of a row.
#[derive(Debug, Serialize)]
struct Guess {
    class: String,
    probability: f32,
}

/// One output row: a file or an index, and its guesses or why there are none.
#[derive(Debug, Serialize)]
struct Row {
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    class: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    probability: Option<f32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    top_k: Vec<Guess>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The `k` most probable classes, most probable first (ties: lower class index first).
fn top(probabilities: &[f32], names: &[String], k: usize) -> Vec<Guess> {
    let mut order: Vec<usize> = (0..probabilities.len()).collect();
    order.sort_by(|&a, &b| probabilities[b].total_cmp(&probabilities[a]).then(a.cmp(&b)));
    order
        .into_iter()
        .take(k)
        .map(|c| Guess { class: names.get(c).cloned().unwrap_or_else(|| c.to_string()), probability: probabilities[c] })
        .collect()
}

/// Each input row's key (file or index) and its image's place in the data, or why it has none.
type Rows = Vec<(Key, std::result::Result<usize, String>)>;

/// What a row is keyed by.
enum Key {
    /// an image folder's file, its path below the folder
    File(String),
    /// an IDX or CIFAR row
    Index(usize),
}

/// Runs `strata predict`.
pub fn run(a: Args) -> Result<()> {
    let run = context::open_run(&a.model)?;
    let (_, device) = context::device(&a.device)?;
    let spec = DataSpec::parse(&a.data).with_context(|| a.data.clone())?;
    let m = &run.manifest;
    let want = ImageShape::new(m.input.channels, m.input.height, m.input.width);
    let resize = a.resize.then_some((m.input.height, m.input.width));
    // rows in input order: the key, and the image's place in `data` or why it has none
    let (rows, data): (Rows, Dataset) =
        match strata_data::image_folder(&spec, Split::Test).with_context(|| a.data.clone())? {
            Some(root) => {
                let files = strata_data::decode_each(&root, m.input.channels, resize)
                    .with_context(|| format!("reading the images under {}", root.display()))?;
                let mut images = Vec::new();
                let mut rows = Vec::new();
                for f in files {
                    let place = match f.decoded {
                        Ok((pixels, shape)) if shape == want => {
                            images.extend_from_slice(&pixels);
                            Ok(images.len() / want.numel() - 1)
                        }
                        Ok((_, shape)) => Err(format!(
                            "{}: the image is {}x{}, the model takes {}x{} (add --resize to resize it)",
                            root.join(&f.relative).display(),
                            shape.height,
                            shape.width,
                            want.height,
                            want.width
                        )),
                        Err(e) => Err(e.to_string()),
                    };
                    if let Err(reason) = &place
                        && !a.skip_bad
                    {
                        bail!("{reason}\n(--skip-bad writes a row with the reason instead of stopping)");
                    }
                    rows.push((Key::File(f.relative), place));
                }
                let source = root.display().to_string();
                (rows, Dataset { images, shape: want, labels: None, class_names: Vec::new(), source })
            }
            None => {
                // as for files: another size is resized only when asked to
                let opts = LoadOptions {
                    channels: Some(m.input.channels),
                    resize,
                    default_split: Split::Test,
                    ..LoadOptions::default()
                };
                let data = strata_data::load(&spec, &opts).with_context(|| format!("loading {}", a.data))?;
                if input_of(&data) != m.input {
                    bail!(
                        "{} has images of shape {} but the model takes {} (add --resize to resize them)",
                        a.data,
                        input_of(&data),
                        m.input
                    );
                }
                ((0..data.len()).map(|i| (Key::Index(i), Ok(i))).collect(), data)
            }
        };
    let model = context::load_classifier(&run, &device)?;
    let probabilities = if data.is_empty() {
        Vec::new()
    } else {
        strata_train::evaluate::probabilities(&model, &data, &m.normalization, &device)
    };
    let names = &m.data.class_names;
    let classes = m.head.as_ref().map_or(m.data.class_names.len(), |h| h.classes);
    let k = (a.top_k as usize).min(classes.max(1));
    let rows: Vec<Row> = rows
        .into_iter()
        .map(|(key, place)| {
            let (file, index) = match key {
                Key::File(f) => (Some(f), None),
                Key::Index(i) => (None, Some(i)),
            };
            match place {
                Ok(i) => {
                    let guesses = top(&probabilities[i], names, k);
                    let (class, probability) = (guesses[0].class.clone(), guesses[0].probability);
                    let top_k = if k > 1 { guesses } else { Vec::new() };
                    Row { file, index, class: Some(class), probability: Some(probability), top_k, error: None }
                }
                Err(reason) => {
                    Row { file, index, class: None, probability: None, top_k: Vec::new(), error: Some(reason) }
                }
            }
        })
        .collect();
    write(&rows, a.format, k)
}

/// Writes the rows to standard output.
fn write(rows: &[Row], format: OutputFormat, k: usize) -> Result<()> {
    let stdout = std::io::stdout();
    match format {
        OutputFormat::Json => {
            serde_json::to_writer_pretty(stdout.lock(), rows)?;
            println!();
        }
        OutputFormat::Jsonl => {
            for r in rows {
                println!("{}", serde_json::to_string(r)?);
            }
        }
        OutputFormat::Csv => {
            let mut w = csv::Writer::from_writer(stdout.lock());
            let key = if rows.first().is_some_and(|r| r.file.is_some()) { "file" } else { "index" };
            let mut header = vec![key.to_string(), "class".into(), "probability".into()];
            for i in 2..=k {
                header.push(format!("class_{i}"));
                header.push(format!("probability_{i}"));
            }
            if rows.iter().any(|r| r.error.is_some()) {
                header.push("error".into());
            }
            w.write_record(&header)?;
            for r in rows {
                let mut rec = vec![r.file.clone().or_else(|| r.index.map(|i| i.to_string())).unwrap_or_default()];
                rec.push(r.class.clone().unwrap_or_default());
                rec.push(r.probability.map(|p| p.to_string()).unwrap_or_default());
                for i in 1..k {
                    let g = r.top_k.get(i);
                    rec.push(g.map(|g| g.class.clone()).unwrap_or_default());
                    rec.push(g.map(|g| g.probability.to_string()).unwrap_or_default());
                }
                if header.last().is_some_and(|h| h == "error") {
                    rec.push(r.error.clone().unwrap_or_default());
                }
                w.write_record(&rec)?;
            }
            w.flush()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_orders_by_probability_then_class() {
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let t = top(&[0.2, 0.5, 0.3], &names, 2);
        assert_eq!(t.iter().map(|g| g.class.as_str()).collect::<Vec<_>>(), ["b", "c"]);
        let tie = top(&[0.4, 0.2, 0.4], &names, 3);
        assert_eq!(tie.iter().map(|g| g.class.as_str()).collect::<Vec<_>>(), ["a", "c", "b"]);
    }
}
