//! [`eigen_projected`]: the eigenvalues of a symmetric matrix `A` (n x n) and the coordinates
//! `u_i . y` of a few vectors `y` on its eigenvectors, without forming the eigenvectors.
//!
//! LogME and H-score need no more than that (`sigma_i` and `(u_i . y)^2` for the class
//! columns), so the `O(n^3)` accumulation of an `n x n` eigenvector matrix, the bulk of a full
//! eigendecomposition, is replaced by `O(n^2)` work per vector:
//!
//! 1. Householder tridiagonalisation `T = Q^T A Q` (Golub & Van Loan, Algorithm 8.3.1),
//!    `4/3 n^3` flops, each step's product and rank-2 update spread over the rayon pool; each
//!    reflector is applied to the vectors as it is made (`y <- Q^T y`).
//! 2. The implicit QL iteration with Wilkinson shifts on `T` (`tqli`, Numerical Recipes 3rd ed.
//!    11.4), its plane rotations applied to the vectors instead of to an identity
//!    (`y <- W^T y`, `W` the eigenvectors of `T`), `O(n^2)` per vector.
//!
//! Everything is f64. The eigenvalues agree with a full decomposition (nalgebra's) to the
//! round-off of either, which the tests check along with the coordinates' squares.

use rayon::prelude::*;

/// Below this trailing size a tridiagonalisation step runs on the calling thread.
const PARALLEL_MIN: usize = 192;
/// QL iterations allowed per eigenvalue (it typically needs 2 or 3).
const MAX_ITERATIONS: usize = 60;

/// The eigenvalues of the symmetric `n x n` row-major matrix `a` (unsorted) and, for each of
/// `ys` (length `n` each), its coordinates on the matching eigenvectors: `(values, coords)`
/// with `coords[c][i] = u_i . ys[c]`. `None` if the QL iteration does not converge.
pub fn eigen_projected(
    mut a: Vec<f64>,
    n: usize,
    mut ys: Vec<Vec<f64>>,
) -> Option<(Vec<f64>, Vec<Vec<f64>>)> {
    assert_eq!(a.len(), n * n, "eigen_projected: matrix is not n x n");
    assert!(
        ys.iter().all(|y| y.len() == n),
        "eigen_projected: vector length"
    );
    if n == 0 {
        return Some((Vec::new(), ys));
    }
    let (mut d, mut e) = tridiagonalise(&mut a, n, &mut ys);
    drop(a);
    tql(&mut d, &mut e, &mut ys)?;
    Some((d, ys))
}

/// Householder reduction of `a` in place to tridiagonal form; returns the diagonal and the
/// off-diagonal (`e[i] = T[i][i + 1]`, `e[n - 1] = 0`), with `Q^T` applied to every `ys`.
fn tridiagonalise(a: &mut [f64], n: usize, ys: &mut [Vec<f64>]) -> (Vec<f64>, Vec<f64>) {
    let mut e = vec![0.0f64; n];
    let mut v = vec![0.0f64; n];
    let mut p = vec![0.0f64; n];
    for k in 0..n.saturating_sub(2) {
        let m = n - k - 1;
        let x = &a[k * n + k + 1..k * n + n];
        let tail: f64 = x[1..].iter().map(|t| t * t).sum();
        if tail == 0.0 {
            // Already tridiagonal in this column: the reflector is the identity.
            e[k] = x[0];
            continue;
        }
        let norm = (x[0] * x[0] + tail).sqrt();
        let alpha = if x[0] > 0.0 { -norm } else { norm };
        let v = &mut v[..m];
        v.copy_from_slice(x);
        v[0] -= alpha;
        let v: &[f64] = v;
        let vv = v[0] * v[0] + tail;
        let beta = 2.0 / vv;
        e[k] = alpha;
        // p = beta B v over the trailing rows (B symmetric, rows of a).
        let trailing = &mut a[(k + 1) * n..];
        let p = &mut p[..m];
        let row_dot =
            |row: &[f64]| beta * row[k + 1..].iter().zip(v).map(|(b, v)| b * v).sum::<f64>();
        if m >= PARALLEL_MIN {
            p.par_iter_mut()
                .zip(trailing.par_chunks(n))
                .for_each(|(pi, row)| *pi = row_dot(row));
        } else {
            for (pi, row) in p.iter_mut().zip(trailing.chunks(n)) {
                *pi = row_dot(row);
            }
        }
        // w = p - (beta/2)(p . v) v; B -= v w^T + w v^T.
        let kk = beta / 2.0 * p.iter().zip(v).map(|(p, v)| p * v).sum::<f64>();
        for (pi, vi) in p.iter_mut().zip(v) {
            *pi -= kk * vi;
        }
        let w = &*p;
        let update = |(i, row): (usize, &mut [f64])| {
            let (vi, wi) = (v[i], w[i]);
            for ((b, &vj), &wj) in row[k + 1..].iter_mut().zip(v).zip(w) {
                *b -= vi * wj + wi * vj;
            }
        };
        if m >= PARALLEL_MIN {
            trailing.par_chunks_mut(n).enumerate().for_each(update);
        } else {
            trailing.chunks_mut(n).enumerate().for_each(update);
        }
        for y in ys.iter_mut() {
            let y = &mut y[k + 1..];
            let s = beta * y.iter().zip(v).map(|(y, v)| y * v).sum::<f64>();
            for (y, v) in y.iter_mut().zip(v) {
                *y -= s * v;
            }
        }
    }
    if n >= 2 {
        e[n - 2] = a[(n - 2) * n + n - 1];
    }
    let d = (0..n).map(|i| a[i * n + i]).collect();
    (d, e)
}

