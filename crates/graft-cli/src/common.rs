//! What several commands share: where a protocol's data and caches live, the parsers of
//! seeds and splits, and JSON output.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use graft_transfer::protocol::{DataDirs, FASHION_DEB_PATH};
use graft_transfer::tasks::SplitChoice;

/// Where a protocol's data and caches live.
#[derive(Debug, Args)]
pub struct Locations {
    /// Folder with Animal-MNIST's IDX files.
    #[arg(long, default_value = "data/animal-mnist")]
    pub data: PathBuf,
    /// Folder with Fashion-MNIST's IDX files (default: where `cargo xtask fetch fashion-mnist`
    /// unpacks them, else Debian's install path /usr/share/datasets/fashion-mnist).
    #[arg(long)]
    pub fashion: Option<PathBuf>,
    /// Folder for imported data sets and pretrained checkpoints.
    #[arg(long, default_value = "runs/cache")]
    pub cache: PathBuf,
}

impl Locations {
    /// The data folders, with Fashion-MNIST's default resolved.
    pub fn dirs(&self) -> DataDirs {
        let fetched = self.cache.join("fashion-mnist").join(FASHION_DEB_PATH);
        let installed = PathBuf::from("/").join(FASHION_DEB_PATH);
        let fashion = self.fashion.clone().unwrap_or_else(|| {
            if !fetched.exists() && installed.exists() {
                installed
            } else {
                fetched
            }
        });
        DataDirs {
            animal_mnist: self.data.clone(),
            fashion_mnist: fashion,
        }
    }
}

/// `train`, `test` or `all`: which split of a data set a command reads.
pub fn parse_split(s: &str) -> Result<SplitChoice, String> {
    match s {
        "train" => Ok(SplitChoice::Train),
        "test" => Ok(SplitChoice::Test),
        "all" => Ok(SplitChoice::All),
        other => Err(format!("`{other}`: expected train, test or all")),
    }
}

/// `a..b` (half-open) or `a,b,c`.
pub fn parse_seeds(s: &str) -> Result<Vec<u64>> {
    let seeds: Vec<u64> = if let Some((a, b)) = s.split_once("..") {
        let (a, b): (u64, u64) = (a.trim().parse()?, b.trim().parse()?);
        (a..b).collect()
    } else {
        s.split(',')
            .map(|x| x.trim().parse())
            .collect::<Result<_, _>>()?
    };
    if seeds.is_empty() {
        bail!("--seeds `{s}` names no seed (ranges are half-open: 0..3 is 0, 1, 2)");
    }
    Ok(seeds)
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
