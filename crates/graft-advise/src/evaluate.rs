//! Checking the estimators against what training measures: for a protocol's target, the
//! test accuracy of a linear probe on each (candidate, block), and Spearman's correlation
//! between each estimator's ranking and those accuracies.
//!
//! The probe is graft-transfer's (`train_head`: Adam at 1e-3, PROTOCOLS.md's schedule) on the
//! raw block outputs of the same k-shot sample the estimators read, evaluated once on the
//! protocol's test split. Nothing here is used by [`crate::advise()`]; it produces the tables in
//! the crate README (`cargo run -p graft-advise --example transferability`).

use std::path::Path;

use dfdx::shapes::Const;
use dfdx::tensor::{Cpu, TensorFromVec};
use graft_nn::Head;
use graft_transfer::protocol::DataDirs;
use graft_transfer::strategy::HEAD_LR;
use graft_transfer::train::{progress_bar, train_head, Schedule};
use graft_transfer::{Examples, Protocol};
use serde::Serialize;

use crate::features::candidate_features;
use crate::score::{score_blocks, CandidateScore};
use crate::{spearman, AdviseError, Candidate, DEFAULT_NEIGHBOURS};

/// One (candidate, block) at one label budget and seed: its estimates and its probe accuracy.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeOutcome {
    /// Labels per class.
    pub k: usize,
    /// Seed of the k-shot draw and of the probe.
    pub seed: u64,
    /// The estimates on the k-shot sample.
    pub scores: CandidateScore,
    /// Test accuracy of a linear probe trained on the k-shot sample.
    pub accuracy: f64,
}

/// Every (candidate, block) of `candidates` on `protocol`'s target at each `k` and seed.
pub fn probe_study(
    protocol: Protocol,
    dirs: &DataDirs,
    cache_dir: &Path,
    candidates: &[Candidate],
    ks: &[usize],
    seeds: &[u64],
) -> Result<Vec<ProbeOutcome>, AdviseError> {
    let data = protocol.open(dirs, cache_dir)?;
    let pool = protocol.target_pool(&data)?;
    let test = protocol.target_test(&data)?;
    let classes = pool.num_classes();
    let mut out = Vec::new();
    for candidate in candidates {
        let test_features = candidate_features(candidate, &test, None)?;
        let test_labels: Vec<usize> = test.labels().iter().map(|&l| l as usize).collect();
        for &k in ks {
            for &seed in seeds {
                let sample = pool.k_shot(k, seed)?;
                let labels: Vec<usize> = sample.labels().iter().map(|&l| l as usize).collect();
                let feats = candidate_features(candidate, &sample, None)?;
                let scores = score_blocks(&feats, None, &labels, classes, DEFAULT_NEIGHBOURS)?;
                for score in scores {
                    let train = block_examples(&feats.blocks, &score.layer, &labels, classes)?;
                    let eval =
                        block_examples(&test_features.blocks, &score.layer, &test_labels, classes)?;
                    let accuracy = probe_accuracy(&train, &eval, seed)?;
                    tracing::info!(
                        protocol = protocol.name(),
                        k,
                        seed,
                        candidate = %score.checkpoint,
                        layer = %score.layer,
                        logme = score.logme,
                        accuracy,
                        "probe"
                    );
                    out.push(ProbeOutcome {
                        k,
                        seed,
                        scores: score,
                        accuracy,
                    });
                }
            }
        }
    }
    Ok(out)
}

fn block_examples(
    blocks: &[(String, Vec<f32>, usize)],
    layer: &str,
    labels: &[usize],
    classes: usize,
) -> Result<Examples, AdviseError> {
    let (_, values, width) = blocks
        .iter()
        .find(|b| b.0 == layer)
        .ok_or_else(|| AdviseError::Config(format!("no block {layer}")))?;
    Ok(Examples {
        x: values.clone(),
        y: labels.to_vec(),
        width: *width,
        num_classes: classes,
    })
}

/// Test accuracy of a linear head trained on `train` (graft-transfer's probe) and evaluated on
/// `test`.
pub fn probe_accuracy(train: &Examples, test: &Examples, seed: u64) -> Result<f64, AdviseError> {
    macro_rules! with_width {
        ($($w:expr),*) => {
            match train.width {
                $($w => probe_at::<$w>(train, test, seed),)*
                w => Err(AdviseError::Config(format!("no probe for features of width {w}"))),
            }
        };
    }
    // convnet, mlp, then EfficientNet-Lite0's unit widths.
    with_width!(6272, 3136, 128, 512, 256, 32, 16, 24, 40, 80, 112, 192, 320, 1280)
}

