//! Reports: one record per run, a summary per (k, strategy), written as JSON and Markdown.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::energy::EnergySource;
use crate::pretrain::PretrainInfo;
use crate::stats::{mean_std, paired_difference};
use crate::train::CurvePoint;
use crate::TransferError;

/// One training run: a strategy at a label budget with a seed. Field names are a stable
/// contract; later reports add fields, never rename these. Read back by `graft sweep
/// --resume`, which reuses the records of a partial report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// Protocol id (`animals`).
    pub protocol: String,
    /// Network name (`mlp`).
    pub network: String,
    /// Strategy id (`scratch`, `linear-probe`, `fine-tune`).
    pub strategy: String,
    /// Labels per class, `None` (JSON null) for all labels.
    pub k: Option<usize>,
    /// Seed of the k-shot draw, the new weights and the batch order.
    pub seed: u64,
    /// Accuracy on the target test split.
    pub accuracy: f64,
    /// Seconds from start to trained model.
    pub wall_seconds: f64,
    /// Training FLOPs (analytic).
    pub flops: f64,
    /// Energy of the run in joules (measured by RAPL or estimated from FLOPs: see `energy_source`).
    pub joules: f64,
    /// How `joules` was obtained.
    pub energy_source: EnergySource,
    /// CO2 emitted at the report's grid intensity, grams.
    pub co2_grams: f64,
    /// Monitor-set accuracy during training (steps, seconds, FLOPs so far).
    pub curve: Vec<CurvePoint>,
    /// Where the new head trained: `cpu`, or `cuda:N` for a linear probe's head on a GPU
    /// (the backbone always runs on the CPU).
    pub head_device: String,
    /// Parameters the run trained, the new head included: what the target task stores
    /// beside the shared pretrained network (`None` in reports written before graft counted).
    #[serde(default)]
    pub trained_params: Option<u64>,
}

/// The first point of `curve` at or above `target` accuracy.
fn reach(curve: &[CurvePoint], target: f64) -> Option<CurvePoint> {
    curve.iter().find(|p| p.accuracy >= target - 1e-12).copied()
}

/// Mean and spread of one (k, strategy) cell over seeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SummaryRow {
    /// Strategy id.
    pub strategy: String,
    /// Labels per class (`None` for all).
    pub k: Option<usize>,
    /// Number of seeds.
    pub n: usize,
    /// Mean test accuracy.
    pub accuracy_mean: f64,
    /// Sample standard deviation of the test accuracy (0 for one seed).
    pub accuracy_std: f64,
    /// Mean paired gain over scratch (same seed, same k-shot set); `None` for scratch itself.
    pub gain_over_scratch: Option<f64>,
    /// 95% t interval of the paired gain over scratch (needs two or more seeds).
    pub gain_ci95: Option<(f64, f64)>,
    /// Runs (of `n`) whose monitor accuracy reached scratch's final monitor accuracy.
    pub reached_scratch: usize,
    /// Mean training seconds to reach scratch's final monitor accuracy, over runs that did.
    pub seconds_to_scratch_accuracy: Option<f64>,
    /// Mean training FLOPs to reach scratch's final monitor accuracy, over runs that did.
    pub flops_to_scratch_accuracy: Option<f64>,
    /// Scratch's mean total training seconds divided by `seconds_to_scratch_accuracy`.
    pub speedup_vs_scratch: Option<f64>,
    /// Mean energy per run, joules.
    pub joules_mean: f64,
    /// Mean CO2 per run, grams.
    pub co2_grams_mean: f64,
    /// Mean CO2 saved per run against scratch, grams (negative: spent more).
    pub co2_grams_saved: Option<f64>,
    /// Mean wall time in seconds.
    pub wall_seconds_mean: f64,
    /// Mean training FLOPs.
    pub flops_mean: f64,
    /// Parameters trained per run, the head included (the same for every seed): times 4
    /// bytes, what one target task stores beside the shared pretrained network.
    #[serde(default)]
    pub trained_params: Option<u64>,
}

