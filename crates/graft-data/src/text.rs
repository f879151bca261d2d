//! Text data sets: UTF-8 records with labels in one memory-mapped file (FORMAT.md, "Text
//! data sets"): a `u64` offset table into one byte section, `u32` labels and the same
//! bincode [`Metadata`] as image data sets.
//!
//! [`TextDataset`] opens and validates a file; [`TextView`] gives it the same class
//! selection, split rules and seeded k-shot sampling as an image [`crate::View`] (the same
//! positions for the same labels and seed). Importers for one file per class (with the
//! `fortune` `%` separator) and for CSV with a label and a text column are in [`import`].

pub mod import;
mod write;

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::checksum::Fnv1a64;
use crate::error::DataError;
use crate::metadata::Metadata;

use crate::split::{Part, SplitRule};

pub use write::{write_text_dataset, TEXT_HEADER_LEN, TEXT_MAGIC, TEXT_VERSION};

pub use import::{
    import_class_files, import_text_csv, read_fortune_file, split_fortunes, TextCsvOptions,
};

/// Longest metadata section accepted (as for image data sets).
const MAX_METADATA: u64 = 16 << 20;

/// Offset and length of one section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sect {
    offset: u64,
    len: u64,
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// A validated, memory-mapped text data set.
#[derive(Debug)]
pub struct TextDataset {
    path: PathBuf,
    map: Mmap,
    count: usize,
    offsets: Sect,
    text: Sect,
    labels: Vec<u32>,
    class_rank: Vec<u32>,
    metadata: Metadata,
    checksum: u64,
}

