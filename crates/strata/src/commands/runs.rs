//! `strata runs`: every run under a folder as one table.

use anyhow::Result;
use std::path::PathBuf;
use strata_run::runs::{self, RunEntry, RunStatus};

/// Flags of `strata runs`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A folder of runs (any depth), or one run.
    #[arg(default_value = "runs")]
    pub dir: PathBuf,
    /// One JSON array of runs (schema: docs/schemas/runs.schema.json).
    #[arg(long)]
    pub json: bool,
}

/// "42 s", "5 min", "3 h", "2 d" since `t`.
fn age(t: Option<u64>, now: u64) -> String {
    let Some(t) = t else { return "-".into() };
    let s = now.saturating_sub(t);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86400 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86400),
    }
}

fn metric(e: &RunEntry) -> String {
    match &e.metric {
        Some(m) if m.name == "test_accuracy" => format!("test acc {:.2} %", 100.0 * m.value),
        Some(m) => format!("{} {:.4}", m.name.replace('_', " "), m.value),
        None => match &e.status {
            RunStatus::Broken(reason) => reason.clone(),
            RunStatus::Foreign => "no strata run in it".into(),
            _ => "-".into(),
        },
    }
}

/// Runs `strata runs`.
pub fn run(a: Args) -> Result<()> {
    if !a.dir.is_dir() {
        anyhow::bail!("{} is not a folder (give the folder your runs are in, e.g. runs)", a.dir.display());
    }
    let list = runs::list(&a.dir);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if list.is_empty() {
        println!("no runs under {}", a.dir.display());
        return Ok(());
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let rows: Vec<[String; 6]> = list
        .iter()
        .map(|e| {
            [
                e.name.clone(),
                e.kind.clone().unwrap_or_else(|| "-".into()),
                e.method.clone().unwrap_or_else(|| "-".into()),
                e.status.word().into(),
                metric(e),
                age(e.time_unix, now),
            ]
        })
        .collect();
    let header = ["run", "kind", "method", "status", "key metric", "age"];
    let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).chain([header[i].len()]).max().unwrap_or(0);
    let widths: Vec<usize> = (0..5).map(width).collect();
    let line = |r: [&str; 6]| {
        let mut s = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i < 5 {
                s.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            } else {
                s.push_str(cell);
            }
        }
        s
    };
    println!("{}", line(header));
    for r in &rows {
        println!("{}", line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_in_the_largest_whole_unit() {
        assert_eq!(age(Some(100), 130), "30 s");
        assert_eq!(age(Some(0), 3599), "59 min");
        assert_eq!(age(Some(0), 7200), "2 h");
        assert_eq!(age(Some(0), 3 * 86400 + 5), "3 d");
        assert_eq!(age(None, 5), "-");
        assert_eq!(age(Some(10), 5), "0 s");
    }
}
