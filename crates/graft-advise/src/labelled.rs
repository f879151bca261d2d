//! [`LabelledFeatures`]: the input every estimator reads, checked once.

use crate::AdviseError;

/// `n` rows of `dim` features (row-major f32, as cached) with one label each in
/// `0..num_classes`.
#[derive(Debug, Clone, Copy)]
pub struct LabelledFeatures<'a> {
    /// `labels.len() * dim` values, row-major.
    pub values: &'a [f32],
    /// Values per row.
    pub dim: usize,
    /// One label per row.
    pub labels: &'a [usize],
    /// Number of target classes (labels are below it).
    pub num_classes: usize,
}

impl<'a> LabelledFeatures<'a> {
    /// Checked view of `values` (`labels.len()` rows of `dim`): at least two rows, two classes,
    /// every label below `num_classes` and every value finite.
    pub fn new(
        estimator: &'static str,
        values: &'a [f32],
        dim: usize,
        labels: &'a [usize],
        num_classes: usize,
    ) -> Result<Self, AdviseError> {
        let bad = |reason: String| AdviseError::Input { estimator, reason };
        if dim == 0 || Some(values.len()) != labels.len().checked_mul(dim) {
            return Err(bad(format!(
                "{} values for {} labels of dimension {dim}",
                values.len(),
                labels.len()
            )));
        }
        if labels.len() < 2 || num_classes < 2 {
            return Err(bad(format!(
                "{} samples of {num_classes} classes; need at least 2 of each",
                labels.len()
            )));
        }
        if let Some(l) = labels.iter().find(|&&l| l >= num_classes) {
            return Err(bad(format!("label {l} is not below {num_classes}")));
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(bad(format!(
                "feature {} of sample {} is {}",
                i % dim,
                i / dim,
                values[i]
            )));
        }
        Ok(Self {
            values,
            dim,
            labels,
            num_classes,
        })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no rows (never true for a checked value).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The features as an f64 matrix (rows = samples).
    pub fn matrix(&self) -> nalgebra::DMatrix<f64> {
        nalgebra::DMatrix::from_fn(self.len(), self.dim, |i, j| {
            self.values[i * self.dim + j] as f64
        })
    }

    /// Samples per class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes];
        for &l in self.labels {
            counts[l] += 1;
        }
        counts
    }
}
