//! Sharded sweeps: the runs of one sweep split into `N` deterministic parts that separate
//! processes (a Slurm job array, a Kubernetes Indexed Job, `mpirun` ranks) train on their
//! own; `merge` combines their reports.
//!
//! Every shard computes the same plan and the same split from the same command line, so no
//! process needs to talk to another: a shard only needs its index and the count.

use serde::{Deserialize, Serialize};

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
        // BitFit's backward pass still runs through every block (the biases are everywhere).
        Strategy::Scratch
        | Strategy::FineTune
        | Strategy::Discriminative { .. }
        | Strategy::L2Sp { .. }
        | Strategy::BitFit => 3.0 * trained,
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
