//! Sweeps: every (label budget, seed, strategy) of a protocol, one report.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use graft_data::{Normalize, View};
use graft_nn::convnet::CONVNET_FEATURES;
use graft_nn::{Backbone, Classifier, ConvnetBackbone, NetworkKind};

use crate::energy::{self, EnergyMeter};
use crate::examples::Examples;
use crate::metrics::accuracy;
use crate::options::TrainOptions;
use crate::pretrain::{pretrained_backbone, PretrainConfig};
use crate::protocol::{DataDirs, Protocol};
use crate::report::{self, Report, RunRecord};
use crate::shard::{PlannedRun, Shard, ShardRecord};
use crate::strategy::{run_strategy_with, Strategy};
use crate::train::{progress_bar, Monitor, Schedule};
use crate::TransferError;

/// Monitor examples per class: labelled pool images outside the k-shot set, used only to
/// draw training curves (time to reach scratch's accuracy), never to choose anything.
pub const MONITOR_PER_CLASS: usize = 100;

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
    /// Folders with the raw data sets (IDX files).
    pub data: DataDirs,
    /// Folder for imported data sets and pretrained checkpoints.
    pub cache_dir: PathBuf,
    /// Folder that receives `<run id>/report.{json,md,csv}` and the plot.
    pub runs_dir: PathBuf,
    /// Source-task training.
    pub pretrain: PretrainConfig,
    /// Grid carbon intensity for the CO2 figures, grams per kWh.
    pub grid_g_per_kwh: f64,
    /// Runs trained at once, the cores split evenly between them (see [`default_jobs`]).
    pub jobs: usize,
    /// How every run trains: optimiser, schedule, early stopping (training-state files and
    /// resumption are for single runs; leave them `None` here).
    pub training: TrainOptions,
    /// A report folder of an earlier, interrupted sweep with the same plan: its finished
    /// runs are reused, only the missing ones train, and the complete report replaces the
    /// partial one there. `None` makes a new report folder.
    pub resume: Option<PathBuf>,
    /// Stop as Ctrl-C does once this many runs have finished in this call (a deterministic
    /// stand-in for Ctrl-C in tests); `None` runs every run.
    pub stop_after: Option<usize>,
    /// Train only this shard's part of the runs (`graft sweep --shard`) and write a shard
    /// report for `graft sweep merge`; `None` trains every run.
    pub shard: Option<Shard>,
}

/// One run per core: on small batches two single-threaded runs side by side do more work
/// than one run whose matrix products are split across both cores. Each run then trains on
/// one thread, so its result does not depend on thread scheduling.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The training examples of one (label budget, seed) and where its runs are watched from.
struct Group {
    k: Option<usize>,
    seed: u64,
    train: Examples,
    monitor: Examples,
    steps: usize,
}

/// A finished sweep.
#[derive(Debug, Clone)]
pub struct SweepOutcome {
    /// Everything measured.
    pub report: Report,
    /// The folder holding the report files.
    pub dir: PathBuf,
}

/// Runs the sweep and writes its report.
pub fn run_sweep(cfg: &SweepConfig) -> Result<SweepOutcome, TransferError> {
    if cfg.strategies.is_empty() || cfg.seeds.is_empty() || cfg.ks.is_empty() {
        return Err(TransferError::Config(
            "a sweep needs at least one strategy, one seed and one label budget".into(),
        ));
    }
    cfg.protocol.check_network(cfg.network)?;
    check_distinct("--seeds", "seed", &cfg.seeds, |s| s.to_string())?;
    check_distinct("--k", "label budget", &cfg.ks, |k| {
        k.map_or("all".into(), |k| k.to_string())
    })?;
    check_distinct("--strategies", "strategy", &cfg.strategies, |s| {
        s.to_string()
    })?;
    // Every output location before any training: imported data sets and the pretrained
    // checkpoint go to the cache (the checkpoint only after pretraining).
    crate::options::check_writable_dir("--cache", &cfg.cache_dir)?;
    cfg.training.check_locations()?;
    if let Some(dir) = &cfg.resume {
        let prior = read_partial(cfg, dir)?;
        return for_network!(cfg.network, sweep_with(cfg, dir, prior));
    }
    // The report's folder is made first: an unwritable --runs fails before any training.
    let name = match cfg.shard {
        Some(s) => format!("{}-shard-{}-of-{}", cfg.protocol.name(), s.index, s.count),
        None => cfg.protocol.name().to_string(),
    };
    let dir = create_run_dir(&cfg.runs_dir, &name)?;
    let outcome = for_network!(cfg.network, sweep_with(cfg, &dir, Vec::new()));
    if outcome.is_err() {
        // When nothing was written into it (an error, not an interruption), an empty folder
        // would only look like a lost report.
        let _ = std::fs::remove_dir(&dir);
    }
    outcome
}

