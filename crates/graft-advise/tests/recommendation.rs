//! The recommendation rule on hand-made scores: each branch of `recommend`'s documentation.

use graft_advise::{recommend, CandidateScore};

fn score(checkpoint: &str, layer: &str, logme: f64) -> CandidateScore {
    CandidateScore {
        checkpoint: checkpoint.into(),
        layer: layer.into(),
        logme,
        leep: -1.0,
        hscore: 1.0,
        knn: 0.5,
        nce: -1.0,
        dim: 1,
        random: checkpoint.starts_with("random:"),
    }
}

/// A source and the random convnet with the given LogME for conv1, conv2, fc1.
fn scores(source: [f64; 3], random: [f64; 3]) -> Vec<CandidateScore> {
    let blocks = ["conv1", "conv2", "fc1"];
    let mut out: Vec<_> = blocks
        .iter()
        .zip(source)
        .map(|(b, l)| score("src.safetensors", b, l))
        .collect();
    out.extend(
        blocks
            .iter()
            .zip(random)
            .map(|(b, l)| score("random:convnet", b, l)),
    );
    out
}

#[test]
fn no_pretrained_block_beats_random_means_scratch() {
    let r = recommend(&scores([-0.9, -0.8, -0.85], [-0.7, -0.75, -0.8]), 10, 2);
    assert_eq!(r.strategy, "scratch");
    assert_eq!((r.checkpoint, r.layer), (None, None));
    assert!(r.reason.contains("negative transfer"), "{}", r.reason);
}

#[test]
fn a_best_top_block_means_a_probe_with_few_labels_and_fine_tuning_with_many() {
    let s = scores([-0.9, -0.8, -0.5], [-0.7, -0.75, -0.8]);
    let few = recommend(&s, 10, 2);
    assert_eq!(few.strategy, "linear-probe");
    assert_eq!(few.checkpoint.as_deref(), Some("src.safetensors"));
    assert_eq!(few.layer.as_deref(), Some("fc1"));
    assert_eq!(recommend(&s, 100, 2).strategy, "fine-tune");
}

#[test]
fn a_best_middle_block_means_partial_when_the_top_still_beats_random() {
    let r = recommend(&scores([-0.9, -0.6, -0.7], [-0.7, -0.75, -0.8]), 10, 2);
    assert_eq!(r.strategy, "partial:2");
    assert_eq!(r.layer.as_deref(), Some("conv2"));
    let r = recommend(&scores([-0.5, -0.6, -0.7], [-0.7, -0.75, -0.8]), 10, 2);
    assert_eq!(r.strategy, "partial:1");
}

#[test]
fn a_best_middle_block_under_a_source_specific_top_means_discriminative_rates() {
    let r = recommend(&scores([-0.9, -0.6, -0.85], [-0.7, -0.75, -0.8]), 10, 5);
    assert_eq!(r.strategy, "discriminative");
    assert_eq!(r.layer.as_deref(), Some("conv2"));
}
