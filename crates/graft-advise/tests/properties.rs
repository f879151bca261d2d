//! Property tests: every estimator is invariant to the order of the samples, and LogME's
//! evidence grows as a target becomes a linear function of the features.

use graft_advise::leep::SourcePredictions;
use graft_advise::logme::evidence;
use graft_advise::{hscore, knn_loo_accuracy, leep, logme, nce, LabelledFeatures, Spectrum};
use proptest::prelude::*;

/// `(dim, features, labels, unnormalised source probabilities over 4 classes, a permutation)`:
/// `n` rows, labels cycling over 2 or 3 classes.
fn sample() -> impl Strategy<Value = (usize, Vec<f32>, Vec<usize>, Vec<f32>, Vec<usize>)> {
    (2usize..4, 1usize..12, 3usize..6).prop_flat_map(|(classes, dim, per_class)| {
        let n = classes * per_class;
        (
            Just(dim),
            prop::collection::vec(-3.0f32..3.0, n * dim),
            Just((0..n).map(|i| i % classes).collect::<Vec<_>>()),
            prop::collection::vec(0.05f32..1.0, n * 4),
            Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
        )
    })
}

fn normalise_rows(p: &mut [f32], z: usize) {
    for row in p.chunks_mut(z) {
        let s: f32 = row.iter().sum();
        row.iter_mut().for_each(|v| *v /= s);
    }
}

fn permute<T: Copy>(v: &[T], width: usize, order: &[usize]) -> Vec<T> {
    order
        .iter()
        .flat_map(|&i| v[i * width..(i + 1) * width].iter().copied())
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn estimators_ignore_sample_order((dim, x, labels, mut probs, order) in sample()) {
        let classes = labels.iter().max().unwrap() + 1;
        normalise_rows(&mut probs, 4);
        let (x2, l2, p2) = (permute(&x, dim, &order), permute(&labels, 1, &order), permute(&probs, 4, &order));
        let a = LabelledFeatures::new("t", &x, dim, &labels, classes).unwrap();
        let b = LabelledFeatures::new("t", &x2, dim, &l2, classes).unwrap();
        prop_assert!(close(logme(&a).unwrap(), logme(&b).unwrap()));
        prop_assert!(close(hscore(&a).unwrap(), hscore(&b).unwrap()));
        // kNN: a tie in distance could be broken differently after a shuffle; random f32
        // features have none.
        prop_assert_eq!(knn_loo_accuracy(&a, 3).unwrap(), knn_loo_accuracy(&b, 3).unwrap());
        let pa = SourcePredictions::new(&probs, 4, &labels, classes).unwrap();
        let pb = SourcePredictions::new(&p2, 4, &l2, classes).unwrap();
        prop_assert!(close(leep(&pa), leep(&pb)));
        prop_assert!(close(nce(&pa), nce(&pb)));
    }

    /// `y(s) = s F w + (1 - s) e` with `e` noise of the same norm as `F w`: the evidence at
    /// `s = 1` (a linear function of the features, up to 1% noise) beats `s = 0` (noise) and
    /// `s = 1/2`.
    #[test]
    fn logme_evidence_grows_as_labels_become_linear_in_the_features(
        x in prop::collection::vec(-2.0f64..2.0, 40 * 4),
        w in prop::collection::vec(-1.0f64..1.0, 4),
        e in prop::collection::vec(-1.0f64..1.0, 40),
        tiny in prop::collection::vec(-0.01f64..0.01, 40),
    ) {
        let (n, d) = (40, 4);
        prop_assume!(w.iter().map(|v| v * v).sum::<f64>() > 0.1);
        let f = nalgebra::DMatrix::from_row_slice(n, d, &x);
        let fw: Vec<f64> = (0..n).map(|i| (0..d).map(|j| f[(i, j)] * w[j]).sum()).collect();
        let norm = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>().sqrt();
        let scale = norm(&fw) / norm(&e).max(1e-9);
        let mix = |s: f64| -> Vec<f64> {
            (0..n).map(|i| s * fw[i] + (1.0 - s) * e[i] * scale + tiny[i] * norm(&fw) / (n as f64).sqrt()).collect()
        };
        let spectrum = Spectrum::of(&f);
        let at = |s: f64| evidence(&spectrum, &mix(s)).per_sample;
        prop_assert!(at(1.0) > at(0.5), "{} <= {}", at(1.0), at(0.5));
        prop_assert!(at(0.5) > at(0.0), "{} <= {}", at(0.5), at(0.0));
    }
}
