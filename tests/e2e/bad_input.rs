//! The bad-input corpus: broken files, hostile folders, impossible settings. Every case
//! runs the real `strata` binary and checks three things: the error names the problem (the
//! file, the key or the flag, and what to do), strata fails cleanly (status 1 or 2, never a
//! panic or an abort), and no earlier run is touched (each bad command runs once into a
//! fresh directory and once over a complete earlier run with `--force`, whose files must
//! stay byte for byte the same).

use crate::common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A memory cap for commands whose input claims more than the machine should allocate:
/// an allocation of the claim fails (and aborts strata) instead of quietly succeeding.
const MEMORY_CAP: [&str; 3] = ["prlimit", "--as=4000000000", "--"];

/// Kills a command that hangs (a loop it does not notice, a FIFO it opens) with status 124.
const HANG_GUARD: [&str; 2] = ["timeout", "60"];

fn assert_no_run(out: &Path) {
    assert!(!out.exists(), "{} should not exist", out.display());
    assert!(partials(out.parent().unwrap()).is_empty(), "staging directory left behind");
}

const PRETRAIN_SMALL: [&str; 8] = ["pretrain", "--method", "ae", "--arch", "conv4-pool,dense8", "--epochs", "1", "-q"];

fn small_pretrain_args<'a>(data: &'a Path, out: &'a Path) -> Vec<&'a str> {
    PRETRAIN_SMALL.iter().copied().chain(["--data", data.to_str().unwrap(), "--out", out.to_str().unwrap()]).collect()
}

/// A tiny MNIST folder and a 2-block pretrained run on it.
fn small_pretrain(dir: &Path) -> (PathBuf, PathBuf) {
    let d = tiny_mnist(&dir.join("m"), 40, 10);
    let pre = dir.join("pre");
    ok(&small_pretrain_args(&d, &pre));
    (d, pre)
}

/// A complete run made before the bad command, and the bytes of every file in it.
struct Earlier {
    data: PathBuf,
    run: PathBuf,
    files: BTreeMap<PathBuf, Vec<u8>>,
}

impl Earlier {
    /// Pretrains a tiny run at `dir/earlier` on a tiny MNIST folder at `dir/m`.
    fn new(dir: &Path) -> Earlier {
        let (data, run) = (tiny_mnist(&dir.join("m"), 40, 10), dir.join("earlier"));
        ok(&small_pretrain_args(&data, &run));
        let files = snapshot(&run);
        assert!(files.contains_key(Path::new("manifest.json")) && files.contains_key(Path::new("model.safetensors")));
        Earlier { data, run, files }
    }

    fn data(&self) -> &str {
        self.data.to_str().unwrap()
    }

    fn assert_untouched(&self) {
        let now = snapshot(&self.run);
        assert_eq!(
            now.keys().collect::<Vec<_>>(),
            self.files.keys().collect::<Vec<_>>(),
            "earlier run's files changed"
        );
        for (name, bytes) in &self.files {
            assert!(now[name] == *bytes, "earlier run's {} was modified", name.display());
        }
    }
}

/// Runs the bad command `args` (given without `--out`) behind `wrapper` twice: into a new
/// run directory beside the earlier run, then over the earlier run with `--force`. Both
/// must fail cleanly with the same message, leave no new run and no staging directory,
/// and leave the earlier run as it was. Returns the message.
fn refused_with(earlier: &Earlier, wrapper: &[&str], args: &[&str]) -> String {
    refused_by(earlier, &|a| run_wrapped(wrapper, a), args)
}

/// [`refused_with`], with `runner` running strata on the arguments it is given.
fn refused_by(earlier: &Earlier, runner: &dyn Fn(&[&str]) -> Output, args: &[&str]) -> String {
    let parent = earlier.run.parent().unwrap();
    let fresh = parent.join("new-run");
    let (fresh_s, earlier_s) = (fresh.to_str().unwrap(), earlier.run.to_str().unwrap());
    let mut a = args.to_vec();
    a.extend(["--out", fresh_s]);
    let e1 = assert_clean_failure(&runner(&a), &a);
    assert_no_run(&fresh);
    earlier.assert_untouched();
    let mut b = args.to_vec();
    b.extend(["--out", earlier_s, "--force"]);
    let e2 = assert_clean_failure(&runner(&b), &b);
    earlier.assert_untouched();
    assert!(partials(parent).is_empty(), "staging directory left behind");
    assert_eq!(e1.replace(fresh_s, "OUT"), e2.replace(earlier_s, "OUT"), "the two refusals differ");
    e1
}

