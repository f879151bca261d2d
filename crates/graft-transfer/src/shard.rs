//! Sharded sweeps: the runs of one sweep split into `N` deterministic parts that separate
//! processes (a Slurm job array, a Kubernetes Indexed Job, `mpirun` ranks) train on their
//! own, and the merge of their reports into the report one process would have written.
//!
//! Every shard computes the same plan and the same split from the same command line, so no
//! process needs to talk to another: a shard only needs its index and the count.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::report::{self, Report, RunRecord};
use crate::strategy::Strategy;
use crate::TransferError;

/// One part of a sweep: `index` counts from 0 (as Slurm array ids, Kubernetes completion
/// indices and MPI ranks do) and is below `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This part, `0..count`.
    pub index: usize,
    /// How many parts the sweep is split into.
    pub count: usize,
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// A checked shard.
    pub fn new(index: usize, count: usize) -> Result<Self, String> {
        if count == 0 {
            return Err("a sweep cannot be split into 0 shards".into());
        }
        if index >= count {
            return Err(format!(
                "shard {index}/{count}: the index counts from 0, so it must be below {count}"
            ));
        }
        Ok(Self { index, count })
    }

    /// The shard the job scheduler gave this process, from its environment:
    /// Slurm job arrays (`SLURM_ARRAY_TASK_ID` minus `SLURM_ARRAY_TASK_MIN`, of
    /// `SLURM_ARRAY_TASK_COUNT`), Kubernetes Indexed Jobs (`JOB_COMPLETION_INDEX`, of
    /// `GRAFT_SHARD_COUNT`, which the Job's manifest sets to its `completions`), or MPI
    /// launchers (`OMPI_COMM_WORLD_RANK`/`PMI_RANK` of `OMPI_COMM_WORLD_SIZE`/`PMI_SIZE`).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let number = |name: &str| -> Result<Option<usize>, String> {
            var(name)
                .map(|v| {
                    v.trim()
                        .parse::<usize>()
                        .map_err(|_| format!("{name}={v} is not a whole number"))
                })
                .transpose()
        };
        let launchers: [(&str, &str, Option<&str>); 4] = [
            (
                "SLURM_ARRAY_TASK_ID",
                "SLURM_ARRAY_TASK_COUNT",
                Some("SLURM_ARRAY_TASK_MIN"),
            ),
            ("JOB_COMPLETION_INDEX", "GRAFT_SHARD_COUNT", None),
            ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", None),
            ("PMI_RANK", "PMI_SIZE", None),
        ];
        for (index_var, count_var, min_var) in launchers {
            let Some(index) = number(index_var)? else {
                continue;
            };
            let count = number(count_var)?.ok_or_else(|| {
                format!("{index_var} is set but {count_var} is not: set it to the number of shards")
            })?;
            let first = match min_var {
                Some(m) => number(m)?.unwrap_or(0),
                None => 0,
            };
            let index = index.checked_sub(first).ok_or_else(|| {
                format!("{index_var}={index} is below the array's first index {first}")
            })?;
            return Self::new(index, count).map_err(|e| format!("{e} (from {index_var})"));
        }
        Err(
            "--shard auto found no scheduler's shard index (SLURM_ARRAY_TASK_ID, \
             JOB_COMPLETION_INDEX, OMPI_COMM_WORLD_RANK or PMI_RANK); run under a job array, \
             an Indexed Job or mpirun, or give --shard I/N"
                .into(),
        )
    }
}

/// `--shard`: a fixed `I/N` or `auto` (read from the scheduler's environment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardChoice {
    /// This shard.
    Fixed(Shard),
    /// The shard the environment names, see [`Shard::from_env`].
    Auto,
}

impl ShardChoice {
    /// The shard, reading the process environment for `auto`.
    pub fn resolve(self) -> Result<Shard, TransferError> {
        match self {
            ShardChoice::Fixed(s) => Ok(s),
            ShardChoice::Auto => {
                Shard::from_env(|name| std::env::var(name).ok()).map_err(TransferError::Config)
            }
        }
    }
}

impl std::str::FromStr for ShardChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "auto" {
            return Ok(ShardChoice::Auto);
        }
        let parsed = s.split_once('/').and_then(|(i, n)| {
            Some((
                i.trim().parse::<usize>().ok()?,
                n.trim().parse::<usize>().ok()?,
            ))
        });
        let (index, count) = parsed.ok_or_else(|| {
            format!("--shard `{s}`: expected I/N (I counts from 0, e.g. 0/3) or auto")
        })?;
        Shard::new(index, count).map(ShardChoice::Fixed)
    }
}

