//! Helpers every task shares: the workspace root, running commands (cargo, the release
//! `graft`, Debian's package tools) and finding a downloaded file. Imports no other module
//! of xtask, so the task modules and `main` can all use it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The workspace root: the parent of this crate's manifest directory.
pub(crate) fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// `cargo` (the one running xtask, if known).
pub(crate) fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Runs `cmd`, echoing it to stderr; an error names it when it cannot start or fails.
pub(crate) fn status(cmd: &mut Command) -> Result<()> {
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

/// `graft sweep` followed by `fixed`, each default flag not given in `extra`, then `extra`.
pub(crate) fn sweep_args(
    fixed: &[String],
    extra: &[String],
    defaults: &[(&str, &str)],
) -> Vec<String> {
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

/// Debian package `package` (what = its name in messages), downloaded with `apt-get
/// download` (no root needed) into runs/cache/debs and unpacked with `dpkg-deb -x` into
/// `root`; errors print the commands to run by hand.
pub(crate) fn fetch_deb(package: &str, what: &str, root: &Path) -> Result<()> {
    let debs = project_root().join("runs/cache/debs");
    std::fs::create_dir_all(&debs)?;
    let by_hand = format!(
        "cd {} && apt-get download {package} && dpkg -x {package}_*.deb {}",
        debs.display(),
        root.display()
    );
    status(
        Command::new("apt-get")
            .args(["download", package])
            .current_dir(&debs),
    )
    .with_context(|| {
        format!("cannot download {what}; run `apt-get update` first, or by hand: {by_hand}")
    })?;
    let deb = find_file(&debs, &format!("{package}_"), ".deb")?;
    status(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(root))
        .with_context(|| format!("cannot unpack {}; by hand: {by_hand}", deb.display()))
}

/// Runs the release `graft` binary (built as needed) with `args`.
pub(crate) fn graft(args: &[String]) -> Result<()> {
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

/// The one file in `dir` named `<prefix>...<suffix>`.
pub(crate) fn find_file(dir: &Path, prefix: &str, suffix: &str) -> Result<PathBuf> {
    std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.starts_with(prefix) && n.ends_with(suffix)
            })
        })
        .with_context(|| format!("no {prefix}*{suffix} in {}", dir.display()))
}
