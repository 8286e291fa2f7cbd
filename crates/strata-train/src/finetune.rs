//! Stage two: a classifier on reused (or fresh) blocks, trained in phases: reused blocks
//! frozen while the head learns, then the top reused blocks unfrozen at a reduced rate.

use crate::batch::Batcher;
use crate::error::{Result, TrainError};
use crate::evaluate::{Evaluation, evaluate};
use crate::progress::{Event, Observer};
use crate::step::{BatchSchedule, checked_loss, cross_entropy, validate_optim};
use burn::module::{Module, ParamGroup};
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::Device;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::time::Instant;
use strata_data::{Dataset, Normalization, augment};
use strata_nn::{ArchSpec, Block, Classifier, HeadSpec, try_seeded, weights};

/// Where the backbone blocks come from.
pub enum Init {
    /// random initialisation: the baseline
    Scratch,
    /// blocks taken from a parent run (already loaded, lowest first)
    Pretrained(Vec<Block>),
}

/// Settings of a fine-tuning (or from-scratch) run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FinetuneConfig {
    /// the backbone blocks of the classifier (the reused lower K, or the scratch backbone)
    pub arch: ArchSpec,
    /// the new head
    pub head: HeadSpec,
    /// images per optimiser step
    pub batch: usize,
    /// Adam learning rate of the head (and of every layer from scratch)
    pub lr: f64,
    /// seed of head initialisation, data order and augmentation
    pub seed: u64,
    /// optimiser steps with all reused blocks frozen
    pub frozen_steps: usize,
    /// optimiser steps after the top reused blocks are unfrozen
    pub unfreeze_steps: usize,
    /// how many top reused blocks to unfreeze in the second phase
    pub unfreeze_top: usize,
    /// learning-rate multiplier of unfrozen reused blocks (0.1 = 10x lower than the head)
    pub lr_mult: f64,
    /// random translation of labeled images by up to this many pixels (0 = off)
    pub augment_shift: usize,
}

impl FinetuneConfig {
    /// Checks ranges and gives an error naming the flag.
    pub fn validate(&self) -> Result<()> {
        validate_optim(self.batch, self.lr)?;
        if !(self.lr_mult.is_finite() && self.lr_mult > 0.0 && self.lr_mult <= 1.0) {
            return Err(TrainError::config("--lr-mult", self.lr_mult, "use a multiplier in (0, 1], e.g. 0.1"));
        }
        if self.unfreeze_top > self.arch.blocks.len() {
            return Err(TrainError::config(
                "--unfreeze-top",
                self.unfreeze_top,
                &format!("at most the {} reused block(s) can be unfrozen", self.arch.blocks.len()),
            ));
        }
        if self.frozen_steps + self.unfreeze_steps == 0 {
            return Err(TrainError::config("--steps", 0, "train for at least one step"));
        }
        Ok(())
    }
}

/// What happened in one phase (recorded in the manifest).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseRecord {
    /// `frozen`, `unfrozen` or `scratch`
    pub name: String,
    /// optimiser steps taken
    pub steps: usize,
    /// indices of backbone blocks that were trainable
    pub trainable_blocks: Vec<usize>,
    /// learning rate of the trainable backbone blocks
    pub backbone_lr: Option<f64>,
    /// learning rate of the head
    pub head_lr: f64,
    /// mean loss over the phase's last pass over the data
    pub final_loss: f32,
    /// accuracy on the evaluation set at the end of the phase, when one was given
    pub eval_accuracy: Option<f64>,
    /// wall-clock seconds
    pub seconds: f64,
}

/// The trained classifier and its phase history.
pub struct FinetuneOutcome {
    /// the classifier, in inference mode
    pub model: Classifier,
    /// phases in order
    pub phases: Vec<PhaseRecord>,
    /// full scores on the evaluation set after the last phase, when one was given
    pub evaluation: Option<Evaluation>,
}

/// Phase plan derived from the init and the config.
struct Phase {
    name: &'static str,
    steps: usize,
    trainable: Vec<usize>,
}

fn plan(init_is_scratch: bool, cfg: &FinetuneConfig) -> Vec<Phase> {
    let k = cfg.arch.blocks.len();
    if init_is_scratch {
        return vec![Phase {
            name: "scratch",
            steps: cfg.frozen_steps + cfg.unfreeze_steps,
            trainable: (0..k).collect(),
        }];
    }
    let mut phases = vec![Phase { name: "frozen", steps: cfg.frozen_steps, trainable: vec![] }];
    if cfg.unfreeze_steps > 0 {
        phases.push(Phase {
            name: "unfrozen",
            steps: cfg.unfreeze_steps,
            trainable: (k - cfg.unfreeze_top.min(k)..k).collect(),
        });
    }
    phases.into_iter().filter(|p| p.steps > 0).collect()
}

