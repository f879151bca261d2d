//! The `fortunes` sweep: every text strategy at every label budget over seeds, reported
//! through graft-transfer's report (table, JSON, Markdown, CSV, plot, paired differences).

use std::path::{Path, PathBuf};
use std::time::Instant;

use graft_data::{FeatureCache, TextView};
use graft_transfer::energy::{co2_grams, joules_or_estimate};
use graft_transfer::pretrain::{PretrainConfig, PretrainInfo};
use graft_transfer::report::{self, Report, RunRecord};
use graft_transfer::train::CurvePoint;

use crate::bow::{dense_row, BagOfWords, SparseRow, DEFAULT_BUCKETS};
use crate::finetune::{fine_tune, FineTuneConfig, FrozenStates};
use crate::head::{HeadConfig, LinearHead};
use crate::minilm::{MiniLm, MODEL_NAME};
use crate::monitor::{CurveRecorder, MonitorSet, CURVE_POINTS, MONITOR_PER_CLASS};
use crate::peft::{train_peft, EmbeddingSums, PeftConfig};
use crate::strategy::TextStrategy;
use crate::TextError;

/// Everything a text sweep needs.
#[derive(Debug, Clone)]
pub struct TextSweepConfig {
    /// Label budgets per class.
    pub ks: Vec<usize>,
    /// Seeds (k-shot draw, head initialisation, batch order).
    pub seeds: Vec<u64>,
    /// Strategies, run in this order for every (k, seed).
    pub strategies: Vec<TextStrategy>,
    /// Folder with the fortune files.
    pub fortunes_dir: PathBuf,
    /// MiniLM's folder.
    pub model_dir: PathBuf,
    /// Imported data sets and cached embeddings.
    pub cache_dir: PathBuf,
    /// Receives `<run id>/report.*`.
    pub runs_dir: PathBuf,
    /// Grid carbon intensity, g/kWh.
    pub grid_g_per_kwh: f64,
    /// Head training of `scratch` and `linear-probe` (and the probe of `lp-ft`).
    pub head: HeadConfig,
    /// Fine-tuning settings (`fine-tune`, `lp-ft`).
    pub fine_tune: FineTuneConfig,
    /// Top blocks trained by `fine-tune` and `lp-ft`.
    pub trained_blocks: usize,
    /// Texts per batch when embedding.
    pub embed_batch: usize,
    /// Training of `lora` and `bitfit`.
    pub peft: PeftConfig,
    /// The projections `lora` adapts in every block.
    pub lora_targets: Vec<crate::bert::Proj>,
    /// Dropout on the adapters' input.
    pub lora_dropout: f32,
}

impl TextSweepConfig {
    /// PROTOCOLS.md's defaults: k in {5, 10, 25, 100}, seeds 0..5, every strategy, data and
    /// model where `cargo xtask fetch` puts them under `root`.
    pub fn fortunes_defaults(root: &Path) -> Self {
        let cache = root.join("runs/cache");
        Self {
            ks: vec![5, 10, 25, 100],
            seeds: (0..5).collect(),
            strategies: TextStrategy::ALL.to_vec(),
            fortunes_dir: crate::fortunes::default_dir(&cache),
            model_dir: crate::minilm::default_model_dir(root),
            cache_dir: cache,
            runs_dir: root.join("runs"),
            grid_g_per_kwh: graft_transfer::energy::DEFAULT_GRID_G_PER_KWH,
            head: HeadConfig::default(),
            fine_tune: FineTuneConfig::default(),
            trained_blocks: 1,
            embed_batch: 64,
            peft: PeftConfig::default(),
            lora_targets: vec![crate::bert::Proj::Query, crate::bert::Proj::Value],
            lora_dropout: 0.1,
        }
    }
}

/// A finished sweep.
#[derive(Debug)]
pub struct TextSweepOutcome {
    /// The report (also written to `dir`).
    pub report: Report,
    /// `runs/<run id>`.
    pub dir: PathBuf,
}

/// Sentence embeddings (and, when fine-tuning, frozen states) of every record.
struct Encoded {
    embeddings: Vec<SparseRow>,
    states: Option<FrozenStates>,
    seconds: f64,
    cached: bool,
}

