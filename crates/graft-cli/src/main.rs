//! `graft`: the command-line front end. It parses arguments into typed configurations and
//! calls the library crates; it holds no training logic.

mod args;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use serde_json::json;

use args::{Cli, Command, DataCommand};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Devices => {
            println!("{}", graft_cuda::describe(&graft_cuda::probe()));
        }
        Command::Data(DataCommand::Import(a)) => {
            let ds = graft_data::import_idx(&a.images, &a.labels, &a.out, None, a.provenance())?;
            println!(
                "wrote {} ({} samples, shape {:?}, {} classes)",
                a.out.display(),
                ds.len(),
                ds.sample_shape(),
                ds.num_classes()
            );
        }
        Command::Data(DataCommand::Inspect(a)) => {
            let ds = graft_data::Dataset::open(&a.file)?;
            let m = ds.metadata();
            if a.json {
                print_json(&json!({
                    "path": a.file,
                    "count": ds.len(),
                    "sample_shape": ds.sample_shape(),
                    "element_type": ds.element_type().name(),
                    "classes": ds.class_names(),
                    "class_counts": ds.class_counts(),
                    "mean": m.mean,
                    "std": m.std,
                    "provenance": m.provenance,
                }))?;
            } else {
                println!(
                    "{}: {} samples of shape {:?} ({})",
                    a.file.display(),
                    ds.len(),
                    ds.sample_shape(),
                    ds.element_type().name()
                );
                for (name, n) in ds.class_names().iter().zip(ds.class_counts()) {
                    println!("  {name:<16} {n}");
                }
                println!("provenance: {}", m.provenance);
            }
        }
        Command::Pretrain(a) => {
            let info = graft_transfer::tasks::pretrain(
                a.protocol,
                a.model,
                &a.loc.data,
                &a.loc.cache,
                &a.out,
            )?;
            if a.json {
                print_json(&info)?;
            } else {
                println!(
                    "pretrained {} on {} ({} examples): {}",
                    a.model.name(),
                    a.protocol.name(),
                    info.source_examples,
                    a.out.display()
                );
            }
        }
        Command::Transfer(a) => {
            let r = graft_transfer::tasks::transfer(
                a.protocol,
                a.model,
                &a.loc.data,
                &a.loc.cache,
                &a.checkpoint,
                a.strategy,
                a.k.0,
                a.seed,
                &a.out,
            )?;
            if a.json {
                print_json(&r)?;
            } else {
                println!("{} k={:?} seed={}: test accuracy {:.1}% on {} images ({:.1} s, {:.2e} FLOPs); saved {}", r.strategy, r.k, r.seed, r.accuracy * 100.0, r.n, r.wall_seconds, r.flops, r.checkpoint.display());
            }
        }
        Command::Eval(a) => {
            let norm = a.normalization()?;
            let r = graft_transfer::tasks::eval(
                a.model,
                &a.checkpoint,
                &a.data,
                a.classes.as_deref(),
                a.split,
                norm,
            )?;
            if a.json {
                print_json(&r)?;
            } else {
                println!("accuracy {:.2}% on {} samples", r.accuracy * 100.0, r.n);
            }
        }
        Command::Sweep(a) => {
            let json = a.json;
            let out = graft_transfer::run_sweep(&a.into_config()?).context("sweep failed")?;
            if json {
                return print_json(&out.report);
            }
            print!("{}", graft_transfer::report::table(&out.report));
            for v in &out.report.verdicts {
                println!("{v}");
            }
            let p = &out.report.pretraining;
            println!(
                "pretraining: {} source examples, {:.2e} FLOPs{}",
                p.source_examples,
                p.flops,
                if p.cached {
                    " (cached checkpoint reused)".to_string()
                } else {
                    format!(", {:.1} s", p.wall_seconds)
                }
            );
            println!("report: {}/report.json, report.md", out.dir.display());
        }
    }
    Ok(())
}
