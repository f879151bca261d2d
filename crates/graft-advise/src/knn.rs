//! Leave-one-out k-nearest-neighbour accuracy: each sample is classified by the majority label
//! of its `k` nearest other samples (Euclidean distance in feature space); the score is the
//! fraction classified correctly. A tie between labels goes to the label whose nearest voter
//! is closest.
//!
//! Neighbours are ordered by `(distance, index)`, the distance being the direct f64 sum
//! `sum_t (a_t - b_t)^2` over the f32 features, so the result does not depend on how any
//! product is blocked. Distances from the block's shared Gram matrix
//! (`|a - b|^2 = a.a + b.b - 2 a.b`) only choose the candidates: every sample whose Gram
//! distance is within its rounding bound of the `k`-th is re-measured directly, so the chosen
//! neighbours are exactly those of the direct distances. Cost: the shared `O(N^2 D)` Gram
//! matrix, `O(N^2)` for the bounds and a selection per row (no sort of all `N`), and
//! `O(D)` per candidate; rows are spread over the rayon pool.

use rayon::prelude::*;

use crate::gram::Block;
use crate::{AdviseError, LabelledFeatures};

/// Neighbours that vote, by default.
pub const DEFAULT_NEIGHBOURS: usize = 5;

/// Leave-one-out accuracy of the `k`-nearest-neighbour classifier (`k` is capped at `N - 1`).
pub fn knn_loo_accuracy(features: &LabelledFeatures<'_>, k: usize) -> Result<f64, AdviseError> {
    check_k(k)?;
    knn_block(&Block::new(*features), k)
}

fn check_k(k: usize) -> Result<(), AdviseError> {
    if k == 0 {
        return Err(AdviseError::Input {
            estimator: "kNN",
            reason: "the number of neighbours must be at least 1".into(),
        });
    }
    Ok(())
}

/// The direct squared distance between two f32 rows, summed in f64 in order.
fn direct(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let t = f64::from(x) - f64::from(y);
            t * t
        })
        .sum()
}

/// Per-thread buffers of [`knn_block`]: `(lower bound, upper bound, j)` of every Gram
/// distance, and `(direct distance, j)` of the candidates.
type Scratch = (Vec<(f64, f64, usize)>, Vec<(f64, usize)>);

