//! `strata bench`: train-step throughput of the autoencoder and the classifier (REF-CAE by
//! default) on random images, inference, the frozen-feature fine-tuning step, and data
//! throughput (IDX load + normalise, image-folder decode); one JSON line per figure.

use anyhow::Result;
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use std::time::Instant;
use strata_nn::spec::REF_CAE;
use strata_nn::{ArchSpec, Autoencoder, Classifier, HeadSpec, InputShape, try_seeded};
use strata_run::context;
use strata_train::step::{cross_entropy, mse};

/// Flags of `strata bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Backbone blocks.
    #[arg(long, default_value = REF_CAE)]
    pub arch: ArchSpec,
    /// Images per step.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Untimed steps before each timed repeat.
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// Timed steps per repeat.
    #[arg(long, default_value_t = 30)]
    pub steps: usize,
    /// Repeats; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// cpu (flex), ndarray, vulkan[:N] or cuda[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Worker threads of the CPU backend (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Figures to measure: ae_train_step, clf_train_step, inference, frozen_head_step,
    /// idx_load, folder_decode, gemm_shapes (comma-separated; default: all whose data is present).
    #[arg(long, value_delimiter = ',')]
    pub cases: Vec<String>,
    /// IDX folder for `idx_load` (full MNIST: 70 000 images).
    #[arg(long, default_value = "data/mnist")]
    pub idx: String,
    /// Image-folder tree for `folder_decode` (e.g. ../shared/data/mnist5k-png).
    #[arg(long)]
    pub folder: Option<String>,
}

/// Multiply-adds x 2 of one image through `arch` forward (conv k x k with same padding,
/// dense), plus the mirrored decoder when `decoder` (2x2 stride-2 transposed convs) and a
/// `head` of that many classes. A train step is counted as 3x forward, as the PyTorch peer does.
fn forward_flop(arch: &ArchSpec, input: InputShape, decoder: bool, head: Option<usize>) -> Option<f64> {
    use strata_nn::spec::{BlockSpec, FeatureShape};
    let shapes = arch.shapes(input).ok()?;
    let mut prev = FeatureShape::from(input);
    let mut flop = 0.0;
    let mut mirror = 0.0;
    for (b, out) in arch.blocks.iter().zip(&shapes) {
        let (f, m) = match (b, prev) {
            (BlockSpec::Conv { channels, kernel, pool, stride, .. }, FeatureShape::Map(c, h, w)) => {
                // a strided kernel visits every stride-th position only
                let (h, w) = ((h.max(1) - 1) / stride + 1, (w.max(1) - 1) / stride + 1);
                let conv = 2.0 * (c * channels * kernel * kernel * h * w) as f64;
                // the decoder undoes a pooled conv with a 2x2 stride-2 transposed conv
                let up = if *pool { 2.0 * (channels * c * 4 * (h / 2) * (w / 2)) as f64 } else { conv };
                (conv, up)
            }
            (BlockSpec::Dense { units, .. }, p) => {
                let d = 2.0 * (p.numel() * units) as f64;
                (d, d)
            }
            _ => return None,
        };
        flop += f;
        mirror += m;
        prev = *out;
    }
    if decoder {
        flop += mirror;
    }
    if let Some(classes) = head {
        flop += 2.0 * (prev.numel() * classes) as f64;
    }
    Some(flop)
}

