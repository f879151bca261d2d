//! Sentence embeddings of a whole text data set, written in the feature-cache format
//! (FORMAT.md: a version-1 data set of f32 rows with the key description as provenance).

use std::path::Path;

use graft_data::{FeatureKey, Metadata, TextDataset};

use crate::minilm::MiniLm;
use crate::TextError;

/// What [`embed_dataset`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedSummary {
    /// Rows written.
    pub rows: usize,
    /// Values per row.
    pub dim: usize,
    /// Seconds spent embedding.
    pub seconds: f64,
    /// The cache key the file stands for (its provenance).
    pub key: FeatureKey,
}

/// The feature-cache key of `model`'s sentence embeddings of `ds`.
pub fn embedding_key(model: &MiniLm, ds: &TextDataset) -> FeatureKey {
    FeatureKey {
        checkpoint_hash: model.content_hash,
        dataset_hash: ds.checksum(),
        layer: "mean-pooled last hidden state, L2-normalised".into(),
        preprocessing: format!("tokenizer.json, truncation {}", model.tokenizer.max_len()),
    }
}

/// Embeds every record of `ds` (`batch` texts at a time) and writes the rows, with the
/// records' labels and class names, to `out` (atomically). `progress` gets the count done.
pub fn embed_dataset(
    model: &MiniLm,
    ds: &TextDataset,
    out: &Path,
    batch: usize,
    progress: impl FnMut(usize),
) -> Result<EmbedSummary, TextError> {
    let texts = ds.view().texts()?;
    if texts.is_empty() {
        return Err(TextError::Invalid(format!(
            "{} holds no records to embed",
            ds.path().display()
        )));
    }
    let start = std::time::Instant::now();
    let values = model.embed_all(&texts, batch, progress)?;
    let seconds = start.elapsed().as_secs_f64();
    let key = embedding_key(model, ds);
    let metadata = Metadata {
        class_names: ds.class_names().to_vec(),
        provenance: key.describe(),
        mean: None,
        std: None,
    };
    let dim = model.dim();
    graft_data::write_f32_dataset(out, &[dim], &values, ds.labels(), &metadata)?;
    Ok(EmbedSummary {
        rows: texts.len(),
        dim,
        seconds,
        key,
    })
}

/// Embeds every record of `ds` like [`embed_dataset`] and writes the rows as a NumPy `.npy`
/// file (float32, one row per record, in record order) to `out`, atomically.
pub fn embed_dataset_npy(
    model: &MiniLm,
    ds: &TextDataset,
    out: &Path,
    batch: usize,
    progress: impl FnMut(usize),
) -> Result<EmbedSummary, TextError> {
    let texts = ds.view().texts()?;
    if texts.is_empty() {
        return Err(TextError::Invalid(format!(
            "{} holds no records to embed",
            ds.path().display()
        )));
    }
    let start = std::time::Instant::now();
    let values = model.embed_all(&texts, batch, progress)?;
    let seconds = start.elapsed().as_secs_f64();
    let dim = model.dim();
    graft_data::write_npy_f32(out, texts.len(), dim, &values)?;
    Ok(EmbedSummary {
        rows: texts.len(),
        dim,
        seconds,
        key: embedding_key(model, ds),
    })
}
