//! Every default is declared once: what clap fills in for an untyped flag, the library's
//! `Default`, and what a run's manifest records are the same values.

use crate::common::*;
use clap::Parser;
use strata::cli::{Cli, Command};
use strata_train::probe::ProbeConfig;
use strata_train::{FinetuneConfig, PretrainConfig};

fn parse(args: &[&str]) -> Command {
    Cli::try_parse_from(std::iter::once("strata").chain(args.iter().copied())).unwrap().command
}

#[test]
fn clap_fills_in_the_library_defaults() {
    let Command::Finetune(a) = parse(&["finetune", "--from", "scratch", "--train", "x", "--out", "y"]) else {
        unreachable!()
    };
    assert_eq!(a.cfg, FinetuneConfig::default());
    let Command::Search(a) = parse(&["search", "--from", "r", "--train", "x", "--out", "y"]) else { unreachable!() };
    assert_eq!(a.cfg, FinetuneConfig::default());
    let Command::Demo(a) = parse(&["demo"]) else { unreachable!() };
    assert_eq!(a.cfg, FinetuneConfig::default());
    let Command::Pretrain(a) = parse(&["pretrain", "--data", "x", "--out", "y"]) else { unreachable!() };
    assert_eq!(a.cfg, PretrainConfig::default());
    let Command::Probe(a) = parse(&["probe", "r", "--train", "x"]) else { unreachable!() };
    assert_eq!(a.cfg, ProbeConfig::default());
    // a typed flag lands in the same field the library reads
    let Command::Finetune(a) =
        parse(&["finetune", "--from", "scratch", "--train", "x", "--out", "y", "--lr-mult", "0.5", "--head", "32,16"])
    else {
        unreachable!()
    };
    assert_eq!(a.cfg, FinetuneConfig { lr_mult: 0.5, head: "32,16".parse().unwrap(), ..Default::default() });
}

#[test]
fn the_manifest_records_the_settings_a_run_used() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_mnist(&tmp.path().join("mnist"), 60, 20);
    let d = data.to_str().unwrap();
    let pre = tmp.path().join("pre");
    ok(&["pretrain", "--method", "ae", "--data", d, "--out", pre.to_str().unwrap(), "--epochs", "1", "--quiet"]);
    let recorded: PretrainConfig = serde_json::from_value(manifest(&pre)["config"]["train"].clone()).unwrap();
    assert_eq!(recorded, PretrainConfig { epochs: 1, ..Default::default() });

    let ft = tmp.path().join("ft");
    let steps = ["--frozen-steps", "2", "--unfreeze-steps", "2"];
    let mut args = vec!["finetune", "--from", pre.to_str().unwrap(), "--train", d, "--out", ft.to_str().unwrap()];
    args.extend(steps);
    args.push("--quiet");
    ok(&args);
    let recorded: FinetuneConfig = serde_json::from_value(manifest(&ft)["config"]["finetune"].clone()).unwrap();
    assert_eq!(recorded, FinetuneConfig { frozen_steps: 2, unfreeze_steps: 2, ..Default::default() });
}

#[test]
fn a_method_starts_from_its_own_defaults_unless_a_flag_is_given() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_mnist(&tmp.path().join("mnist"), 40, 10);
    let d = data.to_str().unwrap();
    let cluster = strata_train::method_by_name("cluster").unwrap().defaults();
    let recorded = |run: &std::path::Path| -> PretrainConfig {
        serde_json::from_value(manifest(run)["config"]["train"].clone()).unwrap()
    };
    let base = ["pretrain", "--data", d, "--method", "cluster", "--epochs", "1", "--sub-heads", "1", "-q"];
    let own = tmp.path().join("own");
    let mut args = base.to_vec();
    args.extend(["--out", own.to_str().unwrap()]);
    ok(&args);
    let want = PretrainConfig {
        epochs: 1,
        cluster: strata_train::methods::ClusterSettings { sub_heads: 1, ..Default::default() },
        ..cluster.clone()
    };
    assert_eq!(recorded(&own), want);
    assert_eq!(manifest(&own)["arch"], cluster.arch.to_string());
    // a typed flag and one from a --config file win, even at the global default's value
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, "[pretrain]\nbatch = 64\n").unwrap();
    let typed = tmp.path().join("typed");
    let mut args = base.to_vec();
    args.extend(["--lr", "1e-3", "--config", cfg.to_str().unwrap(), "--out", typed.to_str().unwrap()]);
    ok(&args);
    assert_eq!(recorded(&typed), PretrainConfig { lr: 1e-3, batch: 64, ..want });
}
