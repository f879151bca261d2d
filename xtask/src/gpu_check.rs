//! `cargo xtask gpu-check`: graft-cuda's GPU checks as a bundle of prebuilt binaries.
//!
//! The GPU machines graft is checked on have CUDA but no Rust, so everything is built here
//! (release, stripped) into one folder with this runner, and `gpu-check-bundle` runs it
//! anywhere from the repository root: graft-cuda's tests (their CUDA variants run where a
//! device is), the `gpu_check` example's JSON report, and with a GPU the `animals` linear
//! probe through `graft transfer` on the GPU and with CUDA hidden.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::usage::USAGE;
use crate::util::{cargo, project_root, status};

/// Where `gpu-check` writes the bundle, relative to the repository root.
const BUNDLE: &str = "target/gpu-check/bundle";

/// `cargo xtask gpu-check [--out FILE]`: builds the bundle, then runs it here.
pub(crate) fn gpu_check(args: &[String]) -> Result<()> {
    let out = match args {
        [] => project_root().join("target/gpu-check/gpu_check.json"),
        [flag, file] if flag == "--out" => PathBuf::from(file),
        _ => bail!("gpu-check: expected nothing or `--out FILE`\n{}", USAGE),
    };
    let bundle = project_root().join(BUNDLE);
    build_bundle(&bundle)?;
    run_bundle(&bundle, &out)?;
    println!(
        "gpu-check: on a GPU machine without Rust, carry {BUNDLE} and run from the repository \
         root: {BUNDLE}/xtask gpu-check-bundle {BUNDLE} --out <FILE>"
    );
    Ok(())
}

/// `xtask gpu-check-bundle DIR --out FILE`: runs a bundle without cargo.
pub(crate) fn run_bundle_cmd(args: &[String]) -> Result<()> {
    match args {
        [dir, flag, file] if flag == "--out" => run_bundle(Path::new(dir), Path::new(file)),
        _ => bail!("gpu-check-bundle: expected `DIR --out FILE`\n{}", USAGE),
    }
}

/// Builds graft-cuda's release tests, the `gpu_check` example and `graft`, and copies them
/// (stripped) with this runner and an `animals` mlp source checkpoint into `bundle`.
fn build_bundle(bundle: &Path) -> Result<()> {
    status(cargo().args(["build", "--release", "-p", "graft-cli"]))?;
    status(cargo().args([
        "build",
        "--release",
        "-p",
        "graft-cuda",
        "--example",
        "gpu_check",
    ]))?;
    let mut tests = cargo();
    tests.args(["test", "--release", "-p", "graft-cuda", "--no-run"]);
    tests.args(["--message-format", "json-render-diagnostics"]);
    eprintln!("xtask: {tests:?}");
    let built = tests.output().context("cannot run cargo test --no-run")?;
    if !built.status.success() {
        bail!("building graft-cuda's tests failed");
    }
    std::fs::create_dir_all(bundle)
        .with_context(|| format!("cannot create {}", bundle.display()))?;
    for line in String::from_utf8_lossy(&built.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        // Test harnesses only (`cargo test` also builds the examples, as plain binaries).
        let (Some(exe), Some(name), Some(true)) = (
            msg["executable"].as_str(),
            msg["target"]["name"].as_str(),
            msg["profile"]["test"].as_bool(),
        ) else {
            continue;
        };
        copy_stripped(Path::new(exe), &bundle.join(format!("test-{name}")))?;
    }
    let release = project_root().join("target/release");
    copy_stripped(
        &release.join("examples/gpu_check"),
        &bundle.join("gpu_check"),
    )?;
    copy_stripped(&release.join("graft"), &bundle.join("graft"))?;
    copy_stripped(&std::env::current_exe()?, &bundle.join("xtask"))?;
    let source = bundle.join("source.safetensors").display().to_string();
    status(Command::new(release.join("graft")).args([
        "pretrain",
        "--protocol",
        "animals",
        "--model",
        "mlp",
        "--out",
        &source,
    ]))
}

/// Copies `from` to `to` and strips its symbols (a plain copy where `strip` is missing).
fn copy_stripped(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    if Command::new("strip")
        .arg(to)
        .status()
        .map_or(true, |s| !s.success())
    {
        eprintln!("xtask: could not strip {} (kept as built)", to.display());
    }
    Ok(())
}