impl TextDataset {
    /// Opens and validates the text data set at `path`: header, section bounds, every
    /// offset (non-decreasing, inside the text section), every label and the metadata.
    /// UTF-8 is checked when a record is read; the checksum by [`Self::verify_checksum`].
    pub fn open(path: impl AsRef<Path>) -> Result<TextDataset, DataError> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|source| DataError::Io {
            path: path.clone(),
            action: "open",
            source,
        })?;
        // SAFETY: the map is read-only and graft never modifies a data-set file in place:
        // writers create `<path>.tmp-<pid>-<n>` and rename it over the old file, which
        // leaves this mapping on the old inode intact. Another process truncating the
        // file while it is mapped would violate that contract (and could fault).
        let map = unsafe { Mmap::map(&file) }.map_err(|source| DataError::Io {
            path: path.clone(),
            action: "memory-map",
            source,
        })?;
        let corrupt = |reason: String| DataError::Corrupt {
            path: path.clone(),
            reason,
        };
        let b: &[u8] = &map;
        if b.len() < TEXT_HEADER_LEN {
            return Err(DataError::Truncated {
                path: path.clone(),
                needed: TEXT_HEADER_LEN as u64,
                actual: b.len() as u64,
            });
        }
        if b[..8] != TEXT_MAGIC {
            return Err(DataError::NotADataset { path: path.clone() });
        }
        let version = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
        if version != TEXT_VERSION {
            return Err(DataError::UnsupportedVersion {
                path: path.clone(),
                found: version,
                supported: TEXT_VERSION,
            });
        }
        if b[12..16] != [0; 4] {
            return Err(corrupt("reserved header bytes are not zero".into()));
        }
        let count = u64_at(b, 16);
        if count > u32::MAX as u64 {
            return Err(corrupt(format!("count {count} exceeds 2^32 - 1")));
        }
        let sect = |at: usize| Sect {
            offset: u64_at(b, at),
            len: u64_at(b, at + 8),
        };
        let (offsets, text, labels_s, meta_s) = (sect(24), sect(40), sect(56), sect(72));
        let file_len = b.len() as u64;
        let named = [
            ("offsets", offsets),
            ("text", text),
            ("labels", labels_s),
            ("metadata", meta_s),
        ];
        for (name, s) in named {
            let end = s.offset.checked_add(s.len);
            if end.map_or(true, |e| e > file_len) || s.offset < TEXT_HEADER_LEN as u64 {
                return Err(DataError::SectionOutOfBounds {
                    path: path.clone(),
                    section: name,
                    offset: s.offset,
                    len: s.len,
                    file_len,
                });
            }
        }
        for (i, (na, a)) in named.iter().enumerate() {
            for (nb, s) in &named[i + 1..] {
                let overlap = a.len > 0
                    && s.len > 0
                    && a.offset < s.offset + s.len
                    && s.offset < a.offset + a.len;
                if overlap {
                    return Err(corrupt(format!("sections {na} and {nb} overlap")));
                }
            }
        }
        if offsets.len != (count + 1) * 8 {
            return Err(corrupt(format!(
                "offsets section is {} bytes, {count} records need {}",
                offsets.len,
                (count + 1) * 8
            )));
        }
        if labels_s.len != count * 4 {
            return Err(corrupt(format!(
                "labels section is {} bytes, {count} records need {}",
                labels_s.len,
                count * 4
            )));
        }
        if meta_s.len > MAX_METADATA {
            return Err(corrupt(format!(
                "metadata section of {} bytes exceeds 16 MiB",
                meta_s.len
            )));
        }
        let mut prev = 0u64;
        for i in 0..=count as usize {
            let o = u64_at(b, offsets.offset as usize + 8 * i);
            let bad = (i == 0 && o != 0) || o < prev || o > text.len;
            if bad || (i == count as usize && o != text.len) {
                return Err(corrupt(format!(
                    "text offset {i} is {o}: offsets must start at 0, never decrease and end at the text length {}",
                    text.len
                )));
            }
            prev = o;
        }
        let meta_bytes = &b[meta_s.offset as usize..(meta_s.offset + meta_s.len) as usize];
        let metadata = Metadata::decode(meta_bytes)
            .map_err(|e| corrupt(format!("metadata does not decode: {e}")))?;
        let labels: Vec<u32> = b
            [labels_s.offset as usize..(labels_s.offset + labels_s.len) as usize]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let num_classes = metadata.class_names.len();
        crate::format::check_label_range(&path, &labels, num_classes)?;
        let mut seen = vec![0u32; num_classes];
        let class_rank = labels
            .iter()
            .map(|&l| {
                let r = seen[l as usize];
                seen[l as usize] += 1;
                r
            })
            .collect();
        let checksum = u64_at(b, 88);
        Ok(TextDataset {
            path,
            count: count as usize,
            offsets,
            text,
            labels,
            class_rank,
            metadata,
            checksum,
            map,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Record `i`'s text, checked to be UTF-8.
    pub fn text(&self, i: usize) -> Result<&str, DataError> {
        if i >= self.count {
            return Err(DataError::IndexOutOfRange {
                path: self.path.clone(),
                index: i,
                len: self.count,
            });
        }
        let at = self.offsets.offset as usize + 8 * i;
        let (start, end) = (u64_at(&self.map, at), u64_at(&self.map, at + 8));
        let base = self.text.offset as usize;
        let bytes = &self.map[base + start as usize..base + end as usize];
        std::str::from_utf8(bytes).map_err(|e| DataError::Corrupt {
            path: self.path.clone(),
            reason: format!("record {i} is not UTF-8 ({e})"),
        })
    }

    /// Every record's label.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Position of each record within its class, in file order (what split rules use).
    pub fn class_ranks(&self) -> &[u32] {
        &self.class_rank
    }

    /// Class names; label `c` is `class_names()[c]`.
    pub fn class_names(&self) -> &[String] {
        &self.metadata.class_names
    }

    /// The metadata (class names, provenance).
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The checksum stored in the header (FNV-1a 64 of the four sections): a content hash
    /// for cache keys.
    pub fn checksum(&self) -> u64 {
        self.checksum
    }

    /// Recomputes the checksum and compares it with the header's.
    pub fn verify_checksum(&self) -> Result<(), DataError> {
        let mut h = Fnv1a64::new();
        let b: &[u8] = &self.map;
        let meta_s = Sect {
            offset: u64_at(b, 72),
            len: u64_at(b, 80),
        };
        let labels_s = Sect {
            offset: u64_at(b, 56),
            len: u64_at(b, 64),
        };
        for s in [self.offsets, self.text, labels_s, meta_s] {
            h.update(&b[s.offset as usize..(s.offset + s.len) as usize]);
        }
        if h.value() != self.checksum {
            return Err(DataError::ChecksumMismatch {
                path: self.path.clone(),
                stored: self.checksum,
                computed: h.value(),
            });
        }
        Ok(())
    }

    /// A view of every record.
    pub fn view(&self) -> TextView<'_> {
        TextView {
            dataset: self,
            indices: (0..self.count as u32).collect(),
            labels: self.labels.clone(),
            class_names: self.metadata.class_names.clone(),
        }
    }
}

