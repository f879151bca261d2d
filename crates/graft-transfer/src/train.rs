//! The training loops: a whole classifier (backbone and head at their own learning rates)
//! and a head alone on cached features. Both minimise the mean cross-entropy with Adam.

use dfdx::prelude::*;
use std::time::Instant;

use graft_nn::{Backbone, Classifier, Head, InputBatch, Parameters, INPUT_LEN};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::examples::{Examples, Shuffler};
use crate::optim::{Adam, AdamConfig};
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

/// L2-SP (Li, Grandvalet & Davoine, 2018): `alpha/2 |w - w0|^2` over the pretrained
/// (backbone) weights plus `beta/2 |w|^2` over the new head.
#[derive(Debug, Clone, PartialEq)]
pub struct L2Sp {
    /// Weight of the pull towards the starting point.
    pub alpha: f32,
    /// Weight decay of the new head.
    pub beta: f32,
    /// The starting (pretrained) backbone weights, by parameter name.
    pub start: std::collections::HashMap<String, Vec<f32>>,
}

impl L2Sp {
    /// The penalty's value for `model`'s current weights (`head` names the head's module).
    pub fn penalty(&self, model: &impl Parameters, head: &str) -> f64 {
        let mut total = 0.0f64;
        model.visit_params(&mut |name, p| {
            let w = p.to_vec();
            total += match self.start.get(name) {
                Some(w0) if !is_head(name, head) => {
                    0.5 * self.alpha as f64
                        * w.iter()
                            .zip(w0)
                            .map(|(a, b)| ((a - b) as f64).powi(2))
                            .sum::<f64>()
                }
                _ => 0.5 * self.beta as f64 * w.iter().map(|a| (*a as f64).powi(2)).sum::<f64>(),
            };
        });
        total
    }

    /// Adds the penalty's gradient for parameter `name` (weights `w`) to `g`.
    pub fn add_gradient(&self, name: &str, head: &str, w: &[f32], g: &mut [f32]) {
        match self.start.get(name) {
            Some(w0) if !is_head(name, head) => {
                for ((gi, wi), w0i) in g.iter_mut().zip(w).zip(w0) {
                    *gi += self.alpha * (wi - w0i);
                }
            }
            _ => {
                for (gi, wi) in g.iter_mut().zip(w) {
                    *gi += self.beta * wi;
                }
            }
        }
    }
}

fn is_head(name: &str, head: &str) -> bool {
    name.strip_prefix(head).is_some_and(|r| r.starts_with('.'))
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
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
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
    /// Optimiser steps taken.
    pub steps: usize,
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
fn cross_entropy<T: Tape<f32, Cpu>>(
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

fn check_loss(loss: f32, step: usize) -> Result<(), TransferError> {
    if loss.is_finite() {
        Ok(())
    } else {
        Err(TransferError::Diverged { step, loss })
    }
}

/// Trains `model` on `data` with Adam following `plan`.
pub fn train_classifier<B: Backbone<F>, const F: usize>(
    dev: &Cpu,
    model: &mut Classifier<B, F>,
    data: &Examples,
    plan: &TrainPlan,
    seed: u64,
    monitor: Option<Monitor<'_>>,
    bar: &ProgressBar,
) -> Result<TrainStats, TransferError> {
    check_width(data, INPUT_LEN)?;
    let schedule = plan.schedule;
    let mut shuffler = Shuffler::new(data.len(), schedule.batch, seed);
    let mut opt = Adam::new(AdamConfig::default());
    let (mut xb, mut yb) = (Vec::new(), Vec::new());
    let head_prefix = format!("{}.", B::HEAD_NAME);
    let block_flops = B::block_forward_flops();
    let head_fwd = model.head.forward_flops_per_sample() as f64;
    let backbone_fwd: f64 = block_flops.iter().map(|&f| f as f64).sum();
    let mut flops = 0.0;
    let mut seconds = 0.0;
    let mut curve = Vec::new();
    let mut recent = Recent::new(data.len().div_ceil(schedule.batch));
    for step in 0..schedule.steps {
        let started = Instant::now();
        data.gather(shuffler.next_batch(), &mut xb, &mut yb);
        let b = yb.len();
        let x: InputBatch = dev.tensor_from_vec(xb.clone(), (b, Const));
        let frozen = plan.frozen_prefix(step);
        let feats = model
            .backbone
            .forward_frozen(x, frozen, OwnedTape::<f32, Cpu>::default());
        let logits = model.head.forward(feats);
        let trained_fwd: f64 = (frozen..block_flops.len())
            .map(|i| block_flops[i] as f64)
            .sum();
        flops += (backbone_fwd + head_fwd + 2.0 * (trained_fwd + head_fwd)) * b as f64;
        let loss = cross_entropy(dev, logits, &yb);
        let value = loss.array();
        check_loss(value, step)?;
        let mut grads = loss.backward();
        let lr_for = |name: &str| {
            if name.starts_with(&head_prefix) {
                return Some(plan.head_lr);
            }
            let i = block_of(name, B::BLOCKS)?;
            plan.block_trains(i, step)
                .then(|| plan.block_lrs[i])
                .flatten()
        };
        match &plan.l2sp {
            Some(l2sp) => opt.update_with(model, &mut grads, &lr_for, &|name, w, g| {
                l2sp.add_gradient(name, B::HEAD_NAME, w, g)
            })?,
            None => opt.update(model, &mut grads, &lr_for)?,
        }
        recent.push(value);
        seconds += started.elapsed().as_secs_f64();
        bar.inc(1);
        if let Some(m) = monitor {
            if (step + 1) % m.every.max(1) == 0 || step + 1 == schedule.steps {
                curve.push(CurvePoint {
                    step: step + 1,
                    seconds,
                    flops,
                    accuracy: accuracy(dev, model, m.data)?,
                });
            }
        }
    }
    Ok(TrainStats {
        steps: schedule.steps,
        final_loss: recent.mean(),
        flops,
        seconds,
        curve,
    })
}

/// Trains `head` alone on cached `F`-wide features.
pub fn train_head<const F: usize>(
    dev: &Cpu,
    head: &mut Head<F>,
    features: &Examples,
    lr: f32,
    schedule: Schedule,
    seed: u64,
    bar: &ProgressBar,
) -> Result<TrainStats, TransferError> {
    check_width(features, F)?;
    let started = Instant::now();
    let mut shuffler = Shuffler::new(features.len(), schedule.batch, seed);
    let mut opt = Adam::new(AdamConfig::default());
    let (mut xb, mut yb) = (Vec::new(), Vec::new());
    let mut flops = 0.0;
    let mut recent = Recent::new(features.len().div_ceil(schedule.batch));
    let mut params = HeadParams(head);
    for step in 0..schedule.steps {
        features.gather(shuffler.next_batch(), &mut xb, &mut yb);
        let b = yb.len();
        let x: Tensor<(usize, Const<F>), f32, Cpu> = dev.tensor_from_vec(xb.clone(), (b, Const));
        let logits = params.0.forward(x.traced(Gradients::leaky()));
        let loss = cross_entropy(dev, logits, &yb);
        let v = loss.array();
        check_loss(v, step)?;
        let mut grads = loss.backward();
        opt.update(&mut params, &mut grads, &|_| Some(lr))?;
        flops += 3.0 * params.0.forward_flops_per_sample() as f64 * b as f64;
        recent.push(v);
        bar.inc(1);
    }
    Ok(TrainStats {
        steps: schedule.steps,
        final_loss: recent.mean(),
        flops,
        seconds: started.elapsed().as_secs_f64(),
        curve: Vec::new(),
    })
}

/// A head seen as a parameter collection with anonymous names.
struct HeadParams<'h, const F: usize>(&'h mut Head<F>);

impl<const F: usize> Parameters for HeadParams<'_, F> {
    fn visit_params(&self, f: &mut dyn FnMut(&str, &dyn graft_nn::Param)) {
        self.0.visit("head", f)
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn graft_nn::Param)) {
        self.0.visit_mut("head", f)
    }
}

