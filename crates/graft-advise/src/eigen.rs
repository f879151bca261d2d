//! [`eigen_projected`]: the eigenvalues of a symmetric matrix `A` (n x n) and the coordinates
//! `u_i . y` of a few vectors `y` on its eigenvectors, without forming the eigenvectors.
//!
//! LogME and H-score need no more than that (`sigma_i` and `(u_i . y)^2` for the class
//! columns), so the `O(n^3)` accumulation of an `n x n` eigenvector matrix, the bulk of a full
//! eigendecomposition, is replaced by `O(n^2)` work per vector:
//!
//! 1. Householder tridiagonalisation `T = Q^T A Q` (Golub & Van Loan, Algorithm 8.3.1),
//!    `4/3 n^3` flops on the lower triangle, one pass over it per step (the rank-2 update
//!    applied lazily in the pass that forms the next product), spread over the rayon pool;
//!    each reflector is applied to the vectors as it is made (`y <- Q^T y`).
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

/// Eigenvalues and coordinates (as [`eigen_projected`]) of a symmetric `n x n` row-major `a`
/// and of its doubly centred `(I - 11^T/n) a (I - 11^T/n)`, from one tridiagonalisation:
/// `(of a, of the centred a)`.
///
/// A first reflector `H0` maps `1/sqrt(n)` to `e_1`; the tridiagonalisation of `H0 a H0` keeps
/// `e_1` fixed, so its `Q` has first column `1/sqrt(n)` and `Q^T (I - 11^T/n) Q = I - e_1 e_1^T`:
/// the centred matrix's tridiagonal form is `T` without its first row and column (and an
/// exact zero eigenvalue along `1`, which is left out). The two QL iterations are `O(n^2)`.
#[allow(clippy::type_complexity)]
pub fn eigen_projected_and_centred(
    mut a: Vec<f64>,
    n: usize,
    mut ys: Vec<Vec<f64>>,
) -> Option<((Vec<f64>, Vec<Vec<f64>>), (Vec<f64>, Vec<Vec<f64>>))> {
    assert_eq!(
        a.len(),
        n * n,
        "eigen_projected_and_centred: matrix is not n x n"
    );
    assert!(
        ys.iter().all(|y| y.len() == n),
        "eigen_projected_and_centred: vector length"
    );
    if n < 3 {
        let nf = n as f64;
        let row_means: Vec<f64> = a
            .chunks_exact(n.max(1))
            .map(|r| r.iter().sum::<f64>() / nf)
            .collect();
        let total = row_means.iter().sum::<f64>() / nf;
        let centred: Vec<f64> = (0..n * n)
            .map(|t| a[t] - row_means[t / n] - row_means[t % n] + total)
            .collect();
        let plain = eigen_projected(a, n, ys.clone())?;
        let centred = eigen_projected(centred, n, ys)?;
        return Some((plain, centred));
    }
    // H0 = I - beta v v^T with v = 1/sqrt(n) - e_1; a <- H0 a H0 as a rank-2 update.
    let mut v = vec![1.0 / (n as f64).sqrt(); n];
    v[0] -= 1.0;
    let beta = 2.0 / v.iter().map(|x| x * x).sum::<f64>();
    let p: Vec<f64> = a
        .par_chunks(n)
        .map(|row| beta * row.iter().zip(&v).map(|(b, v)| b * v).sum::<f64>())
        .collect();
    let kk = beta / 2.0 * p.iter().zip(&v).map(|(p, v)| p * v).sum::<f64>();
    let w: Vec<f64> = p.iter().zip(&v).map(|(p, v)| p - kk * v).collect();
    a.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
        let (vi, wi) = (v[i], w[i]);
        for ((b, &vj), &wj) in row.iter_mut().zip(&v).zip(&w) {
            *b -= vi * wj + wi * vj;
        }
    });
    for y in ys.iter_mut() {
        let s = beta * y.iter().zip(&v).map(|(y, v)| y * v).sum::<f64>();
        for (y, v) in y.iter_mut().zip(&v) {
            *y -= s * v;
        }
    }
    let (d, e) = tridiagonalise(&mut a, n, &mut ys);
    drop(a);
    let (mut d1, mut e1) = (d[1..].to_vec(), e[1..].to_vec());
    let mut ys1: Vec<Vec<f64>> = ys.iter().map(|y| y[1..].to_vec()).collect();
    let (mut d0, mut e0) = (d, e);
    let (plain, centred) = rayon::join(
        || tql(&mut d0, &mut e0, &mut ys).map(|()| (d0, ys)),
        || tql(&mut d1, &mut e1, &mut ys1).map(|()| (d1, ys1)),
    );
    Some((plain?, centred?))
}

