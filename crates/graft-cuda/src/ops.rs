//! The operations on an explicit backend (`*_on`): every input checked first (`spec`), then
//! the GPU kernel on [`Backend::Cuda`] or the CPU reference in [`crate::cpu`] (also the
//! fallback when there is no GPU; callers never need a `#[cfg]`). `auto` runs them on the
//! backend graft chose.

use crate::device::Backend;
use crate::spec::*;
use crate::{cpu, gpu};

/// [`crate::normalize_images`] on an explicit backend.
pub fn normalize_images_on(
    backend: &Backend,
    pixels: &[u8],
    shape: ImageShape,
    mean: &[f32],
    std: &[f32],
    augment: Option<&Augment>,
) -> Result<Vec<f32>, OpError> {
    check_normalize(pixels, shape, mean, std, augment)?;
    match backend {
        Backend::Cuda(info) if !pixels.is_empty() => {
            let gpu = gpu::device(info)?;
            Ok(gpu.normalize_images(pixels, shape, mean, std, augment)?)
        }
        _ => cpu::normalize_images(pixels, shape, mean, std, augment),
    }
}

/// [`crate::softmax_xent`] on an explicit backend.
pub fn softmax_xent_on(
    backend: &Backend,
    logits: &[f32],
    labels: &[u32],
    classes: usize,
) -> Result<SoftmaxXent, OpError> {
    check_softmax(logits, labels, classes)?;
    match backend {
        Backend::Cuda(info) if !labels.is_empty() => {
            let gpu = gpu::device(info)?;
            Ok(gpu.softmax_xent(logits, labels, classes)?)
        }
        _ => cpu::softmax_xent(logits, labels, classes),
    }
}

/// [`crate::adam_step`] on an explicit backend (on CUDA, the slices are copied to the device and
/// back; the linear-probe trainer keeps its state on the device instead).
pub fn adam_step_on(
    backend: &Backend,
    params: &mut [f32],
    grads: &[f32],
    state: &mut AdamState,
    cfg: &AdamConfig,
) -> Result<(), OpError> {
    check_adam(params, grads, state, cfg)?;
    match backend {
        Backend::Cuda(info) if !params.is_empty() => {
            let gpu = gpu::device(info)?;
            gpu.adam_step(params, grads, state, cfg)?;
            Ok(())
        }
        _ => cpu::adam_step(params, grads, state, cfg),
    }
}

/// [`crate::sq_distances`] on an explicit backend.
pub fn sq_distances_on(
    backend: &Backend,
    queries: &[f32],
    references: &[f32],
    dim: usize,
) -> Result<Vec<f32>, OpError> {
    let (nq, nr) = check_knn(queries, references, dim, 0)?;
    checked_product("distance matrix", &[nq, nr])?;
    match backend {
        Backend::Cuda(info) if nq > 0 && nr > 0 && gpu::cublas_usable() => {
            let gpu = gpu::device(info)?;
            Ok(gpu.sq_distances(queries, references, dim)?)
        }
        _ => cpu::sq_distances(queries, references, dim),
    }
}

/// [`crate::knn`] on an explicit backend.
pub fn knn_on(
    backend: &Backend,
    queries: &[f32],
    references: &[f32],
    dim: usize,
    k: usize,
) -> Result<Knn, OpError> {
    let (nq, _) = check_knn(queries, references, dim, k)?;
    match backend {
        Backend::Cuda(info) if nq > 0 && k > 0 && gpu::cublas_usable() => {
            let gpu = gpu::device(info)?;
            Ok(gpu.knn(queries, references, dim, k)?)
        }
        _ => cpu::knn(queries, references, dim, k),
    }
}