/// [`knn_loo_accuracy`] of a prepared [`Block`].
pub fn knn_block(block: &Block<'_>, k: usize) -> Result<f64, AdviseError> {
    check_k(k)?;
    let features = &block.features;
    let (n, dim) = (block.n(), block.d());
    let k = k.min(n - 1);
    let g = &block.gram;
    // |computed - true| of a Gram distance is at most 2 gamma_D (G_ii + G_jj) plus a few
    // roundings of the sums (gamma_D = D eps / (1 - D eps), any summation order), and the
    // direct sum is within gamma_D of the true distance, itself at most 2 (G_ii + G_jj):
    // 8 (D + 4) eps (G_ii + G_jj) covers both with a margin.
    let slack = 8.0 * (dim as f64 + 4.0) * f64::EPSILON;
    let row = |i: usize| &features.values[i * dim..(i + 1) * dim];
    let correct: usize = (0..n)
        .into_par_iter()
        .map_init(
            || (Vec::new(), Vec::new()),
            |(bounds, cands): &mut Scratch, i| {
                let gi = &g[i * n..(i + 1) * n];
                bounds.clear();
                bounds.extend((0..n).filter(|&j| j != i).map(|j| {
                    let approx = gi[i] + g[j * n + j] - 2.0 * gi[j];
                    let err = slack * (gi[i].abs() + g[j * n + j].abs());
                    (approx - err, approx + err, j)
                }));
                // tau bounds the k-th smallest distance from above: k samples are within it.
                let mut uppers: Vec<f64> = bounds.iter().map(|b| b.1).collect();
                let (_, &mut tau, _) = uppers.select_nth_unstable_by(k - 1, f64::total_cmp);
                cands.clear();
                cands.extend(
                    bounds
                        .iter()
                        .filter(|b| b.0 <= tau)
                        .map(|&(_, _, j)| (direct(row(i), row(j)), j)),
                );
                cands.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                let mut votes = vec![0usize; features.num_classes];
                let mut nearest = vec![usize::MAX; features.num_classes];
                for (rank, &(_, j)) in cands.iter().take(k).enumerate() {
                    let l = features.labels[j];
                    votes[l] += 1;
                    nearest[l] = nearest[l].min(rank);
                }
                let predicted = (0..features.num_classes)
                    .max_by(|&a, &b| votes[a].cmp(&votes[b]).then(nearest[b].cmp(&nearest[a])))
                    .unwrap_or(0);
                usize::from(predicted == features.labels[i])
            },
        )
        .sum();
    Ok(correct as f64 / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The previous implementation, kept as the reference: f64 Gram distances (nalgebra) and a
    /// full sort of every row.
    fn knn_by_full_sort(features: &LabelledFeatures<'_>, k: usize, exact: bool) -> f64 {
        let f = features.matrix();
        let gram = &f * f.transpose();
        let (n, dim) = (features.len(), features.dim);
        let k = k.min(n - 1);
        let row = |i: usize| &features.values[i * dim..(i + 1) * dim];
        let mut correct = 0usize;
        for i in 0..n {
            let mut others: Vec<(f64, usize)> = (0..n)
                .filter(|&j| j != i)
                .map(|j| {
                    let d = if exact {
                        direct(row(i), row(j))
                    } else {
                        gram[(i, i)] + gram[(j, j)] - 2.0 * gram[(i, j)]
                    };
                    (d, j)
                })
                .collect();
            others.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let mut votes = vec![0usize; features.num_classes];
            let mut nearest = vec![usize::MAX; features.num_classes];
            for (rank, &(_, j)) in others.iter().take(k).enumerate() {
                let l = features.labels[j];
                votes[l] += 1;
                nearest[l] = nearest[l].min(rank);
            }
            let predicted = (0..features.num_classes)
                .max_by(|&a, &b| votes[a].cmp(&votes[b]).then(nearest[b].cmp(&nearest[a])))
                .unwrap_or(0);
            correct += usize::from(predicted == features.labels[i]);
        }
        correct as f64 / n as f64
    }

    fn lcg(seed: u64) -> impl FnMut() -> u64 {
        let mut s = seed;
        move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            s >> 33
        }
    }

    #[test]
    fn equals_the_full_sort_on_random_features() {
        let mut r = lcg(5);
        for &(n, dim, classes) in &[(40usize, 3usize, 2usize), (150, 200, 3), (301, 17, 4)] {
            let values: Vec<f32> = (0..n * dim)
                .map(|_| (r() % 10_000) as f32 / 997.0 - 3.0)
                .collect();
            let labels: Vec<usize> = (0..n).map(|_| (r() as usize) % classes).collect();
            let f = LabelledFeatures::new("test", &values, dim, &labels, classes).unwrap();
            for k in [1, 2, 5, 9, n - 1, n + 3] {
                let got = knn_loo_accuracy(&f, k).unwrap();
                assert_eq!(got, knn_by_full_sort(&f, k, true), "n {n} k {k}");
                assert_eq!(got, knn_by_full_sort(&f, k, false), "n {n} k {k}");
            }
        }
    }

    #[test]
    fn exact_ties_and_duplicates_are_broken_by_index() {
        // Small integers on a grid with repeated points: many equal distances, several zero.
        let mut r = lcg(9);
        let (n, dim, classes) = (120usize, 4usize, 3usize);
        let values: Vec<f32> = (0..n * dim).map(|_| (r() % 3) as f32).collect();
        let labels: Vec<usize> = (0..n).map(|_| (r() as usize) % classes).collect();
        let f = LabelledFeatures::new("test", &values, dim, &labels, classes).unwrap();
        for k in [1, 3, 5, 8, 40] {
            let got = knn_loo_accuracy(&f, k).unwrap();
            assert_eq!(got, knn_by_full_sort(&f, k, true), "k {k}");
            assert_eq!(got, knn_by_full_sort(&f, k, false), "k {k}");
        }
    }

    #[test]
    fn near_ties_below_the_gram_rounding_are_decided_by_the_direct_distance() {
        // Large common offset: Gram distances lose the last bits that separate the
        // neighbours (cancellation in a.a + b.b - 2 a.b); the direct sums keep them.
        let (dim, classes) = (2usize, 2usize);
        let base = 4096.0f32;
        let pts: [[f32; 2]; 6] = [
            [base, base],
            [base + 0.001, base],
            [base, base + 0.0015],
            [base + 0.5, base],
            [base, base + 0.6],
            [base + 0.7, base + 0.7],
        ];
        let values: Vec<f32> = pts.iter().flatten().copied().collect();
        let labels = [0usize, 1, 0, 1, 0, 1];
        let f = LabelledFeatures::new("test", &values, dim, &labels, classes).unwrap();
        for k in 1..=5 {
            assert_eq!(
                knn_loo_accuracy(&f, k).unwrap(),
                knn_by_full_sort(&f, k, true),
                "k {k}"
            );
        }
    }
}
