//! Linear probe: multinomial logistic regression trained on cached features.

use crate::backend::select_backend;
use crate::cpu;
use crate::device::Backend;
use crate::linear_head::train_linear_head_on;
use crate::spec::{
    check_fit, invalid, CachedFeatures, HeadOptimizer, HeadSteps, LinearProbe, LinearProbeConfig,
    OpError,
};

impl LinearProbe {
    /// Trains a linear probe on `n` cached feature rows of width `d` (row-major) with
    /// `labels` in `0..classes`: zero-initialised weights, per-epoch shuffles
    /// ([`crate::epoch_order`]), softmax cross-entropy, AdamW on the weights and Adam on the
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
