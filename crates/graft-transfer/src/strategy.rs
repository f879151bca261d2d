//! Transfer strategies: how a pretrained backbone is reused on the target task.
//!
//! Every strategy is a value with documented defaults; [`Strategy::ALL`] lists each with
//! them. Learning rates follow PROTOCOLS.md (1e-3 for anything new, 1e-4 for pretrained
//! weights) unless a strategy says otherwise.

use std::time::Instant;

use dfdx::tensor::Cpu;
use graft_cuda::Backend;
use graft_nn::{Backbone, Classifier, Head};

use crate::control::StopCheck;
use crate::early_stop::carve;
use crate::examples::Examples;
use crate::head_gpu::train_head_on_backend;
use crate::options::{probe_features, TrainOptions};
use crate::train::{
    accuracy, progress_bar, train_classifier_with, train_head_with, L2Sp, LearningRates, Monitor,
    Schedule, StateFiles, TrainControl, TrainPlan, TrainStats, Validation,
};
use crate::TransferError;

/// Learning rate of anything trained from scratch and of every new head (PROTOCOLS.md).
pub const HEAD_LR: f32 = 1e-3;
/// Learning rate of a pretrained backbone when fine-tuning (PROTOCOLS.md).
pub const FINE_TUNE_BACKBONE_LR: f32 = 1e-4;
/// ULMFiT's factor between the learning rates of adjacent blocks.
pub const DISCRIMINATIVE_DECAY: f32 = 2.6;
/// L2-SP's default pull towards the pretrained weights.
pub const L2SP_ALPHA: f32 = 0.01;
/// L2-SP's default weight decay on the new head.
pub const L2SP_BETA: f32 = 0.01;

/// How the target network is obtained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strategy {
    /// The same network, randomly initialised, trained on the target only (the baseline).
    Scratch,
    /// Pretrained backbone frozen; features computed once; a new head trained on them.
    LinearProbe,
    /// Pretrained backbone (learning rate 1e-4) and a new head (1e-3) trained together.
    FineTune,
    /// The first `frozen` blocks frozen, the rest fine-tuned (default: all but the top block).
    Partial {
        /// Blocks frozen, counted from the input; `None` means all but the top block.
        frozen: Option<usize>,
    },
    /// ULMFiT's gradual unfreezing: the head alone first, then one more block from the top
    /// at each stage; a stage is one epoch or `steps / (blocks + 1)` steps, whichever is longer
    /// (with a handful of labels an epoch is a single step).
    GradualUnfreeze,
    /// ULMFiT's discriminative learning rates: the head at 1e-3, each block below it
    /// `decay` times slower than the one above.
    Discriminative {
        /// Ratio between adjacent blocks' learning rates (ULMFiT: 2.6).
        decay: f32,
    },
    /// Fine-tuning with `alpha/2 |w - w0|^2` on the pretrained weights and `beta/2 |w|^2` on
    /// the new head (Li et al., 2018).
    L2Sp {
        /// Pull towards the pretrained weights.
        alpha: f32,
        /// Decay of the new head.
        beta: f32,
    },
    /// Linear probe first, then fine-tuning of everything from the probed head, both at 1e-4
    /// (Kumar et al., 2022, "Fine-Tuning can Distort Pretrained Features").
    LpFt,
}

impl Strategy {
    /// Every strategy with its defaults, baseline first.
    pub const ALL: [Strategy; 8] = [
        Strategy::Scratch,
        Strategy::LinearProbe,
        Strategy::FineTune,
        Strategy::Partial { frozen: None },
        Strategy::GradualUnfreeze,
        Strategy::Discriminative {
            decay: DISCRIMINATIVE_DECAY,
        },
        Strategy::L2Sp {
            alpha: L2SP_ALPHA,
            beta: L2SP_BETA,
        },
        Strategy::LpFt,
    ];

