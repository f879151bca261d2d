//! Estimators that read the source model's own predictions on the target images rather than
//! its features: LEEP and NCE.
//!
//! **LEEP** (Nguyen et al., 2020, "LEEP: A New Measure to Evaluate Transferability of Learned
//! Representations"). With `theta_i` the source head's softmax over its `Z` classes for target
//! image `i` and `y_i` its target label:
//!
//! ```text
//! P(y, z) = 1/N sum_{i: y_i = y} theta_iz,   P(y | z) = P(y, z) / sum_y' P(y', z)
//! LEEP    = 1/N sum_i log( sum_z P(y_i | z) theta_iz )
//! ```
//!
//! the log-likelihood of the "expected empirical predictor" (at most 0; higher is better).
//!
//! **NCE** (Tran et al., 2019, "Transferability and Hardness of Supervised Classification
//! Tasks"): the negative conditional entropy of the target labels given the source's hard
//! predictions `z_i = argmax theta_i`: `NCE = sum_{y,z} P(y, z) log P(y | z)` with the
//! empirical joint of `(y_i, z_i)` (at most 0).
//!
//! Both cost `O(N Z)`; sums are f64.

use crate::AdviseError;

/// Softmax outputs of the source model (`z` probabilities per row) with target labels.
#[derive(Debug, Clone, Copy)]
pub struct SourcePredictions<'a> {
    /// `labels.len() * classes` probabilities, row-major; each row sums to 1.
    pub probs: &'a [f32],
    /// Source classes `Z`.
    pub classes: usize,
    /// Target label of each row.
    pub labels: &'a [usize],
    /// Target classes.
    pub num_classes: usize,
}

impl<'a> SourcePredictions<'a> {
    /// Checks sizes, labels, and that every row is a probability vector (non-negative, summing
    /// to 1 within 1e-3).
    pub fn new(
        probs: &'a [f32],
        classes: usize,
        labels: &'a [usize],
        num_classes: usize,
    ) -> Result<Self, AdviseError> {
        let bad = |reason: String| AdviseError::Input {
            estimator: "LEEP/NCE",
            reason,
        };
        if classes == 0 || Some(probs.len()) != labels.len().checked_mul(classes) {
            return Err(bad(format!(
                "{} probabilities for {} labels of {classes} source classes",
                probs.len(),
                labels.len()
            )));
        }
        if labels.is_empty() {
            return Err(bad("no samples".into()));
        }
        if let Some(l) = labels.iter().find(|&&l| l >= num_classes) {
            return Err(bad(format!("label {l} is not below {num_classes}")));
        }
        for (i, row) in probs.chunks_exact(classes).enumerate() {
            let sum: f64 = row.iter().map(|&p| p as f64).sum();
            if row.iter().any(|p| !(p.is_finite() && *p >= 0.0)) || (sum - 1.0).abs() > 1e-3 {
                return Err(bad(format!(
                    "row {i} is not a probability vector (sum {sum}); pass softmax outputs"
                )));
            }
        }
        Ok(Self {
            probs,
            classes,
            labels,
            num_classes,
        })
    }

    fn row(&self, i: usize) -> &[f32] {
        &self.probs[i * self.classes..(i + 1) * self.classes]
    }
}

/// `P(y | z)` as a row-major `num_classes x Z` table, from the joint `P(y, z)`.
fn conditional(joint: &[f64], num_classes: usize, z: usize) -> Vec<f64> {
    let mut cond = joint.to_vec();
    for col in 0..z {
        let pz: f64 = (0..num_classes).map(|y| joint[y * z + col]).sum();
        for y in 0..num_classes {
            cond[y * z + col] = if pz > 0.0 {
                joint[y * z + col] / pz
            } else {
                0.0
            };
        }
    }
    cond
}

/// LEEP of the source predictions (see the [module docs](self)).
pub fn leep(p: &SourcePredictions<'_>) -> f64 {
    let (n, z) = (p.labels.len(), p.classes);
    let mut joint = vec![0.0f64; p.num_classes * z];
    for (i, &y) in p.labels.iter().enumerate() {
        for (col, &t) in p.row(i).iter().enumerate() {
            joint[y * z + col] += t as f64 / n as f64;
        }
    }
    let cond = conditional(&joint, p.num_classes, z);
    let total: f64 = p
        .labels
        .iter()
        .enumerate()
        .map(|(i, &y)| {
            let eep: f64 = p
                .row(i)
                .iter()
                .enumerate()
                .map(|(col, &t)| cond[y * z + col] * t as f64)
                .sum();
            eep.max(f64::MIN_POSITIVE).ln()
        })
        .sum();
    total / n as f64
}

/// NCE of the source's hard predictions (see the [module docs](self)); ties in the argmax go
/// to the first class.
pub fn nce(p: &SourcePredictions<'_>) -> f64 {
    let (n, z) = (p.labels.len(), p.classes);
    let mut joint = vec![0.0f64; p.num_classes * z];
    for (i, &y) in p.labels.iter().enumerate() {
        let row = p.row(i);
        let mut best = 0;
        for (col, &t) in row.iter().enumerate() {
            if t > row[best] {
                best = col;
            }
        }
        joint[y * z + best] += 1.0 / n as f64;
    }
    let cond = conditional(&joint, p.num_classes, z);
    joint
        .iter()
        .zip(&cond)
        .filter(|(j, _)| **j > 0.0)
        .map(|(j, c)| j * c.ln())
        .sum()
}
