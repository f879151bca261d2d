//! `graft sweep --protocol fortunes` and `graft transfer --protocol fortunes`: the text
//! protocol (graft-text), parsed apart from the image protocols' commands because its model
//! and strategies differ.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use graft_text::TextSweepConfig;

/// Whether `argv` asks for `graft sweep|transfer --protocol fortunes`.
pub fn requested(argv: &[String]) -> bool {
    argv.get(1).is_some_and(|a| a == "sweep" || a == "transfer")
        && argv.iter().enumerate().any(|(i, a)| {
            a == "--protocol=fortunes"
                || (a == "--protocol" && argv.get(i + 1).is_some_and(|p| p == "fortunes"))
        })
}

/// `graft sweep --protocol fortunes ...`.
#[derive(Debug, Parser)]
#[command(name = "graft")]
pub struct FortunesCli {
    #[command(subcommand)]
    command: FortunesCommand,
}

#[derive(Debug, Subcommand)]
enum FortunesCommand {
    /// Every text strategy x label budget x seed of `fortunes`, with a report.
    Sweep(FortunesSweepArgs),
    /// One `lora` or `bitfit` run on a k-shot draw: the adapter folder and its head.
    Transfer(FortunesTransferArgs),
}

/// How `lora` and `bitfit` train (both commands).
#[derive(Debug, Args)]
pub struct PeftArgs {
    /// Projections of every block that `lora` adapts (PEFT's module names: query, key,
    /// value, dense = every *.dense), comma separated.
    #[arg(long, default_value = "query,value")]
    lora_targets: String,
    /// Dropout on the LoRA adapters' input.
    #[arg(long, default_value_t = 0.1)]
    lora_dropout: f32,
    /// Optimiser steps of lora and bitfit.
    #[arg(long)]
    peft_steps: Option<usize>,
    /// Learning rate of the adapters (lora) or biases and LayerNorms (bitfit).
    #[arg(long)]
    peft_lr: Option<f32>,
    /// Learning rate of the head of lora and bitfit.
    #[arg(long)]
    peft_head_lr: Option<f32>,
}

impl PeftArgs {
    fn apply(
        &self,
        peft: &mut graft_text::peft::PeftConfig,
    ) -> Result<Vec<graft_text::bert::Proj>> {
        if let Some(s) = self.peft_steps {
            peft.steps = s;
        }
        if let Some(lr) = self.peft_lr {
            peft.lr = lr;
        }
        if let Some(lr) = self.peft_head_lr {
            peft.head_lr = lr;
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            anyhow::bail!("--lora-dropout must be in [0, 1)");
        }
        Ok(graft_text::peft::parse_targets(&self.lora_targets)?)
    }
}

/// The flags of `graft transfer --protocol fortunes`.
#[derive(Debug, Args)]
pub struct FortunesTransferArgs {
    /// `fortunes`.
    #[arg(long)]
    protocol: String,
    /// The pretrained text model (only `minilm`).
    #[arg(long, default_value = "minilm")]
    model: String,
    /// `lora[:RANK[:ALPHA]]` (default rank 8, alpha twice the rank) or `bitfit`.
    #[arg(long)]
    strategy: String,
    /// Labelled texts per class.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Seed of the k-shot draw and of training.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Folder receiving the adapter (adapter_config.json and adapter_model.safetensors, as
    /// Hugging Face PEFT writes them, the head included) or bitfit_model.safetensors, and
    /// transfer.json.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    peft: PeftArgs,
    /// Folder with the fortune files (default: where `cargo xtask fetch fortunes` puts them).
    #[arg(long)]
    fortunes: Option<PathBuf>,
    /// Folder for the fetched model and imported data.
    #[arg(long, default_value = "runs/cache")]
    cache: PathBuf,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

/// The flags of the `fortunes` sweep.
#[derive(Debug, Args)]
pub struct FortunesSweepArgs {
    /// `fortunes`.
    #[arg(long)]
    protocol: String,
    /// The pretrained text model (only `minilm`).
    #[arg(long, default_value = "minilm")]
    model: String,
    /// Label budgets per class, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "10")]
    k: Vec<usize>,
    /// Strategies, comma separated, or `all`: scratch, linear-probe, fine-tune, lp-ft
    /// (`all` is these four), lora[:RANK[:ALPHA]], bitfit.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "scratch,linear-probe,fine-tune"
    )]
    strategies: Vec<String>,
    /// Seeds as a half-open range `a..b` or a comma-separated list.
    #[arg(long, default_value = "0..3")]
    seeds: String,
    /// Top MiniLM blocks trained by fine-tune and lp-ft.
    #[arg(long, default_value_t = 1)]
    fine_tune_blocks: usize,
    /// Optimiser steps of fine-tune and lp-ft.
    #[arg(long)]
    fine_tune_steps: Option<usize>,
    #[command(flatten)]
    peft: PeftArgs,
    /// Grid carbon intensity for the CO2 figures, grams per kWh.
    #[arg(long, default_value_t = graft_transfer::energy::DEFAULT_GRID_G_PER_KWH)]
    grid_intensity: f64,
    /// Folder with the fortune files (default: where `cargo xtask fetch fortunes` puts them).
    #[arg(long)]
    fortunes: Option<PathBuf>,
    /// Folder for the fetched model, imported data and cached embeddings.
    #[arg(long, default_value = "runs/cache")]
    cache: PathBuf,
    /// Folder receiving `<run id>/report.*`.
    #[arg(long, default_value = "runs")]
    runs: PathBuf,
    /// Print the whole report as JSON instead of the table.
    #[arg(long)]
    json: bool,
}