/// The (strategy, label budget, seed) of every planned run, in report order.
fn planned_runs(cfg: &SweepConfig) -> Vec<(String, Option<usize>, u64)> {
    let mut out = Vec::new();
    for &k in &cfg.ks {
        for &seed in &cfg.seeds {
            for s in &cfg.strategies {
                out.push((s.to_string(), k, seed));
            }
        }
    }
    out
}

/// The finished runs recorded in `dir/report.json`, checked against `cfg`'s plan.
fn read_partial(cfg: &SweepConfig, dir: &Path) -> Result<Vec<RunRecord>, TransferError> {
    #[derive(serde::Deserialize)]
    struct Prior {
        protocol: String,
        network: String,
        #[serde(default)]
        training: String,
        results: Vec<RunRecord>,
    }
    let path = dir.join("report.json");
    let bytes = std::fs::read(&path).map_err(|source| TransferError::Io {
        path: path.clone(),
        source,
    })?;
    let prior: Prior = serde_json::from_slice(&bytes).map_err(|e| {
        TransferError::Config(format!(
            "{}: not a graft sweep report ({e}); --resume takes the folder of an interrupted \
             `graft sweep`",
            path.display()
        ))
    })?;
    let network = for_network!(cfg.network, network_name());
    if prior.protocol != cfg.protocol.name() || prior.network != network {
        return Err(TransferError::Config(format!(
            "{}: a sweep of protocol {} with {}, not {} with {network}; resume with the same \
             --protocol and --model",
            path.display(),
            prior.protocol,
            prior.network,
            cfg.protocol.name()
        )));
    }
    if prior.training != training_description(&cfg.training) {
        return Err(TransferError::Config(format!(
            "{}: its runs trained with {}, this sweep's would train with {}; resume with the \
             same --optimizer, --schedule and --early-stopping",
            path.display(),
            prior.training,
            training_description(&cfg.training)
        )));
    }
    let plan = planned_runs(cfg);
    for r in &prior.results {
        if !plan.contains(&(r.strategy.clone(), r.k, r.seed)) {
            return Err(TransferError::Config(format!(
                "{}: holds a run ({} k={} seed {}) this sweep does not plan; resume with the \
                 same --strategies, --k and --seeds",
                path.display(),
                r.strategy,
                r.k.map_or("all".into(), |k| k.to_string()),
                r.seed
            )));
        }
    }
    Ok(prior.results)
}

/// How a sweep's runs train, as recorded in its report and compared by `--resume`.
fn training_description(t: &TrainOptions) -> String {
    let early = t
        .early_stopping
        .as_ref()
        .map_or("no early stopping".to_string(), |e| format!("{e:?}"));
    format!(
        "optimizer {:?}, schedule {:?}, {early}",
        t.optimizer, t.lr_schedule
    )
}

fn network_name<B: Backbone<F>, const F: usize>() -> String {
    B::NAME.to_string()
}

/// Errors naming the first value `values` holds twice: a repeated seed is not an
/// independent run (its copies agree, so the interval around the gain shrinks to nothing),
/// and a repeated label budget or strategy only repeats rows.
pub fn check_distinct<T: PartialEq>(
    flag: &str,
    what: &str,
    values: &[T],
    show: impl Fn(&T) -> String,
) -> Result<(), TransferError> {
    for (i, v) in values.iter().enumerate() {
        if values[..i].contains(v) {
            return Err(TransferError::Config(format!(
                "{flag} lists {what} {} twice; repeated runs are not independent and would \
                 narrow the confidence intervals falsely: list each {what} once",
                show(v)
            )));
        }
    }
    Ok(())
}

