//! LogME (You et al., 2021, "LogME: Practical Assessment of Pre-trained Models for Transfer
//! Learning"): the maximised log marginal evidence of a Bayesian linear model on the features.
//!
//! For one target column `y` (N values; a class's one-hot indicator) and features `F`
//! (N x D), with prior `w ~ N(0, alpha^-1 I)` and noise `y | F w ~ N(F w, beta^-1 I)`:
//!
//! ```text
//! L(alpha, beta) = D/2 log alpha + N/2 log beta - 1/2 log|A| - beta/2 |y - F m|^2
//!                  - alpha/2 |m|^2 - N/2 log 2 pi,   A = alpha I + beta F^T F,  m = beta A^-1 F^T y
//! ```
//!
//! With the spectrum of `F` (`sigma_i = s_i^2`, left singular vectors `U`, rank `r`) and
//! `x = U^T y`, writing `t = alpha / beta`, every term is a sum over the `r` non-zero singular
//! values: `|m|^2 = sum sigma_i x_i^2 / (t + sigma_i)^2`,
//! `|y - F m|^2 = sum x_i^2 t^2 / (t + sigma_i)^2 + (|y|^2 - |x|^2)` and
//! `log|A| = sum log(alpha + beta sigma_i) + (D - r) log alpha` (the `D - r` zero eigenvalues
//! are counted; the reference implementation's `N < D` branch leaves them out, which inflates
//! wide layers' scores by `(D - r)/2 log alpha`).
//!
//! `L` is maximised over the closed quadrant, as the larger of:
//!
//! - the interior stationary point, by MacKay's fixed point `gamma = sum sigma_i / (t + sigma_i)`,
//!   `alpha = gamma / |m|^2`, `beta = (N - gamma) / |y - F m|^2` from `alpha = beta = 1`, until
//!   `t` changes by less than 1e-10 (relative); it is dropped when `t` leaves
//!   `[1e-14, 1e14] * sigma_max` (the maximum is then on an edge);
//! - the edge `alpha -> inf` (the features explain nothing, `y ~ N(0, beta^-1 I)`):
//!   `L = N/2 log(N / |y|^2) - N/2 (1 + log 2 pi)`;
//! - when `F F^T` has full rank `N` (so `N <= D` and every `y` is fitted exactly), the edge
//!   `beta -> inf` (`y ~ N(0, alpha^-1 F F^T)`): with `q = sum x_i^2 / sigma_i`,
//!   `L = N/2 log(N / q) - 1/2 sum log sigma_i - N/2 (1 + log 2 pi)`. Few-shot samples are
//!   usually here: N images and thousands of features.
//!
//! The score is the mean over classes of `L / N`; all-zero features (a dead layer) get the
//! no-signal edge's value. Cost: one eigendecomposition of the Gram matrix or of `F^T F`
//! (`O(N D min(N, D) + min(N, D)^3)`, the Gram matrix shared with the other estimators; only
//! the class columns' coordinates on `U` are formed), then `O(C r)` per fixed-point iteration.
//! Everything is f64.

use crate::gram::{cross, transpose_times, Block};
use crate::spectrum::ProjectedSpectrum;
use crate::{AdviseError, LabelledFeatures, Spectrum};

/// Stop when `alpha / beta` changes by less than this (relative).
const TOLERANCE: f64 = 1e-10;
/// At most this many fixed-point iterations (it typically converges in fewer than 20).
const MAX_ITERATIONS: usize = 1000;
/// Below this, `|m|^2`, `|y - F m|^2` or `|y|^2` count as zero.
const FLOOR: f64 = 1e-300;
/// The fixed point is abandoned when `t = alpha / beta` leaves `[EDGE, 1 / EDGE] * sigma_max`.
const EDGE: f64 = 1e-14;

/// The maximised evidence of one target column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evidence {
    /// `L / N` at the maximum.
    pub per_sample: f64,
    /// The prior precision at the maximum (infinite on the no-signal edge).
    pub alpha: f64,
    /// The noise precision at the maximum (infinite on the exact-fit edge).
    pub beta: f64,
    /// Fixed-point iterations taken (0 when the maximum is on an edge).
    pub iterations: usize,
}

/// LogME of labelled features: the mean over classes of the per-sample evidence of the class's
/// one-hot column.
pub fn logme(features: &LabelledFeatures<'_>) -> Result<f64, AdviseError> {
    logme_block(&Block::new(*features))
}

