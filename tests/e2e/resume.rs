//! Exact resume: a run stopped in-process at a chosen step and resumed ends with the same
//! weights bytes and the same logged figures as the run that was never stopped — for
//! pretraining, for fine-tuning across the freeze → unfreeze change, and for the GAN's two
//! optimisers. Also: divergence keeps the last good checkpoint; damaged checkpoints are
//! named and skipped; `kill -9` at random moments leaves runs resumable or marked incomplete.

use crate::common::{fails, manifest, ok, tiny_mnist};
use std::path::{Path, PathBuf};
use strata_nn::ArchSpec;
use strata_run::pipeline::{self, FinetuneRequest, LabelSubset, PretrainRequest};
use strata_run::{RunControl, RunError};
use strata_train::{CheckpointPolicy, Event, FinetuneConfig, Observer, PretrainConfig, StopFlag};

/// Raises the stop flag when the `at`-th optimiser step (counted across phases) finishes:
/// exactly what the Ctrl-C handler does, at a step the test chooses.
struct StopAt {
    at: usize,
    seen: usize,
    flag: StopFlag,
}

impl Observer for StopAt {
    fn event(&mut self, event: Event) {
        if let Event::Step { .. } = event {
            self.seen += 1;
            if self.seen == self.at {
                self.flag.raise();
            }
        }
    }
}

fn control(every: Option<usize>, stop: &StopFlag, resume: bool) -> RunControl {
    RunControl {
        resumable: true,
        policy: CheckpointPolicy { every_steps: every, keep_last: 2 },
        keep_checkpoints: false,
        stop: stop.clone(),
        resume,
    }
}

/// The figures of `metrics.jsonl`, without wall-clock fields.
fn figures(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let o = v.as_object_mut().unwrap();
            o.remove("seconds");
            o.remove("images_per_s");
            v
        })
        .collect()
}

fn bytes(run: &Path, file: &str) -> Vec<u8> {
    std::fs::read(run.join(file)).unwrap_or_else(|e| panic!("{}: {e}", run.join(file).display()))
}

fn pretrain_req(data: &Path, method: &str, out: PathBuf, epochs: usize) -> PretrainRequest {
    PretrainRequest {
        data: data.display().to_string(),
        method: method.into(),
        out,
        force: false,
        max_images: None,
        cfg: PretrainConfig {
            arch: "conv8-bn-pool,dense16".parse().unwrap(),
            epochs,
            batch: 32,
            seed: 3,
            ..PretrainConfig::default()
        },
        device: "cpu".into(),
        argv: vec![],
        control: RunControl::default(),
    }
}

/// Runs `req` stopped after each of `stops` in turn (resuming in between), then to the end.
fn pretrain_with_stops(req: &PretrainRequest, stops: &[usize], every: Option<usize>) {
    let mut resume = false;
    for &at in stops {
        let flag = StopFlag::new();
        let r = PretrainRequest { control: control(every, &flag, resume), ..req.clone() };
        let Err(err) = pipeline::pretrain(&r, &mut StopAt { at, seen: 0, flag }) else { panic!("the run should stop") };
        assert!(matches!(err, RunError::Stopped { .. }), "stopped with the wrong error: {err}");
        assert!(!req.out.exists(), "a stopped run must not appear complete");
        resume = true;
    }
    let r = PretrainRequest { control: control(every, &StopFlag::new(), resume), ..req.clone() };
    pipeline::pretrain(&r, &mut strata_train::progress::Silent).unwrap();
}

fn assert_same_runs(a: &Path, b: &Path, files: &[&str]) {
    for f in files {
        assert!(bytes(a, f) == bytes(b, f), "{f} differs between {} and {}", a.display(), b.display());
    }
    assert_eq!(figures(a), figures(b), "logged figures differ");
    let (ma, mb) = (crate::common::manifest(a), crate::common::manifest(b));
    assert_eq!(ma["metrics"]["final_loss"], mb["metrics"]["final_loss"]);
    assert_eq!(ma["metrics"]["steps"], mb["metrics"]["steps"]);
}