/// Trains a classifier on rows `rows` of `train`; labeled `eval` data is scored after each phase.
#[allow(clippy::too_many_arguments)]
pub fn finetune(
    init: Init,
    cfg: &FinetuneConfig,
    train: &Dataset,
    rows: &[usize],
    norm: &Normalization,
    device: &Device,
    eval: Option<&Dataset>,
    observer: &mut dyn Observer,
    log: &mut dyn FnMut(serde_json::Value) -> Result<()>,
) -> Result<FinetuneOutcome> {
    cfg.validate()?;
    train.require_labels()?;
    let ad = device.clone().autodiff();
    let input = Batcher::new(train, norm).input_shape();
    let is_scratch = matches!(init, Init::Scratch);
    let model = match init {
        Init::Scratch => try_seeded(&ad, cfg.seed, || Classifier::new(&cfg.arch, &cfg.head, input, &ad))?,
        Init::Pretrained(blocks) => {
            let blocks: Vec<Block> = blocks.into_iter().map(|b| b.fork(&ad)).collect();
            try_seeded(&ad, cfg.seed, || Classifier::with_backbone(blocks, &cfg.arch, &cfg.head, input, &ad))?
        }
    };
    // loaded blocks live on a plain device; train() puts every parameter under autodiff
    let mut model = model.train();
    let batcher = Batcher::new(train, norm);
    let shape = train.shape;
    let mut schedule = BatchSchedule::new(rows.to_vec(), cfg.batch, cfg.seed);
    let log_every = schedule.steps_per_epoch().max(20);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x6175_676d);
    let mut optim = AdamConfig::new().init();
    let mut records = Vec::new();
    let mut step = 0usize;
    let mut evaluation = None;

    for phase in plan(is_scratch, cfg) {
        // freeze() also switches batch norm to its running statistics, which stay untouched
        model.backbone = model
            .backbone
            .into_iter()
            .enumerate()
            .map(|(i, b)| if phase.trainable.contains(&i) { b.unfreeze() } else { b.freeze() })
            .collect();
        let reused_lr = if is_scratch { cfg.lr } else { cfg.lr * cfg.lr_mult };
        let mut ids = Vec::new();
        for &i in &phase.trainable {
            ids.extend(weights::param_ids(&model.backbone[i]).into_values());
        }
        let mut lr_policy = ModuleLrScheduler::new(cfg.lr).with_group(ParamGroup::from_ids(ids), reused_lr);
        observer.event(Event::PhaseStart { phase: phase.name.into(), steps: phase.steps });
        let t0 = Instant::now();
        let (mut sum, mut count, mut last_loss) = (0f64, 0usize, f32::NAN);
        for s in 0..phase.steps {
            let idx = schedule.next_batch();
            let x = if cfg.augment_shift > 0 {
                let px: Vec<Vec<u8>> = idx
                    .iter()
                    .map(|&i| augment::random_shift(train.image(i), shape, cfg.augment_shift, &mut rng))
                    .collect();
                batcher.inputs_from_pixels(&px, &ad)
            } else {
                batcher.inputs(&idx, &ad)
            };
            let y = batcher.labels(&idx, &ad);
            let loss = cross_entropy(model.forward(x), y);
            let value = checked_loss(&loss, phase.name, step)?;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr_policy.step(), model, grads);
            step += 1;
            sum += f64::from(value) * idx.len() as f64;
            count += idx.len();
            observer.event(Event::Step { phase: phase.name.into(), step: s + 1, loss: value });
            if (s + 1) % log_every == 0 || s + 1 == phase.steps {
                last_loss = (sum / count.max(1) as f64) as f32;
                log(serde_json::json!({
                    "phase": phase.name, "step": step, "epoch": schedule.epoch(), "loss": last_loss,
                    "lr_head": cfg.lr, "lr_backbone": if phase.trainable.is_empty() { None } else { Some(reused_lr) },
                    "seconds": t0.elapsed().as_secs_f64(),
                }))?;
                sum = 0.0;
                count = 0;
            }
        }
        evaluation = match eval {
            Some(data) => Some(evaluate(&model, data, None, norm, device)?),
            None => None,
        };
        let eval_accuracy = evaluation.as_ref().map(|e| e.accuracy);
        let summary = match eval_accuracy {
            Some(a) => format!("loss {last_loss:.4}, accuracy {:.2}%", 100.0 * a),
            None => format!("loss {last_loss:.4}"),
        };
        observer.event(Event::PhaseEnd { phase: phase.name.into(), summary });
        records.push(PhaseRecord {
            name: phase.name.into(),
            steps: phase.steps,
            backbone_lr: (!phase.trainable.is_empty()).then_some(reused_lr),
            trainable_blocks: phase.trainable,
            head_lr: cfg.lr,
            final_loss: last_loss,
            eval_accuracy,
            seconds: t0.elapsed().as_secs_f64(),
        });
    }
    Ok(FinetuneOutcome { model: model.valid(), phases: records, evaluation })
}
