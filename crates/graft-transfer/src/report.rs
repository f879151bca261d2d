//! Reports: one record per run, a summary per (k, strategy), written as JSON and Markdown.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::pretrain::PretrainInfo;
use crate::TransferError;

/// One training run: a strategy at a label budget with a seed. Field names are a stable
/// contract; later reports add fields, never rename these.
#[derive(Debug, Clone, Serialize)]
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
}

/// Mean and spread of one (k, strategy) cell over seeds.
#[derive(Debug, Clone, Serialize)]
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
    /// Mean wall time in seconds.
    pub wall_seconds_mean: f64,
    /// Mean training FLOPs.
    pub flops_mean: f64,
}

/// Everything a sweep measured.
#[derive(Debug, Clone, Serialize)]
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
    /// The source-task pretraining.
    pub pretraining: PretrainInfo,
    /// One record per run.
    pub results: Vec<RunRecord>,
    /// One row per (k, strategy).
    pub summary: Vec<SummaryRow>,
    /// Plain-language conclusions, one per label budget.
    pub verdicts: Vec<String>,
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n.max(1.0);
    if v.len() < 2 {
        return (mean, 0.0);
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
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
            let gain_over_scratch =
                (strategy != "scratch" && !gains.is_empty()).then(|| mean_std(&gains).0);
            let n = runs.len() as f64;
            SummaryRow {
                strategy,
                k,
                n: runs.len(),
                accuracy_mean,
                accuracy_std,
                gain_over_scratch,
                wall_seconds_mean: runs.iter().map(|r| r.wall_seconds).sum::<f64>() / n,
                flops_mean: runs.iter().map(|r| r.flops).sum::<f64>() / n,
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

fn k_label(k: Option<usize>) -> String {
    k.map_or_else(|| "all".to_string(), |k| k.to_string())
}

/// The summary as a fixed-width text table (also used in report.md).
pub fn table(report: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<14} {:>5} {:>17} {:>9} {:>9} {:>11}",
        "strategy", "k", "accuracy (test)", "vs scratch", "wall (s)", "train FLOPs"
    );
    for r in &report.summary {
        let gain = r
            .gain_over_scratch
            .map_or_else(|| "-".to_string(), |g| format!("{:+.1} pt", g * 100.0));
        let _ = writeln!(
            s,
            "{:<14} {:>5} {:>8.1}% ± {:>4.1}% {:>10} {:>9.2} {:>11.2e}",
            r.strategy,
            k_label(r.k),
            r.accuracy_mean * 100.0,
            r.accuracy_std * 100.0,
            gain,
            r.wall_seconds_mean,
            r.flops_mean
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
    let _ = writeln!(s, "```text\n{}```\n", table(report));
    for v in &report.verdicts {
        let _ = writeln!(s, "- {v}");
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

/// Writes `report.json` and `report.md` into `dir` (atomically) and returns `dir`.
pub fn write(report: &Report, dir: &Path) -> Result<PathBuf, TransferError> {
    let json = serde_json::to_vec_pretty(report)
        .map_err(|e| TransferError::Config(format!("cannot serialise the report: {e}")))?;
    graft_nn::checkpoint::write_atomically(&dir.join("report.json"), &json)?;
    graft_nn::checkpoint::write_atomically(&dir.join("report.md"), markdown(report).as_bytes())?;
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
        }
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
        let v = verdicts(&s);
        assert!(v[0].contains("transfer helps"), "{v:?}");
    }

    #[test]
    fn negative_transfer_is_said_plainly() {
        let results = vec![rec("scratch", 0, 0.8), rec("fine-tune", 0, 0.7)];
        let v = verdicts(&summarize(&results));
        assert!(v[0].contains("negative transfer"), "{v:?}");
    }
}
