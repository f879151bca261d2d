//! Linear probe: multinomial logistic regression trained on cached features.

use crate::backend::{select_backend, Backend};
use crate::cpu;
use crate::linear_head::{train_linear_head_on, CachedFeatures, HeadOptimizer, HeadSteps};
use crate::ops::{check_len, check_u32, invalid, AdamConfig, OpError};

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
    let mut state = cpu::sample_hash(seed, epoch);
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        cpu::mix64(state)
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
    crate::ops::checked_product("weights", &[classes, d])?;
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

impl LinearProbe {
    /// Trains a linear probe on `n` cached feature rows of width `d` (row-major) with
    /// `labels` in `0..classes`: zero-initialised weights, per-epoch shuffles
    /// ([`epoch_order`]), softmax cross-entropy, AdamW on the weights and Adam on the
    /// bias. Runs on [`select_backend`]'s choice; both backends agree within f32
    /// rounding.
    pub fn fit(
        features: &[f32],
        n: usize,
        d: usize,
        labels: &[u32],
        classes: usize,
        cfg: &LinearProbeConfig,
    ) -> Result<LinearProbe, OpError> {
        Self::fit_on(&select_backend(), features, n, d, labels, classes, cfg)
    }

    /// [`LinearProbe::fit`] on an explicit backend. On CUDA without cuBLAS it falls back
    /// to the CPU.
    pub fn fit_on(
        backend: &Backend,
        features: &[f32],
        n: usize,
        d: usize,
        labels: &[u32],
        classes: usize,
        cfg: &LinearProbeConfig,
    ) -> Result<LinearProbe, OpError> {
        check_fit(features, n, d, labels, classes, cfg)?;
        let data = CachedFeatures {
            values: features,
            dim: d,
            labels,
            classes,
        };
        let steps = HeadSteps::epochs(cfg.seed, n, cfg.batch, cfg.epochs);
        let opt = HeadOptimizer {
            weight: cfg.weight_adam(),
            bias: cfg.bias_adam(),
        };
        let (mut weights, mut bias) = (vec![0.0; classes * d], vec![0.0; classes]);
        let losses = train_linear_head_on(backend, &data, &mut weights, &mut bias, &steps, &opt)?;
        // Each epoch's rows are n consecutive losses; their mean, summed in order in f64.
        let loss_history = losses
            .chunks(n)
            .map(|epoch| (epoch.iter().map(|&l| f64::from(l)).sum::<f64>() / n as f64) as f32)
            .collect();
        Ok(LinearProbe {
            classes,
            dim: d,
            weights,
            bias,
            loss_history,
        })
    }

    /// Logits of `features` (rows of width [`LinearProbe::dim`]), `rows × classes`.
    pub fn logits(&self, features: &[f32]) -> Result<Vec<f32>, OpError> {
        if features.len() % self.dim != 0 {
            return Err(invalid(format!(
                "{} feature values are not a multiple of dim {}",
                features.len(),
                self.dim
            )));
        }
        Ok(cpu::linear_logits(
            features,
            self.dim,
            &self.weights,
            &self.bias,
            self.classes,
        ))
    }

    /// The arg-max class of each row (ties to the lower class).
    pub fn predict(&self, features: &[f32]) -> Result<Vec<u32>, OpError> {
        let logits = self.logits(features)?;
        Ok(logits
            .chunks_exact(self.classes)
            .map(|row| {
                let mut best = 0;
                for (c, &v) in row.iter().enumerate() {
                    if v > row[best] {
                        best = c;
                    }
                }
                best as u32
            })
            .collect())
    }

    /// Fraction of rows whose prediction equals the label.
    pub fn accuracy(&self, features: &[f32], labels: &[u32]) -> Result<f32, OpError> {
        let pred = self.predict(features)?;
        if pred.len() != labels.len() {
            return Err(invalid(format!(
                "{} rows of features but {} labels",
                pred.len(),
                labels.len()
            )));
        }
        if pred.is_empty() {
            return Ok(0.0);
        }
        let hits = pred.iter().zip(labels).filter(|(p, l)| p == l).count();
        Ok(hits as f32 / pred.len() as f32)
    }
}
