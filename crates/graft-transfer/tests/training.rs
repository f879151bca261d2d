//! The training machinery against independent references: a resumed run against an
//! uninterrupted one, early stopping against a plain run of the kept length, the
//! divergence guard against the starting weights, and the feature cache against a rebuild.

use std::path::PathBuf;

use dfdx::prelude::*;
use graft_nn::{Backbone, Checkpoint, Classifier, LoadScope, MlpBackbone, Parameters};
use graft_transfer::early_stop::EarlyStopping;
use graft_transfer::options::TrainOptions;
use graft_transfer::strategy::{run_strategy_with, Strategy};
use graft_transfer::train::{
    progress_bar, train_classifier, train_classifier_with, LearningRates, Schedule, StateFiles,
    TrainControl, TrainPlan, Validation,
};
use graft_transfer::{Examples, LrSchedule, TransferError};

type Mlp = Classifier<MlpBackbone, 256>;

/// Two classes of 784-value rows: a noisy dark and a noisy bright pattern (labels flipped
/// when `flip`).
fn toy(n: usize, seed: u64, flip: bool) -> Examples {
    let mut rng = graft_data::SplitMix64::new(seed);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for i in 0..n {
        let c = i % 2;
        let base = if c == 0 { -0.5 } else { 0.5 };
        x.extend((0..784).map(|_| base + rng.next_f32() - 0.5));
        y.push(if flip { 1 - c } else { c });
    }
    Examples {
        x,
        y,
        width: 784,
        num_classes: 2,
    }
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("graft-training-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Every weight's bits, by parameter name (compared through [`same`]).
fn bits(model: &impl Parameters) -> Vec<(String, Vec<u32>)> {
    model
        .snapshot()
        .into_iter()
        .map(|(n, v)| (n, v.iter().map(|x| x.to_bits()).collect()))
        .collect()
}

/// Whether two weight sets are bit-identical; prints the first difference when not.
fn same(a: &[(String, Vec<u32>)], b: &[(String, Vec<u32>)]) -> bool {
    for ((na, va), (nb, vb)) in a.iter().zip(b) {
        if let Some(i) = (0..va.len().max(vb.len())).find(|&i| va.get(i) != vb.get(i)) {
            eprintln!("first difference: {na}[{i}] vs {nb}[{i}]");
            return false;
        }
    }
    a.len() == b.len()
}

fn plan(steps: usize) -> TrainPlan {
    let lrs = LearningRates {
        backbone: Some(1e-4),
        head: 1e-3,
    };
    TrainPlan::uniform(Schedule { batch: 4, steps }, 2, lrs)
}

#[test]
fn a_run_interrupted_and_resumed_ends_bit_identical_to_an_uninterrupted_one() {
    let data = toy(10, 1, false);
    let bar = progress_bar(0, "test");
    let mut plan = plan(24);
    plan.optimizer = "adamw:0.05".parse().unwrap();
    plan.lr_schedule = LrSchedule::ONE_CYCLE;
    let dev = Cpu::seed_from_u64(3);
    let start = Mlp::new(&dev, 2).unwrap();

    let mut whole = start.clone();
    let stats = train_classifier(&dev, &mut whole, &data, &plan, 9, None, &bar).unwrap();
    assert_eq!(stats.steps, 24);

    let files = StateFiles {
        dir: scratch_dir("resume"),
        name: "run".into(),
        every: Some(5),
    };
    let mut first = start.clone();
    let stop = |step: usize| step == 13;
    let ctl = TrainControl {
        state: Some(&files),
        stop: Some(&stop),
        ..TrainControl::default()
    };
    let err = train_classifier_with(&dev, &mut first, &data, &plan, 9, None, &bar, ctl);
    let saved = match err {
        Err(TransferError::Interrupted {
            step: 13,
            saved_to: Some(p),
        }) => p,
        other => panic!("expected an interruption at step 13, got {other:?}"),
    };
    assert_eq!(saved, files.state_path());
    let state = graft_transfer::state::load(&saved).unwrap();
    assert_eq!(state.header.step, 13);

    // Resume into a differently initialised network: everything must come from the file.
    let mut resumed = Mlp::new(&Cpu::seed_from_u64(77), 2).unwrap();
    let ctl = TrainControl {
        state: Some(&files),
        resume: Some(&state),
        ..TrainControl::default()
    };
    let stats2 =
        train_classifier_with(&dev, &mut resumed, &data, &plan, 9, None, &bar, ctl).unwrap();
    assert_eq!(stats2.steps, 24);
    assert!(
        same(&bits(&resumed), &bits(&whole)),
        "resumed weights differ"
    );
    assert!(
        !same(&bits(&first), &bits(&whole)),
        "the interrupted run was not partial"
    );
    assert_eq!(graft_transfer::state::load(&saved).unwrap().header.step, 24);

    // A state saved for another run is refused with a message naming the file.
    let other = plan.clone();
    let e = train_classifier_with(
        &dev,
        &mut resumed,
        &toy(12, 1, false),
        &other,
        9,
        None,
        &bar,
        TrainControl {
            resume: Some(&state),
            ..TrainControl::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("run.state") && e.contains("12"), "{e}");
    let _ = std::fs::remove_dir_all(&files.dir);
}

#[test]
fn early_stopping_keeps_the_weights_of_the_best_validation_step() {
    let data = toy(10, 1, false);
    // Labels flipped: the better the fit, the worse the validation loss.
    let val = toy(6, 2, true);
    let bar = progress_bar(0, "test");
    let dev = Cpu::seed_from_u64(4);
    let start = Mlp::new(&dev, 2).unwrap();
    let early = EarlyStopping {
        every: 3,
        patience: 2,
        ..EarlyStopping::default()
    };
    let mut stopped = start.clone();
    let ctl = TrainControl {
        validation: Some(Validation { data: &val, early }),
        ..TrainControl::default()
    };
    let stats =
        train_classifier_with(&dev, &mut stopped, &data, &plan(60), 5, None, &bar, ctl).unwrap();
    let best = stats.best_step.unwrap();
    assert!(stats.steps < 60, "did not stop: {stats:?}");
    assert_eq!(
        stats.steps,
        best + 2 * 3,
        "patience 2 evaluations of 3 steps"
    );
    // Reference: a plain run of exactly `best` steps (constant rate, so the same updates).
    let mut reference = start.clone();
    train_classifier(&dev, &mut reference, &data, &plan(best), 5, None, &bar).unwrap();
    assert!(same(&bits(&stopped), &bits(&reference)));
}

#[test]
fn a_diverging_run_stops_and_keeps_the_weights_from_before_the_bad_step() {
    let data = toy(4, 1, false);
    let bar = progress_bar(0, "test");
    let dev = Cpu::seed_from_u64(5);
    let start = Mlp::new(&dev, 2).unwrap();
    let lrs = LearningRates {
        backbone: Some(1e30),
        head: 1e30,
    };
    let blow_up = |steps| TrainPlan::uniform(Schedule { batch: 4, steps }, 2, lrs);
    let files = StateFiles {
        dir: scratch_dir("diverge"),
        name: "run".into(),
        every: None,
    };
    let mut model = start.clone();
    let ctl = TrainControl {
        state: Some(&files),
        ..TrainControl::default()
    };
    let err = train_classifier_with(&dev, &mut model, &data, &blow_up(10), 0, None, &bar, ctl)
        .unwrap_err();
    let msg = err.to_string();
    let TransferError::Diverged {
        step,
        saved_to: Some(path),
        loss,
    } = err
    else {
        panic!("expected a divergence: {msg}");
    };
    assert!(!loss.is_finite() && step >= 1, "{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    // Reference: the same run stopped after `step` updates, before the bad one.
    let mut reference = start.clone();
    train_classifier(&dev, &mut reference, &data, &blow_up(step), 0, None, &bar).unwrap();
    let mut kept = Mlp::new(&Cpu::seed_from_u64(99), 2).unwrap();
    Checkpoint::open(&path)
        .unwrap()
        .load_into(&mut kept, MlpBackbone::NAME, LoadScope::Whole)
        .unwrap();
    assert!(same(&bits(&kept), &bits(&reference)));
    assert!(!same(&bits(&kept), &bits(&start)));
    let _ = std::fs::remove_dir_all(&files.dir);
}

#[cfg(unix)]
#[test]
fn linear_probe_features_are_cached_and_reused() {
    use std::os::unix::fs::MetadataExt;
    let pretrained = MlpBackbone::build(&Cpu::seed_from_u64(11));
    let train = toy(10, 3, false);
    let dir = scratch_dir("features");
    let opts = TrainOptions {
        feature_cache: Some(dir.clone()),
        ..TrainOptions::default()
    };
    let plain = run_strategy_with::<MlpBackbone, 256>(
        Strategy::LinearProbe,
        &pretrained,
        &train,
        0,
        None,
        &TrainOptions::default(),
    )
    .unwrap();
    let first = run_strategy_with::<MlpBackbone, 256>(
        Strategy::LinearProbe,
        &pretrained,
        &train,
        0,
        None,
        &opts,
    )
    .unwrap();
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let id = |p: &PathBuf| {
        let m = std::fs::metadata(p).unwrap();
        (m.ino(), m.mtime_nsec(), m.mtime())
    };
    let before = id(&files[0]);
    let second = run_strategy_with::<MlpBackbone, 256>(
        Strategy::LinearProbe,
        &pretrained,
        &train,
        0,
        None,
        &opts,
    )
    .unwrap();
    assert_eq!(id(&files[0]), before, "the cached features were rebuilt");
    assert!(same(&bits(&first.model), &bits(&plain.model)));
    assert!(same(&bits(&second.model), &bits(&plain.model)));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn strategies_accept_every_optimizer_schedule_and_early_stopping() {
    let pretrained = MlpBackbone::build(&Cpu::seed_from_u64(11));
    let train = toy(10, 3, false);
    for (opt, sched) in [("sgd", "one-cycle"), ("adamw", "cosine:0.1")] {
        let opts = TrainOptions {
            optimizer: opt.parse().unwrap(),
            lr_schedule: sched.parse().unwrap(),
            early_stopping: Some(EarlyStopping::default()),
            ..TrainOptions::default()
        };
        for strategy in [Strategy::FineTune, Strategy::LinearProbe] {
            let run = run_strategy_with::<MlpBackbone, 256>(
                strategy,
                &pretrained,
                &train,
                0,
                None,
                &opts,
            )
            .unwrap();
            let w = run.model.snapshot();
            assert!(w.iter().all(|(_, v)| v.iter().all(|x| x.is_finite())));
        }
    }
}
