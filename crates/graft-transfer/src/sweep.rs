//! Sweeps: every (label budget, seed, strategy) of a protocol, one report.

use std::path::PathBuf;

use graft_data::Normalize;
use graft_nn::{Backbone, NetworkKind};

use crate::examples::Examples;
use crate::pretrain::{pretrained_backbone, PretrainConfig};
use crate::protocol::Protocol;
use crate::report::{self, Report, RunRecord};
use crate::strategy::{evaluate, run_strategy, Strategy};
use crate::train::progress_bar;
use crate::TransferError;

/// What to run.
#[derive(Debug, Clone)]
pub struct SweepConfig {
    /// The protocol.
    pub protocol: Protocol,
    /// The reference network.
    pub network: NetworkKind,
    /// Labels per class; `None` means all labels.
    pub ks: Vec<Option<usize>>,
    /// Strategies, each run on the same k-shot set per seed.
    pub strategies: Vec<Strategy>,
    /// Seeds.
    pub seeds: Vec<u64>,
    /// Folder with the protocol's raw data (IDX files).
    pub data_dir: PathBuf,
    /// Folder for imported data sets and pretrained checkpoints.
    pub cache_dir: PathBuf,
    /// Folder that receives `<run id>/report.{json,md}`.
    pub runs_dir: PathBuf,
    /// Source-task training.
    pub pretrain: PretrainConfig,
}

/// A finished sweep.
#[derive(Debug, Clone)]
pub struct SweepOutcome {
    /// Everything measured.
    pub report: Report,
    /// The folder holding report.json and report.md.
    pub dir: PathBuf,
}

/// Runs the sweep and writes its report.
pub fn run_sweep(cfg: &SweepConfig) -> Result<SweepOutcome, TransferError> {
    if cfg.strategies.is_empty() || cfg.seeds.is_empty() || cfg.ks.is_empty() {
        return Err(TransferError::Config(
            "a sweep needs at least one strategy, one seed and one label budget".into(),
        ));
    }
    for_network!(cfg.network, sweep_with(cfg))
}

fn sweep_with<B: Backbone<F>, const F: usize>(
    cfg: &SweepConfig,
) -> Result<SweepOutcome, TransferError> {
    let ds = cfg.protocol.open_dataset(&cfg.data_dir, &cfg.cache_dir)?;
    let (pretrained, pretraining) =
        pretrained_backbone::<B, F>(cfg.protocol, &ds, &cfg.cache_dir, cfg.pretrain)?;
    let norm = Normalize {
        mean: pretraining.mean,
        std: pretraining.std,
    };
    let pool = cfg.protocol.target_pool(&ds)?;
    let test = Examples::from_view(&cfg.protocol.target_test(&ds)?, norm)?;
    let total = cfg.ks.len() * cfg.seeds.len() * cfg.strategies.len();
    let bar = progress_bar(total as u64, "runs");
    let mut results = Vec::with_capacity(total);
    for &k in &cfg.ks {
        for &seed in &cfg.seeds {
            let shots = match k {
                Some(k) => pool.k_shot(k, seed)?,
                None => pool.k_shot_all(seed)?,
            };
            let train = Examples::from_view(&shots, norm)?;
            for &strategy in &cfg.strategies {
                bar.set_message(format!("{strategy} k={k:?} seed={seed}"));
                let run = run_strategy::<B, F>(strategy, &pretrained, &train, seed)?;
                let accuracy = evaluate(&run, &test)?;
                tracing::info!(%strategy, ?k, seed, accuracy, "run finished");
                results.push(RunRecord {
                    protocol: cfg.protocol.name().into(),
                    network: B::NAME.into(),
                    strategy: strategy.name().into(),
                    k,
                    seed,
                    accuracy,
                    wall_seconds: run.wall_seconds,
                    flops: run.flops,
                });
                bar.inc(1);
            }
        }
    }
    bar.finish_and_clear();
    let summary = report::summarize(&results);
    let report = Report {
        graft_version: env!("CARGO_PKG_VERSION").into(),
        protocol: cfg.protocol.name().into(),
        network: B::NAME.into(),
        rng: "SplitMix64 (graft_data::SplitMix64), seeded with the run's seed".into(),
        seeds: cfg.seeds.clone(),
        pretraining,
        results,
        verdicts: report::verdicts(&summary),
        summary,
    };
    let dir = cfg.runs_dir.join(run_id(cfg.protocol.name()));
    report::write(&report, &dir)?;
    Ok(SweepOutcome { report, dir })
}

/// `YYYYMMDD-HHMMSS-<protocol>` in UTC, from the system clock.
fn run_id(protocol: &str) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}-{protocol}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