#[test]
fn pretraining_resumed_mid_epoch_equals_the_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tiny_mnist(&tmp.path().join("d"), 150, 10);
    let whole = pretrain_req(&d, "dae", tmp.path().join("whole"), 3);
    pretrain_with_stops(&whole, &[], None);
    // step 7 is inside epoch 2 (5 steps per epoch): the loop's partial sums and its place in
    // the data order are part of the checkpoint; step 10 is an epoch end
    let cut = PretrainRequest { out: tmp.path().join("cut"), ..whole.clone() };
    pretrain_with_stops(&cut, &[7, 3], None);
    assert_same_runs(&whole.out, &cut.out, &["model.safetensors", "reconstructions.png"]);
    assert!(!cut.out.join("checkpoints").exists(), "checkpoints are removed once the run is complete");
    assert!(crate::common::partials(tmp.path()).is_empty());
}

#[test]
fn cluster_resumed_equals_the_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tiny_mnist(&tmp.path().join("d"), 150, 10);
    let whole = pretrain_req(&d, "cluster", tmp.path().join("whole"), 3);
    pretrain_with_stops(&whole, &[], None);
    // the views are drawn from (seed, step) and the learning rate is a function of the step:
    // nothing but the weights and Adam's moments has to cross the stop
    let cut = PretrainRequest { out: tmp.path().join("cut"), ..whole.clone() };
    pretrain_with_stops(&cut, &[7, 3], None);
    assert_same_runs(&whole.out, &cut.out, &["model.safetensors"]);
    let m = crate::common::manifest(&whole.out);
    assert_eq!(m["metrics"]["cluster_sizes"], crate::common::manifest(&cut.out)["metrics"]["cluster_sizes"]);
    assert!(m["metrics"]["chosen_head"].as_u64().unwrap() < 5, "{}", m["metrics"]);
}

#[test]
fn contrastive_with_cluster_heads_resumed_equals_the_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tiny_mnist(&tmp.path().join("d"), 150, 10);
    let mut whole = pretrain_req(&d, "contrastive", tmp.path().join("whole"), 3);
    whole.cfg.contrastive.cluster_weight = 1.0;
    pretrain_with_stops(&whole, &[], None);
    let cut = PretrainRequest { out: tmp.path().join("cut"), ..whole.clone() };
    pretrain_with_stops(&cut, &[7, 3], None);
    assert_same_runs(&whole.out, &cut.out, &["model.safetensors"]);
    let m = crate::common::manifest(&whole.out);
    assert_eq!(m["metrics"]["cluster_sizes"], crate::common::manifest(&cut.out)["metrics"]["cluster_sizes"]);
    assert!(m["metrics"]["final_twin_accuracy"].as_f64().is_some(), "{}", m["metrics"]);
}

#[test]
fn gan_resumed_equals_the_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tiny_mnist(&tmp.path().join("d"), 96, 10);
    let whole = pretrain_req(&d, "gan", tmp.path().join("whole"), 3);
    pretrain_with_stops(&whole, &[], Some(2));
    let cut = PretrainRequest { out: tmp.path().join("cut"), ..whole.clone() };
    // mid-epoch, then exactly at an epoch end: both optimisers and the sample grids carry over
    pretrain_with_stops(&cut, &[4, 2], Some(2));
    assert_same_runs(
        &whole.out,
        &cut.out,
        &["model.safetensors", "samples-epoch-1.png", "samples-epoch-2.png", "samples-epoch-3.png"],
    );
    assert_eq!(crate::common::manifest(&whole.out)["metrics"], {
        let mut m = crate::common::manifest(&cut.out)["metrics"].clone();
        for k in ["seconds", "images_per_s", "total_seconds"] {
            m[k] = crate::common::manifest(&whole.out)["metrics"][k].clone();
        }
        m
    });
}

