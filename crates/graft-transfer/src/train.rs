//! The training loops: a whole classifier (backbone and head at their own learning rates)
//! and a head alone on cached features. Both minimise the mean cross-entropy with the
//! plan's optimiser (Adam by default) and learning-rate schedule; the classifier loop also
//! stops early on a validation set, saves and resumes its training state, and stops
//! cleanly when asked (see [`TrainControl`]).

use dfdx::prelude::*;
use std::time::Instant;

use graft_data::checksum::fnv1a64;
use graft_nn::{on_workers, Backbone, Classifier, InputBatch, INPUT_LEN};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub use crate::control::{StateFiles, TrainControl, Validation};
pub use crate::head_train::{train_head, train_head_with};
pub use crate::l2sp::L2Sp;
pub use crate::metrics::{accuracy, extract_features, mean_loss};

use crate::metrics::check_width;

use crate::control::diverged;
use crate::early_stop::Stopper;
use crate::examples::{Examples, Shuffler};
use crate::lr_schedule::LrSchedule;
use crate::optim::{Optimizer, OptimizerConfig};
use crate::state::{self, StateHeader};
use crate::TransferError;

/// How long a training run lasts and how it draws batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Mini-batch size.
    pub batch: usize,
    /// Number of optimiser steps.
    pub steps: usize,
}

impl Schedule {
    /// PROTOCOLS.md's default for `n` labelled examples: batch `min(64, n)`,
    /// steps `max(300, 15 epochs)`.
    pub fn target_default(n: usize) -> Self {
        let batch = n.clamp(1, 64);
        let steps = 300.max((15 * n).div_ceil(batch));
        Self { batch, steps }
    }

    /// `epochs` passes over `n` examples at `batch`.
    pub fn epochs(n: usize, batch: usize, epochs: usize) -> Self {
        let batch = batch.clamp(1, n.max(1));
        Self {
            batch,
            steps: epochs * n.div_ceil(batch),
        }
    }
}

/// Learning rates of the two parameter groups; `None` freezes the backbone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LearningRates {
    /// Backbone learning rate, or `None` to keep it frozen (bit-identical).
    pub backbone: Option<f32>,
    /// Head learning rate.
    pub head: f32,
}

/// Everything a training run varies by strategy: per-block learning rates, freezing (static
/// or gradual), and the L2-SP penalty.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainPlan {
    /// Steps and batch size.
    pub schedule: Schedule,
    /// Learning rate of the head.
    pub head_lr: f32,
    /// Learning rate of each backbone block, input first; `None` freezes the block.
    pub block_lrs: Vec<Option<f32>>,
    /// Gradual unfreezing (ULMFiT): every this many steps one more block, from the top,
    /// joins training at its `block_lrs` rate; before that only the head trains.
    pub unfreeze_every: Option<usize>,
    /// L2-SP regularisation towards the starting weights.
    pub l2sp: Option<L2Sp>,
    /// The optimiser (default Adam).
    pub optimizer: OptimizerConfig,
    /// The learning-rate multiplier over the run (default constant).
    pub lr_schedule: LrSchedule,
}

impl TrainPlan {
    /// Every block and the head at their given rates, all trained from the first step.
    pub fn uniform(schedule: Schedule, blocks: usize, lrs: LearningRates) -> Self {
        Self {
            schedule,
            head_lr: lrs.head,
            block_lrs: vec![lrs.backbone; blocks],
            unfreeze_every: None,
            l2sp: None,
            optimizer: OptimizerConfig::default(),
            lr_schedule: LrSchedule::Constant,
        }
    }

    /// Whether block `i` (input first) trains at `step`.
    pub fn block_trains(&self, i: usize, step: usize) -> bool {
        let blocks = self.block_lrs.len();
        let open = match self.unfreeze_every {
            Some(every) => (step / every.max(1)).min(blocks),
            None => blocks,
        };
        self.block_lrs.get(i).is_some_and(Option::is_some) && i + open >= blocks
    }

    /// Leading blocks that need no gradient at `step` (run without a tape).
    pub fn frozen_prefix(&self, step: usize) -> usize {
        (0..self.block_lrs.len())
            .take_while(|&i| !self.block_trains(i, step))
            .count()
    }
}

