//! A small real sweep: the test split is evaluated once per run and every report file exists.

use std::path::PathBuf;

use graft_nn::NetworkKind;
use graft_transfer::pretrain::PretrainConfig;
use graft_transfer::protocol::DataDirs;
use graft_transfer::{run_sweep, Protocol, Strategy, SweepConfig, TransferError};

#[test]
fn a_sweep_reads_the_test_split_once_per_run_and_writes_every_file() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let tmp = std::env::temp_dir().join(format!("graft-sweep-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let cfg = SweepConfig {
        protocol: Protocol::Animals,
        network: NetworkKind::Mlp,
        ks: vec![Some(5)],
        strategies: vec![Strategy::Scratch, Strategy::LinearProbe, Strategy::FineTune],
        seeds: vec![0, 1],
        data: DataDirs {
            animal_mnist: root.join("data/animal-mnist"),
            fashion_mnist: tmp.join("unused"),
        },
        cache_dir: tmp.join("cache"),
        runs_dir: tmp.join("runs"),
        pretrain: PretrainConfig {
            epochs: 1,
            ..PretrainConfig::default()
        },
        grid_g_per_kwh: 400.0,
        jobs: 2,
        training: Default::default(),
        resume: None,
        stop_after: None,
        shard: None,
    };
    let out = run_sweep(&cfg).unwrap();
    let r = &out.report;
    assert_eq!(r.results.len(), 6);
    assert_eq!(
        r.test_evaluations, 6,
        "one test evaluation per run, at its end"
    );
    assert_eq!(r.test_examples, 400);
    assert_eq!(r.summary.len(), 3);
    for file in [
        "report.json",
        "report.md",
        "report.csv",
        "accuracy.png",
        "accuracy.svg",
    ] {
        assert!(out.dir.join(file).is_file(), "{file} missing");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.dir.join("report.json")).unwrap()).unwrap();
    let first = &json["results"][0];
    for key in [
        "protocol",
        "network",
        "strategy",
        "k",
        "seed",
        "accuracy",
        "wall_seconds",
        "flops",
    ] {
        assert!(!first[key].is_null(), "results[0].{key} missing");
    }
    // Same seed, same k-shot set: strategies of a seed are paired with scratch.
    assert!(r
        .summary
        .iter()
        .filter(|s| s.strategy != "scratch")
        .all(|s| s.gain_ci95.is_some()));
    let csv = std::fs::read_to_string(out.dir.join("report.csv")).unwrap();
    assert_eq!(csv.lines().count(), 7);
    // With a monitor set every transfer row has a speed-up or says `never`; a report without
    // one (as the text sweep's) says `n/a` instead of claiming the target was never reached.
    let speed_rows = |t: &str| t.lines().filter(|l| l.contains("/2)")).count();
    assert_eq!(speed_rows(&graft_transfer::report::table(r)), 2);
    let mut unmonitored = r.clone();
    unmonitored.monitor_per_class = 0;
    let table = graft_transfer::report::table(&unmonitored);
    assert_eq!(speed_rows(&table), 0, "{table}");
    assert_eq!(table.matches(" n/a ").count(), 2, "{table}");
    assert!(graft_transfer::report::markdown(&unmonitored).contains("no monitor set"));

    // Two runs side by side (one thread each) give exactly what one run at a time gives,
    // in the same order.
    let serial = run_sweep(&SweepConfig { jobs: 1, ..cfg }).unwrap();
    let key = |r: &graft_transfer::report::RunRecord| (r.strategy.clone(), r.seed, r.accuracy);
    assert_eq!(
        serial.report.results.iter().map(key).collect::<Vec<_>>(),
        r.results.iter().map(key).collect::<Vec<_>>()
    );
}

