//! Command-line arguments, parsed into the library crates' typed configurations.
//!
//! The doc comments on arguments are clap's `--help` text, so `partial[:N]` and `<cache>`
//! are meant literally, not as rustdoc links or HTML.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};
use graft_nn::{NetworkKind, Normalization, RenameRule, RenameRules};
use graft_transfer::early_stop::EarlyStopping;
use graft_transfer::options::TrainOptions;
use graft_transfer::pretrain::PretrainConfig;
use graft_transfer::tasks::SplitChoice;

pub use crate::common::{parse_seeds, parse_split, Locations};
use graft_transfer::{LrSchedule, OptimizerConfig, Protocol, Strategy, SweepConfig};

/// graft: reuse a trained backbone on a new task, and measure what the reuse bought.
#[derive(Debug, Parser)]
#[command(name = "graft", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Pretrain a network on a protocol's source task (cached) and save its checkpoint.
    Pretrain(PretrainArgs),
    /// Reuse a checkpoint's backbone on a protocol's target task with one strategy.
    Transfer(TransferArgs),
    /// Accuracy of a checkpoint on a graft data set.
    Eval(EvalArgs),
    /// Every strategy x label budget x seed of a protocol, with a report.
    Sweep(SweepArgs),
    /// Rank candidate sources and their blocks by transferability estimates (LogME, LEEP,
    /// H-score, NCE, kNN) on a k-shot target sample, and recommend a strategy.
    Advise(crate::advise::AdviseArgs),
    /// Import and inspect data sets.
    #[command(subcommand)]
    Data(DataCommand),
    /// List usable CUDA devices, or say why there are none (exit code 0 either way).
    Devices,
    /// Sentence embeddings (MiniLM) of a text data set, written in the feature-cache format.
    Embed(crate::embed::EmbedArgs),
    /// Convert a PyTorch checkpoint (`.pth`, zip or legacy format) to safetensors, without
    /// running its pickle.
    Convert(crate::convert::ConvertArgs),
    /// The top ImageNet classes of photos through an ImageNet checkpoint (EfficientNet-Lite0).
    Predict(crate::predict::PredictArgs),
}

/// Data-set subcommands.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Convert IDX (raw or .gz), NPY, CSV or a folder of images (one subfolder per class)
    /// into a graft data set; the format is recognised from the content.
    Import(ImportArgs),
    /// Describe a graft data set.
    Inspect(InspectArgs),
    /// Recompute a graft data set's checksum.
    Verify(InspectArgs),
    /// Write the train and test parts of a data set to two files.
    Split(SplitArgs),
}

/// `graft data split`.
#[derive(Debug, Args)]
pub struct SplitArgs {
    /// A graft data set.
    pub file: PathBuf,
    /// Within each class, the j-th sample is test iff `j % MODULUS == REMAINDER`
    /// (`5:4` is Animal-MNIST's rule).
    #[arg(long, default_value = "5:4")]
    pub rule: String,
    /// Output for the train part.
    #[arg(long)]
    pub train_out: PathBuf,
    /// Output for the test part.
    #[arg(long)]
    pub test_out: PathBuf,
}

impl SplitArgs {
    /// The split rule.
    pub fn split_rule(&self) -> Result<graft_data::SplitRule> {
        let parse = |(m, r): (&str, &str)| -> Option<(usize, usize)> {
            Some((m.parse().ok()?, r.parse().ok()?))
        };
        match self.rule.split_once(':').and_then(parse) {
            Some((modulus, test_remainder)) => Ok(graft_data::SplitRule::ModuloWithinClass {
                modulus,
                test_remainder,
            }),
            None => bail!(
                "--rule `{}` must look like MODULUS:REMAINDER, e.g. 5:4",
                self.rule
            ),
        }
    }
}

