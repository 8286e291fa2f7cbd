//! Stage two: a classifier on reused (or fresh) blocks, trained in phases: reused blocks
//! frozen while the head learns, then the top reused blocks unfrozen at a reduced rate
//! (all at once or one more at a time, each block lower down at a further reduced rate).

mod cache;
pub mod config;
pub mod phases;

pub use config::FinetuneConfig;
pub use phases::{Phase, apply_freeze, lr_schedule, plan};

use crate::batch::Batcher;
use crate::checkpoint::{
    Checkpoint, MODEL_PART, OPTIM_PART, Parts, load_module, load_optimizer, module_bytes, name_nonfinite,
    optimizer_bytes, part, refuse_nonfinite,
};
use crate::error::{Result, TrainError};
use crate::evaluate::{Evaluation, evaluate};
use crate::layout::{BackbonePlan, Origin};
use crate::manifest::PhaseRecord;
use crate::progress::{Event, Observer};
use crate::recorder::Recorder;
use crate::step::{BatchSchedule, SchedulePosition, checked_loss, cross_entropy, step_rng};
use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::Device;
use cache::FrozenCache;
use serde::{Deserialize, Serialize};
use std::time::Instant;
use strata_data::{Dataset, Normalization, augment};
use strata_nn::{Block, Classifier, HeadSpec, InputShape, try_seeded, weights};

