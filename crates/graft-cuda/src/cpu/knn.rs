//! Reference for `kernels/knn.cu` (and the cuBLAS GEMM that feeds it).

use std::cmp::Ordering;

use crate::ops::{check_knn, checked_product, Knn, OpError};

/// Squared norm of each `dim`-wide row, summed in order.
pub(crate) fn row_sq_norms(x: &[f32], dim: usize) -> Vec<f32> {
    x.chunks_exact(dim)
        .map(|r| r.iter().fold(0.0f32, |s, &v| s + v * v))
        .collect()
}

/// CPU reference of [`crate::sq_distances`]: `max((||q||² + ||r||²) + (-2 q·r), 0)`.
pub fn sq_distances(queries: &[f32], references: &[f32], dim: usize) -> Result<Vec<f32>, OpError> {
    let (nq, nr) = check_knn(queries, references, dim, 0)?;
    let mut out = vec![0.0f32; checked_product("distance matrix", &[nq, nr])?];
    let (qn, rn) = (row_sq_norms(queries, dim), row_sq_norms(references, dim));
    for (i, q) in queries.chunks_exact(dim).enumerate() {
        let row = &mut out[i * nr..][..nr];
        for ((d, r), &rnj) in row.iter_mut().zip(references.chunks_exact(dim)).zip(&rn) {
            let dot = q.iter().zip(r).fold(0.0f32, |s, (&a, &b)| s + a * b);
            *d = ((qn[i] + rnj) + -2.0 * dot).max(0.0);
        }
    }
    Ok(out)
}

/// Orders `(distance, index)` pairs: ascending distance (NaN last), then ascending index.
fn by_distance_then_index(a: &(f32, u32), b: &(f32, u32)) -> Ordering {
    a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
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
    let mut pairs: Vec<(f32, u32)> = Vec::with_capacity(cols);
    for row in d.chunks_exact(cols) {
        pairs.clear();
        pairs.extend(row.iter().enumerate().map(|(j, &v)| (v, j as u32)));
        if k > 0 && k < cols {
            pairs.select_nth_unstable_by(k - 1, by_distance_then_index);
        }
        let best = &mut pairs[..k];
        best.sort_unstable_by(by_distance_then_index);
        for &(v, j) in best.iter() {
            indices.push(j);
            distances.push(v);
        }
    }
    (indices, distances)
}

/// CPU reference of [`crate::knn`]: [`sq_distances`] then [`top_k_smallest`].
pub fn knn(queries: &[f32], references: &[f32], dim: usize, k: usize) -> Result<Knn, OpError> {
    let (_, nr) = check_knn(queries, references, dim, k)?;
    let d = sq_distances(queries, references, dim)?;
    let (indices, distances) = top_k_smallest(&d, nr, k);
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
