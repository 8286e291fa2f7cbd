//! `vae`: a variational autoencoder. The backbone encodes an image, two linear maps give the
//! mean and log-variance of a latent code, a sample of it is decoded back to the image. The
//! reconstruction term and the KL term are logged separately. Stage two reuses the backbone,
//! the path that leads to the mean.

use super::artifacts::reconstructions;
use super::epochs::{Figures, Objective, one_model_checkpoint, run_epochs, trained};
use super::{Job, Log, PretrainConfig, PretrainOutcome, Pretrainer};
use crate::batch::Batcher;
use crate::error::Result;
use crate::progress::Observer;
use crate::step::{checked_loss, standard_normal, step_rng};
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use strata_nn::block::{build_stack, forward_stack};
use strata_nn::{Block, Decoder, FeatureShape, Features, try_seeded};

/// Size of the latent code.
pub const LATENT: usize = 32;

/// Variational autoencoder pretraining.
pub struct Variational;

/// Backbone, the Gaussian posterior's parameters, and a decoder from the latent code.
#[derive(Module, Debug)]
pub struct Vae {
    /// the encoder: what stage two reuses
    pub backbone: Vec<Block>,
    /// backbone features → latent mean
    pub mean: Linear,
    /// backbone features → latent log-variance
    pub log_var: Linear,
    /// latent code → backbone-sized features for the decoder
    pub expand: Linear,
    /// the backbone mirrored, ending in a sigmoid
    pub decoder: Decoder,
    /// shape of the backbone's output, to rebuild a feature map
    #[module(skip)]
    pub code_shape: FeatureShape,
}

impl Vae {
    /// Mean and log-variance of the latent code of a batch.
    pub fn encode(&self, x: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let h = forward_stack(&self.backbone, Features::Map(x)).flat();
        // clamped so exp() cannot overflow early in training
        (self.mean.forward(h.clone()), self.log_var.forward(h).clamp(-10.0, 10.0))
    }

    /// Images (in [0, 1]) decoded from latent codes.
    pub fn decode(&self, z: Tensor<2>) -> Tensor<4> {
        let h = relu(self.expand.forward(z));
        let [n, _] = h.dims();
        let code = match self.code_shape {
            FeatureShape::Flat(_) => Features::Flat(h),
            FeatureShape::Map(c, hh, w) => Features::Map(h.reshape([n, c, hh, w])),
        };
        self.decoder.forward(code)
    }
}

struct Elbo<'a> {
    model: Option<Vae>,
    optim: ModuleOptimizer,
    batcher: Batcher<'a>,
    device: Device,
    cfg: &'a PretrainConfig,
}

impl Objective for Elbo<'_> {
    one_model_checkpoint!();

    fn step(&mut self, idx: &[usize], step: usize) -> Result<Figures> {
        let Some(model) = self.model.take() else { unreachable!("the model is put back after every step") };
        let n = idx.len();
        let x = self.batcher.inputs(idx, &self.device);
        let target = self.batcher.targets(idx, &self.device);
        let (mu, log_var) = model.encode(x);
        let mut rng = step_rng(self.cfg.seed, 0x7661_6500, step as u64);
        let eps =
            Tensor::<2>::from_data(TensorData::new(standard_normal(n * LATENT, &mut rng), [n, LATENT]), &self.device);
        let z = mu.clone() + log_var.clone().mul_scalar(0.5).exp() * eps;
        let out = model.decode(z).clamp(1e-6, 1.0 - 1e-6);
        // Bernoulli likelihood of the pixels, summed per image; KL to N(0, I), summed per image
        let bce = (target.clone() * out.clone().log() + (target.neg() + 1.0) * (out.neg() + 1.0).log()).neg();
        let recon = bce.sum().div_scalar(n as f64);
        let kl =
            (log_var.clone() + 1.0 - mu.powi_scalar(2) - log_var.exp()).sum().mul_scalar(-0.5).div_scalar(n as f64);
        let loss = recon.clone() + kl.clone();
        let value = checked_loss(&loss, "vae", step)?;
        let (r, k) = (recon.into_scalar::<f32>(), kl.into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        self.model = Some(self.optim.step(self.cfg.lr, model, grads));
        Ok(vec![("loss", f64::from(value)), ("recon_loss", f64::from(r)), ("kl_loss", f64::from(k))])
    }
}

impl Pretrainer for Variational {
    fn name(&self) -> &'static str {
        "vae"
    }
    fn describe(&self) -> &'static str {
        "variational autoencoder: encode to a Gaussian latent code, decode a sample of it; the encoder's mean path is reused"
    }
    fn train(&self, job: &Job, observer: &mut dyn Observer, log: &mut Log) -> Result<PretrainOutcome> {
        let Job { data, norm, cfg, device } = *job;
        let batcher = Batcher::new(data, norm);
        let input = batcher.input_shape();
        let out = cfg.arch.output_shape(input)?;
        let ad = device.clone().autodiff();
        let model = try_seeded(&ad, cfg.seed, || -> Result<Vae> {
            Ok(Vae {
                backbone: build_stack(&cfg.arch.blocks, input.into(), &ad)?,
                mean: LinearConfig::new(out.numel(), LATENT).init(&ad),
                log_var: LinearConfig::new(out.numel(), LATENT).init(&ad),
                expand: LinearConfig::new(LATENT, out.numel()).init(&ad),
                decoder: Decoder::mirror(&cfg.arch, input, &ad)?,
                code_shape: out,
            })
        })?;
        let mut objective = Elbo { model: Some(model), optim: AdamConfig::new().init(), batcher, device: ad, cfg };
        let summary = run_epochs(self.name(), cfg, data.len(), 1, &mut objective, observer, log)?;
        let model = trained(objective.model);
        // reconstructions through the mean: what the encoder says, without sampling noise
        let grid = reconstructions(data, norm, device, |x| model.decode(model.encode(x).0))?;
        PretrainOutcome::new(&model, summary.metrics(cfg.batch), vec![grid])
    }
}
