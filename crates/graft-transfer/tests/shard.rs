//! A sweep split into shards and merged gives the report of the unsharded sweep.

use std::path::{Path, PathBuf};

use graft_nn::NetworkKind;
use graft_transfer::merge::merge;
use graft_transfer::pretrain::PretrainConfig;
use graft_transfer::protocol::DataDirs;
use graft_transfer::report::{Report, RunRecord};
use graft_transfer::shard::Shard;
use graft_transfer::{run_sweep, Protocol, Strategy, SweepConfig};

fn config(tmp: &Path) -> SweepConfig {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    SweepConfig {
        protocol: Protocol::Animals,
        network: NetworkKind::Mlp,
        ks: vec![Some(2), Some(5)],
        strategies: vec![Strategy::Scratch, Strategy::LinearProbe],
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
    }
}

fn runs(r: &Report) -> Vec<(String, Option<usize>, u64, f64)> {
    r.results
        .iter()
        .map(|x: &RunRecord| (x.strategy.clone(), x.k, x.seed, x.accuracy))
        .collect()
}

fn summary(r: &Report) -> Vec<String> {
    r.summary
        .iter()
        .map(|s| {
            format!(
                "{} {:?} {} {} {:?} {:?} {}",
                s.strategy,
                s.k,
                s.accuracy_mean,
                s.accuracy_std,
                s.gain_over_scratch,
                s.gain_ci95,
                s.n
            )
        })
        .collect()
}

fn merge_error(dirs: &[PathBuf], runs_dir: &Path) -> String {
    merge(dirs, runs_dir).unwrap_err().to_string()
}

#[test]
fn three_shards_merged_give_the_unsharded_report() {
    let tmp = std::env::temp_dir().join(format!("graft-shard-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let cfg = config(&tmp);
    let whole = run_sweep(&cfg).unwrap();

    let mut dirs = Vec::new();
    let mut sizes = Vec::new();
    for index in 0..3 {
        let out = run_sweep(&SweepConfig {
            shard: Some(Shard::new(index, 3).unwrap()),
            ..cfg.clone()
        })
        .unwrap();
        let record = out.report.shard.clone().expect("a shard report");
        assert_eq!(record.plan.len(), 8);
        assert!(!out.report.partial);
        assert_eq!(out.report.runs_planned, out.report.results.len());
        assert!(out.dir.to_string_lossy().contains("-shard-"));
        sizes.push(out.report.results.len());
        dirs.push(out.dir);
    }
    // Balanced by cost, not count: the four scratch runs cost far more than the four probes,
    // so they are spread over the shards and the probes fill in.
    assert_eq!(sizes.iter().sum::<usize>(), 8);
    assert!(sizes.iter().all(|&n| n >= 1), "{sizes:?}");

    // Merged in any order: the unsharded report's runs, summary and verdicts.
    let shuffled = vec![dirs[2].clone(), dirs[0].clone(), dirs[1].clone()];
    let (merged, merged_dir) = merge(&shuffled, &cfg.runs_dir).unwrap();
    assert_eq!(runs(&merged), runs(&whole.report));
    assert_eq!(summary(&merged), summary(&whole.report));
    assert_eq!(merged.verdicts, whole.report.verdicts);
    assert_eq!(merged.test_evaluations, 8);
    assert_eq!((merged.partial, merged.runs_planned), (false, 8));
    assert!(merged.shard.is_none());
    for file in ["report.json", "report.md", "report.csv"] {
        assert!(merged_dir.join(file).is_file(), "{file}");
    }
    let csv = |d: &Path| {
        let text = std::fs::read_to_string(d.join("report.csv")).unwrap();
        // Accuracy column only: wall times differ between processes.
        text.lines()
            .map(|l| l.split(',').take(6).collect::<Vec<_>>().join(","))
            .collect::<Vec<_>>()
    };
    assert_eq!(csv(&merged_dir), csv(&whole.dir));

    // What the merge refuses, naming it.
    let e = merge_error(&dirs[..2], &cfg.runs_dir);
    assert!(e.contains("shard 2/3 is missing"), "{e}");
    let twice = vec![dirs[0].clone(), dirs[1].clone(), dirs[1].clone()];
    let e = merge_error(&twice, &cfg.runs_dir);
    assert!(e.contains("given twice"), "{e}");
    let e = merge_error(std::slice::from_ref(&whole.dir), &cfg.runs_dir);
    assert!(e.contains("not a shard's"), "{e}");
    let other = run_sweep(&SweepConfig {
        seeds: vec![0, 2],
        shard: Some(Shard::new(1, 3).unwrap()),
        ..cfg.clone()
    })
    .unwrap();
    let mixed = vec![dirs[0].clone(), other.dir.clone(), dirs[2].clone()];
    let e = merge_error(&mixed, &cfg.runs_dir);
    assert!(e.contains("another split or plan"), "{e}");
    let _ = std::fs::remove_dir_all(&tmp);
}
