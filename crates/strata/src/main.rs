//! The `strata` command.

use clap::Parser;
use strata::cli::Cli;

// burn allocates and frees large activation buffers every step; glibc hands them back to the
// OS each time, mimalloc keeps them cached (measured in issue 7's benchmark notes).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match strata::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
