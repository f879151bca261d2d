//! Transfer strategies: how a pretrained backbone is reused on the target task.
//!
//! Every strategy is a value with documented defaults; [`Strategy::ALL`] lists each with
//! them. Learning rates follow PROTOCOLS.md (1e-3 for anything new, 1e-4 for pretrained
//! weights) unless a strategy says otherwise.

use std::time::Instant;

use dfdx::tensor::Cpu;
use graft_cuda::Backend;
use graft_nn::{Backbone, Classifier, Head};
use indicatif::ProgressBar;

use crate::control::{StateFiles, StopCheck, TrainControl, Validation};
use crate::early_stop::{carve, EarlyStopping};
use crate::examples::Examples;
use crate::head_gpu::train_head_on_backend;
use crate::head_train::train_head_with;
use crate::l2sp::L2Sp;
use crate::metrics::accuracy;
use crate::options::{probe_features, TrainOptions};
use crate::train::{
    is_bias_or_norm, progress_bar, train_classifier_with, CurvePoint, LearningRates, Monitor,
    Schedule, TrainPlan, TrainStats,
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
    /// BitFit (Ben Zaken et al., 2021): only the backbone's biases and BatchNorm scales (its
    /// running statistics frozen) train, at 1e-3, with a new head; a target task then stores
    /// those vectors and the head, not the whole network.
    BitFit,
}

impl Strategy {
    /// Every strategy with its defaults, baseline first.
    pub const ALL: [Strategy; 9] = [
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
        Strategy::BitFit,
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
            Strategy::BitFit => "bitfit",
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
                 partial[:N], gradual-unfreeze, discriminative[:DECAY], l2-sp[:ALPHA:BETA], lp-ft, \
                 bitfit"
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

/// How a recipe's target network starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// A new network, randomly initialised (from the run's seed).
    Scratch,
    /// The pretrained backbone with a new, randomly initialised head.
    NewHead,
    /// The pretrained backbone with a head trained alone on its features under this plan
    /// (a linear probe; the backbone's blocks are not trained).
    ProbedHead(TrainPlan),
}

/// A strategy as data: how its network starts, then the plans of the phases that train
/// the whole classifier, in order. [`run_strategy_with`] runs any recipe.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipe {
    /// The starting network.
    pub start: Start,
    /// Classifier training phases (each continues from the previous one's weights).
    pub phases: Vec<TrainPlan>,
}

impl Strategy {
    /// The recipe of this strategy for a backbone with `blocks` blocks (`pretrained`, for
    /// L2-SP's pull) on `examples` training examples under `schedule` (every phase's).
    /// Plans use the default optimiser and a constant rate; the run sets its own.
    pub fn recipe<B: Backbone<F>, const F: usize>(
        self,
        pretrained: &B,
        examples: usize,
        schedule: Schedule,
    ) -> Recipe {
        let blocks = B::BLOCKS.len();
        let fine_tune = LearningRates {
            backbone: Some(FINE_TUNE_BACKBONE_LR),
            head: HEAD_LR,
        };
        // Phases that train the backbone take the network's own floor on steps; a probe,
        // which trains only the head, keeps `schedule`.
        let schedule_of_probe = schedule;
        let schedule = backbone_schedule::<B, F>(examples, schedule);
        let fine_tune_plan = TrainPlan::uniform(schedule, blocks, fine_tune);
        let new_head = |plan: TrainPlan| Recipe {
            start: Start::NewHead,
            phases: vec![plan],
        };
        match self {
            Strategy::Scratch => Recipe {
                start: Start::Scratch,
                phases: vec![TrainPlan::uniform(schedule, blocks, every_rate(HEAD_LR))],
            },
            Strategy::FineTune => new_head(fine_tune_plan),
            Strategy::Partial { frozen } => {
                let frozen = frozen.unwrap_or(blocks.saturating_sub(1)).min(blocks);
                let mut plan = fine_tune_plan;
                plan.block_lrs
                    .iter_mut()
                    .take(frozen)
                    .for_each(|lr| *lr = None);
                new_head(plan)
            }
            Strategy::GradualUnfreeze => {
                let mut plan = fine_tune_plan;
                let epoch = examples.div_ceil(schedule.batch);
                plan.unfreeze_every = Some(epoch.max(schedule.steps / (blocks + 1)));
                new_head(plan)
            }
            Strategy::Discriminative { decay } => {
                let mut plan = fine_tune_plan;
                for (i, lr) in plan.block_lrs.iter_mut().enumerate() {
                    *lr = Some(HEAD_LR / decay.powi((blocks - i) as i32));
                }
                new_head(plan)
            }
            Strategy::L2Sp { alpha, beta } => {
                let mut plan = fine_tune_plan;
                plan.l2sp = Some(L2Sp {
                    alpha,
                    beta,
                    start: pretrained.snapshot().into_iter().collect(),
                });
                new_head(plan)
            }
            Strategy::BitFit => {
                let mut plan = TrainPlan::uniform(schedule, blocks, every_rate(HEAD_LR));
                plan.biases_only = true;
                new_head(plan)
            }
            Strategy::LinearProbe | Strategy::LpFt => Recipe {
                start: Start::ProbedHead(TrainPlan::uniform(schedule_of_probe, 0, fine_tune)),
                phases: match self {
                    Strategy::LpFt => vec![TrainPlan::uniform(
                        schedule,
                        blocks,
                        every_rate(FINE_TUNE_BACKBONE_LR),
                    )],
                    _ => Vec::new(),
                },
            },
        }
    }
}

