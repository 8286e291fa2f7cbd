//! The `strata` command.

use clap::{CommandFactory, FromArgMatches};
use strata::cli::Cli;

// burn allocates and frees large activation buffers every step; glibc hands them back to the
// OS each time, mimalloc keeps them cached (measured in issue 7's benchmark notes).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

// mimalloc's own option setter (v3 `mi_option_t`: purge_delay is entry 15 of the enum).
const MI_OPTION_PURGE_DELAY: i32 = 15;
unsafe extern "C" {
    fn mi_option_set(option: i32, value: std::ffi::c_long);
}

fn main() -> std::process::ExitCode {
    // By default mimalloc gives freed memory back to the OS after 10 ms; burn frees and
    // re-allocates the same large activation buffers every step, so the kernel spent ~11 % of
    // a train step zeroing fresh pages (perf: clear_page_erms). Never purging keeps them:
    // +15-25 % images/s on the autoencoder step (README, Performance).
    // SAFETY: a plain option setter of the allocator linked in; any value is valid.
    unsafe {
        mi_option_set(MI_OPTION_PURGE_DELAY, -1);
    }
    // `strata inspect RUN | head` should end quietly like any Unix tool, not panic on a
    // closed pipe: restore the default SIGPIPE action that Rust's runtime ignores.
    #[cfg(unix)]
    // SAFETY: called first thing, before any thread exists; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let argv = match strata::config_file::expand(std::env::args().collect()).and_then(strata::control::expand_resume) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // a flag given twice (once from --config, once typed) takes the last value
    let command = Cli::command().mut_subcommands(|s| s.args_override_self(true));
    let cli = match Cli::from_arg_matches(&command.get_matches_from(argv.clone())) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    // only the commands that checkpoint stop gracefully; the others keep Ctrl-C's default
    if matches!(argv.get(1).map(String::as_str), Some("pretrain" | "train" | "finetune")) {
        strata::control::install_interrupt_handler();
    }
    match strata::cli::run(cli, argv) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if matches!(e.downcast_ref::<strata_run::RunError>(), Some(strata_run::RunError::Stopped { .. })) => {
            eprintln!("{e}");
            std::process::ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
