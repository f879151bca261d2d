//! [`CandidateScore`]: every estimator on one (candidate, block) pair.

use serde::Serialize;

use crate::features::CandidateFeatures;
use crate::leep::{leep, nce, SourcePredictions};
use crate::{hscore, knn_loo_accuracy, logme, AdviseError, LabelledFeatures};

/// The estimates for one candidate source and one of its blocks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CandidateScore {
    /// The candidate as given (checkpoint path or `random:NETWORK[:SEED]`).
    pub checkpoint: String,
    /// The block whose output the features are.
    pub layer: String,
    /// LogME: mean over classes of the maximised evidence per sample (higher is better).
    pub logme: f64,
    /// LEEP of the source head's predictions (the same for every block of a candidate).
    pub leep: f64,
    /// Shrunk H-score (higher is better).
    pub hscore: f64,
    /// Leave-one-out kNN accuracy in [0, 1].
    pub knn: f64,
    /// NCE of the source head's hard predictions (the same for every block of a candidate).
    pub nce: f64,
    /// Width of the block's output.
    #[serde(skip)]
    pub dim: usize,
    /// Whether the candidate is a randomly initialised network.
    #[serde(skip)]
    pub random: bool,
}

/// Scores each of `features`' blocks named in `layers` (every block when `None`); `labels` are
/// the sample's target labels in `0..num_classes`.
pub fn score_blocks(
    features: &CandidateFeatures,
    layers: Option<&[String]>,
    labels: &[usize],
    num_classes: usize,
    neighbours: usize,
) -> Result<Vec<CandidateScore>, AdviseError> {
    let preds = SourcePredictions::new(
        &features.probs,
        features.source_classes,
        labels,
        num_classes,
    )?;
    let (leep, nce) = (leep(&preds), nce(&preds));
    let mut out = Vec::new();
    for (name, values, dim) in &features.blocks {
        if layers.is_some_and(|l| !l.iter().any(|x| x == name)) {
            continue;
        }
        let f = LabelledFeatures::new("features", values, *dim, labels, num_classes)?;
        out.push(CandidateScore {
            checkpoint: features.candidate.to_string(),
            layer: name.clone(),
            logme: logme(&f)?,
            leep,
            hscore: hscore(&f)?,
            knn: knn_loo_accuracy(&f, neighbours)?,
            nce,
            dim: *dim,
            random: features.candidate.is_random(),
        });
    }
    Ok(out)
}
