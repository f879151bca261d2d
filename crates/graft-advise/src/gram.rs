//! [`Block`]: one feature matrix `F` (N x D) prepared once for every estimator: its f64
//! copy and its Gram matrix `G = F F^T` (N x N), the product every estimator needs (LogME's
//! and H-score's spectra when `N <= D`, kNN's distances, the Ledoit-Wolf shrinkage), made
//! once per (candidate, block) instead of once per estimator.
//!
//! Products go through the `gemm` crate in f64 (graft-nn's GEMM; f64 keeps LogME's small
//! eigenvalues, whose logarithms it sums, as exact as before). `G` is symmetric, so only its
//! lower block triangle is multiplied (half the flops), in row blocks spread over the rayon
//! pool, and then mirrored.

use std::sync::OnceLock;

use rayon::prelude::*;

use crate::eigen::eigen_projected_and_centred;
use crate::spectrum::ProjectedSpectrum;

use crate::LabelledFeatures;

/// Rows of `G` per GEMM call in [`gram`].
const ROW_BLOCK: usize = 128;

/// A feature matrix and its Gram matrix.
#[derive(Debug, Clone)]
pub struct Block<'a> {
    /// The features and labels.
    pub features: LabelledFeatures<'a>,
    /// `F` in f64, row-major (N x D).
    pub f: Vec<f64>,
    /// `G = F F^T`, row-major (N x N), exactly symmetric.
    pub gram: Vec<f64>,
    /// When `N <= D`: the spectra of `G` and of the centred `Gc` with the class indicators'
    /// coordinates, from one tridiagonalisation, made by the first estimator that asks.
    spectra: OnceLock<Option<(ProjectedSpectrum, ProjectedSpectrum)>>,
}

impl<'a> Block<'a> {
    /// Converts the features and multiplies their Gram matrix.
    pub fn new(features: LabelledFeatures<'a>) -> Self {
        let f: Vec<f64> = features.values.iter().map(|&v| f64::from(v)).collect();
        let gram = gram(&f, features.len(), features.dim);
        Block {
            features,
            f,
            gram,
            spectra: OnceLock::new(),
        }
    }

    /// The class indicators `1_c` (LogME's one-hot columns), length N each.
    pub fn indicators(&self) -> Vec<Vec<f64>> {
        let f = &self.features;
        (0..f.num_classes)
            .map(|c| {
                f.labels
                    .iter()
                    .map(|&l| f64::from(u8::from(l == c)))
                    .collect()
            })
            .collect()
    }

    /// When `N <= D`: the spectrum of `G` (LogME's) and of the doubly centred `Gc` (H-score's),
    /// each with the class indicators' coordinates, made once from one tridiagonalisation
    /// ([`eigen_projected_and_centred`]); `None` if the QL iteration does not converge.
    pub fn gram_spectra(&self) -> Option<&(ProjectedSpectrum, ProjectedSpectrum)> {
        let (n, d) = (self.n(), self.d());
        self.spectra
            .get_or_init(|| {
                let ((v0, c0), (v1, c1)) =
                    eigen_projected_and_centred(self.gram.clone(), n, self.indicators())?;
                Some((
                    ProjectedSpectrum::select(v0, c0, n, d, |_, c| c),
                    ProjectedSpectrum::select(v1, c1, n, d, |_, c| c),
                ))
            })
            .as_ref()
    }

    /// Rows (samples).
    pub fn n(&self) -> usize {
        self.features.len()
    }

    /// Columns (feature dimension).
    pub fn d(&self) -> usize {
        self.features.dim
    }
}