fn encode(
    cfg: &TextSweepConfig,
    model: &MiniLm,
    ds: &graft_data::TextDataset,
) -> Result<Encoded, TextError> {
    let texts = ds.view().texts()?;
    let d = model.dim();
    let key = crate::features::embedding_key(model, ds);
    let cache = FeatureCache::new(cfg.cache_dir.join("features"));
    let start = Instant::now();
    let bar = crate::progress::bar(texts.len() as u64, "embedding fortunes");
    let needs_states = cfg.strategies.iter().any(|s| s.trains_blocks());
    let (values, states, cached) = if needs_states {
        let from = model
            .encoder
            .layers
            .len()
            .saturating_sub(cfg.trained_blocks);
        let st = FrozenStates::compute(model, &texts, from, cfg.embed_batch, |n| {
            bar.set_position(n as u64)
        })?;
        let values: Vec<f32> = st.embeddings.concat();
        let features = graft_data::Features {
            values: values.clone(),
            labels: ds.labels().to_vec(),
            dim: d,
            class_names: ds.class_names().to_vec(),
        };
        cache.put(&key, &features)?;
        (values, Some(st), false)
    } else if let Some(hit) = cache.get(&key) {
        let v = (0..hit.len())
            .map(|i| hit.sample_f32(i))
            .collect::<Result<Vec<_>, _>>()?
            .concat();
        (v, None, true)
    } else {
        let v = model.embed_all(&texts, cfg.embed_batch, |n| bar.set_position(n as u64))?;
        let features = graft_data::Features {
            values: v.clone(),
            labels: ds.labels().to_vec(),
            dim: d,
            class_names: ds.class_names().to_vec(),
        };
        cache.put(&key, &features)?;
        (v, None, false)
    };
    bar.finish_and_clear();
    Ok(Encoded {
        embeddings: values.chunks(d).map(dense_row).collect(),
        states,
        seconds: start.elapsed().as_secs_f64(),
        cached,
    })
}

/// The test split, read only through [`TestSplit::evaluate`], which counts the reads.
struct TestSplit {
    ids: Vec<usize>,
    labels: Vec<u32>,
    reads: usize,
}

impl TestSplit {
    fn evaluate(
        &mut self,
        predict: impl FnOnce(&[usize]) -> Result<Vec<usize>, TextError>,
    ) -> Result<f64, TextError> {
        self.reads += 1;
        let pred = predict(&self.ids)?;
        let hits = pred
            .iter()
            .zip(&self.labels)
            .filter(|(p, &l)| **p == l as usize)
            .count();
        Ok(hits as f64 / self.ids.len().max(1) as f64)
    }
}

/// One trained run's outcome before evaluation.
struct Trained {
    /// Training seconds (monitor evaluations excluded).
    seconds: f64,
    flops: f64,
    curve: Vec<CurvePoint>,
}

/// What one run trains on and is monitored with.
struct Run<'v, 'a> {
    shot: &'v TextView<'a>,
    monitor: &'v MonitorSet,
    classes: usize,
    seed: u64,
}

/// Runs the `fortunes` sweep and writes its report.
pub fn run_fortunes_sweep(cfg: &TextSweepConfig) -> Result<TextSweepOutcome, TextError> {
    check_sweep(cfg)?;
    let ds = crate::fortunes::open(&cfg.fortunes_dir, &cfg.cache_dir)?;
    let (pool, test_view) = crate::fortunes::pool_and_test(&ds)?;
    let classes = ds.class_names().len();
    let model = MiniLm::open(&cfg.model_dir)?;
    let enc = encode(cfg, &model, &ds)?;
    let mut test = TestSplit {
        ids: test_view.indices().iter().map(|&i| i as usize).collect(),
        labels: test_view.labels().to_vec(),
        reads: 0,
    };
    let results = run_all(cfg, &model, &enc, &pool, classes, &mut test)?;
    let report = sweep_report(cfg, &model, &enc, &pool, &test, results);
    let dir = graft_transfer::sweep::create_run_dir(&cfg.runs_dir, "fortunes")?;
    report::write(&report, &dir)?;
    Ok(TextSweepOutcome { report, dir })
}

/// Refuses an empty grid and repeated seeds or label budgets.
fn check_sweep(cfg: &TextSweepConfig) -> Result<(), TextError> {
    if cfg.ks.is_empty() || cfg.seeds.is_empty() || cfg.strategies.is_empty() {
        return Err(TextError::Invalid(
            "a sweep needs at least one k, one seed and one strategy".into(),
        ));
    }
    use graft_transfer::sweep::check_distinct;
    check_distinct("--seeds", "seed", &cfg.seeds, |s| s.to_string())?;
    check_distinct("--k", "label budget", &cfg.ks, |k| k.to_string())?;
    Ok(())
}