    /// The strategy's id in PROTOCOLS.md and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Scratch => "scratch",
            Strategy::LinearProbe => "linear-probe",
            Strategy::FineTune => "fine-tune",
            Strategy::Partial { .. } => "partial",
            Strategy::GradualUnfreeze => "gradual-unfreeze",
            Strategy::Discriminative { .. } => "discriminative",
            Strategy::L2Sp { .. } => "l2-sp",
            Strategy::LpFt => "lp-ft",
        }
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Strategy::Partial { frozen: Some(n) } => write!(f, "partial:{n}"),
            Strategy::Discriminative { decay } if decay != DISCRIMINATIVE_DECAY => {
                write!(f, "discriminative:{decay}")
            }
            Strategy::L2Sp { alpha, beta } if (alpha, beta) != (L2SP_ALPHA, L2SP_BETA) => {
                write!(f, "l2-sp:{alpha}:{beta}")
            }
            s => f.write_str(s.name()),
        }
    }
}

impl std::str::FromStr for Strategy {
    type Err = TransferError;
    /// `name` or `name:PARAMS`: `partial:N`, `discriminative:DECAY`, `l2-sp:ALPHA:BETA`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            TransferError::Config(format!(
                "unknown strategy `{s}`: expected one of scratch, linear-probe, fine-tune, \
                 partial[:N], gradual-unfreeze, discriminative[:DECAY], l2-sp[:ALPHA:BETA], lp-ft"
            ))
        };
        let (name, params) = s.split_once(':').unwrap_or((s, ""));
        let nums: Vec<f32> = if params.is_empty() {
            Vec::new()
        } else {
            params
                .split(':')
                .map(|p| p.parse::<f32>().map_err(|_| bad()))
                .collect::<Result<_, _>>()?
        };
        let positive = nums.iter().all(|v| v.is_finite() && *v >= 0.0);
        Ok(match (name, nums.as_slice()) {
            ("partial", []) => Strategy::Partial { frozen: None },
            ("partial", [n]) if positive && n.fract() == 0.0 => Strategy::Partial {
                frozen: Some(*n as usize),
            },
            ("discriminative", []) => Strategy::Discriminative {
                decay: DISCRIMINATIVE_DECAY,
            },
            ("discriminative", [d]) if *d >= 1.0 => Strategy::Discriminative { decay: *d },
            ("l2-sp", []) => Strategy::L2Sp {
                alpha: L2SP_ALPHA,
                beta: L2SP_BETA,
            },
            ("l2-sp", [a, b]) if positive => Strategy::L2Sp {
                alpha: *a,
                beta: *b,
            },
            (_, []) => Strategy::ALL
                .into_iter()
                .find(|st| st.name() == name)
                .ok_or_else(bad)?,
            _ => return Err(bad()),
        })
    }
}

/// The outcome of one strategy on one k-shot training set.
#[derive(Debug, Clone)]
pub struct StrategyRun<B: Backbone<F>, const F: usize> {
    /// The trained target network.
    pub model: Classifier<B, F>,
    /// Seconds from start to trained model (feature extraction included, monitor
    /// evaluations excluded).
    pub wall_seconds: f64,
    /// Training FLOPs (feature extraction included).
    pub flops: f64,
    /// Monitor accuracy over training (empty without a monitor).
    pub curve: Vec<crate::train::CurvePoint>,
    /// Where the new head was trained: `cuda:N` when graft-cuda trained a linear probe's
    /// head on a GPU, else `cpu` (the backbone always runs on the CPU).
    pub head_device: String,
}

/// Runs `strategy` on `train`, reusing `pretrained` where the strategy does. `seed` seeds
/// the new weights and the batch order; `monitor` (optional) draws the accuracy curve.
/// PROTOCOLS.md's training settings; see [`run_strategy_with`] for the others.
pub fn run_strategy<B: Backbone<F>, const F: usize>(
    strategy: Strategy,
    pretrained: &B,
    train: &Examples,
    seed: u64,
    monitor: Option<Monitor<'_>>,
) -> Result<StrategyRun<B, F>, TransferError> {
    run_strategy_with(
        strategy,
        pretrained,
        train,
        seed,
        monitor,
        &TrainOptions::default(),
    )
}

