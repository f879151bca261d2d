//! [`CandidateScore`]: every estimator on one (candidate, block) pair.

use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use crate::features::CandidateFeatures;
use crate::gram::Block;
use crate::hscore::hscore_block;
use crate::knn::knn_block;
use crate::leep::{leep, nce, SourcePredictions};
use crate::logme::logme_block;
use crate::{AdviseError, LabelledFeatures};

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
    // Blocks are scored in parallel (their GEMMs and eigendecompositions also use the pool);
    // each block's Gram matrix is made once and read by every estimator.
    features
        .blocks
        .par_iter()
        .filter(|(name, _, _)| layers.map_or(true, |l| l.iter().any(|x| x == name)))
        .map(|(name, values, dim)| {
            let span = tracing::info_span!("block", candidate = %features.candidate, layer = %name);
            let _enter = span.enter();
            let f = LabelledFeatures::new("features", values, *dim, labels, num_classes)?;
            let started = Instant::now();
            let block = Block::new(f);
            let gram_s = started.elapsed().as_secs_f64();
            let ((logme, logme_s), ((hscore, hscore_s), (knn, knn_s))) = rayon::join(
                || timed(|| logme_block(&block)),
                || {
                    rayon::join(
                        || timed(|| hscore_block(&block)),
                        || timed(|| knn_block(&block, neighbours)),
                    )
                },
            );
            tracing::info!(
                n = block.n(),
                dim,
                gram_s,
                logme_s,
                hscore_s,
                knn_s,
                "block scored"
            );
            Ok(CandidateScore {
                checkpoint: features.candidate.to_string(),
                layer: name.clone(),
                logme: logme?,
                leep,
                hscore: hscore?,
                knn: knn?,
                nce,
                dim: *dim,
                random: features.candidate.is_random(),
            })
        })
        .collect()
}

/// `f()` and the seconds it took.
fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let started = Instant::now();
    let out = f();
    (out, started.elapsed().as_secs_f64())
}
