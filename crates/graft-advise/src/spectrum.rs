//! [`Spectrum`]: the thin SVD of a feature matrix `F` (N x D) from one symmetric
//! eigendecomposition, of `F^T F` (D x D) when `N > D`, of `F F^T` (N x N) otherwise.
//!
//! Both share the non-zero eigenvalues `sigma_i = s_i^2`; the left singular vectors `u_i`
//! (columns of `U`, N x r) are the eigenvectors of `F F^T`, or `F v_i / s_i` from those of
//! `F^T F`. Cost: `O(N D min(N, D))` for the product and `O(min(N, D)^3)` for the
//! eigendecomposition (nalgebra's Householder tridiagonalisation and implicit QR), all in f64.
//!
//! [`ProjectedSpectrum`] is what the estimators use: the same eigenvalues and only the
//! coordinates of their few target vectors on `U` ([`crate::eigen`]), from a Gram or cross
//! product made once per block ([`crate::gram`]).

use nalgebra::{DMatrix, SymmetricEigen};

use crate::eigen::eigen_projected;

/// Eigenvalues below this fraction of the largest are treated as zero (round-off of the
/// product is about 1e-16 of the largest).
const RELATIVE_RANK_CUTOFF: f64 = 1e-12;

/// The non-zero part of `F`'s singular value decomposition.
#[derive(Debug, Clone)]
pub struct Spectrum {
    /// `sigma_i = s_i^2`, the non-zero eigenvalues of `F^T F`, largest first.
    pub sigma: Vec<f64>,
    /// The matching left singular vectors, one column each (N x r).
    pub u: DMatrix<f64>,
    /// Rows of `F` (samples).
    pub n: usize,
    /// Columns of `F` (feature dimension).
    pub d: usize,
}

impl Spectrum {
    /// The spectrum of `f` (rows = samples).
    pub fn of(f: &DMatrix<f64>) -> Spectrum {
        let (n, d) = f.shape();
        let small_side = if n > d {
            f.tr_mul(f)
        } else {
            f * f.transpose()
        };
        let eig = SymmetricEigen::new(small_side);
        let max = eig.eigenvalues.iter().cloned().fold(0.0f64, f64::max);
        let mut order: Vec<usize> = (0..eig.eigenvalues.len())
            .filter(|&i| max > 0.0 && eig.eigenvalues[i] > max * RELATIVE_RANK_CUTOFF)
            .collect();
        order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
        let sigma: Vec<f64> = order.iter().map(|&i| eig.eigenvalues[i]).collect();
        let mut u = DMatrix::zeros(n, order.len());
        for (col, &i) in order.iter().enumerate() {
            let v = eig.eigenvectors.column(i);
            if n > d {
                let fv = f * v;
                u.set_column(col, &(fv / sigma[col].sqrt()));
            } else {
                u.set_column(col, &v);
            }
        }
        Spectrum { sigma, u, n, d }
    }

    /// Numerical rank `r` of `F`.
    pub fn rank(&self) -> usize {
        self.sigma.len()
    }

    /// `U^T y`: the coordinates of `y` (length N) on the left singular vectors.
    pub fn project(&self, y: &[f64]) -> Vec<f64> {
        (0..self.rank())
            .map(|c| self.u.column(c).iter().zip(y).map(|(a, b)| a * b).sum())
            .collect()
    }
}

/// The part of a [`Spectrum`] the estimators read, from [`eigen_projected`]: the non-zero
/// `sigma_i` (largest first, the same cutoff as [`Spectrum::of`]) and the coordinates `u_i . y`
/// of a few target vectors, without the `N x r` matrix `U`.
#[derive(Debug, Clone)]
pub struct ProjectedSpectrum {
    /// `sigma_i = s_i^2`, largest first.
    pub sigma: Vec<f64>,
    /// For each target vector `y`, its coordinates `u_i . y` (one per `sigma_i`).
    pub coords: Vec<Vec<f64>>,
    /// Rows of `F` (samples).
    pub n: usize,
    /// Columns of `F` (feature dimension).
    pub d: usize,
}

impl ProjectedSpectrum {
    /// From the Gram matrix `gram = F F^T` (`n x n`, row-major) and target vectors `ys`
    /// (length `n`): `u_i` are its eigenvectors.
    pub fn from_gram(gram: Vec<f64>, n: usize, d: usize, ys: Vec<Vec<f64>>) -> Option<Self> {
        let (values, coords) = eigen_projected(gram, n, ys)?;
        Some(Self::select(values, coords, n, d, |_, c| c))
    }

    /// From the cross product `cross = F^T F` (`d x d`, row-major) and `F^T y` for each target
    /// vector `y`: with `v_i` its eigenvectors, `u_i . y = v_i . F^T y / s_i`.
    pub fn from_cross(cross: Vec<f64>, n: usize, d: usize, fty: Vec<Vec<f64>>) -> Option<Self> {
        let (values, coords) = eigen_projected(cross, d, fty)?;
        Some(Self::select(values, coords, n, d, |s: f64, c| c / s.sqrt()))
    }

    /// Keeps the eigenvalues above the cutoff, largest first, with their coordinates mapped
    /// by `map(sigma, coordinate)`.
    pub(crate) fn select(
        values: Vec<f64>,
        coords: Vec<Vec<f64>>,
        n: usize,
        d: usize,
        map: impl Fn(f64, f64) -> f64,
    ) -> Self {
        let max = values.iter().cloned().fold(0.0f64, f64::max);
        let mut order: Vec<usize> = (0..values.len())
            .filter(|&i| max > 0.0 && values[i] > max * RELATIVE_RANK_CUTOFF)
            .collect();
        order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
        let sigma: Vec<f64> = order.iter().map(|&i| values[i]).collect();
        let coords = coords
            .iter()
            .map(|c| order.iter().map(|&i| map(values[i], c[i])).collect())
            .collect();
        ProjectedSpectrum {
            sigma,
            coords,
            n,
            d,
        }
    }

    /// Numerical rank `r` of `F`.
    pub fn rank(&self) -> usize {
        self.sigma.len()
    }
}
