//! [`advise`]: draw the k-shot sample, score every (candidate, block), rank by LogME and
//! recommend a strategy.

use std::path::PathBuf;
use std::time::Instant;

use graft_data::{FeatureCache, View};
use serde::Serialize;

use crate::features::candidate_features;
use crate::recommend::{recommend, Recommendation};
use crate::score::{score_blocks, CandidateScore};
use crate::{AdviseError, Candidate, DEFAULT_NEIGHBOURS};

/// What `graft advise` is asked.
#[derive(Debug, Clone)]
pub struct AdviseConfig {
    /// The sources to score. A randomly initialised network of each kind among them is added
    /// as the scratch baseline unless one is given.
    pub candidates: Vec<Candidate>,
    /// Blocks to score (every block of each network when `None`).
    pub layers: Option<Vec<String>>,
    /// Labelled images per class in the sample (the label budget).
    pub k: usize,
    /// Seed of the k-shot draw (graft-data's `View::k_shot`, as `graft sweep` draws it).
    pub seed: u64,
    /// Neighbours of the kNN estimate.
    pub neighbours: usize,
    /// Feature cache folder (`None`: features are not cached).
    pub cache_dir: Option<PathBuf>,
}

impl AdviseConfig {
    /// Every block of `candidates`, k = 10, seed 0, no cache.
    pub fn new(candidates: Vec<Candidate>) -> Self {
        Self {
            candidates,
            layers: None,
            k: 10,
            seed: 0,
            neighbours: DEFAULT_NEIGHBOURS,
            cache_dir: None,
        }
    }
}

/// The answer: every candidate's scores, best first by LogME, and the recommendation.
#[derive(Debug, Clone, Serialize)]
pub struct Advice {
    /// Scores, best LogME first.
    pub candidates: Vec<CandidateScore>,
    /// What to do.
    pub recommendation: Recommendation,
    /// Labelled images per class.
    #[serde(skip)]
    pub k: usize,
    /// Target classes.
    #[serde(skip)]
    pub classes: usize,
    /// Wall time in seconds (feature extraction included).
    #[serde(skip)]
    pub seconds: f64,
}

/// Scores every (candidate, block) on the k-shot sample of `pool` and recommends a strategy.
pub fn advise(pool: &View<'_>, cfg: &AdviseConfig) -> Result<Advice, AdviseError> {
    let started = Instant::now();
    if cfg.candidates.is_empty() {
        return Err(AdviseError::Config(
            "no candidates: give checkpoints (and random:convnet for the scratch baseline)".into(),
        ));
    }
    let sample = pool.k_shot(cfg.k, cfg.seed)?;
    let classes = sample.num_classes();
    let counts = sample.class_counts();
    if classes < 2 || counts.iter().any(|&c| c < 2) {
        return Err(AdviseError::Config(format!(
            "the target sample has {classes} classes with {counts:?} images; advise needs at least 2 classes of at least 2 images"
        )));
    }
    let labels: Vec<usize> = sample.labels().iter().map(|&l| l as usize).collect();
    let cache = cfg.cache_dir.as_ref().map(FeatureCache::new);
    let mut scores = Vec::new();
    let mut todo: Vec<Candidate> = cfg.candidates.clone();
    let mut kinds_seen = Vec::new();
    while let Some(candidate) = (!todo.is_empty()).then(|| todo.remove(0)) {
        let extraction = Instant::now();
        let features = candidate_features(&candidate, &sample, cache.as_ref())?;
        tracing::info!(
            candidate = %candidate,
            seconds = extraction.elapsed().as_secs_f64(),
            "features extracted"
        );
        let layers = cfg.layers.as_deref();
        if let Some(l) = layers {
            let blocks: Vec<&str> = features.blocks.iter().map(|b| b.0.as_str()).collect();
            if !l.iter().any(|x| blocks.contains(&x.as_str())) {
                return Err(AdviseError::Candidate {
                    candidate: candidate.to_string(),
                    reason: format!(
                        "none of the layers {l:?} is a block of this {} (blocks: {})",
                        features.kind.name(),
                        blocks.join(", ")
                    ),
                });
            }
        }
        scores.extend(score_blocks(
            &features,
            layers,
            &labels,
            classes,
            cfg.neighbours,
        )?);
        if !kinds_seen.contains(&features.kind) {
            kinds_seen.push(features.kind);
            let has_random = cfg
                .candidates
                .iter()
                .any(|c| matches!(c, Candidate::Random { kind, .. } if *kind == features.kind));
            if !has_random {
                // The scratch baseline: the same network, randomly initialised.
                todo.push(Candidate::Random {
                    kind: features.kind,
                    seed: cfg.seed,
                });
            }
        }
    }
    rank(&mut scores);
    let recommendation = recommend(&scores, cfg.k, classes);
    Ok(Advice {
        candidates: scores,
        recommendation,
        k: cfg.k,
        classes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Best LogME first; ties keep the order given.
pub fn rank(scores: &mut [CandidateScore]) {
    scores.sort_by(|a, b| b.logme.total_cmp(&a.logme));
}
