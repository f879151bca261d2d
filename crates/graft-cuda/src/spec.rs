//! What every operation is, apart from where it runs: the shapes, configurations and
//! results of the operations, the checks run on their inputs before any work (on both
//! backends), and [`OpError`]. Imports no other module of the crate but the error type, so the
//! CPU references, the GPU kernels and the dispatch in `ops` all build on it.

use crate::error::CudaError;

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

/// Seeded augmentation for [`crate::normalize_images`]: a random crop of the image padded by
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
    /// (wrapping, [`mix64`] is SplitMix64's finaliser), `span = 2 * pad + 1`,
    /// `offset_y = (h & 0xFFFF) % span`, `offset_x = ((h >> 16) & 0xFFFF) % span`,
    /// `flipped = flip && (h >> 32) & 1 == 1`.
    pub fn for_sample(&self, index_in_batch: u64) -> SampleAugmentation {
        let h = sample_hash(self.seed, self.first_index.wrapping_add(index_in_batch));
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

// ---------------------------------------------------------------------------------
// 2. Softmax + cross-entropy
// ---------------------------------------------------------------------------------

/// Result of [`crate::softmax_xent`].
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

// ---------------------------------------------------------------------------------
// 3. Adam / AdamW
// ---------------------------------------------------------------------------------

/// Hyper-parameters of [`crate::adam_step`], with PyTorch's meaning and defaults.
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

// ---------------------------------------------------------------------------------
// 4. Pairwise distances and k nearest neighbours
// ---------------------------------------------------------------------------------

/// Result of [`crate::knn`]: for each query, its `k` nearest references.
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

// ---------------------------------------------------------------------------------
// 5. Seeded hashing (augmentation, shuffles), the linear head and the linear probe
// ---------------------------------------------------------------------------------

/// SplitMix64's output finaliser (Stafford's "Mix13"): a bijective 64-bit hash.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The counter-based hash behind [`Augment`]: `mix64(seed + 0x9E3779B97F4A7C15 * (index + 1))`
/// with wrapping arithmetic, i.e. the `index + 1`-th output of SplitMix64 seeded with `seed`.
pub fn sample_hash(seed: u64, index: u64) -> u64 {
    mix64(seed.wrapping_add(0x9E37_79B9_7F4A_7C15u64.wrapping_mul(index.wrapping_add(1))))
}

/// Cached features and their labels: `labels.len()` rows of width `dim`, row-major.
#[derive(Debug, Clone, Copy)]
pub struct CachedFeatures<'a> {
    /// `labels.len() × dim` values.
    pub values: &'a [f32],
    /// Feature width.
    pub dim: usize,
    /// One label per row, in `0..classes`.
    pub labels: &'a [u32],
    /// Number of classes (rows of W).
    pub classes: usize,
}

/// What each step of a run trains on: its batch's rows and the factor on the learning rates.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HeadSteps {
    /// Row indices of every step's batch, one batch after another.
    pub rows: Vec<u32>,
    /// Rows in each step's batch (each at least 1; they sum to `rows.len()`).
    pub batch_sizes: Vec<usize>,
    /// Factor on both optimisers' learning rates at each step (one per step).
    pub lr_scale: Vec<f32>,
}

impl HeadSteps {
    /// `epochs` passes over `0..n` in [`crate::epoch_order`]'s order, batches of `batch`
    /// (the last of an epoch may be smaller), learning rates unscaled.
    pub fn epochs(seed: u64, n: usize, batch: usize, epochs: usize) -> Self {
        let mut steps = HeadSteps::default();
        for epoch in 0..epochs {
            steps.rows.extend(epoch_order(seed, epoch as u64, n));
            let mut left = n;
            while left > 0 {
                let b = batch.min(left);
                steps.batch_sizes.push(b);
                steps.lr_scale.push(1.0);
                left -= b;
            }
        }
        steps
    }
}

/// The optimisers: Adam or AdamW ([`AdamConfig`]) for the weights and for the bias. Step `i`
/// uses each configuration's learning rate times `lr_scale[i]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeadOptimizer {
    /// For W.
    pub weight: AdamConfig,
    /// For b.
    pub bias: AdamConfig,
}

/// Training settings of [`LinearProbe::fit`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearProbeConfig {
    /// Passes over the data.
    pub epochs: usize,
    /// Mini-batch size (the last batch of an epoch may be smaller).
    pub batch: usize,
    /// Adam learning rate.
    pub lr: f32,
    /// Decoupled (AdamW) weight decay on the weights; the bias is not decayed.
    pub weight_decay: f32,
    /// Seed of the per-epoch shuffles (see [`epoch_order`]).
    pub seed: u64,
}

/// A trained linear classifier `logits = x Wᵀ + b`.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearProbe {
    /// Number of classes.
    pub classes: usize,
    /// Feature width.
    pub dim: usize,
    /// `classes × dim`, row-major (PyTorch `nn.Linear` layout).
    pub weights: Vec<f32>,
    /// One bias per class.
    pub bias: Vec<f32>,
    /// Mean training cross-entropy of each epoch (over its mini-batches, per sample).
    pub loss_history: Vec<f32>,
}

/// The sample order of epoch `epoch`: a Fisher–Yates shuffle of `0..n` driven by
/// SplitMix64 seeded with `sample_hash(seed, epoch)`. The same on every backend.
pub fn epoch_order(seed: u64, epoch: u64, n: usize) -> Vec<u32> {
    let mut state = sample_hash(seed, epoch);
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(state)
    };
    let mut order: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

pub(crate) fn check_fit(
    features: &[f32],
    n: usize,
    d: usize,
    labels: &[u32],
    classes: usize,
    cfg: &LinearProbeConfig,
) -> Result<(), OpError> {
    if n == 0 || d == 0 || classes == 0 {
        return Err(invalid(format!(
            "linear probe needs n, d and classes >= 1, got {n}, {d}, {classes}"
        )));
    }
    check_len("features", features.len(), &[n, d])?;
    check_len("labels", labels.len(), &[n])?;
    check_u32("linear probe", &[n, d, classes, cfg.batch])?;
    checked_product("weights", &[classes, d])?;
    if cfg.batch == 0 {
        return Err(invalid("linear probe batch size must be at least 1"));
    }
    // Label values (and the Adam settings) are checked once, by `train_linear_head_on`.
    if cfg.lr.is_nan() || cfg.lr < 0.0 || cfg.weight_decay.is_nan() {
        return Err(invalid(format!(
            "linear probe: bad lr or weight decay in {cfg:?}"
        )));
    }
    Ok(())
}

impl LinearProbeConfig {
    /// Adam settings for the weights (AdamW with the configured decay).
    pub(crate) fn weight_adam(&self) -> AdamConfig {
        AdamConfig::adamw(self.lr, self.weight_decay)
    }

    /// Adam settings for the bias (no decay).
    pub(crate) fn bias_adam(&self) -> AdamConfig {
        AdamConfig::adam(self.lr)
    }
}
