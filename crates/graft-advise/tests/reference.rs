//! Every estimator against `data/reference.json`, written by `data/reference.py` (NumPy,
//! computed the direct way in feature space; see the script's docstring).

use graft_advise::leep::SourcePredictions;
use graft_advise::{hscore, knn_loo_accuracy, leep, logme, nce, LabelledFeatures};
use serde_json::Value;

struct Case {
    name: String,
    dim: usize,
    classes: usize,
    features: Vec<f32>,
    labels: Vec<usize>,
    source_classes: usize,
    probs: Vec<f32>,
    expected: Value,
}

fn cases() -> Vec<Case> {
    let data: Value = serde_json::from_str(include_str!("data/reference.json")).unwrap();
    let floats = |v: &Value| -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    data["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            name: c["name"].as_str().unwrap().to_string(),
            dim: c["dim"].as_u64().unwrap() as usize,
            classes: c["classes"].as_u64().unwrap() as usize,
            features: floats(&c["features"]),
            labels: c["labels"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l.as_u64().unwrap() as usize)
                .collect(),
            source_classes: c["source_classes"].as_u64().unwrap() as usize,
            probs: floats(&c["probs"]),
            expected: c.clone(),
        })
        .collect()
}

fn assert_close(what: &str, case: &str, got: f64, want: f64, rel: f64) {
    let err = (got - want).abs() / want.abs().max(1e-12);
    assert!(
        err <= rel,
        "{what} on case {case}: got {got}, NumPy {want} (relative error {err:.2e} > {rel:.0e})"
    );
}

impl Case {
    fn features(&self) -> LabelledFeatures<'_> {
        LabelledFeatures::new("test", &self.features, self.dim, &self.labels, self.classes).unwrap()
    }
    fn predictions(&self) -> SourcePredictions<'_> {
        // The script renormalised f64 rows; as f32 they still sum to 1 within 1e-6.
        SourcePredictions::new(&self.probs, self.source_classes, &self.labels, self.classes)
            .unwrap()
    }
    fn want(&self, key: &str) -> f64 {
        self.expected[key].as_f64().unwrap()
    }
}

#[test]
fn logme_matches_numpy() {
    for c in cases() {
        assert_close(
            "LogME",
            &c.name,
            logme(&c.features()).unwrap(),
            c.want("logme"),
            1e-6,
        );
    }
}

#[test]
fn leep_and_nce_match_numpy() {
    for c in cases() {
        let p = c.predictions();
        // f32 probabilities in the test against f64 rows in the script: 1e-6 holds.
        assert_close("LEEP", &c.name, leep(&p), c.want("leep"), 1e-6);
        assert_close("NCE", &c.name, nce(&p), c.want("nce"), 1e-6);
    }
}

#[test]
fn hscore_matches_numpy() {
    for c in cases() {
        assert_close(
            "H-score",
            &c.name,
            hscore(&c.features()).unwrap(),
            c.want("hscore"),
            1e-6,
        );
    }
}

#[test]
fn knn_matches_numpy() {
    for c in cases() {
        let f = c.features();
        assert_eq!(
            knn_loo_accuracy(&f, 3).unwrap(),
            c.want("knn3"),
            "kNN k=3, case {}",
            c.name
        );
        assert_eq!(
            knn_loo_accuracy(&f, 5).unwrap(),
            c.want("knn5"),
            "kNN k=5, case {}",
            c.name
        );
    }
}

/// A closed form: a feature orthogonal to every class indicator (`[1, -1, 1, -1]` with labels
/// `[0, 0, 1, 1]`) explains nothing, so the maximum is the no-signal edge
/// `y ~ N(0, I / beta)`, `beta = N / |y|^2 = 2`: `1/2 log 2 - 1/2 (1 + log 2 pi)` per sample.
#[test]
fn logme_of_an_orthogonal_feature_is_the_no_signal_evidence() {
    let values = [1.0f32, -1.0, 1.0, -1.0];
    let labels = [0, 0, 1, 1];
    let f = LabelledFeatures::new("test", &values, 1, &labels, 2).unwrap();
    let want = 0.5 * 2f64.ln() - 0.5 * (1.0 + (2.0 * std::f64::consts::PI).ln());
    assert_close("LogME", "orthogonal", logme(&f).unwrap(), want, 1e-12);
}

/// A dead layer (every feature zero) explains nothing: the no-signal evidence, not an error.
#[test]
fn logme_of_all_zero_features_is_the_no_signal_evidence() {
    let values = [0.0f32; 8];
    let labels = [0, 0, 1, 1];
    let f = LabelledFeatures::new("test", &values, 2, &labels, 2).unwrap();
    let want = 0.5 * 2f64.ln() - 0.5 * (1.0 + (2.0 * std::f64::consts::PI).ln());
    assert_close("LogME", "all-zero", logme(&f).unwrap(), want, 1e-12);
}

/// Constant features separate no class: `S_b = 0`, so the H-score is 0, not an error.
#[test]
fn hscore_of_constant_features_is_zero() {
    let values = [3.0f32, -1.0, 3.0, -1.0, 3.0, -1.0, 3.0, -1.0];
    let labels = [0, 0, 1, 1];
    let f = LabelledFeatures::new("test", &values, 2, &labels, 2).unwrap();
    assert_eq!(hscore(&f).unwrap(), 0.0);
}
