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
use clap::error::ErrorKind;
use clap::{ArgAction, CommandFactory};
use std::ffi::OsString;
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
    flags_from_str(&text, command, path)
}

/// The flags the TOML `text` of a `--config` file sets for `command` (e.g. `finetune`), as
/// `--key=value` strings in file order; `path` only names the file in errors.
///
/// Every table must be named after a command, every key of the command's table must be one
/// of its long flags (`_` may stand for `-`), and every value must be one that flag
/// accepts: a switch takes `true`/`false`, any other flag a string, number or list (joined
/// with commas) that its parser accepts. Errors name the file, the table, the key and what
/// to write instead.
pub fn flags_from_str(text: &str, command: &str, path: &Path) -> Result<Vec<String>> {
    let file = format!("--config {}", path.display());
    let doc: toml::Table = toml::from_str(text).with_context(|| format!("{file}: not valid TOML"))?;
    let cli = crate::cli::Cli::command();
    for key in doc.keys() {
        if cli.find_subcommand(key).is_none() {
            let names: Vec<&str> = cli.get_subcommands().map(|c| c.get_name()).collect();
            bail!(
                "{file}: unknown table [{key}]; tables are named after commands ({}), e.g. [finetune]",
                names.join(", ")
            );
        }
    }
    let Some(table) = doc.get(command) else { return Ok(vec![]) };
    let table = table.as_table().with_context(|| format!("{file}: `{command}` must be a table, e.g. [{command}]"))?;
    // An unknown command: nothing to check against, and the command line parser will say so.
    let Some(sub) = cli.find_subcommand(command) else { return Ok(vec![]) };
    let mut flags = Vec::new();
    let mut set_by: Vec<(String, &str)> = Vec::new();
    for (key, value) in table {
        let long = key.replace('_', "-");
        let Some(arg) = sub.get_arguments().find(|a| a.get_long() == Some(long.as_str()) && !is_meta(a)) else {
            bail!("{file}: [{command}] unknown key `{key}`; {}", key_hint(sub, &long, command));
        };
        if let Some((_, other)) = set_by.iter().find(|(l, _)| *l == long) {
            bail!("{file}: [{command}] `{other}` and `{key}` both set --{long}; keep one");
        }
        set_by.push((long.clone(), key));
        let flag = format!("--{long}");
        let bad_value = |why: String| anyhow::anyhow!("{file}: [{command}] {key} = {value}: {why}");
        if !arg.get_action().takes_values() {
            match value {
                toml::Value::Boolean(true) => flags.push(flag),
                toml::Value::Boolean(false) => {}
                _ => return Err(bad_value(format!("`{key}` is a switch: write `{key} = true` or `{key} = false`"))),
            }
            continue;
        }
        let text = match value {
            toml::Value::Boolean(_) => {
                return Err(bad_value(format!(
                    "{flag} takes a value, not true/false; write e.g. `{key} = {}`",
                    example(arg)
                )));
            }
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Array(items) => {
                let mut parts = Vec::with_capacity(items.len());
                for v in items {
                    parts.push(match v {
                        toml::Value::String(s) => s.clone(),
                        toml::Value::Integer(i) => i.to_string(),
                        toml::Value::Float(f) => f.to_string(),
                        other => {
                            return Err(bad_value(format!(
                                "list items must be strings or numbers, not {}",
                                other.type_str()
                            )));
                        }
                    });
                }
                parts.join(",")
            }
            other => {
                return Err(bad_value(format!("use a string, number, boolean or list, not a {}", other.type_str())));
            }
        };
        let pieces: Vec<&str> = match arg.get_value_delimiter() {
            Some(d) => text.split(d).collect(),
            None => vec![&text],
        };
        for piece in pieces {
            if let Some(e) = value_error(sub, &flag, piece) {
                let why = e.to_string();
                let why = why.lines().next().unwrap_or_default().trim_start_matches("error: ").trim_end_matches('.');
                return Err(bad_value(format!(
                    "{why}; give `{key}` a value that `strata {command} {flag}` accepts (see `strata {command} --help`)"
                )));
            }
        }
        flags.push(format!("{flag}={text}"));
    }
    Ok(flags)
}