/// `graft data import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Images: IDX3 (raw or gzip), NPY (u8 or f32), CSV, or a folder with one subfolder per class.
    #[arg(long)]
    pub images: PathBuf,
    /// Labels for IDX (IDX1) and NPY (an integer array) inputs.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Output graft data set (written atomically).
    #[arg(long)]
    pub out: PathBuf,
    /// CSV: the label column, by index or name.
    #[arg(long, default_value = "0")]
    pub label_column: String,
    /// CSV: the labels are class names (text), numbered in sorted order. Without it every
    /// label must be a class index (an integer).
    #[arg(long)]
    pub label_names: bool,
    /// The number of classes: labels must be below it, and classes without a sample are
    /// kept (default: the largest label + 1, every class with a sample).
    #[arg(long)]
    pub num_classes: Option<usize>,
    /// Image folders: the size images are resized to, `WIDTHxHEIGHT`.
    #[arg(long, default_value = "28x28")]
    pub size: String,
}

impl ImportArgs {
    /// graft-data's import options.
    pub fn options(&self) -> Result<graft_data::ops::ImportOptions> {
        let Some((w, h)) = self
            .size
            .split_once('x')
            .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
        else {
            bail!("--size `{}` must look like 28x28", self.size);
        };
        let max = graft_data::format::MAX_CLASSES;
        let class_names = match self.num_classes {
            Some(n) if !(1..=max).contains(&n) => {
                bail!("--num-classes {n} is out of range; give 1 to {max}")
            }
            n => n.map(|n| (0..n).map(|c| c.to_string()).collect()),
        };
        Ok(graft_data::ops::ImportOptions {
            labels: self.labels.clone(),
            class_names,
            csv: graft_data::csv::CsvOptions {
                label_column: graft_data::csv::LabelColumn::parse(&self.label_column),
                label_names: self.label_names,
                ..Default::default()
            },
            images: graft_data::images::ImageFolderOptions {
                size: (h, w), // (rows, columns) from WIDTHxHEIGHT
                ..Default::default()
            },
            ..Default::default()
        })
    }
}

/// `graft data inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A graft data set.
    pub file: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `graft pretrain`.
#[derive(Debug, Args)]
pub struct PretrainArgs {
    /// Protocol whose source task to train on.
    #[arg(long, default_value = "animals")]
    pub protocol: Protocol,
    /// Reference network (default: mlp, or efficientnet-lite0 for the imagenet-animals
    /// protocols, whose "pretraining" is the ImageNet checkpoint).
    #[arg(long)]
    pub model: Option<NetworkKind>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub loc: Locations,
    /// Output checkpoint (safetensors).
    #[arg(long)]
    pub out: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// A label budget: a number of labels per class, or `all`.
#[derive(Debug, Clone, Copy)]
pub struct LabelBudget(pub Option<usize>);

impl std::str::FromStr for LabelBudget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "all" {
            return Ok(Self(None));
        }
        match s.parse::<usize>() {
            Ok(k) if k > 0 => Ok(Self(Some(k))),
            _ => Err(format!(
                "`{s}` is not a label budget: give a positive number or `all`"
            )),
        }
    }
}