/// Every strategy at every (k, seed), k outermost: one record per run.
fn run_all(
    cfg: &TextSweepConfig,
    model: &MiniLm,
    enc: &Encoded,
    pool: &TextView<'_>,
    classes: usize,
    test: &mut TestSplit,
) -> Result<Vec<RunRecord>, TextError> {
    let mut results = Vec::new();
    for &k in &cfg.ks {
        for &seed in &cfg.seeds {
            let shot = pool.k_shot(k, seed)?;
            let monitor = MonitorSet::new(pool, &shot, MONITOR_PER_CLASS);
            let mut probe: Option<LinearHead> = None;
            for &strategy in &cfg.strategies {
                let run = Run {
                    shot: &shot,
                    monitor: &monitor,
                    classes,
                    seed,
                };
                let (trained, accuracy) =
                    run_one(cfg, model, enc, &run, strategy, &mut probe, test)?;
                tracing::info!(strategy = %strategy.name(), k, seed, accuracy, "run done");
                results.push(run_record(cfg, strategy, k, seed, trained, accuracy));
            }
        }
    }
    Ok(results)
}

/// The report's record of one run (energy estimated from its FLOPs).
fn run_record(
    cfg: &TextSweepConfig,
    strategy: TextStrategy,
    k: usize,
    seed: u64,
    trained: Trained,
    accuracy: f64,
) -> RunRecord {
    let (joules, energy_source) = joules_or_estimate(None, trained.flops);
    RunRecord {
        protocol: "fortunes".into(),
        network: MODEL_NAME.into(),
        strategy: strategy.name(),
        k: Some(k),
        seed,
        accuracy,
        wall_seconds: trained.seconds,
        flops: trained.flops,
        joules,
        energy_source,
        co2_grams: co2_grams(joules, cfg.grid_g_per_kwh),
        curve: trained.curve,
        head_device: "cpu".into(),
        trained_params: None,
    }
}

/// The sweep's report: its runs, their summary and verdicts, and how the embeddings were
/// made.
fn sweep_report(
    cfg: &TextSweepConfig,
    model: &MiniLm,
    enc: &Encoded,
    pool: &TextView<'_>,
    test: &TestSplit,
    results: Vec<RunRecord>,
) -> Report {
    let summary = report::summarize(&results);
    let runs_planned = results.len();
    let smallest = pool.class_counts().into_iter().min().unwrap_or(0);
    Report {
        graft_version: env!("CARGO_PKG_VERSION").into(),
        protocol: "fortunes".into(),
        network: MODEL_NAME.into(),
        rng: "SplitMix64 (graft_data::SplitMix64), seeded with the run's seed".into(),
        seeds: cfg.seeds.clone(),
        grid_g_per_kwh: cfg.grid_g_per_kwh,
        test_examples: test.ids.len(),
        test_evaluations: test.reads,
        monitor_per_class: MONITOR_PER_CLASS,
        all_labels_per_class: smallest,
        pretraining: PretrainInfo {
            checkpoint: model.dir.join("model.safetensors"),
            cached: enc.cached,
            wall_seconds: enc.seconds,
            flops: 0.0,
            source_examples: 0,
            config: PretrainConfig {
                epochs: 0,
                batch: cfg.embed_batch,
                lr: 0.0,
                seed: 0,
            },
            mean: 0.0,
            std: 0.0,
            source: Some(format!(
                "the pretrained encoder {MODEL_NAME} (sentence embeddings computed with it, \
                 {:.1} s{})",
                enc.seconds,
                if enc.cached {
                    ", reused from cache"
                } else {
                    ""
                }
            )),
        },
        results,
        verdicts: report::verdicts(&summary),
        summary,
        partial: false,
        runs_planned,
        training: "frozen sentence embeddings, a new linear head per run (graft-text)".into(),
        shard: None,
    }
}

/// One run's training time (monitor evaluations excluded), FLOPs and curve.
fn finish(rec: CurveRecorder, flops: f64) -> Trained {
    Trained {
        seconds: rec.seconds(),
        flops,
        curve: rec.points,
    }
}

