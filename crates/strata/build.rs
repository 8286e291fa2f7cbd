//! Stamps `strata --version` with the git revision it was built from and the backends compiled
//! in, so a bug report or a results table says exactly which binary made it.

fn main() {
    let rev = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown revision".into());
    let dirty = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .is_some_and(|o| o.status.success() && !o.stdout.is_empty());
    let mut backends = vec!["cpu (flex)"];
    for (feature, name) in [("NDARRAY", "ndarray"), ("VULKAN", "vulkan"), ("CUDA", "cuda")] {
        if std::env::var_os(format!("CARGO_FEATURE_{feature}")).is_some() {
            backends.push(name);
        }
    }
    let bench = if std::env::var_os("CARGO_FEATURE_BENCH").is_some() { "; bench" } else { "" };
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let dirty = if dirty { "+changes" } else { "" };
    println!("cargo:rustc-env=STRATA_VERSION={version} (git {rev}{dirty}; backends: {}{bench})", backends.join(", "));
    // a new commit or a checkout changes HEAD or the ref it points to
    for path in ["../../.git/HEAD", "../../.git/index"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
