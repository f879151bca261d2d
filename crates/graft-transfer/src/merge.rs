//! `graft sweep merge`: the reports of every shard of one sweep (`graft sweep --shard`)
//! combined into the report one process would have written.

use std::path::{Path, PathBuf};

use crate::report::{self, Report, RunRecord};
use crate::shard::{PlannedRun, ShardRecord};
use crate::TransferError;

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
