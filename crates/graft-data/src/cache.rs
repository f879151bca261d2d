//! [`FeatureCache`]: backbone features stored as graft data sets, keyed by
//! a content hash of everything that determines them.
//!
//! A feature set is an `N x D` matrix (one row per sample) plus labels,
//! stored as an f32 or f16 data set of sample shape `[D]` in
//! `<dir>/features-<digest>-<type>.graftds`. The digest is FNV-1a 64 of a
//! canonical encoding of the [`FeatureKey`]; the key's full description is
//! also stored in the metadata's `provenance`, so a digest collision or a
//! foreign file is detected and rebuilt instead of trusted.
//!
//! Cached files are reused across runs and processes. A file that does not
//! open, describes another key, has another element type or fails its
//! checksum is rebuilt. Writers go through a unique temporary file and an
//! atomic rename, so concurrent builders of the same key (threads or
//! processes) never corrupt the entry: the last rename wins, and every
//! reader sees one complete file.

use std::error::Error as StdError;
use std::path::{Path, PathBuf};

use crate::checksum::Fnv1a64;
use crate::dataset::Dataset;
use crate::error::DataError;
use crate::f16::F16_MAX;
use crate::format::ElementType;
use crate::metadata::Metadata;
use crate::writer::DatasetWriter;

/// Everything that determines a set of backbone features.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FeatureKey {
    /// Content hash of the backbone checkpoint (e.g. FNV-1a 64 of its bytes).
    pub checkpoint_hash: u64,
    /// Content hash of the input data set (e.g. its header checksum).
    pub dataset_hash: u64,
    /// The layer the features are taken from.
    pub layer: String,
    /// Description of the preprocessing (normalisation, resizing, ...).
    pub preprocessing: String,
}

impl FeatureKey {
    /// A canonical, unambiguous text form of the key (lengths prefix the
    /// free-text fields), stored in the cached file's provenance.
    pub fn describe(&self) -> String {
        format!(
            "graft feature cache v1; checkpoint {:016x}; dataset {:016x}; layer {}:{}; preprocessing {}:{}",
            self.checkpoint_hash,
            self.dataset_hash,
            self.layer.len(),
            self.layer,
            self.preprocessing.len(),
            self.preprocessing
        )
    }

    /// FNV-1a 64 of [`describe`](Self::describe): the cache file's name.
    pub fn digest(&self) -> u64 {
        let mut h = Fnv1a64::new();
        h.update(self.describe().as_bytes());
        h.value()
    }
}

/// Features produced by a build closure: `labels.len()` rows of `dim`
/// values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    /// `labels.len() * dim` values.
    pub values: Vec<f32>,
    /// One label per row.
    pub labels: Vec<u32>,
    /// Values per row (at least 1).
    pub dim: usize,
    /// Class names; every label must be smaller than their number.
    pub class_names: Vec<String>,
}

impl Features {
    /// Features with class names `"0"`, `"1"`, ... up to the largest label.
    pub fn new(values: Vec<f32>, labels: Vec<u32>, dim: usize) -> Features {
        let classes = labels.iter().max().map_or(0, |&m| m as usize + 1);
        Features {
            values,
            labels,
            dim,
            class_names: (0..classes).map(|c| c.to_string()).collect(),
        }
    }
}

impl From<(Vec<f32>, Vec<u32>, usize)> for Features {
    fn from((values, labels, dim): (Vec<f32>, Vec<u32>, usize)) -> Features {
        Features::new(values, labels, dim)
    }
}

/// A directory of cached feature sets; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct FeatureCache {
    dir: PathBuf,
    storage: ElementType,
}

impl FeatureCache {
    /// A cache in `dir` (created on first write) storing f32 features.
    pub fn new(dir: impl AsRef<Path>) -> FeatureCache {
        FeatureCache {
            dir: dir.as_ref().to_path_buf(),
            storage: ElementType::F32,
        }
    }