/// One planned run, as a shard report records its sweep's whole plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedRun {
    /// Strategy id.
    pub strategy: String,
    /// Labels per class, `None` for all.
    pub k: Option<usize>,
    /// Seed.
    pub seed: u64,
}

impl std::fmt::Display for PlannedRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let k = self.k.map_or("all".into(), |k| k.to_string());
        write!(f, "{} k={k} seed {}", self.strategy, self.seed)
    }
}

/// What a shard's report says of the split: which shard it is and the whole sweep's plan,
/// so that the merge can check that the shards belong together and nothing is missing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardRecord {
    /// This report's shard.
    pub shard: Shard,
    /// Every run of the whole sweep, in report order.
    pub plan: Vec<PlannedRun>,
}

/// The expected cost of one run, in forward passes of one example through the backbone:
/// what the split balances. Training the backbone costs a forward and a backward pass
/// (about 3 forwards) per example and step; a linear probe extracts each example's features
/// once and trains only the head (negligible); a partial fine-tune sits between.
pub fn expected_cost(strategy: Strategy, examples: usize, steps: usize, batch: usize) -> f64 {
    let trained = (steps * batch) as f64;
    let probe = examples as f64;
    match strategy {
        Strategy::LinearProbe => probe,
        Strategy::LpFt => probe + 3.0 * trained,
        Strategy::Partial { .. } | Strategy::GradualUnfreeze => 2.0 * trained,
        Strategy::Scratch
        | Strategy::FineTune
        | Strategy::Discriminative { .. }
        | Strategy::L2Sp { .. } => 3.0 * trained,
    }
}

/// The shard of each run: the longest-processing-time-first rule (each run, costliest first,
/// goes to the shard with the least cost so far; ties to the earlier run and the lower
/// shard), deterministic for the same costs.
pub fn assign(costs: &[f64], count: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..costs.len()).collect();
    order.sort_by(|&a, &b| costs[b].total_cmp(&costs[a]).then(a.cmp(&b)));
    let mut load = vec![0.0f64; count.max(1)];
    let mut shard_of = vec![0; costs.len()];
    for run in order {
        let lightest = (0..load.len())
            .min_by(|&a, &b| load[a].total_cmp(&load[b]).then(a.cmp(&b)))
            .unwrap_or(0);
        load[lightest] += costs[run];
        shard_of[run] = lightest;
    }
    shard_of
}

