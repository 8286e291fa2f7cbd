//! `gan`: a DCGAN-style pair. The discriminator is the backbone spec under a one-logit
//! critic; the generator maps noise through a linear layer into the backbone's mirrored
//! decoder. They take alternating steps with their own optimisers; stage two reuses the
//! discriminator's blocks. A discriminator that wins outright, or samples that all look alike,
//! is reported as a collapse rather than trained on in silence.

use super::artifacts::{Artifact, to_pixels};
use super::epochs::{Figures, Objective, nonfinite, restore_model, restore_optim, run_epochs, save_parts, trained};
use super::{Job, Log, PretrainConfig, PretrainOutcome, Pretrainer};
use crate::batch::Batcher;
use crate::checkpoint::Parts;
use crate::engine::Window;
use crate::error::Result;
use crate::progress::Observer;
use crate::step::{checked_loss, standard_normal, step_rng};
use burn::module::{Module, ParamId};
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::softplus;
use burn::tensor::{Device, Tensor, TensorData};
use strata_data::{Dataset, Normalization};
use strata_nn::block::{build_stack, forward_stack};
use strata_nn::{ArchSpec, Block, Decoder, FeatureShape, Features, try_seeded, weights};

/// DCGAN's discriminator: `gan`'s default backbone.
pub const DCGAN_ARCH: &str = "conv64k5s2-leaky0.2,conv128k5s2-bn-leaky0.2,dense128-leaky0.2";
/// Size of the generator's noise vector.
pub const LATENT: usize = 64;
/// Checkpoint parts of the two optimisers and of the collapse warnings so far.
const D_OPTIM: &str = "d_optim.bpk";
const G_OPTIM: &str = "g_optim.bpk";
const WARNINGS: &str = "warnings.json";
/// Samples in the per-epoch grid.
const SAMPLES: usize = 16;
/// Mean discriminator loss below which the generator no longer gets a useful gradient.
const D_LOSS_FLOOR: f64 = 0.05;
/// Mean per-pixel spread across the fixed samples below which they have collapsed to one image.
const SPREAD_FLOOR: f64 = 0.01;
/// The target of real images: one-sided label smoothing (Salimans et al. 2016) keeps the
/// discriminator from growing over-confident, which is what starves the generator.
const REAL_TARGET: f32 = 0.9;
/// Standard deviation of DCGAN's initial weights (Radford et al. 2016).
const INIT_STD: f32 = 0.02;

/// DCGAN's initialisation, by tensor name: weights N(0, 0.02), batch-norm scales N(1, 0.02),
/// biases and shifts 0; running statistics untouched. Drawn from `seed`, so runs repeat.
fn dcgan_init(model: GanNet, seed: u64) -> Result<GanNet> {
    let path = std::path::Path::new("gan initialisation");
    let mut rng = step_rng(seed, 0x6463_6761, 0);
    let bytes = weights::map_tensors(&weights::to_bytes(&model)?, path, |name, values| {
        let (mean, std) = if name.ends_with(".weight") {
            (0.0, INIT_STD)
        } else if name.ends_with(".gamma") {
            (1.0, INIT_STD)
        } else if name.ends_with(".bias") || name.ends_with(".beta") {
            (0.0, 0.0)
        } else {
            return;
        };
        let noise = standard_normal(values.len(), &mut rng);
        for (v, z) in values.iter_mut().zip(noise) {
            *v = mean + std * z;
        }
    })?;
    Ok(weights::load_bytes(model, bytes, path)?)
}

/// GAN pretraining.
pub struct Gan;

/// Noise → image.
#[derive(Module, Debug)]
pub struct Generator {
    /// noise → backbone-sized features
    pub expand: Linear,
    /// the backbone mirrored, ending in a sigmoid
    pub decoder: Decoder,
    /// the backbone's output shape, to rebuild a feature map
    #[module(skip)]
    pub code_shape: FeatureShape,
}

