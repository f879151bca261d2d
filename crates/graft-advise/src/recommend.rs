//! [`recommend`]: a strategy from the scores and the label budget, with its reasons.
//!
//! The rule compares the pretrained candidates with the randomly initialised network of the
//! same kind (the features training from scratch starts from), block by block, by LogME:
//!
//! 1. If no pretrained (candidate, block) beats the best random block, reuse is not expected to
//!    help (negative transfer): **scratch**.
//! 2. Otherwise the best pretrained (candidate, block) is the source. If it is the top block,
//!    its features are ready to use: with at most [`PROBE_MAX_K`] labels per class
//!    **linear-probe**, with more **fine-tune**.
//! 3. If a lower block is best and the source's top block still beats the random network's
//!    top block, the blocks up to the best one are kept: **partial:N** freezes the first N
//!    blocks (through the best) and fine-tunes the rest with the head.
//! 4. If a lower block is best but the source's top block is worse than a random one, the top
//!    is source-specific and must move far while the lower blocks should move little:
//!    **discriminative** (every block trained, the learning rate divided by 2.6 per block
//!    down from the head).
//!
//! The thresholds are none but the comparisons themselves; the crate README shows how the
//! recommendations compare with `graft sweep` on PROTOCOLS.md's targets (the same targets the
//! rule was written against: an in-sample check).

use serde::Serialize;

use crate::network::SourceNetwork;
use crate::CandidateScore;

/// Largest label budget (per class) for which a linear probe is recommended over fine-tuning.
pub const PROBE_MAX_K: usize = 25;

/// What to do, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    /// The source checkpoint to reuse (`None` for scratch).
    pub checkpoint: Option<String>,
    /// The block whose features scored best (`None` for scratch).
    pub layer: Option<String>,
    /// A `graft sweep` / `graft transfer` strategy id.
    pub strategy: String,
    /// The reasoning, one paragraph.
    pub reason: String,
}

/// Recommends a strategy from `scores` (any order) for `k` labels per class of `classes`.
pub fn recommend(scores: &[CandidateScore], k: usize, classes: usize) -> Recommendation {
    let best_of = |random: bool| {
        scores
            .iter()
            .filter(|s| s.random == random)
            .max_by(|a, b| a.logme.total_cmp(&b.logme))
    };
    let (Some(best), baseline) = (best_of(false), best_of(true)) else {
        return Recommendation {
            checkpoint: None,
            layer: None,
            strategy: "scratch".into(),
            reason: "No pretrained candidate was scored, so there is nothing to reuse: train from scratch.".into(),
        };
    };
    let budget = format!("{k} labels per class ({} in all)", k * classes);
    if let Some(base) = baseline.filter(|b| b.logme >= best.logme) {
        return Recommendation {
            checkpoint: None,
            layer: None,
            strategy: "scratch".into(),
            reason: format!(
                "The best pretrained features ({} at {}: LogME {:.4}, kNN {:.1}%) explain the {budget} no better than a randomly initialised network's ({} at {}: LogME {:.4}, kNN {:.1}%), so reusing the source is expected to bring nothing or to hurt (negative transfer): train from scratch.",
                best.checkpoint, best.layer, best.logme, 100.0 * best.knn,
                base.checkpoint, base.layer, base.logme, 100.0 * base.knn
            ),
        };
    }
    let versus = baseline.map_or(String::new(), |b| {
        format!(
            ", against {:.4} for the best block ({}) of a randomly initialised network",
            b.logme, b.layer
        )
    });
    let own: Vec<&CandidateScore> = scores
        .iter()
        .filter(|s| s.checkpoint == best.checkpoint)
        .collect();
    let blocks = [graft_nn::NetworkKind::Convnet, graft_nn::NetworkKind::Mlp]
        .into_iter()
        .map(SourceNetwork::blocks)
        .find(|b| own.iter().all(|s| b.contains(&s.layer.as_str())))
        .unwrap_or(&[]);
    let position = blocks.iter().position(|b| *b == best.layer);
    let top_name = blocks.last().copied().unwrap_or_default();
    let is_top = position.map_or(true, |p| p + 1 == blocks.len());
    let source = format!(
        "{} scores best at block {} (LogME {:.4}{versus})",
        best.checkpoint, best.layer, best.logme
    );
    // The source's top block against the random network's top block, when both were scored.
    let top_of = |random: bool| {
        scores.iter().find(|s| {
            s.layer == top_name && s.random == random && (random || s.checkpoint == best.checkpoint)
        })
    };
    let top_gap = top_of(false)
        .zip(top_of(true))
        .map(|(s, r)| (s.logme, r.logme));
    let (strategy, why) = if is_top {
        if k <= PROBE_MAX_K {
            (
                "linear-probe".to_string(),
                format!("its top block is its best, and with {budget} a linear head on the frozen features is the safest use of them"),
            )
        } else {
            (
                "fine-tune".to_string(),
                format!("its top block is its best, and {budget} are enough to adapt the whole backbone at a low learning rate"),
            )
        }
    } else {
        match top_gap {
            Some((source_top, random_top)) if source_top <= random_top => (
                "discriminative".to_string(),
                format!(
                    "but its top block {top_name} fits the target worse than a random one does ({source_top:.4} vs {random_top:.4}): it is specific to the source and must move far while the lower blocks should move little, so train every block with learning rates that fall by 2.6 per block down from the head ({budget})"
                ),
            ),
            _ => {
                let frozen = position.map_or(1, |p| p + 1);
                (
                    format!("partial:{frozen}"),
                    format!(
                        "the blocks above {} fit the target less well than it does{}, so freeze the first {frozen} block(s) and fine-tune the rest with the head ({budget})",
                        best.layer,
                        top_gap.map_or(String::new(), |(s, r)| format!(
                            " (though its top block still beats a random one: {s:.4} vs {r:.4})"
                        ))
                    ),
                )
            }
        }
    };
    Recommendation {
        checkpoint: Some(best.checkpoint.clone()),
        layer: Some(best.layer.clone()),
        strategy,
        reason: format!("{source}; {why}."),
    }
}
