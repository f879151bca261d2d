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

/// `scores`' source plus a second checkpoint `b.safetensors` whose blocks score `logme` and
/// whose LEEP, NCE, H-score and kNN are `others` (one value each, on every block).
fn with_second_source(logme: [f64; 3], others: [f64; 4]) -> Vec<CandidateScore> {
    let mut s = scores([-0.9, -0.8, -0.5], [-0.7, -0.75, -0.8]);
    for (layer, l) in ["conv1", "conv2", "fc1"].into_iter().zip(logme) {
        let [leep, nce, hscore, knn] = others;
        s.push(CandidateScore {
            leep,
            nce,
            hscore,
            knn,
            ..score("b.safetensors", layer, l)
        });
    }
    s
}

#[test]
fn one_pretrained_source_has_no_dissent_even_if_random_scores_higher() {
    let mut s = scores([-0.9, -0.8, -0.5], [-0.7, -0.75, -0.8]);
    for r in s.iter_mut().filter(|r| r.random) {
        (r.leep, r.nce, r.knn) = (0.0, 0.0, 1.0);
    }
    let r = recommend(&s, 10, 2);
    assert!(r.dissent.is_empty(), "{:?}", r.dissent);
    assert!(!r.reason.contains("disagree"), "{}", r.reason);
}

#[test]
fn estimators_that_rank_another_source_first_are_named() {
    // src wins on LogME (-0.5 at fc1); b has higher LEEP and NCE, the same H-score (ties do
    // not dissent) and a higher kNN accuracy.
    let s = with_second_source([-0.95, -0.9, -0.6], [-0.5, -0.4, 1.0, 0.7]);
    let r = recommend(&s, 10, 2);
    assert_eq!(r.checkpoint.as_deref(), Some("src.safetensors"));
    let named: Vec<_> = r
        .dissent
        .iter()
        .map(|d| (d.estimator, d.checkpoint.as_str()))
        .collect();
    assert_eq!(
        named,
        [
            ("LEEP", "b.safetensors"),
            ("NCE", "b.safetensors"),
            ("kNN", "b.safetensors")
        ]
    );
    assert!(
        r.reason
            .contains("LEEP, NCE and kNN rank b.safetensors first"),
        "{}",
        r.reason
    );
    assert!(r.reason.contains("validation split"), "{}", r.reason);
}

#[test]
fn agreeing_estimators_and_scratch_carry_no_dissent() {
    // b trails src on every estimator.
    let s = with_second_source([-0.95, -0.9, -0.6], [-2.0, -2.0, 0.5, 0.2]);
    assert!(recommend(&s, 10, 2).dissent.is_empty());
    // Every pretrained block below every random block: scratch, whatever the others say.
    let mut s = with_second_source([-0.95, -0.9, -0.99], [0.0, 0.0, 9.0, 1.0]);
    s.retain(|c| c.checkpoint != "src.safetensors");
    let r = recommend(&s, 10, 2);
    assert_eq!(r.strategy, "scratch");
    assert!(r.dissent.is_empty());
}
