//! `graft`: the command-line front end. It parses arguments into typed configurations and
//! calls the library crates; it holds no training logic.

mod advise;
mod args;
mod common;
mod convert;
mod embed;
mod fortunes;
mod predict;
mod signals;

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use serde_json::json;

use args::{
    Cli, Command, DataCommand, EvalArgs, ImportArgs, PretrainArgs, SplitArgs, SweepAction,
    SweepArgs, TransferArgs,
};
use common::print_json;

fn main() -> ExitCode {
    unix_signals();
    signals::start();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let argv: Vec<String> = std::env::args().collect();
    let result = if fortunes::requested(&argv) {
        fortunes::run(&argv)
    } else {
        run(Cli::parse())
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            // A sweep stopped by Ctrl-C ends with the shell's status for SIGINT, after
            // saying where its finished runs were kept.
            let interrupted = matches!(
                e.downcast_ref::<graft_transfer::TransferError>(),
                Some(graft_transfer::TransferError::SweepInterrupted { .. })
            );
            if interrupted {
                ExitCode::from(130)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// A closed stdout (`graft ... | head -1`) ends graft quietly, as it ends other Unix tools,
/// instead of a panic in `println!` (Rust ignores SIGPIPE by default). A file-size limit
/// (`ulimit -f`) makes the write fail with EFBIG, which is reported as one error line and
/// whose temporary file is removed, instead of SIGXFSZ killing graft mid-write.
fn unix_signals() {
    #[cfg(unix)]
    // SAFETY: `signal` with SIG_DFL/SIG_IGN installs no handler code; it runs first in
    // `main`, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// The error and its causes on one line, leaving out causes a message already quotes.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line.replace('\n', " ")
}

/// `graft data inspect|verify --json`: a stable object.
fn summary_json(s: &graft_data::ops::Summary) -> serde_json::Value {
    json!({
        "path": s.path,
        "count": s.count,
        "sample_shape": s.shape,
        "element_type": s.element_type.name(),
        "classes": s.classes.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        "class_counts": s.classes.iter().map(|(_, c)| c).collect::<Vec<_>>(),
        "mean": s.mean_std.map(|m| m.0),
        "std": s.mean_std.map(|m| m.1),
        "provenance": s.provenance,
        "checksum": format!("{:016x}", s.checksum),
        "checksum_verified": s.checksum_verified,
    })
}

/// The folders `command` writes into, searched for its temporary files on Ctrl-C/SIGTERM.
fn record_outputs(command: &Command) {
    use signals::{outputs, parent};
    match command {
        Command::Data(DataCommand::Import(a)) => outputs([parent(&a.out)]),
        Command::Data(DataCommand::Split(a)) => {
            outputs([parent(&a.train_out), parent(&a.test_out)])
        }
        Command::Pretrain(a) => outputs([a.loc.cache.as_path(), parent(&a.out)]),
        Command::Transfer(a) => {
            outputs([a.loc.cache.as_path(), parent(&a.out)]);
            outputs(a.training.state_dir.as_deref());
        }
        Command::Advise(a) => outputs([a.loc.cache.as_path()]),
        Command::Embed(a) => outputs([a.cache.as_path(), parent(&a.out)]),
        Command::Convert(a) => outputs([parent(&a.output)]),
        Command::Sweep(SweepArgs {
            action: Some(SweepAction::Merge(m)),
            ..
        }) => outputs([m.runs.as_path()]),
        Command::Sweep(a) => outputs([a.loc.cache.as_path(), a.runs.as_path()]),
        _ => {}
    }
}

/// Runs one parsed command (`graft sweep --protocol fortunes` goes to `fortunes::run`).
fn run(cli: Cli) -> Result<()> {
    record_outputs(&cli.command);
    match cli.command {
        Command::Devices => devices(),
        Command::Data(DataCommand::Import(a)) => import(&a),
        Command::Data(DataCommand::Inspect(a)) => {
            summarize(&graft_data::ops::inspect(&a.file)?, a.json)
        }
        Command::Data(DataCommand::Verify(a)) => {
            summarize(&graft_data::ops::verify(&a.file)?, a.json)
        }
        Command::Data(DataCommand::Split(a)) => split(&a),
        Command::Pretrain(a) => pretrain(&a),
        Command::Transfer(a) => transfer(&a),
        Command::Eval(a) => eval(&a),
        Command::Advise(a) => advise::run(&a),
        Command::Embed(a) => embed::run(&a),
        Command::Convert(a) => convert::run(&a),
        Command::Predict(a) => predict::run(&a),
        Command::Sweep(SweepArgs {
            action: Some(SweepAction::Merge(m)),
            ..
        }) => {
            let (report, dir) = graft_transfer::merge::merge(&m.dirs, &m.runs)?;
            print_sweep(&report, &dir, m.json)
        }
        Command::Sweep(a) => sweep(a),
    }
}

/// `graft devices`.
fn devices() -> Result<()> {
    let devices = graft_cuda::probe();
    println!("{}", graft_cuda::describe(&devices));
    // With a device, say whether graft will use it (NVRTC, kernel self-check).
    if devices.is_ok_and(|d| !d.is_empty()) {
        println!("{}", graft_cuda::backend_choice());
    }
    Ok(())
}

/// `graft data import`.
fn import(a: &ImportArgs) -> Result<()> {
    let ds = graft_data::ops::import(&a.images, &a.out, &a.options()?)?;
    println!(
        "wrote {} ({} samples, shape {:?}, {} classes)",
        a.out.display(),
        ds.len(),
        ds.sample_shape(),
        ds.num_classes()
    );
    Ok(())
}

/// `graft data inspect|verify`: the summary as text or JSON.
fn summarize(s: &graft_data::ops::Summary, json: bool) -> Result<()> {
    if json {
        print_json(&summary_json(s))
    } else {
        print!("{s}");
        Ok(())
    }
}

/// `graft data split`.
fn split(a: &SplitArgs) -> Result<()> {
    let (train, test) =
        graft_data::ops::split(&a.file, a.split_rule()?, &a.train_out, &a.test_out)?;
    println!(
        "wrote {} ({} samples) and {} ({} samples)",
        a.train_out.display(),
        train.len(),
        a.test_out.display(),
        test.len()
    );
    Ok(())
}

/// `graft pretrain`.
fn pretrain(a: &PretrainArgs) -> Result<()> {
    let model = a.model.unwrap_or(a.protocol.default_network());
    let info =
        graft_transfer::tasks::pretrain(a.protocol, model, &a.loc.dirs(), &a.loc.cache, &a.out)?;
    if a.json {
        return print_json(&info);
    }
    println!(
        "pretrained {} on {} ({} examples): {}",
        model.name(),
        a.protocol.name(),
        info.source_examples,
        a.out.display()
    );
    Ok(())
}

/// `graft transfer`.
fn transfer(a: &TransferArgs) -> Result<()> {
    signals::stop_training_on_ctrl_c();
    let r = graft_transfer::tasks::transfer(&graft_transfer::tasks::TransferRequest {
        protocol: a.protocol,
        network: a.model.unwrap_or(a.protocol.default_network()),
        data: a.loc.dirs(),
        cache_dir: a.loc.cache.clone(),
        checkpoint: a.checkpoint.clone(),
        strategy: a.strategy,
        k: a.k.0,
        seed: a.seed,
        out: a.out.clone(),
        options: a.training.options(&a.loc.cache),
    })?;
    if a.json {
        return print_json(&r);
    }
    let on = match r.head_device.as_str() {
        "cpu" => String::new(),
        device => format!(", head trained on {device}"),
    };
    println!("{} k={:?} seed={}: test accuracy {:.1}% on {} images ({:.1} s, {:.2e} FLOPs{on}); saved {}", r.strategy, r.k, r.seed, r.accuracy * 100.0, r.n, r.wall_seconds, r.flops, r.checkpoint.display());
    Ok(())
}

/// `graft eval`.
fn eval(a: &EvalArgs) -> Result<()> {
    let norm = a.normalization()?;
    let rules = a.rename_rules()?;
    let r = graft_transfer::tasks::eval(
        a.model,
        &a.checkpoint,
        &a.data,
        a.classes.as_deref(),
        a.split,
        norm,
        &rules,
    )?;
    if a.json {
        return print_json(&r);
    }
    println!("accuracy {:.2}% on {} samples", r.accuracy * 100.0, r.n);
    Ok(())
}

/// `graft sweep` (image protocols).
fn sweep(a: SweepArgs) -> Result<()> {
    signals::stop_training_on_ctrl_c();
    let json = a.json;
    let out = graft_transfer::run_sweep(&a.into_config()?).context("sweep failed")?;
    print_sweep(&out.report, &out.dir, json)
}

/// A sweep's report on stdout: the table, the verdicts and where the report went, or JSON.
fn print_sweep(report: &graft_transfer::report::Report, dir: &Path, json: bool) -> Result<()> {
    if json {
        return print_json(report);
    }
    print!("{}", graft_transfer::report::table(report));
    if let Some(s) = &report.shard {
        println!(
            "shard {}: {} of the sweep's {} runs; merge every shard's folder with \
             `graft sweep merge`",
            s.shard,
            report.results.len(),
            s.plan.len()
        );
    }
    for v in &report.verdicts {
        println!("{v}");
    }
    let p = &report.pretraining;
    match &p.source {
        Some(source) => println!("source: {source}"),
        None => print_pretraining(p),
    }
    println!("report: {}/report.json, report.md", dir.display());
    Ok(())
}

/// The pretraining line of a sweep whose source graft trained itself.
fn print_pretraining(p: &graft_transfer::pretrain::PretrainInfo) {
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
}
