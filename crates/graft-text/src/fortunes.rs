//! The `fortunes` protocol's data (PROTOCOLS.md): six files of Debian's `fortunes` package,
//! one class each, imported once into a cached text data set; within each class the j-th
//! entry is test if `j % 5 == 4`.

use std::path::{Path, PathBuf};

use graft_data::text::import_class_files;
use graft_data::{Part, SplitRule, TextDataset, TextView};

use crate::TextError;

/// The classes, labels 0..5 in this order (file names under [`DEB_PATH`]).
pub const CLASSES: [&str; 6] = ["computers", "food", "law", "love", "politics", "sports"];
/// Where the files sit inside the unpacked package (or a system-wide install under `/`).
pub const DEB_PATH: &str = "usr/share/games/fortunes";
/// Where `cargo xtask fetch fortunes` unpacks the package, under the cache folder.
pub const CACHE_SUBDIR: &str = "fortunes";
/// The train/test rule.
pub const SPLIT: SplitRule = SplitRule::ModuloWithinClass {
    modulus: 5,
    test_remainder: 4,
};

/// The folder holding the fortune files: `<cache>/fortunes/usr/share/games/fortunes` when
/// fetched there, else the system's `/usr/share/games/fortunes` when installed.
pub fn default_dir(cache: &Path) -> PathBuf {
    let fetched = cache.join(CACHE_SUBDIR).join(DEB_PATH);
    let installed = Path::new("/").join(DEB_PATH);
    if !fetched.join(CLASSES[0]).exists() && installed.join(CLASSES[0]).exists() {
        installed
    } else {
        fetched
    }
}

/// Imports the six class files of `dir` into `<cache>/fortunes-<hash>.grafttx` (once per
/// content) and opens it.
pub fn open(dir: &Path, cache: &Path) -> Result<TextDataset, TextError> {
    let files: Vec<PathBuf> = CLASSES.iter().map(|c| dir.join(c)).collect();
    let mut parts = Vec::new();
    for f in &files {
        if !f.exists() {
            return Err(TextError::Invalid(format!(
                "{} not found: run `cargo xtask fetch fortunes` (or `apt-get download fortunes` and `dpkg -x fortunes_*.deb {}`)",
                f.display(),
                cache.join(CACHE_SUBDIR).display()
            )));
        }
        parts.push(std::fs::read(f).map_err(TextError::io("read", f))?);
    }
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let hash = graft_data::checksum::fnv1a64(&refs);
    std::fs::create_dir_all(cache).map_err(TextError::io("create", cache))?;
    let out = cache.join(format!("fortunes-{hash:016x}.grafttx"));
    if let Ok(ds) = TextDataset::open(&out) {
        if ds.verify_checksum().is_ok() {
            return Ok(ds);
        }
    }
    let counts = import_class_files(
        &files,
        &out,
        &format!(
            "Debian package fortunes, {} (BSD licence); files {}",
            dir.display(),
            CLASSES.join(", ")
        ),
    )?;
    tracing::info!(path = %out.display(), ?counts, "imported fortunes");
    Ok(TextDataset::open(&out)?)
}

/// The target pool (train part) and the test split of the protocol.
pub fn pool_and_test(ds: &TextDataset) -> Result<(TextView<'_>, TextView<'_>), TextError> {
    let all = ds.view();
    Ok((
        all.split(SPLIT, Part::Train)?,
        all.split(SPLIT, Part::Test)?,
    ))
}
