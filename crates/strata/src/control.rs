//! Long runs under the user's control: checkpoint flags, Ctrl-C / SIGTERM handling, and
//! `--resume RUN`, which continues an interrupted run with the settings it started with.

use anyhow::{Context, Result, anyhow, bail};
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use strata_run::RunControl;
use strata_train::run_dir::{JobRecord, Unfinished};
use strata_train::{CheckpointPolicy, RunWriter, StopFlag};

/// Where a training command writes its run and how: shared by `pretrain`, `train` and `finetune`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Run directory to create.
    #[arg(long)]
    pub out: std::path::PathBuf,
    /// cpu (flex), ndarray, vulkan[:N] or cuda[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[command(flatten)]
    pub checkpoints: CheckpointArgs,
    /// Replace the run directory if it exists.
    #[arg(long)]
    pub force: bool,
    /// Print only phase summaries.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Checkpoint flags shared by `pretrain`, `finetune` and `train`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckpointArgs {
    /// Write a checkpoint every N optimiser steps (default: every epoch when pretraining,
    /// every max(epoch, 100) steps and at each phase change when fine-tuning).
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
    /// Keep this many newest checkpoints while the run goes (the best, by training loss, is kept too).
    #[arg(long, default_value_t = 2)]
    pub checkpoint_keep: usize,
    /// Keep the checkpoints in the run directory after it completes (they are removed by default:
    /// the final weights are in model.safetensors).
    #[arg(long)]
    pub keep_checkpoints: bool,
    /// Continue the interrupted run RUN (the `--out` it was started with) from its last
    /// checkpoint, with its own settings; only --lr, --device, --quiet and the checkpoint flags
    /// may be given beside it.
    #[arg(long, value_name = "RUN")]
    pub resume: Option<std::path::PathBuf>,
}

impl CheckpointArgs {
    /// The run control these flags describe, stopped by Ctrl-C / SIGTERM.
    pub fn control(&self) -> Result<RunControl> {
        if self.checkpoint_every == Some(0) {
            bail!("invalid setting `--checkpoint-every` = 0: give a number of steps of at least 1");
        }
        if self.checkpoint_keep == 0 {
            bail!("invalid setting `--checkpoint-keep` = 0: keep at least 1 checkpoint, or resuming is impossible");
        }
        Ok(RunControl {
            resumable: true,
            policy: CheckpointPolicy { every_steps: self.checkpoint_every, keep_last: self.checkpoint_keep },
            keep_checkpoints: self.keep_checkpoints,
            stop: stop_flag(),
            resume: self.resume.is_some(),
        })
    }
}

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