/// Index of the backbone block a parameter belongs to (its name's first component).
fn block_of(name: &str, blocks: &[&str]) -> Option<usize> {
    let first = name.split('.').next()?;
    blocks.iter().position(|b| *b == first)
}

/// Where a training run is watched from: a labelled set outside the training examples,
/// evaluated every `every` steps to draw the accuracy curve (never used to choose anything).
#[derive(Debug, Clone, Copy)]
pub struct Monitor<'a> {
    /// The examples.
    pub data: &'a Examples,
    /// Steps between evaluations.
    pub every: usize,
}

/// One point of a training curve.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CurvePoint {
    /// Optimiser steps so far.
    pub step: usize,
    /// Training seconds so far (evaluation time excluded).
    pub seconds: f64,
    /// Training FLOPs so far.
    pub flops: f64,
    /// Accuracy on the monitor set.
    pub accuracy: f64,
}

/// What a training run cost.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainStats {
    /// Optimiser steps taken (fewer than planned when stopped early).
    pub steps: usize,
    /// With early stopping: the step whose weights were kept (best validation loss).
    pub best_step: Option<usize>,
    /// Mean loss over the last epoch's worth of steps.
    pub final_loss: f32,
    /// Floating-point operations spent (forward + backward, counted analytically).
    pub flops: f64,
    /// Training seconds (monitor evaluations excluded).
    pub seconds: f64,
    /// Monitor accuracy over training (empty without a monitor).
    pub curve: Vec<CurvePoint>,
}