/// Images/s of each repeat: `warmup` untimed calls of `step`, then `steps` timed ones.
fn time_steps(a: &Args, mut step: impl FnMut()) -> Vec<f64> {
    (0..a.repeats)
        .map(|_| {
            for _ in 0..a.warmup {
                step();
            }
            let t0 = Instant::now();
            for _ in 0..a.steps {
                step();
            }
            (a.steps * a.batch) as f64 / t0.elapsed().as_secs_f64()
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs `strata bench`.
pub fn run(a: Args) -> Result<()> {
    if a.repeats == 0 || a.steps == 0 || a.batch == 0 {
        anyhow::bail!("--repeats, --steps and --batch must each be at least 1");
    }
    if let Some(n) = a.threads {
        anyhow::ensure!(n >= 1, "--threads must be at least 1");
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(|e| anyhow::anyhow!("--threads {n}: {e}"))?;
    }
    let known = [
        "ae_train_step",
        "ae_train_step_replicas",
        "clf_train_step",
        "inference",
        "frozen_head_step",
        "idx_load",
        "folder_decode",
        "gemm_shapes",
    ];
    if let Some(bad) = a.cases.iter().find(|c| !known.contains(&c.as_str())) {
        anyhow::bail!("--cases: unknown figure `{bad}`; choose from {}", known.join(", "));
    }
    let want = |c: &str| a.cases.is_empty() || a.cases.iter().any(|x| x == c);
    let (choice, device) = context::device(&a.device)?;
    let ad = device.clone().autodiff();
    let input = InputShape { channels: 1, height: 28, width: 28 };
    a.arch.shapes(input)?;
    let threads = rayon::current_num_threads();
    let x = Tensor::<4>::random([a.batch, 1, 28, 28], Distribution::Uniform(0.0, 1.0), &ad);
    let y = Tensor::<1, Int>::from_data(
        TensorData::new((0..a.batch as i64).map(|i| i % 10).collect::<Vec<_>>(), [a.batch]),
        &ad,
    );
    let emit = |name: &str, reps: Vec<f64>, flop_per_img: Option<f64>| {
        let med = median(reps.clone());
        let line = serde_json::json!({
            "bench": name, "impl": "strata", "device": choice.to_string(), "arch": a.arch.to_string(),
            "batch": a.batch, "steps": a.steps, "repeats": a.repeats,
            "img_s_median": med, "img_s_repeats": reps, "threads": threads,
            "flop_per_img": flop_per_img, "achieved_gflop_s": flop_per_img.map(|f| med * f / 1e9),
        });
        println!("{line}");
    };
    let classes = 10;
    let ae_flop = forward_flop(&a.arch, input, true, None).map(|f| 3.0 * f);
    let clf_flop = forward_flop(&a.arch, input, false, Some(classes)).map(|f| 3.0 * f);

    if want("gemm_shapes") {
        gemm_shapes(threads);
    }
    if want("idx_load") {
        idx_load(&a.idx, threads)?;
    }
    if let Some(folder) = a.folder.as_ref().filter(|_| want("folder_decode")) {
        folder_decode(folder, threads)?;
    }
    if !(want("ae_train_step") || want("clf_train_step") || want("inference") || want("frozen_head_step")) {
        return Ok(());
    }

    let mut ae = try_seeded(&ad, 0, || Autoencoder::new(&a.arch, input, &ad))?;
    let mut optim = AdamConfig::new().init();
    if want("ae_train_step") {
        emit(
            "ae_train_step",
            time_steps(&a, || {
                let loss = mse(ae.forward(x.clone()), x.clone());
                let grads = GradientsParams::from_grads(loss.backward(), &ae);
                ae = optim.step(1e-3, ae.clone(), grads);
                // reading the loss forces the step to finish on lazy (GPU) backends
                let _ = loss.into_scalar::<f32>();
            }),
            ae_flop,
        );
    }

    if want("ae_train_step_replicas") {
        // one replica per thread, each on its share of the batch (see strata_train::replicas)
        let replicas = strata_train::replicas::Replicas::new(threads)?;
        let rows: Vec<usize> = (0..a.batch).collect();
        let mut model = try_seeded(&ad, 0, || Autoencoder::new(&a.arch, input, &ad))?;
        let mut optim = AdamConfig::new().init();
        emit(
            "ae_train_step_replicas",
            time_steps(&a, || {
                let (grads, _) = replicas.grads(&model, &rows, |m: &Autoencoder, part: &[usize]| {
                    let xs = x.clone().narrow(0, part[0], part.len());
                    mse(m.forward(xs.clone()), xs)
                });
                model = optim.step(1e-3, model.clone(), grads);
            }),
            ae_flop,
        );
    }

    let head = HeadSpec { hidden: vec![], classes };
    let mut clf = try_seeded(&ad, 0, || Classifier::new(&a.arch, &head, input, &ad))?;
    let mut optim = AdamConfig::new().init();
    if want("clf_train_step") {
        emit(
            "clf_train_step",
            time_steps(&a, || {
                let loss = cross_entropy(clf.forward(x.clone()), y.clone());
                let grads = GradientsParams::from_grads(loss.backward(), &clf);
                clf = optim.step(1e-3, clf.clone(), grads);
                let _ = loss.into_scalar::<f32>();
            }),
            clf_flop,
        );
    }

    if want("frozen_head_step") {
        // the textbook frozen phase with strata's feature cache: backbone outputs computed
        // once, then each step trains the head alone on a batch of cached features
        let plain = clf.clone().valid();
        let cached = plain.features(x.clone().inner());
        let frozen = clf.clone().freeze();
        let mut head_only = Classifier { backbone: frozen.backbone, head: clf.head.clone() };
        let depth = head_only.backbone.len();
        let mut optim = AdamConfig::new().init();
        let head_flop = forward_flop(&a.arch, input, false, Some(classes))
            .zip(forward_flop(&a.arch, input, false, None))
            .map(|(all, backbone)| 3.0 * (all - backbone));
        emit(
            "frozen_head_step",
            time_steps(&a, || {
                let f = strata_nn::Features::Flat(Tensor::from_inner(cached.clone()));
                let loss = cross_entropy(head_only.forward_from(depth, f), y.clone());
                let grads = GradientsParams::from_grads(loss.backward(), &head_only);
                head_only = optim.step(1e-3, head_only.clone(), grads);
                let _ = loss.into_scalar::<f32>();
            }),
            head_flop,
        );
    }

    if want("inference") {
        let model = clf.valid();
        let xi = x.clone().inner();
        emit(
            "inference",
            time_steps(&a, || {
                let _ = model.forward(xi.clone()).argmax(1).into_data();
            }),
            forward_flop(&a.arch, input, false, Some(classes)),
        );
    }
    Ok(())
}

/// `idx_load`: read the IDX files (gzip or raw) of `spec`, fit the normalisation and convert
/// every image to normalised f32 once, as a training run does before its first step.
fn idx_load(spec: &str, threads: usize) -> Result<()> {
    if !std::path::Path::new(spec.split(':').next().unwrap_or(spec)).exists() {
        eprintln!("idx_load: {spec} not found, skipped");
        return Ok(());
    }
    let t0 = Instant::now();
    let mut images = 0;
    let mut values = 0usize;
    for split in ["train", "test"] {
        let data = context::load_data(&format!("{spec}:{split}"), "--idx", true, strata_data::Split::Train)?;
        let norm = strata_data::Normalization::fit(&data);
        let mut out = vec![0f32; data.images.len()];
        norm.apply_into(&data.images, data.shape, &mut out);
        images += data.len();
        values += out.len();
    }
    let s = t0.elapsed().as_secs_f64();
    let line = serde_json::json!({
        "bench": "idx_load", "impl": "strata", "data": spec, "images": images, "values": values,
        "seconds": s, "img_s": images as f64 / s, "threads": threads,
    });
    println!("{line}");
    Ok(())
}

/// `folder_decode`: decode an image-folder tree (PNG, JPEG ...) into a dataset.
fn folder_decode(spec: &str, threads: usize) -> Result<()> {
    let t0 = Instant::now();
    let data = context::load_data(spec, "--folder", true, strata_data::Split::Train)?;
    let s = t0.elapsed().as_secs_f64();
    let line = serde_json::json!({
        "bench": "folder_decode", "impl": "strata", "data": spec, "images": data.len(),
        "seconds": s, "img_s": data.len() as f64 / s, "threads": threads,
    });
    println!("{line}");
    Ok(())
}

/// The matrix products of a REF-CAE train step as an im2col convolution makes them, per image
/// and over a batch of 64 (issue 14's ceiling): (name, m, k, n) for a row-major m x k by
/// k x n product.
const GEMM_SHAPES: [(&str, usize, usize, usize); 11] = [
    ("conv1 forward, per image (K = 9)", 32, 9, 784),
    ("conv2 forward, per image", 64, 288, 196),
    ("conv2 dW, per image", 64, 196, 288),
    ("conv2 dX, per image", 288, 64, 196),
    ("deconv1 (64->32, k2 s2), per image", 128, 64, 49),
    ("deconv2 (32->1, k2 s2), per image", 4, 32, 196),
    ("conv2 forward, batch 64", 64, 288, 196 * 64),
    ("conv2 dW, batch 64", 64, 196 * 64, 288),
    ("conv2 dX, batch 64", 288, 64, 196 * 64),
    ("dense 3136 -> 128, batch 64", 64, 3136, 128),
    ("square 1024 (the plain matmul rate)", 1024, 1024, 1024),
];

/// `gemm_shapes`: GFLOP/s of the `gemm` crate (the one burn-flex multiplies with) on each of
/// [`GEMM_SHAPES`], on one thread and on `threads`; one JSON line per shape and thread count.
fn gemm_shapes(threads: usize) {
    for &(name, m, k, n) in &GEMM_SHAPES {
        let lhs: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let rhs: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut dst = vec![0f32; m * n];
        let mut counts = vec![1];
        if threads > 1 {
            counts.push(threads);
        }
        for t in counts {
            let par = if t == 1 { gemm::Parallelism::None } else { gemm::Parallelism::Rayon(t) };
            let mut product = || {
                // SAFETY: the three buffers are live, distinct and exactly m x k, k x n and
                // m x n f32 values, row-major (row stride = columns, column stride 1), which is
                // what these dimensions and strides describe to `gemm`
                unsafe {
                    gemm::gemm(
                        m,
                        n,
                        k,
                        dst.as_mut_ptr(),
                        1,
                        n as isize,
                        false,
                        lhs.as_ptr(),
                        1,
                        k as isize,
                        rhs.as_ptr(),
                        1,
                        n as isize,
                        0.0f32,
                        1.0f32,
                        false,
                        false,
                        false,
                        par,
                    )
                }
            };
            // enough calls for ~0.1 s a repeat, the median of 5 repeats
            let t0 = Instant::now();
            product();
            let once = t0.elapsed().as_secs_f64().max(1e-7);
            let calls = ((0.1 / once) as usize).clamp(1, 100_000);
            let reps: Vec<f64> = (0..5)
                .map(|_| {
                    let t0 = Instant::now();
                    for _ in 0..calls {
                        product();
                    }
                    2.0 * (m * n * k * calls) as f64 / t0.elapsed().as_secs_f64() / 1e9
                })
                .collect();
            println!(
                "{}",
                serde_json::json!({
                    "bench": "gemm_shapes", "impl": "strata (gemm 0.19)", "shape": name, "m": m, "k": k, "n": n,
                    "threads": t, "gflop_s_median": median(reps.clone()), "gflop_s_repeats": reps,
                })
            );
        }
    }
}
