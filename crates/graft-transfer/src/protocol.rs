//! The named experiments of PROTOCOLS.md: which data, which classes, which split.

use std::path::{Path, PathBuf};

use graft_data::{checksum::fnv1a64, import_idx, Dataset, Part, SplitRule, View};
use graft_nn::NetworkKind;

use crate::TransferError;

/// Animal-MNIST's class names, in label order.
pub const ANIMAL_CLASSES: [&str; 10] = [
    "Bear", "Bird", "Cat", "Cow", "Dog", "Elephant", "Giraffe", "Horse", "Sheep", "Zebra",
];

/// Fashion-MNIST's class names, in label order.
pub const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Where Debian's `dataset-fashion-mnist` puts its files, relative to the unpack root.
pub const FASHION_DEB_PATH: &str = "usr/share/datasets/fashion-mnist";

/// The command that makes Fashion-MNIST available (the project's xtask wraps
/// `apt-get download dataset-fashion-mnist` and `dpkg -x`).
pub const FASHION_FETCH: &str = "cargo xtask fetch fashion-mnist";

/// Folders holding each data set's raw IDX files.
#[derive(Debug, Clone)]
pub struct DataDirs {
    /// Animal-MNIST (`images-idx3-ubyte.gz`, `labels-idx1-ubyte.gz`).
    pub animal_mnist: PathBuf,
    /// Fashion-MNIST (`train-images-idx3-ubyte.gz`, ..., `t10k-labels-idx1-ubyte.gz`).
    pub fashion_mnist: PathBuf,
}

/// A named protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Source: the 8 Animal-MNIST classes other than Cat and Dog (train split);
    /// target: Cat vs Dog (train pool = their train split, test = their test split).
    Animals,
    /// Source: Fashion-MNIST classes 0-4 (official train); target: classes 5-9 relabelled
    /// 0-4 (pool = official train, test = official test).
    FashionSplit,
    /// Source: all of Fashion-MNIST's train set; target: all 10 Animal-MNIST classes.
    FashionToAnimals,
    /// Source: ImageNet-1k, through the pretrained EfficientNet-Lite0 (no source training);
    /// target: Cat vs Dog as in `animals`.
    ImagenetAnimals,
    /// The same source; target: all 10 Animal-MNIST classes (train split pool, test split).
    ImagenetAnimals10,
}

/// The converted ImageNet EfficientNet-Lite0 in the cache folder (`cargo xtask fetch
/// efficientnet-lite0` puts it there).
pub const IMAGENET_CHECKPOINT: &str = "efficientnet-lite0.safetensors";

/// The command that makes [`IMAGENET_CHECKPOINT`] available.
pub const IMAGENET_FETCH: &str = "cargo xtask fetch efficientnet-lite0";

/// The data sets a protocol reads: its source, its target pool and its target test split.
#[derive(Debug)]
pub struct ProtocolData {
    /// The data set the source task comes from.
    pub source: Dataset,
    /// The data set the target's labelled pool comes from.
    pub target: Dataset,
    /// The data set the target's test split comes from.
    pub test: Dataset,
}

impl Protocol {
    /// Every protocol.
    pub const ALL: [Protocol; 5] = [
        Protocol::Animals,
        Protocol::FashionSplit,
        Protocol::FashionToAnimals,
        Protocol::ImagenetAnimals,
        Protocol::ImagenetAnimals10,
    ];

