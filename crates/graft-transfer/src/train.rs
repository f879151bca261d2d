//! The training loops: a whole classifier (backbone and head at their own learning rates)
//! and a head alone on cached features. Both minimise the mean cross-entropy with Adam.

use dfdx::prelude::*;
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

/// What a training run cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainStats {
    /// Optimiser steps taken.
    pub steps: usize,
    /// Mean loss over the last epoch's worth of steps.
    pub final_loss: f32,
    /// Floating-point operations spent (forward + backward, counted analytically).
    pub flops: f64,
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

/// Trains `model` on `data` for `schedule.steps` Adam steps.
pub fn train_classifier<B: Backbone<F>, const F: usize>(
    dev: &Cpu,
    model: &mut Classifier<B, F>,
    data: &Examples,
    lrs: LearningRates,
    schedule: Schedule,
    seed: u64,
    bar: &ProgressBar,
) -> Result<TrainStats, TransferError> {
    check_width(data, INPUT_LEN)?;
    let mut shuffler = Shuffler::new(data.len(), schedule.batch, seed);
    let mut opt = Adam::new(AdamConfig::default());
    let (mut xb, mut yb) = (Vec::new(), Vec::new());
    let head_prefix = format!("{}.", B::HEAD_NAME);
    let lr_for = |name: &str| {
        if name.starts_with(&head_prefix) {
            Some(lrs.head)
        } else {
            lrs.backbone
        }
    };
    let mut flops = 0.0;
    let mut recent = Recent::new(data.len().div_ceil(schedule.batch));
    let step_flops = 3.0 * model.forward_flops_per_sample() as f64;
    let head_step_flops = 3.0 * model.head.forward_flops_per_sample() as f64;
    let backbone_fwd = B::forward_flops_per_sample() as f64;
    for step in 0..schedule.steps {
        data.gather(shuffler.next_batch(), &mut xb, &mut yb);
        let b = yb.len();
        let x: InputBatch = dev.tensor_from_vec(xb.clone(), (b, Const));
        let (loss, mut grads) = if lrs.backbone.is_some() {
            let logits = model.forward(x.traced(Gradients::leaky()));
            flops += step_flops * b as f64;
            let loss = cross_entropy(dev, logits, &yb);
            let v = loss.array();
            (v, loss.backward())
        } else {
            let feats = model.backbone.forward(x);
            let logits = model.head.forward(feats.traced(Gradients::leaky()));
            flops += (backbone_fwd + head_step_flops) * b as f64;
            let loss = cross_entropy(dev, logits, &yb);
            let v = loss.array();
            (v, loss.backward())
        };
        check_loss(loss, step)?;
        opt.update(model, &mut grads, &lr_for)?;
        recent.push(loss);
        bar.inc(1);
    }
    Ok(TrainStats {
        steps: schedule.steps,
        final_loss: recent.mean(),
        flops,
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
