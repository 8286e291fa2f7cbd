//! Arbitrary bytes as a run's `manifest.json` (what `strata inspect` and `finetune --from`
//! read, including the architecture and input shape it declares) and as a `--config` TOML
//! file for every command, whose flags then go through the real command-line parser.

#![no_main]

use std::path::Path;

use clap::{CommandFactory, FromArgMatches};
use libfuzzer_sys::fuzz_target;
use strata::cli::Cli;
use strata_nn::ArchSpec;
use strata_train::manifest::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = serde_json::from_slice::<Manifest>(data) {
        let json = serde_json::to_vec(&m).expect("a manifest that was read can be written");
        serde_json::from_slice::<Manifest>(&json).expect("a manifest that was written reads back");
        // What a consumer does next with the declared architecture and input.
        if let Ok(arch) = ArchSpec::parse(&m.arch)
            && let Ok(shapes) = arch.shapes(m.input)
        {
            for s in shapes {
                let _ = s.numel();
            }
        }
    }
    let Ok(text) = std::str::from_utf8(data) else { return };
    let commands: Vec<String> = Cli::command().get_subcommands().map(|c| c.get_name().to_string()).collect();
    for command in commands {
        match strata::config_file::flags_from_str(text, &command, Path::new("fuzz.toml")) {
            Ok(flags) => {
                let mut argv = vec!["strata".to_string(), command.clone()];
                argv.extend(flags);
                let cli = Cli::command().mut_subcommands(|s| s.args_override_self(true));
                if let Ok(matches) = cli.try_get_matches_from(argv) {
                    let _ = Cli::from_arg_matches(&matches);
                }
            }
            Err(e) => assert!(format!("{e:#}").contains("fuzz.toml"), "error does not name the file: {e:#}"),
        }
    }
});
