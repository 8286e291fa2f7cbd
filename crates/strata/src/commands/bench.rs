//! `strata bench`: train-step throughput of the autoencoder and the classifier (REF-CAE by
//! default) on random images, one JSON line per figure.

use crate::context;
use anyhow::Result;
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use std::time::Instant;
use strata_nn::spec::REF_CAE;
use strata_nn::{ArchSpec, Autoencoder, Classifier, HeadSpec, InputShape, try_seeded};
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
    let (choice, device) = context::device(&a.device)?;
    let ad = device.clone().autodiff();
    let input = InputShape { channels: 1, height: 28, width: 28 };
    a.arch.shapes(input)?;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let x = Tensor::<4>::random([a.batch, 1, 28, 28], Distribution::Uniform(0.0, 1.0), &ad);
    let y = Tensor::<1, Int>::from_data(
        TensorData::new((0..a.batch as i64).map(|i| i % 10).collect::<Vec<_>>(), [a.batch]),
        &ad,
    );
    let emit = |name: &str, reps: Vec<f64>| {
        let line = serde_json::json!({
            "bench": name, "impl": "strata", "device": choice.to_string(), "arch": a.arch.to_string(),
            "batch": a.batch, "steps": a.steps, "repeats": a.repeats,
            "img_s_median": median(reps.clone()), "img_s_repeats": reps, "available_threads": threads,
        });
        println!("{line}");
    };

    let mut ae = try_seeded(&ad, 0, || Autoencoder::new(&a.arch, input, &ad))?;
    let mut optim = AdamConfig::new().init();
    emit(
        "ae_train_step",
        time_steps(&a, || {
            let loss = mse(ae.forward(x.clone()), x.clone());
            let grads = GradientsParams::from_grads(loss.backward(), &ae);
            ae = optim.step(1e-3, ae.clone(), grads);
            // reading the loss forces the step to finish on lazy (GPU) backends
            let _ = loss.into_scalar::<f32>();
        }),
    );

    let head = HeadSpec { hidden: vec![], classes: 10 };
    let mut clf = try_seeded(&ad, 0, || Classifier::new(&a.arch, &head, input, &ad))?;
    let mut optim = AdamConfig::new().init();
    emit(
        "clf_train_step",
        time_steps(&a, || {
            let loss = cross_entropy(clf.forward(x.clone()), y.clone());
            let grads = GradientsParams::from_grads(loss.backward(), &clf);
            clf = optim.step(1e-3, clf.clone(), grads);
            let _ = loss.into_scalar::<f32>();
        }),
    );

    let model = clf.valid();
    let xi = x.clone().inner();
    emit(
        "inference",
        time_steps(&a, || {
            let _ = model.forward(xi.clone()).argmax(1).into_data();
        }),
    );
    Ok(())
}