/// Ctrl-C in a sweep keeps the finished runs in a partial report, and `--resume` trains only
/// the missing ones: the resumed report equals an uninterrupted one. `stop_after` stops the
/// sweep as Ctrl-C does, after a fixed number of runs, so the test does not race a signal.
#[test]
fn an_interrupted_sweep_resumed_gives_the_report_of_an_uninterrupted_one() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let tmp = std::env::temp_dir().join(format!("graft-sweep-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let cfg = SweepConfig {
        protocol: Protocol::Animals,
        network: NetworkKind::Mlp,
        ks: vec![Some(2), Some(5)],
        strategies: vec![Strategy::LinearProbe],
        seeds: vec![0, 1],
        data: DataDirs {
            animal_mnist: root.join("data/animal-mnist"),
            fashion_mnist: tmp.join("unused"),
        },
        cache_dir: tmp.join("cache"),
        runs_dir: tmp.join("runs"),
        pretrain: PretrainConfig {
            epochs: 1,
            ..PretrainConfig::default()
        },
        grid_g_per_kwh: 400.0,
        jobs: 1,
        training: Default::default(),
        resume: None,
        stop_after: None,
        shard: None,
    };
    let whole = run_sweep(&cfg).unwrap().report;
    assert!(!whole.partial);
    assert_eq!((whole.results.len(), whole.runs_planned), (4, 4));

    // Stopped before any run (Ctrl-C during pretraining): an empty partial report to resume.
    let e = run_sweep(&SweepConfig {
        stop_after: Some(0),
        ..cfg.clone()
    })
    .unwrap_err();
    let TransferError::SweepInterrupted {
        finished: 0, dir, ..
    } = &e
    else {
        panic!("expected an interrupted sweep, got {e}");
    };
    assert!(dir.join("report.json").is_file());

    // Stopped after one run: the run is kept, the report says it is partial.
    let e = run_sweep(&SweepConfig {
        stop_after: Some(1),
        ..cfg.clone()
    })
    .unwrap_err();
    let TransferError::SweepInterrupted {
        finished,
        planned,
        dir,
    } = &e
    else {
        panic!("expected an interrupted sweep, got {e}");
    };
    assert_eq!((*finished, *planned), (1, 4));
    assert!(e.to_string().contains("--resume"), "{e}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["partial"], true);
    assert_eq!(json["runs_planned"], 4);
    assert_eq!(json["results"].as_array().unwrap().len(), 1);
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains("1 of 4 runs finished"), "{md}");

    // Resumed and stopped again: one more run, the first one reused.
    let e = run_sweep(&SweepConfig {
        resume: Some(dir.clone()),
        stop_after: Some(1),
        ..cfg.clone()
    })
    .unwrap_err();
    assert!(
        matches!(
            e,
            TransferError::SweepInterrupted {
                finished: 2,
                planned: 4,
                ..
            }
        ),
        "{e}"
    );

    // Resumed to the end: the same runs in the same order with the same accuracies, the
    // report complete and in the same folder, one test evaluation per run overall.
    let resumed = run_sweep(&SweepConfig {
        resume: Some(dir.clone()),
        ..cfg.clone()
    })
    .unwrap();
    assert_eq!(&resumed.dir, dir);
    let r = &resumed.report;
    assert!(!r.partial);
    let key = |r: &graft_transfer::report::RunRecord| (r.strategy.clone(), r.k, r.seed, r.accuracy);
    assert_eq!(
        r.results.iter().map(key).collect::<Vec<_>>(),
        whole.results.iter().map(key).collect::<Vec<_>>()
    );
    assert_eq!(r.test_evaluations, 4);
    let means = |r: &graft_transfer::report::Report| {
        r.summary
            .iter()
            .map(|s| (s.k, s.accuracy_mean, s.accuracy_std))
            .collect::<Vec<_>>()
    };
    assert_eq!(means(r), means(&whole));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["partial"], false);
    assert!(!std::fs::read_to_string(dir.join("report.md"))
        .unwrap()
        .contains("Partial report"));

    // A report whose runs trained otherwise is refused, naming the options.
    let e = run_sweep(&SweepConfig {
        resume: Some(dir.clone()),
        training: graft_transfer::options::TrainOptions {
            lr_schedule: "cosine".parse().unwrap(),
            ..Default::default()
        },
        ..cfg.clone()
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("--schedule") && e.contains("report.json"), "{e}");
    // A report of another plan is refused, naming the run it does not plan.
    let e = run_sweep(&SweepConfig {
        resume: Some(dir.clone()),
        seeds: vec![0],
        ..cfg.clone()
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("seed 1") && e.contains("--seeds"), "{e}");
    std::fs::remove_dir_all(&tmp).unwrap();
}
