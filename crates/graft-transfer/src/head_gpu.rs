//! Training a head on graft-cuda's linear-head trainer: the GPU path of linear probes.
//!
//! [`train_head_on_backend`] runs the same steps as [`crate::train::train_head_with`] (the
//! [`Shuffler`]'s batches for the seed, the plan's learning-rate schedule, Adam or AdamW on
//! the weight and the bias from the head's current values, mean cross-entropy per batch), so
//! the two agree within f32 rounding; on a CUDA backend every step runs on the device.

use std::time::Instant;

use graft_cuda::{AdamConfig, Backend, CachedFeatures, HeadOptimizer, HeadSteps};
use graft_nn::{Head, Param};
use indicatif::ProgressBar;

use crate::control::diverged;
use crate::examples::{Examples, Shuffler};
use crate::head_train::HeadParams;
use crate::metrics::check_width;
use crate::optim::OptimizerConfig;
use crate::train::plan::{TrainPlan, TrainStats};
use crate::train::progress::Recent;
use crate::TransferError;

/// graft-cuda's optimiser for `plan`'s (the same for the weight and the bias), or `None` for
/// SGD, which graft-cuda does not implement.
fn head_optimizer(plan: &TrainPlan) -> Option<HeadOptimizer> {
    let (adam, weight_decay, decoupled) = match plan.optimizer {
        OptimizerConfig::Adam(a) => (a, 0.0, false),
        OptimizerConfig::AdamW { adam, weight_decay } => (adam, weight_decay, true),
        OptimizerConfig::Sgd(_) => return None,
    };
    let cfg = AdamConfig {
        lr: plan.head_lr,
        beta1: adam.beta1,
        beta2: adam.beta2,
        eps: adam.eps,
        weight_decay,
        decoupled,
    };
    Some(HeadOptimizer {
        weight: cfg,
        bias: cfg,
    })
}

/// Trains `head` alone on cached `features` with `plan` and `seed` through
/// [`graft_cuda::train_linear_head_on`] on `backend`. Returns `Ok(None)`, touching nothing,
/// for a plan it cannot run (SGD); early stopping is the caller's to rule out (this path
/// has no validation loop). The whole run is one call: Ctrl-C is seen only after it.
pub fn train_head_on_backend<const F: usize>(
    backend: &Backend,
    head: &mut Head<F>,
    features: &Examples,
    plan: &TrainPlan,
    seed: u64,
    bar: &ProgressBar,
) -> Result<Option<TrainStats>, TransferError> {
    check_width(features, F)?;
    let Some(opt) = head_optimizer(plan) else {
        return Ok(None);
    };
    let started = Instant::now();
    let schedule = plan.schedule;
    let mut shuffler = Shuffler::new(features.len(), schedule.batch, seed);
    let mut steps = HeadSteps::default();
    for step in 0..schedule.steps {
        let batch = shuffler.next_batch();
        steps.rows.extend(batch.iter().map(|&r| r as u32));
        steps.batch_sizes.push(batch.len());
        steps
            .lr_scale
            .push(plan.lr_schedule.multiplier(step, schedule.steps));
    }
    let labels: Vec<u32> = features.y.iter().map(|&l| l as u32).collect();
    let data = CachedFeatures {
        values: &features.x,
        dim: F,
        labels: &labels,
        classes: head.num_classes(),
    };
    let (mut weights, mut bias) = (head.weight.to_vec(), head.bias.to_vec());
    let row_losses =
        graft_cuda::train_linear_head_on(backend, &data, &mut weights, &mut bias, &steps, &opt)?;
    bar.inc(schedule.steps as u64);
    if row_losses.len() != steps.rows.len() {
        return Err(graft_cuda::OpError::InvalidInput(format!(
            "the linear-head trainer returned {} row losses for {} rows",
            row_losses.len(),
            steps.rows.len()
        ))
        .into());
    }

    // Each step's loss is its batch's mean, as the CPU trainer's cross-entropy.
    let mut recent = Recent::new(features.len().div_ceil(schedule.batch));
    let mut start = 0;
    for (step, &b) in steps.batch_sizes.iter().enumerate() {
        let loss = row_losses[start..start + b].iter().sum::<f32>() / b as f32;
        if !loss.is_finite() {
            return Err(diverged(step, loss, &HeadParams(head), "head", None, None));
        }
        recent.push(loss);
        start += b;
    }
    head.weight.write_from(&weights);
    head.bias.write_from(&bias);
    let flops_per_row = 3.0 * head.forward_flops_per_sample() as f64;
    Ok(Some(TrainStats {
        steps: schedule.steps,
        best_step: None,
        final_loss: recent.mean(),
        flops: flops_per_row * steps.rows.len() as f64,
        seconds: started.elapsed().as_secs_f64(),
        curve: Vec::new(),
    }))
}