fn refused(earlier: &Earlier, args: &[&str]) -> String {
    refused_with(earlier, &[], args)
}

/// `pretrain` on `data` with the small settings (plus `extra`).
fn pretrain<'a>(data: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = PRETRAIN_SMALL.to_vec();
    a.extend(["--data", data]);
    a.extend(extra);
    a
}

/// `finetune --from scratch` on `train` with tiny settings.
fn finetune_scratch(train: &str) -> Vec<&str> {
    vec![
        "finetune",
        "--from",
        "scratch",
        "--arch",
        "conv4-pool,dense8",
        "--frozen-steps",
        "1",
        "--unfreeze-steps",
        "1",
        "--train",
        train,
        "-q",
    ]
}

fn png_folder(root: &Path, classes: &[(&str, usize, u32)]) {
    for (class, n, size) in classes {
        let dir = root.join(class);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..*n {
            let img =
                image::GrayImage::from_fn(*size, *size, |x, y| image::Luma([((x + y + i as u32) * 7 % 255) as u8]));
            img.save(dir.join(format!("{i}.png"))).unwrap();
        }
    }
}

/// An IDX images header (magic, dims) followed by `body`.
fn idx_bytes(magic: u32, dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut b = magic.to_be_bytes().to_vec();
    for d in dims {
        b.extend(d.to_be_bytes());
    }
    b.extend_from_slice(body);
    b
}

/// `bytes` gzipped (by the system's gzip: the test crate does not depend on flate2).
fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    out.stdout
}

// ---- paths and IDX files -------------------------------------------------------------

#[test]
fn missing_path() {
    let tmp = tempfile::tempdir().unwrap();
    let earlier = Earlier::new(tmp.path());
    let e = refused(&earlier, &pretrain("/nonexistent/strata-data", &[]));
    assert!(
        e.contains("/nonexistent/strata-data") && e.contains("no such file") && e.contains("check the path"),
        "{e}"
    );
}

#[test]
fn idx_bad_magic() {
    let tmp = tempfile::tempdir().unwrap();
    let earlier = Earlier::new(tmp.path());
    let f = tmp.path().join("train-images-idx3-ubyte");
    std::fs::write(&f, [0u8, 0, 9, 9, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3, 4]).unwrap();
    let e = refused(&earlier, &pretrain(f.to_str().unwrap(), &[]));
    assert!(e.contains("train-images-idx3-ubyte") && e.contains("bad magic number 0x00000909"), "{e}");
    assert!(e.contains("signed byte values") && e.contains("unsigned bytes"), "{e}");
}

#[test]
fn idx_truncated() {
    let tmp = tempfile::tempdir().unwrap();
    let earlier = Earlier::new(tmp.path());
    let d = tiny_mnist(&tmp.path().join("m2"), 20, 5);
    let f = d.join("train-images-idx3-ubyte");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() - 100]).unwrap();
    let e = refused(&earlier, &pretrain(d.to_str().unwrap(), &[]));
    assert!(e.contains("train-images-idx3-ubyte") && e.contains("truncated") && e.contains("copy it again"), "{e}");
    assert!(e.contains(&format!("expected {} bytes", 20 * 784)) && e.contains(&format!("found {}", 20 * 784 - 100)));
}

#[test]
fn idx_truncated_header() {
    let tmp = tempfile::tempdir().unwrap();
    let earlier = Earlier::new(tmp.path());
    let f = tmp.path().join("train-images-idx3-ubyte");
    // magic and one and a half of the three dimensions
    std::fs::write(&f, idx_bytes(0x0803, &[5], &[0, 0])).unwrap();
    let e = refused(&earlier, &pretrain(f.to_str().unwrap(), &[]));
    assert!(e.contains("train-images-idx3-ubyte") && e.contains("truncated inside its 16-byte header"), "{e}");
    assert!(e.contains("after 10 bytes") && e.contains("copy it again"), "{e}");
}