/// Folders holding CUDA's libraries: `$GRAFT_CUDA_LIBS` (colon separated), `cargo xtask
/// nvrtc`'s target/nvrtc/lib, CUDA's install folders, and the `lib` folders of Python's
/// `nvidia-*` wheels (where PyTorch's images keep NVRTC and cuBLAS).
fn cuda_library_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var("GRAFT_CUDA_LIBS")
        .map(|v| {
            v.split(':')
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default();
    dirs.push(project_root().join("target/nvrtc/lib"));
    dirs.push("/usr/local/cuda/lib64".into());
    dirs.push("/usr/local/cuda/targets/x86_64-linux/lib".into());
    for root in ["/opt", "/usr/local/lib", "/usr/lib"] {
        find_wheel_libs(Path::new(root), 9, &mut dirs);
    }
    dirs.retain(|d| has_cuda_library(d));
    dirs
}

/// `.../site-packages/nvidia/<name>/lib` folders under `dir`, at most `depth` levels down.
fn find_wheel_libs(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if !kind.is_dir() {
            continue;
        }
        let path = entry.path();
        let in_nvidia = path
            .parent()
            .and_then(Path::parent)
            .and_then(Path::file_name)
            .is_some_and(|n| n == "nvidia");
        if in_nvidia && entry.file_name() == "lib" {
            out.push(path);
        } else if depth > 0 {
            find_wheel_libs(&path, depth - 1, out);
        }
    }
}

fn has_cuda_library(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("libnvrtc.so") || name.starts_with("libcublas.so")
        })
    })
}

/// Runs the bundle in `bundle` from the current folder (the repository root), writing the
/// kernel report to `out` and, with a GPU, `animals_probe.json` beside it.
fn run_bundle(bundle: &Path, out: &Path) -> Result<()> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let libs = cuda_library_dirs();
    eprintln!("xtask: CUDA library folders: {libs:?}");
    let mut parts: Vec<String> = libs.iter().map(|d| d.display().to_string()).collect();
    parts.extend(
        std::env::var("LD_LIBRARY_PATH")
            .ok()
            .filter(|v| !v.is_empty()),
    );
    let library_path = parts.join(":");
    let with_libs = |cmd: &mut Command| {
        cmd.env("LD_LIBRARY_PATH", &library_path);
    };
    let mut tests: Vec<PathBuf> = std::fs::read_dir(bundle)
        .with_context(|| {
            format!(
                "no bundle at {}: run `cargo xtask gpu-check`",
                bundle.display()
            )
        })?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("test-"))
        })
        .collect();
    tests.sort();
    if tests.is_empty() {
        bail!(
            "{} holds no test binaries: run `cargo xtask gpu-check`",
            bundle.display()
        );
    }
    // Every step runs even after one fails (one device run must bring back all the
    // evidence); the failures are reported together at the end.
    let mut failures = Vec::new();
    for test in &tests {
        let mut cmd = Command::new(test);
        // The emulator tests compile kernels/*.cu from the source tree with a C++ compiler:
        // they belong to `cargo test`, not to a bundle run on another machine.
        cmd.args(["--skip", "gpu::emulator", "--nocapture"]);
        with_libs(&mut cmd);
        failures.extend(status(&mut cmd).err());
    }
    let mut check = Command::new(bundle.join("gpu_check"));
    check.arg(out);
    with_libs(&mut check);
    failures.extend(status(&mut check).err());
    println!("gpu-check: wrote {}", out.display());
    let report =
        std::fs::read_to_string(out).with_context(|| format!("cannot read {}", out.display()))?;
    if report.contains("\"device\": null") {
        println!("gpu-check: no GPU, so the animals probe comparison is skipped");
    } else {
        let probe_out = out.with_file_name("animals_probe.json");
        failures.extend(animals_probe_on_gpu_and_cpu(bundle, &probe_out, &with_libs).err());
    }
    if !failures.is_empty() {
        let list: Vec<String> = failures.iter().map(|e| format!("  - {e:#}")).collect();
        bail!(
            "{} gpu-check step(s) failed:\n{}",
            failures.len(),
            list.join("\n")
        );
    }
    Ok(())
}