/// Everything a sweep measured. Read back by `graft sweep --resume` and `graft sweep merge`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// graft's version.
    pub graft_version: String,
    /// Protocol id.
    pub protocol: String,
    /// Network name.
    pub network: String,
    /// The generator behind k-shot draws and batch orders.
    pub rng: String,
    /// Seeds run.
    pub seeds: Vec<u64>,
    /// Grid carbon intensity used for CO2, grams per kWh.
    pub grid_g_per_kwh: f64,
    /// Size of the target test split.
    pub test_examples: usize,
    /// How many times the test split was evaluated (one per run, at its end).
    pub test_evaluations: usize,
    /// Monitor images per class (outside each k-shot set) behind the training curves.
    pub monitor_per_class: usize,
    /// Labels per class of the `all` budget (the smallest class of the pool).
    pub all_labels_per_class: usize,
    /// The source-task pretraining.
    pub pretraining: PretrainInfo,
    /// One record per run.
    pub results: Vec<RunRecord>,
    /// One row per (k, strategy).
    pub summary: Vec<SummaryRow>,
    /// Plain-language conclusions, one per label budget.
    pub verdicts: Vec<String>,
    /// Whether the sweep was interrupted before every planned run finished: `results` then
    /// holds only the finished runs, and `graft sweep --resume <folder>` trains the rest.
    pub partial: bool,
    /// Runs the sweep planned (strategies x label budgets x seeds); equal to the number of
    /// results unless `partial`.
    pub runs_planned: usize,
    /// How every run trained (optimiser, learning-rate schedule, early stopping); `--resume`
    /// refuses a report whose runs trained otherwise.
    pub training: String,
    /// For the report of one shard of a sweep (`graft sweep --shard`): which shard, and the
    /// whole sweep's plan; absent from whole sweeps' reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::shard::ShardRecord>,
}

/// Summarises `results` per (k, strategy), in the order first seen.
pub fn summarize(results: &[RunRecord]) -> Vec<SummaryRow> {
    let mut cells: Vec<(Option<usize>, String)> = Vec::new();
    for r in results {
        let cell = (r.k, r.strategy.clone());
        if !cells.contains(&cell) {
            cells.push(cell);
        }
    }
    cells
        .into_iter()
        .map(|(k, strategy)| {
            let runs: Vec<&RunRecord> = results
                .iter()
                .filter(|r| r.k == k && r.strategy == strategy)
                .collect();
            let acc: Vec<f64> = runs.iter().map(|r| r.accuracy).collect();
            let (accuracy_mean, accuracy_std) = mean_std(&acc);
            let gains: Vec<f64> = runs
                .iter()
                .filter_map(|r| {
                    results
                        .iter()
                        .find(|s| s.strategy == "scratch" && s.k == k && s.seed == r.seed)
                        .map(|s| r.accuracy - s.accuracy)
                })
                .collect();
            let is_scratch = strategy == "scratch";
            let gain_over_scratch = (!is_scratch && !gains.is_empty()).then(|| mean_std(&gains).0);
            let gain_ci95 = if is_scratch {
                None
            } else {
                let zeros = vec![0.0; gains.len()];
                paired_difference(&gains, &zeros).map(|d| (d.ci_low, d.ci_high))
            };
            let scratch_runs: Vec<&RunRecord> = results
                .iter()
                .filter(|s| s.strategy == "scratch" && s.k == k)
                .collect();
            let reached: Vec<CurvePoint> = runs
                .iter()
                .filter_map(|r| {
                    let s = scratch_runs.iter().find(|s| s.seed == r.seed)?;
                    reach(&r.curve, s.curve.last()?.accuracy)
                })
                .collect();
            let mean_of =
                |v: Vec<f64>| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
            let seconds_to = mean_of(reached.iter().map(|p| p.seconds).collect());
            let flops_to = mean_of(reached.iter().map(|p| p.flops).collect());
            let scratch_wall = mean_of(scratch_runs.iter().map(|s| s.wall_seconds).collect());
            let scratch_co2 = mean_of(scratch_runs.iter().map(|s| s.co2_grams).collect());
            let n = runs.len() as f64;
            let co2_grams_mean = runs.iter().map(|r| r.co2_grams).sum::<f64>() / n;
            SummaryRow {
                strategy,
                k,
                n: runs.len(),
                accuracy_mean,
                accuracy_std,
                gain_over_scratch,
                gain_ci95,
                reached_scratch: reached.len(),
                seconds_to_scratch_accuracy: seconds_to,
                flops_to_scratch_accuracy: flops_to,
                speedup_vs_scratch: scratch_wall.zip(seconds_to).map(|(a, b)| a / b.max(1e-9)),
                joules_mean: runs.iter().map(|r| r.joules).sum::<f64>() / n,
                co2_grams_mean,
                co2_grams_saved: scratch_co2
                    .filter(|_| !is_scratch)
                    .map(|s| s - co2_grams_mean),
                wall_seconds_mean: runs.iter().map(|r| r.wall_seconds).sum::<f64>() / n,
                flops_mean: runs.iter().map(|r| r.flops).sum::<f64>() / n,
                trained_params: runs.iter().find_map(|r| r.trained_params),
            }
        })
        .collect()
}