#[test]
fn idx_oversized_header() {
    let tmp = tempfile::tempdir().unwrap();
    let earlier = Earlier::new(tmp.path());
    let f = tmp.path().join("train-images-idx3-ubyte");
    let fs = f.to_str().unwrap();
    // more dimensions than an images file has
    std::fs::write(&f, idx_bytes(0x0804, &[1, 28, 28, 3], &[0; 28 * 28 * 3])).unwrap();
    let e = refused(&earlier, &pretrain(fs, &[]));
    assert!(e.contains("train-images-idx3-ubyte") && e.contains("declares 4 dimension(s)"), "{e}");
    assert!(e.contains("has 3 (count x height x width)"), "{e}");
    // dimensions whose product is absurd: 2^32-1 images of 100000 x 100000
    std::fs::write(&f, idx_bytes(0x0803, &[u32::MAX, 100_000, 100_000], &[0; 64])).unwrap();
    let e = refused_with(&earlier, &MEMORY_CAP, &pretrain(fs, &[]));
    assert!(e.contains("train-images-idx3-ubyte") && e.contains("100000x100000 exceed the 8192x8192 limit"), "{e}");
}

/// IDX counts are 32-bit, so a header cannot claim 10^12 images; it can claim 2^32 - 1
/// of them (3.4 * 10^12 bytes of 28 x 28 pixels), or 10^7 (7.8 GB, which an unbounded
/// reader could allocate on this machine but not under the 4 GB cap).
#[test]
fn idx_header_claiming_billions_of_images_allocates_nothing_for_them() {
    let tmp = tempfile::tempdir().unwrap();
    let earlier = Earlier::new(tmp.path());
    for (n, gz) in [(u32::MAX, false), (10_000_000, false), (10_000_000, true), (u32::MAX, true)] {
        let d = tmp.path().join(format!("claim-{n}-{gz}"));
        std::fs::create_dir_all(&d).unwrap();
        let ext = if gz { ".gz" } else { "" };
        let images = idx_bytes(0x0803, &[n, 28, 28], &[7; 784]);
        let labels = idx_bytes(0x0801, &[n], &[1]);
        let (images, labels) = if gz { (gzip(&images), gzip(&labels)) } else { (images, labels) };
        std::fs::write(d.join(format!("train-images-idx3-ubyte{ext}")), images).unwrap();
        std::fs::write(d.join(format!("train-labels-idx1-ubyte{ext}")), labels).unwrap();
        let t = std::time::Instant::now();
        let e = refused_with(&earlier, &MEMORY_CAP, &pretrain(d.to_str().unwrap(), &[]));
        assert!(t.elapsed().as_secs() < 20, "took {:?}", t.elapsed());
        let claimed = n as u64 * 784;
        assert!(e.contains("train-images-idx3-ubyte") && e.contains("truncated"), "{e}");
        assert!(e.contains(&format!("expected {claimed} bytes")) && e.contains("found 784"), "{e}");
        // One real image, and a labels file making the claim.
        let images = idx_bytes(0x0803, &[1, 28, 28], &[7; 784]);
        std::fs::write(d.join(format!("train-images-idx3-ubyte{ext}")), if gz { gzip(&images) } else { images })
            .unwrap();
        let e = refused_with(&earlier, &MEMORY_CAP, &finetune_scratch(d.to_str().unwrap()));
        assert!(e.contains("train-labels-idx1-ubyte") && e.contains(&format!("expected {n} bytes")), "{e}");
        assert!(e.contains("found 1;"), "{e}");
    }
}

#[test]
fn idx_gzip_stream_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let earlier = Earlier::new(tmp.path());
    let d = tmp.path().join("gz");
    std::fs::create_dir_all(&d).unwrap();
    let mut gz = gzip(&idx_bytes(0x0803, &[2, 28, 28], &[3; 2 * 784]));
    // The first deflate block (after gzip's 10-byte header) gets the reserved block type.
    assert_eq!(gz[3], 0, "no optional gzip header fields");
    gz[10] |= 0b110;
    std::fs::write(d.join("train-images-idx3-ubyte.gz"), gz).unwrap();
    let e = refused(&earlier, &pretrain(d.to_str().unwrap(), &[]));
    assert!(e.contains("train-images-idx3-ubyte.gz") && e.contains("could not read it"), "{e}");
    assert!(e.contains("damaged") && e.matches("corrupt deflate stream").count() == 1, "said once: {e}");
}