#[test]
fn stacked_resumed_in_a_later_stage_equals_the_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tiny_mnist(&tmp.path().join("d"), 64, 10);
    let whole = pretrain_req(&d, "stacked", tmp.path().join("whole"), 2);
    pretrain_with_stops(&whole, &[], None);
    let cut = PretrainRequest { out: tmp.path().join("cut"), ..whole.clone() };
    // 4 steps per stage: stop in stage 0, then in the end-to-end stage
    pretrain_with_stops(&cut, &[3, 7], None);
    assert_same_runs(&whole.out, &cut.out, &["model.safetensors"]);
    assert_eq!(
        crate::common::manifest(&whole.out)["metrics"]["stacked-block-0_loss"],
        crate::common::manifest(&cut.out)["metrics"]["stacked-block-0_loss"]
    );
}

fn finetune_req(d: &Path, from: &Path, out: PathBuf) -> FinetuneRequest {
    FinetuneRequest {
        from: Some(from.to_path_buf()),
        train: format!("{}:train", d.display()),
        test: Some(format!("{}:test", d.display())),
        classes: None,
        labels: LabelSubset::PerClass(6),
        arch: ArchSpec::reference(),
        cfg: FinetuneConfig {
            frozen_steps: 7,
            unfreeze_steps: 6,
            unfreeze_top: 2,
            batch: 16,
            seed: 5,
            ..Default::default()
        },
        out,
        force: false,
        device: "cpu".into(),
        argv: vec![],
        kind: None,
        control: RunControl::default(),
    }
}

#[test]
fn finetuning_resumed_across_the_unfreeze_equals_the_uninterrupted_run() {
    // augmented draws cached per phase (the default), then a fresh draw at every step
    resumed_finetune_equals_the_whole(16);
    resumed_finetune_equals_the_whole(0);
}

/// Stage two with augmentation, warm-up + cosine and label smoothing (the defaults), stopped
/// three times and resumed, against the same run never stopped.
fn resumed_finetune_equals_the_whole(cache_draws: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let d = tiny_mnist(&tmp.path().join("d"), 120, 40);
    let pre = tmp.path().join("pre");
    pipeline::pretrain(&pretrain_req(&d, "ae", pre.clone(), 1), &mut strata_train::progress::Silent).unwrap();
    let with_draws = |mut r: FinetuneRequest| {
        r.cfg.cache_draws = cache_draws;
        r
    };
    let whole = with_draws(finetune_req(&d, &pre, tmp.path().join("whole")));
    pipeline::finetune(&whole, &mut strata_train::progress::Silent).unwrap();
    let cut = with_draws(finetune_req(&d, &pre, tmp.path().join("cut")));
    // stop in the frozen phase, at the phase change itself, then in the unfrozen phase
    let mut resume = false;
    for at in [3, 4, 2] {
        let flag = StopFlag::new();
        let r = FinetuneRequest { control: control(Some(4), &flag, resume), ..cut.clone() };
        let Err(err) = pipeline::finetune(&r, &mut StopAt { at, seen: 0, flag }) else { panic!("the run should stop") };
        assert!(matches!(err, RunError::Stopped { .. }), "{err}");
        resume = true;
    }
    let r = FinetuneRequest { control: control(Some(4), &StopFlag::new(), true), ..cut.clone() };
    let res = pipeline::finetune(&r, &mut strata_train::progress::Silent).unwrap();
    assert_same_runs(&whole.out, &cut.out, &["model.safetensors", "evaluation.json"]);
    let (mw, mc) = (crate::common::manifest(&whole.out), crate::common::manifest(&cut.out));
    let recipe = &mc["config"]["finetune"];
    assert_eq!(
        (&recipe["no_augment"], &recipe["schedule"], &recipe["cache_draws"]),
        (&false.into(), &"cosine".into(), &cache_draws.into())
    );
    for (pw, pc) in mw["phases"].as_array().unwrap().iter().zip(mc["phases"].as_array().unwrap()) {
        assert_eq!(
            (&pw["name"], &pw["final_loss"], &pw["block_lr"]),
            (&pc["name"], &pc["final_loss"], &pc["block_lr"])
        );
    }
    assert_eq!(res.phases.len(), 2);
}

