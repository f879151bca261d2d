//! [`recommend`]: a strategy from the scores and the label budget, with its reasons.
//!
//! The rule compares the best pretrained candidate with the randomly initialised network of the
//! same kind (the features training from scratch starts from), block by block, by LogME. The
//! *advantage* of a block is its LogME minus the random network's (at the top block: minus the
//! random top block's; at the best block: minus the random network's best block's).
//!
//! 1. If the source's best block scores below every block of the random network, its features
//!    have lost what the target needs and reuse is expected to hurt (negative transfer):
//!    **scratch**.
//! 2. If the source's best block is its top block, its features are ready to use: with at most
//!    [`PROBE_MAX_K`] labels per class **linear-probe** (as accurate as anything else with so
//!    few labels, at a fraction of the cost), with more **lp-ft** (the probe, then fine-tuning
//!    every block from the probed head).
//! 3. If a lower block is best and the advantage shrinks from that block to the top block, the
//!    top is specific to the source and must move far while the lower blocks should move
//!    little: **discriminative** (every block trained, the learning rate divided by 2.6 per
//!    block down from the head). This is also the answer when the top blocks were not scored.
//! 4. If a lower block is best but the top block keeps (or widens) the advantage, the top
//!    features are worth starting from but not final: **lp-ft** (a linear probe on them, then
//!    fine-tuning everything from the probed head; Kumar et al., 2022).
//!
//! The source is LogME's pick; where other estimators rank another pretrained source first, the
//! recommendation lists them ([`Dissent`]) and says to compare the sources on validation labels.
//!
//! The thresholds are none but the comparisons themselves; the crate README shows how the
//! recommendations compare with `graft sweep` on PROTOCOLS.md's targets at k = 10 (the targets
//! and budget the rule was written against: an in-sample check) and at other budgets.

use serde::Serialize;

use crate::dissent::{describe, dissent, Dissent};
use crate::network::SourceNetwork;
use crate::CandidateScore;

/// Largest label budget (per class) for which a linear probe is recommended over LP-FT. On
/// `animals` (`graft sweep`, 5 seeds) the probe ties LP-FT at k = 5 (67.6 vs 67.5 %) and
/// trails it from k = 10 on (76.5 vs 77.4 %).
pub const PROBE_MAX_K: usize = 5;

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
    /// The estimators that rank another pretrained checkpoint first (empty when they agree,
    /// when one pretrained checkpoint was scored, and for scratch).
    pub dissent: Vec<Dissent>,
}

impl Recommendation {
    fn scratch(reason: String) -> Self {
        Recommendation {
            checkpoint: None,
            layer: None,
            strategy: "scratch".into(),
            reason,
            dissent: Vec::new(),
        }
    }
}

/// The highest- or lowest-LogME score among `scores` that are (not) random.
fn extreme(scores: &[CandidateScore], random: bool, highest: bool) -> Option<&CandidateScore> {
    let pick = scores.iter().filter(|s| s.random == random);
    if highest {
        pick.max_by(|a, b| a.logme.total_cmp(&b.logme))
    } else {
        pick.min_by(|a, b| a.logme.total_cmp(&b.logme))
    }
}

/// Recommends a strategy from `scores` (any order) for `k` labels per class of `classes`.
pub fn recommend(scores: &[CandidateScore], k: usize, classes: usize) -> Recommendation {
    let Some(best) = extreme(scores, false, true) else {
        return Recommendation::scratch(
            "No pretrained candidate was scored, so there is nothing to reuse: train from scratch."
                .into(),
        );
    };
    let (random_best, random_worst) = (extreme(scores, true, true), extreme(scores, true, false));
    let budget = format!("{k} labels per class ({} in all)", k * classes);
    if let Some(worst) = random_worst.filter(|w| best.logme < w.logme) {
        return Recommendation::scratch(format!(
            "The best pretrained features ({} at {}: LogME {:.4}, kNN {:.1}%) explain the {budget} worse than every block of a randomly initialised network (its weakest, {}: LogME {:.4}), so the source has lost what the target needs and reusing it is expected to hurt (negative transfer): train from scratch.",
            best.checkpoint, best.layer, best.logme, 100.0 * best.knn, worst.layer, worst.logme
        ));
    }
    let versus = random_best.map_or(String::new(), |b| {
        format!(
            ", against {:.4} for the best block ({}) of a randomly initialised network",
            b.logme, b.layer
        )
    });
    let own: Vec<&CandidateScore> = scores
        .iter()
        .filter(|s| s.checkpoint == best.checkpoint)
        .collect();
    let blocks = [
        graft_nn::NetworkKind::Convnet,
        graft_nn::NetworkKind::Mlp,
        graft_nn::NetworkKind::Lite0,
    ]
    .into_iter()
    .map(SourceNetwork::blocks)
    .find(|b| own.iter().all(|s| b.contains(&s.layer.as_str())))
    .unwrap_or(&[]);
    let top_name = blocks.last().copied().unwrap_or_default();
    let is_top = blocks
        .iter()
        .position(|b| *b == best.layer)
        .map_or(true, |p| p + 1 == blocks.len());
    let source = format!(
        "{} scores best at block {} (LogME {:.4}{versus})",
        best.checkpoint, best.layer, best.logme
    );
    // The source's and the random network's top blocks, when both were scored.
    let top_of = |random: bool| {
        scores.iter().find(|s| {
            s.layer == top_name && s.random == random && (random || s.checkpoint == best.checkpoint)
        })
    };
    let advantages = top_of(false)
        .zip(top_of(true))
        .zip(random_best)
        .map(|((s, r), b)| (best.logme - b.logme, s.logme - r.logme));
    let (strategy, why) = if is_top {
        if k <= PROBE_MAX_K {
            ("linear-probe", format!("its top block is its best, and with {budget} a linear head on the frozen features is the safest use of them"))
        } else {
            ("lp-ft", format!("its top block is its best, and {budget} are enough to adapt the backbone too: probe the features with a linear head, then fine-tune every block from that head"))
        }
    } else {
        match advantages {
            Some((at_best, at_top)) if at_top >= at_best => ("lp-ft", format!(
                "its top block {top_name} keeps the lead over a random network's top block ({at_top:+.4}, against {at_best:+.4} at {}), so its features are worth starting from but not final: probe them with a linear head, then fine-tune every block from that head ({budget})",
                best.layer
            )),
            Some((at_best, at_top)) => ("discriminative", format!(
                "its lead over a random network shrinks from {at_best:+.4} at {} to {at_top:+.4} at its top block {top_name}: the top is specific to the source and must move far while the lower blocks should move little, so train every block with learning rates that fall by 2.6 per block down from the head ({budget})",
                best.layer
            )),
            None => ("discriminative", format!(
                "the top blocks were not both scored, so whether the top is specific to the source is unknown: train every block with learning rates that fall by 2.6 per block down from the head, which keeps the lower blocks near the source ({budget})"
            )),
        }
    };
    let dissent = dissent(scores, &best.checkpoint);
    let caution = describe(&dissent, &budget).map_or(String::new(), |d| format!(" {d}"));
    Recommendation {
        checkpoint: Some(best.checkpoint.clone()),
        layer: Some(best.layer.clone()),
        strategy: strategy.to_string(),
        reason: format!("{source}; {why}.{caution}"),
        dissent,
    }
}