    /// The same cache storing features as `storage` (f32 or f16; f16 halves
    /// the size and rounds each value to the nearest f16). Entries of the
    /// two types are separate files. Errors for u8.
    pub fn with_storage(self, storage: ElementType) -> Result<FeatureCache, DataError> {
        if storage == ElementType::U8 {
            return Err(DataError::InvalidArgument {
                path: self.dir,
                reason: "features are stored as f32 or f16, not u8; pick ElementType::F32 or ElementType::F16".into(),
            });
        }
        Ok(FeatureCache { storage, ..self })
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The element type features are stored as.
    pub fn storage(&self) -> ElementType {
        self.storage
    }

    /// The file that holds (or will hold) the features of `key`.
    pub fn path_for(&self, key: &FeatureKey) -> PathBuf {
        self.dir.join(format!(
            "features-{:016x}-{}.graftds",
            key.digest(),
            self.storage.name()
        ))
    }

    /// The cached features of `key`, if a valid entry exists: it opens,
    /// its provenance is `key.describe()`, its element type is the cache's
    /// and its checksum verifies. Anything else is `None` (a miss).
    pub fn get(&self, key: &FeatureKey) -> Option<Dataset> {
        let path = self.path_for(key);
        let ds = match Dataset::open(&path) {
            Ok(ds) => ds,
            Err(DataError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return None
            }
            Err(e) => {
                tracing::warn!(error = %e, "feature cache entry unusable; rebuilding");
                return None;
            }
        };
        if ds.metadata().provenance != key.describe() || ds.element_type() != self.storage {
            tracing::warn!(path = %path.display(), "feature cache entry belongs to another key; rebuilding");
            return None;
        }
        if let Err(e) = ds.verify_checksum() {
            tracing::warn!(error = %e, "feature cache entry damaged; rebuilding");
            return None;
        }
        Some(ds)
    }

    /// The features of `key`: the cached entry if valid (see
    /// [`get`](Self::get)), otherwise `build(key)` is called, its result
    /// validated, written atomically and opened.
    ///
    /// `build` returns anything convertible to [`Features`] (e.g.
    /// `(values, labels, dim)`); its error is returned as
    /// [`DataError::FeatureBuild`]. Rows must hold finite values; with f16
    /// storage their magnitude must be at most 65504.
    pub fn get_or_build<F, T, E>(&self, key: &FeatureKey, build: F) -> Result<Dataset, DataError>
    where
        F: FnOnce(&FeatureKey) -> Result<T, E>,
        T: Into<Features>,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        if let Some(ds) = self.get(key) {
            tracing::debug!(path = %ds.path().display(), "feature cache hit");
            return Ok(ds);
        }
        let path = self.path_for(key);
        let features: Features = build(key)
            .map_err(|e| DataError::FeatureBuild {
                path: path.clone(),
                key: key.describe(),
                source: e.into(),
            })?
            .into();
        self.put(key, &features)
    }

    /// Stores `features` as the entry of `key` (replacing any entry,
    /// atomically) and opens it.
    pub fn put(&self, key: &FeatureKey, features: &Features) -> Result<Dataset, DataError> {
        let path = self.path_for(key);
        let invalid = |reason: String| DataError::InvalidInput {
            path: path.clone(),
            reason,
        };
        let Features {
            values,
            labels,
            dim,
            class_names,
        } = features;
        if *dim == 0 {
            return Err(invalid(
                "feature dimension is 0; the build closure must return dim >= 1".into(),
            ));
        }
        if Some(values.len()) != labels.len().checked_mul(*dim) {
            return Err(invalid(format!(
                "{} feature values for {} labels of dimension {dim}; expected {} values",
                values.len(),
                labels.len(),
                labels.len().saturating_mul(*dim)
            )));
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(invalid(format!(
                "feature {} of sample {} is {}; the backbone produced a non-finite value",
                i % dim,
                i / dim,
                values[i]
            )));
        }
        if self.storage == ElementType::F16 {
            if let Some(i) = values.iter().position(|v| v.abs() > F16_MAX) {
                return Err(invalid(format!(
                    "feature {} of sample {} is {}, beyond the f16 range (±65504); store f32 features instead",
                    i % dim,
                    i / dim,
                    values[i]
                )));
            }
        }
        std::fs::create_dir_all(&self.dir).map_err(|source| DataError::Io {
            path: self.dir.clone(),
            action: "create directory",
            source,
        })?;
        let mut w = DatasetWriter::create(&path, self.storage, &[*dim])?;
        // One large write of the whole matrix, straight from `values`.
        w.push_f32_rows(values, labels)?;
        let stats = w.stats();
        w.finish(&Metadata {
            class_names: class_names.clone(),
            provenance: key.describe(),
            mean: stats.map(|s| s.0),
            std: stats.map(|s| s.1),
        })?;
        tracing::info!(path = %path.display(), rows = labels.len(), dim, "feature cache entry written");
        Dataset::open(&path)
    }
}
