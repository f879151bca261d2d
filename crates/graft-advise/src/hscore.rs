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
//! from the Gram matrix. Cost: one [`Spectrum`] of `Fc` plus the Gram matrix,
//! `O(N D min(N, D) + N^2 D + min(N, D)^3)`, in f64. Constant features (a dead layer) score 0.

use nalgebra::DMatrix;

use crate::{AdviseError, LabelledFeatures, Spectrum};

/// The Ledoit-Wolf shrinkage `delta` in [0, 1] of centred rows `fc` (N x D).
pub fn ledoit_wolf_shrinkage(fc: &DMatrix<f64>) -> f64 {
    let (n, d) = fc.shape();
    let (nf, df) = (n as f64, d as f64);
    let gram = fc * fc.transpose();
    let sq_norms: Vec<f64> = (0..n).map(|i| gram[(i, i)]).collect();
    let trace = sq_norms.iter().sum::<f64>() / nf; // tr S
    let mu = trace / df;
    let frob2 = gram.iter().map(|g| g * g).sum::<f64>() / (nf * nf); // |S|_F^2
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
    let mut fc = features.matrix();
    let n = features.len();
    let mean = fc.row_mean();
    for mut row in fc.row_iter_mut() {
        row -= &mean;
    }
    let spectrum = Spectrum::of(&fc);
    if spectrum.rank() == 0 {
        // Constant features (a dead layer) separate no class: S_b = 0.
        return Ok(0.0);
    }
    let delta = ledoit_wolf_shrinkage(&fc);
    let counts = features.class_counts();
    let nf = n as f64;
    let ridge = delta * spectrum.sigma.iter().sum::<f64>() / nf / features.dim as f64;
    let mut h = 0.0;
    for (i, &s) in spectrum.sigma.iter().enumerate() {
        let u = spectrum.u.column(i);
        let mut class_sums = vec![0.0f64; features.num_classes];
        for (j, &l) in features.labels.iter().enumerate() {
            class_sums[l] += u[j];
        }
        let upu: f64 = class_sums
            .iter()
            .zip(&counts)
            .filter(|(_, &c)| c > 0)
            .map(|(s, &c)| s * s / c as f64)
            .sum();
        h += (s / nf) * upu / ((1.0 - delta) * s / nf + ridge);
    }
    Ok(h)
}