/// One sentence per label budget saying whether transfer helped, plainly.
pub fn verdicts(summary: &[SummaryRow]) -> Vec<String> {
    let mut ks: Vec<Option<usize>> = Vec::new();
    for row in summary {
        if !ks.contains(&row.k) {
            ks.push(row.k);
        }
    }
    ks.into_iter()
        .filter_map(|k| {
            let best = summary
                .iter()
                .filter(|r| r.k == k && r.gain_over_scratch.is_some())
                .max_by(|a, b| a.accuracy_mean.total_cmp(&b.accuracy_mean))?;
            let gain = best.gain_over_scratch? * 100.0;
            let kk = k_label(k);
            if let Some((lo, hi)) = best.gain_ci95 {
                let ci = format!("95% CI {:+.1} to {:+.1} points", lo * 100.0, hi * 100.0);
                return Some(if lo > 0.0 {
                    format!("k = {kk}: transfer helps: {} beats scratch by {gain:.1} points ({ci}).", best.strategy)
                } else if hi < 0.0 {
                    format!("k = {kk}: negative transfer: every reuse strategy is worse than scratch (best: {}, {gain:+.1} points, {ci}). Train from scratch or find a source closer to the target.", best.strategy)
                } else {
                    format!("k = {kk}: no clear gain: the best strategy ({}) differs from scratch by {gain:+.1} points, but its {ci} includes zero.", best.strategy)
                });
            }
            Some(if gain > 0.5 {
                format!("k = {kk}: transfer helps: {} beats scratch by {gain:.1} points on average.", best.strategy)
            } else if gain >= -0.5 {
                format!("k = {kk}: transfer does not help: the best strategy ({}) is within {gain:+.1} points of scratch.", best.strategy)
            } else {
                format!("k = {kk}: negative transfer: every reuse strategy is worse than scratch (best: {}, {gain:+.1} points). Train from scratch or find a source closer to the target.", best.strategy)
            })
        })
        .collect()
}

/// A byte count for the table: `B`, `kB`, `MB` (powers of 1000).
fn bytes(n: u64) -> String {
    match n {
        0..=999 => format!("{n} B"),
        1_000..=999_999 => format!("{:.1} kB", n as f64 / 1e3),
        _ => format!("{:.1} MB", n as f64 / 1e6),
    }
}

fn k_label(k: Option<usize>) -> String {
    k.map_or_else(|| "all".to_string(), |k| k.to_string())
}

