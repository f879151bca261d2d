//! The public operations: one function per kernel that runs on whatever
//! [`select_backend`] chose, plus an `*_on` twin that takes the backend explicitly.
//!
//! Every operation has a CPU reference in [`crate::cpu`], which is also the fallback
//! when there is no GPU; callers never need a `#[cfg]`. Inputs are checked before any
//! work, on both backends, and inconsistent shapes are an [`OpError::InvalidInput`].

use crate::backend::{select_backend, Backend};
use crate::error::CudaError;
use crate::{cpu, gpu};

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    /// The arguments are inconsistent (lengths, shapes, labels out of range, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The CUDA path was chosen and failed.
    #[error(transparent)]
    Cuda(#[from] CudaError),
}

pub(crate) fn invalid(msg: impl Into<String>) -> OpError {
    OpError::InvalidInput(msg.into())
}

/// `a * b * ...`, or an [`OpError::InvalidInput`] naming `what` on overflow.
pub(crate) fn checked_product(what: &str, dims: &[usize]) -> Result<usize, OpError> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| invalid(format!("{what}: size {dims:?} overflows usize")))
}

/// Checks that `len` equals the product of `dims`.
pub(crate) fn check_len(what: &str, len: usize, dims: &[usize]) -> Result<(), OpError> {
    let want = checked_product(what, dims)?;
    if len != want {
        return Err(invalid(format!(
            "{what} has {len} elements, expected {want} ({dims:?})"
        )));
    }
    Ok(())
}

