//! Leave-one-out k-nearest-neighbour accuracy: each sample is classified by the majority label
//! of its `k` nearest other samples (Euclidean distance in feature space); the score is the
//! fraction classified correctly. A tie between labels goes to the label whose nearest voter
//! is closest. Distances come from the Gram matrix (`|a - b|^2 = a.a + b.b - 2 a.b`, f64).
//! Cost: `O(N^2 D)` for the Gram matrix and `O(N^2 log N)` for the sorts.

use crate::{AdviseError, LabelledFeatures};

/// Neighbours that vote, by default.
pub const DEFAULT_NEIGHBOURS: usize = 5;

/// Leave-one-out accuracy of the `k`-nearest-neighbour classifier (`k` is capped at `N - 1`).
pub fn knn_loo_accuracy(features: &LabelledFeatures<'_>, k: usize) -> Result<f64, AdviseError> {
    if k == 0 {
        return Err(AdviseError::Input {
            estimator: "kNN",
            reason: "the number of neighbours must be at least 1".into(),
        });
    }
    let f = features.matrix();
    let gram = &f * f.transpose();
    let n = features.len();
    let k = k.min(n - 1);
    let mut correct = 0usize;
    let mut others: Vec<(f64, usize)> = Vec::with_capacity(n);
    for i in 0..n {
        others.clear();
        others.extend(
            (0..n)
                .filter(|&j| j != i)
                .map(|j| (gram[(i, i)] + gram[(j, j)] - 2.0 * gram[(i, j)], j)),
        );
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
    Ok(correct as f64 / n as f64)
}