/// The summary as a fixed-width text table (also used in report.md).
pub fn table(report: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<16} {:>4} {:>15} {:>24} {:>8} {:>9} {:>15} {:>9} {:>9}",
        "strategy",
        "k",
        "accuracy",
        "vs scratch (95% CI)",
        "wall s",
        "FLOPs",
        "to scratch acc",
        "CO2 mg",
        "stored"
    );
    for r in &report.summary {
        let gain = match (r.gain_over_scratch, r.gain_ci95) {
            (Some(g), Some((lo, hi))) => {
                format!("{:+.1} [{:+.1}, {:+.1}]", g * 100.0, lo * 100.0, hi * 100.0)
            }
            (Some(g), None) => format!("{:+.1}", g * 100.0),
            _ => "-".to_string(),
        };
        let speed = match (r.speedup_vs_scratch, r.strategy.as_str()) {
            (_, "scratch") => "-".to_string(),
            // No monitor set, so no curve to read a time-to-accuracy from.
            _ if report.monitor_per_class == 0 => "n/a".to_string(),
            (Some(x), _) => format!("{x:.1}x ({}/{})", r.reached_scratch, r.n),
            (None, _) => format!("never ({}/{})", r.reached_scratch, r.n),
        };
        let _ = writeln!(
            s,
            "{:<16} {:>4} {:>7.1}% ±{:>5.1} {:>24} {:>8.2} {:>9.2e} {:>15} {:>9.2} {:>9}",
            r.strategy,
            k_label(r.k),
            r.accuracy_mean * 100.0,
            r.accuracy_std * 100.0,
            gain,
            r.wall_seconds_mean,
            r.flops_mean,
            speed,
            r.co2_grams_mean * 1000.0,
            r.trained_params.map_or("-".to_string(), |p| bytes(4 * p))
        );
    }
    s
}

/// The report as Markdown.
pub fn markdown(report: &Report) -> String {
    let p = &report.pretraining;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# graft report: `{}` with `{}`\n",
        report.protocol, report.network
    );
    let _ = writeln!(
        s,
        "Seeds {:?}; k-shot draws and batch orders use {}. Accuracy is on the untouched target test split, mean ± sample std over seeds; \"vs scratch\" is the mean paired difference (same seed, same k-shot set).\n",
        report.seeds, report.rng
    );
    if report.partial {
        let _ = writeln!(
            s,
            "**Partial report: the sweep was interrupted; {} of {} runs finished.** The rows \
             below cover only those; `graft sweep --resume <this folder>` (with the same \
             options) trains the missing runs and completes it.\n",
            report.results.len(),
            report.runs_planned
        );
    }
    let _ = writeln!(s, "```text\n{}```\n", table(report));
    let source = report
        .results
        .first()
        .map_or("n/a".to_string(), |r| match r.energy_source {
            EnergySource::Rapl => "measured with RAPL package counters".to_string(),
            EnergySource::FlopEstimate { joules_per_flop } => {
                format!(
                    "estimated from FLOPs at {joules_per_flop:e} J/FLOP (no RAPL counters here)"
                )
            }
        });
    let speed = if report.monitor_per_class == 0 {
        "training seconds and FLOPs (this sweep keeps no monitor set, so no curve and no time to reach \
         scratch's accuracy: that column is n/a)"
            .to_string()
    } else {
        format!(
            "training seconds and FLOPs, and the speed-up to reach scratch's final accuracy, read off each run's \
             curve on a monitor set of {} pool examples per class outside its k-shot set (the monitor never chooses anything; \
             runs that never reach it are counted)",
            report.monitor_per_class
        )
    };
    let _ = writeln!(
        s,
        "The three promises: **few labels**: accuracy and the paired gain over scratch with its 95% t interval over seeds; \
         **speed**: {speed}; **environment**: energy {source}, CO2 at {} g/kWh. \
         \"stored\" is what one target task keeps beside the shared pretrained network: the \
         parameters the strategy trained, new head included, at 4 bytes each. \
         The test split ({} examples) was evaluated {} times for {} runs.\n",
        report.grid_g_per_kwh,
        report.test_examples,
        report.test_evaluations,
        report.results.len()
    );
    let _ = writeln!(s, "{}\n", devices_line(&report.results));
    let _ = writeln!(s, "![accuracy against labels per class](accuracy.png)\n");
    for v in &report.verdicts {
        let _ = writeln!(s, "- {v}");
    }
    s += &source_line(p);
    s
}