/// Backbone features of every row of `data`, computed without recording gradients.
pub fn extract_features<B: Backbone<F>, const F: usize>(
    dev: &Cpu,
    backbone: &B,
    data: &Examples,
) -> Result<Examples, TransferError> {
    check_width(data, INPUT_LEN)?;
    let mut x = Vec::with_capacity(data.len() * F);
    for chunk in data.x.chunks(256 * INPUT_LEN) {
        let b = chunk.len() / INPUT_LEN;
        let t: InputBatch = dev.tensor_from_vec(chunk.to_vec(), (b, Const));
        x.extend(backbone.forward(t).as_vec());
    }
    Ok(Examples {
        x,
        y: data.y.clone(),
        width: F,
        num_classes: data.num_classes,
    })
}

/// Fraction of `data` that `model` classifies correctly.
pub fn accuracy<B: Backbone<F>, const F: usize>(
    dev: &Cpu,
    model: &Classifier<B, F>,
    data: &Examples,
) -> Result<f64, TransferError> {
    check_width(data, INPUT_LEN)?;
    let mut correct = 0usize;
    for (chunk, labels) in data.x.chunks(256 * INPUT_LEN).zip(data.y.chunks(256)) {
        let t: InputBatch = dev.tensor_from_vec(chunk.to_vec(), (labels.len(), Const));
        let logits = model.forward(t).as_vec();
        let c = model.num_classes();
        for (row, &label) in logits.chunks(c).zip(labels) {
            correct += usize::from(argmax(row) == label);
        }
    }
    Ok(correct as f64 / data.len().max(1) as f64)
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

fn check_width(data: &Examples, width: usize) -> Result<(), TransferError> {
    if data.width == width && data.x.len() == data.len() * width {
        Ok(())
    } else {
        Err(TransferError::Shape(format!(
            "examples have width {} ({} values for {} rows), the network takes {width}",
            data.width,
            data.x.len(),
            data.len()
        )))
    }
}

/// Running mean of the last `n` losses.
struct Recent {
    values: std::collections::VecDeque<f32>,
    n: usize,
}

impl Recent {
    fn new(n: usize) -> Self {
        Self {
            values: Default::default(),
            n: n.max(1),
        }
    }
    fn push(&mut self, v: f32) {
        if self.values.len() == self.n {
            self.values.pop_front();
        }
        self.values.push_back(v);
    }
    fn mean(&self) -> f32 {
        self.values.iter().sum::<f32>() / self.values.len().max(1) as f32
    }
}