/// Checks that every dimension fits the kernels' 32-bit indices.
pub(crate) fn check_u32(what: &str, dims: &[usize]) -> Result<(), OpError> {
    if dims.iter().any(|&d| u32::try_from(d).is_err()) {
        return Err(invalid(format!(
            "{what}: dimension in {dims:?} exceeds u32"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// 1. Image normalisation with augmentation
// ---------------------------------------------------------------------------------

/// Shape of a batch of images stored as `n × channels × height × width` (NCHW), one
/// byte (or one `f32`) per value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageShape {
    /// Number of images.
    pub n: usize,
    /// Channels per image (1 for greyscale).
    pub channels: usize,
    /// Rows per image.
    pub height: usize,
    /// Columns per image.
    pub width: usize,
}

impl ImageShape {
    /// Values in the batch (`n * channels * height * width`), `None` on overflow.
    pub fn len(&self) -> Option<usize> {
        [self.channels, self.height, self.width]
            .iter()
            .try_fold(self.n, |acc, &d| acc.checked_mul(d))
    }

    /// Whether the batch holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }
}

/// Seeded augmentation for [`normalize_images`]: a random crop of the image padded by
/// `pad` zero pixels on every side back to its own size, then (if `flip`) a horizontal
/// flip with probability ½.
///
/// The random choices of sample `i` of the batch depend only on `(seed, first_index + i)`
/// (see [`Augment::for_sample`]), so they are the same on CPU and GPU and do not depend
/// on how a data set is cut into batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Augment {
    /// Zero padding on each side before the crop; at most [`Augment::MAX_PAD`].
    pub pad: usize,
    /// Whether to flip horizontally (with probability ½ per sample).
    pub flip: bool,
    /// Seed of the augmentation stream.
    pub seed: u64,
    /// Global index of the batch's first sample (e.g. its position in the epoch).
    pub first_index: u64,
}

/// The random choices [`Augment`] makes for one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleAugmentation {
    /// Row of the crop's top-left corner in the padded image, in `0..=2*pad`.
    pub offset_y: usize,
    /// Column of the crop's top-left corner in the padded image, in `0..=2*pad`.
    pub offset_x: usize,
    /// Whether the crop is flipped left–right.
    pub flipped: bool,
}

impl Augment {
    /// Largest supported padding (the offsets use 16 bits of the hash).
    pub const MAX_PAD: usize = 4096;

    /// The crop offset and flip of sample `index_in_batch`:
    /// `h = mix64(seed + 0x9E3779B97F4A7C15 * (first_index + index_in_batch + 1))`
    /// (wrapping, [`cpu::mix64`] is SplitMix64's finaliser), `span = 2 * pad + 1`,
    /// `offset_y = (h & 0xFFFF) % span`, `offset_x = ((h >> 16) & 0xFFFF) % span`,
    /// `flipped = flip && (h >> 32) & 1 == 1`.
    pub fn for_sample(&self, index_in_batch: u64) -> SampleAugmentation {
        let h = cpu::sample_hash(self.seed, self.first_index.wrapping_add(index_in_batch));
        let span = 2 * self.pad as u64 + 1;
        SampleAugmentation {
            offset_y: ((h & 0xFFFF) % span) as usize,
            offset_x: (((h >> 16) & 0xFFFF) % span) as usize,
            flipped: self.flip && (h >> 32) & 1 == 1,
        }
    }
}

pub(crate) fn check_normalize(
    pixels: &[u8],
    shape: ImageShape,
    mean: &[f32],
    std: &[f32],
    augment: Option<&Augment>,
) -> Result<(), OpError> {
    let dims = [shape.n, shape.channels, shape.height, shape.width];
    check_len("pixels", pixels.len(), &dims)?;
    check_u32("image shape", &dims)?;
    if mean.len() != shape.channels || std.len() != shape.channels {
        return Err(invalid(format!(
            "mean and std need one value per channel ({}), got {} and {}",
            shape.channels,
            mean.len(),
            std.len()
        )));
    }
    if let Some(a) = augment {
        if a.pad > Augment::MAX_PAD {
            return Err(invalid(format!(
                "augmentation padding {} exceeds {}",
                a.pad,
                Augment::MAX_PAD
            )));
        }
    }
    Ok(())
}

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

/// [`normalize_images`] on an explicit backend.
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

// ---------------------------------------------------------------------------------
// 2. Softmax + cross-entropy
// ---------------------------------------------------------------------------------

/// Result of [`softmax_xent`].
#[derive(Debug, Clone, PartialEq)]
pub struct SoftmaxXent {
    /// Mean cross-entropy over the rows (accumulated in f64).
    pub loss: f32,
    /// Cross-entropy of each row, `-log softmax(x)[label]`.
    pub row_losses: Vec<f32>,
    /// Gradient of `loss` with respect to the logits: `(softmax - onehot) / rows`.
    pub grad: Vec<f32>,
}

pub(crate) fn check_softmax(logits: &[f32], labels: &[u32], classes: usize) -> Result<(), OpError> {
    if classes == 0 {
        return Err(invalid("softmax_xent needs at least one class"));
    }
    check_len("logits", logits.len(), &[labels.len(), classes])?;
    check_u32("logits", &[labels.len(), classes])?;
    if let Some((row, &label)) = labels
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= classes)
    {
        return Err(invalid(format!(
            "label {label} of row {row} is out of range for {classes} classes"
        )));
    }
    Ok(())
}

/// Mean of row losses, accumulated in f64 in row order (the same on both backends).
pub(crate) fn mean_loss(row_losses: &[f32]) -> f32 {
    if row_losses.is_empty() {
        return 0.0;
    }
    (row_losses.iter().map(|&l| f64::from(l)).sum::<f64>() / row_losses.len() as f64) as f32
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

/// [`softmax_xent`] on an explicit backend.
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

// ---------------------------------------------------------------------------------
// 3. Adam / AdamW
// ---------------------------------------------------------------------------------

/// Hyper-parameters of [`adam_step`], with PyTorch's meaning and defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f32,
    /// Decay of the first-moment estimate.
    pub beta1: f32,
    /// Decay of the second-moment estimate.
    pub beta2: f32,
    /// Added to the denominator.
    pub eps: f32,
    /// Weight decay: L2 added to the gradient (Adam) or decoupled (AdamW).
    pub weight_decay: f32,
    /// `true` for AdamW (`p *= 1 - lr * weight_decay` before the update), `false` for
    /// Adam (`g += weight_decay * p`).
    pub decoupled: bool,
}

impl Default for AdamConfig {
    /// `torch.optim.Adam` defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, no decay.
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        }
    }
}

impl AdamConfig {
    /// This configuration with the learning rate multiplied by `factor`.
    pub fn scaled(&self, factor: f32) -> Self {
        AdamConfig {
            lr: self.lr * factor,
            ..*self
        }
    }

    /// Adam with learning rate `lr` and the other defaults.
    pub fn adam(lr: f32) -> Self {
        AdamConfig {
            lr,
            ..Default::default()
        }
    }

    /// AdamW with learning rate `lr` and decoupled weight decay `weight_decay`.
    pub fn adamw(lr: f32, weight_decay: f32) -> Self {
        AdamConfig {
            lr,
            weight_decay,
            decoupled: true,
            ..Default::default()
        }
    }
}

/// Adam's per-parameter state: first and second moments and the step count.
#[derive(Debug, Clone, PartialEq)]
pub struct AdamState {
    /// First-moment estimate, one per parameter.
    pub m: Vec<f32>,
    /// Second-moment estimate, one per parameter.
    pub v: Vec<f32>,
    /// Steps taken so far (the next step is `step + 1`).
    pub step: u64,
}

impl AdamState {
    /// Zeroed state for `len` parameters.
    pub fn new(len: usize) -> Self {
        AdamState {
            m: vec![0.0; len],
            v: vec![0.0; len],
            step: 0,
        }
    }
}