/// The report's last line: where the reused weights come from and what that cost.
fn source_line(p: &crate::pretrain::PretrainInfo) -> String {
    let mut s = String::new();
    if let Some(source) = &p.source {
        let _ = writeln!(
            s,
            "\nSource: {source}; checkpoint `{}`; input mean {:.4}, std {:.4} (pixels in [0, 1]).",
            p.checkpoint.display(),
            p.mean,
            p.std
        );
        return s;
    }
    let _ = writeln!(
        s,
        "\nPretraining ({} source examples, {} epochs at batch {}): {:.2e} FLOPs{}; checkpoint `{}`; input mean {:.4}, std {:.4}.",
        p.source_examples,
        p.config.epochs,
        p.config.batch,
        p.flops,
        if p.cached { ", reused from cache".to_string() } else { format!(", {:.1} s", p.wall_seconds) },
        p.checkpoint.display(),
        p.mean,
        p.std
    );
    s
}

/// Where the runs trained, for the Markdown: wall times of heads trained on a GPU are not
/// CPU times.
fn devices_line(results: &[RunRecord]) -> String {
    let on_gpu: Vec<&RunRecord> = results.iter().filter(|r| r.head_device != "cpu").collect();
    if on_gpu.is_empty() {
        return "Every run trained on the CPU.".to_string();
    }
    let mut devices: Vec<&str> = on_gpu.iter().map(|r| r.head_device.as_str()).collect();
    devices.sort_unstable();
    devices.dedup();
    format!(
        "{} of {} runs trained their linear head on a GPU ({}); their backbone features and \
         every other run ran on the CPU, so their wall times mix the two.",
        on_gpu.len(),
        results.len(),
        devices.join(", ")
    )
}

/// The plot's curves from a report summary: one [`Series`](crate::plot::Series) per strategy (in order of first appearance),
/// with the `all` budget (`k = None`) placed at `all_labels_per_class`.
pub fn series_from_summary(
    summary: &[SummaryRow],
    all_labels_per_class: f64,
) -> Vec<crate::plot::Series> {
    crate::plot::series_from_cells(
        summary
            .iter()
            .map(|r| (r.strategy.as_str(), r.k, r.accuracy_mean, r.accuracy_std)),
        all_labels_per_class,
    )
}