/// A progress bar on stderr, drawn only when stderr is a terminal.
pub fn progress_bar(len: u64, label: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{msg:>24} [{bar:30}] {pos}/{len} {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(label.to_string());
    bar
}

/// Mean cross-entropy of `logits` against integer labels.
pub(crate) fn cross_entropy<T: Tape<f32, Cpu>>(
    dev: &Cpu,
    logits: Tensor<(usize, usize), f32, Cpu, T>,
    labels: &[usize],
) -> Tensor<Rank0, f32, Cpu, T> {
    let (b, c) = *logits.shape();
    let mut onehot = vec![0.0f32; b * c];
    for (i, &l) in labels.iter().enumerate() {
        onehot[i * c + l] = 1.0;
    }
    let onehot = dev.tensor_from_vec(onehot, (b, c));
    let lsm = logits.log_softmax::<Axis<1>>();
    (lsm * onehot).sum::<Rank0, _>().negate() / b as f32
}

/// Trains `model` on `data` following `plan` (a plain run: see [`train_classifier_with`]).
pub fn train_classifier<B: Backbone<F>, const F: usize>(
    dev: &Cpu,
    model: &mut Classifier<B, F>,
    data: &Examples,
    plan: &TrainPlan,
    seed: u64,
    monitor: Option<Monitor<'_>>,
    bar: &ProgressBar,
) -> Result<TrainStats, TransferError> {
    let ctl = TrainControl::default();
    train_classifier_with(dev, model, data, plan, seed, monitor, bar, ctl)
}

/// Where a classifier run stands; what a training-state file holds besides the tensors.
struct Progress {
    shuffler: Shuffler,
    opt: Optimizer,
    stopper: Stopper,
    step: usize,
    flops: f64,
    seconds: f64,
    curve: Vec<CurvePoint>,
    recent: Recent,
}

impl Progress {
    fn header(&self, plan: &TrainPlan, seed: u64, examples: usize, early: bool) -> StateHeader {
        let (shuffles, pos) = self.shuffler.position();
        StateHeader {
            step: self.step,
            total_steps: plan.schedule.steps,
            seed,
            examples,
            batch: plan.schedule.batch,
            shuffles,
            pos,
            optimizer: self.opt.config().name().into(),
            optimizer_step: self.opt.steps(),
            flops: self.flops,
            seconds: self.seconds,
            recent: self.recent.values.iter().copied().collect(),
            curve: self.curve.clone(),
            early: early
                .then_some(self.stopper.best_loss)
                .flatten()
                .map(|l| (l, self.stopper.best_step, self.stopper.bad)),
            plan: String::new(),
            source: String::new(),
        }
    }
}

/// [`train_classifier`] with early stopping, training-state files, resumption and a stop
/// check (`ctl`). A resumed run continues with the saved weights, optimiser moments, batch
/// order and step, and ends with the same weights as an uninterrupted one.
#[allow(clippy::too_many_arguments)]
pub fn train_classifier_with<B: Backbone<F>, const F: usize>(
    dev: &Cpu,
    model: &mut Classifier<B, F>,
    data: &Examples,
    plan: &TrainPlan,
    seed: u64,
    monitor: Option<Monitor<'_>>,
    bar: &ProgressBar,
    ctl: TrainControl<'_>,
) -> Result<TrainStats, TransferError> {
    check_width(data, INPUT_LEN)?;
    if let Some(v) = ctl.validation {
        check_width(v.data, INPUT_LEN)?;
    }
    let schedule = plan.schedule;
    let mut run = Progress {
        shuffler: Shuffler::new(data.len(), schedule.batch, seed),
        opt: Optimizer::new(plan.optimizer),
        stopper: Stopper::default(),
        step: 0,
        flops: 0.0,
        seconds: 0.0,
        curve: Vec::new(),
        recent: Recent::new(data.len().div_ceil(schedule.batch)),
    };
    let plan_hash = format!("{:016x}", fnv1a64(&[format!("{plan:?}").as_bytes()]));
    let source_hash = ctl.source.map(|h| format!("{h:016x}")).unwrap_or_default();
    if let Some(st) = ctl.resume {
        let h = &st.header;
        let refuse = |what: &str, how: &str| {
            TransferError::Config(format!(
                "{}: saved by a run with {what}; resume with {how}, or start afresh without \
                 --resume",
                st.path.display()
            ))
        };
        if !h.plan.is_empty() && h.plan != plan_hash {
            return Err(refuse(
                "another training plan (strategy, schedule, optimiser or learning rates)",
                "the same --strategy, --schedule, --optimizer and rates",
            ));
        }
        if !h.source.is_empty() && !source_hash.is_empty() && h.source != source_hash {
            return Err(refuse(
                "another source checkpoint (other backbone weights)",
                "the same --checkpoint",
            ));
        }
        if (h.examples, h.batch, h.total_steps, h.seed)
            != (data.len(), schedule.batch, schedule.steps, seed)
        {
            return Err(TransferError::Config(format!(
                "{}: saved for {} examples, batch {}, {} steps, seed {}; this run has {}, {}, \
                 {}, {}; resume with the same --k, --seed and strategy",
                st.path.display(),
                h.examples,
                h.batch,
                h.total_steps,
                h.seed,
                data.len(),
                schedule.batch,
                schedule.steps,
                seed
            )));
        }
        st.restore_weights(model)?;
        st.optimizer(&mut run.opt)?;
        run.shuffler = Shuffler::resume(data.len(), schedule.batch, seed, h.shuffles, h.pos);
        run.stopper = st.stopper();
        (run.step, run.flops, run.seconds) = (h.step, h.flops, h.seconds);
        run.curve = h.curve.clone();
        h.recent.iter().for_each(|&v| run.recent.push(v));
        bar.inc(h.step as u64);
        tracing::info!(path = %st.path.display(), step = h.step, "resuming training");
    }
    let early = ctl.validation.is_some();
    let mut last_saved: Option<std::path::PathBuf> = None;
    let save = |run: &Progress, model: &Classifier<B, F>| -> Result<_, TransferError> {
        let Some(files) = ctl.state else {
            return Ok(None);
        };
        let path = files.state_path();
        let header = StateHeader {
            plan: plan_hash.clone(),
            source: source_hash.clone(),
            ..run.header(plan, seed, data.len(), early)
        };
        state::save(
            &path,
            header,
            model,
            &run.opt,
            early.then_some(&run.stopper),
        )?;
        Ok(Some(path))
    };
    let (mut xb, mut yb) = (Vec::new(), Vec::new());
    let head_prefix = format!("{}.", B::HEAD_NAME);
    let block_flops = B::block_forward_flops();
    let head_fwd = model.head.forward_flops_per_sample() as f64;
    let backbone_fwd: f64 = block_flops.iter().map(|&f| f as f64).sum();
    while run.step < schedule.steps && patient(ctl.validation, &run.stopper) {
        let step = run.step;
        if ctl.should_stop(step) {
            let saved_to = save(&run, model)?;
            return Err(TransferError::Interrupted { step, saved_to });
        }
        let started = Instant::now();
        data.gather(run.shuffler.next_batch(), &mut xb, &mut yb);
        let b = yb.len();
        let x: InputBatch = dev.tensor_from_vec(xb.clone(), (b, Const));
        let frozen = plan.frozen_prefix(step);
        // Forward and backward on the kernels' thread pool (see `graft_nn::on_workers`).
        let net = &*model;
        let (value, mut grads) = on_workers(|| {
            let feats = net
                .backbone
                .forward_frozen(x, frozen, OwnedTape::<f32, Cpu>::default());
            let loss = cross_entropy(dev, net.head.forward(feats), &yb);
            (loss.array(), loss.backward())
        });
        let trained_fwd: f64 = (frozen..block_flops.len())
            .map(|i| block_flops[i] as f64)
            .sum();
        if !value.is_finite() {
            let files = ctl.state;
            return Err(diverged(
                step,
                value,
                model,
                B::NAME,
                files,
                last_saved.as_deref(),
            ));
        }
        run.flops += (backbone_fwd + head_fwd + 2.0 * (trained_fwd + head_fwd)) * b as f64;
        let mult = plan.lr_schedule.multiplier(step, schedule.steps);
        let lr_for = |name: &str| {
            if name.starts_with(&head_prefix) {
                return Some(plan.head_lr * mult);
            }
            let i = block_of(name, B::BLOCKS)?;
            plan.block_trains(i, step)
                .then(|| plan.block_lrs[i])
                .flatten()
                .map(|lr| lr * mult)
        };
        match &plan.l2sp {
            Some(l2sp) => run
                .opt
                .update_with(model, &mut grads, &lr_for, &|name, w, g| {
                    l2sp.add_gradient(name, B::HEAD_NAME, w, g)
                })?,
            None => run.opt.update(model, &mut grads, &lr_for)?,
        }
        run.recent.push(value);
        run.seconds += started.elapsed().as_secs_f64();
        run.step += 1;
        bar.inc(1);
        let done = run.step == schedule.steps;
        if let Some(m) = monitor {
            if run.step % m.every.max(1) == 0 || done {
                let accuracy = accuracy(dev, model, m.data)?;
                run.curve.push(CurvePoint {
                    step: run.step,
                    seconds: run.seconds,
                    flops: run.flops,
                    accuracy,
                });
            }
        }
        if let Some(v) = ctl.validation {
            if run.step % v.early.every.max(1) == 0 || done {
                let loss = mean_loss(dev, model, v.data)?;
                run.stopper.observe(loss, run.step, model, v.early.patience);
            }
        }
        if ctl
            .state
            .and_then(|f| f.every)
            .is_some_and(|e| run.step % e.max(1) == 0 && !done)
        {
            last_saved = save(&run, model)?;
        }
    }
    save(&run, model)?;
    let best_step = early.then_some(run.stopper.best_step);
    if early && run.stopper.best_loss.is_some() {
        run.stopper.restore(model);
        tracing::info!(
            stopped_at = run.step,
            best_step = run.stopper.best_step,
            "early stopping restored the best weights"
        );
    }
    Ok(TrainStats {
        steps: run.step,
        best_step,
        final_loss: run.recent.mean(),
        flops: run.flops,
        seconds: run.seconds,
        curve: run.curve,
    })
}

/// Whether training may go on: no early stopping, or patience not yet exhausted.
pub(crate) fn patient(validation: Option<Validation<'_>>, s: &Stopper) -> bool {
    validation.map_or(true, |v| s.bad < v.early.patience)
}

/// Running mean of the last `n` losses.
pub(crate) struct Recent {
    values: std::collections::VecDeque<f32>,
    n: usize,
}

impl Recent {
    pub(crate) fn new(n: usize) -> Self {
        Self {
            values: Default::default(),
            n: n.max(1),
        }
    }
    pub(crate) fn push(&mut self, v: f32) {
        if self.values.len() == self.n {
            self.values.pop_front();
        }
        self.values.push_back(v);
    }
    pub(crate) fn mean(&self) -> f32 {
        self.values.iter().sum::<f32>() / self.values.len().max(1) as f32
    }
}
