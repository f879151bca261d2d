//! [`BatchNorm2d`]: PyTorch's `BatchNorm2d` with its own backward pass, in eval mode
//! (running statistics) or train mode (batch statistics, running statistics updated).
//!
//! `y = γ (x - μ) / sqrt(σ² + eps) + β` per channel. In [`BnMode::Train`], `μ` and `σ²` are
//! the batch's (biased variance, over batch, rows and columns) and the running statistics
//! move as PyTorch's do: `new = (1 - m) old + m batch` with `m` = [`BatchNorm2d::momentum`]
//! and the *unbiased* batch variance. In [`BnMode::Eval`] the running statistics are used and
//! left alone: this is also "frozen BatchNorm" while the rest of a network trains (γ and β
//! still get gradients; an optimiser decides whether they move). Statistics and gradient
//! sums are accumulated in f64.
//!
//! Backward, with `x̂ = (x - μ) / sqrt(σ² + eps)` and `n` values per channel:
//! `dβ = Σ dy`, `dγ = Σ dy x̂`; eval: `dx = γ dy / sqrt(σ² + eps)`;
//! train: `dx = γ / sqrt(σ² + eps) (dy - dβ / n - x̂ dγ / n)`.

use dfdx::shapes::HasShape;
use dfdx::tensor::{Cpu, PutTape, SplitTape, Tape, TensorFromVec};
use dfdx::tensor_ops::ReshapeTo;
use rayon::prelude::*;

use super::buffers::Buffer;
use super::{owned_param, Images};
use crate::conv::values;
use crate::{OwnedParam, Param};

/// Which statistics a BatchNorm normalises with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BnMode {
    /// Running statistics, not updated (inference, and BatchNorm frozen while training).
    Eval,
    /// Batch statistics; the running statistics are updated (PyTorch's `model.train()`).
    Train,
}

/// `BatchNorm2d(channels, eps, momentum)` with affine `weight` (γ) and `bias` (β).
#[derive(Debug, Clone)]
pub struct BatchNorm2d {
    /// γ, `(channels,)`.
    pub weight: OwnedParam<(usize,)>,
    /// β, `(channels,)`.
    pub bias: OwnedParam<(usize,)>,
    /// Running mean, `(channels,)`.
    pub running_mean: Buffer,
    /// Running (unbiased) variance, `(channels,)`.
    pub running_var: Buffer,
    /// Added to the variance (EfficientNet-Lite: 1e-3).
    pub eps: f32,
    /// PyTorch's momentum: the weight of the batch statistic in the running update.
    pub momentum: f32,
}

/// Per-channel statistics a forward pass normalised with.
struct Norm {
    mean: Vec<f32>,
    inv_std: Vec<f32>,
}

/// Per-channel mean and biased variance of `x` (`(b, c, hw)`), in f64.
fn batch_moments(x: &[f32], (b, c, hw): (usize, usize, usize)) -> Vec<(f64, f64)> {
    let n = (b * hw) as f64;
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let planes = || (0..b).map(move |bi| &x[(bi * c + ch) * hw..][..hw]);
            let mean = planes().flatten().map(|&v| v as f64).sum::<f64>() / n;
            let var = planes()
                .flatten()
                .map(|&v| (v as f64 - mean).powi(2))
                .sum::<f64>()
                / n;
            (mean, var)
        })
        .collect()
}

/// Per-channel `(Σ dy, Σ dy x̂)` in f64.
fn gradient_sums(
    x: &[f32],
    gy: &[f32],
    norm: &Norm,
    (b, c, hw): (usize, usize, usize),
) -> Vec<(f64, f64)> {
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let (mean, inv) = (norm.mean[ch], norm.inv_std[ch]);
            let (mut sum_g, mut sum_gx) = (0.0f64, 0.0f64);
            for bi in 0..b {
                let at = (bi * c + ch) * hw;
                for (&xv, &g) in x[at..][..hw].iter().zip(&gy[at..][..hw]) {
                    sum_g += g as f64;
                    sum_gx += (g * (xv - mean) * inv) as f64;
                }
            }
            (sum_g, sum_gx)
        })
        .collect()
}

impl BatchNorm2d {
    /// EfficientNet-Lite's eps.
    pub const EPS: f32 = 1e-3;
    /// EfficientNet's momentum in PyTorch's convention (TensorFlow's 0.99 decay).
    pub const MOMENTUM: f32 = 0.01;

    /// γ = 1, β = 0, running mean 0 and variance 1, [`Self::EPS`], [`Self::MOMENTUM`].
    pub fn new(dev: &Cpu, channels: usize) -> Self {
        Self {
            weight: owned_param(dev, vec![1.0; channels], (channels,)),
            bias: owned_param(dev, vec![0.0; channels], (channels,)),
            running_mean: Buffer::new(vec![0.0; channels]),
            running_var: Buffer::new(vec![1.0; channels]),
            eps: Self::EPS,
            momentum: Self::MOMENTUM,
        }
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.weight.numel()
    }

    /// The eval-mode transform as `y = scale x + shift` per channel (what folds into the
    /// preceding convolution).
    pub fn scale_shift(&self) -> (Vec<f32>, Vec<f32>) {
        let (mean, var) = (self.running_mean.values(), self.running_var.values());
        let gamma_beta = self.weight.values().iter().zip(self.bias.values());
        gamma_beta
            .zip(mean.iter().zip(&var))
            .map(|((g, b), (m, v))| {
                let scale = g / (v + self.eps).sqrt();
                (scale, b - m * scale)
            })
            .unzip()
    }