#[test]
fn idx_fifo_is_refused_without_hanging() {
    let tmp = tempfile::tempdir().unwrap();
    let earlier = Earlier::new(tmp.path());
    let f = tmp.path().join("train-images-idx3-ubyte");
    assert!(std::process::Command::new("mkfifo").arg(&f).status().unwrap().success());
    let e = refused_with(&earlier, &HANG_GUARD, &pretrain(f.to_str().unwrap(), &[]));
    assert!(e.contains("train-images-idx3-ubyte") && e.contains("not a regular file"), "{e}");
}

#[test]
fn idx_count_mismatch() {
    let tmp = tempfile::tempdir().unwrap();
    let earlier = Earlier::new(tmp.path());
    let d = tiny_mnist(&tmp.path().join("m2"), 20, 5);
    strata_data::write_idx_labels(d.join("train-labels-idx1-ubyte"), &[1, 2, 3]).unwrap();
    let e = refused(&earlier, &finetune_scratch(d.to_str().unwrap()));
    assert!(e.contains("train-labels-idx1-ubyte") && e.contains("20 images") && e.contains("3 labels"), "{e}");
    assert!(e.contains("same split and data set"), "{e}");
}

#[test]
fn idx_label_out_of_range() {
    let tmp = tempfile::tempdir().unwrap();
    let earlier = Earlier::new(tmp.path());
    let d = tiny_mnist(&tmp.path().join("m2"), 40, 10);
    let lp = d.join("train-labels-idx1-ubyte");
    let mut labels = strata_data::read_idx_labels(&lp).unwrap();
    labels[7] = 255;
    strata_data::write_idx_labels(&lp, &labels).unwrap();
    let e = refused(&earlier, &finetune_scratch(d.to_str().unwrap()));
    assert!(e.contains("train-labels-idx1-ubyte") && e.contains("record 7 has label 255"), "{e}");
    assert!(e.contains("256 classes") && e.contains("renumber its classes from 0"), "{e}");
}

#[test]
fn cifar_label_out_of_range_and_truncated() {
    let tmp = tempfile::tempdir().unwrap();
    let earlier = Earlier::new(tmp.path());
    let f = tmp.path().join("data_batch_1.bin");
    let fs = f.to_str().unwrap();
    strata_data::write_cifar10_batch(&f, &[1, 12], &[9; 2 * 3072]).unwrap();
    let e = refused(&earlier, &finetune_scratch(fs));
    assert!(e.contains("data_batch_1.bin") && e.contains("record 1 has label 12") && e.contains("10 classes"), "{e}");
    let mut bytes = std::fs::read(&f).unwrap();
    bytes.truncate(3073 + 1000);
    std::fs::write(&f, bytes).unwrap();
    let e = refused(&earlier, &pretrain(fs, &[]));
    assert!(e.contains("data_batch_1.bin") && e.contains("truncated") && e.contains("expected 6146 bytes"), "{e}");
}

// ---- image folders -------------------------------------------------------------------

#[test]
fn corrupt_image_file() {
    let tmp = tempfile::tempdir().unwrap();
    let earlier = Earlier::new(tmp.path());
    let root = tmp.path().join("imgs");
    png_folder(&root, &[("a", 3, 8), ("b", 3, 8)]);
    std::fs::write(root.join("a/broken.png"), b"this is not a png, it is a text file\n").unwrap();
    let e = refused(&earlier, &pretrain(root.to_str().unwrap(), &[]));
    assert!(e.contains("broken.png") && e.contains("cannot decode image") && e.contains("remove or replace"), "{e}");
}

#[test]
fn zero_byte_png() {
    let tmp = tempfile::tempdir().unwrap();
    let earlier = Earlier::new(tmp.path());
    let root = tmp.path().join("imgs");
    png_folder(&root, &[("a", 3, 8), ("b", 3, 8)]);
    std::fs::write(root.join("b/empty.png"), b"").unwrap();
    let e = refused(&earlier, &pretrain(root.to_str().unwrap(), &[]));
    assert!(e.contains("empty.png") && e.contains("empty (0 bytes)") && e.contains("remove or replace"), "{e}");
}

