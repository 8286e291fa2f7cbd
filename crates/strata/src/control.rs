//! Long runs under the user's control: Ctrl-C / SIGTERM handling, and `--resume RUN`, which
//! continues an interrupted run with the settings it started with.

use anyhow::{Context, Result, anyhow, bail};
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use strata_train::run_dir::{JobRecord, Unfinished};
use strata_train::{RunWriter, StopFlag};

/// Raised by the signal handler; shared by every run of this process.
fn global_stop() -> &'static StopFlag {
    static STOP: OnceLock<StopFlag> = OnceLock::new();
    STOP.get_or_init(StopFlag::new)
}

/// The flag Ctrl-C and SIGTERM raise.
pub fn stop_flag() -> StopFlag {
    global_stop().clone()
}

/// Installs the handler: the first Ctrl-C or SIGTERM asks the run to stop after its current
/// step with a checkpoint; a second one exits at once (files are only ever replaced by
/// rename, so nothing already written is damaged).
pub fn install_interrupt_handler() {
    static SIGNALS: AtomicUsize = AtomicUsize::new(0);
    let stop = global_stop().clone();
    let res = ctrlc::set_handler(move || {
        if SIGNALS.fetch_add(1, Ordering::SeqCst) == 0 {
            stop.raise();
            eprintln!("\nstopping after this step and writing a checkpoint (press Ctrl-C again to quit at once)");
        } else {
            eprintln!("\nquitting at once; the last checkpoint is intact");
            std::process::exit(130);
        }
    });
    if let Err(e) = res {
        eprintln!("warning: cannot catch Ctrl-C ({e}); an interrupted run resumes from its last periodic checkpoint");
    }
}

/// Flags that may accompany `--resume`: they do not change what the run computes, except
/// `--lr` (to continue a diverged run more gently).
const RESUME_FLAGS: &[&str] =
    &["--lr", "--device", "--quiet", "-q", "--checkpoint-every", "--checkpoint-keep", "--keep-checkpoints"];

/// Rewrites `strata CMD --resume RUN [flags]` into the command line the run was started
/// with, followed by the allowed flags and `--resume RUN`.
pub fn expand_resume(argv: Vec<String>) -> Result<Vec<String>> {
    let Some(pos) = argv.iter().position(|a| a == "--resume" || a.starts_with("--resume=")) else {
        return Ok(argv);
    };
    let (run, consumed) = match argv[pos].strip_prefix("--resume=") {
        Some(r) => (r.to_string(), 1),
        None => (argv.get(pos + 1).cloned().context("--resume needs the run directory (the --out of the run)")?, 2),
    };
    let command = argv.get(1).cloned().context("--resume: no command given")?;
    let mut extra = Vec::new();
    let mut i = 2;
    while i < argv.len() {
        if i >= pos && i < pos + consumed {
            i += 1;
            continue;
        }
        let flag = argv[i].split('=').next().unwrap_or_default().to_string();
        if !RESUME_FLAGS.contains(&flag.as_str()) {
            bail!(
                "`{}` cannot be given with --resume: the run continues with the settings it started with (saved in its job.json); only {} may be added",
                argv[i],
                RESUME_FLAGS.join(", ")
            );
        }
        extra.push(argv[i].clone());
        let takes_value = !argv[i].contains('=') && !matches!(flag.as_str(), "--quiet" | "-q" | "--keep-checkpoints");
        if takes_value {
            let value = argv.get(i + 1).with_context(|| format!("{flag} needs a value"))?;
            extra.push(value.clone());
            i += 1;
        }
        i += 1;
    }
    let target = Path::new(&run);
    let job = match Unfinished::find(target) {
        Some(u) => u.job.with_context(|| {
            format!("--resume {run}: {} has no readable job.json; the run cannot be resumed", u.path.display())
        })?,
        None => {
            // the writer gives the precise reason (complete, or never started)
            return match RunWriter::resume(target) {
                Err(e) => Err(anyhow!(e).context(format!("--resume {run}"))),
                Ok(_) => bail!("--resume {run}: no interrupted run found"),
            };
        }
    };
    check_command(&job, &command, &run)?;
    let mut out = job.argv;
    out.extend(extra);
    out.push("--resume".into());
    out.push(run);
    Ok(out)
}

fn check_command(job: &JobRecord, command: &str, run: &str) -> Result<()> {
    if job.command != command {
        bail!(
            "--resume {run}: the run was started by `strata {}`; resume it with `strata {} --resume {run}`",
            job.command,
            job.command
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_resume_argv_is_unchanged() {
        let argv: Vec<String> = ["strata", "pretrain", "--data", "d"].iter().map(|s| s.to_string()).collect();
        assert_eq!(expand_resume(argv.clone()).unwrap(), argv);
    }

    #[test]
    fn resume_refuses_flags_that_change_the_run() {
        let argv: Vec<String> =
            ["strata", "pretrain", "--resume", "runs/x", "--epochs", "3"].iter().map(|s| s.to_string()).collect();
        let e = expand_resume(argv).unwrap_err().to_string();
        assert!(e.contains("--epochs") && e.contains("--lr"), "{e}");
    }
}
