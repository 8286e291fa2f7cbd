//! Stage two: a classifier on reused (or fresh) blocks, trained in phases: reused blocks
//! frozen while the head learns, then the top reused blocks unfrozen at a reduced rate
//! (all at once or one more at a time, each block lower down at a further reduced rate).

use crate::batch::Batcher;
use crate::checkpoint::{
    Checkpoint, MODEL_PART, OPTIM_PART, Parts, load_module, load_optimizer, module_bytes, name_nonfinite,
    optimizer_bytes, part, refuse_nonfinite,
};
use crate::error::{Result, TrainError};
use crate::evaluate::{Evaluation, evaluate};
use crate::layout::{BackbonePlan, Origin};
use crate::optim::OptimSettings;
use crate::progress::{Event, Observer};
use crate::recorder::Recorder;
use crate::step::{BatchSchedule, SchedulePosition, checked_loss, cross_entropy, step_rng, validate_optim};
use burn::module::{Module, ParamGroup};
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::Device;
use burn::tensor::{Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use std::time::Instant;
use strata_data::{Dataset, Normalization, augment};
use strata_nn::block::forward_stack;
use strata_nn::{Block, Classifier, Features, HeadSpec, InputShape, try_seeded, weights};

/// Where the backbone blocks come from.
pub enum Init {
    /// random initialisation: the baseline
    Scratch,
    /// the parent's lower blocks, already loaded, lowest first: as many as
    /// [`BackbonePlan::parent_blocks`] (replaced ones are loaded too, then re-initialised)
    Pretrained(Vec<Block>),
}

/// Settings of a fine-tuning (or from-scratch) run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FinetuneConfig {
    /// the classifier's backbone blocks and where each comes from
    pub backbone: BackbonePlan,
    /// the new head
    pub head: HeadSpec,
    /// images per optimiser step
    pub batch: usize,
    /// learning rate of the head, of new blocks (and of every layer from scratch)
    pub lr: f64,
    /// seed of head initialisation, data order and augmentation
    pub seed: u64,
    /// optimiser steps with all reused blocks frozen
    pub frozen_steps: usize,
    /// optimiser steps after the top reused blocks are unfrozen
    pub unfreeze_steps: usize,
    /// how many top reused blocks to unfreeze after the frozen phase
    pub unfreeze_top: usize,
    /// gradual unfreezing: one more block every this many steps (None: all at once)
    pub unfreeze_every: Option<usize>,
    /// learning-rate multiplier of the topmost unfrozen reused block (0.1 = 10x lower than the head)
    pub lr_mult: f64,
    /// further multiplier per block below it (discriminative rates; 1 = same rate for all)
    pub lr_decay: f64,
    /// update rule and weight decay
    pub optim: OptimSettings,
    /// random translation of labeled images by up to this many pixels (0 = off)
    pub augment_shift: usize,
    /// compute the outputs of the frozen lowest blocks once per phase instead of every step
    /// (only without augmentation; the weights equal the uncached run's bit for bit on the CPU)
    #[serde(default = "yes")]
    pub cache_frozen: bool,
}

fn yes() -> bool {
    true
}