#[test]
fn mixed_image_sizes() {
    let tmp = tempfile::tempdir().unwrap();
    let earlier = Earlier::new(tmp.path());
    let root = tmp.path().join("imgs");
    png_folder(&root, &[("a", 2, 8), ("b", 2, 10)]);
    let e = refused(&earlier, &pretrain(root.to_str().unwrap(), &[]));
    assert!(e.contains("b/0.png") && e.contains("1x10x10") && e.contains("1x8x8") && e.contains("--resize"), "{e}");
}

#[test]
fn one_pixel_image_among_28x28() {
    let tmp = tempfile::tempdir().unwrap();
    let earlier = Earlier::new(tmp.path());
    let root = tmp.path().join("imgs");
    png_folder(&root, &[("a", 3, 28), ("b", 3, 28)]);
    image::GrayImage::from_pixel(1, 1, image::Luma([9])).save(root.join("b/tiny.png")).unwrap();
    let e = refused(&earlier, &pretrain(root.to_str().unwrap(), &[]));
    assert!(e.contains("tiny.png") && e.contains("1x1x1") && e.contains("1x28x28"), "{e}");
    assert!(e.contains("all images must match") && e.contains("--resize HxW"), "{e}");
}

/// Appends a PNG chunk: length, type, data, CRC of type and data.
fn png_chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    png.extend((data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    let mut crc = 0xffff_ffffu32;
    for &b in &body {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    png.extend(&body);
    png.extend((!crc).to_be_bytes());
}

#[test]
fn png_header_claiming_20000x20000() {
    let tmp = tempfile::tempdir().unwrap();
    let earlier = Earlier::new(tmp.path());
    let root = tmp.path().join("imgs");
    png_folder(&root, &[("a", 3, 8), ("b", 3, 8)]);
    // A valid signature and IHDR (8-bit RGBA) claiming 20000 x 20000 (1.6 GB decoded),
    // then garbage where the image data should be.
    let mut png = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    let mut ihdr = 20_000u32.to_be_bytes().to_vec();
    ihdr.extend(20_000u32.to_be_bytes());
    ihdr.extend([8, 6, 0, 0, 0]);
    png_chunk(&mut png, b"IHDR", &ihdr);
    png.extend(b"garbage, then the file just ends");
    std::fs::write(root.join("a/huge.png"), &png).unwrap();
    let e = refused_with(&earlier, &MEMORY_CAP, &pretrain(root.to_str().unwrap(), &[]));
    assert!(e.contains("huge.png") && e.contains("20000x20000") && e.contains("8192x8192 limit"), "{e}");
    assert!(e.contains("shrink it or remove it"), "{e}");
}

#[test]
fn symlink_loops_in_an_image_folder() {
    use std::os::unix::fs::symlink;
    let tmp = tempfile::tempdir().unwrap();
    let earlier = Earlier::new(tmp.path());
    let root = tmp.path().join("imgs");
    let rs = root.to_str().unwrap();
    png_folder(&root, &[("a", 3, 8), ("b", 3, 8)]);
    // Links named like images that point at each other: named, never followed forever.
    symlink(root.join("a/y.png"), root.join("a/x.png")).unwrap();
    symlink(root.join("a/x.png"), root.join("a/y.png")).unwrap();
    let e = refused_with(&earlier, &HANG_GUARD, &pretrain(rs, &[]));
    assert!(e.contains("a/x.png") || e.contains("a/y.png"), "{e}");
    assert!(e.contains("symbolic link cannot be followed: Too many levels of symbolic links"), "{e}");
    assert!(e.contains("remove it or fix its target") && e.matches("Too many").count() == 1, "{e}");
    // The same loop under names that are not images is ignored, like any other file.
    std::fs::rename(root.join("a/x.png"), root.join("a/x")).unwrap();
    std::fs::rename(root.join("a/y.png"), root.join("a/y")).unwrap();
    let out = tmp.path().join("loop-ignored");
    ok(&pretrain(rs, &["--out", out.to_str().unwrap()]));
    assert!(out.join("manifest.json").is_file());
    // A folder link to its own parent (and one to the folder itself) would loop forever.
    for (link, target) in [("b/up", root.clone()), ("b/me", root.join("b"))] {
        symlink(&target, root.join(link)).unwrap();
        let e = refused_with(&earlier, &HANG_GUARD, &pretrain(rs, &[]));
        assert!(e.contains(&format!("imgs/{link}")) && e.contains("would loop forever"), "{e}");
        assert!(e.contains("remove the link"), "{e}");
        std::fs::remove_file(root.join(link)).unwrap();
    }
}

#[test]
fn unreadable_file_and_folder() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    // Root reads anything whatever its mode: run strata as nobody then, from a copy of the
    // binary in a temporary folder under /tmp that nobody can reach (the checkout may not
    // be), with the data in 0755 folders and a 0777 folder for runs.
    let root_user = running_as_root();
    let tmp = if root_user { tempfile::tempdir_in("/tmp").unwrap() } else { tempfile::tempdir().unwrap() };
    let earlier = Earlier::new(tmp.path());
    mode(tmp.path(), 0o777);
    let bin = tmp.path().join("strata");
    std::fs::copy(env!("CARGO_BIN_EXE_strata"), &bin).unwrap();
    mode(&bin, 0o755);
    let as_nobody = |args: &[&str]| -> Output {
        let mut cmd = if root_user {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        cmd.args(args).output().expect("spawn strata")
    };
    let images = tmp.path().join("imgs");
    let is = images.to_str().unwrap();
    png_folder(&images, &[("a", 3, 8), ("b", 3, 8)]);
    for d in [&images, &images.join("a"), &images.join("b")] {
        mode(d, 0o755);
    }
    // Check the test itself: as that user the data is readable and a run can be made.
    let out = tmp.path().join("readable");
    let mut args = pretrain(is, &["--out", out.to_str().unwrap()]);
    let o = as_nobody(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    mode(&images.join("b/1.png"), 0o000);
    let e = refused_by(&earlier, &as_nobody, &pretrain(is, &[]));
    assert!(e.contains("b/1.png") && e.contains("could not read it") && e.contains("ermission denied"), "{e}");
    assert!(e.contains("check that it is readable") && e.matches("ermission denied").count() == 1, "{e}");
    mode(&images.join("b/1.png"), 0o644);

    mode(&images.join("a"), 0o000);
    let e = refused_by(&earlier, &as_nobody, &pretrain(is, &[]));
    assert!(e.contains("imgs/a") && e.contains("ermission denied"), "{e}");
    mode(&images.join("a"), 0o755);
    args.push("--force");
    let o = as_nobody(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Names that are not UTF-8 are read (such an image is ordinary data), and named lossily
/// (U+FFFD for each bad byte) when something is wrong with one.
#[test]
fn non_utf8_file_names() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let earlier = Earlier::new(tmp.path());
    let root = tmp.path().join("imgs");
    png_folder(&root, &[("a", 3, 8), ("b", 3, 8)]);
    let odd = root.join("a").join(OsStr::from_bytes(b"caf\xe9-\xff.png"));
    std::fs::copy(root.join("a/0.png"), &odd).unwrap();
    let out = tmp.path().join("odd-names");
    ok(&pretrain(root.to_str().unwrap(), &["--out", out.to_str().unwrap()]));
    assert_eq!(manifest(&out)["data"]["images"], 7, "{}", manifest(&out)["data"]);

    std::fs::write(&odd, b"not an image").unwrap();
    let e = refused(&earlier, &pretrain(root.to_str().unwrap(), &[]));
    assert!(e.contains("a/caf\u{fffd}-\u{fffd}.png") && e.contains("cannot decode image"), "{e}");
}

#[test]
fn duplicate_class_names_after_case_folding() {
    let tmp = tempfile::tempdir().unwrap();
    let earlier = Earlier::new(tmp.path());
    let root = tmp.path().join("imgs");
    png_folder(&root, &[("Cat", 3, 8), ("cat", 3, 8), ("dog", 3, 8)]);
    let e = refused(&earlier, &finetune_scratch(root.to_str().unwrap()));
    assert!(e.contains("imgs/Cat") && e.contains("imgs/cat") && e.contains("differ only in case"), "{e}");
    assert!(e.contains("rename one"), "{e}");
}

#[test]
fn empty_class_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let earlier = Earlier::new(tmp.path());
    let root = tmp.path().join("imgs");
    png_folder(&root, &[("a", 3, 8), ("b", 3, 8)]);
    std::fs::create_dir_all(root.join("c")).unwrap();
    let e = refused(&earlier, &finetune_scratch(root.to_str().unwrap()));
    assert!(e.contains("imgs/c") && e.contains("class folder holds no images"), "{e}");
}

#[test]
fn train_and_test_classes_differ() {
    let tmp = tempfile::tempdir().unwrap();
    let earlier = Earlier::new(tmp.path());
    let train = tmp.path().join("train");
    let test = tmp.path().join("test");
    png_folder(&train, &[("cat", 3, 8), ("dog", 3, 8)]);
    png_folder(&test, &[("cat", 2, 8), ("cow", 2, 8)]);
    let mut args = finetune_scratch(train.to_str().unwrap());
    args.extend(["--test", test.to_str().unwrap()]);
    let e = refused(&earlier, &args);
    assert!(e.contains("dog") && e.contains("cow") && e.contains("same class names"), "{e}");
}

// ---- runs and settings ---------------------------------------------------------------

#[test]
fn more_labels_than_exist() {
    let tmp = tempfile::tempdir().unwrap();
    let earlier = Earlier::new(tmp.path());
    let mut args = finetune_scratch(earlier.data());
    args.extend(["--labels-per-class", "40"]);
    let e = refused(&earlier, &args);
    assert!(e.contains("--labels-per-class") && e.contains("40"), "{e}");
}

#[test]
fn reuse_deeper_than_backbone() {
    let tmp = tempfile::tempdir().unwrap();
    let earlier = Earlier::new(tmp.path());
    let from = earlier.run.to_str().unwrap();
    let e = refused(&earlier, &["finetune", "--from", from, "--train", earlier.data(), "--reuse", "5", "-q"]);
    assert!(e.contains("--reuse 5") && e.contains("2 block"), "{e}");
}

#[test]
fn existing_run_needs_force_and_is_left_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, pre) = small_pretrain(tmp.path());
    let args = small_pretrain_args(&d, &pre);
    let before = snapshot(&pre);
    let e = assert_clean_failure(&run(&args), &args);
    assert!(e.contains("already exists") && e.contains("--force"), "{e}");
    assert!(snapshot(&pre) == before, "earlier run untouched");
    let mut forced = args.to_vec();
    forced.push("--force");
    ok(&forced);
    assert!(pre.join("model.safetensors").is_file());
    assert!(partials(tmp.path()).is_empty());
}

#[test]
fn bad_flags_name_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let earlier = Earlier::new(tmp.path());
    // the flag, the value as strata read it, and what to use instead
    for (extra, needles) in [
        (["--lr", "-1"], ["--lr` = -1", "use a positive learning rate"]),
        (["--lr", "1e9"], ["--lr` = 1000000000", "use a positive learning rate below 10"]),
        (["--lr", "NaN"], ["--lr` = NaN", "use a positive learning rate"]),
        (["--batch", "0"], ["--batch` = 0", "use a batch size between 1 and 65536"]),
        (["--batch", "1000000000"], ["--batch` = 1000000000", "use a batch size between 1 and 65536"]),
        (["--noise", "1.5"], ["--noise", "1.5"]),
        (["--epochs", "0"], ["--epochs", "0"]),
        (["--arch", "conv32-pool,wat"], ["conv32-pool,wat", "`wat` must start with `conv` or `dense`"]),
        (["--device", "tpu"], ["tpu", "cpu"]),
        (["--device", "cuda"], ["cuda", "--features cuda"]),
    ] {
        let e = refused(&earlier, &pretrain(earlier.data(), &extra));
        for n in needles {
            assert!(e.contains(n), "{extra:?}: `{n}` not in {e}");
        }
    }
}