/// Creates a new run folder `<runs_dir>/<run_id>/`, never reusing one: when the folder of
/// this second exists (another sweep finished in the same second), `-2`, `-3`, ... is
/// appended to the name.
pub fn create_run_dir(runs_dir: &Path, protocol: &str) -> Result<PathBuf, TransferError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TransferError::Io { path, source }
    };
    std::fs::create_dir_all(runs_dir).map_err(io(runs_dir))?;
    let id = run_id(protocol);
    for n in 1u32.. {
        let dir = match n {
            1 => runs_dir.join(&id),
            n => runs_dir.join(format!("{id}-{n}")),
        };
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io(&dir)(e)),
        }
    }
    unreachable!("u32 suffixes run out only after 4 billion sweeps in one second")
}

/// The target test split, held once per sweep; every evaluation on it is counted, so a
/// report can show the split was touched exactly once per run.
pub struct TestSplit {
    examples: Examples,
    reads: AtomicUsize,
}

impl TestSplit {
    /// Wraps the test examples.
    pub fn new(examples: Examples) -> Self {
        Self {
            examples,
            reads: AtomicUsize::new(0),
        }
    }

    /// Accuracy of `model` on the test split (counted).
    pub fn evaluate<B: Backbone<F>, const F: usize>(
        &self,
        model: &Classifier<B, F>,
    ) -> Result<f64, TransferError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        accuracy(&dfdx::tensor::Cpu::default(), model, &self.examples)
    }

    /// Evaluations so far.
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::Relaxed)
    }

    /// Number of test examples.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// Whether the split is empty.
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }
}

/// The first `per_class` pool examples of each class that are not in `shots`.
fn monitor_set(
    pool: &Examples,
    pool_ids: &[u32],
    shots: &HashSet<u32>,
    per_class: usize,
) -> Examples {
    let mut taken = vec![0usize; pool.num_classes];
    let rows: Vec<usize> = (0..pool.len())
        .filter(|&i| {
            let c = pool.y[i];
            let keep = !shots.contains(&pool_ids[i]) && taken[c] < per_class;
            taken[c] += usize::from(keep);
            keep
        })
        .collect();
    let (mut x, mut y) = (Vec::new(), Vec::new());
    pool.gather(&rows, &mut x, &mut y);
    Examples {
        x,
        y,
        width: pool.width,
        num_classes: pool.num_classes,
    }
}

fn sweep_with<B: Backbone<F> + Sync, const F: usize>(
    cfg: &SweepConfig,
    dir: &Path,
    prior: Vec<RunRecord>,
) -> Result<SweepOutcome, TransferError> {
    let ds = cfg.protocol.open(&cfg.data, &cfg.cache_dir)?;
    let (pretrained, pretraining) =
        pretrained_backbone::<B, F>(cfg.protocol, &ds, &cfg.cache_dir, cfg.pretrain)?;
    let norm = Normalize {
        mean: pretraining.mean,
        std: pretraining.std,
    };
    let pool_view = cfg.protocol.target_pool(&ds)?;
    let test = TestSplit::new(Examples::from_view(&cfg.protocol.target_test(&ds)?, norm)?);
    let all_per_class = pool_view.class_counts().into_iter().min().unwrap_or(0);
    let groups = shot_groups(cfg, &pool_view, norm)?;
    let tasks: Vec<(usize, Strategy)> = (0..groups.len())
        .flat_map(|g| cfg.strategies.iter().map(move |&s| (g, s)))
        .collect();
    let in_shard = shard_members(cfg.shard, &groups, &tasks);
    let runs_planned = in_shard.iter().filter(|&&m| m).count();
    let (reused, todo) = split_reused(&tasks, &in_shard, &groups, &prior);
    let bar = progress_bar(runs_planned as u64, "runs");
    bar.inc(reused.len() as u64);
    let workers = Workers::<B, F>::new(cfg, &pretrained, &groups, &test, &bar, &todo);
    let finished = workers.run_all()?;
    let trained_here = finished.done.len();
    let mut done = finished.done;
    done.extend(reused);
    done.sort_by_key(|(i, _)| *i);
    let results: Vec<RunRecord> = done.into_iter().map(|(_, r)| r).collect();
    let partial = results.len() < runs_planned;
    if partial && !finished.stopped {
        return Err(TransferError::Config(format!(
            "sweep ended with {} of {} runs and no error; this is a bug in graft",
            results.len(),
            runs_planned
        )));
    }
    if partial {
        bar.abandon();
    } else {
        bar.finish_and_clear();
    }
    let summary = report::summarize(&results);
    let report = Report {
        graft_version: env!("CARGO_PKG_VERSION").into(),
        protocol: cfg.protocol.name().into(),
        network: B::NAME.into(),
        rng: "SplitMix64 (graft_data::SplitMix64), seeded with the run's seed".into(),
        seeds: cfg.seeds.clone(),
        grid_g_per_kwh: cfg.grid_g_per_kwh,
        test_examples: test.len(),
        // Reused runs were evaluated, once each, by the call that trained them.
        test_evaluations: test.reads() + (results.len() - trained_here),
        monitor_per_class: MONITOR_PER_CLASS,
        all_labels_per_class: all_per_class,
        pretraining,
        results,
        verdicts: report::verdicts(&summary),
        summary,
        partial,
        runs_planned,
        training: training_description(&cfg.training),
        shard: cfg.shard.map(|shard| ShardRecord {
            shard,
            plan: planned_runs_of(&tasks, &groups),
        }),
    };
    write_report(report, dir, runs_planned)
}

