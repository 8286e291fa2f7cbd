//! `--config FILE.toml`: settings for a command, merged under the flags given on the command
//! line (a flag on the command line wins). Keys are the long flag names of the command, in a
//! table named after it:
//!
//! ```toml
//! [finetune]
//! labels-per-class = 10
//! unfreeze-top = 3
//! augment-shift = 2
//! ```

use anyhow::{Context, Result, bail};
use std::path::Path;

/// Expands `--config FILE` in `argv` into flags placed right after the subcommand, so that
/// flags the user typed (which come later) override them.
pub fn expand(argv: Vec<String>) -> Result<Vec<String>> {
    let Some(pos) = argv.iter().position(|a| a == "--config" || a.starts_with("--config=")) else {
        return Ok(argv);
    };
    let (path, consumed) = match argv[pos].strip_prefix("--config=") {
        Some(p) => (p.to_string(), 1),
        None => (argv.get(pos + 1).cloned().context("--config needs a file path")?, 2),
    };
    let sub_pos =
        argv.iter().skip(1).position(|a| !a.starts_with('-')).map(|p| p + 1).context("--config: no command given")?;
    let sub = argv[sub_pos].clone();
    let flags = flags_from_file(Path::new(&path), &sub)?;
    let mut out: Vec<String> = Vec::with_capacity(argv.len() + flags.len());
    for (i, a) in argv.iter().enumerate() {
        if i >= pos && i < pos + consumed {
            continue;
        }
        out.push(a.clone());
        if i == sub_pos {
            out.extend(flags.iter().cloned());
        }
    }
    Ok(out)
}

fn flags_from_file(path: &Path, command: &str) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("--config {}", path.display()))?;
    let doc: toml::Table =
        toml::from_str(&text).with_context(|| format!("--config {}: not valid TOML", path.display()))?;
    for key in doc.keys() {
        if !["pretrain", "finetune", "evaluate", "demo", "bench", "predict", "inspect"].contains(&key.as_str()) {
            bail!(
                "--config {}: unknown table [{key}]; tables are named after commands, e.g. [finetune]",
                path.display()
            );
        }
    }
    let Some(table) = doc.get(command) else { return Ok(vec![]) };
    let table =
        table.as_table().with_context(|| format!("--config {}: `{command}` must be a table", path.display()))?;
    let mut flags = Vec::new();
    for (key, value) in table {
        let flag = format!("--{}", key.replace('_', "-"));
        let text = match value {
            toml::Value::Boolean(true) => {
                flags.push(flag);
                continue;
            }
            toml::Value::Boolean(false) => continue,
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|v| match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
            other => {
                bail!("--config {}: [{command}] {key} = {other}: use a string, number, boolean or list", path.display())
            }
        };
        flags.push(format!("{flag}={text}"));
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn file_flags_go_before_command_line_flags() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "[finetune]\nlabels-per-class = 10\nhead = [256, 128]\nforce = true\nquiet = false\n[pretrain]\nepochs = 3\n").unwrap();
        let out = expand(argv(&format!("strata finetune --config {} --labels-per-class 5", f.display()))).unwrap();
        assert_eq!(out, argv("strata finetune --force --head=256,128 --labels-per-class=10 --labels-per-class 5"));
    }

    #[test]
    fn unknown_table_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "[finetuning]\nx = 1\n").unwrap();
        let e = expand(argv(&format!("strata finetune --config={}", f.display()))).unwrap_err().to_string();
        assert!(e.contains("c.toml") && e.contains("[finetuning]"), "{e}");
    }
}