/// [`logme`] of a prepared [`Block`]: the spectrum of `F F^T` (its Gram matrix) when
/// `N <= D`, of `F^T F` otherwise, with only the class columns' coordinates.
pub fn logme_block(block: &Block<'_>) -> Result<f64, AdviseError> {
    let features = &block.features;
    let (n, d) = (block.n(), block.d());
    let ys = block.indicators();
    // Features that are all zero (a dead layer) have rank 0: only the no-signal edge remains,
    // which is the right score for features that explain nothing.
    let not_converged = || AdviseError::Input {
        estimator: "LogME",
        reason: "the eigenvalue iteration did not converge".into(),
    };
    let owned;
    let spectrum = if n <= d {
        &block.gram_spectra().ok_or_else(not_converged)?.0
    } else {
        let fty = ys.iter().map(|y| transpose_times(&block.f, d, y)).collect();
        owned = ProjectedSpectrum::from_cross(cross(&block.f, n, d), n, d, fty)
            .ok_or_else(not_converged)?;
        &owned
    };
    let mut total = 0.0;
    for (y, x) in ys.iter().zip(&spectrum.coords) {
        total += evidence_of(&spectrum.sigma, x, y, n, d).per_sample;
    }
    Ok(total / features.num_classes as f64)
}

/// The maximised evidence of a real-valued target `y` (length N) given the features' spectrum.
pub fn evidence(spectrum: &Spectrum, y: &[f64]) -> Evidence {
    let x = spectrum.project(y);
    evidence_of(&spectrum.sigma, &x, y, spectrum.n, spectrum.d)
}

/// The maximised evidence of `y` given the non-zero `sigma` of an `n x d` feature matrix and
/// the coordinates `x = U^T y`.
fn evidence_of(sigma: &[f64], x: &[f64], y: &[f64], n: usize, d: usize) -> Evidence {
    let (n_samples, n, d) = (n, n as f64, d as f64);
    let x2: Vec<f64> = x.iter().map(|v| v * v).collect();
    let y2: f64 = y.iter().map(|v| v * v).sum::<f64>().max(FLOOR);
    let outside = (y2 - x2.iter().sum::<f64>()).max(0.0);
    let edge = n / 2.0 * (1.0 + (2.0 * std::f64::consts::PI).ln());
    // The alpha -> infinity edge.
    let mut best = Evidence {
        per_sample: (n / 2.0 * (n / y2).ln() - edge) / n,
        alpha: f64::INFINITY,
        beta: n / y2,
        iterations: 0,
    };
    // The beta -> infinity edge, when every target is fitted exactly.
    if sigma.len() == n_samples {
        let q: f64 = x2
            .iter()
            .zip(sigma)
            .map(|(x, s)| x / s)
            .sum::<f64>()
            .max(FLOOR);
        let l = n / 2.0 * (n / q).ln() - 0.5 * sigma.iter().map(|s| s.ln()).sum::<f64>() - edge;
        if l / n > best.per_sample {
            best = Evidence {
                per_sample: l / n,
                alpha: n / q,
                beta: f64::INFINITY,
                iterations: 0,
            };
        }
    }
    if let Some(interior) = stationary_point(sigma, &x2, outside, n, d) {
        if interior.per_sample > best.per_sample {
            best = interior;
        }
    }
    best
}

/// MacKay's fixed point from `alpha = beta = 1`; `None` if it heads for an edge.
fn stationary_point(sigma: &[f64], x2: &[f64], outside: f64, n: f64, d: f64) -> Option<Evidence> {
    let sigma_max = sigma.first().copied()?;
    // |m|^2 and |y - F m|^2 at t = alpha / beta.
    let moments = |t: f64| {
        let (mut m2, mut res2) = (0.0, outside);
        for (s, x) in sigma.iter().zip(x2) {
            let q = (t + s) * (t + s);
            m2 += s * x / q;
            res2 += x * t * t / q;
        }
        (m2, res2)
    };
    let (mut alpha, mut beta) = (1.0f64, 1.0f64);
    let mut iterations = 0;
    loop {
        if iterations == MAX_ITERATIONS {
            return None;
        }
        iterations += 1;
        let t = alpha / beta;
        let gamma: f64 = sigma.iter().map(|s| s / (s + t)).sum();
        let (m2, res2) = moments(t);
        if m2 <= FLOOR || res2 <= FLOOR {
            return None;
        }
        alpha = gamma / m2;
        beta = (n - gamma) / res2;
        let t_new = alpha / beta;
        if !(t_new > EDGE * sigma_max && t_new < sigma_max / EDGE) {
            return None;
        }
        if ((t_new - t) / t).abs() < TOLERANCE {
            break;
        }
    }
    let (m2, res2) = moments(alpha / beta);
    let log_det: f64 = sigma.iter().map(|s| (alpha + beta * s).ln()).sum::<f64>()
        + (d - sigma.len() as f64) * alpha.ln();
    let l = d / 2.0 * alpha.ln() + n / 2.0 * beta.ln()
        - 0.5 * log_det
        - beta / 2.0 * res2
        - alpha / 2.0 * m2
        - n / 2.0 * (2.0 * std::f64::consts::PI).ln();
    Some(Evidence {
        per_sample: l / n,
        alpha,
        beta,
        iterations,
    })
}