/// The (strategy, label budget, seed) of every task, in report order.
fn planned_runs_of(tasks: &[(usize, Strategy)], groups: &[Group]) -> Vec<PlannedRun> {
    tasks
        .iter()
        .map(|&(g, s)| PlannedRun {
            strategy: s.to_string(),
            k: groups[g].k,
            seed: groups[g].seed,
        })
        .collect()
}

/// Whether each task belongs to `shard` (every task without one), split by expected cost.
fn shard_members(shard: Option<Shard>, groups: &[Group], tasks: &[(usize, Strategy)]) -> Vec<bool> {
    let Some(shard) = shard else {
        return vec![true; tasks.len()];
    };
    let costs: Vec<f64> = tasks
        .iter()
        .map(|&(g, strategy)| {
            let n = groups[g].train.len();
            let batch = Schedule::target_default(n).batch;
            crate::shard::expected_cost(strategy, n, groups[g].steps, batch)
        })
        .collect();
    crate::shard::assign(&costs, shard.count)
        .into_iter()
        .map(|s| s == shard.index)
        .collect()
}

/// Writes the report; a partial one (Ctrl-C or `stop_after`) is then the error that names
/// its folder.
fn write_report(report: Report, dir: &Path, planned: usize) -> Result<SweepOutcome, TransferError> {
    report::write(&report, dir)?;
    if report.partial {
        return Err(TransferError::SweepInterrupted {
            finished: report.results.len(),
            planned,
            dir: dir.to_path_buf(),
        });
    }
    Ok(SweepOutcome {
        report,
        dir: dir.to_path_buf(),
    })
}

/// The k-shot training set of every (label budget, seed), in report order, each with its
/// monitor set (pool examples outside it) and its step count.
fn shot_groups(
    cfg: &SweepConfig,
    pool_view: &View<'_>,
    norm: Normalize,
) -> Result<Vec<Group>, TransferError> {
    let pool = Examples::from_view(pool_view, norm)?;
    let mut groups = Vec::new();
    for &k in &cfg.ks {
        for &seed in &cfg.seeds {
            let shots = match k {
                Some(k) => pool_view.k_shot(k, seed)?,
                None => pool_view.k_shot_all(seed)?,
            };
            let train = Examples::from_view(&shots, norm)?;
            let shot_ids: HashSet<u32> = shots.indices().iter().copied().collect();
            let monitor = monitor_set(&pool, pool_view.indices(), &shot_ids, MONITOR_PER_CLASS);
            let steps = Schedule::target_default(train.len()).steps;
            groups.push(Group {
                k,
                seed,
                train,
                monitor,
                steps,
            });
        }
    }
    Ok(groups)
}

/// The planned runs of this shard (index, (group, strategy)) split into those an earlier,
/// interrupted call finished (taken as they are) and those still to train.
#[allow(clippy::type_complexity)]
fn split_reused(
    tasks: &[(usize, Strategy)],
    in_shard: &[bool],
    groups: &[Group],
    prior: &[RunRecord],
) -> (Vec<(usize, RunRecord)>, Vec<(usize, (usize, Strategy))>) {
    let mut reused = Vec::new();
    let mut todo = Vec::new();
    for (index, &(g, strategy)) in tasks.iter().enumerate() {
        if !in_shard[index] {
            continue;
        }
        let (k, seed, name) = (groups[g].k, groups[g].seed, strategy.to_string());
        match prior
            .iter()
            .find(|r| r.k == k && r.seed == seed && r.strategy == name)
        {
            Some(r) => reused.push((index, r.clone())),
            None => todo.push((index, (g, strategy))),
        }
    }
    (reused, todo)
}