    /// Visits `weight` and `bias` under `prefix` (`_bn0.weight`, ...).
    pub fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &dyn Param)) {
        f(&format!("{prefix}.weight"), &self.weight);
        f(&format!("{prefix}.bias"), &self.bias);
    }

    /// Visits `weight` and `bias` under `prefix`, mutably.
    pub fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn Param)) {
        f(&format!("{prefix}.weight"), &mut self.weight);
        f(&format!("{prefix}.bias"), &mut self.bias);
    }

    /// Visits `running_mean` and `running_var` under `prefix`.
    pub fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(&str, &dyn Param)) {
        f(&format!("{prefix}.running_mean"), &self.running_mean);
        f(&format!("{prefix}.running_var"), &self.running_var);
    }

    /// Visits `running_mean` and `running_var` under `prefix`, mutably.
    pub fn visit_buffers_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn Param)) {
        f(&format!("{prefix}.running_mean"), &mut self.running_mean);
        f(&format!("{prefix}.running_var"), &mut self.running_var);
    }

    /// The statistics to normalise with; in train mode, updates the running ones.
    fn statistics(&self, x: &[f32], dims: (usize, usize, usize), mode: BnMode) -> Norm {
        let inv_std = |var: f64| (1.0 / (var + self.eps as f64).sqrt()) as f32;
        match mode {
            BnMode::Eval => Norm {
                mean: self.running_mean.values(),
                inv_std: self
                    .running_var
                    .values()
                    .iter()
                    .map(|&v| inv_std(v as f64))
                    .collect(),
            },
            BnMode::Train => {
                let n = dims.0 * dims.2;
                assert!(
                    n > 1,
                    "batch norm in train mode needs more than 1 value per channel"
                );
                let moments = batch_moments(x, dims);
                let m = self.momentum;
                let unbiased = n as f64 / (n - 1) as f64;
                self.running_mean.update(|rm| {
                    for (r, (mean, _)) in rm.iter_mut().zip(&moments) {
                        *r = (1.0 - m) * *r + m * *mean as f32;
                    }
                });
                self.running_var.update(|rv| {
                    for (r, (_, var)) in rv.iter_mut().zip(&moments) {
                        *r = (1.0 - m) * *r + m * (*var * unbiased) as f32;
                    }
                });
                Norm {
                    mean: moments.iter().map(|(mean, _)| *mean as f32).collect(),
                    inv_std: moments.iter().map(|(_, var)| inv_std(*var)).collect(),
                }
            }
        }
    }

    /// Normalises a batch with the statistics of `mode`; records gradients for the input,
    /// γ and β when `x` carries an owned tape.
    ///
    /// # Panics
    /// If `x` has another channel count, or (train mode) one value per channel.
    pub fn forward<T: Tape<f32, Cpu>>(&self, x: Images<T>, mode: BnMode) -> Images<T> {
        let (x, mut tape) = x.contiguous().split_tape();
        let dev = x.device().clone();
        let shape = *x.shape();
        let (b, c, h, w) = shape;
        assert_eq!(c, self.channels(), "batch norm: channel count");
        let dims = (b, c, h * w);
        let hw = (h * w).max(1);
        let xv = values(&x);
        let norm = self.statistics(&xv, dims, mode);
        let (gamma, beta) = (self.weight.shared(), self.bias.values());
        let mut y = vec![0.0f32; xv.len()];
        y.par_chunks_mut(hw)
            .zip(xv.par_chunks(hw))
            .enumerate()
            .for_each(|(p, (yp, xp))| {
                let ch = p % c;
                let scale = gamma[ch] * norm.inv_std[ch];
                let shift = beta[ch] - norm.mean[ch] * scale;
                for (o, v) in yp.iter_mut().zip(xp) {
                    *o = v * scale + shift;
                }
            });
        let out = dev.tensor_from_vec(y, shape);
        if !T::OWNS_TAPE {
            return out.put_tape(tape);
        }
        let (x_g, out_g) = (x.ghost(), out.ghost());
        let (gamma_slot, beta_slot) = (self.weight.grad_slot(), self.bias.grad_slot());
        drop(x);
        tape.add_backward_op(move |grads| {
            // The output gradient is read once, here: taken, not copied (freed after use).
            let gy: Vec<f32> = std::mem::take(&mut **grads.get_or_alloc_mut(&out_g)?);
            let sums = gradient_sums(&xv, &gy, &norm, dims);
            for (dg, (_, sgx)) in gamma_slot(grads)?.iter_mut().zip(&sums) {
                *dg += *sgx as f32;
            }
            for (db, (sg, _)) in beta_slot(grads)?.iter_mut().zip(&sums) {
                *db += *sg as f32;
            }
            let gx = grads.get_or_alloc_mut(&x_g)?;
            let n = (b * h * w) as f64;
            gx.par_chunks_mut(hw)
                .zip(gy.par_chunks(hw).zip(xv.par_chunks(hw)))
                .enumerate()
                .for_each(|(p, (gxp, (gyp, xp)))| {
                    let ch = p % c;
                    let (mean, inv) = (norm.mean[ch], norm.inv_std[ch]);
                    let k = gamma[ch] * inv;
                    match mode {
                        BnMode::Eval => {
                            for (d, g) in gxp.iter_mut().zip(gyp) {
                                *d += k * g;
                            }
                        }
                        BnMode::Train => {
                            let mean_g = (sums[ch].0 / n) as f32;
                            let mean_gx = (sums[ch].1 / n) as f32;
                            for ((d, g), v) in gxp.iter_mut().zip(gyp).zip(xp) {
                                let xhat = (v - mean) * inv;
                                *d += k * (g - mean_g - xhat * mean_gx);
                            }
                        }
                    }
                });
            Ok(())
        });
        out.put_tape(tape)
    }
}
