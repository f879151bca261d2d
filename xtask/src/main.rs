//! graft's task runner (matklad's xtask pattern): `cargo xtask <task>`.
//!
//! Tasks are plain Rust that call `cargo` and the `graft` binary; no shell scripts with logic.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};

const USAGE: &str = "\
usage: cargo xtask <task> [args]

tasks:
  train [--protocol animals] [--model mlp] [graft sweep flags...]
        run a protocol end to end (default: animals, mlp, k = 10, seeds 0..3) on the
        embedded Animal-MNIST; prints the table, writes runs/<id>/report.{json,md}
  test  the test suite (cargo test --workspace)
  ci    what CI runs: cargo fmt --check, cargo clippy -D warnings, the test suite
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<()> {
    let root = project_root();
    std::env::set_current_dir(&root).with_context(|| format!("cannot enter {}", root.display()))?;
    match args.first().map(String::as_str) {
        Some("train") => train(&args[1..]),
        Some("test") => test(),
        Some("ci") => ci(),
        Some("-h" | "--help" | "help") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown task `{other}`\n{USAGE}"),
    }
}

/// The workspace root: the parent of this crate's manifest directory.
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn status(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    eprintln!("xtask: {shown}");
    let st = cmd
        .status()
        .with_context(|| format!("cannot start {shown}"))?;
    if !st.success() {
        bail!("{shown} failed ({st})");
    }
    Ok(())
}

/// `cargo xtask train`: the main job. Builds `graft` with optimisations and runs a sweep.
fn train(extra: &[String]) -> Result<()> {
    let data = Path::new("data/animal-mnist");
    if !data.join("images-idx3-ubyte.gz").exists() {
        bail!(
            "{} is missing its IDX files; restore them with `git checkout -- data/animal-mnist`",
            data.display()
        );
    }
    let mut sweep = vec!["sweep".to_string()];
    let has = |flag: &str| {
        extra
            .iter()
            .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
    };
    for (flag, default) in [
        ("--protocol", "animals"),
        ("--model", "mlp"),
        ("--k", "10"),
        ("--seeds", "0..3"),
        ("--strategies", "scratch,linear-probe,fine-tune"),
    ] {
        if !has(flag) {
            sweep.push(flag.into());
            sweep.push(default.into());
        }
    }
    sweep.extend(extra.iter().cloned());
    status(
        cargo()
            .args([
                "run",
                "--quiet",
                "--release",
                "--package",
                "graft-cli",
                "--bin",
                "graft",
                "--",
            ])
            .args(&sweep),
    )
}

fn test() -> Result<()> {
    status(cargo().args(["test", "--workspace"]))
}

fn ci() -> Result<()> {
    status(cargo().args(["fmt", "--all", "--check"]))?;
    status(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    test()
}
