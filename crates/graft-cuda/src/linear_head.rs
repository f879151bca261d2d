//! Training a linear head `logits = x Wᵀ + b` on cached features from a given start, with the
//! batches and learning-rate factors of every step given by the caller: the trainer behind
//! [`crate::LinearProbe`], and what graft-transfer runs on a GPU to reproduce its own probe.

use crate::device::Backend;
use crate::spec::{
    check_len, check_u32, invalid, CachedFeatures, HeadOptimizer, HeadSteps, OpError,
};
use crate::{cpu, gpu};

/// Trains W (`classes × dim`, row-major) and b in place, one Adam(W) step per entry of
/// `steps`, each on the mean softmax cross-entropy of its batch. Returns each row's loss at
/// the step it was used (before that step's update), aligned with `steps.rows`.
///
/// Runs on `backend` (the CPU reference when it is [`Backend::Cpu`] or cuBLAS is missing);
/// both give the same result within f32 rounding. Inputs are checked first
/// ([`OpError::InvalidInput`]).
pub fn train_linear_head_on(
    backend: &Backend,
    data: &CachedFeatures<'_>,
    weights: &mut [f32],
    bias: &mut [f32],
    steps: &HeadSteps,
    opt: &HeadOptimizer,
) -> Result<Vec<f32>, OpError> {
    check_head(data, weights, bias, steps, opt)?;
    match backend {
        Backend::Cuda(info) if linear_head_on_device(backend) => {
            let gpu = gpu::device(info)?;
            Ok(gpu.train_linear_head(data, weights, bias, steps, opt)?)
        }
        _ => Ok(cpu::train_linear_head(data, weights, bias, steps, opt)),
    }
}

/// Whether [`train_linear_head_on`] trains on the device for `backend`: a CUDA backend with
/// cuBLAS loaded. Otherwise it runs the CPU reference.
pub fn linear_head_on_device(backend: &Backend) -> bool {
    backend.is_cuda() && gpu::cublas_usable()
}

fn check_head(
    data: &CachedFeatures<'_>,
    weights: &[f32],
    bias: &[f32],
    steps: &HeadSteps,
    opt: &HeadOptimizer,
) -> Result<(), OpError> {
    let (n, d, classes) = (data.labels.len(), data.dim, data.classes);
    if n == 0 || d == 0 || classes == 0 {
        return Err(invalid(format!(
            "a linear head needs rows, a feature width and classes >= 1, got {n}, {d}, {classes}"
        )));
    }
    check_len("features", data.values.len(), &[n, d])?;
    check_len("weights", weights.len(), &[classes, d])?;
    check_len("bias", bias.len(), &[classes])?;
    check_u32("linear head", &[n, d, classes, steps.rows.len()])?;
    if let Some(&bad) = data.labels.iter().find(|&&l| l as usize >= classes) {
        return Err(invalid(format!(
            "label {bad} is out of range for {classes} classes"
        )));
    }
    if let Some(&bad) = steps.rows.iter().find(|&&r| r as usize >= n) {
        return Err(invalid(format!(
            "step row {bad} is out of range for {n} rows"
        )));
    }
    if steps.batch_sizes.contains(&0)
        || steps.batch_sizes.iter().sum::<usize>() != steps.rows.len()
        || steps.lr_scale.len() != steps.batch_sizes.len()
    {
        return Err(invalid(format!(
            "steps: {} batch sizes (each >= 1) must sum to the {} rows, with one lr factor each ({} given)",
            steps.batch_sizes.len(),
            steps.rows.len(),
            steps.lr_scale.len()
        )));
    }
    for cfg in [&opt.weight, &opt.bias] {
        crate::spec::check_adam_config(cfg)?;
    }
    if steps.lr_scale.iter().any(|s| !s.is_finite() || *s < 0.0) {
        return Err(invalid("lr factors must be finite and >= 0"));
    }
    Ok(())
}