/// `graft transfer`.
#[derive(Debug, Args)]
pub struct TransferArgs {
    /// Protocol whose target task to learn.
    #[arg(long, default_value = "animals")]
    pub protocol: Protocol,
    /// Network of the checkpoint (default: mlp, or efficientnet-lite0 for the
    /// imagenet-animals protocols).
    #[arg(long)]
    pub model: Option<NetworkKind>,
    /// Pretrained checkpoint whose backbone is reused.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Strategy: scratch, linear-probe or fine-tune.
    #[arg(long, default_value = "fine-tune")]
    pub strategy: Strategy,
    /// Labels per class (a number or `all`).
    #[arg(long, default_value = "10")]
    pub k: LabelBudget,
    /// Seed of the k-shot draw, the new weights and the batch order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub loc: Locations,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub training: TrainingArgs,
    /// Where to save the trained network.
    #[arg(long)]
    pub out: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `graft eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Reference network of the checkpoint.
    #[arg(long, default_value = "mlp")]
    pub model: NetworkKind,
    /// Checkpoint (safetensors, PyTorch names).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// A graft data set (see `graft data import`).
    #[arg(long)]
    pub data: PathBuf,
    /// Keep these original labels, renumbered 0.. in the order given (e.g. `2,4`).
    #[arg(long, value_delimiter = ',')]
    pub classes: Option<Vec<u32>>,
    /// Which part to evaluate on (Animal-MNIST split rule).
    #[arg(long, default_value = "test", value_parser = parse_split)]
    pub split: SplitChoice,
    /// Strip this prefix from the checkpoint's tensor names (e.g. `model.`).
    #[arg(long)]
    pub strip_prefix: Option<String>,
    /// Rename tensors: `REGEX=REPLACEMENT` (repeatable; an empty result drops the tensor).
    #[arg(long)]
    pub rename: Vec<String>,
    /// Input mean (overrides the checkpoint's `input_mean`).
    #[arg(long)]
    pub mean: Option<f32>,
    /// Input standard deviation (overrides the checkpoint's `input_std`).
    #[arg(long)]
    pub std: Option<f32>,
    /// Print `{"accuracy": ..., "n": ...}`.
    #[arg(long)]
    pub json: bool,
}

impl EvalArgs {
    /// The rename rules given on the command line, in order: prefix strip first.
    pub fn rename_rules(&self) -> Result<RenameRules> {
        let mut rules: Vec<RenameRule> = self
            .strip_prefix
            .iter()
            .map(|p| RenameRule::StripPrefix(p.clone()))
            .collect();
        for spec in &self.rename {
            rules.push(RenameRules::regex_rule(spec)?);
        }
        Ok(RenameRules(rules))
    }

    /// The normalisation given on the command line, if any.
    pub fn normalization(&self) -> Result<Option<Normalization>> {
        match (self.mean, self.std) {
            (None, None) => Ok(None),
            (Some(mean), Some(std)) if std > 0.0 && mean.is_finite() => {
                Ok(Some(Normalization { mean, std }))
            }
            (Some(_), Some(_)) => bail!("--std must be positive and --mean finite"),
            _ => bail!("give both --mean and --std, or neither"),
        }
    }
}

/// `graft sweep`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SweepArgs {
    /// `graft sweep merge`: combine shard reports (the options below are then not used).
    #[command(subcommand)]
    pub action: Option<SweepAction>,
    /// Protocol to run.
    #[arg(long, default_value = "animals")]
    pub protocol: Protocol,
    /// Network: mlp, convnet, efficientnet-lite0 or efficientnet-lite0@224 (default: mlp,
    /// or efficientnet-lite0 for the imagenet-animals protocols).
    #[arg(long)]
    pub model: Option<NetworkKind>,
    /// Label budgets per class, comma separated (numbers or `all`).
    #[arg(long, value_delimiter = ',', default_value = "10")]
    pub k: Vec<LabelBudget>,
    /// Strategies, comma separated, or `all`: scratch, linear-probe, fine-tune, partial[:N],
    /// gradual-unfreeze, discriminative[:DECAY], l2-sp[:ALPHA:BETA], lp-ft.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "scratch,linear-probe,fine-tune"
    )]
    pub strategies: Vec<String>,
    /// Grid carbon intensity for the CO2 figures, grams per kWh.
    #[arg(long, default_value_t = graft_transfer::energy::DEFAULT_GRID_G_PER_KWH)]
    pub grid_intensity: f64,
    /// Seeds as a half-open range `a..b` or a comma-separated list.
    #[arg(long, default_value = "0..3")]
    pub seeds: String,
    /// Runs trained at once, the cores split between them (default: one per core, each
    /// single-threaded).
    #[arg(long)]
    pub jobs: Option<usize>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub optim: OptimArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub loc: Locations,
    /// Folder receiving `<run id>/report.json` and `report.md`.
    #[arg(long, default_value = "runs")]
    pub runs: PathBuf,
    /// The report folder of an interrupted sweep (Ctrl-C leaves a partial report): reuse its
    /// finished runs, train only the missing ones (same options as the first call) and
    /// complete the report there.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Train only part I of N of the runs (I counts from 0; the parts are balanced by
    /// expected cost and the same on every machine) and write a shard report; `auto` reads
    /// the part from a Slurm job array, a Kubernetes Indexed Job (with GRAFT_SHARD_COUNT) or
    /// mpirun. Combine the shards' folders with `graft sweep merge`.
    #[arg(long, value_name = "I/N|auto")]
    pub shard: Option<graft_transfer::shard::ShardChoice>,
    /// Print the whole report as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Subcommands of `graft sweep`.
#[derive(Debug, Subcommand)]
pub enum SweepAction {
    /// Combine the reports of every shard of one sweep (`graft sweep --shard`) into the
    /// report one process would have written, in a new folder under --runs.
    Merge(MergeArgs),
}

/// `graft sweep merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The shard report folders, one per shard.
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Folder receiving the merged `<run id>/report.json`, `report.md`, csv and plot.
    #[arg(long, default_value = "runs")]
    pub runs: PathBuf,
    /// Print the whole report as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

impl SweepArgs {
    /// The library's sweep configuration.
    pub fn into_config(self) -> Result<SweepConfig> {
        Ok(SweepConfig {
            protocol: self.protocol,
            network: self.model.unwrap_or(self.protocol.default_network()),
            ks: self.k.iter().map(|k| k.0).collect(),
            strategies: parse_strategies(&self.strategies)?,
            seeds: parse_seeds(&self.seeds)?,
            grid_g_per_kwh: self.grid_intensity,
            data: self.loc.dirs(),
            cache_dir: self.loc.cache,
            runs_dir: self.runs,
            pretrain: PretrainConfig::default(),
            jobs: self
                .jobs
                .unwrap_or_else(graft_transfer::sweep::default_jobs),
            training: self.optim.sweep_options(),
            resume: self.resume,
            stop_after: None,
            shard: self.shard.map(|c| c.resolve()).transpose()?,
        })
    }
}

/// Strategy ids; `all` expands to every strategy with its defaults.
pub fn parse_strategies(names: &[String]) -> Result<Vec<Strategy>> {
    let mut out = Vec::new();
    for name in names {
        if name == "all" {
            out.extend(Strategy::ALL);
        } else {
            out.push(name.parse()?);
        }
    }
    Ok(out)
}

/// How every run trains (`graft transfer` and `graft sweep`; defaults are PROTOCOLS.md's).
#[derive(Debug, Args)]
pub struct OptimArgs {
    /// Optimiser: adam, adamw[:WEIGHT_DECAY] (decoupled, default 0.01) or sgd[:MOMENTUM]
    /// (default 0.9, every learning rate x10).
    #[arg(long, default_value = "adam")]
    pub optimizer: OptimizerConfig,
    /// Learning-rate schedule: constant, cosine[:WARMUP_FRACTION] (linear warm-up, default
    /// 0.1) or one-cycle[:PCT_START] (default 0.3).
    #[arg(long, default_value = "constant")]
    pub schedule: LrSchedule,
    /// Early stopping on 20% of the labelled examples per class (from 5 per class), best
    /// weights restored: `on`, PATIENCE or PATIENCE:EVERY evaluations/steps (default 4:25).
    #[arg(long)]
    pub early_stopping: Option<EarlyStopping>,
}

impl OptimArgs {
    /// Options for the runs of a sweep: no state files (runs are short and many) and
    /// features extracted in memory (runs side by side would race on one cache entry).
    pub fn sweep_options(&self) -> TrainOptions {
        TrainOptions {
            optimizer: self.optimizer,
            lr_schedule: self.schedule,
            early_stopping: self.early_stopping,
            ..TrainOptions::default()
        }
    }
}

/// How the target network of `graft transfer` trains, and where its state goes.
#[derive(Debug, Args)]
pub struct TrainingArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub optim: OptimArgs,
    /// Folder for training-state files, written at the end, every --save-every steps and on
    /// Ctrl-C [default: <cache>/state].
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Steps between training-state saves.
    #[arg(long)]
    pub save_every: Option<usize>,
    /// Continue from a training-state file (same --k, --seed, --strategy and --optimizer).
    #[arg(long)]
    pub resume: Option<PathBuf>,
}

impl TrainingArgs {
    /// The library's options; state and linear-probe features go under `cache` by default.
    pub fn options(&self, cache: &Path) -> TrainOptions {
        TrainOptions {
            optimizer: self.optim.optimizer,
            lr_schedule: self.optim.schedule,
            early_stopping: self.optim.early_stopping,
            state_dir: Some(
                self.state_dir
                    .clone()
                    .unwrap_or_else(|| cache.join("state")),
            ),
            save_every: self.save_every.filter(|&n| n > 0),
            resume: self.resume.clone(),
            feature_cache: Some(cache.join("features")),
            stop_on_interrupt: true,
        }
    }
}