#[test]
fn a_diverging_run_names_the_step_and_keeps_its_last_good_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tiny_mnist(&tmp.path().join("d"), 300, 10);
    let out = tmp.path().join("div");
    let (out_s, d_s) = (out.to_str().unwrap(), d.to_str().unwrap());
    // SGD with heavy momentum at a rate far too high: the loss overflows within a few steps
    let e = fails(&[
        "finetune",
        "--from",
        "scratch",
        "--train",
        d_s,
        "--optimizer",
        "sgd",
        "--lr",
        "9.9",
        "--momentum",
        "0.99",
        // strata 0.2's schedule: the full rate from the first step, no smoothing or decay to
        // soften the blow-up, so the weights (not only the loss) overflow
        "--schedule",
        "constant",
        "--warmup",
        "0",
        "--label-smoothing",
        "0",
        "--weight-decay",
        "0",
        "--no-augment",
        "--frozen-steps",
        "200",
        "--unfreeze-steps",
        "0",
        "--checkpoint-every",
        "5",
        "--out",
        out_s,
    ]);
    assert!(e.contains("diverged at step") && (e.contains("NaN") || e.contains("inf")), "{e}");
    assert!(e.contains("first non-finite tensor: backbone.") && e.contains("last good checkpoint (step"), "{e}");
    assert!(e.contains("lower the learning rate") && e.contains("--resume"), "{e}");
    assert!(!out.exists());
    let status = ok(&["inspect", out_s]);
    assert!(status.contains("resumable"), "{status}");
    // continuing from the last good checkpoint at a sane rate completes the run
    ok(&["finetune", "--resume", out_s, "--lr", "0.01", "-q"]);
    assert!(out.join("manifest.json").exists());
    assert!(crate::common::partials(tmp.path()).is_empty());
}

#[test]
fn a_damaged_checkpoint_is_named_and_the_one_before_is_used() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tiny_mnist(&tmp.path().join("d"), 96, 10);
    let req = pretrain_req(&d, "ae", tmp.path().join("run"), 3);
    let flag = StopFlag::new();
    let r = PretrainRequest { control: control(Some(1), &flag, false), ..req.clone() };
    assert!(pipeline::pretrain(&r, &mut StopAt { at: 5, seen: 0, flag }).is_err());
    let staging = tmp.path().join(".run.partial");
    let newest = staging.join("checkpoints/step-0000000005/model.bpk");
    let b = std::fs::read(&newest).unwrap();
    std::fs::write(&newest, &b[..b.len() / 2]).unwrap();
    let text = ok(&["inspect", req.out.to_str().unwrap()]);
    assert!(text.contains("step 5 DAMAGED") && text.contains("truncated"), "{text}");
    assert!(text.contains("last checkpoint at step 4"), "{text}");
    // resuming from step 4 still gives the uninterrupted result
    let r = PretrainRequest { control: control(Some(1), &StopFlag::new(), true), ..req.clone() };
    pipeline::pretrain(&r, &mut strata_train::progress::Silent).unwrap();
    let whole = PretrainRequest { out: tmp.path().join("whole"), ..req.clone() };
    pipeline::pretrain(&whole, &mut strata_train::progress::Silent).unwrap();
    assert_eq!(bytes(&req.out, "model.safetensors"), bytes(&whole.out, "model.safetensors"));
}