/// Writes `report.json`, `report.md`, `report.csv` (one row per run) and the plot
/// `accuracy.png` / `accuracy.svg` (when there is a run) into `dir` (each atomically) and
/// returns `dir`.
pub fn write(report: &Report, dir: &Path) -> Result<PathBuf, TransferError> {
    let json = serde_json::to_vec_pretty(report)
        .map_err(|e| TransferError::Config(format!("cannot serialise the report: {e}")))?;
    graft_nn::checkpoint::write_atomically(&dir.join("report.json"), &json)?;
    graft_nn::checkpoint::write_atomically(&dir.join("report.md"), markdown(report).as_bytes())?;
    let rows: Vec<Vec<String>> = report
        .results
        .iter()
        .map(|r| {
            vec![
                r.protocol.clone(),
                r.network.clone(),
                r.strategy.clone(),
                k_label(r.k),
                r.seed.to_string(),
                format!("{:.6}", r.accuracy),
                format!("{:.4}", r.wall_seconds),
                format!("{:.4e}", r.flops),
                format!("{:.4e}", r.joules),
                format!("{:.6}", r.co2_grams),
                r.head_device.clone(),
                r.trained_params.map_or(String::new(), |p| p.to_string()),
            ]
        })
        .collect();
    let header = [
        "protocol",
        "network",
        "strategy",
        "k",
        "seed",
        "accuracy",
        "wall_seconds",
        "flops",
        "joules",
        "co2_grams",
        "head_device",
        "trained_params",
    ];
    crate::csv::write_csv(&dir.join("report.csv"), &header, &rows)?;
    let series = series_from_summary(&report.summary, report.all_labels_per_class as f64);
    let title = format!(
        "{}: target test accuracy, {}, {} seeds",
        report.protocol,
        report.network,
        report.seeds.len()
    );
    // A partial report of a sweep interrupted before its first run has nothing to draw.
    if !report.results.is_empty() {
        crate::plot::accuracy_vs_labels(
            &title,
            &series,
            &dir.join("accuracy.png"),
            &dir.join("accuracy.svg"),
        )?;
    }
    Ok(dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(strategy: &str, seed: u64, accuracy: f64) -> RunRecord {
        RunRecord {
            protocol: "animals".into(),
            network: "mlp".into(),
            strategy: strategy.into(),
            k: Some(10),
            seed,
            accuracy,
            wall_seconds: 1.0,
            flops: 2.0,
            joules: 3.0,
            energy_source: EnergySource::FlopEstimate {
                joules_per_flop: 1.5,
            },
            co2_grams: 0.1,
            curve: Vec::new(),
            head_device: "cpu".into(),
            trained_params: None,
        }
    }

    #[test]
    fn the_report_says_where_heads_trained() {
        let mut results = vec![rec("scratch", 0, 0.5), rec("linear-probe", 0, 0.6)];
        assert_eq!(devices_line(&results), "Every run trained on the CPU.");
        results[1].head_device = "cuda:0".into();
        results.push(rec("linear-probe", 1, 0.7));
        results[2].head_device = "cuda:0".into();
        let line = devices_line(&results);
        assert!(
            line.starts_with("2 of 3 runs trained their linear head on a GPU (cuda:0);"),
            "{line}"
        );
    }

    #[test]
    fn summary_pairs_seeds_and_uses_sample_std() {
        let results = vec![
            rec("scratch", 0, 0.6),
            rec("scratch", 1, 0.7),
            rec("fine-tune", 0, 0.7),
            rec("fine-tune", 1, 0.9),
        ];
        let s = summarize(&results);
        assert_eq!(s.len(), 2);
        assert!((s[0].accuracy_mean - 0.65).abs() < 1e-12);
        // sample std of {0.6, 0.7} = sqrt(0.005)
        assert!((s[0].accuracy_std - 0.005f64.sqrt()).abs() < 1e-12);
        assert_eq!(s[0].gain_over_scratch, None);
        assert!((s[1].gain_over_scratch.unwrap() - 0.15).abs() < 1e-12);
        // Gains 0.1 and 0.2 over two seeds: t(0.975, 1) = 12.706, so the interval is
        // 0.15 ± 12.706 * 0.0707 / sqrt(2) and includes zero.
        let (lo, hi) = s[1].gain_ci95.unwrap();
        assert!(
            (lo - (0.15 - 12.7062 * 0.05)).abs() < 1e-3
                && (hi - (0.15 + 12.7062 * 0.05)).abs() < 1e-3
        );
        let v = verdicts(&s);
        assert!(v[0].contains("no clear gain"), "{v:?}");
        // A third seed with the same gain narrows it above zero.
        let mut more = results.clone();
        more.push(rec("scratch", 2, 0.65));
        more.push(rec("fine-tune", 2, 0.8));
        let v = verdicts(&summarize(&more));
        assert!(v[0].contains("transfer helps"), "{v:?}");
    }

    #[test]
    fn negative_transfer_is_said_plainly() {
        let results = vec![rec("scratch", 0, 0.8), rec("fine-tune", 0, 0.7)];
        let v = verdicts(&summarize(&results));
        assert!(v[0].contains("negative transfer"), "{v:?}");
    }
}
