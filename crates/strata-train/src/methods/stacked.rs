//! `stacked`: greedy layer-wise pretraining, the 2006 recipe. Block 0 learns as a shallow
//! autoencoder of the images; then, with block 0 frozen, block 1 learns as a shallow
//! autoencoder of block 0's codes; and so on up the stack. A last stage fine-tunes the whole
//! stack end to end as one autoencoder. Every stage runs `--epochs` passes.

use super::artifacts::reconstructions;
use super::epochs::{Figures, OPTIM_PART, Objective, nonfinite, restore_model, restore_optim, run_epochs, save_parts};
use super::{Job, Log, PretrainOutcome, Pretrainer};
use crate::batch::Batcher;
use crate::checkpoint::Parts;
use crate::error::Result;
use crate::progress::Observer;
use crate::recorder::MapLines;
use crate::step::{checked_loss, mse};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use strata_nn::block::forward_stack;
use strata_nn::{Autoencoder, Features, try_seeded};

/// Greedy layer-wise autoencoder pretraining.
pub struct Stacked;

/// Which part of the stack a stage trains.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Stage {
    /// backbone block `i` and its mirror, on the frozen lower blocks' codes
    Block(usize),
    /// everything, end to end
    Whole,
}

/// Freezes everything a stage does not train.
pub(crate) fn prepare(model: Autoencoder, stage: Stage) -> Autoencoder {
    let n = model.backbone.len();
    let Autoencoder { backbone, decoder } = model;
    let train = |i: usize| match stage {
        Stage::Block(b) => i == b,
        Stage::Whole => true,
    };
    let backbone =
        backbone.into_iter().enumerate().map(|(i, b)| if train(i) { b.unfreeze() } else { b.freeze() }).collect();
    let mut decoder = decoder;
    // decoder stage j mirrors backbone block n - 1 - j
    decoder.blocks = decoder
        .blocks
        .into_iter()
        .enumerate()
        .map(|(j, d)| if train(n - 1 - j) { d.unfreeze() } else { d.freeze() })
        .collect();
    Autoencoder { backbone, decoder }
}

struct LayerWise<'a> {
    model: Option<Autoencoder>,
    optim: ModuleOptimizer,
    batcher: Batcher<'a>,
    device: Device,
    stage: Stage,
    lr: f64,
    /// the figures of the stages before this one (saved with each checkpoint, since a resumed
    /// run does not run those stages again)
    history: serde_json::Value,
}

/// Checkpoint part with the earlier stages' figures.
const HISTORY: &str = "stacked.json";

impl Objective for LayerWise<'_> {
    fn save(&self) -> Result<Parts> {
        let mut parts = save_parts(&self.model, &[(OPTIM_PART, &self.optim)])?;
        parts.insert(HISTORY.into(), self.history.to_string().into_bytes());
        Ok(parts)
    }

    fn restore(&mut self, parts: &Parts) -> Result<()> {
        restore_model(&mut self.model, parts)?;
        restore_optim(&mut self.optim, parts, OPTIM_PART)?;
        self.history = serde_json::from_slice(crate::checkpoint::part(parts, HISTORY)?).unwrap_or_default();
        Ok(())
    }

    fn first_nonfinite(&self) -> Option<String> {
        nonfinite(&self.model)
    }

    fn step(&mut self, idx: &[usize], step: usize) -> Result<Figures> {
        let Some(model) = self.model.take() else { unreachable!("the model is put back after every step") };
        let x = self.batcher.inputs(idx, &self.device);
        let loss = match self.stage {
            Stage::Whole => mse(model.forward(x), self.batcher.targets(idx, &self.device)),
            Stage::Block(i) => {
                let n = model.backbone.len();
                // the frozen blocks below give the codes this block learns to reconstruct
                let below = forward_stack(&model.backbone[..i], Features::Map(x));
                let code = model.backbone[i].forward(below.clone());
                let out = model.decoder.forward_stage(n - 1 - i, code).flat();
                // the first block reconstructs pixels in [0, 1] (its mirror ends in a sigmoid)
                let target: Tensor<2> =
                    if i == 0 { self.batcher.targets(idx, &self.device).flatten(1, 3) } else { below.flat() };
                (out - target).powi_scalar(2).mean()
            }
        };
        let value = checked_loss(&loss, "stacked", step)?;
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        self.model = Some(self.optim.step(self.lr, model, grads));
        Ok(vec![("loss", f64::from(value))])
    }
}