/// The `animals` linear probe (mlp, k = 10, seed 0) by the bundle's `graft transfer`, once
/// with the GPU and once with CUDA hidden (`CUDA_VISIBLE_DEVICES=""`): writes both test
/// accuracies and times to `out` and fails if the GPU's is more than half a point lower.
fn animals_probe_on_gpu_and_cpu(
    bundle: &Path,
    out: &Path,
    with_libs: &dyn Fn(&mut Command),
) -> Result<()> {
    let run = |args: &[&str], hide_cuda: bool| -> Result<String> {
        let mut cmd = Command::new(bundle.join("graft"));
        cmd.args(args);
        with_libs(&mut cmd);
        if hide_cuda {
            cmd.env("CUDA_VISIBLE_DEVICES", "");
        }
        let shown = format!("{cmd:?}");
        eprintln!("xtask: {shown}");
        let o = cmd
            .output()
            .with_context(|| format!("cannot start {shown}"))?;
        if !o.status.success() {
            bail!("{shown} failed: {}", String::from_utf8_lossy(&o.stderr));
        }
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let source = bundle.join("source.safetensors").display().to_string();
    let devices = run(&["devices"], false)?;
    let mut report = serde_json::json!({
        "protocol": "animals", "model": "mlp", "strategy": "linear-probe", "k": 10, "seed": 0,
        "devices": devices.trim(),
    });
    let mut accuracy = Vec::new();
    for (name, hide_cuda) in [("gpu", false), ("cpu", true)] {
        let model = out.with_file_name(format!("animals_probe_{name}.safetensors"));
        let model = model.display().to_string();
        let printed = run(
            &[
                "transfer",
                "--protocol",
                "animals",
                "--model",
                "mlp",
                "--checkpoint",
                &source,
                "--strategy",
                "linear-probe",
                "--k",
                "10",
                "--seed",
                "0",
                "--out",
                &model,
                "--json",
            ],
            hide_cuda,
        )?;
        let result: serde_json::Value = serde_json::from_str(&printed)
            .with_context(|| format!("graft transfer printed no JSON:\n{printed}"))?;
        let acc = result["accuracy"]
            .as_f64()
            .context("no accuracy in graft transfer's JSON")?;
        report[format!("{name}_accuracy")] = acc.into();
        report[format!("{name}_seconds")] = result["wall_seconds"].clone();
        report[format!("{name}_head_device")] = result["head_device"].clone();
        accuracy.push(acc);
    }
    let text = format!("{report}\n");
    std::fs::write(out, &text).with_context(|| format!("cannot write {}", out.display()))?;
    print!("gpu-check: {text}");
    // The comparison means something only if the first run did train on the GPU.
    let gpu_device = report["gpu_head_device"].as_str().unwrap_or("none");
    if !gpu_device.starts_with("cuda:") || report["cpu_head_device"] != "cpu" {
        bail!(
            "the probes trained on {gpu_device} and {} (want cuda:N, then cpu): see `graft devices` \
             in {} for why graft did not take the GPU",
            report["cpu_head_device"],
            out.display()
        );
    }
    if accuracy[0] < accuracy[1] - 0.005 {
        bail!(
            "the GPU probe's accuracy {} is below the CPU probe's {}",
            accuracy[0],
            accuracy[1]
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(path: &Path, body: &str) {
        std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn a_failing_step_does_not_stop_the_others() {
        let dir = std::env::temp_dir().join(format!("xtask-bundle-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        script(&dir.join("test-a-fails"), "exit 1");
        script(
            &dir.join("test-b-passes"),
            "touch \"$(dirname \"$0\")/b-ran\"",
        );
        script(
            &dir.join("gpu_check"),
            "echo '{\"device\": null, \"skipped\": \"no GPU\"}' > \"$1\"",
        );
        let out = dir.join("gpu_check.json");
        let err = run_bundle(&dir, &out).expect_err("a failed test binary fails the run");
        let msg = format!("{err:#}");
        assert!(msg.starts_with("1 gpu-check step(s) failed"), "{msg}");
        assert!(msg.contains("test-a-fails"), "{msg}");
        assert!(dir.join("b-ran").exists(), "the next test binary still ran");
        assert!(out.exists(), "the kernel report was still written");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