/// Where the backbone blocks come from.
pub enum Init {
    /// random initialisation: the baseline
    Scratch,
    /// the parent's lower blocks, already loaded, lowest first: as many as
    /// [`BackbonePlan::parent_blocks`] (replaced ones are loaded too, then re-initialised)
    Pretrained(Vec<Block>),
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

fn build_model(init: Init, job: &FinetuneJob, input: InputShape, device: &Device) -> Result<Classifier> {
    let (plan, head, seed) = (job.backbone, job.head, job.cfg.seed);
    match init {
        Init::Scratch => Ok(try_seeded(device, seed, || Classifier::new(&plan.arch, head, input, device))?),
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
            Ok(try_seeded(device, seed, || Classifier::assemble(&plan.arch, parts, head, input, device))?)
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

/// What stage two trains: the settings, the classifier they resolved to, and the data.
#[derive(Clone, Copy)]
pub struct FinetuneJob<'a> {
    /// the stage-two settings
    pub cfg: &'a FinetuneConfig,
    /// the classifier's backbone blocks and where each comes from
    pub backbone: &'a BackbonePlan,
    /// the new head
    pub head: &'a HeadSpec,
    /// the labeled training data
    pub train: &'a Dataset,
    /// the rows of `train` to train on (the label subset)
    pub rows: &'a [usize],
    /// input normalisation (the parent's when blocks are reused)
    pub norm: &'a Normalization,
    /// compute device (without autodiff)
    pub device: &'a Device,
    /// labeled data scored after each phase
    pub eval: Option<&'a Dataset>,
}

/// Trains the classifier of `job` from `init`; `job.eval` is scored after each phase.
/// Checkpoints go to `rec` as its policy says (by default every `max(epoch, 100)` steps and at
/// every phase end); a checkpoint it hands back is continued from, across phase changes.
pub fn finetune(
    init: Init,
    job: &FinetuneJob,
    observer: &mut dyn Observer,
    rec: &mut dyn Recorder,
) -> Result<FinetuneOutcome> {
    let FinetuneJob { cfg, backbone, train, rows, norm, device, eval, .. } = *job;
    cfg.validate_for(backbone.reused().len())?;
    train.require_labels()?;
    let ad = device.clone().autodiff();
    let input = Batcher::new(train, norm).input_shape();
    // loaded blocks live on a plain device; train() puts every parameter under autodiff
    let mut model = build_model(init, job, input, &ad)?.train();
    let batcher = Batcher::new(train, norm);
    let shape = train.shape;
    let mut schedule = BatchSchedule::new(rows.to_vec(), cfg.batch, cfg.seed);
    let log_every = schedule.steps_per_epoch().max(20);
    let policy = rec.policy();
    let every = policy.map(|p| p.every_steps.unwrap_or(schedule.steps_per_epoch().max(100)).max(1));
    let mut optim = cfg.optim().build();
    let mut evaluation = None;
    let phases = plan(cfg, backbone);
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

    let reused = backbone.reused();
    while st.phase < phases.len() {
        let phase = &phases[st.phase];
        model = apply_freeze(model, phase);
        let mut lr_policy = lr_schedule(&model, phase, cfg.lr);
        // the rate of the topmost unfrozen reused block, for logs and the manifest
        let reused_lr = reused.iter().rev().find_map(|&i| phase.block_lr[i]);
        let name = phase.name.as_str();
        observer.event(Event::PhaseStart { phase: name.into(), steps: phase.steps });
        let t0 = Instant::now();
        let cache = FrozenCache::build(cfg, backbone, phase, &model, &batcher, rows, device);
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

    /// Small settings: 4 frozen + 4 unfrozen steps of 8 images.
    fn config() -> FinetuneConfig {
        FinetuneConfig { batch: 8, lr: 1e-2, seed: 1, frozen_steps: 4, unfreeze_steps: 4, ..Default::default() }
    }

    fn backbone(cfg: &FinetuneConfig) -> BackbonePlan {
        BackbonePlan::from_parent(&ArchSpec::parse(ARCH).unwrap(), &cfg.surgery(), INPUT).unwrap()
    }

    fn head() -> HeadSpec {
        HeadSpec::new(vec![], 2).unwrap()
    }

    fn run(cfg: &FinetuneConfig, blocks: Vec<Block>) -> FinetuneOutcome {
        let data = toy_data();
        let norm = Normalization::fit(&data);
        let rows: Vec<usize> = (0..data.len()).collect();
        let device = Device::default();
        let (backbone, head) = (backbone(cfg), head());
        let job = FinetuneJob {
            cfg,
            backbone: &backbone,
            head: &head,
            train: &data,
            rows: &rows,
            norm: &norm,
            device: &device,
            eval: None,
        };
        finetune(Init::Pretrained(blocks), &job, &mut Silent, &mut crate::recorder::Discard).unwrap()
    }

    #[test]
    fn cached_frozen_features_give_the_same_weights_bit_for_bit() {
        // batch-norm blocks frozen on running statistics, a frozen prefix of 2 then 1 block
        let device = Device::default();
        let mut cfg = FinetuneConfig { add_hidden: Some(ArchSpec::parse("dense4").unwrap()), ..config() };
        cfg.unfreeze_top = 2;
        cfg.unfreeze_every = Some(2);
        let cached = run(&cfg, parent_blocks(&device));
        cfg.no_feature_cache = true;
        let plain = run(&cfg, parent_blocks(&device));
        assert_eq!(weights::to_bytes(&cached.model).unwrap(), weights::to_bytes(&plain.model).unwrap());
        assert_eq!(
            cached.phases.iter().map(|p| p.final_loss).collect::<Vec<_>>(),
            plain.phases.iter().map(|p| p.final_loss).collect::<Vec<_>>()
        );
        // with augmentation the cache does not apply: each step shifts the images anew
        cfg.augment_shift = 1;
        let plan_of = backbone(&cfg);
        let shifted = plan(&cfg, &plan_of).into_iter().all(|phase| {
            FrozenCache::build(
                &cfg,
                &plan_of,
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
        let mut cfg = FinetuneConfig { add_hidden: Some(ArchSpec::parse("dense4").unwrap()), ..config() };
        cfg.unfreeze_top = 3;
        cfg.unfreeze_every = Some(1);
        cfg.lr_decay = 0.5;
        cfg.validate_for(3).unwrap();
        let phases = plan(&cfg, &backbone(&cfg));
        let names: Vec<&str> = phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["frozen", "unfrozen-1", "unfrozen-2", "unfrozen-3"]);
        assert_eq!(phases.iter().map(|p| p.steps).collect::<Vec<_>>(), [4, 1, 1, 2]);
        // the added block 3 always trains at the head's rate; reused ones join from the top down
        let (lr, top) = (1e-2, 1e-3);
        assert_eq!(phases[0].block_lr, [None, None, None, Some(lr)]);
        assert_eq!(phases[1].block_lr, [None, None, Some(top), Some(lr)]);
        assert_eq!(phases[3].block_lr, [Some(top * 0.25), Some(top * 0.5), Some(top), Some(lr)]);
        cfg.unfreeze_every = Some(2);
        let e = cfg.validate_for(3).unwrap_err().to_string();
        assert!(e.contains("--unfreeze-every"), "{e}");
    }

    #[test]
    fn reused_update_is_lr_mult_times_the_head_update_under_sgd() {
        let device = Device::default().autodiff();
        let cfg = FinetuneConfig { lr_mult: 0.25, ..config() };
        let plan_of = backbone(&cfg);
        let phases = plan(&cfg, &plan_of);
        let unfrozen = &phases[1];
        let (rows, data, head) = ([0usize], toy_data(), head());
        let norm = Normalization::fit(&data);
        let job = FinetuneJob {
            cfg: &cfg,
            backbone: &plan_of,
            head: &head,
            train: &data,
            rows: &rows,
            norm: &norm,
            device: &device,
            eval: None,
        };
        let model = build_model(Init::Pretrained(parent_blocks(&device)), &job, INPUT, &device).unwrap().train();
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
        let cfg = FinetuneConfig {
            drop_top: 1,
            replace_top: 1,
            add_hidden: Some(ArchSpec::parse("dense6").unwrap()),
            unfreeze_steps: 0,
            ..config()
        };
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
        let cfg = FinetuneConfig { replace_top: 1, unfreeze_top: 1, ..config() };
        let a = run(&cfg, parent_blocks(&device));
        let b = run(&cfg, parent_blocks(&device));
        assert_eq!(weights::to_bytes(&a.model).unwrap(), weights::to_bytes(&b.model).unwrap());
    }
}
