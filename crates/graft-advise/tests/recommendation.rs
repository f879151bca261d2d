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
fn a_source_below_every_random_block_means_scratch() {
    let r = recommend(&scores([-0.9, -0.85, -0.95], [-0.7, -0.75, -0.8]), 10, 2);
    assert_eq!(r.strategy, "scratch");
    assert_eq!((r.checkpoint, r.layer), (None, None));
    assert!(r.reason.contains("negative transfer"), "{}", r.reason);
}

#[test]
fn a_source_below_the_best_random_block_only_is_still_reused() {
    let r = recommend(&scores([-0.78, -0.76, -0.9], [-0.7, -0.75, -0.8]), 10, 2);
    assert_eq!(r.strategy, "discriminative");
    assert_eq!(r.layer.as_deref(), Some("conv2"));
}

#[test]
fn a_best_top_block_means_a_probe_with_few_labels_and_lp_ft_with_more() {
    let s = scores([-0.9, -0.8, -0.5], [-0.7, -0.75, -0.8]);
    let few = recommend(&s, 5, 2);
    assert_eq!(few.strategy, "linear-probe");
    assert_eq!(few.checkpoint.as_deref(), Some("src.safetensors"));
    assert_eq!(few.layer.as_deref(), Some("fc1"));
    assert_eq!(recommend(&s, 10, 2).strategy, "lp-ft");
}

#[test]
fn a_best_middle_block_under_a_top_that_keeps_its_lead_means_lp_ft() {
    // Lead over random: +0.10 at conv2 (best), +0.15 at fc1.
    let r = recommend(&scores([-0.9, -0.6, -0.65], [-0.7, -0.75, -0.8]), 10, 2);
    assert_eq!(r.strategy, "lp-ft");
    assert_eq!(r.layer.as_deref(), Some("conv2"));
    assert_eq!(
        recommend(&scores([-0.55, -0.6, -0.6], [-0.7, -0.75, -0.8]), 10, 2).strategy,
        "lp-ft"
    );
}

#[test]
fn a_lead_that_shrinks_towards_the_top_means_discriminative_rates() {
    // The top block worse than a random one's, then better but by less than at conv2.
    for top in [-0.85, -0.75] {
        let r = recommend(&scores([-0.9, -0.6, top], [-0.7, -0.75, -0.8]), 10, 5);
        assert_eq!(r.strategy, "discriminative", "top {top}");
        assert_eq!(r.layer.as_deref(), Some("conv2"));
        assert!(r.reason.contains("shrinks"), "{}", r.reason);
    }
}

#[test]
fn unscored_top_blocks_mean_discriminative_rates() {
    let s: Vec<_> = scores([-0.9, -0.6, -0.65], [-0.7, -0.75, -0.8])
        .into_iter()
        .filter(|s| s.layer != "fc1")
        .collect();
    assert_eq!(recommend(&s, 10, 2).strategy, "discriminative");
}