#[test]
fn config_file_with_unknown_key_or_wrong_type() {
    let tmp = tempfile::tempdir().unwrap();
    let earlier = Earlier::new(tmp.path());
    let cfg = tmp.path().join("settings.toml");
    let cs = cfg.to_str().unwrap();
    for (text, needles) in [
        ("[pretrain]\nepoch = 3\n", vec!["[pretrain] unknown key `epoch`", "did you mean `epochs`"]),
        ("[pretrain]\nlearning-rate = 0.1\n", vec!["unknown key `learning-rate`", "strata pretrain --help"]),
        ("[pretrain]\nepochs = \"three\"\n", vec!["[pretrain] epochs = \"three\"", "invalid value 'three'"]),
        ("[pretrain]\nlr = true\n", vec!["lr = true", "--lr takes a value, not true/false", "lr = 0.001"]),
        ("[pretrain]\nforce = 1\n", vec!["force = 1", "is a switch", "force = true"]),
        ("[pretrain]\nbatch = [1, 2]\n", vec!["batch = [1, 2]", "invalid value '1,2'"]),
        ("[pretraining]\nepochs = 1\n", vec!["unknown table [pretraining]", "named after commands"]),
        ("[pretrain\nepochs = 1\n", vec!["not valid TOML"]),
    ] {
        std::fs::write(&cfg, text).unwrap();
        let mut args = pretrain(earlier.data(), &[]);
        args.extend(["--config", cs]);
        let e = refused(&earlier, &args);
        assert!(e.contains(cs), "{text}: {e}");
        for n in needles {
            assert!(e.contains(n), "{text}: `{n}` not in {e}");
        }
    }
}