/// Trains `strategy` on `run`'s k-shot set and evaluates it on the test split: the trained
/// run and its test accuracy. A linear probe is kept in `probe` for `lp-ft`.
fn run_one(
    cfg: &TextSweepConfig,
    model: &MiniLm,
    enc: &Encoded,
    run: &Run<'_, '_>,
    strategy: TextStrategy,
    probe: &mut Option<LinearHead>,
    test: &mut TestSplit,
) -> Result<(Trained, f64), TextError> {
    let ids: Vec<usize> = run.shot.indices().iter().map(|&i| i as usize).collect();
    let rec = CurveRecorder::new(cfg.head.steps, CURVE_POINTS);
    match strategy {
        TextStrategy::Scratch => run_scratch(cfg, run, rec, test),
        TextStrategy::LinearProbe => run_linear_probe(cfg, enc, run, &ids, rec, probe, test),
        TextStrategy::Lora { .. } | TextStrategy::BitFit => {
            run_peft(cfg, model, run, strategy, rec, test)
        }
        TextStrategy::FineTune | TextStrategy::LpFt => {
            run_fine_tune(cfg, model, enc, run, &ids, strategy, probe, rec, test)
        }
    }
}

/// `scratch`: a head on hashed bag-of-words features fitted to the k-shot texts.
fn run_scratch(
    cfg: &TextSweepConfig,
    run: &Run<'_, '_>,
    mut rec: CurveRecorder,
    test: &mut TestSplit,
) -> Result<(Trained, f64), TextError> {
    let (shot, monitor) = (run.shot, run.monitor);
    let ds = shot.dataset();
    let texts = shot.texts()?;
    let bow = BagOfWords::fit(&texts, DEFAULT_BUCKETS);
    let rows: Vec<SparseRow> = texts.iter().map(|t| bow.transform(t)).collect();
    let monitor_rows = rec.exclude(|| -> Result<Vec<SparseRow>, TextError> {
        monitor
            .ids
            .iter()
            .map(|&i| Ok(bow.transform(ds.text(i)?)))
            .collect()
    })?;
    let mut head = LinearHead::zeros(bow.dim(), run.classes);
    let flops = head.fit_observed(&rows, shot.labels(), &cfg.head, &mut |h, step, f| {
        let _ = rec.observe(step, f, || {
            let p: Vec<usize> = monitor_rows.iter().map(|r| h.predict(r)).collect();
            Ok::<_, ()>(monitor.accuracy(&p))
        });
    });
    let trained = finish(rec, flops);
    let acc = test.evaluate(|ids| {
        ids.iter()
            .map(|&i| -> Result<usize, TextError> { Ok(head.predict(&bow.transform(ds.text(i)?))) })
            .collect()
    })?;
    Ok((trained, acc))
}

/// `linear-probe`: a head on the cached sentence embeddings (kept in `probe`).
fn run_linear_probe(
    cfg: &TextSweepConfig,
    enc: &Encoded,
    run: &Run<'_, '_>,
    ids: &[usize],
    mut rec: CurveRecorder,
    probe: &mut Option<LinearHead>,
    test: &mut TestSplit,
) -> Result<(Trained, f64), TextError> {
    let labels = run.shot.labels();
    let (head, flops) = train_probe(cfg, enc, ids, labels, run.classes, run.monitor, &mut rec);
    *probe = Some(head.clone());
    let trained = finish(rec, flops);
    let acc = test.evaluate(|ids| {
        Ok(ids
            .iter()
            .map(|&i| head.predict(&enc.embeddings[i]))
            .collect())
    })?;
    Ok((trained, acc))
}

/// `lora` and `bitfit`: frozen weights, adapters or biases trained on the k-shot texts,
/// evaluated through the merged encoder.
fn run_peft(
    cfg: &TextSweepConfig,
    model: &MiniLm,
    run: &Run<'_, '_>,
    strategy: TextStrategy,
    mut rec: CurveRecorder,
    test: &mut TestSplit,
) -> Result<(Trained, f64), TextError> {
    let (shot, monitor) = (run.shot, run.monitor);
    let ds = shot.dataset();
    let method = strategy
        .peft_method(&cfg.lora_targets, cfg.lora_dropout)
        .ok_or_else(|| TextError::Invalid("not a parameter-efficient strategy".into()))?;
    let texts = shot.texts()?;
    let monitor_texts = rec.exclude(|| -> Result<Vec<&str>, TextError> {
        monitor.ids.iter().map(|&i| Ok(ds.text(i)?)).collect()
    })?;
    let pcfg = PeftConfig {
        seed: run.seed,
        ..cfg.peft
    };
    rec.next_phase(pcfg.steps, 0.0);
    let sums = EmbeddingSums::new(&model.encoder);
    let out = train_peft(
        model,
        &sums,
        &texts,
        shot.labels(),
        run.classes,
        method,
        &pcfg,
        &mut |net, step, f| {
            rec.observe(step, f, || {
                let p = crate::peft::predict(model, net, &monitor_texts, cfg.embed_batch)?;
                Ok(monitor.accuracy(&p))
            })
        },
    )?;
    tracing::info!(
        strategy = %strategy.name(),
        trainable = out.trainable,
        "parameter-efficient run trained"
    );
    let trained = finish(rec, out.flops);
    let acc = test.evaluate(|ids| {
        let texts = ids
            .iter()
            .map(|&i| Ok(ds.text(i)?))
            .collect::<Result<Vec<&str>, TextError>>()?;
        crate::peft::predict(model, &out.net, &texts, cfg.embed_batch)
    })?;
    Ok((trained, acc))
}