impl FinetuneConfig {
    /// Checks ranges and gives an error naming the flag.
    pub fn validate(&self) -> Result<()> {
        validate_optim(self.batch, self.lr)?;
        self.optim.validate()?;
        if !(self.lr_mult.is_finite() && self.lr_mult > 0.0 && self.lr_mult <= 1.0) {
            return Err(TrainError::config("--lr-mult", self.lr_mult, "use a multiplier in (0, 1], e.g. 0.1"));
        }
        if !(self.lr_decay.is_finite() && self.lr_decay > 0.0 && self.lr_decay <= 1.0) {
            return Err(TrainError::config(
                "--lr-decay",
                self.lr_decay,
                "use a multiplier per block in (0, 1], e.g. 0.5 (1 = the same rate for every unfrozen block)",
            ));
        }
        let reused = self.backbone.reused().len();
        if self.unfreeze_top > reused {
            return Err(TrainError::config(
                "--unfreeze-top",
                self.unfreeze_top,
                &format!("at most the {reused} reused block(s) can be unfrozen"),
            ));
        }
        if self.frozen_steps + self.unfreeze_steps == 0 {
            return Err(TrainError::config("--steps", 0, "train for at least one step"));
        }
        if let Some(every) = self.unfreeze_every {
            let stages = self.unfreeze_top.max(1) - 1;
            if every == 0 || every.saturating_mul(stages) >= self.unfreeze_steps.max(1) {
                return Err(TrainError::config(
                    "--unfreeze-every",
                    every,
                    &format!(
                        "unfreezing {} block(s) one every {every} steps needs more than {} --unfreeze-steps (got {}); \
                         lower --unfreeze-every or raise --unfreeze-steps",
                        self.unfreeze_top,
                        every.saturating_mul(stages),
                        self.unfreeze_steps
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// What happened in one phase (recorded in the manifest).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseRecord {
    /// `frozen`, `unfrozen` (`unfrozen-N` when unfreezing gradually) or `scratch`
    pub name: String,
    /// optimiser steps taken
    pub steps: usize,
    /// indices of backbone blocks that were trainable
    pub trainable_blocks: Vec<usize>,
    /// learning rate of the topmost trainable reused block (None: all reused blocks frozen)
    pub backbone_lr: Option<f64>,
    /// learning rate of each backbone block (None: frozen)
    #[serde(default)]
    pub block_lr: Vec<Option<f64>>,
    /// learning rate of the head
    pub head_lr: f64,
    /// mean loss over the phase's last logging window
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

/// One phase of the schedule: how long, and the learning rate of each backbone block.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    /// name in logs and the manifest
    pub name: String,
    /// optimiser steps
    pub steps: usize,
    /// learning rate of each backbone block; None = frozen
    pub block_lr: Vec<Option<f64>>,
}

impl Phase {
    /// Indices of the trainable backbone blocks.
    pub fn trainable(&self) -> Vec<usize> {
        (0..self.block_lr.len()).filter(|&i| self.block_lr[i].is_some()).collect()
    }
}

/// The phases of `cfg`: frozen, then the top reused blocks unfrozen (at once, or one more
/// every `unfreeze_every` steps), each unfrozen block at `lr × lr_mult × lr_decay^depth`
/// where depth counts blocks down from the topmost reused one. New blocks always train at `lr`.
pub fn plan(cfg: &FinetuneConfig) -> Vec<Phase> {
    let n = cfg.backbone.origins.len();
    if cfg.backbone.is_scratch() {
        return vec![Phase {
            name: "scratch".into(),
            steps: cfg.frozen_steps + cfg.unfreeze_steps,
            block_lr: vec![Some(cfg.lr); n],
        }];
    }
    let reused = cfg.backbone.reused();
    let base: Vec<Option<f64>> = (0..n).map(|i| (!reused.contains(&i)).then_some(cfg.lr)).collect();
    let unfrozen = |count: usize| -> Vec<Option<f64>> {
        let mut lrs = base.clone();
        for (depth, &i) in reused.iter().rev().take(count).enumerate() {
            lrs[i] = Some(cfg.lr * cfg.lr_mult * cfg.lr_decay.powi(depth as i32));
        }
        lrs
    };
    let mut phases = vec![Phase { name: "frozen".into(), steps: cfg.frozen_steps, block_lr: base.clone() }];
    let top = cfg.unfreeze_top.min(reused.len());
    match cfg.unfreeze_every {
        Some(every) if top > 1 => {
            for count in 1..=top {
                let steps = if count < top { every } else { cfg.unfreeze_steps.saturating_sub(every * (top - 1)) };
                phases.push(Phase { name: format!("unfrozen-{count}"), steps, block_lr: unfrozen(count) });
            }
        }
        _ => phases.push(Phase { name: "unfrozen".into(), steps: cfg.unfreeze_steps, block_lr: unfrozen(top) }),
    }
    phases.into_iter().filter(|p| p.steps > 0).collect()
}

/// The per-group learning rates of `phase`: the head's as the base, one group per trainable
/// backbone block with its own rate.
pub fn lr_schedule(model: &Classifier, phase: &Phase, head_lr: f64) -> ModuleLrScheduler {
    let mut policy = ModuleLrScheduler::new(head_lr);
    for (i, lr) in phase.block_lr.iter().enumerate() {
        if let (Some(lr), Some(block)) = (lr, model.backbone.get(i)) {
            let ids = weights::param_ids(block).into_values().collect();
            policy = policy.with_group(ParamGroup::from_ids(ids), *lr);
        }
    }
    policy
}

/// Freezes the blocks `phase` leaves frozen (which also switches their batch norm to running
/// statistics, left untouched) and unfreezes the others.
pub fn apply_freeze(model: Classifier, phase: &Phase) -> Classifier {
    let Classifier { backbone, head } = model;
    let backbone = backbone
        .into_iter()
        .enumerate()
        .map(|(i, b)| if phase.block_lr.get(i).copied().flatten().is_some() { b.unfreeze() } else { b.freeze() })
        .collect();
    Classifier { backbone, head }
}

fn build_model(init: Init, cfg: &FinetuneConfig, input: InputShape, device: &Device) -> Result<Classifier> {
    let plan = &cfg.backbone;
    match init {
        Init::Scratch => Ok(try_seeded(device, cfg.seed, || Classifier::new(&plan.arch, &cfg.head, input, device))?),
        Init::Pretrained(blocks) => {
            if blocks.len() != plan.parent_blocks() {
                return Err(TrainError::config(
                    "--reuse",
                    blocks.len(),
                    &format!("the backbone plan needs {} of the parent's blocks", plan.parent_blocks()),
                ));
            }
            let mut loaded: Vec<Option<Block>> = blocks.into_iter().map(|b| Some(b.fork(device))).collect();
            let parts = plan
                .origins
                .iter()
                .map(|o| match o {
                    Origin::Parent { index } => loaded.get_mut(*index).and_then(Option::take),
                    Origin::Replaced { .. } | Origin::Added | Origin::Fresh => None,
                })
                .collect();
            Ok(try_seeded(device, cfg.seed, || Classifier::assemble(&plan.arch, parts, &cfg.head, input, device))?)
        }
    }
}

/// The outputs of the frozen lowest blocks for every training row. While those blocks are
/// frozen (batch norm on running statistics) and the images are not augmented, an image's
/// features cannot change, so it goes through them once per phase instead of once per step:
/// what PyTorch users get only by writing it themselves.
struct FrozenCache {
    /// how many lowest blocks the features have been through
    depth: usize,
    /// features of the rows, in `rows` order, on the plain (non-autodiff) device
    features: Features,
    /// dataset row → position in `features`
    position: std::collections::HashMap<usize, usize>,
}

/// Largest cache built, in bytes: beyond it the frozen blocks are recomputed every step.
const CACHE_LIMIT: usize = 2 << 30;

impl FrozenCache {
    /// The cache for `phase`, if it has frozen lowest blocks and caching applies.
    fn build(
        cfg: &FinetuneConfig,
        phase: &Phase,
        model: &Classifier,
        batcher: &Batcher,
        rows: &[usize],
        device: &Device,
    ) -> Option<Self> {
        let depth = phase.block_lr.iter().take_while(|lr| lr.is_none()).count();
        if !cfg.cache_frozen || cfg.augment_shift > 0 || depth == 0 {
            return None;
        }
        let shape = cfg.backbone.arch.shapes(batcher.input_shape()).ok()?.get(depth - 1).copied()?;
        if shape.numel().saturating_mul(rows.len()).saturating_mul(4) > CACHE_LIMIT {
            return None;
        }
        let plain = model.clone().valid();
        let lower = &plain.backbone[..depth];
        let chunks: Vec<Features> =
            rows.chunks(256).map(|chunk| forward_stack(lower, Features::Map(batcher.inputs(chunk, device)))).collect();
        let features = match chunks.first()? {
            Features::Map(_) => Features::Map(Tensor::cat(chunks.into_iter().map(map_of).collect(), 0)),
            Features::Flat(_) => Features::Flat(Tensor::cat(chunks.into_iter().map(Features::flat).collect(), 0)),
        };
        let position = rows.iter().enumerate().map(|(p, &r)| (r, p)).collect();
        Some(Self { depth, features, position })
    }

    /// The cached features of dataset rows `idx`, on the autodiff device.
    fn batch(&self, idx: &[usize]) -> Features {
        let pos: Vec<i64> = idx.iter().map(|r| self.position[r] as i64).collect();
        let device = match &self.features {
            Features::Map(t) => t.device(),
            Features::Flat(t) => t.device(),
        };
        let pos = Tensor::<1, Int>::from_data(TensorData::new(pos, [idx.len()]), &device);
        match &self.features {
            Features::Map(t) => Features::Map(Tensor::from_inner(t.clone().select(0, pos))),
            Features::Flat(t) => Features::Flat(Tensor::from_inner(t.clone().select(0, pos))),
        }
    }
}

fn map_of(f: Features) -> Tensor<4> {
    match f {
        Features::Map(t) => t,
        Features::Flat(t) => {
            let [b, n] = t.dims();
            t.reshape([b, n, 1, 1])
        }
    }
}

/// Where the phased loop stands, saved in each checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LoopState {
    /// index of the current phase in [`plan`]
    phase: usize,
    /// steps taken in it
    in_phase: usize,
    /// steps taken in all phases
    step: usize,
    schedule: SchedulePosition,
    /// running loss sum of the current logging window, and the rows it covers
    sum: f64,
    count: usize,
    /// mean loss of the last logging window (None before the first; JSON has no NaN)
    last_loss: Option<f32>,
    /// the finished phases
    records: Vec<PhaseRecord>,
    /// seconds spent in the current phase before the checkpoint
    phase_seconds: f64,
}

/// Writes a checkpoint of the classifier and its optimiser at `st`.
fn checkpoint(
    st: &LoopState,
    name: &str,
    model: &Classifier,
    optim: &ModuleOptimizer,
    rec: &mut dyn Recorder,
) -> Result<()> {
    refuse_nonfinite(weights::first_nonfinite(model), name, st.step)?;
    let mut parts = Parts::new();
    parts.insert(MODEL_PART.into(), module_bytes(model)?);
    parts.insert(OPTIM_PART.into(), optimizer_bytes(optim)?);
    let state =
        serde_json::to_value(st).map_err(|e| TrainError::BadRun { path: name.into(), reason: e.to_string() })?;
    let metric = st.last_loss.map(f64::from).filter(|m| m.is_finite());
    rec.checkpoint(Checkpoint { step: st.step, phase: name.into(), state, parts, metric, metrics_len: 0 })
}

/// Trains a classifier on rows `rows` of `train`; labeled `eval` data is scored after each phase.
/// Checkpoints go to `rec` as its policy says (by default every `max(epoch, 100)` steps and at
/// every phase end); a checkpoint it hands back is continued from, across phase changes.
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
    rec: &mut dyn Recorder,
) -> Result<FinetuneOutcome> {
    cfg.validate()?;
    train.require_labels()?;
    let ad = device.clone().autodiff();
    let input = Batcher::new(train, norm).input_shape();
    // loaded blocks live on a plain device; train() puts every parameter under autodiff
    let mut model = build_model(init, cfg, input, &ad)?.train();
    let batcher = Batcher::new(train, norm);
    let shape = train.shape;
    let mut schedule = BatchSchedule::new(rows.to_vec(), cfg.batch, cfg.seed);
    let log_every = schedule.steps_per_epoch().max(20);
    let policy = rec.policy();
    let every = policy.map(|p| p.every_steps.unwrap_or(schedule.steps_per_epoch().max(100)).max(1));
    let mut optim = cfg.optim.build();
    let mut evaluation = None;
    let phases = plan(cfg);
    let mut st = LoopState {
        phase: 0,
        in_phase: 0,
        step: 0,
        schedule: schedule.position(),
        sum: 0.0,
        count: 0,
        last_loss: None,
        records: Vec::new(),
        phase_seconds: 0.0,
    };
    if let Some(ck) = rec.take_resume() {
        st = serde_json::from_value(ck.state).map_err(|e| TrainError::BadRun {
            path: ck.phase.clone().into(),
            reason: format!("checkpoint state: {e}"),
        })?;
        schedule.seek(st.schedule);
        model = load_module(model, part(&ck.parts, MODEL_PART)?, MODEL_PART)?;
        optim = load_optimizer(optim, part(&ck.parts, OPTIM_PART)?, OPTIM_PART)?;
    }

    let reused = cfg.backbone.reused();
    while st.phase < phases.len() {
        let phase = &phases[st.phase];
        model = apply_freeze(model, phase);
        let mut lr_policy = lr_schedule(&model, phase, cfg.lr);
        // the rate of the topmost unfrozen reused block, for logs and the manifest
        let reused_lr = reused.iter().rev().find_map(|&i| phase.block_lr[i]);
        let name = phase.name.as_str();
        observer.event(Event::PhaseStart { phase: name.into(), steps: phase.steps });
        let t0 = Instant::now();
        let cache = FrozenCache::build(cfg, phase, &model, &batcher, rows, device);
        let elapsed = |st: &LoopState| st.phase_seconds + t0.elapsed().as_secs_f64();
        while st.in_phase < phase.steps {
            let idx = schedule.next_batch();
            let y = batcher.labels(&idx, &ad);
            let logits = if let Some(cache) = &cache {
                model.forward_from(cache.depth, cache.batch(&idx))
            } else if cfg.augment_shift > 0 {
                // one generator per step, so a resumed run shifts its images the same way
                let mut rng = step_rng(cfg.seed, 0x6175_676d, st.step as u64);
                let px: Vec<Vec<u8>> = idx
                    .iter()
                    .map(|&i| augment::random_shift(train.image(i), shape, cfg.augment_shift, &mut rng))
                    .collect();
                model.forward(batcher.inputs_from_pixels(&px, &ad))
            } else {
                model.forward(batcher.inputs(&idx, &ad))
            };
            let loss = cross_entropy(logits, y);
            let value =
                checked_loss(&loss, name, st.step).map_err(|e| name_nonfinite(e, weights::first_nonfinite(&model)))?;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr_policy.step(), model, grads);
            st.step += 1;
            st.in_phase += 1;
            st.schedule = schedule.position();
            st.sum += f64::from(value) * idx.len() as f64;
            st.count += idx.len();
            observer.event(Event::Step { phase: name.into(), step: st.in_phase, loss: value });
            if st.in_phase.is_multiple_of(log_every) || st.in_phase == phase.steps {
                let mean = (st.sum / st.count.max(1) as f64) as f32;
                st.last_loss = Some(mean);
                rec.log(serde_json::json!({
                    "phase": name, "step": st.step, "epoch": schedule.epoch(), "loss": mean,
                    "lr_head": cfg.lr, "lr_backbone": reused_lr,
                    "seconds": elapsed(&st),
                }))?;
                st.sum = 0.0;
                st.count = 0;
            }
            let stop = rec.stop_requested();
            let due = every.is_some_and(|n| st.step.is_multiple_of(n));
            if (due || stop) && st.in_phase < phase.steps {
                let saved = LoopState { phase_seconds: elapsed(&st), ..st.clone() };
                checkpoint(&saved, name, &model, &optim, rec)?;
                if stop {
                    return Err(TrainError::Interrupted { step: st.step });
                }
            }
        }
        evaluation = match eval {
            Some(data) => Some(evaluate(&model, data, None, norm, device)?),
            None => None,
        };
        let eval_accuracy = evaluation.as_ref().map(|e| e.accuracy);
        let last_loss = st.last_loss.unwrap_or(f32::NAN);
        let summary = match eval_accuracy {
            Some(a) => format!("loss {last_loss:.4}, accuracy {:.2}%", 100.0 * a),
            None => format!("loss {last_loss:.4}"),
        };
        observer.event(Event::PhaseEnd { phase: name.into(), summary });
        st.records.push(PhaseRecord {
            name: phase.name.clone(),
            steps: phase.steps,
            backbone_lr: reused_lr,
            trainable_blocks: phase.trainable(),
            block_lr: phase.block_lr.clone(),
            head_lr: cfg.lr,
            final_loss: last_loss,
            eval_accuracy,
            seconds: elapsed(&st),
        });
        st.phase += 1;
        st.in_phase = 0;
        st.phase_seconds = 0.0;
        // a checkpoint at every phase change but the last (the run is complete right after it)
        let stop = rec.stop_requested();
        if (policy.is_some() || stop) && st.phase < phases.len() {
            checkpoint(&st, &phases[st.phase].name, &model, &optim, rec)?;
            if stop {
                return Err(TrainError::Interrupted { step: st.step });
            }
        }
    }
    if evaluation.is_none()
        && let Some(data) = eval
    {
        // resumed after the last phase's evaluation was taken: score again (same weights)
        evaluation = Some(evaluate(&model, data, None, norm, device)?);
    }
    Ok(FinetuneOutcome { model: model.valid(), phases: st.records, evaluation })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Surgery;
    use crate::progress::Silent;
    use burn::optim::SgdConfig;
    use burn::tensor::Tensor;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use strata_data::ImageShape;
    use strata_nn::ArchSpec;
    use strata_nn::block::build_stack;
    use strata_nn::{FeatureShape, seeded};

    const INPUT: InputShape = InputShape { channels: 1, height: 8, width: 8 };
    const ARCH: &str = "conv4-bn-pool,conv4-bn-pool,dense8-bn";

    /// 48 random 8x8 images in two classes that differ in brightness.
    fn toy_data() -> Dataset {
        use rand::Rng;
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let labels: Vec<u32> = (0..48).map(|i| (i % 2) as u32).collect();
        let images = labels
            .iter()
            .flat_map(|&l| (0..64).map(|_| rng.random_range(0..128u8) + 100 * l as u8).collect::<Vec<_>>())
            .collect();
        Dataset {
            images,
            shape: ImageShape::new(1, 8, 8),
            labels: Some(labels),
            class_names: vec!["dark".into(), "bright".into()],
            source: "toy".into(),
        }
    }

    fn parent_blocks(device: &Device) -> Vec<Block> {
        let arch = ArchSpec::parse(ARCH).unwrap();
        seeded(device, 3, || build_stack(&arch.blocks, FeatureShape::Map(1, 8, 8), device))
    }

    fn config(surgery: &Surgery) -> FinetuneConfig {
        let plan = BackbonePlan::from_parent(&ArchSpec::parse(ARCH).unwrap(), surgery, INPUT).unwrap();
        FinetuneConfig {
            backbone: plan,
            head: HeadSpec::new(vec![], 2).unwrap(),
            batch: 8,
            lr: 1e-2,
            seed: 1,
            frozen_steps: 4,
            unfreeze_steps: 4,
            unfreeze_top: 1,
            unfreeze_every: None,
            lr_mult: 0.1,
            lr_decay: 1.0,
            optim: OptimSettings::default(),
            augment_shift: 0,
            cache_frozen: true,
        }
    }

    fn run(cfg: &FinetuneConfig, blocks: Vec<Block>) -> FinetuneOutcome {
        let data = toy_data();
        let norm = Normalization::fit(&data);
        let rows: Vec<usize> = (0..data.len()).collect();
        let device = Device::default();
        finetune(
            Init::Pretrained(blocks),
            cfg,
            &data,
            &rows,
            &norm,
            &device,
            None,
            &mut Silent,
            &mut crate::recorder::Discard,
        )
        .unwrap()
    }

    #[test]
    fn cached_frozen_features_give_the_same_weights_bit_for_bit() {
        // batch-norm blocks frozen on running statistics, a frozen prefix of 2 then 1 block
        let device = Device::default();
        let mut cfg = config(&Surgery { add_hidden: ArchSpec::parse("dense4").unwrap().blocks, ..Default::default() });
        cfg.unfreeze_top = 2;
        cfg.unfreeze_every = Some(2);
        let cached = run(&cfg, parent_blocks(&device));
        cfg.cache_frozen = false;
        let plain = run(&cfg, parent_blocks(&device));
        assert_eq!(weights::to_bytes(&cached.model).unwrap(), weights::to_bytes(&plain.model).unwrap());
        assert_eq!(
            cached.phases.iter().map(|p| p.final_loss).collect::<Vec<_>>(),
            plain.phases.iter().map(|p| p.final_loss).collect::<Vec<_>>()
        );
        // with augmentation the cache does not apply: each step shifts the images anew
        cfg.augment_shift = 1;
        let shifted = plan(&cfg).into_iter().all(|phase| {
            FrozenCache::build(
                &cfg,
                &phase,
                &cached.model,
                &Batcher::new(&toy_data(), &Normalization::fit(&toy_data())),
                &[0, 1],
                &device,
            )
            .is_none()
        });
        assert!(shifted);
    }

    #[test]
    fn gradual_unfreezing_with_discriminative_rates() {
        let mut cfg = config(&Surgery { add_hidden: ArchSpec::parse("dense4").unwrap().blocks, ..Default::default() });
        cfg.unfreeze_top = 3;
        cfg.unfreeze_every = Some(1);
        cfg.lr_decay = 0.5;
        cfg.validate().unwrap();
        let phases = plan(&cfg);
        let names: Vec<&str> = phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["frozen", "unfrozen-1", "unfrozen-2", "unfrozen-3"]);
        assert_eq!(phases.iter().map(|p| p.steps).collect::<Vec<_>>(), [4, 1, 1, 2]);
        // the added block 3 always trains at the head's rate; reused ones join from the top down
        let (lr, top) = (1e-2, 1e-3);
        assert_eq!(phases[0].block_lr, [None, None, None, Some(lr)]);
        assert_eq!(phases[1].block_lr, [None, None, Some(top), Some(lr)]);
        assert_eq!(phases[3].block_lr, [Some(top * 0.25), Some(top * 0.5), Some(top), Some(lr)]);
        cfg.unfreeze_every = Some(2);
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("--unfreeze-every"), "{e}");
    }

    #[test]
    fn reused_update_is_lr_mult_times_the_head_update_under_sgd() {
        let device = Device::default().autodiff();
        let mut cfg = config(&Surgery::default());
        cfg.lr_mult = 0.25;
        let phases = plan(&cfg);
        let unfrozen = &phases[1];
        let model = build_model(Init::Pretrained(parent_blocks(&device)), &cfg, INPUT, &device).unwrap().train();
        let model = apply_freeze(model, unfrozen);
        let weight = |m: &Classifier, head: bool| {
            let block = if head { &m.head[0] } else { &m.backbone[2] };
            block.linear.as_ref().unwrap().weight.val()
        };
        // d(loss)/d(w) = 1 for every weight of both layers: a known gradient
        let loss = weight(&model, false).sum() + weight(&model, true).sum();
        let before = (weight(&model, false).inner(), weight(&model, true).inner());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let mut optim = SgdConfig::new().init();
        let mut policy = lr_schedule(&model, unfrozen, cfg.lr);
        let model = optim.step(policy.step(), model, grads);
        let delta = |after: Tensor<2>, before: Tensor<2>| -> f32 { (before - after).mean().into_scalar() };
        let reused = delta(weight(&model, false).inner(), before.0);
        let head = delta(weight(&model, true).inner(), before.1);
        assert!((head - 1e-2).abs() < 1e-7, "head moved by {head}");
        assert!((reused - 0.25 * 1e-2).abs() < 1e-7, "reused block moved by {reused}");
        // the blocks frozen in this phase got no gradient at all
        assert!(!model.backbone[0].conv.as_ref().unwrap().weight.val().is_require_grad());
    }

    #[test]
    fn replaced_and_added_blocks_train_from_the_start() {
        let device = Device::default();
        let blocks = parent_blocks(&device);
        let surgery = Surgery {
            drop_top: 1,
            replace_top: 1,
            add_hidden: ArchSpec::parse("dense6").unwrap().blocks,
            ..Default::default()
        };
        let mut cfg = config(&surgery);
        cfg.unfreeze_steps = 0;
        let kept = blocks[..2].to_vec();
        let out = run(&cfg, kept.clone());
        assert_eq!(out.model.backbone.len(), 3);
        assert_eq!(weights::to_bytes(&out.model.backbone[0]).unwrap(), weights::to_bytes(&kept[0]).unwrap());
        // block 1 has the parent's shape but not its weights
        let table = |b: &Block| weights::layer_table(b).into_iter().map(|l| (l.name, l.shape)).collect::<Vec<_>>();
        assert_eq!(table(&out.model.backbone[1]), table(&kept[1]));
        assert_ne!(weights::snapshot(&out.model.backbone[1]), weights::snapshot(&kept[1]));
        assert_eq!(out.phases[0].trainable_blocks, vec![1, 2]);
        // param count: conv4(1→4,3x3)+bn, conv4(4→4)+bn, dense 16→6, head 6→2
        let count: usize =
            weights::layer_table(&out.model).iter().filter(|l| !l.name.contains("running")).map(|l| l.numel).sum();
        assert_eq!(count, (36 + 4 + 8) + (144 + 4 + 8) + (16 * 6 + 6) + (6 * 2 + 2));
    }

    #[test]
    fn the_same_seed_gives_the_same_bytes() {
        let device = Device::default();
        let mut cfg = config(&Surgery { replace_top: 1, ..Default::default() });
        cfg.unfreeze_top = 1;
        let a = run(&cfg, parent_blocks(&device));
        let b = run(&cfg, parent_blocks(&device));
        assert_eq!(weights::to_bytes(&a.model).unwrap(), weights::to_bytes(&b.model).unwrap());
    }
}