impl Pretrainer for Stacked {
    fn name(&self) -> &'static str {
        "stacked"
    }
    fn describe(&self) -> &'static str {
        "greedy layer-wise: one shallow autoencoder per block on the codes of the frozen blocks below, then the stack end to end"
    }
    fn train(&self, job: &Job, observer: &mut dyn Observer, log: &mut Log) -> Result<PretrainOutcome> {
        let Job { data, norm, cfg, device } = *job;
        let batcher = Batcher::new(data, norm);
        let input = batcher.input_shape();
        let ad = device.clone().autodiff();
        let mut model = try_seeded(&ad, cfg.seed, || Autoencoder::new(&cfg.arch, input, &ad))?;
        let mut stages: Vec<Stage> = (0..cfg.arch.blocks.len()).map(Stage::Block).collect();
        stages.push(Stage::Whole);
        let names: Vec<String> = stages
            .iter()
            .map(|s| match s {
                Stage::Block(i) => format!("stacked-block-{i}"),
                Stage::Whole => "stacked-end-to-end".into(),
            })
            .collect();
        // every stage takes the same number of steps, so the offsets need no history
        let per_stage = cfg.epochs * data.len().div_ceil(cfg.batch.max(1));
        let resume_at = log.resume_phase().and_then(|p| names.iter().position(|n| *n == p));
        let mut metrics = serde_json::json!({});
        let mut seconds = 0.0;
        for (k, (stage, name)) in stages.into_iter().zip(&names).enumerate() {
            if resume_at.is_some_and(|r| k < r) {
                // finished before the checkpoint: its result is in the checkpoint's weights
                continue;
            }
            // a fresh optimiser per stage: each trains other parameters
            let mut objective = LayerWise {
                model: Some(prepare(model, stage)),
                optim: AdamConfig::new().init(),
                batcher: Batcher::new(data, norm),
                device: ad.clone(),
                stage,
                lr: cfg.lr,
                history: metrics.clone(),
            };
            let offset = k * per_stage;
            let mut rec = MapLines {
                inner: &mut *log,
                map: |mut line: serde_json::Value| {
                    // one step count across stages, so the loss curve reads left to right
                    line["step"] = serde_json::json!(line["step"].as_u64().unwrap_or(0) + offset as u64);
                    line
                },
            };
            let summary = run_epochs(name, cfg, data.len(), 1, &mut objective, observer, &mut rec)?;
            seconds += summary.seconds;
            metrics = objective.history;
            metrics[format!("{name}_loss")] = serde_json::json!(summary.last.get("loss"));
            let Some(m) = objective.model else { unreachable!("the model is put back after every step") };
            model = m;
        }
        let step_offset = names.len() * per_stage;
        metrics["final_loss"] = metrics["stacked-end-to-end_loss"].clone();
        metrics["steps"] = serde_json::json!(step_offset);
        metrics["seconds"] = serde_json::json!(seconds);
        metrics["images_per_s"] = serde_json::json!((step_offset * cfg.batch) as f64 / f64::max(seconds, 1e-9));
        let model = model.valid();
        let grid = reconstructions(data, norm, device, |x| model.forward(x))?;
        PretrainOutcome::new(&model, metrics, vec![grid])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_nn::{ArchSpec, InputShape, seeded};

    #[test]
    fn a_block_stage_trains_only_that_block_and_its_mirror() {
        let device = Device::default().autodiff();
        let arch = ArchSpec::parse("conv4-pool,dense8").unwrap();
        let input = InputShape { channels: 1, height: 8, width: 8 };
        let model = seeded(&device, 1, || Autoencoder::new(&arch, input, &device).unwrap());
        let model = prepare(model, Stage::Block(1));
        let b0 = model.backbone[0].conv.as_ref().unwrap().weight.val().is_require_grad();
        let b1 = model.backbone[1].linear.as_ref().unwrap().weight.val().is_require_grad();
        // decoder stage 0 mirrors block 1 (dense), stage 1 mirrors block 0 (conv)
        let d0 = model.decoder.blocks[0].linear.as_ref().unwrap().weight.val().is_require_grad();
        let d1 = model.decoder.blocks[1].deconv.as_ref().unwrap().weight.val().is_require_grad();
        assert!(!b0 && b1 && d0 && !d1, "b0 {b0} b1 {b1} d0 {d0} d1 {d1}");
        let whole = prepare(model, Stage::Whole);
        assert!(whole.backbone[0].conv.as_ref().unwrap().weight.val().is_require_grad());
    }
}