#[test]
fn tampered_weights_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, pre) = small_pretrain(tmp.path());
    let w = pre.join("model.safetensors");
    let bytes = std::fs::read(&w).unwrap();
    std::fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
    let before = snapshot(&pre);
    let out = tmp.path().join("ft");
    let args = [
        "finetune",
        "--from",
        pre.to_str().unwrap(),
        "--train",
        d.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
    ];
    let e = assert_clean_failure(&run(&args), &args);
    assert!(e.contains("model.safetensors") && e.contains("checksum"), "{e}");
    assert_no_run(&out);
    assert!(snapshot(&pre) == before, "the parent run was modified");
}

/// Found by the manifest_config fuzz target: a standard deviation too large for f32 in a
/// run's manifest was read as infinity (every input normalised to zero) and written back
/// as `null` into the manifest of any run reusing it, which then could not be read.
#[test]
fn manifest_statistics_beyond_f32_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let earlier = Earlier::new(tmp.path());
    let parent = tmp.path().join("tampered");
    ok(&small_pretrain_args(&earlier.data, &parent));
    let mut m = manifest(&parent);
    m["normalization"]["std"] = serde_json::json!([f64::from(f32::MAX) * 10.0]);
    std::fs::write(parent.join("manifest.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    let before = snapshot(&parent);
    let e = refused(&earlier, &["finetune", "--from", parent.to_str().unwrap(), "--train", earlier.data(), "-q"]);
    assert!(e.contains("tampered") && e.contains("manifest.json") && e.contains("std[0] = inf"), "{e}");
    let args = ["inspect", parent.to_str().unwrap()];
    let e = assert_clean_failure(&run(&args), &args);
    assert!(e.contains("bad normalisation statistics"), "{e}");
    assert!(snapshot(&parent) == before, "the tampered run was modified");
}

/// A manifest whose statistics cover another number of channels than its input: today
/// `finetune --from` panics in `Normalization::apply_into` (exit 101). The check belongs
/// where a manifest is opened (`RunDir::open` in strata-train): normalization channels
/// must equal `input.channels`.
#[test]
fn manifest_statistics_for_another_channel_count_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let earlier = Earlier::new(tmp.path());
    let parent = tmp.path().join("tampered");
    ok(&small_pretrain_args(&earlier.data, &parent));
    let mut m = manifest(&parent);
    m["normalization"] = serde_json::json!({"mean": [0.1, 0.1], "std": [0.3, 0.3]});
    std::fs::write(parent.join("manifest.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    let e = refused(&earlier, &["finetune", "--from", parent.to_str().unwrap(), "--train", earlier.data(), "-q"]);
    assert!(e.contains("manifest.json") && e.contains("normali"), "{e}");
}
