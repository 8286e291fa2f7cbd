//! `strata inspect`: manifest summary and layer table.

use anyhow::Result;
use std::path::PathBuf;
use strata_run::context;
use strata_train::Origin;
use strata_train::run_dir::Unfinished;

/// Flags of `strata inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A run directory.
    pub run: PathBuf,
    /// Print the manifest and layer table as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// What `inspect` says of an unfinished run: running, resumable from a step, or not resumable.
fn unfinished(a: &Args, u: &Unfinished) -> Result<()> {
    if a.json {
        let checkpoints: Vec<serde_json::Value> = u
            .checkpoints
            .iter()
            .map(|c| serde_json::json!({ "step": c.step, "phase": c.phase, "path": c.path, "problem": c.problem }))
            .collect();
        let status = if u.running {
            "running"
        } else if u.resumable_from().is_some() {
            "resumable"
        } else {
            "incomplete"
        };
        println!(
            "{}",
            serde_json::json!({ "status": status, "staging": u.path, "job": u.job, "checkpoints": checkpoints })
        );
        return Ok(());
    }
    println!("run        {} (unfinished: staged in {})", a.run.display(), u.path.display());
    println!("status     {}", u.describe(&a.run));
    if let Some(job) = &u.job {
        println!("command    {}", job.argv.join(" "));
    }
    for c in &u.checkpoints {
        match &c.problem {
            None => println!("checkpoint step {} ({}) {}", c.step, c.phase, c.path.display()),
            Some(p) => println!("checkpoint step {} DAMAGED: {p}", c.step),
        }
    }
    Ok(())
}

/// Runs `strata inspect`.
pub fn run(a: Args) -> Result<()> {
    let complete = a.run.join(strata_train::run_dir::MANIFEST).exists();
    if let Some(u) = Unfinished::find(&a.run) {
        if !complete {
            return unfinished(&a, &u);
        }
        // a complete run and an unfinished replacement (--force) of it: say so, then show the run
        if !a.json {
            println!("note       an unfinished replacement exists: {}", u.describe(&a.run));
        }
    }
    let run = context::open_run(&a.run)?;
    let (_, device) = context::device("cpu")?;
    let table = context::layer_table(&run, &device)?;
    let m = &run.manifest;
    if a.json {
        println!("{}", serde_json::to_string(&serde_json::json!({ "manifest": m, "layers": table }))?);
        return Ok(());
    }
    println!("run        {}", run.path.display());
    println!("kind       {:?}{}", m.kind, m.method.as_ref().map(|s| format!(" ({s})")).unwrap_or_default());
    println!("strata     {} (manifest schema {})", m.strata_version, m.schema_version);
    println!("command    {}", m.command_line.join(" "));
    println!("seed       {}   device {}", m.seed, m.device);
    println!(
        "data       {} ({} images, fingerprint {}…)",
        m.data.spec,
        m.data.images,
        &m.data.fingerprint[..12.min(m.data.fingerprint.len())]
    );
    if let Some(idx) = &m.data.label_indices {
        println!("labels     {} labeled images used (indices in manifest)", idx.len());
    }
    println!("input      {}   backbone {}", m.input, m.arch);
    if let Some(h) = &m.head {
        println!("head       hidden {:?} → {} classes", h.hidden, h.classes);
    }
    if let Some(p) = &m.parent {
        println!(
            "parent     {} (reused {} of {}; weights {}…)",
            p.path,
            p.reused_blocks,
            p.arch,
            &p.weights_sha256[..12.min(p.weights_sha256.len())]
        );
    }
    if let Some(import) = m.config.get("import") {
        println!(
            "imported   from {} (sha256 {}…)",
            import["file"].as_str().unwrap_or("?"),
            &import["sha256"].as_str().unwrap_or("").chars().take(12).collect::<String>()
        );
        if let Some(matched) = import["report"]["matched"].as_object() {
            for (ours, theirs) in matched {
                println!("           {ours} ← {}", theirs.as_str().unwrap_or("?"));
            }
        }
        for r in import["report"]["reinitialised"].as_array().into_iter().flatten() {
            println!("           {} re-initialised (--reinit)", r.as_str().unwrap_or("?"));
        }
    }
    println!(
        "weights    {} ({} bytes, sha256 {}…)",
        m.weights.file,
        m.weights.bytes,
        &m.weights.sha256[..12.min(m.weights.sha256.len())]
    );
    if !m.phases.is_empty() {
        println!(
            "\nphase        steps  trainable  learning rate per backbone block (- frozen)  head lr   loss     eval acc"
        );
        for p in &m.phases {
            let lrs: Vec<String> = if p.block_lr.is_empty() {
                // manifests before per-block rates recorded one rate for the trainable blocks
                (0..m.blocks.len())
                    .map(|i| {
                        if p.trainable_blocks.contains(&i) {
                            lr(p.backbone_lr.unwrap_or(p.head_lr))
                        } else {
                            "-".into()
                        }
                    })
                    .collect()
            } else {
                p.block_lr.iter().map(|l| l.map(lr).unwrap_or_else(|| "-".into())).collect()
            };
            println!(
                "{:<12} {:>5}  {:<9}  {:<44}  {:>7}  {:>7.4}  {}",
                p.name,
                p.steps,
                format!("{:?}", p.trainable_blocks),
                lrs.join(" "),
                lr(p.head_lr),
                p.final_loss,
                p.eval_accuracy.map(|a| format!("{:.2}%", 100.0 * a)).unwrap_or_else(|| "-".into())
            );
        }
    }
    println!("\nblock  spec                  origin                         frozen in");
    for b in &m.blocks {
        let origin = match (b.origin, &m.parent) {
            (Origin::Parent { index }, Some(p)) => format!("block {index} of {}", p.path),
            (Origin::Replaced { index }, _) => format!("re-initialised (shape of parent block {index})"),
            (Origin::Added, _) => "added (fresh)".into(),
            (other, _) => other.name().into(),
        };
        println!(
            "{:>5}  {:<20}  {:<29}  {}",
            b.index,
            b.spec,
            origin,
            if b.frozen_in.is_empty() { "-".into() } else { b.frozen_in.join(", ") }
        );
    }
    println!("\n{:<32} {:<16} {:>10}  status", "parameter", "shape", "values");
    let mut total = 0;
    for l in &table {
        total += l.numel;
        let block_frozen = frozen_at_end(m, &l.name);
        let status = if l.name.ends_with("running_mean") || l.name.ends_with("running_var") {
            "buffer"
        } else if block_frozen {
            "frozen"
        } else {
            "trainable"
        };
        println!("{:<32} {:<16} {:>10}  {}", l.name, format!("{:?}", l.shape), l.numel, status);
    }
    println!("{:<32} {:<16} {:>10}", "total", "", total);
    println!("\nmetrics    {}", m.metrics);
    Ok(())
}

fn lr(v: f64) -> String {
    format!("{v:.1e}")
}

/// Whether the backbone block owning `name` was frozen in the run's last phase.
fn frozen_at_end(m: &strata_train::Manifest, name: &str) -> bool {
    let Some(rest) = name.strip_prefix("backbone.") else { return false };
    let Some(idx) = rest.split('.').next().and_then(|s| s.parse::<usize>().ok()) else { return false };
    match m.phases.last() {
        Some(last) => !last.trainable_blocks.contains(&idx),
        None => false,
    }
}
