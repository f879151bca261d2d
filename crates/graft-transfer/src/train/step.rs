//! One optimiser step of a classifier: the loss and its gradients (frozen leading blocks
//! run without a tape), the step's FLOPs, and the update at the plan's per-block rates.

use dfdx::prelude::*;
use graft_nn::{on_workers, Backbone, Classifier, InputBatch};

use crate::optim::Optimizer;
use crate::train::plan::{is_bias_or_norm, TrainPlan};
use crate::TransferError;

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

/// The batch's mean loss and its gradients, the first `frozen` blocks run without a tape;
/// forward and backward on the kernels' thread pool (see `graft_nn::on_workers`).
pub(crate) fn loss_and_grads<B: Backbone<F>, const F: usize>(
    dev: &Cpu,
    model: &Classifier<B, F>,
    x: &[f32],
    y: &[usize],
    frozen: usize,
) -> (f32, Gradients<f32, Cpu>) {
    let x: InputBatch = dev.tensor_from_vec(x.to_vec(), (y.len(), Const));
    on_workers(|| {
        let feats = model
            .backbone
            .forward_frozen(x, frozen, OwnedTape::<f32, Cpu>::default());
        let loss = cross_entropy(dev, model.head.forward(feats), y);
        (loss.array(), loss.backward())
    })
}

/// Forward FLOPs per sample of a classifier's blocks and head, to count a step's cost.
pub(crate) struct StepCost {
    block_flops: Vec<u64>,
    backbone_fwd: f64,
    head_fwd: f64,
}

impl StepCost {
    pub(crate) fn of<B: Backbone<F>, const F: usize>(model: &Classifier<B, F>) -> Self {
        let block_flops = B::block_forward_flops();
        StepCost {
            backbone_fwd: block_flops.iter().map(|&f| f as f64).sum(),
            head_fwd: model.head.forward_flops_per_sample() as f64,
            block_flops,
        }
    }

    /// A step on `batch` examples with the first `frozen` blocks frozen: the whole forward
    /// pass, and twice the forward FLOPs of what trains for the backward pass.
    pub(crate) fn flops(&self, frozen: usize, batch: usize) -> f64 {
        let trained_fwd: f64 = (frozen..self.block_flops.len())
            .map(|i| self.block_flops[i] as f64)
            .sum();
        let head_fwd = self.head_fwd;
        (self.backbone_fwd + head_fwd + 2.0 * (trained_fwd + head_fwd)) * batch as f64
    }
}

/// Applies `grads` to `model` at `step`: the head at the plan's head rate, each block at its
/// rate while it trains, every rate times the schedule's multiplier; L2-SP's pull added.
pub(crate) fn update<B: Backbone<F>, const F: usize>(
    opt: &mut Optimizer,
    model: &mut Classifier<B, F>,
    grads: &mut Gradients<f32, Cpu>,
    plan: &TrainPlan,
    step: usize,
) -> Result<(), TransferError> {
    let head_prefix = format!("{}.", B::HEAD_NAME);
    let mult = plan.lr_schedule.multiplier(step, plan.schedule.steps);
    let lr_for = |name: &str| {
        if name.starts_with(&head_prefix) {
            return Some(plan.head_lr * mult);
        }
        if plan.biases_only && !is_bias_or_norm(name) {
            return None;
        }
        let i = B::block_of_param(name)?;
        plan.block_trains(i, step)
            .then(|| plan.block_lrs[i])
            .flatten()
            .map(|lr| lr * mult)
    };
    match &plan.l2sp {
        Some(l2sp) => opt.update_with(model, grads, &lr_for, &|name, w, g| {
            l2sp.add_gradient(name, B::HEAD_NAME, w, g)
        })?,
        None => opt.update(model, grads, &lr_for)?,
    }
    Ok(())
}