fn model_dir(cache: &std::path::Path) -> PathBuf {
    match std::env::var_os("GRAFT_MINILM_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => cache.join("minilm").join(graft_text::minilm::MODEL_SUBDIR),
    }
}

/// Runs the command `argv` describes.
pub fn run(argv: &[String]) -> Result<()> {
    let a = match FortunesCli::parse_from(argv).command {
        FortunesCommand::Sweep(a) => a,
        FortunesCommand::Transfer(a) => return transfer(a),
    };
    if a.model != graft_text::minilm::MODEL_NAME {
        anyhow::bail!("--model {}: the fortunes protocol runs `minilm`", a.model);
    }
    let mut cfg = TextSweepConfig::fortunes_defaults(std::path::Path::new("."));
    cfg.ks = a.k;
    cfg.seeds = crate::args::parse_seeds(&a.seeds)?;
    cfg.strategies = graft_text::strategy::parse_list(&a.strategies)?;
    cfg.fortunes_dir = a
        .fortunes
        .unwrap_or_else(|| graft_text::fortunes::default_dir(&a.cache));
    cfg.model_dir = model_dir(&a.cache);
    cfg.lora_targets = a.peft.apply(&mut cfg.peft)?;
    cfg.lora_dropout = a.peft.lora_dropout;
    cfg.cache_dir = a.cache;
    cfg.runs_dir = a.runs;
    cfg.grid_g_per_kwh = a.grid_intensity;
    cfg.trained_blocks = a.fine_tune_blocks;
    if let Some(steps) = a.fine_tune_steps {
        cfg.fine_tune.steps = steps;
    }
    let out = graft_text::run_fortunes_sweep(&cfg).context("fortunes sweep failed")?;
    if a.json {
        return crate::print_json(&out.report);
    }
    print!("{}", graft_transfer::report::table(&out.report));
    for v in &out.report.verdicts {
        println!("{v}");
    }
    println!(
        "report: {}/report.json, report.md, report.csv, accuracy.png",
        out.dir.display()
    );
    Ok(())
}

/// `graft transfer --protocol fortunes`.
fn transfer(a: FortunesTransferArgs) -> Result<()> {
    if a.protocol != "fortunes" || a.model != graft_text::minilm::MODEL_NAME {
        anyhow::bail!("--protocol fortunes runs --model minilm");
    }
    let strategy: graft_text::TextStrategy = a.strategy.parse()?;
    let mut peft = graft_text::peft::PeftConfig::default();
    let lora_targets = a.peft.apply(&mut peft)?;
    let cfg = graft_text::transfer::TextTransferConfig {
        strategy,
        k: a.k,
        seed: a.seed,
        fortunes_dir: a
            .fortunes
            .unwrap_or_else(|| graft_text::fortunes::default_dir(&a.cache)),
        model_dir: model_dir(&a.cache),
        cache_dir: a.cache,
        out: a.out,
        peft,
        lora_targets,
        lora_dropout: a.peft.lora_dropout,
        embed_batch: 64,
    };
    let out = graft_text::transfer::transfer_fortunes(&cfg).context("fortunes transfer failed")?;
    if a.json {
        return crate::print_json(&out);
    }
    println!(
        "{} k={} seed={}: test accuracy {:.4} on {} texts; {} of {} parameters trained ({:.3} %); \
         {} bytes written to {} ({:.1} s training)",
        out.strategy,
        cfg.k,
        cfg.seed,
        out.accuracy,
        out.test_examples,
        out.trainable_parameters,
        out.total_parameters,
        100.0 * out.trainable_parameters as f64 / out.total_parameters as f64,
        out.stored_bytes,
        out.out.display(),
        out.train_seconds
    );
    Ok(())
}