impl Generator {
    /// Images in [0, 1] from noise.
    pub fn forward(&self, z: Tensor<2>) -> Tensor<4> {
        // a linear projection, as DCGAN's first layer: a ReLU here (as there was) zeroed half
        // of the noise before the decoder's batch norm, and every sample came out alike
        let h = self.expand.forward(z);
        let [n, _] = h.dims();
        let code = match self.code_shape {
            FeatureShape::Flat(_) => Features::Flat(h),
            FeatureShape::Map(c, hh, w) => Features::Map(h.reshape([n, c, hh, w])),
        };
        self.decoder.forward(code)
    }
}

/// Discriminator (backbone + critic) and generator in one module, so the saved file has the
/// `backbone.*` tensors stage two looks for.
#[derive(Module, Debug)]
pub struct GanNet {
    /// the discriminator's blocks: what stage two reuses
    pub backbone: Vec<Block>,
    /// one logit: real (> 0) or generated
    pub critic: Linear,
    /// the generator
    pub generator: Generator,
}

impl GanNet {
    /// Discriminator logits of normalised images.
    pub fn discriminate(&self, x: Tensor<4>) -> Tensor<2> {
        self.critic.forward(forward_stack(&self.backbone, Features::Map(x)).flat())
    }

    /// Parameter ids of the discriminator (backbone and critic).
    pub fn discriminator_ids(&self) -> Vec<ParamId> {
        let mut ids: Vec<ParamId> = self.backbone.iter().flat_map(|b| weights::param_ids(b).into_values()).collect();
        ids.extend(weights::param_ids(&self.critic).into_values());
        ids
    }
}

/// What the alternating steps need.
pub(crate) struct Adversarial<'a> {
    pub(crate) model: Option<GanNet>,
    d_optim: ModuleOptimizer,
    g_optim: ModuleOptimizer,
    batcher: Batcher<'a>,
    device: Device,
    cfg: &'a PretrainConfig,
    /// per-channel mean and std, to feed generated [0, 1] images to the discriminator
    norm: (Tensor<4>, Tensor<4>),
    fixed_noise: Tensor<2>,
    shape: (usize, usize, usize),
    pub(crate) artifacts: Vec<Artifact>,
    pub(crate) warnings: Vec<String>,
}

impl<'a> Adversarial<'a> {
    fn new(model: GanNet, data: &'a Dataset, norm: &'a Normalization, device: Device, cfg: &'a PretrainConfig) -> Self {
        let c = norm.channels();
        let stat = |v: &[f32]| Tensor::<4>::from_data(TensorData::new(v.to_vec(), [1, c, 1, 1]), &device);
        let mut rng = step_rng(cfg.seed, 0x6669_7865, 0);
        let fixed = standard_normal(SAMPLES * LATENT, &mut rng);
        let fixed_noise = Tensor::<2>::from_data(TensorData::new(fixed, [SAMPLES, LATENT]), &device);
        let s = data.shape;
        Self {
            model: Some(model),
            d_optim: AdamConfig::new().with_beta_1(0.5).init(),
            g_optim: AdamConfig::new().with_beta_1(0.5).init(),
            batcher: Batcher::new(data, norm),
            norm: (stat(&norm.mean), stat(&norm.std)),
            device,
            cfg,
            fixed_noise,
            shape: (s.channels, s.height, s.width),
            artifacts: vec![],
            warnings: vec![],
        }
    }

    fn noise(&self, n: usize, step: usize, salt: u64) -> Tensor<2> {
        let mut rng = step_rng(self.cfg.seed, salt, step as u64);
        Tensor::<2>::from_data(TensorData::new(standard_normal(n * LATENT, &mut rng), [n, LATENT]), &self.device)
    }

    fn normalise(&self, images: Tensor<4>) -> Tensor<4> {
        (images - self.norm.0.clone()) / self.norm.1.clone()
    }

