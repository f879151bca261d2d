//! The public operations on whatever [`select_backend`] chose: one function per kernel,
//! each the `*_on` twin of `ops` with the chosen backend.

use crate::backend::select_backend;
use crate::ops::*;
use crate::spec::*;

/// Normalises a batch of u8 images (NCHW) to f32 (NCHW): `(p / 255 - mean[c]) / std[c]`,
/// after the optional seeded crop-with-padding and flip of `augment` (padding pixels
/// are 0 before normalisation).
pub fn normalize_images(
    pixels: &[u8],
    shape: ImageShape,
    mean: &[f32],
    std: &[f32],
    augment: Option<&Augment>,
) -> Result<Vec<f32>, OpError> {
    normalize_images_on(&select_backend(), pixels, shape, mean, std, augment)
}

/// Fused row softmax, cross-entropy loss and its gradient for `labels.len()` rows of
/// `classes` logits (row-major).
pub fn softmax_xent(
    logits: &[f32],
    labels: &[u32],
    classes: usize,
) -> Result<SoftmaxXent, OpError> {
    softmax_xent_on(&select_backend(), logits, labels, classes)
}

/// One Adam / AdamW step (PyTorch semantics, with bias correction) on `params` given
/// their `grads`; advances `state.step` and updates the moments.
pub fn adam_step(
    params: &mut [f32],
    grads: &[f32],
    state: &mut AdamState,
    cfg: &AdamConfig,
) -> Result<(), OpError> {
    adam_step_on(&select_backend(), params, grads, state, cfg)
}

/// Squared Euclidean distances between every query row and every reference row
/// (`dim` values each): `max(||q||² + ||r||² - 2 q·r, 0)`, `queries × references`,
/// row-major. On CUDA the product is a cuBLAS GEMM.
pub fn sq_distances(queries: &[f32], references: &[f32], dim: usize) -> Result<Vec<f32>, OpError> {
    sq_distances_on(&select_backend(), queries, references, dim)
}

/// The `k` nearest references (squared Euclidean distance, ties broken by the lower
/// index) of every query; both are row-major with `dim` values per row.
pub fn knn(queries: &[f32], references: &[f32], dim: usize, k: usize) -> Result<Knn, OpError> {
    knn_on(&select_backend(), queries, references, dim, k)
}