/// A subset of a [`TextDataset`] with its own labels (after relabelling), like
/// [`crate::View`] for images: the same operations pick the same positions.
#[derive(Debug, Clone)]
pub struct TextView<'a> {
    dataset: &'a TextDataset,
    indices: Vec<u32>,
    labels: Vec<u32>,
    class_names: Vec<String>,
}

impl<'a> TextView<'a> {
    /// The data set viewed.
    pub fn dataset(&self) -> &'a TextDataset {
        self.dataset
    }

    /// Number of records in the view.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether the view is empty.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Record index in the data set of each position.
    pub fn indices(&self) -> &[u32] {
        &self.indices
    }

    /// Label of each position (after any relabelling).
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Class names of the view.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// Text at position `i`.
    pub fn text(&self, i: usize) -> Result<&'a str, DataError> {
        let idx = *self
            .indices
            .get(i)
            .ok_or_else(|| DataError::IndexOutOfRange {
                path: self.dataset.path.clone(),
                index: i,
                len: self.len(),
            })?;
        self.dataset.text(idx as usize)
    }

    /// Every text of the view, in order.
    pub fn texts(&self) -> Result<Vec<&'a str>, DataError> {
        (0..self.len()).map(|i| self.text(i)).collect()
    }

    /// Records per class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes()];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// Only the records of `classes`, relabelled `0..classes.len()` in that order.
    pub fn select_classes(&self, classes: &[u32]) -> Result<TextView<'a>, DataError> {
        let path = || self.dataset.path.clone();
        let mut map: Vec<Option<u32>> = vec![None; self.num_classes()];
        for (new, &c) in classes.iter().enumerate() {
            let slot = map.get_mut(c as usize).ok_or(DataError::ClassOutOfRange {
                path: path(),
                class: c,
                num_classes: self.num_classes(),
            })?;
            if slot.is_some() {
                return Err(DataError::DuplicateClass {
                    path: path(),
                    class: c,
                });
            }
            *slot = Some(new as u32);
        }
        let (mut indices, mut labels) = (Vec::new(), Vec::new());
        for (&idx, &l) in self.indices.iter().zip(&self.labels) {
            if let Some(new) = map[l as usize] {
                indices.push(idx);
                labels.push(new);
            }
        }
        Ok(TextView {
            dataset: self.dataset,
            indices,
            labels,
            class_names: classes
                .iter()
                .map(|&c| self.class_names[c as usize].clone())
                .collect(),
        })
    }

    /// The records whose rank within their class (in file order) falls in `part` of `rule`.
    pub fn split(&self, rule: SplitRule, part: Part) -> Result<TextView<'a>, DataError> {
        rule.validate()
            .map_err(|reason| DataError::InvalidArgument {
                path: self.dataset.path.clone(),
                reason,
            })?;
        let ranks = self.dataset.class_ranks();
        let keep: Vec<usize> = (0..self.len())
            .filter(|&p| rule.part_of(ranks[self.indices[p] as usize] as usize) == part)
            .collect();
        Ok(self.at_positions(&keep))
    }

    fn at_positions(&self, positions: &[usize]) -> TextView<'a> {
        TextView {
            dataset: self.dataset,
            indices: positions.iter().map(|&p| self.indices[p]).collect(),
            labels: positions.iter().map(|&p| self.labels[p]).collect(),
            class_names: self.class_names.clone(),
        }
    }

    /// `k` records per class: the first `k` of each class after a permutation drawn from
    /// [`crate::SplitMix64`] seeded with `seed` (the same draw as [`crate::View::k_shot`]).
    pub fn k_shot(&self, k: usize, seed: u64) -> Result<TextView<'a>, DataError> {
        self.sample_per_class(Some(k), seed)
    }

    /// Every record, shuffled within each class as [`Self::k_shot`] would.
    pub fn k_shot_all(&self, seed: u64) -> Result<TextView<'a>, DataError> {
        self.sample_per_class(None, seed)
    }

    fn sample_per_class(&self, k: Option<usize>, seed: u64) -> Result<TextView<'a>, DataError> {
        let positions =
            crate::view::sample_positions(&self.labels, &self.class_names, k, seed, || {
                self.dataset.path.clone()
            })?;
        Ok(self.at_positions(&positions))
    }
}