    /// The protocol's id.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Animals => "animals",
            Protocol::FashionSplit => "fashion-split",
            Protocol::FashionToAnimals => "fashion-to-animals",
            Protocol::ImagenetAnimals => "imagenet-animals",
            Protocol::ImagenetAnimals10 => "imagenet-animals10",
        }
    }

    /// Whether the protocol needs Fashion-MNIST.
    pub fn needs_fashion(self) -> bool {
        matches!(self, Protocol::FashionSplit | Protocol::FashionToAnimals)
    }

    /// Whether the source is ImageNet through the pretrained checkpoint
    /// ([`IMAGENET_CHECKPOINT`]) rather than a source task graft trains on.
    pub fn is_imagenet(self) -> bool {
        matches!(
            self,
            Protocol::ImagenetAnimals | Protocol::ImagenetAnimals10
        )
    }

    /// The network a run of this protocol reuses when `--model` is not given.
    pub fn default_network(self) -> NetworkKind {
        if self.is_imagenet() {
            NetworkKind::Lite0
        } else {
            NetworkKind::Mlp
        }
    }

    /// The network `scratch` trains when it is not the reused one: the ImageNet protocols
    /// compare against the best small network from random initialisation on the 28x28
    /// images, the reference `convnet` (PROTOCOLS.md), not a 4.7M-parameter EfficientNet.
    pub fn scratch_network(self) -> Option<NetworkKind> {
        self.is_imagenet().then_some(NetworkKind::Convnet)
    }

    /// Errors when `network` cannot be reused on this protocol: the ImageNet protocols take
    /// only the ImageNet network, and graft does not pretrain that network on 28x28 images.
    pub fn check_network(self, network: NetworkKind) -> Result<(), TransferError> {
        match (self.is_imagenet(), network.is_imagenet()) {
            (true, false) => Err(TransferError::Config(format!(
                "protocol {} reuses the ImageNet EfficientNet-Lite0, not {}: use --model \
                 efficientnet-lite0 (or leave --model out)",
                self.name(),
                network.name()
            ))),
            (false, true) => Err(TransferError::Config(format!(
                "{} is reused from its ImageNet weights, not pretrained on protocol {}'s \
                 source: use --protocol imagenet-animals or imagenet-animals10",
                network.name(),
                self.name()
            ))),
            _ => Ok(()),
        }
    }

    /// Original labels of the source task's classes, in their new label order.
    pub fn source_classes(self) -> Vec<u32> {
        match self {
            Protocol::Animals => vec![0, 1, 3, 5, 6, 7, 8, 9],
            Protocol::FashionSplit => (0..5).collect(),
            Protocol::FashionToAnimals => (0..10).collect(),
            // ImageNet's 1000 classes, seen only through the checkpoint.
            Protocol::ImagenetAnimals | Protocol::ImagenetAnimals10 => Vec::new(),
        }
    }

    /// Original labels of the target task's classes, in their new label order.
    pub fn target_classes(self) -> Vec<u32> {
        match self {
            Protocol::Animals | Protocol::ImagenetAnimals => vec![2, 4],
            Protocol::FashionSplit => (5..10).collect(),
            Protocol::FashionToAnimals | Protocol::ImagenetAnimals10 => (0..10).collect(),
        }
    }

    /// Opens the protocol's data sets, importing IDX files into `cache_dir` the first time
    /// (keyed by the files' content hash).
    pub fn open(self, dirs: &DataDirs, cache_dir: &Path) -> Result<ProtocolData, TransferError> {
        let animals = || {
            let d = &dirs.animal_mnist;
            imported(
                d,
                "images-idx3-ubyte.gz",
                "labels-idx1-ubyte.gz",
                "animal-mnist",
                &ANIMAL_CLASSES,
                "Animal-MNIST (PyPI animal-mnist 0.4, MIT)",
                cache_dir,
            )
        };
        let fashion = |images: &str, labels: &str, name: &str| {
            let d = &dirs.fashion_mnist;
            if !d.join(images).is_file() {
                return Err(TransferError::Config(format!(
                    "Fashion-MNIST is not in {}: run `{FASHION_FETCH}` (or `apt-get install dataset-fashion-mnist` as root and pass --fashion /{FASHION_DEB_PATH})",
                    d.display()
                )));
            }
            imported(
                d,
                images,
                labels,
                name,
                &FASHION_CLASSES,
                "Fashion-MNIST (Debian dataset-fashion-mnist, MIT)",
                cache_dir,
            )
        };
        Ok(match self {
            // The ImageNet protocols have no source data set: `source` is the target's.
            Protocol::Animals | Protocol::ImagenetAnimals | Protocol::ImagenetAnimals10 => {
                ProtocolData {
                    source: animals()?,
                    target: animals()?,
                    test: animals()?,
                }
            }
            Protocol::FashionSplit => ProtocolData {
                source: fashion(
                    "train-images-idx3-ubyte.gz",
                    "train-labels-idx1-ubyte.gz",
                    "fashion-train",
                )?,
                target: fashion(
                    "train-images-idx3-ubyte.gz",
                    "train-labels-idx1-ubyte.gz",
                    "fashion-train",
                )?,
                test: fashion(
                    "t10k-images-idx3-ubyte.gz",
                    "t10k-labels-idx1-ubyte.gz",
                    "fashion-test",
                )?,
            },
            Protocol::FashionToAnimals => ProtocolData {
                source: fashion(
                    "train-images-idx3-ubyte.gz",
                    "train-labels-idx1-ubyte.gz",
                    "fashion-train",
                )?,
                target: animals()?,
                test: animals()?,
            },
        })
    }

    /// The source task's training examples.
    pub fn source_train(self, d: &ProtocolData) -> Result<View<'_>, TransferError> {
        if self.is_imagenet() {
            return Err(TransferError::Config(format!(
                "protocol {} has no source task to train on: its source is ImageNet, through \
                 the pretrained {IMAGENET_CHECKPOINT} (`{IMAGENET_FETCH}`)",
                self.name()
            )));
        }
        let all = match self {
            Protocol::Animals => d
                .source
                .view()
                .split(SplitRule::ANIMAL_MNIST, Part::Train)?,
            _ => d.source.view(),
        };
        Ok(all.select_classes(&self.source_classes())?)
    }

    /// The target task's labelled pool (k-shot sets are drawn from it).
    pub fn target_pool(self, d: &ProtocolData) -> Result<View<'_>, TransferError> {
        let all = match self {
            Protocol::Animals
            | Protocol::FashionToAnimals
            | Protocol::ImagenetAnimals
            | Protocol::ImagenetAnimals10 => d
                .target
                .view()
                .split(SplitRule::ANIMAL_MNIST, Part::Train)?,
            Protocol::FashionSplit => d.target.view(),
        };
        Ok(all.select_classes(&self.target_classes())?)
    }

    /// The target task's test split, touched once per run, at the end.
    pub fn target_test(self, d: &ProtocolData) -> Result<View<'_>, TransferError> {
        let all = match self {
            Protocol::Animals
            | Protocol::FashionToAnimals
            | Protocol::ImagenetAnimals
            | Protocol::ImagenetAnimals10 => {
                d.test.view().split(SplitRule::ANIMAL_MNIST, Part::Test)?
            }
            Protocol::FashionSplit => d.test.view(),
        };
        Ok(all.select_classes(&self.target_classes())?)
    }
}

