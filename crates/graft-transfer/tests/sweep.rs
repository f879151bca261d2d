//! A small real sweep: the test split is evaluated once per run and every report file exists.

use std::path::PathBuf;

use graft_nn::NetworkKind;
use graft_transfer::pretrain::PretrainConfig;
use graft_transfer::protocol::DataDirs;
use graft_transfer::{run_sweep, Protocol, Strategy, SweepConfig};

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
