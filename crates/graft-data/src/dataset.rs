//! [`Dataset`]: a memory-mapped data-set file.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::checksum::Fnv1a64;
use crate::error::DataError;
use crate::format::{ElementType, Header, Section, HEADER_LEN};
use crate::metadata::Metadata;

/// A validated, memory-mapped data set.
///
/// Opening checks the whole header and every label and decodes the metadata,
/// but does not hash the payload: call [`verify_checksum`](Self::verify_checksum)
/// for that. Samples are zero-copy slices of the map.
#[derive(Debug)]
pub struct Dataset {
    path: PathBuf,
    map: Mmap,
    header: Header,
    sample_bytes: usize,
    samples_offset: usize,
    labels: Vec<u32>,
    class_rank: Vec<u32>,
    metadata: Metadata,
}

impl Dataset {
    /// Opens and validates the data set at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Dataset, DataError> {
        let path = path.as_ref().to_path_buf();
        let io = |action| {
            let path = path.clone();
            move |source| DataError::Io {
                path,
                action,
                source,
            }
        };
        let file = File::open(&path).map_err(io("open"))?;
        let file_len = file.metadata().map_err(io("stat"))?.len();
        if file_len < HEADER_LEN {
            return Err(DataError::Truncated {
                path,
                needed: HEADER_LEN,
                actual: file_len,
            });
        }
        // SAFETY: the map is read-only and graft never modifies a data-set
        // file in place: writers create `<path>.tmp-<pid>-<n>` and rename it over
        // the old file, which leaves this mapping on the old inode intact.
        // Another process truncating the file while it is mapped would be a
        // violation of that contract (and could fault), not something this
        // crate does.
        let map = unsafe { Mmap::map(&file) }.map_err(io("memory-map"))?;
        let (header, labels, metadata) = parse(&map, &path)?;
        let class_rank = class_ranks(&labels, metadata.class_names.len());
        let sample_bytes = header.sample_bytes();
        let samples_offset = header.samples.offset as usize;
        tracing::debug!(
            path = %path.display(),
            count = header.count,
            shape = ?header.shape,
            "opened data set"
        );
        Ok(Dataset {
            path,
            map,
            header,
            sample_bytes,
            samples_offset,
            labels,
            class_rank,
            metadata,
        })
    }

    /// Recomputes the FNV-1a 64 checksum of the three sections and compares
    /// it with the one stored in the header.
    pub fn verify_checksum(&self) -> Result<(), DataError> {
        let mut h = Fnv1a64::new();
        for (name, s) in [
            ("samples", self.header.samples),
            ("labels", self.header.labels),
            ("metadata", self.header.metadata),
        ] {
            h.update(section_bytes(&self.map, s, &self.path, name)?);
        }
        let computed = h.value();
        if computed != self.header.checksum {
            return Err(DataError::ChecksumMismatch {
                path: self.path.clone(),
                stored: self.header.checksum,
                computed,
            });
        }
        Ok(())
    }

    /// The file this data set was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The validated header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the data set holds no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Element type of the samples.
    pub fn element_type(&self) -> ElementType {
        self.header.element_type
    }

    /// Shape of one sample, e.g. `[28, 28]`.
    pub fn sample_shape(&self) -> &[usize] {
        &self.header.shape
    }

    /// Elements per sample (product of [`sample_shape`](Self::sample_shape)).
    pub fn sample_len(&self) -> usize {
        self.header.sample_len()
    }

    /// The raw little-endian bytes of sample `i`, or `None` if out of range.
    pub fn sample_bytes(&self, i: usize) -> Option<&[u8]> {
        if i >= self.len() {
            return None;
        }
        let start = i
            .checked_mul(self.sample_bytes)?
            .checked_add(self.samples_offset)?;
        let end = start.checked_add(self.sample_bytes)?;
        self.map.get(start..end)
    }

    /// Sample `i` of a u8 data set, zero-copy.
    ///
    /// Errors if `i` is out of range or the samples are not u8.
    pub fn sample(&self, i: usize) -> Result<&[u8], DataError> {
        if self.element_type() != ElementType::U8 {
            return Err(DataError::ElementTypeMismatch {
                path: self.path.clone(),
                expected: "u8",
                found: self.element_type().name(),
            });
        }
        self.sample_bytes(i).ok_or(DataError::IndexOutOfRange {
            path: self.path.clone(),
            index: i,
            len: self.len(),
        })
    }

    /// The stored values of sample `i` as f32: f32 as stored, f16 converted
    /// exactly, u8 as `0.0..=255.0` (not scaled). Errors if `i` is out of
    /// range.
    pub fn sample_f32(&self, i: usize) -> Result<Vec<f32>, DataError> {
        let bytes = self.sample_bytes(i).ok_or(DataError::IndexOutOfRange {
            path: self.path.clone(),
            index: i,
            len: self.len(),
        })?;
        Ok(match self.element_type() {
            ElementType::U8 => bytes.iter().map(|&b| f32::from(b)).collect(),
            ElementType::F16 => bytes
                .chunks_exact(2)
                .map(|c| crate::f16::f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            ElementType::F32 => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        })
    }

    /// Label of sample `i`; errors if `i` is out of range.
    pub fn label(&self, i: usize) -> Result<u32, DataError> {
        self.labels
            .get(i)
            .copied()
            .ok_or(DataError::IndexOutOfRange {
                path: self.path.clone(),
                index: i,
                len: self.len(),
            })
    }

    /// All labels, in file order.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// For each sample, its position among the samples of the same class in
    /// file order (0 for the first sample of each class). Splits use this.
    pub fn class_ranks(&self) -> &[u32] {
        &self.class_rank
    }

    /// Number of classes (number of class names).
    pub fn num_classes(&self) -> usize {
        self.metadata.class_names.len()
    }

    /// Class names; label `c` is `class_names()[c]`.
    pub fn class_names(&self) -> &[String] {
        &self.metadata.class_names
    }

    /// The decoded metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Number of samples per class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes()];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }
}