/// A report folder's `report.json`, read back.
fn read_report(dir: &Path) -> Result<Report, TransferError> {
    let path = dir.join("report.json");
    let bytes = std::fs::read(&path).map_err(|source| TransferError::Io {
        path: path.clone(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        TransferError::Config(format!(
            "{}: not a graft sweep report ({e}); `graft sweep merge` takes the folders that \
             `graft sweep --shard` wrote",
            path.display()
        ))
    })
}

/// Errors unless `field` of every report equals the first one's.
fn check_same<T: PartialEq + std::fmt::Debug>(
    reports: &[(PathBuf, Report)],
    what: &str,
    field: impl Fn(&Report) -> T,
) -> Result<(), TransferError> {
    let first = field(&reports[0].1);
    for (dir, r) in &reports[1..] {
        let value = field(r);
        if value != first {
            return Err(TransferError::Config(format!(
                "{}: {what} is {value:?}, but {}'s is {first:?}; merge only the shards of one \
                 `graft sweep` command",
                dir.display(),
                reports[0].0.display()
            )));
        }
    }
    Ok(())
}

/// The shard record of a report, or an error saying it is not a shard report.
fn shard_of(dir: &Path, r: &Report) -> Result<ShardRecord, TransferError> {
    let record = r.shard.clone().ok_or_else(|| {
        TransferError::Config(format!(
            "{}: a whole sweep's report, not a shard's; merge the folders `graft sweep --shard` \
             wrote",
            dir.display()
        ))
    })?;
    if r.partial {
        return Err(TransferError::Config(format!(
            "{}: shard {} was interrupted ({} of {} runs); finish it with the same command and \
             --resume {}",
            dir.display(),
            record.shard,
            r.results.len(),
            r.runs_planned,
            dir.display()
        )));
    }
    Ok(record)
}

/// The results of the shards in plan order; a run missing from every shard, held twice or
/// not planned is an error naming it.
fn results_in_plan_order(
    plan: &[PlannedRun],
    reports: &[(PathBuf, Report)],
) -> Result<Vec<RunRecord>, TransferError> {
    let mut slots: Vec<Option<(&Path, &RunRecord)>> = vec![None; plan.len()];
    for (dir, r) in reports {
        for run in &r.results {
            let key = PlannedRun {
                strategy: run.strategy.clone(),
                k: run.k,
                seed: run.seed,
            };
            let i = plan.iter().position(|p| *p == key).ok_or_else(|| {
                TransferError::Config(format!(
                    "{}: holds a run ({key}) the sweep's plan does not have",
                    dir.display()
                ))
            })?;
            if let Some((other, _)) = slots[i] {
                return Err(TransferError::Config(format!(
                    "run {key} is in two shard reports, {} and {}; merge each shard once",
                    other.display(),
                    dir.display()
                )));
            }
            slots[i] = Some((dir, run));
        }
    }
    plan.iter()
        .zip(slots)
        .map(|(p, slot)| {
            slot.map(|(_, r)| r.clone()).ok_or_else(|| {
                TransferError::Config(format!(
                    "run {p} is in none of the shard reports; is a shard's folder missing?"
                ))
            })
        })
        .collect()
}

/// Checks that `reports` are every shard of one sweep, exactly once each.
fn check_shards(reports: &[(PathBuf, Report)]) -> Result<Vec<PlannedRun>, TransferError> {
    let records = reports
        .iter()
        .map(|(dir, r)| shard_of(dir, r))
        .collect::<Result<Vec<_>, _>>()?;
    let count = records[0].shard.count;
    let mut seen: Vec<Option<&Path>> = vec![None; count];
    for ((dir, _), rec) in reports.iter().zip(&records) {
        if rec.shard.count != count || rec.plan != records[0].plan {
            return Err(TransferError::Config(format!(
                "{}: shard {} of another split or plan than {}'s (shard {}); merge only the \
                 shards of one `graft sweep` command",
                dir.display(),
                rec.shard,
                reports[0].0.display(),
                records[0].shard
            )));
        }
        if let Some(other) = seen[rec.shard.index].replace(dir) {
            return Err(TransferError::Config(format!(
                "shard {} is given twice, {} and {}",
                rec.shard,
                other.display(),
                dir.display()
            )));
        }
    }
    if let Some(missing) = seen.iter().position(Option::is_none) {
        return Err(TransferError::Config(format!(
            "shard {missing}/{count} is missing; give every shard's folder"
        )));
    }
    Ok(records[0].plan.clone())
}

/// Merges the reports of every shard of one sweep into the report one process would have
/// written, and writes it into a new folder under `runs_dir`. Returns that report and folder.
pub fn merge(dirs: &[PathBuf], runs_dir: &Path) -> Result<(Report, PathBuf), TransferError> {
    if dirs.is_empty() {
        return Err(TransferError::Config(
            "graft sweep merge needs the folders of the shard reports".into(),
        ));
    }
    let reports = dirs
        .iter()
        .map(|d| Ok((d.clone(), read_report(d)?)))
        .collect::<Result<Vec<_>, TransferError>>()?;
    let plan = check_shards(&reports)?;
    check_same(&reports, "the protocol", |r| r.protocol.clone())?;
    check_same(&reports, "the network", |r| r.network.clone())?;
    check_same(&reports, "the training", |r| r.training.clone())?;
    check_same(&reports, "the seeds", |r| r.seeds.clone())?;
    check_same(&reports, "the grid intensity", |r| r.grid_g_per_kwh)?;
    check_same(&reports, "the test split's size", |r| r.test_examples)?;
    check_same(&reports, "the all-labels budget", |r| {
        r.all_labels_per_class
    })?;
    check_same(&reports, "the pretrained checkpoint", |r| {
        let p = &r.pretraining;
        (
            p.checkpoint.clone(),
            p.mean,
            p.std,
            p.config,
            p.source_examples,
        )
    })?;
    let results = results_in_plan_order(&plan, &reports)?;
    let first = &reports[0].1;
    // The shard that pretrained carries the pretraining's cost; the others found it cached.
    let pretraining = reports
        .iter()
        .map(|(_, r)| &r.pretraining)
        .find(|p| !p.cached)
        .unwrap_or(&first.pretraining)
        .clone();
    let summary = report::summarize(&results);
    let merged = Report {
        graft_version: first.graft_version.clone(),
        protocol: first.protocol.clone(),
        network: first.network.clone(),
        rng: first.rng.clone(),
        seeds: first.seeds.clone(),
        grid_g_per_kwh: first.grid_g_per_kwh,
        test_examples: first.test_examples,
        test_evaluations: reports.iter().map(|(_, r)| r.test_evaluations).sum(),
        monitor_per_class: first.monitor_per_class,
        all_labels_per_class: first.all_labels_per_class,
        pretraining,
        runs_planned: plan.len(),
        results,
        verdicts: report::verdicts(&summary),
        summary,
        partial: false,
        training: first.training.clone(),
        shard: None,
    };
    let dir = crate::sweep::create_run_dir(runs_dir, &merged.protocol)?;
    report::write(&merged, &dir)?;
    Ok((merged, dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_choices_parse_and_bad_ones_say_what_is_expected() {
        assert_eq!(
            "1/3".parse::<ShardChoice>(),
            Ok(ShardChoice::Fixed(Shard { index: 1, count: 3 }))
        );
        assert_eq!("auto".parse::<ShardChoice>(), Ok(ShardChoice::Auto));
        assert!("3/3"
            .parse::<ShardChoice>()
            .unwrap_err()
            .contains("below 3"));
        assert!("0/0"
            .parse::<ShardChoice>()
            .unwrap_err()
            .contains("0 shards"));
        assert!("x".parse::<ShardChoice>().unwrap_err().contains("I/N"));
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn each_scheduler_names_the_shard_through_its_own_variables() {
        let slurm = env(&[
            ("SLURM_ARRAY_TASK_ID", "5"),
            ("SLURM_ARRAY_TASK_MIN", "4"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ]);
        assert_eq!(Shard::from_env(slurm), Ok(Shard { index: 1, count: 3 }));
        let k8s = env(&[("JOB_COMPLETION_INDEX", "2"), ("GRAFT_SHARD_COUNT", "3")]);
        assert_eq!(Shard::from_env(k8s), Ok(Shard { index: 2, count: 3 }));
        let mpi = env(&[("OMPI_COMM_WORLD_RANK", "0"), ("OMPI_COMM_WORLD_SIZE", "2")]);
        assert_eq!(Shard::from_env(mpi), Ok(Shard { index: 0, count: 2 }));
        let hydra = env(&[("PMI_RANK", "1"), ("PMI_SIZE", "2")]);
        assert_eq!(Shard::from_env(hydra), Ok(Shard { index: 1, count: 2 }));
        let no_count = env(&[("JOB_COMPLETION_INDEX", "0")]);
        assert!(Shard::from_env(no_count)
            .unwrap_err()
            .contains("GRAFT_SHARD_COUNT"));
        assert!(Shard::from_env(env(&[]))
            .unwrap_err()
            .contains("--shard I/N"));
        let too_big = env(&[("PMI_RANK", "2"), ("PMI_SIZE", "2")]);
        assert!(Shard::from_env(too_big).unwrap_err().contains("PMI_RANK"));
    }

    /// Every way of giving `n` runs to `count` shards, for a brute-force optimum.
    fn best_makespan(costs: &[f64], count: usize) -> f64 {
        let mut best = f64::INFINITY;
        let total = count.pow(costs.len() as u32);
        for code in 0..total {
            let mut load = vec![0.0; count];
            let mut c = code;
            for &cost in costs {
                load[c % count] += cost;
                c /= count;
            }
            best = best.min(load.iter().cloned().fold(0.0, f64::max));
        }
        best
    }

    #[test]
    fn the_split_is_deterministic_complete_and_within_graham_bound_of_the_best() {
        let mut rng = graft_data::SplitMix64::new(7);
        for trial in 0..40 {
            let n = 1 + trial % 8;
            let count = 1 + trial % 3;
            let costs: Vec<f64> = (0..n)
                .map(|_| 1.0 + (rng.next_u64() % 100) as f64)
                .collect();
            let shards = assign(&costs, count);
            assert_eq!(shards, assign(&costs, count));
            assert!(shards.iter().all(|&s| s < count));
            let mut load = vec![0.0; count];
            for (&s, &c) in shards.iter().zip(&costs) {
                load[s] += c;
            }
            let makespan = load.iter().cloned().fold(0.0, f64::max);
            // Graham (1969): LPT is within 4/3 - 1/(3m) of the optimum.
            let bound = 4.0 / 3.0 - 1.0 / (3.0 * count as f64);
            assert!(
                makespan <= best_makespan(&costs, count) * bound + 1e-9,
                "{costs:?} on {count}: {load:?}"
            );
        }
    }

    #[test]
    fn a_probe_is_cheaper_than_a_fine_tune_of_the_same_budget() {
        let probe = expected_cost(Strategy::LinearProbe, 20, 300, 20);
        let fine = expected_cost(Strategy::FineTune, 20, 300, 20);
        let lp_ft = expected_cost(Strategy::LpFt, 20, 300, 20);
        assert!(probe < fine && fine < lp_ft);
    }
}