fn probe_at<const F: usize>(
    train: &Examples,
    test: &Examples,
    seed: u64,
) -> Result<f64, AdviseError> {
    let dev = Cpu::seed_from_u64(seed);
    let mut head = Head::<F>::new(&dev, train.num_classes)?;
    let schedule = Schedule::target_default(train.len());
    let bar = progress_bar(schedule.steps as u64, "probe");
    train_head(&dev, &mut head, train, HEAD_LR, schedule, seed, &bar)?;
    bar.finish_and_clear();
    let mut correct = 0usize;
    for (chunk, labels) in test.x.chunks(256 * F).zip(test.y.chunks(256)) {
        let x = dev.tensor_from_vec(chunk.to_vec(), (labels.len(), Const::<F>));
        let logits = head.forward(x).as_vec();
        let c = head.num_classes();
        for (row, &label) in logits.chunks(c).zip(labels) {
            let mut best = 0;
            for (i, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = i;
                }
            }
            correct += usize::from(best == label);
        }
    }
    Ok(correct as f64 / test.len().max(1) as f64)
}

/// Spearman's rho between one estimator and the probe accuracy, per seed, at one `k`.
#[derive(Debug, Clone, Serialize)]
pub struct RankAgreement {
    /// Labels per class.
    pub k: usize,
    /// Estimator name (`logme`, `leep`, `hscore`, `nce`, `knn`).
    pub estimator: &'static str,
    /// Rho of each seed, in seed order (`None` where a side was constant).
    pub per_seed: Vec<Option<f64>>,
}

impl RankAgreement {
    /// Mean rho over the seeds where it is defined.
    pub fn mean(&self) -> Option<f64> {
        let v: Vec<f64> = self.per_seed.iter().flatten().copied().collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }
}

/// Reads one estimator's value from a score.
pub type EstimatorOf = fn(&CandidateScore) -> f64;

/// The estimators, by name, as read from a score.
pub const ESTIMATORS: [(&str, EstimatorOf); 5] = [
    ("logme", |s| s.logme),
    ("leep", |s| s.leep),
    ("nce", |s| s.nce),
    ("hscore", |s| s.hscore),
    ("knn", |s| s.knn),
];

/// Spearman's rho of every estimator at every `k` of `outcomes`.
pub fn rank_agreement(outcomes: &[ProbeOutcome]) -> Vec<RankAgreement> {
    let mut ks: Vec<usize> = outcomes.iter().map(|o| o.k).collect();
    ks.dedup();
    ks.sort_unstable();
    ks.dedup();
    let mut seeds: Vec<u64> = outcomes.iter().map(|o| o.seed).collect();
    seeds.sort_unstable();
    seeds.dedup();
    let mut out = Vec::new();
    for &k in &ks {
        for (name, get) in ESTIMATORS {
            let per_seed = seeds
                .iter()
                .map(|&seed| {
                    let cell: Vec<&ProbeOutcome> = outcomes
                        .iter()
                        .filter(|o| o.k == k && o.seed == seed)
                        .collect();
                    let est: Vec<f64> = cell.iter().map(|o| get(&o.scores)).collect();
                    let acc: Vec<f64> = cell.iter().map(|o| o.accuracy).collect();
                    spearman(&est, &acc)
                })
                .collect();
            out.push(RankAgreement {
                k,
                estimator: name,
                per_seed,
            });
        }
    }
    out
}

/// Whether the randomly initialised candidates rank last: every pretrained candidate's best
/// block has a higher LogME than every random block. Returns the verdict on the LogME averaged
/// over seeds, and the number of seeds at `k` where it holds seed by seed (with the seed count).
pub fn random_ranks_last(outcomes: &[ProbeOutcome], k: usize) -> (bool, usize, usize) {
    let at_k: Vec<&ProbeOutcome> = outcomes.iter().filter(|o| o.k == k).collect();
    let mut seeds: Vec<u64> = at_k.iter().map(|o| o.seed).collect();
    seeds.sort_unstable();
    seeds.dedup();
    // (candidate, block, random) -> LogME per seed.
    let mut by_block: Vec<(&str, &str, bool, Vec<f64>)> = Vec::new();
    for o in &at_k {
        let s = &o.scores;
        match by_block
            .iter_mut()
            .find(|b| b.0 == s.checkpoint && b.1 == s.layer)
        {
            Some(b) => b.3.push(s.logme),
            None => by_block.push((&s.checkpoint, &s.layer, s.random, vec![s.logme])),
        }
    }
    let verdict = |value: &dyn Fn(&[f64]) -> f64| {
        let random_best = by_block
            .iter()
            .filter(|b| b.2)
            .map(|b| value(&b.3))
            .fold(f64::NEG_INFINITY, f64::max);
        let mut names: Vec<&str> = by_block.iter().filter(|b| !b.2).map(|b| b.0).collect();
        names.sort_unstable();
        names.dedup();
        names.iter().all(|name| {
            by_block
                .iter()
                .filter(|b| b.0 == *name)
                .map(|b| value(&b.3))
                .fold(f64::NEG_INFINITY, f64::max)
                > random_best
        })
    };
    let on_mean = verdict(&|v: &[f64]| v.iter().sum::<f64>() / v.len() as f64);
    let per_seed = (0..seeds.len())
        .filter(|&i| verdict(&|v: &[f64]| v.get(i).copied().unwrap_or(f64::NAN)))
        .count();
    (on_mean, per_seed, seeds.len())
}