#[test]
fn a_new_run_will_not_discard_a_resumable_one_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tiny_mnist(&tmp.path().join("d"), 64, 10);
    let req = pretrain_req(&d, "ae", tmp.path().join("run"), 2);
    let flag = StopFlag::new();
    let r = PretrainRequest { control: control(None, &flag, false), ..req.clone() };
    assert!(pipeline::pretrain(&r, &mut StopAt { at: 3, seen: 0, flag }).is_err());
    let e = format!("{:#}", pipeline::pretrain(&req, &mut strata_train::progress::Silent).unwrap_err());
    assert!(e.contains("resumable") && e.contains("--resume") && e.contains("--force"), "{e}");
    assert!(tmp.path().join(".run.partial/checkpoints").exists(), "the interrupted run was touched");
    // a complete run cannot be resumed
    let r = PretrainRequest { control: control(None, &StopFlag::new(), true), ..req.clone() };
    pipeline::pretrain(&r, &mut strata_train::progress::Silent).unwrap();
    let e = fails(&["pretrain", "--resume", req.out.to_str().unwrap()]);
    assert!(e.contains("complete") && e.contains("nothing to resume"), "{e}");
    // resume refuses flags that would change the run
    let e = fails(&["pretrain", "--resume", req.out.to_str().unwrap(), "--epochs", "5"]);
    assert!(e.contains("--epochs") && e.contains("job.json"), "{e}");
}

/// `kill -9` at pseudo-random moments, over and over: after every kill the run directory is
/// either resumable or clearly incomplete (never a complete-looking run), and resuming each
/// time until the run completes gives the bytes of a run that was never killed.
#[test]
fn sigkill_at_random_moments_leaves_runs_resumable_or_marked_incomplete() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tiny_mnist(&tmp.path().join("d"), 256, 10);
    let d_s = d.to_str().unwrap();
    let args = |out: &str| -> Vec<String> {
        ["pretrain", "--method", "ae", "--data", d_s, "--epochs", "12", "--batch", "32", "--seed", "1"]
            .iter()
            .map(|s| s.to_string())
            .chain(["--checkpoint-every", "3", "--out", out, "-q"].iter().map(|s| s.to_string()))
            .collect()
    };
    let whole = tmp.path().join("whole");
    let w: Vec<String> = args(whole.to_str().unwrap());
    let timer = std::time::Instant::now();
    ok(&w.iter().map(String::as_str).collect::<Vec<_>>());
    // kill within the first quarter of the time a whole run takes on this machine, so the kills
    // land mid-run however fast or slow training is
    let span_ms = (timer.elapsed().as_millis() as u64 / 4).max(20);

    let run = tmp.path().join("killed");
    let run_s = run.to_str().unwrap();
    let mut seed: u64 = 0x5eed;
    let (mut kills, mut resumable_seen, mut restarts) = (0, 0, 0);
    let started = std::time::Instant::now();
    let mut resume = false;
    while !run.join("manifest.json").exists() {
        let mut cmd = crate::common::strata();
        if resume {
            cmd.args(["pretrain", "--resume", run_s, "-q"]);
        } else {
            cmd.args(args(run_s)).arg("--force");
        }
        let mut child = cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
        // the last rounds run to the end, so the loop is bounded
        let budget_left = kills < 12 && started.elapsed().as_secs() < 60;
        if budget_left {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let delay = (seed >> 33) % span_ms;
            std::thread::sleep(std::time::Duration::from_millis(delay));
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
            kills += 1;
        } else {
            assert!(child.wait().unwrap().success(), "the final round failed");
        }
        if run.join("manifest.json").exists() {
            break;
        }
        let status: serde_json::Value = serde_json::from_str(&ok(&["inspect", run_s, "--json"])).unwrap();
        let s = status["status"].as_str().unwrap_or("?").to_string();
        assert!(
            s == "resumable" || s == "incomplete",
            "after a kill the run must be resumable or incomplete: {status}"
        );
        resume = s == "resumable";
        if resume {
            resumable_seen += 1;
        } else {
            restarts += 1;
        }
    }
    eprintln!("kill loop: {kills} kills, {resumable_seen} resumable, {restarts} restarts");
    assert!(
        kills >= 3 && resumable_seen >= 1,
        "the loop did not exercise resume ({kills} kills, {resumable_seen} resumable)"
    );
    assert_eq!(bytes(&run, "model.safetensors"), bytes(&whole, "model.safetensors"));
    assert_eq!(figures(&run), figures(&whole));
    assert!(crate::common::partials(tmp.path()).is_empty());
}