/// Validates a whole data-set file held in memory exactly as
/// [`Dataset::open`] does (header, sections, metadata, labels) and returns
/// its header. Errors name the path `<memory>`. Never panics; this is the
/// entry point of the fuzz target.
pub fn validate_bytes(bytes: &[u8]) -> Result<Header, DataError> {
    parse(bytes, Path::new("<memory>")).map(|(h, _, _)| h)
}

/// Header, labels and metadata of a mapped file, all validated.
fn parse(map: &[u8], path: &Path) -> Result<(Header, Vec<u32>, Metadata), DataError> {
    let header = Header::decode(map, map.len() as u64, path)?;
    let labels_bytes = section_bytes(map, header.labels, path, "labels")?;
    let meta_bytes = section_bytes(map, header.metadata, path, "metadata")?;
    let (labels, metadata) = decode_labels_metadata(labels_bytes, meta_bytes, path)?;
    Ok((header, labels, metadata))
}

/// Decodes the metadata and the labels and checks every label against the
/// number of class names.
pub(crate) fn decode_labels_metadata(
    labels_bytes: &[u8],
    meta_bytes: &[u8],
    path: &Path,
) -> Result<(Vec<u32>, Metadata), DataError> {
    let metadata = Metadata::decode(meta_bytes).map_err(|e| DataError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("metadata section does not decode: {e}"),
    })?;
    let num_classes = metadata.class_names.len();
    let labels: Vec<u32> = labels_bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    crate::format::check_label_range(path, &labels, num_classes)?;
    Ok((labels, metadata))
}

fn class_ranks(labels: &[u32], num_classes: usize) -> Vec<u32> {
    let mut seen = vec![0u32; num_classes];
    labels
        .iter()
        .map(|&l| {
            let slot = &mut seen[l as usize];
            let rank = *slot;
            *slot += 1;
            rank
        })
        .collect()
}

fn section_bytes<'m>(
    map: &'m [u8],
    s: Section,
    path: &Path,
    name: &'static str,
) -> Result<&'m [u8], DataError> {
    let range = usize::try_from(s.offset)
        .ok()
        .and_then(|start| Some(start..start.checked_add(usize::try_from(s.len).ok()?)?));
    range
        .and_then(|r| map.get(r))
        .ok_or(DataError::SectionOutOfBounds {
            path: path.to_path_buf(),
            section: name,
            offset: s.offset,
            len: s.len,
            file_len: map.len() as u64,
        })
}
