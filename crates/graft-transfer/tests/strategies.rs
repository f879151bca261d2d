//! Each strategy trains exactly the parameters it should; L2-SP's gradient is analytic; a
//! sweep evaluates the test split once per run.

use dfdx::prelude::*;
use graft_nn::{Backbone, MlpBackbone, Parameters};
use graft_transfer::strategy::{run_strategy, Strategy};
use graft_transfer::train::{L2Sp, LearningRates, Schedule, TrainPlan};
use graft_transfer::Examples;

/// Two classes of 784-value rows: a noisy dark and a noisy bright pattern.
fn toy_examples(n: usize) -> Examples {
    let mut rng = graft_data::SplitMix64::new(7);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for i in 0..n {
        let c = i % 2;
        for _ in 0..784 {
            let base = if c == 0 { -0.5 } else { 0.5 };
            x.push(base + rng.next_f32() - 0.5);
        }
        y.push(c);
    }
    Examples {
        x,
        y,
        width: 784,
        num_classes: 2,
    }
}

fn changed(before: &[(String, Vec<f32>)], after: &[(String, Vec<f32>)]) -> Vec<String> {
    before
        .iter()
        .zip(after)
        .filter(|(b, a)| b.1 != a.1)
        .map(|(b, _)| b.0.clone())
        .collect()
}

#[test]
fn each_strategy_updates_exactly_its_parameters() {
    let pretrained = MlpBackbone::build(&Cpu::seed_from_u64(11));
    let start = pretrained.snapshot();
    let train = toy_examples(8);
    let all = ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"];
    let cases: [(Strategy, &[&str]); 8] = [
        (Strategy::LinearProbe, &[]),
        (Strategy::FineTune, &all),
        (
            Strategy::Partial { frozen: Some(1) },
            &["fc2.weight", "fc2.bias"],
        ),
        (Strategy::Partial { frozen: Some(2) }, &[]),
        (Strategy::GradualUnfreeze, &all),
        (
            Strategy::L2Sp {
                alpha: 0.01,
                beta: 0.01,
            },
            &all,
        ),
        (Strategy::LpFt, &all),
        (Strategy::BitFit, &["fc1.bias", "fc2.bias"]),
    ];
    for (strategy, expect) in cases {
        let run = run_strategy::<MlpBackbone, 256>(strategy, &pretrained, &train, 0, None).unwrap();
        let got = changed(&start, &run.model.backbone.snapshot());
        assert_eq!(
            got,
            expect.to_vec(),
            "{strategy}: backbone parameters changed"
        );
        // Frozen means bit-identical, not merely close.
        for (name, values) in run.model.backbone.snapshot() {
            if !expect.contains(&name.as_str()) {
                let orig = &start.iter().find(|(n, _)| *n == name).unwrap().1;
                assert!(values
                    .iter()
                    .zip(orig)
                    .all(|(a, b)| a.to_bits() == b.to_bits()));
            }
        }
        assert_eq!(run.model.num_classes(), 2);
        // What the run reports it trained: the parameters that changed, and the head.
        let numel = |name: &str| {
            start
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0, |(_, v)| v.len() as u64)
        };
        let head = (256 + 1) * 2;
        let changed_numel: u64 = expect.iter().map(|n| numel(n)).sum();
        assert_eq!(run.trained_params, changed_numel + head, "{strategy}");
    }
}

#[test]
fn gradual_unfreezing_opens_one_block_per_stage_from_the_top() {
    let lrs = LearningRates {
        backbone: Some(1e-4),
        head: 1e-3,
    };
    let mut plan = TrainPlan::uniform(
        Schedule {
            batch: 8,
            steps: 30,
        },
        3,
        lrs,
    );
    plan.unfreeze_every = Some(10);
    let trains = |step| {
        (0..3)
            .map(|i| plan.block_trains(i, step))
            .collect::<Vec<_>>()
    };
    assert_eq!(trains(0), [false, false, false]);
    assert_eq!(trains(9), [false, false, false]);
    assert_eq!(trains(10), [false, false, true]);
    assert_eq!(trains(20), [false, true, true]);
    assert_eq!(trains(29), [false, true, true]);
    assert_eq!(trains(30), [true, true, true]);
    assert_eq!(plan.frozen_prefix(15), 2);
    let mut partial = TrainPlan::uniform(
        Schedule {
            batch: 8,
            steps: 30,
        },
        3,
        lrs,
    );
    partial.block_lrs[0] = None;
    assert_eq!(partial.frozen_prefix(0), 1);
}

#[test]
fn l2sp_gradient_equals_finite_differences_of_its_penalty() {
    let dev = Cpu::seed_from_u64(3);
    let start_model = graft_nn::MlpClassifier::new(&dev, 3).unwrap();
    let mut model = start_model.clone();
    // Move away from the start so both terms are non-zero.
    model.visit_params_mut(&mut |_, p| {
        let v: Vec<f32> = p
            .to_vec()
            .iter()
            .enumerate()
            .map(|(i, w)| w + 0.01 * ((i % 7) as f32 - 3.0))
            .collect();
        p.write_from(&v);
    });
    let l2sp = L2Sp {
        alpha: 0.3,
        beta: 0.05,
        start: start_model.backbone.snapshot().into_iter().collect(),
    };
    let snap = model.snapshot();
    for (name, w) in &snap {
        let mut g = vec![0.0f32; w.len()];
        l2sp.add_gradient(name, "fc3", w, &mut g);
        for &i in &[0usize, w.len() / 2, w.len() - 1] {
            let eps = 1e-2f32;
            let probe = |delta: f32| {
                let mut m = model.clone();
                m.visit_params_mut(&mut |n, p| {
                    if n == name {
                        let mut v = p.to_vec();
                        v[i] += delta;
                        p.write_from(&v);
                    }
                });
                l2sp.penalty(&m, "fc3")
            };
            let fd = (probe(eps) - probe(-eps)) / (2.0 * eps as f64);
            assert!(
                (fd - g[i] as f64).abs() < 1e-3 * (1.0 + fd.abs()),
                "{name}[{i}]: fd {fd} vs analytic {}",
                g[i]
            );
        }
    }
}