/// `fine-tune` and `lp-ft` (whose head starts from `probe`, the same (k, seed)'s linear
/// probe, when it ran): the top blocks and a head trained on the frozen states.
#[allow(clippy::too_many_arguments)]
fn run_fine_tune(
    cfg: &TextSweepConfig,
    model: &MiniLm,
    enc: &Encoded,
    run: &Run<'_, '_>,
    ids: &[usize],
    strategy: TextStrategy,
    probe: &Option<LinearHead>,
    mut rec: CurveRecorder,
    test: &mut TestSplit,
) -> Result<(Trained, f64), TextError> {
    let monitor = run.monitor;
    let states = enc.states.as_ref().ok_or_else(|| {
        TextError::Invalid("fine-tuning needs the frozen states (internal)".into())
    })?;
    let mut flops = 0.0;
    let init = if strategy == TextStrategy::LpFt {
        let (h, f) = lp_ft_probe(cfg, model, enc, run, ids, probe, &mut rec);
        flops += f;
        Some(h)
    } else {
        None
    };
    let ft_cfg = FineTuneConfig {
        seed: run.seed,
        ..cfg.fine_tune
    };
    rec.next_phase(ft_cfg.steps, flops);
    let out = fine_tune(
        model,
        states,
        ids,
        run.shot.labels(),
        run.classes,
        init.as_ref(),
        &ft_cfg,
        &mut |net, step, f| {
            rec.observe(step, f, || {
                Ok(monitor.accuracy(&net.predict(model, states, &monitor.ids)?))
            })
        },
    )?;
    let trained = finish(rec, flops + out.flops);
    let acc = test.evaluate(|ids| out.model.predict(model, states, ids))?;
    Ok((trained, acc))
}

/// `lp-ft`'s starting head and its cost: the probe of the same (k, seed) when it ran, else
/// one trained here; its cost counts towards lp-ft either way (its curve only when trained
/// here).
fn lp_ft_probe(
    cfg: &TextSweepConfig,
    model: &MiniLm,
    enc: &Encoded,
    run: &Run<'_, '_>,
    ids: &[usize],
    probe: &Option<LinearHead>,
    rec: &mut CurveRecorder,
) -> (LinearHead, f64) {
    match probe.clone() {
        Some(h) => {
            let f = train_probe_flops(cfg, ids, model.dim(), run.classes);
            (h, f)
        }
        None => {
            let labels = run.shot.labels();
            train_probe(cfg, enc, ids, labels, run.classes, run.monitor, rec)
        }
    }
}

/// A linear probe on the cached embeddings, its curve on the monitor set going to `rec`.
fn train_probe(
    cfg: &TextSweepConfig,
    enc: &Encoded,
    ids: &[usize],
    labels: &[u32],
    classes: usize,
    monitor: &MonitorSet,
    rec: &mut CurveRecorder,
) -> (LinearHead, f64) {
    let rows: Vec<SparseRow> = ids.iter().map(|&i| enc.embeddings[i].clone()).collect();
    let d = rows.first().map_or(0, Vec::len);
    let mut head = LinearHead::zeros(d, classes);
    let flops = head.fit_observed(&rows, labels, &cfg.head, &mut |h, step, f| {
        let _ = rec.observe(step, f, || {
            let p: Vec<usize> = monitor
                .ids
                .iter()
                .map(|&i| h.predict(&enc.embeddings[i]))
                .collect();
            Ok::<_, ()>(monitor.accuracy(&p))
        });
    });
    (head, flops)
}

fn train_probe_flops(cfg: &TextSweepConfig, ids: &[usize], d: usize, classes: usize) -> f64 {
    cfg.head.steps as f64
        * (4.0 * (ids.len() * d * classes) as f64 + 10.0 * ((d + 1) * classes) as f64)
}