    /// The discriminator's step: real images toward 1, generated ones toward 0. Only the
    /// discriminator's parameters are updated. Returns (loss, accuracy).
    pub(crate) fn d_step(&mut self, model: GanNet, idx: &[usize], step: usize) -> Result<(GanNet, f32, f64)> {
        let n = idx.len();
        let real = model.discriminate(self.batcher.inputs(idx, &self.device));
        let fake_images = model.generator.forward(self.noise(n, step, 0x6400)).detach();
        let fake = model.discriminate(self.normalise(fake_images));
        // cross-entropy against target t for real images and 0 for generated ones, in the
        // numerically stable softplus form: -log sigmoid(x) = softplus(-x)
        let real_loss = softplus(real.clone().neg(), 1.0).mul_scalar(REAL_TARGET)
            + softplus(real.clone(), 1.0).mul_scalar(1.0 - REAL_TARGET);
        let loss = (real_loss.mean() + softplus(fake.clone(), 1.0).mean()).reshape([1]);
        let value = checked_loss(&loss, "gan discriminator", step)?;
        let right = |t: Tensor<2>, positive: bool| -> usize {
            let v = t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default();
            v.iter().filter(|&&l| (l > 0.0) == positive).count()
        };
        let accuracy = (right(real, true) + right(fake, false)) as f64 / (2 * n) as f64;
        let mut grads = loss.backward();
        let grads = GradientsParams::from_params(&mut grads, &model, &model.discriminator_ids());
        Ok((self.d_optim.step(self.cfg.lr, model, grads), value, accuracy))
    }

    /// The generator's step: make the discriminator call its images real (the non-saturating
    /// loss). Only the generator's parameters are updated.
    pub(crate) fn g_step(&mut self, model: GanNet, n: usize, step: usize) -> Result<(GanNet, f32)> {
        let fake = model.discriminate(self.normalise(model.generator.forward(self.noise(n, step, 0x6700))));
        let loss = softplus(fake.neg(), 1.0).mean().reshape([1]);
        let value = checked_loss(&loss, "gan generator", step)?;
        let mut grads = loss.backward();
        let grads = GradientsParams::from_module(&mut grads, &model.generator);
        Ok((self.g_optim.step(self.cfg.lr, model, grads), value))
    }
}

impl Objective for Adversarial<'_> {
    fn save(&self) -> Result<Parts> {
        let mut parts = save_parts(&self.model, &[(D_OPTIM, &self.d_optim), (G_OPTIM, &self.g_optim)])?;
        for a in &self.artifacts {
            parts.insert(a.name.clone(), a.bytes.clone());
        }
        let warnings = serde_json::to_vec(&self.warnings).unwrap_or_default();
        parts.insert(WARNINGS.into(), warnings);
        Ok(parts)
    }

    fn restore(&mut self, parts: &Parts) -> Result<()> {
        restore_model(&mut self.model, parts)?;
        restore_optim(&mut self.d_optim, parts, D_OPTIM)?;
        restore_optim(&mut self.g_optim, parts, G_OPTIM)?;
        self.artifacts = parts
            .iter()
            .filter(|(name, _)| name.starts_with("samples-epoch-"))
            .map(|(name, bytes)| Artifact { name: name.clone(), bytes: bytes.clone() })
            .collect();
        // the epoch number, not the name, orders the grids (epoch-10 after epoch-9)
        self.artifacts.sort_by_key(|a| {
            a.name.trim_start_matches("samples-epoch-").trim_end_matches(".png").parse::<usize>().unwrap_or(0)
        });
        self.warnings = serde_json::from_slice(crate::checkpoint::part(parts, WARNINGS)?).unwrap_or_default();
        Ok(())
    }

    fn first_nonfinite(&self) -> Option<String> {
        nonfinite(&self.model)
    }

    fn step(&mut self, idx: &[usize], step: usize) -> Result<Figures> {
        let Some(model) = self.model.take() else { unreachable!("the model is put back after every step") };
        let (model, d_loss, d_acc) = self.d_step(model, idx, step)?;
        let (model, g_loss) = self.g_step(model, idx.len(), step)?;
        self.model = Some(model);
        Ok(vec![
            ("loss", f64::from(d_loss + g_loss)),
            ("d_loss", f64::from(d_loss)),
            ("g_loss", f64::from(g_loss)),
            ("d_accuracy", d_acc),
        ])
    }

    fn end_window(&mut self, window: &Window) -> Result<serde_json::Value> {
        let (epoch, means) = (window.index, window.means);
        let Some(model) = &self.model else { unreachable!("the model is put back after every step") };
        let samples = model.valid().generator.forward(self.fixed_noise.clone().inner());
        let pixels = to_pixels(samples);
        let bytes = strata_viz::image_grid(&pixels, self.shape, 8, 3)?;
        self.artifacts.push(Artifact { name: format!("samples-epoch-{epoch}.png"), bytes });
        // spread: mean over pixels of the standard deviation across the fixed samples
        let n = pixels.len() as f64;
        let per = pixels.first().map(Vec::len).unwrap_or(0);
        let spread = (0..per)
            .map(|p| {
                let mean = pixels.iter().map(|s| f64::from(s[p])).sum::<f64>() / n;
                (pixels.iter().map(|s| (f64::from(s[p]) - mean).powi(2)).sum::<f64>() / n).sqrt() / 255.0
            })
            .sum::<f64>()
            / per.max(1) as f64;
        let d_loss = means.get("d_loss").copied().unwrap_or(f64::NAN);
        let mut warning = None;
        if d_loss < D_LOSS_FLOOR {
            warning = Some(format!(
                "epoch {epoch}: discriminator loss {d_loss:.4} — it wins outright and the generator gets no useful gradient (collapse); try a lower --lr or fewer epochs"
            ));
        } else if spread < SPREAD_FLOOR {
            warning = Some(format!(
                "epoch {epoch}: the {SAMPLES} fixed-noise samples differ by {spread:.4} per pixel — the generator has collapsed to one image"
            ));
        }
        if let Some(w) = &warning {
            self.warnings.push(w.clone());
        }
        Ok(serde_json::json!({ "sample_spread": spread, "warning": warning }))
    }
}