/// [`run_strategy`] with `opts`: optimiser and schedule for every phase; early stopping on
/// a validation part carved from `train` (see [`crate::early_stop`]); training-state files,
/// resumption and Ctrl-C for the phases that train the whole classifier; the feature cache
/// for linear probes.
pub fn run_strategy_with<B: Backbone<F>, const F: usize>(
    strategy: Strategy,
    pretrained: &B,
    train: &Examples,
    seed: u64,
    monitor: Option<Monitor<'_>>,
    opts: &TrainOptions,
) -> Result<StrategyRun<B, F>, TransferError> {
    let dev = Cpu::seed_from_u64(seed);
    let carved = match opts.early_stopping {
        Some(es) => {
            let c = carve(train, &es);
            if c.is_none() {
                tracing::warn!(
                    min_per_class = es.min_per_class,
                    "too few labels per class to carve a validation part; early stopping off"
                );
            }
            c.map(|parts| (parts, es))
        }
        None => None,
    };
    let (train, validation) = match &carved {
        Some(((t, v), es)) => (
            t,
            Some(Validation {
                data: v,
                early: *es,
            }),
        ),
        None => (train, None),
    };
    let schedule = Schedule::target_default(train.len());
    let blocks = B::BLOCKS.len();
    let bar = progress_bar(schedule.steps as u64, strategy.name());
    let start = Instant::now();
    let mut head_device = "cpu".to_owned();
    let classes = train.num_classes;
    let fine_tune = LearningRates {
        backbone: Some(FINE_TUNE_BACKBONE_LR),
        head: HEAD_LR,
    };
    let files = opts.state_dir.as_ref().map(|dir| StateFiles {
        dir: dir.clone(),
        name: format!("{}-n{}-seed{seed}", strategy.name(), train.len()),
        every: opts.save_every,
    });
    let resume = opts.resume.as_deref().map(crate::state::load).transpose()?;
    let interrupted = |_: usize| crate::interrupt::requested();
    let stop: Option<&StopCheck<'_>> = opts.stop_on_interrupt.then_some(&interrupted);
    let ctl = TrainControl {
        validation,
        state: files.as_ref(),
        resume: resume.as_ref(),
        stop,
        // Hashed only where a state is saved or resumed: it costs one pass over the weights.
        source: (opts.resume.is_some() || files.is_some())
            .then(|| crate::options::weights_hash(pretrained)),
    };
    let with_opts = |mut plan: TrainPlan| {
        plan.optimizer = opts.optimizer;
        plan.lr_schedule = opts.lr_schedule;
        plan
    };
    let run =
        |model: &mut Classifier<B, F>, plan: TrainPlan| -> Result<TrainStats, TransferError> {
            train_classifier_with(
                &dev,
                model,
                train,
                &with_opts(plan),
                seed,
                monitor,
                &bar,
                ctl,
            )
        };
    let (model, stats) = match strategy {
        Strategy::Scratch => {
            let mut model = Classifier::<B, F>::new(&dev, classes)?;
            let lrs = LearningRates {
                backbone: Some(HEAD_LR),
                head: HEAD_LR,
            };
            let stats = run(&mut model, TrainPlan::uniform(schedule, blocks, lrs))?;
            (model, stats)
        }
        Strategy::FineTune => {
            let mut model = Classifier::with_new_head(&dev, pretrained.clone(), classes)?;
            let stats = run(&mut model, TrainPlan::uniform(schedule, blocks, fine_tune))?;
            (model, stats)
        }
        Strategy::Partial { frozen } => {
            let frozen = frozen.unwrap_or(blocks.saturating_sub(1)).min(blocks);
            let mut model = Classifier::with_new_head(&dev, pretrained.clone(), classes)?;
            let mut plan = TrainPlan::uniform(schedule, blocks, fine_tune);
            plan.block_lrs
                .iter_mut()
                .take(frozen)
                .for_each(|lr| *lr = None);
            let stats = run(&mut model, plan)?;
            (model, stats)
        }
        Strategy::GradualUnfreeze => {
            let mut model = Classifier::with_new_head(&dev, pretrained.clone(), classes)?;
            let mut plan = TrainPlan::uniform(schedule, blocks, fine_tune);
            let epoch = train.len().div_ceil(schedule.batch);
            plan.unfreeze_every = Some(epoch.max(schedule.steps / (blocks + 1)));
            let stats = run(&mut model, plan)?;
            (model, stats)
        }
        Strategy::Discriminative { decay } => {
            let mut model = Classifier::with_new_head(&dev, pretrained.clone(), classes)?;
            let mut plan = TrainPlan::uniform(schedule, blocks, fine_tune);
            for (i, lr) in plan.block_lrs.iter_mut().enumerate() {
                *lr = Some(HEAD_LR / decay.powi((blocks - i) as i32));
            }
            let stats = run(&mut model, plan)?;
            (model, stats)
        }
        Strategy::L2Sp { alpha, beta } => {
            let mut model = Classifier::with_new_head(&dev, pretrained.clone(), classes)?;
            let mut plan = TrainPlan::uniform(schedule, blocks, fine_tune);
            plan.l2sp = Some(L2Sp {
                alpha,
                beta,
                start: pretrained.snapshot().into_iter().collect(),
            });
            let stats = run(&mut model, plan)?;
            (model, stats)
        }
        Strategy::LinearProbe | Strategy::LpFt => {
            let cache = opts.feature_cache.as_deref();
            let (features, _) = probe_features(&dev, pretrained, train, cache)?;
            let val_features = match validation {
                Some(v) => Some(probe_features(&dev, pretrained, v.data, cache)?.0),
                None => None,
            };
            let extract_flops = B::forward_flops_per_sample() as f64 * train.len() as f64;
            let mut head = Head::<F>::new(&dev, classes)?;
            let head_plan = with_opts(TrainPlan::uniform(schedule, 0, fine_tune));
            let head_ctl = TrainControl {
                validation: val_features.as_ref().map(|data| Validation {
                    data,
                    early: validation.map(|v| v.early).unwrap_or_default(),
                }),
                stop: ctl.stop,
                ..TrainControl::default()
            };
            // On a GPU with cuBLAS (and without early stopping) graft-cuda trains the head:
            // the same steps as `train_head_with`, equal within f32 rounding (head_gpu.rs).
            let backend = graft_cuda::select_backend();
            let on_gpu = match (&backend, &head_ctl.validation) {
                (Backend::Cuda(info), None) if graft_cuda::linear_head_on_device(&backend) => {
                    let stats = train_head_on_backend(
                        &backend, &mut head, &features, &head_plan, seed, &bar,
                    )?;
                    if stats.is_some() {
                        head_device = format!("cuda:{}", info.ordinal);
                    }
                    stats
                }
                _ => None,
            };
            let probe = match on_gpu {
                Some(stats) => stats,
                None => {
                    train_head_with(&dev, &mut head, &features, &head_plan, seed, &bar, head_ctl)?
                }
            };
            let mut model = Classifier {
                backbone: pretrained.clone(),
                head,
            };
            let mut stats = TrainStats {
                flops: extract_flops + probe.flops,
                seconds: start.elapsed().as_secs_f64(),
                ..probe
            };
            if strategy == Strategy::LpFt {
                let lrs = LearningRates {
                    backbone: Some(FINE_TUNE_BACKBONE_LR),
                    head: FINE_TUNE_BACKBONE_LR,
                };
                bar.set_length(2 * schedule.steps as u64);
                let ft = run(&mut model, TrainPlan::uniform(schedule, blocks, lrs))?;
                stats = TrainStats {
                    flops: stats.flops + ft.flops,
                    seconds: stats.seconds + ft.seconds,
                    curve: ft
                        .curve
                        .into_iter()
                        .map(|mut p| {
                            p.seconds += stats.seconds;
                            p.flops += stats.flops;
                            p
                        })
                        .collect(),
                    ..ft
                };
            } else if let Some(m) = monitor {
                stats.curve = vec![crate::train::CurvePoint {
                    step: stats.steps,
                    seconds: stats.seconds,
                    flops: stats.flops,
                    accuracy: accuracy(&dev, &model, m.data)?,
                }];
            }
            (model, stats)
        }
    };
    bar.finish_and_clear();
    Ok(StrategyRun {
        model,
        wall_seconds: stats.seconds,
        flops: stats.flops,
        curve: stats.curve,
        head_device,
    })
}

/// Test accuracy of a trained run.
pub fn evaluate<B: Backbone<F>, const F: usize>(
    run: &StrategyRun<B, F>,
    test: &Examples,
) -> Result<f64, TransferError> {
    accuracy(&Cpu::default(), &run.model, test)
}