/// Householder reduction of `a` in place to tridiagonal form; returns the diagonal and the
/// off-diagonal (`e[i] = T[i][i + 1]`, `e[n - 1] = 0`), with `Q^T` applied to every `ys`.
///
/// Only the lower triangle of `a` is read and written, and each step makes one pass over it:
/// the previous step's rank-2 update `B -= v w^T + w v^T` is applied lazily, to the column the
/// step reduces first (`O(n)`) and then to each row during the same pass that accumulates the
/// product `B v` of the new reflector, so the trailing matrix is read and written once per
/// step (the reduction is bound by memory traffic, not by flops).
fn tridiagonalise(a: &mut [f64], n: usize, ys: &mut [Vec<f64>]) -> (Vec<f64>, Vec<f64>) {
    let mut d = vec![0.0f64; n];
    let mut e = vec![0.0f64; n];
    // The pending update `B -= pv pw^T + pw pv^T`, for indices at or after the current step.
    let mut pv = vec![0.0f64; n];
    let mut pw = vec![0.0f64; n];
    let mut pending = false;
    let mut v = vec![0.0f64; n];
    for k in 0..n.saturating_sub(2) {
        // Column k below the diagonal and the diagonal entry, updated.
        let col = |i: usize| a[i * n + k] - (pv[i] * pw[k] + pw[i] * pv[k]);
        d[k] = a[k * n + k] - 2.0 * pv[k] * pw[k];
        let x0 = col(k + 1);
        let tail: f64 = (k + 2..n).map(|i| col(i).powi(2)).sum();
        let reflect = tail != 0.0;
        let mut beta = 0.0;
        if reflect {
            let norm = (x0 * x0 + tail).sqrt();
            let alpha = if x0 > 0.0 { -norm } else { norm };
            v[k + 1] = x0 - alpha;
            for (i, vi) in v.iter_mut().enumerate().skip(k + 2) {
                *vi = col(i);
            }
            beta = 2.0 / (v[k + 1] * v[k + 1] + tail);
            e[k] = alpha;
        } else {
            e[k] = x0;
        }
        // One pass over rows k+1..n (lower triangle, columns k+1..=i): apply the pending
        // update, and accumulate p = B v (row part p_i += B_ij v_j, mirrored part
        // p_j += B_ij v_i) into per-split vectors.
        let lo = k + 1;
        let (pv_r, pw_r, v_r) = (&pv, &pw, &v);
        let pass = |acc: &mut Vec<f64>, (r, row): (usize, &mut [f64])| {
            let i = lo + r;
            let (row, diag) = row[lo..=i].split_at_mut(i - lo);
            let (pvi, pwi) = if pending {
                (pv_r[i], pw_r[i])
            } else {
                (0.0, 0.0)
            };
            diag[0] -= pvi * pw_r[i] + pwi * pv_r[i];
            if !reflect {
                if pending {
                    for (b, (&vj, &wj)) in row.iter_mut().zip(pv_r[lo..i].iter().zip(&pw_r[lo..i]))
                    {
                        *b -= pvi * wj + pwi * vj;
                    }
                }
                return;
            }
            // Fused: update B_ij, then B_ij v_j into the row's sum (eight partial sums, so
            // the loop is not one serial chain of additions) and B_ij v_i into p_j.
            let vi = v_r[i];
            let mut lanes = [0.0f64; 8];
            let (pv_s, pw_s, v_s, acc_s) =
                (&pv_r[lo..i], &pw_r[lo..i], &v_r[lo..i], &mut acc[lo..i]);
            let mut row_c = row.chunks_exact_mut(8);
            let mut pv_c = pv_s.chunks_exact(8);
            let mut pw_c = pw_s.chunks_exact(8);
            let mut v_c = v_s.chunks_exact(8);
            let mut acc_c = acc_s.chunks_exact_mut(8);
            for ((((b, pvj), pwj), vj), pj) in (&mut row_c)
                .zip(&mut pv_c)
                .zip(&mut pw_c)
                .zip(&mut v_c)
                .zip(&mut acc_c)
            {
                for t in 0..8 {
                    let x = b[t] - (pvi * pwj[t] + pwi * pvj[t]);
                    b[t] = x;
                    lanes[t] += x * vj[t];
                    pj[t] += x * vi;
                }
            }
            let mut s = diag[0] * vi;
            for ((((b, &pvj), &pwj), &vj), pj) in row_c
                .into_remainder()
                .iter_mut()
                .zip(pv_c.remainder())
                .zip(pw_c.remainder())
                .zip(v_c.remainder())
                .zip(acc_c.into_remainder())
            {
                let x = *b - (pvi * pwj + pwi * pvj);
                *b = x;
                s += x * vj;
                *pj += x * vi;
            }
            acc[i] += s + lanes.iter().sum::<f64>();
        };
        let rows = &mut a[lo * n..];
        let m = n - lo;
        let p: Vec<f64> = if m >= PARALLEL_MIN {
            rows.par_chunks_mut(n)
                .enumerate()
                .with_min_len(m / 16 + 1)
                .fold(
                    || vec![0.0f64; n],
                    |mut acc, item| {
                        pass(&mut acc, item);
                        acc
                    },
                )
                .reduce(
                    || vec![0.0f64; n],
                    |mut x, y| {
                        for (x, y) in x.iter_mut().zip(&y) {
                            *x += y;
                        }
                        x
                    },
                )
        } else {
            let mut acc = vec![0.0f64; n];
            rows.chunks_mut(n)
                .enumerate()
                .for_each(|item| pass(&mut acc, item));
            acc
        };
        if !reflect {
            pending = false;
            pv.fill(0.0);
            pw.fill(0.0);
            continue;
        }
        // w = beta p - (beta/2)(beta p . v) v becomes the pending update.
        let kk = beta / 2.0 * (lo..n).map(|i| beta * p[i] * v[i]).sum::<f64>();
        for i in lo..n {
            pv[i] = v[i];
            pw[i] = beta * p[i] - kk * v[i];
        }
        pending = true;
        for y in ys.iter_mut() {
            let s = beta * (lo..n).map(|i| y[i] * v[i]).sum::<f64>();
            for i in lo..n {
                y[i] -= s * v[i];
            }
        }
    }
    // The last two rows, with the pending update.
    let upd = |i: usize, j: usize| {
        let b = a[i * n + j];
        if pending {
            b - (pv[i] * pw[j] + pw[i] * pv[j])
        } else {
            b
        }
    };
    if n >= 2 {
        d[n - 2] = upd(n - 2, n - 2);
        e[n - 2] = upd(n - 1, n - 2);
    }
    d[n - 1] = upd(n - 1, n - 1);
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
    fn one_tridiagonalisation_serves_the_matrix_and_its_centred_form() {
        let mut r = lcg(13);
        for &(n, d) in &[
            (1usize, 2usize),
            (2, 3),
            (3, 5),
            (8, 20),
            (60, 61),
            (250, 300),
        ] {
            let b = DMatrix::from_fn(n, d, |_, _| r() + 0.7);
            let g = &b * b.transpose();
            let ys: Vec<Vec<f64>> = (0..2).map(|_| (0..n).map(|_| r()).collect()).collect();
            let row_major: Vec<f64> = (0..n * n).map(|t| g[(t / n, t % n)]).collect();
            let c = DMatrix::from_fn(n, n, |i, j| f64::from(u8::from(i == j)) - 1.0 / n as f64);
            let gc = &c * &g * &c;
            let ((v0, c0), (v1, c1)) =
                eigen_projected_and_centred(row_major, n, ys.clone()).unwrap();
            for (m, values, coords) in [(&g, &v0, &c0), (&gc, &v1, &c1)] {
                let scale = m.iter().fold(1.0f64, |s, x| s.max(x.abs()));
                // Every eigenpair (lambda, coordinates) reproduces y^T M y and |y|^2 restricted
                // to the non-zero spectrum; and the eigenvalues are nalgebra's.
                let full = SymmetricEigen::new(m.clone());
                let mut theirs: Vec<f64> = full
                    .eigenvalues
                    .iter()
                    .copied()
                    .filter(|x| x.abs() > 1e-9 * scale)
                    .collect();
                theirs.sort_by(f64::total_cmp);
                let mut ours: Vec<f64> = values
                    .iter()
                    .copied()
                    .filter(|x| x.abs() > 1e-9 * scale)
                    .collect();
                ours.sort_by(f64::total_cmp);
                assert_eq!(ours.len(), theirs.len(), "n {n}: {ours:?} vs {theirs:?}");
                for (a, b) in ours.iter().zip(&theirs) {
                    assert!(
                        (a - b).abs() <= 1e-11 * scale,
                        "n {n}: eigenvalue {a} vs {b}"
                    );
                }
                for (y, x) in ys.iter().zip(coords.iter()) {
                    let yv = nalgebra::DVector::from_column_slice(y);
                    let yay = (yv.transpose() * m * &yv)[(0, 0)];
                    let got: f64 = values.iter().zip(x).map(|(l, x)| l * x * x).sum();
                    assert!(
                        (got - yay).abs() <= 1e-10 * scale * n as f64,
                        "n {n}: {got} vs {yay}"
                    );
                    // Coordinates on each isolated eigenvalue match nalgebra's (squared).
                    for (j, &lam) in full.eigenvalues.iter().enumerate() {
                        let gap = full
                            .eigenvalues
                            .iter()
                            .enumerate()
                            .filter(|&(t, _)| t != j)
                            .map(|(_, &o)| (o - lam).abs())
                            .fold(f64::INFINITY, f64::min);
                        if lam.abs() <= 1e-9 * scale || gap < 1e-3 * scale {
                            continue;
                        }
                        let i = (0..values.len())
                            .min_by(|&a, &b| {
                                (values[a] - lam).abs().total_cmp(&(values[b] - lam).abs())
                            })
                            .unwrap();
                        let want = full.eigenvectors.column(j).dot(&yv).powi(2);
                        assert!(
                            (x[i] * x[i] - want).abs() <= 1e-8 * yv.norm_squared().max(1.0),
                            "n {n}"
                        );
                    }
                }
            }
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
