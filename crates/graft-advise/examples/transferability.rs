//! The README's tables: on each PROTOCOLS.md target, every (candidate, block) of the three
//! pretrained convnets and a randomly initialised one is scored on the k-shot sample and
//! linear-probed; Spearman's rho between each estimator and the probe accuracy, per k, mean
//! over seeds; whether the random network ranks last; and `advise`'s recommendation per seed.
//!
//! `cargo run -p graft-advise --example transferability -- [k,k] [seeds]`
//! (defaults `10,100` and `0..3`; run from the workspace root, with Fashion-MNIST fetched).
//! Writes every outcome to `runs/advise-study-k<ks>.json`.

use std::path::PathBuf;

use graft_advise::evaluate::{probe_study, random_ranks_last, rank_agreement, ProbeOutcome};
use graft_advise::{recommend, AdviseError, Candidate};
use graft_nn::convnet::CONVNET_FEATURES;
use graft_nn::ConvnetBackbone;
use graft_transfer::pretrain::{pretrained_backbone, PretrainConfig};
use graft_transfer::protocol::{DataDirs, FASHION_DEB_PATH};
use graft_transfer::Protocol;

fn main() -> Result<(), AdviseError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ks: Vec<usize> = args
        .first()
        .map_or("10,100", String::as_str)
        .split(',')
        .map(|k| k.parse().expect("k: comma-separated numbers"))
        .collect();
    let seeds: Vec<u64> = match args
        .get(1)
        .map(String::as_str)
        .unwrap_or("0..3")
        .split_once("..")
    {
        Some((a, b)) => (a.parse().expect("seed")..b.parse().expect("seed")).collect(),
        None => vec![args[1].parse().expect("seed")],
    };
    let cache = PathBuf::from("runs/cache");
    let dirs = DataDirs {
        animal_mnist: PathBuf::from("data/animal-mnist"),
        fashion_mnist: cache.join("fashion-mnist").join(FASHION_DEB_PATH),
    };
    let mut candidates = Vec::new();
    for source in Protocol::ALL {
        let data = source.open(&dirs, &cache)?;
        let (_, info) = pretrained_backbone::<ConvnetBackbone, CONVNET_FEATURES>(
            source,
            &data,
            &cache,
            PretrainConfig::default(),
        )?;
        candidates.push(Candidate::Checkpoint(info.checkpoint));
    }
    candidates.push("random:convnet".parse()?);
    let mut all: Vec<(Protocol, Vec<ProbeOutcome>)> = Vec::new();
    for target in Protocol::ALL {
        let started = std::time::Instant::now();
        let outcomes = probe_study(target, &dirs, &cache, &candidates, &ks, &seeds)?;
        eprintln!(
            "{}: {:.0} s",
            target.name(),
            started.elapsed().as_secs_f64()
        );
        all.push((target, outcomes));
    }
    println!("| target | k | LogME | LEEP | NCE | H-score | kNN | random convnet last (mean LogME over seeds) |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (target, outcomes) in &all {
        let agreement = rank_agreement(outcomes);
        for &k in &ks {
            let cells: Vec<String> = agreement
                .iter()
                .filter(|a| a.k == k)
                .map(|a| a.mean().map_or("n/a".into(), |m| format!("{m:+.2}")))
                .collect();
            let (on_mean, seeds_ok, seeds_all) = random_ranks_last(outcomes, k);
            println!(
                "| {} | {k} | {} | {} ({seeds_ok}/{seeds_all} seeds) |",
                target.name(),
                cells.join(" | "),
                if on_mean { "yes" } else { "no" }
            );
        }
    }
    println!();
    println!("| target | k | seed | best probe (candidate, block, accuracy) | advise over all candidates | advise with the protocol's own source |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (target_index, (target, outcomes)) in all.iter().enumerate() {
        let own_source = candidates[target_index].to_string();
        for &k in &ks {
            for &seed in &seeds {
                let cell: Vec<&ProbeOutcome> = outcomes
                    .iter()
                    .filter(|o| o.k == k && o.seed == seed)
                    .collect();
                let best = cell
                    .iter()
                    .max_by(|a, b| a.accuracy.total_cmp(&b.accuracy))
                    .expect("outcomes");
                let scores: Vec<_> = cell.iter().map(|o| o.scores.clone()).collect();
                let classes = if *target == Protocol::Animals {
                    2
                } else if *target == Protocol::FashionSplit {
                    5
                } else {
                    10
                };
                let rec = recommend(&scores, k, classes);
                let own: Vec<_> = scores
                    .iter()
                    .filter(|s| s.random || s.checkpoint == own_source)
                    .cloned()
                    .collect();
                let own_rec = recommend(&own, k, classes);
                println!(
                    "| {} | {k} | {seed} | {} {} {:.1}% | {} {} {} | {} {} |",
                    target.name(),
                    short(&best.scores.checkpoint),
                    best.scores.layer,
                    100.0 * best.accuracy,
                    rec.checkpoint.as_deref().map_or("-".into(), short),
                    rec.layer.as_deref().unwrap_or("-"),
                    rec.strategy,
                    own_rec.layer.as_deref().unwrap_or("-"),
                    own_rec.strategy
                );
            }
        }
    }
    let json: Vec<_> = all
        .iter()
        .map(|(t, o)| serde_json::json!({"target": t.name(), "outcomes": o}))
        .collect();
    let ks_name: Vec<String> = ks.iter().map(|k| k.to_string()).collect();
    let out = PathBuf::from(format!("runs/advise-study-k{}.json", ks_name.join("-")));
    std::fs::write(&out, serde_json::to_string_pretty(&json).expect("json"))
        .map_err(|source| AdviseError::Io { path: out, source })?;
    Ok(())
}

/// `runs/cache/pretrain-animals-convnet-<key>.safetensors` -> `animals`.
fn short(candidate: &str) -> String {
    let name = candidate.rsplit('/').next().unwrap_or(candidate);
    name.strip_prefix("pretrain-")
        .and_then(|n| n.split("-convnet").next())
        .unwrap_or(name)
        .to_string()
}