/// The same learning rate for the backbone and the head.
fn every_rate(lr: f32) -> LearningRates {
    LearningRates {
        backbone: Some(lr),
        head: lr,
    }
}

impl Recipe {
    /// Parameters the recipe trains on `backbone` with a head of `classes` classes: every one
    /// from scratch; else the head and each backbone parameter some phase gives a learning
    /// rate (its block trains, and with `biases_only` it is a bias or normalisation scale).
    pub fn trained_params<B: Backbone<F>, const F: usize>(
        &self,
        backbone: &B,
        classes: usize,
    ) -> u64 {
        let head = (F as u64 + 1) * classes as u64;
        let mut total = head;
        backbone.visit_params(&mut |name, p| {
            let trains = B::block_of_param(name).is_some_and(|block| {
                self.start == Start::Scratch
                    || self.phases.iter().any(|plan| {
                        plan.block_lrs.get(block).is_some_and(Option::is_some)
                            && (!plan.biases_only || is_bias_or_norm(name))
                    })
            });
            if trains {
                total += p.numel() as u64;
            }
        });
        total
    }
}

/// `schedule` shortened to `B`'s own default when that is shorter (a large pretrained
/// network's `Backbone::MIN_TRAIN_STEPS`); the same for PROTOCOLS.md's networks.
fn backbone_schedule<B: Backbone<F>, const F: usize>(
    examples: usize,
    schedule: Schedule,
) -> Schedule {
    let own = Schedule::training_default(examples, B::MIN_TRAIN_STEPS);
    Schedule {
        steps: schedule.steps.min(own.steps),
        ..schedule
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
    pub curve: Vec<CurvePoint>,
    /// Where the new head was trained: `cuda:N` when graft-cuda trained a linear probe's
    /// head on a GPU, else `cpu` (the backbone always runs on the CPU).
    pub head_device: String,
    /// Parameters this run trained (the new head included): what a target task must store
    /// beside the shared pretrained network (everything for `scratch`).
    pub trained_params: u64,
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
    let carved = carve_validation(train, opts);
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
    let recipe = strategy.recipe(pretrained, train.len(), schedule);
    let files = opts.state_dir.as_ref().map(|dir| StateFiles {
        dir: dir.clone(),
        name: format!("{}-n{}-seed{seed}", strategy.name(), train.len()),
        every: opts.save_every,
    });
    let resume = opts.resume.as_deref().map(crate::state::load).transpose()?;
    let interrupted = |_: usize| crate::interrupt::requested();
    let ctl = TrainControl {
        validation,
        state: files.as_ref(),
        resume: resume.as_ref(),
        stop: opts
            .stop_on_interrupt
            .then_some(&interrupted as &StopCheck<'_>),
        // Hashed only where a state is saved or resumed: it costs one pass over the weights.
        source: (opts.resume.is_some() || files.is_some())
            .then(|| crate::options::weights_hash(pretrained)),
    };
    let probe_steps = match &recipe.start {
        Start::ProbedHead(plan) => plan.schedule.steps,
        _ => 0,
    };
    let steps = probe_steps
        + recipe
            .phases
            .iter()
            .map(|p| p.schedule.steps)
            .sum::<usize>();
    let bar = progress_bar(steps as u64, strategy.name());
    let start = Instant::now();
    let run = RecipeRun {
        dev: &dev,
        pretrained,
        train,
        seed,
        monitor,
        opts,
        ctl,
        bar: &bar,
        start,
    };
    let outcome = run.run(recipe);
    bar.finish_and_clear();
    outcome
}

/// A validation part carved from `train` when `opts` asks for early stopping (with a
/// warning, and none, when a class has too few labels).
fn carve_validation(
    train: &Examples,
    opts: &TrainOptions,
) -> Option<((Examples, Examples), EarlyStopping)> {
    let es = opts.early_stopping?;
    let parts = carve(train, &es);
    if parts.is_none() {
        tracing::warn!(
            min_per_class = es.min_per_class,
            "too few labels per class to carve a validation part; early stopping off"
        );
    }
    parts.map(|parts| (parts, es))
}

/// What every phase of one strategy run shares.
struct RecipeRun<'a, B: Backbone<F>, const F: usize> {
    /// Seeded with the run's seed: every new weight is drawn from it, in phase order.
    dev: &'a Cpu,
    pretrained: &'a B,
    /// The training examples (without the validation part).
    train: &'a Examples,
    seed: u64,
    monitor: Option<Monitor<'a>>,
    opts: &'a TrainOptions,
    ctl: TrainControl<'a>,
    bar: &'a ProgressBar,
    /// When the run started (the probe's seconds include feature extraction).
    start: Instant,
}

impl<B: Backbone<F>, const F: usize> RecipeRun<'_, B, F> {
    /// The starting network, then each phase from where the last one ended.
    fn run(&self, recipe: Recipe) -> Result<StrategyRun<B, F>, TransferError> {
        let classes = self.train.num_classes;
        let trained = recipe.trained_params(self.pretrained, classes);
        let mut head_device = "cpu".to_owned();
        let (mut model, mut stats) = match recipe.start {
            Start::Scratch => (Classifier::<B, F>::new(self.dev, classes)?, None),
            Start::NewHead => {
                let backbone = self.pretrained.clone();
                (
                    Classifier::with_new_head(self.dev, backbone, classes)?,
                    None,
                )
            }
            Start::ProbedHead(plan) => {
                let (model, stats, device) = self.probe(plan, recipe.phases.is_empty())?;
                head_device = device;
                (model, Some(stats))
            }
        };
        for plan in recipe.phases {
            let phase = train_classifier_with(
                self.dev,
                &mut model,
                self.train,
                &self.with_opts(plan),
                self.seed,
                self.monitor,
                self.bar,
                self.ctl,
            )?;
            stats = Some(match stats {
                Some(before) => before.then(phase),
                None => phase,
            });
        }
        let stats = stats.ok_or_else(|| {
            TransferError::Config("a strategy recipe with nothing to train".into())
        })?;
        Ok(StrategyRun {
            model,
            wall_seconds: stats.seconds,
            flops: stats.flops,
            curve: stats.curve,
            head_device,
            trained_params: trained,
        })
    }

    /// `plan` with the run's optimiser and learning-rate schedule.
    fn with_opts(&self, mut plan: TrainPlan) -> TrainPlan {
        plan.optimizer = self.opts.optimizer;
        plan.lr_schedule = self.opts.lr_schedule;
        plan
    }

    /// A linear probe: the pretrained backbone's features (cached when the options say
    /// so), a new head trained alone on them, the device it trained on. When it is the
    /// `last` phase, the curve is one point: the probe's monitor accuracy at its end (the
    /// curve of LP-FT is its fine-tuning's).
    fn probe(
        &self,
        plan: TrainPlan,
        last: bool,
    ) -> Result<(Classifier<B, F>, TrainStats, String), TransferError> {
        let cache = self.opts.feature_cache.as_deref();
        let (features, _) = probe_features(self.dev, self.pretrained, self.train, cache)?;
        let validation = self.ctl.validation;
        let val_features = match validation {
            Some(v) => Some(probe_features(self.dev, self.pretrained, v.data, cache)?.0),
            None => None,
        };
        let extract_flops = B::forward_flops_per_sample() as f64 * self.train.len() as f64;
        let mut head = Head::<F>::new(self.dev, self.train.num_classes)?;
        let head_ctl = TrainControl {
            validation: val_features.as_ref().map(|data| Validation {
                data,
                early: validation.map(|v| v.early).unwrap_or_default(),
            }),
            stop: self.ctl.stop,
            ..TrainControl::default()
        };
        let plan = self.with_opts(plan);
        let (probe, device) = self.train_head(&mut head, &features, &plan, head_ctl)?;
        let model = Classifier {
            backbone: self.pretrained.clone(),
            head,
        };
        let mut stats = TrainStats {
            flops: extract_flops + probe.flops,
            seconds: self.start.elapsed().as_secs_f64(),
            ..probe
        };
        if let (Some(m), true) = (self.monitor, last) {
            stats.curve = vec![CurvePoint {
                step: stats.steps,
                seconds: stats.seconds,
                flops: stats.flops,
                accuracy: accuracy(self.dev, &model, m.data)?,
            }];
        }
        Ok((model, stats, device))
    }

    /// Trains the probe's head: through graft-cuda on a GPU with cuBLAS when there is no
    /// early stopping (the same steps as `train_head_with`, equal within f32 rounding:
    /// head_gpu.rs), else on the CPU. Returns the statistics and `cpu` or `cuda:N`.
    fn train_head(
        &self,
        head: &mut Head<F>,
        features: &Examples,
        plan: &TrainPlan,
        head_ctl: TrainControl<'_>,
    ) -> Result<(TrainStats, String), TransferError> {
        let backend = graft_cuda::select_backend();
        if let (Backend::Cuda(info), None) = (&backend, &head_ctl.validation) {
            if graft_cuda::linear_head_on_device(&backend) {
                let stats =
                    train_head_on_backend(&backend, head, features, plan, self.seed, self.bar)?;
                if let Some(stats) = stats {
                    return Ok((stats, format!("cuda:{}", info.ordinal)));
                }
            }
        }
        let stats = train_head_with(
            self.dev, head, features, plan, self.seed, self.bar, head_ctl,
        )?;
        Ok((stats, "cpu".to_owned()))
    }
}

/// Test accuracy of a trained run.
pub fn evaluate<B: Backbone<F>, const F: usize>(
    run: &StrategyRun<B, F>,
    test: &Examples,
) -> Result<f64, TransferError> {
    accuracy(&Cpu::default(), &run.model, test)
}