/// Implicit QL with shifts on the symmetric tridiagonal `(d, e)`: `d` becomes the
/// eigenvalues; each rotation is applied to the vectors `ys`. `None` without convergence.
fn tql(d: &mut [f64], e: &mut [f64], ys: &mut [Vec<f64>]) -> Option<()> {
    let n = d.len();
    for l in 0..n {
        let mut iterations = 0;
        loop {
            let mut m = l;
            while m + 1 < n {
                let dd = d[m].abs() + d[m + 1].abs();
                if e[m].abs() <= f64::EPSILON * dd {
                    break;
                }
                m += 1;
            }
            if m == l {
                break;
            }
            iterations += 1;
            if iterations > MAX_ITERATIONS {
                return None;
            }
            let mut g = (d[l + 1] - d[l]) / (2.0 * e[l]);
            let mut r = g.hypot(1.0);
            g = d[m] - d[l] + e[l] / (g + r.copysign(g));
            let (mut s, mut c, mut p) = (1.0f64, 1.0f64, 0.0f64);
            let mut deflated = false;
            for i in (l..m).rev() {
                let f = s * e[i];
                let b = c * e[i];
                r = f.hypot(g);
                e[i + 1] = r;
                if r == 0.0 {
                    d[i + 1] -= p;
                    e[m] = 0.0;
                    deflated = true;
                    break;
                }
                s = f / r;
                c = g / r;
                g = d[i + 1] - p;
                r = (d[i] - g) * s + 2.0 * c * b;
                p = s * r;
                d[i + 1] = g + p;
                g = c * r - b;
                for y in ys.iter_mut() {
                    let f = y[i + 1];
                    y[i + 1] = s * y[i] + c * f;
                    y[i] = c * y[i] - s * f;
                }
            }
            if deflated {
                continue;
            }
            d[l] -= p;
            e[l] = g;
            e[m] = 0.0;
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::{DMatrix, SymmetricEigen};

    fn lcg(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed;
        move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) - 0.5
        }
    }

    /// The eigenvalues against nalgebra's full decomposition; the eigenvectors, read off as
    /// the coordinates of the unit vectors, are checked by their residual `|A u - lambda u|`
    /// and orthonormality (a basis of a repeated eigenvalue is arbitrary, so they are not
    /// compared with nalgebra's); the coordinates of the other vectors must be `U^T y`.
    fn check(a: &DMatrix<f64>, ys: &[Vec<f64>]) {
        let n = a.nrows();
        let row_major: Vec<f64> = (0..n * n).map(|t| a[(t / n, t % n)]).collect();
        let mut all: Vec<Vec<f64>> = (0..n)
            .map(|c| (0..n).map(|i| f64::from(u8::from(i == c))).collect())
            .collect();
        all.extend(ys.iter().cloned());
        let (values, coords) = eigen_projected(row_major, n, all).unwrap();
        let full = SymmetricEigen::new(a.clone());
        let scale = full.eigenvalues.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        let mut ours = values.clone();
        ours.sort_by(f64::total_cmp);
        let mut theirs: Vec<f64> = full.eigenvalues.iter().copied().collect();
        theirs.sort_by(f64::total_cmp);
        for (a, b) in ours.iter().zip(&theirs) {
            assert!((a - b).abs() <= 1e-12 * scale, "eigenvalue {a} vs {b}");
        }
        // u_i[c] = e_c . u_i.
        let u = DMatrix::from_fn(n, n, |c, i| coords[c][i]);
        let lambda = DMatrix::from_diagonal(&nalgebra::DVector::from_vec(values.clone()));
        let residual = (a * &u - &u * lambda).abs().max();
        assert!(residual <= 1e-12 * scale * n as f64, "residual {residual}");
        let orth = (u.transpose() * &u - DMatrix::identity(n, n)).abs().max();
        assert!(orth <= 1e-12 * n as f64, "orthonormality {orth}");
        for (t, y) in ys.iter().enumerate() {
            let want = u.transpose() * nalgebra::DVector::from_column_slice(y);
            let norm: f64 = y.iter().map(|v| v * v).sum::<f64>().sqrt();
            for i in 0..n {
                let got = coords[n + t][i];
                assert!(
                    (got - want[i]).abs() <= 1e-12 * norm.max(1.0) * n as f64,
                    "coordinate {got} vs {}",
                    want[i]
                );
            }
        }
    }

    #[test]
    fn matches_a_full_decomposition_on_random_matrices() {
        let mut r = lcg(7);
        for &n in &[1usize, 2, 3, 5, 17, 40, 230] {
            let b = DMatrix::from_fn(n, n + 3, |_, _| r());
            let a = &b * b.transpose(); // a Gram matrix, as advise's
            let ys: Vec<Vec<f64>> = (0..3).map(|_| (0..n).map(|_| r()).collect()).collect();
            check(&a, &ys);
            let s = DMatrix::from_fn(n, n, |_, _| r());
            check(&(&s + s.transpose()), &ys); // indefinite
        }
    }

    #[test]
    fn handles_repeated_eigenvalues_and_rank_deficiency() {
        let mut r = lcg(11);
        let n = 30;
        // Rank 4 Gram matrix: 26 zero eigenvalues.
        let b = DMatrix::from_fn(n, 4, |_, _| r());
        let ys: Vec<Vec<f64>> = (0..2).map(|_| (0..n).map(|_| r()).collect()).collect();
        check(&(&b * b.transpose()), &ys);
        // A multiple of the identity plus a diagonal: already tridiagonal.
        let mut d = DMatrix::identity(n, n) * 2.0;
        d[(3, 3)] = 5.0;
        check(&d, &ys);
    }
}
