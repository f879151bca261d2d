//! [`dissent`]: the estimators that rank another pretrained source first.
//!
//! [`crate::recommend()`] picks the source by LogME. With a few labels per class the estimators
//! are noisy and, across sources, they can disagree; when they do, the advice says so rather
//! than presenting LogME's pick as settled (the crate README measures what the pick cost on
//! `animals` when they disagreed).

use serde::Serialize;

use crate::CandidateScore;

/// An estimator that ranks another pretrained checkpoint above the recommended one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dissent {
    /// The estimator: `LEEP`, `NCE`, `H-score` or `kNN`.
    pub estimator: &'static str,
    /// The pretrained checkpoint it ranks first.
    pub checkpoint: String,
}

/// How an estimator's value is read off a [`CandidateScore`].
type Read = fn(&CandidateScore) -> f64;

/// The estimators other than LogME, with how each reads a score.
const OTHERS: [(&str, Read); 4] = [
    ("LEEP", |s| s.leep),
    ("NCE", |s| s.nce),
    ("H-score", |s| s.hscore),
    ("kNN", |s| s.knn),
];

/// For each estimator other than LogME, the pretrained checkpoint it ranks first (by its best
/// block, for the block-level H-score and kNN) when that checkpoint scores strictly higher
/// than every block of `chosen`. Randomly initialised candidates are left out; with one
/// pretrained checkpoint the list is empty.
pub fn dissent(scores: &[CandidateScore], chosen: &str) -> Vec<Dissent> {
    let pretrained: Vec<&CandidateScore> = scores.iter().filter(|s| !s.random).collect();
    let best_of = |checkpoint: &str, value: Read| {
        pretrained
            .iter()
            .filter(|s| s.checkpoint == checkpoint)
            .map(|s| value(s))
            .fold(f64::NEG_INFINITY, f64::max)
    };
    OTHERS
        .iter()
        .filter_map(|&(estimator, value)| {
            let top = pretrained
                .iter()
                .filter(|s| s.checkpoint != chosen && value(s).is_finite())
                .max_by(|a, b| value(a).total_cmp(&value(b)))?;
            (value(top) > best_of(chosen, value)).then(|| Dissent {
                estimator,
                checkpoint: top.checkpoint.clone(),
            })
        })
        .collect()
}

/// Sentences naming the dissenting estimators and the checkpoints they rank first, with what
/// to do about it; `None` when there is no dissent.
pub(crate) fn describe(dissent: &[Dissent], budget: &str) -> Option<String> {
    if dissent.is_empty() {
        return None;
    }
    let mut by_checkpoint: Vec<(&str, Vec<&str>)> = Vec::new();
    for d in dissent {
        match by_checkpoint.iter_mut().find(|(c, _)| *c == d.checkpoint) {
            Some((_, names)) => names.push(d.estimator),
            None => by_checkpoint.push((&d.checkpoint, vec![d.estimator])),
        }
    }
    let parts: Vec<String> = by_checkpoint
        .iter()
        .map(|(checkpoint, names)| {
            let verb = if names.len() == 1 { "ranks" } else { "rank" };
            format!("{} {verb} {checkpoint} first", and_list(names))
        })
        .collect();
    Some(format!(
        "The estimators disagree on the source: {}. With {budget} they cannot be relied on to separate these sources: train from each on your labels and compare them on a validation split before choosing.",
        parts.join(", ")
    ))
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}
