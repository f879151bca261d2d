//! Reference for `kernels/knn.cu` (and the cuBLAS GEMM that feeds it): the products by the
//! `gemm` crate in blocks of query rows, each block's top-k selected while its distances
//! are in the cache.

use std::cmp::Ordering;

use rayon::prelude::*;

use crate::spec::{check_knn, checked_product, Knn, OpError};

/// Squared norm of each `dim`-wide row, summed in order.
pub(crate) fn row_sq_norms(x: &[f32], dim: usize) -> Vec<f32> {
    x.chunks_exact(dim)
        .map(|r| r.iter().fold(0.0f32, |s, &v| s + v * v))
        .collect()
}

/// Query rows per block: a block's distance rows (`QUERY_BLOCK x references` f32) stay in
/// the cache between the GEMM that fills them and the top-k scan that reads them, and the
/// blocks are spread over the rayon pool.
const QUERY_BLOCK: usize = 32;

/// Up to this `k`, a row's `k` smallest entries are kept by insertion into a sorted list
/// during one scan of the row; above it, by `select_nth_unstable`.
const INSERTION_MAX_K: usize = 64;

/// `out = q · rᵀ` for `rows` query rows against every reference row, by the `gemm` crate on
/// the calling thread (the blocks are already spread over the pool).
fn dots(q: &[f32], references: &[f32], dim: usize, out: &mut [f32]) {
    let (rows, nr) = (q.len() / dim, references.len() / dim);
    assert!(q.len() == rows * dim && references.len() == nr * dim && out.len() == rows * nr);
    if rows == 0 || nr == 0 {
        return;
    }
    // SAFETY: `q` is `rows x dim` row-major (column stride 1, row stride dim); `rᵀ` is read
    // from the `nr x dim` row-major references (element (t, j) at j * dim + t); `out` is
    // `rows x nr` row-major and exclusive. The sizes are asserted above.
    unsafe {
        gemm::gemm(
            rows,
            nr,
            dim,
            out.as_mut_ptr(),
            1,
            nr as isize,
            false,
            q.as_ptr(),
            1,
            dim as isize,
            references.as_ptr(),
            dim as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Squared distances of one block of query rows (norms `qn`) to every reference (norms
/// `rn`), into `out` (`rows x nr`): the GEMM, then `max((||q||² + ||r||²) + (-2 q·r), 0)` in
/// place, as `kernels/knn.cu` finishes cuBLAS's product.
fn block_sq_distances(
    q: &[f32],
    qn: &[f32],
    references: &[f32],
    rn: &[f32],
    dim: usize,
    out: &mut [f32],
) {
    dots(q, references, dim, out);
    let nr = rn.len();
    if nr == 0 {
        return;
    }
    for (row, &qni) in out.chunks_exact_mut(nr).zip(qn) {
        for (d, &rnj) in row.iter_mut().zip(rn) {
            *d = ((qni + rnj) + -2.0 * *d).max(0.0);
        }
    }
}

/// CPU reference of [`crate::sq_distances`]: `max((||q||² + ||r||²) + (-2 q·r), 0)`, the
/// products by a GEMM in blocks of query rows spread over the rayon pool.
pub fn sq_distances(queries: &[f32], references: &[f32], dim: usize) -> Result<Vec<f32>, OpError> {
    let (_, nr) = check_knn(queries, references, dim, 0)?;
    let nq = queries.len() / dim;
    let mut out = vec![0.0f32; checked_product("distance matrix", &[nq, nr])?];
    if nr == 0 {
        return Ok(out);
    }
    let (qn, rn) = (row_sq_norms(queries, dim), row_sq_norms(references, dim));
    out.par_chunks_mut(QUERY_BLOCK * nr)
        .zip(queries.par_chunks(QUERY_BLOCK * dim))
        .zip(qn.par_chunks(QUERY_BLOCK))
        .for_each(|((block, q), qn)| block_sq_distances(q, qn, references, &rn, dim, block));
    Ok(out)
}

/// Orders `(distance, index)` pairs: ascending distance (NaN last), then ascending index.
fn by_distance_then_index(a: &(f32, u32), b: &(f32, u32)) -> Ordering {
    a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
}

/// The `k` smallest `(value, index)` pairs of one row, in ascending order, appended to
/// `best` (cleared first): one scan keeping a sorted list of `k`. Indices grow during the
/// scan, so a later entry displaces the current `k`-th only when its value is strictly
/// smaller in `total_cmp` order: the result is the same as a full sort's first `k`.
fn top_k_row_insertion(row: &[f32], k: usize, best: &mut Vec<(f32, u32)>) {
    best.clear();
    if k == 0 {
        return;
    }
    for (j, &v) in row.iter().enumerate() {
        if best.len() == k {
            if v.total_cmp(&best[k - 1].0) != Ordering::Less {
                continue;
            }
            best.pop();
        }
        // Insert after every entry that is not greater (equal values keep index order).
        let at = best.partition_point(|e| e.0.total_cmp(&v) != Ordering::Greater);
        best.insert(at, (v, j as u32));
    }
}

/// The `k` smallest `(value, index)` pairs of one row in ascending order, into `best`.
fn top_k_row(row: &[f32], k: usize, best: &mut Vec<(f32, u32)>) {
    if k <= INSERTION_MAX_K {
        return top_k_row_insertion(row, k, best);
    }
    best.clear();
    best.extend(row.iter().enumerate().map(|(j, &v)| (v, j as u32)));
    if k < row.len() {
        best.select_nth_unstable_by(k - 1, by_distance_then_index);
        best.truncate(k);
    }
    best.sort_unstable_by(by_distance_then_index);
}

/// The `k` smallest entries of each `cols`-wide row of `d`: indices and values, in
/// ascending (value, index) order. `k` must not exceed `cols`.
pub fn top_k_smallest(d: &[f32], cols: usize, k: usize) -> (Vec<u32>, Vec<f32>) {
    let k = k.min(cols);
    if cols == 0 {
        return (Vec::new(), Vec::new());
    }
    let rows = d.len() / cols;
    let mut indices = Vec::with_capacity(rows * k);
    let mut distances = Vec::with_capacity(rows * k);
    let mut best: Vec<(f32, u32)> = Vec::with_capacity(cols.min(k.max(INSERTION_MAX_K) + 1));
    for row in d.chunks_exact(cols) {
        top_k_row(row, k, &mut best);
        for &(v, j) in best.iter() {
            indices.push(j);
            distances.push(v);
        }
    }
    (indices, distances)
}

/// CPU reference of [`crate::knn`]: [`sq_distances`] then [`top_k_smallest`], fused per
/// block of query rows (the block's distances are scanned while still in the cache, and the
/// whole `queries x references` matrix is never allocated), blocks spread over the rayon
/// pool. The same results as the two steps one after the other.
pub fn knn(queries: &[f32], references: &[f32], dim: usize, k: usize) -> Result<Knn, OpError> {
    let (nq, nr) = check_knn(queries, references, dim, k)?;
    let mut indices = vec![0u32; checked_product("knn indices", &[nq, k])?];
    let mut distances = vec![0.0f32; nq * k];
    if k == 0 || nq == 0 {
        return Ok(Knn {
            k,
            indices,
            distances,
        });
    }
    let (qn, rn) = (row_sq_norms(queries, dim), row_sq_norms(references, dim));
    indices
        .par_chunks_mut(QUERY_BLOCK * k)
        .zip(distances.par_chunks_mut(QUERY_BLOCK * k))
        .zip(queries.par_chunks(QUERY_BLOCK * dim))
        .zip(qn.par_chunks(QUERY_BLOCK))
        .for_each_init(
            || (Vec::new(), Vec::with_capacity(k.min(nr) + 1)),
            |(block, best), (((idx, dist), q), qn)| {
                block.resize(qn.len() * nr, 0.0f32);
                block_sq_distances(q, qn, references, &rn, dim, block);
                for ((row, idx), dist) in block
                    .chunks_exact(nr)
                    .zip(idx.chunks_exact_mut(k))
                    .zip(dist.chunks_exact_mut(k))
                {
                    top_k_row(row, k, best);
                    for ((i, d), &(v, j)) in idx.iter_mut().zip(dist.iter_mut()).zip(best.iter()) {
                        *i = j;
                        *d = v;
                    }
                }
            },
        );
    Ok(Knn {
        k,
        indices,
        distances,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tiny_example_by_hand() {
        // References on a line at x = 0, 1, 2, 3 (2-D); query at (1.4, 0) and (3, 1).
        let refs = [0.0, 0.0, 1.0, 0.0, 2.0, 0.0, 3.0, 0.0];
        let out = knn(&[1.4, 0.0, 3.0, 1.0], &refs, 2, 3).unwrap();
        assert_eq!(out.indices, vec![1, 2, 0, 3, 2, 1]);
        let want = [0.16, 0.36, 1.96, 1.0, 2.0, 5.0];
        for (d, w) in out.distances.iter().zip(want) {
            assert!((d - w).abs() < 1e-5, "{:?}", out.distances);
        }
    }

    #[test]
    fn ties_go_to_the_lower_index() {
        let refs = [1.0, -1.0, 1.0, -1.0, 5.0];
        let out = knn(&[0.0], &refs, 1, 5).unwrap();
        assert_eq!(out.indices, vec![0, 1, 2, 3, 4]);
        let out = knn(&[0.0], &refs, 1, 2).unwrap();
        assert_eq!(out.indices, vec![0, 1]);
    }

    #[test]
    fn identical_points_have_distance_zero_not_negative() {
        let p = [0.1f32, 0.7, -3.3, 1e3];
        let d = sq_distances(&p, &p, 4).unwrap();
        assert!(d[0] >= 0.0 && d[0] < 1.0, "{d:?}");
    }

    #[test]
    fn invalid_inputs_are_errors() {
        assert!(knn(&[0.0; 3], &[0.0; 4], 2, 1).is_err());
        assert!(knn(&[0.0; 2], &[0.0; 4], 2, 3).is_err());
        assert!(knn(&[0.0; 2], &[0.0; 4], 0, 1).is_err());
        let empty = knn(&[], &[0.0; 4], 2, 2).unwrap();
        assert!(empty.indices.is_empty());
    }

    /// Brute force: exact f64 distances, full sort by (distance, index).
    fn brute_force(q: &[f32], r: &[f32], dim: usize, k: usize) -> (Vec<u32>, Vec<f64>) {
        let (mut idx, mut dist) = (Vec::new(), Vec::new());
        for qi in q.chunks_exact(dim) {
            let mut all: Vec<(f64, u32)> = r
                .chunks_exact(dim)
                .enumerate()
                .map(|(j, rj)| {
                    let d = qi
                        .iter()
                        .zip(rj)
                        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
                        .sum();
                    (d, j as u32)
                })
                .collect();
            all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            for &(d, j) in all.iter().take(k) {
                idx.push(j);
                dist.push(d);
            }
        }
        (idx, dist)
    }

    #[test]
    fn several_query_blocks_and_both_selections_match_brute_force() {
        // Small integers (exact in f32 and in the GEMM): many real ties. 70 queries span
        // three blocks of QUERY_BLOCK; k = 80 takes the select_nth path, the others the
        // insertion path.
        let (nq, nr, dim) = (70usize, 150usize, 3usize);
        let mut state = 12345u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            f32::from(((state >> 33) % 5) as u8) - 2.0
        };
        let q: Vec<f32> = (0..nq * dim).map(|_| next()).collect();
        let r: Vec<f32> = (0..nr * dim).map(|_| next()).collect();
        for k in [0, 1, 7, INSERTION_MAX_K, 80, nr] {
            let out = knn(&q, &r, dim, k).unwrap();
            let (idx, dist) = brute_force(&q, &r, dim, k);
            assert_eq!(out.indices, idx, "k = {k}");
            let got: Vec<f64> = out.distances.iter().map(|&d| f64::from(d)).collect();
            assert_eq!(got, dist, "k = {k}");
            // The fused path equals the two steps one after the other.
            let d = sq_distances(&q, &r, dim).unwrap();
            let (i2, d2) = top_k_smallest(&d, nr, k);
            assert_eq!((out.indices.clone(), out.distances.clone()), (i2, d2));
        }
    }

    #[test]
    fn insertion_and_select_nth_agree_with_ties_and_nan() {
        let row = [
            3.0,
            1.0,
            f32::NAN,
            1.0,
            0.0,
            3.0,
            f32::INFINITY,
            1.0,
            -0.0,
            2.0,
        ];
        for k in 0..=row.len() {
            let mut a = Vec::new();
            top_k_row_insertion(&row, k, &mut a);
            let mut all: Vec<(f32, u32)> = row
                .iter()
                .enumerate()
                .map(|(j, &v)| (v, j as u32))
                .collect();
            all.sort_by(by_distance_then_index);
            all.truncate(k);
            let bits =
                |v: &[(f32, u32)]| v.iter().map(|e| (e.0.to_bits(), e.1)).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&all), "k = {k}");
        }
    }

    proptest! {
        /// Against brute force: exact f64 distances, full sort.
        #[test]
        fn matches_brute_force_sort(
            (dim, nq, nr, k, q, r) in (1usize..5, 1usize..5, 1usize..12).prop_flat_map(|(dim, nq, nr)| (
                Just(dim), Just(nq), Just(nr), 0..=nr,
                // Small integers: exact in f32, so ties are real ties.
                proptest::collection::vec((-3i8..4).prop_map(f32::from), nq * dim),
                proptest::collection::vec((-3i8..4).prop_map(f32::from), nr * dim),
            ))
        ) {
            let out = knn(&q, &r, dim, k).unwrap();
            prop_assert_eq!(out.indices.len(), nq * k);
            for i in 0..nq {
                let mut all: Vec<(f64, u32)> = (0..nr).map(|j| {
                    let d: f64 = (0..dim).map(|t| {
                        let diff = f64::from(q[i * dim + t]) - f64::from(r[j * dim + t]);
                        diff * diff
                    }).sum();
                    (d, j as u32)
                }).collect();
                all.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap().then(a.1.cmp(&b.1)));
                for (t, &(dist, j)) in all.iter().take(k).enumerate() {
                    prop_assert_eq!(out.indices[i * k + t], j);
                    prop_assert_eq!(f64::from(out.distances[i * k + t]), dist);
                }
            }
        }

        #[test]
        fn distances_match_direct_sum(
            (dim, q, r) in (1usize..9).prop_flat_map(|dim| (
                Just(dim),
                proptest::collection::vec(-10.0f32..10.0, dim * 3),
                proptest::collection::vec(-10.0f32..10.0, dim * 4),
            ))
        ) {
            let d = sq_distances(&q, &r, dim).unwrap();
            for i in 0..3 {
                for j in 0..4 {
                    let direct: f32 = (0..dim).map(|t| (q[i * dim + t] - r[j * dim + t]).powi(2)).sum();
                    // Cancellation in the norm form: error relative to the norms.
                    let scale = 1.0 + (0..dim).map(|t| q[i * dim + t].powi(2) + r[j * dim + t].powi(2)).sum::<f32>();
                    prop_assert!((d[i * 4 + j] - direct).abs() <= 1e-5 * scale, "{} vs {}", d[i * 4 + j], direct);
                }
            }
        }
    }
}