/// What the workers leave: the runs they finished (by plan index) and whether they were
/// stopped (Ctrl-C or `stop_after`) before the queue was empty.
struct Finished {
    done: Vec<(usize, RunRecord)>,
    stopped: bool,
}

/// The sweep's ordered worker pool: `jobs` threads take runs from one queue, each training
/// in its own rayon pool of `threads_per_job` threads; the first error stops them all.
struct Workers<'a, B: Backbone<F>, const F: usize> {
    cfg: &'a SweepConfig,
    /// The sweep's options, with Ctrl-C stopping runs between steps.
    training: TrainOptions,
    pretrained: &'a B,
    groups: &'a [Group],
    test: &'a TestSplit,
    bar: &'a indicatif::ProgressBar,
    jobs: usize,
    threads_per_job: usize,
    /// RAPL counts the whole package: with runs side by side it cannot be split between
    /// them, so energy is then estimated from each run's FLOPs (the report says which).
    meter: Mutex<Option<EnergyMeter>>,
    queue: Mutex<std::slice::Iter<'a, (usize, (usize, Strategy))>>,
    done: Mutex<Vec<(usize, RunRecord)>>,
    failed: Mutex<Option<TransferError>>,
    trained: AtomicUsize,
    stopped: AtomicBool,
}

impl<'a, B: Backbone<F> + Sync, const F: usize> Workers<'a, B, F> {
    fn new(
        cfg: &'a SweepConfig,
        pretrained: &'a B,
        groups: &'a [Group],
        test: &'a TestSplit,
        bar: &'a indicatif::ProgressBar,
        todo: &'a [(usize, (usize, Strategy))],
    ) -> Self {
        let jobs = cfg.jobs.clamp(1, todo.len().max(1));
        Workers {
            cfg,
            training: TrainOptions {
                stop_on_interrupt: true,
                ..cfg.training.clone()
            },
            pretrained,
            groups,
            test,
            bar,
            jobs,
            threads_per_job: (default_jobs() / jobs).max(1),
            meter: Mutex::new(if jobs == 1 {
                EnergyMeter::start()
            } else {
                None
            }),
            queue: Mutex::new(todo.iter()),
            done: Mutex::new(Vec::with_capacity(todo.len())),
            failed: Mutex::new(None),
            trained: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
        }
    }