/// Per-step scalars shared by the CPU and GPU updates, computed in f64.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct AdamScalars {
    /// `lr / (1 - beta1^t)`.
    pub step_size: f32,
    /// `sqrt(1 - beta2^t)`.
    pub bc2_sqrt: f32,
    /// `1 - lr * weight_decay` (used by AdamW only).
    pub decay: f32,
}

impl AdamScalars {
    pub(crate) fn new(cfg: &AdamConfig, step: u64) -> Self {
        let t = i32::try_from(step).unwrap_or(i32::MAX);
        let bc1 = 1.0 - f64::from(cfg.beta1).powi(t);
        let bc2 = 1.0 - f64::from(cfg.beta2).powi(t);
        AdamScalars {
            step_size: (f64::from(cfg.lr) / bc1) as f32,
            bc2_sqrt: bc2.sqrt() as f32,
            decay: (1.0 - f64::from(cfg.lr) * f64::from(cfg.weight_decay)) as f32,
        }
    }
}

/// `0 <= beta < 1`, `lr >= 0`, `eps > 0` and a weight decay that is a number.
pub(crate) fn check_adam_config(cfg: &AdamConfig) -> Result<(), OpError> {
    let unit = |b: f32| (0.0..1.0).contains(&b);
    let ok = unit(cfg.beta1)
        && unit(cfg.beta2)
        && (0.0..=f32::INFINITY).contains(&cfg.lr)
        && cfg.eps > 0.0
        && !cfg.weight_decay.is_nan();
    if !ok {
        return Err(invalid(format!(
            "adam_step: need 0 <= beta < 1, lr >= 0 and eps > 0, got {cfg:?}"
        )));
    }
    Ok(())
}

pub(crate) fn check_adam(
    params: &[f32],
    grads: &[f32],
    state: &AdamState,
    cfg: &AdamConfig,
) -> Result<(), OpError> {
    let n = params.len();
    if grads.len() != n || state.m.len() != n || state.v.len() != n {
        return Err(invalid(format!(
            "adam_step: params ({n}), grads ({}), m ({}) and v ({}) differ in length",
            grads.len(),
            state.m.len(),
            state.v.len()
        )));
    }
    check_adam_config(cfg)?;
    if state.step == u64::MAX {
        return Err(invalid("adam_step: step counter overflow"));
    }
    Ok(())
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

/// [`adam_step`] on an explicit backend (on CUDA, the slices are copied to the device and
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

// ---------------------------------------------------------------------------------
// 4. Pairwise distances and k nearest neighbours
// ---------------------------------------------------------------------------------

/// Result of [`knn`]: for each query, its `k` nearest references.
#[derive(Debug, Clone, PartialEq)]
pub struct Knn {
    /// Neighbours per query.
    pub k: usize,
    /// Reference indices, `queries × k`, row-major; each row in ascending
    /// (distance, index) order.
    pub indices: Vec<u32>,
    /// Squared distances matching `indices`.
    pub distances: Vec<f32>,
}

pub(crate) fn check_knn(
    queries: &[f32],
    references: &[f32],
    dim: usize,
    k: usize,
) -> Result<(usize, usize), OpError> {
    if dim == 0 {
        return Err(invalid("knn: dimension must be at least 1"));
    }
    if queries.len() % dim != 0 || references.len() % dim != 0 {
        return Err(invalid(format!(
            "knn: {} query values and {} reference values are not multiples of dim {dim}",
            queries.len(),
            references.len()
        )));
    }
    let (nq, nr) = (queries.len() / dim, references.len() / dim);
    check_u32("knn", &[nq, nr, dim, k])?;
    if k > nr {
        return Err(invalid(format!(
            "knn: k = {k} exceeds the {nr} reference points"
        )));
    }
    Ok((nq, nr))
}

/// Squared Euclidean distances between every query row and every reference row
/// (`dim` values each): `max(||q||² + ||r||² - 2 q·r, 0)`, `queries × references`,
/// row-major. On CUDA the product is a cuBLAS GEMM.
pub fn sq_distances(queries: &[f32], references: &[f32], dim: usize) -> Result<Vec<f32>, OpError> {
    sq_distances_on(&select_backend(), queries, references, dim)
}

/// [`sq_distances`] on an explicit backend.
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

/// The `k` nearest references (squared Euclidean distance, ties broken by the lower
/// index) of every query; both are row-major with `dim` values per row.
pub fn knn(queries: &[f32], references: &[f32], dim: usize, k: usize) -> Result<Knn, OpError> {
    knn_on(&select_backend(), queries, references, dim, k)
}

/// [`knn`] on an explicit backend.
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
