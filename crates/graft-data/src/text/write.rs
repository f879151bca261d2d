//! Writing a text data set: the header constants and [`write_text_dataset`] (temporary file
//! + rename). Imports nothing else of the text module, so its importers can use it.

use std::io::Write;
use std::path::Path;

use crate::checksum::Fnv1a64;
use crate::error::DataError;
use crate::metadata::Metadata;

/// First 8 bytes of a text data set.
pub const TEXT_MAGIC: [u8; 8] = *b"GRAFTTX\0";
/// The text format version this build reads and writes.
pub const TEXT_VERSION: u32 = 1;
/// Length of the fixed header.
pub const TEXT_HEADER_LEN: usize = 96;

/// Writes `texts` with `labels` and `metadata` to `path` (temporary file + rename).
pub fn write_text_dataset(
    path: impl AsRef<Path>,
    texts: &[&str],
    labels: &[u32],
    metadata: &Metadata,
) -> Result<(), DataError> {
    let path = path.as_ref();
    let invalid = |reason: String| DataError::InvalidInput {
        path: path.to_path_buf(),
        reason,
    };
    if texts.len() != labels.len() {
        return Err(invalid(format!(
            "{} texts but {} labels",
            texts.len(),
            labels.len()
        )));
    }
    if texts.len() > u32::MAX as usize {
        return Err(invalid("more than 2^32 - 1 records".into()));
    }
    let nc = metadata.class_names.len();
    if let Some(&l) = labels.iter().find(|&&l| l as usize >= nc) {
        return Err(invalid(format!("label {l} but only {nc} class names")));
    }
    let meta = metadata.encode().map_err(invalid)?;
    let mut offsets = Vec::with_capacity(8 * (texts.len() + 1));
    let mut total = 0u64;
    offsets.extend_from_slice(&0u64.to_le_bytes());
    for t in texts {
        total += t.len() as u64;
        offsets.extend_from_slice(&total.to_le_bytes());
    }
    let label_bytes: Vec<u8> = labels.iter().flat_map(|l| l.to_le_bytes()).collect();
    let off_at = TEXT_HEADER_LEN as u64;
    let text_at = off_at + offsets.len() as u64;
    let pad = (8 - (text_at + total) % 8) % 8;
    let labels_at = text_at + total + pad;
    let meta_at = labels_at + label_bytes.len() as u64;
    let mut h = Fnv1a64::new();
    h.update(&offsets);
    for t in texts {
        h.update(t.as_bytes());
    }
    h.update(&label_bytes);
    h.update(&meta);
    let mut header = Vec::with_capacity(TEXT_HEADER_LEN);
    header.extend_from_slice(&TEXT_MAGIC);
    header.extend_from_slice(&TEXT_VERSION.to_le_bytes());
    header.extend_from_slice(&[0; 4]);
    header.extend_from_slice(&(texts.len() as u64).to_le_bytes());
    for (o, l) in [
        (off_at, offsets.len() as u64),
        (text_at, total),
        (labels_at, label_bytes.len() as u64),
        (meta_at, meta.len() as u64),
    ] {
        header.extend_from_slice(&o.to_le_bytes());
        header.extend_from_slice(&l.to_le_bytes());
    }
    header.extend_from_slice(&h.value().to_le_bytes());
    debug_assert_eq!(header.len(), TEXT_HEADER_LEN);
    crate::format::atomic_write(path, |w| {
        w.write_all(&header)?;
        w.write_all(&offsets)?;
        for t in texts {
            w.write_all(t.as_bytes())?;
        }
        w.write_all(&[0u8; 8][..pad as usize])?;
        w.write_all(&label_bytes)?;
        w.write_all(&meta)
    })?;
    tracing::debug!(path = %path.display(), records = texts.len(), "wrote text data set");
    Ok(())
}
