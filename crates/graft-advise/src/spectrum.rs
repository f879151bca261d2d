//! [`Spectrum`]: the thin SVD of a feature matrix `F` (N x D) from one symmetric
//! eigendecomposition, of `F^T F` (D x D) when `N > D`, of `F F^T` (N x N) otherwise.
//!
//! Both share the non-zero eigenvalues `sigma_i = s_i^2`; the left singular vectors `u_i`
//! (columns of `U`, N x r) are the eigenvectors of `F F^T`, or `F v_i / s_i` from those of
//! `F^T F`. Cost: `O(N D min(N, D))` for the product and `O(min(N, D)^3)` for the
//! eigendecomposition (nalgebra's Householder tridiagonalisation and implicit QR), all in f64.

use nalgebra::{DMatrix, SymmetricEigen};

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