    /// Runs the queue on `jobs` threads (this one included) and collects what finished.
    fn run_all(self) -> Result<Finished, TransferError> {
        std::thread::scope(|s| {
            let handles: Vec<_> = (1..self.jobs).map(|_| s.spawn(|| self.work())).collect();
            let mine = self.work();
            for h in handles {
                if let Ok(Err(e)) | Err(e) = h
                    .join()
                    .map_err(|_| TransferError::Config("a sweep worker thread panicked".into()))
                {
                    lock(&self.failed).get_or_insert(e);
                }
            }
            if let Err(e) = mine {
                lock(&self.failed).get_or_insert(e);
            }
        });
        if let Some(e) = self.failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
            self.bar.abandon();
            return Err(e);
        }
        Ok(Finished {
            done: self.done.into_inner().unwrap_or_else(|e| e.into_inner()),
            stopped: self.stopped.load(Ordering::SeqCst),
        })
    }

    /// Ctrl-C (or `stop_after`): no new run starts, runs in progress stop between steps and
    /// are dropped, the finished ones go into a partial report.
    fn stop_now(&self) -> bool {
        crate::interrupt::requested()
            || self
                .cfg
                .stop_after
                .is_some_and(|n| self.trained.load(Ordering::SeqCst) >= n)
    }

    /// One worker: takes runs from the queue until it is empty, another worker failed, or
    /// the sweep is stopped.
    fn work(&self) -> Result<(), TransferError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.threads_per_job)
            .build()
            .map_err(|e| {
                TransferError::Config(format!("cannot start a worker thread pool: {e}"))
            })?;
        loop {
            if lock(&self.failed).is_some() {
                return Ok(());
            }
            if self.stop_now() {
                self.stopped.store(true, Ordering::SeqCst);
                return Ok(());
            }
            let Some(&(index, (g, strategy))) = lock(&self.queue).next() else {
                return Ok(());
            };
            let record = pool.install(|| self.run_one(&self.groups[g], strategy));
            match record {
                Ok(r) => {
                    lock(&self.done).push((index, r));
                    self.trained.fetch_add(1, Ordering::SeqCst);
                }
                Err(TransferError::Interrupted { .. }) => {
                    self.stopped.store(true, Ordering::SeqCst);
                    return Ok(());
                }
                Err(e) => {
                    lock(&self.failed).get_or_insert(e);
                    return Ok(());
                }
            }
        }
    }

    /// Trains one (group, strategy) run and evaluates it on the test split, once. `scratch`
    /// trains the protocol's own baseline network when it has one (the ImageNet protocols'
    /// `convnet`), every other strategy reuses the pretrained `B`.
    fn run_one(&self, group: &Group, strategy: Strategy) -> Result<RunRecord, TransferError> {
        self.bar.set_message(format!(
            "{strategy} k={} seed={}",
            group.k.map_or("all".into(), |k| k.to_string()),
            group.seed
        ));
        match self.cfg.protocol.scratch_network() {
            Some(NetworkKind::Convnet) if strategy == Strategy::Scratch => {
                // Scratch ignores the pretrained weights: any convnet stands in for them.
                let unused = ConvnetBackbone::build(&dfdx::tensor::Cpu::seed_from_u64(0));
                self.train_and_test::<ConvnetBackbone, CONVNET_FEATURES>(group, strategy, &unused)
            }
            _ => self.train_and_test::<B, F>(group, strategy, self.pretrained),
        }
    }

    /// [`Self::run_one`] with the network `N` that trains.
    fn train_and_test<N: Backbone<G>, const G: usize>(
        &self,
        group: &Group,
        strategy: Strategy,
        pretrained: &N,
    ) -> Result<RunRecord, TransferError> {
        let k = group.k;
        if let Some(m) = lock(&self.meter).as_mut() {
            // Restart the count: only the run's own energy is attributed to it.
            let _ = m.joules_since_start();
        }
        // Ten points over the run: the network's own schedule (a short one for a large
        // pretrained backbone).
        let steps = Schedule::training_default(group.train.len(), N::MIN_TRAIN_STEPS).steps;
        let monitor = (!group.monitor.is_empty()).then_some(Monitor {
            data: &group.monitor,
            every: (steps / 10).max(1),
        });
        let run = run_strategy_with::<N, G>(
            strategy,
            pretrained,
            &group.train,
            group.seed,
            monitor,
            &self.training,
        )?;
        let (joules, source) = energy::joules_or_estimate(lock(&self.meter).as_mut(), run.flops);
        let accuracy = self.test.evaluate(&run.model)?;
        tracing::info!(%strategy, ?k, seed = group.seed, accuracy, "run finished");
        self.bar.inc(1);
        Ok(RunRecord {
            protocol: self.cfg.protocol.name().into(),
            network: N::NAME.into(),
            strategy: strategy.to_string(),
            k,
            seed: group.seed,
            accuracy,
            wall_seconds: run.wall_seconds,
            flops: run.flops,
            joules,
            energy_source: source,
            co2_grams: energy::co2_grams(joules, self.cfg.grid_g_per_kwh),
            curve: run.curve,
            head_device: run.head_device,
            trained_params: Some(run.trained_params),
        })
    }
}

/// Locks a mutex, recovering the data if another worker panicked while holding it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A report folder's name: `YYYYMMDD-HHMMSS-<protocol>` in UTC, from the system clock.
pub fn run_id(protocol: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_folders_made_in_the_same_second_are_distinct() {
        let runs = std::env::temp_dir().join(format!("graft-run-dirs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&runs);
        // Eight threads at once, as eight sweeps finishing together.
        let dirs: Vec<PathBuf> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| create_run_dir(&runs, "animals").unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let unique: HashSet<&PathBuf> = dirs.iter().collect();
        assert_eq!(unique.len(), 8, "{dirs:?}");
        assert!(dirs.iter().all(|d| d.is_dir() && d.starts_with(&runs)));
        // An unwritable runs location is an error naming it, found before any training.
        let file = runs.join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let e = create_run_dir(&file, "animals").unwrap_err().to_string();
        assert!(e.contains("a-file"), "{e}");
        std::fs::remove_dir_all(&runs).unwrap();
    }
}
