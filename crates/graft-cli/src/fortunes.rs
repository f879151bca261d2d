//! `graft sweep --protocol fortunes`: the text protocol (graft-text), parsed apart from the
//! image protocols' `graft sweep` because its model and strategies differ.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use graft_text::TextSweepConfig;

/// Whether `argv` asks for `graft sweep --protocol fortunes`.
pub fn requested(argv: &[String]) -> bool {
    argv.get(1).is_some_and(|a| a == "sweep")
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
    /// Strategies, comma separated, or `all`: scratch, linear-probe, fine-tune, lp-ft.
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

/// Runs the sweep `argv` describes.
pub fn run(argv: &[String]) -> Result<()> {
    let FortunesCommand::Sweep(a) = FortunesCli::parse_from(argv).command;
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
    cfg.model_dir = match std::env::var_os("GRAFT_MINILM_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => a
            .cache
            .join("minilm")
            .join(graft_text::minilm::MODEL_SUBDIR),
    };
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
