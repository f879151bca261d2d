//! The named experiments of PROTOCOLS.md: which data, which classes, which split.

use std::path::{Path, PathBuf};

use graft_data::{checksum::fnv1a64, import_idx, Dataset, Part, SplitRule, View};

use crate::TransferError;

/// Animal-MNIST's class names, in label order.
pub const ANIMAL_CLASSES: [&str; 10] = [
    "Bear", "Bird", "Cat", "Cow", "Dog", "Elephant", "Giraffe", "Horse", "Sheep", "Zebra",
];

/// A named protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Source: the 8 Animal-MNIST classes other than Cat and Dog (train split);
    /// target: Cat vs Dog (train pool = their train split, test = their test split).
    Animals,
}

impl Protocol {
    /// The protocol's id.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Animals => "animals",
        }
    }

    /// Original labels of the source task's classes, in their new label order.
    pub fn source_classes(self) -> Vec<u32> {
        match self {
            Protocol::Animals => vec![0, 1, 3, 5, 6, 7, 8, 9],
        }
    }

    /// Original labels of the target task's classes, in their new label order.
    pub fn target_classes(self) -> Vec<u32> {
        match self {
            Protocol::Animals => vec![2, 4],
        }
    }

    /// The train/test rule of the protocol's data set.
    pub fn split_rule(self) -> SplitRule {
        match self {
            Protocol::Animals => SplitRule::ANIMAL_MNIST,
        }
    }

    /// Opens the protocol's data set, importing it from the IDX files in `data_dir` into
    /// `cache_dir` the first time (keyed by the IDX files' content hash).
    pub fn open_dataset(self, data_dir: &Path, cache_dir: &Path) -> Result<Dataset, TransferError> {
        match self {
            Protocol::Animals => {
                let images = data_dir.join("images-idx3-ubyte.gz");
                let labels = data_dir.join("labels-idx1-ubyte.gz");
                let key = fnv1a64(&[&read(&images)?, &read(&labels)?]);
                let out = cache_dir.join(format!("animal-mnist-{key:016x}.gds"));
                if let Ok(ds) = Dataset::open(&out) {
                    return Ok(ds);
                }
                tracing::info!("importing Animal-MNIST into {}", out.display());
                std::fs::create_dir_all(cache_dir).map_err(|source| TransferError::Io {
                    path: cache_dir.to_path_buf(),
                    source,
                })?;
                let names = ANIMAL_CLASSES.iter().map(|s| s.to_string()).collect();
                Ok(import_idx(
                    &images,
                    &labels,
                    &out,
                    Some(names),
                    "Animal-MNIST (PyPI animal-mnist 0.4, MIT)".to_string(),
                )?)
            }
        }
    }

    /// The source task's training examples.
    pub fn source_train<'a>(self, ds: &'a Dataset) -> Result<View<'a>, TransferError> {
        let all = ds.view().split(self.split_rule(), Part::Train)?;
        Ok(all.select_classes(&self.source_classes())?)
    }

    /// The target task's labelled pool (k-shot sets are drawn from it).
    pub fn target_pool<'a>(self, ds: &'a Dataset) -> Result<View<'a>, TransferError> {
        let all = ds.view().split(self.split_rule(), Part::Train)?;
        Ok(all.select_classes(&self.target_classes())?)
    }

    /// The target task's test split, touched once per run, at the end.
    pub fn target_test<'a>(self, ds: &'a Dataset) -> Result<View<'a>, TransferError> {
        let all = ds.view().split(self.split_rule(), Part::Test)?;
        Ok(all.select_classes(&self.target_classes())?)
    }
}

impl std::str::FromStr for Protocol {
    type Err = TransferError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "animals" => Ok(Protocol::Animals),
            other => Err(TransferError::Config(format!(
                "unknown protocol `{other}`: expected `animals`"
            ))),
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TransferError> {
    std::fs::read(path).map_err(|source| TransferError::Io {
        path: PathBuf::from(path),
        source,
    })
}