impl Pretrainer for Gan {
    fn name(&self) -> &'static str {
        "gan"
    }
    fn describe(&self) -> &'static str {
        "GAN: a discriminator built from the backbone learns real from generated images; its blocks are reused"
    }
    /// DCGAN's recipe (Radford et al. 2016): strided 5x5 convolutions with LeakyReLU 0.2 and
    /// batch norm after the second, no pooling, Adam at 2e-4 (beta1 0.5 is fixed in the
    /// method). With 3x3 kernels the generator's stride-2 transposed convolutions paint a
    /// checkerboard the discriminator spots at once (it stayed at 99 % accuracy); 5x5 kernels
    /// overlap enough to avoid it. Generic choices, not fitted to MNIST.
    fn defaults(&self) -> PretrainConfig {
        PretrainConfig {
            arch: ArchSpec::parse(DCGAN_ARCH).expect("DCGAN_ARCH is a valid spec"),
            lr: 2e-4,
            ..PretrainConfig::default()
        }
    }
    fn train(&self, job: &Job, observer: &mut dyn Observer, log: &mut Log) -> Result<PretrainOutcome> {
        let Job { data, norm, cfg, device } = *job;
        let input = Batcher::new(data, norm).input_shape();
        let out = cfg.arch.output_shape(input)?;
        let ad = device.clone().autodiff();
        let model = try_seeded(&ad, cfg.seed, || -> Result<GanNet> {
            Ok(GanNet {
                backbone: build_stack(&cfg.arch.blocks, input.into(), &ad)?,
                critic: LinearConfig::new(out.numel(), 1).init(&ad),
                generator: Generator {
                    expand: LinearConfig::new(LATENT, out.numel()).init(&ad),
                    decoder: Decoder::mirror_with(&cfg.arch, input, true, &ad)?,
                    code_shape: out,
                },
            })
        })?;
        let model = dcgan_init(model, cfg.seed)?;
        let mut objective = Adversarial::new(model, data, norm, ad, cfg);
        let summary = run_epochs(self.name(), cfg, data.len(), 1, &mut objective, observer, log)?;
        let mut metrics = summary.metrics(cfg.batch);
        metrics["collapse_warnings"] = serde_json::json!(objective.warnings);
        PretrainOutcome::new(&trained(objective.model), metrics, objective.artifacts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_data::ImageShape;
    use strata_nn::{ArchSpec, seeded};

    #[test]
    fn dcgan_initialisation_draws_by_name_and_repeats() {
        let device = Device::default().autodiff();
        let arch = ArchSpec::parse("conv16s2-leaky0.2,conv16s2-bn-leaky0.2,dense8").unwrap();
        let input = strata_nn::InputShape { channels: 1, height: 8, width: 8 };
        let out = arch.output_shape(input).unwrap();
        let build = || {
            seeded(&device, 1, || GanNet {
                backbone: build_stack(&arch.blocks, FeatureShape::Map(1, 8, 8), &device).unwrap(),
                critic: LinearConfig::new(out.numel(), 1).init(&device),
                generator: Generator {
                    expand: LinearConfig::new(LATENT, out.numel()).init(&device),
                    decoder: Decoder::mirror_with(&arch, input, true, &device).unwrap(),
                    code_shape: out,
                },
            })
        };
        let a = weights::snapshot(&dcgan_init(build(), 7).unwrap());
        assert_eq!(a, weights::snapshot(&dcgan_init(build(), 7).unwrap()), "same seed, same weights");
        let stats = |v: &[f32]| {
            let m = v.iter().sum::<f32>() / v.len() as f32;
            (m, (v.iter().map(|x| (x - m).powi(2)).sum::<f32>() / v.len() as f32).sqrt())
        };
        let (m, sd) = stats(&a["backbone.1.conv.weight"]);
        assert!(m.abs() < 0.005 && (sd - 0.02).abs() < 0.004, "{m} {sd}");
        let (m, sd) = stats(&a["generator.decoder.blocks.0.norm.gamma"]);
        assert!((m - 1.0).abs() < 0.02 && sd < 0.05, "the generator's hidden stage has batch norm: {m} {sd}");
        assert!(a["backbone.0.conv.bias"].iter().all(|&b| b == 0.0));
        assert!(a["backbone.1.norm.running_var"].iter().all(|&v| v == 1.0), "running statistics untouched");
        assert!(!a.contains_key("generator.decoder.blocks.2.norm.gamma"), "the output stage has no batch norm");
    }

    #[test]
    fn each_player_updates_only_its_own_parameters() {
        let data = Dataset {
            images: (0..16 * 64).map(|i| (i * 7 % 256) as u8).collect(),
            shape: ImageShape::new(1, 8, 8),
            labels: None,
            class_names: vec![],
            source: "toy".into(),
        };
        let norm = Normalization::fit(&data);
        let cfg =
            PretrainConfig { arch: ArchSpec::parse("conv4-pool,dense8").unwrap(), lr: 1e-2, ..Default::default() };
        let device = Device::default().autodiff();
        let input = strata_nn::InputShape { channels: 1, height: 8, width: 8 };
        let out = cfg.arch.output_shape(input).unwrap();
        let model = seeded(&device, 1, || GanNet {
            backbone: build_stack(&cfg.arch.blocks, FeatureShape::Map(1, 8, 8), &device).unwrap(),
            critic: LinearConfig::new(out.numel(), 1).init(&device),
            generator: Generator {
                expand: LinearConfig::new(LATENT, out.numel()).init(&device),
                decoder: Decoder::mirror(&cfg.arch, input, &device).unwrap(),
                code_shape: out,
            },
        });
        let split = |m: &GanNet| {
            let all = weights::snapshot(m);
            let (g, d): (Vec<_>, Vec<_>) = all.into_iter().partition(|(k, _)| k.starts_with("generator."));
            (d, g)
        };
        let mut gan = Adversarial::new(model, &data, &norm, device, &cfg);
        let model = gan.model.take().unwrap();
        let (d0, g0) = split(&model);
        let (model, _, _) = gan.d_step(model, &[0, 1, 2, 3], 0).unwrap();
        let (d1, g1) = split(&model);
        assert_ne!(d0, d1, "the discriminator's step changed it");
        assert_eq!(g0, g1, "the discriminator's step left the generator alone");
        let (model, _) = gan.g_step(model, 4, 0).unwrap();
        let (d2, g2) = split(&model);
        assert_eq!(d1, d2, "the generator's step left the discriminator alone");
        assert_ne!(g1, g2, "the generator's step changed it");
    }
}
