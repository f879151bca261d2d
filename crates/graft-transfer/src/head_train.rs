//! Training a head alone on cached backbone features (linear probes).

use std::time::Instant;

use dfdx::prelude::*;
use graft_nn::{Head, Layer, Parameters};
use indicatif::ProgressBar;

use crate::control::{diverged, TrainControl};
use crate::early_stop::Stopper;
use crate::examples::{Examples, Shuffler};
use crate::metrics::{check_width, row_losses};
use crate::optim::Optimizer;
use crate::train::plan::{LearningRates, Schedule, TrainPlan, TrainStats};
use crate::train::progress::{patient, Recent};
use crate::train::step::cross_entropy;
use crate::TransferError;

/// Trains `head` alone on cached `F`-wide features with Adam at a constant `lr`.
pub fn train_head<const F: usize>(
    dev: &Cpu,
    head: &mut Head<F>,
    features: &Examples,
    lr: f32,
    schedule: Schedule,
    seed: u64,
    bar: &ProgressBar,
) -> Result<TrainStats, TransferError> {
    let plan = TrainPlan::uniform(
        schedule,
        0,
        LearningRates {
            backbone: None,
            head: lr,
        },
    );
    train_head_with(
        dev,
        head,
        features,
        &plan,
        seed,
        bar,
        TrainControl::default(),
    )
}

/// Trains `head` alone on cached features with `plan`'s head rate, optimiser, schedule and
/// steps; `ctl.validation` (features too) stops early, `ctl.stop` interrupts (nothing is
/// saved: a head on cached features retrains in moments).
pub fn train_head_with<const F: usize>(
    dev: &Cpu,
    head: &mut Head<F>,
    features: &Examples,
    plan: &TrainPlan,
    seed: u64,
    bar: &ProgressBar,
    ctl: TrainControl<'_>,
) -> Result<TrainStats, TransferError> {
    check_width(features, F)?;
    if let Some(v) = ctl.validation {
        check_width(v.data, F)?;
    }
    let schedule = plan.schedule;
    let started = Instant::now();
    let mut shuffler = Shuffler::new(features.len(), schedule.batch, seed);
    let mut opt = Optimizer::new(plan.optimizer);
    let (mut xb, mut yb) = (Vec::new(), Vec::new());
    let mut flops = 0.0;
    let mut recent = Recent::new(features.len().div_ceil(schedule.batch));
    let mut stopper = Stopper::default();
    let mut params = HeadParams(head);
    let mut step = 0;
    while step < schedule.steps && patient(ctl.validation, &stopper) {
        if ctl.should_stop(step) {
            return Err(TransferError::Interrupted {
                step,
                saved_to: None,
            });
        }
        features.gather(shuffler.next_batch(), &mut xb, &mut yb);
        let b = yb.len();
        let x: Tensor<(usize, Const<F>), f32, Cpu> = dev.tensor_from_vec(xb.clone(), (b, Const));
        let logits = params.0.forward(x.traced(Gradients::leaky()));
        let loss = cross_entropy(dev, logits, &yb);
        let v = loss.array();
        if !v.is_finite() {
            return Err(diverged(step, v, &params, "head", None, None));
        }
        let mut grads = loss.backward();
        let lr = plan.head_lr * plan.lr_schedule.multiplier(step, schedule.steps);
        opt.update(&mut params, &mut grads, &|_| Some(lr))?;
        flops += 3.0 * params.0.forward_flops_per_sample() as f64 * b as f64;
        recent.push(v);
        step += 1;
        bar.inc(1);
        if let Some(val) = ctl.validation {
            if step % val.early.every.max(1) == 0 || step == schedule.steps {
                let mut total = 0.0;
                for (chunk, labels) in val.data.x.chunks(256 * F).zip(val.data.y.chunks(256)) {
                    let t: Tensor<(usize, Const<F>), f32, Cpu> =
                        dev.tensor_from_vec(chunk.to_vec(), (labels.len(), Const));
                    let logits = params.0.forward(t).as_vec();
                    total += row_losses(&logits, params.0.num_classes(), labels);
                }
                let loss = (total / val.data.len().max(1) as f64) as f32;
                stopper.observe(loss, step, &params, val.early.patience);
            }
        }
    }
    let best_step = ctl.validation.map(|_| stopper.best_step);
    if ctl.validation.is_some() && stopper.best_loss.is_some() {
        stopper.restore(&mut params);
    }
    Ok(TrainStats {
        steps: step,
        best_step,
        final_loss: recent.mean(),
        flops,
        seconds: started.elapsed().as_secs_f64(),
        curve: Vec::new(),
    })
}

/// A head seen as a parameter collection with anonymous names.
pub(crate) struct HeadParams<'h, const F: usize>(pub(crate) &'h mut Head<F>);

impl<const F: usize> Parameters for HeadParams<'_, F> {
    fn visit_params(&self, f: &mut dyn FnMut(&str, &dyn graft_nn::Param)) {
        self.0.visit("head", f)
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn graft_nn::Param)) {
        self.0.visit_mut("head", f)
    }
}