/// The error `strata COMMAND FLAG=VALUE` would give for the value itself, if any: the
/// flag's own parser is run on it (other complaints, such as missing required flags, are
/// not the value's fault and are left to the real command line).
fn value_error(sub: &clap::Command, flag: &str, value: &str) -> Option<clap::Error> {
    let mut probe = sub.clone().no_binary_name(true);
    let arg = [OsString::from(format!("{flag}={value}"))];
    match probe.try_get_matches_from_mut(arg) {
        Err(e) if matches!(e.kind(), ErrorKind::InvalidValue | ErrorKind::ValueValidation | ErrorKind::InvalidUtf8) => {
            Some(e)
        }
        _ => None,
    }
}

/// Arguments that are not settings: `--help`, `--version`.
fn is_meta(arg: &clap::Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version)
}

/// What to say about an unknown key: the closest long flag when one is near, else where
/// to find them all.
fn key_hint(sub: &clap::Command, long: &str, command: &str) -> String {
    let closest = sub
        .get_arguments()
        .filter(|a| !is_meta(a))
        .filter_map(|a| a.get_long())
        .map(|l| (strsim::levenshtein(l, long), l))
        .min();
    match closest {
        Some((d, l)) if d <= 2 || l.contains(long) || long.contains(l) => {
            format!("did you mean `{l}`? keys are the long flags of `strata {command}`")
        }
        _ => format!("keys are the long flags of `strata {command}` (see `strata {command} --help`)"),
    }
}

/// A value to show in an example: the flag's default, else its value name.
fn example(arg: &clap::Arg) -> String {
    match arg.get_default_values().first().and_then(|v| v.to_str()) {
        Some(v) if v.parse::<f64>().is_ok() => v.to_string(),
        Some(v) => format!("{v:?}"),
        None => format!("\"{}\"", arg.get_value_names().and_then(|n| n.first()).map_or("...", |n| n.as_str())),
    }
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

    fn config_error(text: &str, command: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, text).unwrap();
        let e = expand(argv(&format!("strata {command} --config {}", f.display()))).unwrap_err();
        let e = format!("{e:#}");
        assert!(e.contains("c.toml"), "{e}");
        e
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_the_key() {
        let e = config_error("[pretrain]\nepoch = 3\n", "pretrain");
        assert!(e.contains("[pretrain] unknown key `epoch`") && e.contains("did you mean `epochs`"), "{e}");
        let e = config_error("[pretrain]\nwhatever = 3\n", "pretrain");
        assert!(e.contains("unknown key `whatever`") && e.contains("strata pretrain --help"), "{e}");
        let e = config_error("[pretrain]\nepochs = \"three\"\n", "pretrain");
        assert!(e.contains("epochs = \"three\"") && e.contains("invalid value 'three'"), "{e}");
        let e = config_error("[pretrain]\nepochs = true\n", "pretrain");
        assert!(e.contains("--epochs takes a value, not true/false") && e.contains("epochs = 10"), "{e}");
        let e = config_error("[pretrain]\nforce = \"yes\"\n", "pretrain");
        assert!(e.contains("`force` is a switch"), "{e}");
        let e = config_error("[pretrain]\nepochs = 1.5\n", "pretrain");
        assert!(e.contains("epochs = 1.5") && e.contains("invalid value"), "{e}");
        let e = config_error("[pretrain]\nepochs = 2\nepochs_ = 3\n", "pretrain");
        assert!(e.contains("unknown key `epochs_`"), "{e}");
        let e = config_error("[finetune]\nlabels-per-class = 2\nlabels_per_class = 3\n", "finetune");
        assert!(e.contains("both set --labels-per-class"), "{e}");
        let e = config_error("[pretrain]\narch = \"conv8,wat\"\n", "pretrain");
        assert!(e.contains("arch = \"conv8,wat\"") && e.contains("wat"), "{e}");
        let e = config_error("[pretrain]\nhelp = true\n", "pretrain");
        assert!(e.contains("unknown key `help`"), "{e}");
        let e = config_error("pretrain = 3\n", "pretrain");
        assert!(e.contains("must be a table"), "{e}");
        // Tables of other commands are checked only when that command runs.
        assert!(flags_from_str("[finetune]\nnope = 1\n", "pretrain", Path::new("c.toml")).unwrap().is_empty());
        assert!(flags_from_str("[train]\n[search]\n[probe]\n", "pretrain", Path::new("c.toml")).is_ok());
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