/// A real Ctrl-C (SIGINT) to a running `strata pretrain`: it finishes its step, writes a
/// checkpoint, says how to resume and exits with 130; `--resume` then completes the run.
#[test]
fn ctrl_c_checkpoints_and_exits_130() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tiny_mnist(&tmp.path().join("d"), 256, 10);
    let run = tmp.path().join("run");
    let child = crate::common::strata()
        .args(["pretrain", "--method", "ae", "--data", d.to_str().unwrap(), "--epochs", "12", "--batch", "32"])
        .args(["--checkpoint-every", "1000", "--out", run.to_str().unwrap(), "-q"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // signal once training is under way (its first epoch logged), not after a fixed delay:
    // the whole run takes about a second on a fast machine and could end before a timer
    let log = tmp.path().join(".run.partial").join("metrics.jsonl");
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(&log).is_ok_and(|t| t.lines().count() >= 1) {
        assert!(started.elapsed().as_secs() < 60, "the run never logged its first epoch");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // SAFETY: sending a signal to our own child process
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("Continue with: strata pretrain --resume"), "{stderr}");
    assert!(!run.exists());
    let status: serde_json::Value = serde_json::from_str(&ok(&["inspect", run.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(status["status"], "resumable", "{status}");
    ok(&["pretrain", "--resume", run.to_str().unwrap(), "-q"]);
    assert_eq!(crate::common::manifest(&run)["metrics"]["steps"], 12 * 8);
}

/// `strata runs` on a folder made here: a complete run, a run stopped after its first
/// checkpoint, a damaged manifest and a folder of other files, each shown for what it is.
#[test]
fn runs_lists_each_run_with_its_status() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tiny_mnist(&tmp.path().join("d"), 200, 10);
    let root = tmp.path().join("runs");
    pipeline::pretrain(&pretrain_req(&d, "ae", root.join("done"), 1), &mut strata_train::progress::Silent).unwrap();
    let flag = StopFlag::new();
    let stopped =
        PretrainRequest { control: control(Some(2), &flag, false), ..pretrain_req(&d, "ae", root.join("stopped"), 2) };
    assert!(pipeline::pretrain(&stopped, &mut StopAt { at: 3, seen: 0, flag }).is_err());
    std::fs::create_dir_all(root.join("group/damaged")).unwrap();
    std::fs::write(root.join("group/damaged/manifest.json"), "{ not json").unwrap();
    std::fs::create_dir_all(root.join("photos")).unwrap();
    std::fs::write(root.join("photos/readme.txt"), "not a run").unwrap();

    let r = root.to_str().unwrap();
    let rows: serde_json::Value = serde_json::from_str(&ok(&["runs", r, "--json"])).unwrap();
    let status: Vec<(&str, &str)> =
        rows.as_array().unwrap().iter().map(|e| (e["name"].as_str().unwrap(), e["status"].as_str().unwrap())).collect();
    assert_eq!(
        status,
        [("done", "complete"), ("group/damaged", "broken"), ("photos", "foreign"), ("stopped", "resumable")],
        "{rows}"
    );
    let done = &rows[0];
    assert_eq!(done["kind"], "pretrain");
    assert_eq!(done["method"], "ae");
    let loss = manifest(&root.join("done"))["metrics"]["final_loss"].as_f64().unwrap();
    assert_eq!(done["metric"], serde_json::json!({ "name": "final_loss", "value": loss }));
    assert!(rows[1]["reason"].as_str().unwrap().contains("not valid JSON"), "{rows}");
    // the table says the same, one line per entry
    let table = ok(&["runs", r]);
    for (name, word) in status {
        assert!(table.lines().any(|l| l.starts_with(name) && l.contains(word)), "{name} {word}:\n{table}");
    }
    // a path that is not a folder is an error naming it, not a crash
    let e = fails(&["runs", root.join("done/manifest.json").to_str().unwrap()]);
    assert!(e.contains("is not a folder"), "{e}");
}