/// `c = a b` for row-major `a` (m x k, row stride `a_rs`, column stride `a_cs`) and `b`
/// (k x n, strides `b_rs`, `b_cs`) into the row-major `c` (m x n, row stride `ldc`).
///
/// # Panics
/// If a stride reaches past the end of its buffer.
#[allow(clippy::too_many_arguments)]
fn gemm_f64(
    (m, n, k): (usize, usize, usize),
    c: &mut [f64],
    ldc: usize,
    (a, a_rs, a_cs): (&[f64], usize, usize),
    (b, b_rs, b_cs): (&[f64], usize, usize),
    par: gemm::Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    assert!(last(m, n, ldc, 1) < c.len(), "gemm_f64: short output");
    if k == 0 {
        for row in c.chunks_mut(ldc).take(m) {
            row[..n].fill(0.0);
        }
        return;
    }
    assert!(
        last(m, k, a_rs, a_cs) < a.len() && last(k, n, b_rs, b_cs) < b.len(),
        "gemm_f64: short input"
    );
    // SAFETY: the assertions bound the last element each operand's strides reach; `c` is a
    // `&mut` borrow, so it aliases neither `a` nor `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ldc as isize,
            false,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// `F F^T` (N x N, row-major) of the row-major `f` (N x D): the lower block triangle by GEMM,
/// row blocks in parallel, then mirrored so the result is exactly symmetric.
pub fn gram(f: &[f64], n: usize, d: usize) -> Vec<f64> {
    assert_eq!(f.len(), n * d, "gram: {} values for {n} x {d}", f.len());
    let mut g = vec![0.0f64; n * n];
    if n == 0 {
        return g;
    }
    g.par_chunks_mut(ROW_BLOCK * n)
        .enumerate()
        .for_each(|(b, rows)| {
            let r0 = b * ROW_BLOCK;
            let m = rows.len() / n;
            let cols = r0 + m;
            gemm_f64(
                (m, cols, d),
                rows,
                n,
                (&f[r0 * d..], d, 1),
                (f, 1, d),
                gemm::Parallelism::None,
            );
        });
    for i in 0..n {
        for j in i + 1..n {
            g[i * n + j] = g[j * n + i];
        }
    }
    g
}

/// `A^T A` (D x D, row-major) of the row-major `a` (N x D), by one parallel GEMM, mirrored.
pub fn cross(a: &[f64], n: usize, d: usize) -> Vec<f64> {
    assert_eq!(a.len(), n * d, "cross: {} values for {n} x {d}", a.len());
    let mut c = vec![0.0f64; d * d];
    gemm_f64(
        (d, d, n),
        &mut c,
        d,
        (a, 1, d),
        (a, d, 1),
        gemm::Parallelism::Rayon(0),
    );
    for i in 0..d {
        for j in i + 1..d {
            c[i * d + j] = c[j * d + i];
        }
    }
    c
}

/// `A^T y` (length D) of the row-major `a` (N x D).
pub fn transpose_times(a: &[f64], d: usize, y: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0f64; d];
    for (row, &yi) in a.chunks_exact(d).zip(y) {
        if yi != 0.0 {
            for (o, &v) in out.iter_mut().zip(row) {
                *o += v * yi;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::DMatrix;

    #[test]
    fn gram_and_cross_match_nalgebra() {
        let mut s = 3u64;
        let mut r = move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) - 0.5
        };
        for &(n, d) in &[(1usize, 1usize), (3, 7), (129, 5), (300, 260)] {
            let f: Vec<f64> = (0..n * d).map(|_| r()).collect();
            let m = DMatrix::from_row_slice(n, d, &f);
            let want = &m * m.transpose();
            let got = gram(&f, n, d);
            for i in 0..n {
                for j in 0..n {
                    let (g, w) = (got[i * n + j], want[(i, j)]);
                    assert!(
                        (g - w).abs() <= 1e-12 * (1.0 + w.abs()),
                        "{i},{j}: {g} vs {w}"
                    );
                    assert_eq!(g, got[j * n + i]);
                }
            }
            let want = m.transpose() * &m;
            let got = cross(&f, n, d);
            for i in 0..d {
                for j in 0..d {
                    let (g, w) = (got[i * d + j], want[(i, j)]);
                    assert!(
                        (g - w).abs() <= 1e-12 * (1.0 + w.abs()),
                        "{i},{j}: {g} vs {w}"
                    );
                }
            }
        }
    }
}