impl std::str::FromStr for Protocol {
    type Err = TransferError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Protocol::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                TransferError::Config(format!(
                    "unknown protocol `{s}`: expected animals, fashion-split, fashion-to-animals, \
                     imagenet-animals or imagenet-animals10"
                ))
            })
    }
}

/// Opens `<cache>/<name>-<hash>.gds`, importing `dir/images` + `dir/labels` first if needed.
fn imported(
    dir: &Path,
    images: &str,
    labels: &str,
    name: &str,
    classes: &[&str],
    provenance: &str,
    cache_dir: &Path,
) -> Result<Dataset, TransferError> {
    let (images, labels) = (dir.join(images), dir.join(labels));
    let key = fnv1a64(&[&read(&images)?, &read(&labels)?]);
    let out = cache_dir.join(format!("{name}-{key:016x}.gds"));
    // The cached copy is used only if its checksum still holds: a damaged cache (a disk
    // error, a stray write) would otherwise feed wrong pixels to every run. Hashing it costs
    // about what reading the IDX files for the key just did.
    match Dataset::open(&out).map(|ds| ds.verify_checksum().map(|()| ds)) {
        Ok(Ok(ds)) => return Ok(ds),
        Ok(Err(e)) => tracing::warn!("{e}; importing it again"),
        Err(_) => {}
    }
    tracing::info!("importing {} into {}", images.display(), out.display());
    std::fs::create_dir_all(cache_dir).map_err(|source| TransferError::Io {
        path: cache_dir.to_path_buf(),
        source,
    })?;
    let names = classes.iter().map(|s| s.to_string()).collect();
    Ok(import_idx(
        &images,
        &labels,
        &out,
        Some(names),
        provenance.to_string(),
    )?)
}

fn read(path: &Path) -> Result<Vec<u8>, TransferError> {
    std::fs::read(path).map_err(|source| TransferError::Io {
        path: PathBuf::from(path),
        source,
    })
}
