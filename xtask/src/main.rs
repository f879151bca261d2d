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
  sweep <protocol> [graft sweep flags...]
        the full sweep of a protocol: convnet, k = 5,10,25,100,all, every strategy,
        seeds 0..5; writes runs/<id>/report.{json,md,csv} and accuracy.{png,svg}
  bench [--quick] [--peers]
        the benchmark suite (checks first, then timings): writes
        target/bench/summary.{json,md}; --quick for CI (well under 3 minutes); --peers also
        runs benches/peers/torch_peer.py with $GRAFT_PYTHON (default python3) if it has torch
  nvrtc fetch NVRTC for CUDA 13 from PyPI (pip download) into target/nvrtc and compile
        every CUDA kernel to PTX for sm_80 and sm_90 (no GPU needed)
  test  the test suite (cargo test --workspace)
  ci    what CI runs: cargo fmt --check, cargo clippy -D warnings, the test suite,
        the NVRTC kernel check and the quick benchmark suite
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
        Some("sweep") => sweep(&args[1..]),
        Some("bench") => bench(&args[1..]),
        Some("test") => test(),
        Some("nvrtc") => nvrtc(),
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
    let defaults = [
        ("--protocol", "animals"),
        ("--model", "mlp"),
        ("--k", "10"),
        ("--seeds", "0..3"),
        ("--strategies", "scratch,linear-probe,fine-tune"),
    ];
    graft(&sweep_args(&[], extra, &defaults))
}

/// `graft sweep` followed by `fixed`, each default flag not given in `extra`, then `extra`.
fn sweep_args(fixed: &[String], extra: &[String], defaults: &[(&str, &str)]) -> Vec<String> {
    let has = |flag: &str| {
        extra
            .iter()
            .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
    };
    let mut out = vec!["sweep".to_string()];
    out.extend(fixed.iter().cloned());
    for (flag, default) in defaults {
        if !has(flag) {
            out.push(flag.to_string());
            out.push(default.to_string());
        }
    }
    out.extend(extra.iter().cloned());
    out
}

/// `cargo xtask sweep <protocol>`: every strategy at every label budget over five seeds.
fn sweep(args: &[String]) -> Result<()> {
    let Some(protocol) = args.first().filter(|a| !a.starts_with('-')) else {
        bail!("usage: cargo xtask sweep <protocol> [graft sweep flags...], e.g. `cargo xtask sweep animals`");
    };
    let defaults = [
        ("--model", "convnet"),
        ("--k", "5,10,25,100,all"),
        ("--seeds", "0..5"),
        ("--strategies", "all"),
    ];
    let fixed = ["--protocol".to_string(), protocol.clone()];
    graft(&sweep_args(&fixed, &args[1..], &defaults))
}

/// Runs the release `graft` binary (built as needed) with `args`.
fn graft(args: &[String]) -> Result<()> {
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
            .args(args),
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
    test()?;
    nvrtc()?;
    bench(&["--quick".to_string()])
}

/// The NVRTC wheel for CUDA 13 on PyPI and where its libraries sit inside it.
const NVRTC_WHEEL: &str = "nvidia-cuda-nvrtc>=13,<14";
const NVRTC_WHEEL_LIB: &str = "nvidia/cu13/lib/*";

