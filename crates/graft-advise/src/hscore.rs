//! H-score (Bao et al., 2019, "An Information-Theoretic Approach to Transferability in Task
//! Transfer Learning"), with the Ledoit-Wolf shrinkage of Ibrahim et al. (2022, "Newer is not
//! always better: Rethinking transferability metrics, their peculiarities, stability and
//! performance"):
//!
//! ```text
//! H = tr( S_lw^-1  S_b ),   S = cov(f),   S_b = cov(E[f | y]) = 1/N sum_c n_c (mu_c - mu)(mu_c - mu)^T
//! S_lw = (1 - delta) S + delta (tr S / D) I
//! ```
//!
//! with `delta` the Ledoit-Wolf shrinkage (the formula of scikit-learn's
//! `ledoit_wolf_shrinkage`, covariances with divisor N). Without shrinkage the score is
//! degenerate when `D >= N - 1`: every such feature set scores `C - 1`.
//!
//! Everything is computed in the span of the centred features `Fc = U diag(s) V^T`: `S_b` lies
//! in it, so `H = sum_i (s_i^2 / N) (U^T P U)_ii / ((1 - delta) s_i^2 / N + delta tr S / D)`
//! with `P = sum_c 1_c 1_c^T / n_c`; the shrinkage needs only `|f_i|^2` and `|F F^T|_F^2`, both
//! from the Gram matrix (`|Fc Fc^T|_F = |Fc^T Fc|_F`). Cost: one eigendecomposition of `Fc Fc^T`
//! (the block's shared Gram matrix centred, `O(N^2)`) or of `Fc^T Fc`, `O(N D min(N, D) +
//! min(N, D)^3)`, forming only the class indicators' coordinates on `U` (`(U^T P U)_ii` is
//! their squares over `n_c`), in f64. Constant features (a dead layer) score 0.

use nalgebra::DMatrix;

use crate::gram::{cross, transpose_times, Block};
use crate::spectrum::ProjectedSpectrum;
use crate::{AdviseError, LabelledFeatures};

/// The Ledoit-Wolf shrinkage `delta` in [0, 1] of centred rows `fc` (N x D).
pub fn ledoit_wolf_shrinkage(fc: &DMatrix<f64>) -> f64 {
    let (n, d) = fc.shape();
    let gram = fc * fc.transpose();
    let sq_norms: Vec<f64> = (0..n).map(|i| gram[(i, i)]).collect();
    let frob: f64 = gram.iter().map(|g| g * g).sum();
    shrinkage(&sq_norms, frob, d)
}

/// The Ledoit-Wolf shrinkage from the squared norms `|f_i|^2` of the N centred rows and
/// `|Fc Fc^T|_F^2` (equal to `|Fc^T Fc|_F^2`), for dimension `d`.
fn shrinkage(sq_norms: &[f64], gram_frob2: f64, d: usize) -> f64 {
    let (nf, df) = (sq_norms.len() as f64, d as f64);
    let trace = sq_norms.iter().sum::<f64>() / nf; // tr S
    let mu = trace / df;
    let frob2 = gram_frob2 / (nf * nf); // |S|_F^2
    let fourth: f64 = sq_norms.iter().map(|s| s * s).sum(); // sum_i |f_i|^4
    let beta = (fourth / nf - frob2) / (df * nf);
    let delta = (frob2 - 2.0 * mu * trace + df * mu * mu) / df;
    if delta <= 0.0 {
        return 0.0;
    }
    beta.min(delta).max(0.0) / delta
}

/// The shrunk H-score of labelled features (see the [module docs](self)).
pub fn hscore(features: &LabelledFeatures<'_>) -> Result<f64, AdviseError> {
    hscore_block(&Block::new(*features))
}

/// [`hscore`] of a prepared [`Block`]: when `N <= D` the centred Gram matrix is the block's
/// Gram matrix centred on both sides (`O(N^2)`); otherwise `Fc^T Fc` (D x D) is multiplied.
/// Only the class indicators' coordinates on `U` are formed.
pub fn hscore_block(block: &Block<'_>) -> Result<f64, AdviseError> {
    let features = &block.features;
    let (n, d) = (block.n(), block.d());
    let nf = n as f64;
    let counts = features.class_counts();
    let indicators = block.indicators();
    let not_converged = || AdviseError::Input {
        estimator: "H-score",
        reason: "the eigenvalue iteration did not converge".into(),
    };
    let owned;
    let (spectrum, delta) = if n <= d {
        // The shrinkage from Gc = (I - 11^T/N) G (I - 11^T/N); the spectrum of Gc comes with
        // LogME's from one tridiagonalisation of G.
        let g = &block.gram;
        let row_means: Vec<f64> = g
            .chunks_exact(n)
            .map(|r| r.iter().sum::<f64>() / nf)
            .collect();
        let total = row_means.iter().sum::<f64>() / nf;
        let mut sq_norms = vec![0.0f64; n];
        let mut frob = 0.0f64;
        for (i, row) in g.chunks_exact(n).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                let c = v - row_means[i] - row_means[j] + total;
                frob += c * c;
                if i == j {
                    sq_norms[i] = c;
                }
            }
        }
        let delta = shrinkage(&sq_norms, frob, d);
        (&block.gram_spectra().ok_or_else(not_converged)?.1, delta)
    } else {
        let mut fc = block.f.clone();
        let mut mean = vec![0.0f64; d];
        for row in fc.chunks_exact(d) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += v;
            }
        }
        for m in mean.iter_mut() {
            *m /= nf;
        }
        for row in fc.chunks_exact_mut(d) {
            for (v, m) in row.iter_mut().zip(&mean) {
                *v -= m;
            }
        }
        let sq_norms: Vec<f64> = fc
            .chunks_exact(d)
            .map(|r| r.iter().map(|v| v * v).sum())
            .collect();
        let c = cross(&fc, n, d);
        let frob: f64 = c.iter().map(|g| g * g).sum();
        let delta = shrinkage(&sq_norms, frob, d);
        let fty = indicators
            .iter()
            .map(|y| transpose_times(&fc, d, y))
            .collect();
        owned = ProjectedSpectrum::from_cross(c, n, d, fty).ok_or_else(not_converged)?;
        (&owned, delta)
    };
    if spectrum.rank() == 0 {
        // Constant features (a dead layer) separate no class: S_b = 0.
        return Ok(0.0);
    }
    let ridge = delta * spectrum.sigma.iter().sum::<f64>() / nf / features.dim as f64;
    let mut h = 0.0;
    for (i, &s) in spectrum.sigma.iter().enumerate() {
        let upu: f64 = spectrum
            .coords
            .iter()
            .zip(&counts)
            .filter(|(_, &c)| c > 0)
            .map(|(x, &c)| x[i] * x[i] / c as f64)
            .sum();
        h += (s / nf) * upu / ((1.0 - delta) * s / nf + ridge);
    }
    Ok(h)
}