/// `cargo xtask nvrtc`: every kernel compiles to PTX for sm_80 and sm_90 with CUDA 13's
/// NVRTC, fetched from PyPI once into `target/nvrtc/` (a re-run is a no-op fetch).
fn nvrtc() -> Result<()> {
    let dir = project_root().join("target/nvrtc");
    let lib = dir.join("lib");
    if !lib.join("libnvrtc.so.13").exists() {
        let wheels = dir.join("wheel");
        let pip = format!(
            "python3 -m pip download --no-deps --only-binary=:all: -d {} '{NVRTC_WHEEL}'",
            wheels.display()
        );
        status(
            Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--only-binary=:all:",
                    "-d",
                ])
                .arg(&wheels)
                .arg(NVRTC_WHEEL),
        )
        .with_context(|| format!("cannot fetch NVRTC; run by hand: {pip}"))?;
        let wheel = std::fs::read_dir(&wheels)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "whl"))
            .with_context(|| format!("no wheel in {} after `{pip}`", wheels.display()))?;
        status(
            Command::new("unzip")
                .args(["-q", "-o", "-j"])
                .arg(&wheel)
                .arg(NVRTC_WHEEL_LIB)
                .arg("-d")
                .arg(&lib),
        )
        .context("cannot unpack the NVRTC wheel (is `unzip` installed? apt-get install unzip)")?;
    }
    let path = match std::env::var("LD_LIBRARY_PATH") {
        Ok(old) if !old.is_empty() => format!("{}:{old}", lib.display()),
        _ => lib.display().to_string(),
    };
    status(
        cargo()
            .args([
                "test",
                "-p",
                "graft-cuda",
                "--test",
                "kernels",
                "nvrtc_compiles_every_kernel",
            ])
            .args(["--", "--nocapture"])
            .env("LD_LIBRARY_PATH", path)
            .env("GRAFT_REQUIRE_NVRTC", "1"),
    )
}

/// `cargo xtask bench`: the benchmark suite, then (with `--peers`) the PyTorch peer.
fn bench(args: &[String]) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let peers = args.iter().any(|a| a == "--peers");
    if let Some(bad) = args.iter().find(|a| *a != "--quick" && *a != "--peers") {
        bail!("bench: unknown flag `{bad}`\n{USAGE}");
    }
    let mut cmd = cargo();
    cmd.args([
        "bench",
        "--package",
        "graft",
        "--bench",
        "graft_bench",
        "--",
    ]);
    if quick {
        cmd.arg("--quick");
    }
    status(&mut cmd)?;
    let summary = Path::new("target/bench/summary.json");
    let ours = std::fs::read_to_string(summary)
        .with_context(|| format!("the suite did not write {}", summary.display()))?;
    if !peers {
        return Ok(());
    }
    let python = std::env::var("GRAFT_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_torch = Command::new(&python)
        .args(["-c", "import torch; torch.set_num_threads(2)"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_torch {
        eprintln!("xtask: bench --peers: `{python}` cannot import torch; PyTorch peer skipped");
        return Ok(());
    }
    let out = Path::new("target/bench/peers.json");
    let mut py = Command::new(&python);
    py.arg("benches/peers/torch_peer.py").arg(out);
    if quick {
        py.arg("--quick");
    }
    status(&mut py)?;
    let theirs = std::fs::read_to_string(out).context("peers.json")?;
    let mut md = String::from("\n## graft vs PyTorch eager (samples/s, medians)\n\n| row | graft | PyTorch | ratio |\n|---|---:|---:|---:|\n");
    for net in ["convnet", "mlp"] {
        for row in ["train/b64", "train/b256", "infer/b256"] {
            let name = format!("{net}/{row}");
            if let (Some(a), Some(b)) = (
                row_median(&ours, &name),
                row_median(&theirs, &format!("torch/{name}")),
            ) {
                md.push_str(&format!("| {name} | {a:.1} | {b:.1} | {:.2}x |\n", a / b));
            }
        }
    }
    print!("{md}");
    let md_path = Path::new("target/bench/summary.md");
    let mut all = std::fs::read_to_string(md_path).unwrap_or_default();
    all.push_str(&md);
    std::fs::write(md_path, all).context("summary.md")?;
    Ok(())
}

/// The `median` of the row named `name` in a summary JSON (flat row objects; no JSON crate
/// in xtask).
fn row_median(json: &str, name: &str) -> Option<f64> {
    let key = format!("\"name\": \"{name}\"");
    json.split('{')
        .find(|obj| obj.contains(&key))
        .and_then(|obj| {
            let rest = &obj[obj.find("\"median\":")? + 9..];
            let end = rest.find([',', '}', '\n']).unwrap_or(rest.len());
            rest[..end].trim().parse().ok()
        })
}
