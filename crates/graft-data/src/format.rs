//! The graft data-set file format (version 1): header layout, validation
//! and the atomic writer. `FORMAT.md` is the normative description.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::checksum::Fnv1a64;
use crate::error::DataError;
use crate::metadata::{Metadata, MAX_METADATA_LEN};

/// The 8 magic bytes every data-set file starts with.
pub const MAGIC: [u8; 8] = *b"GRAFTDS\0";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
/// Length in bytes of the fixed header.
pub const HEADER_LEN: u64 = 96;
/// Alignment in bytes of the samples section.
pub const SAMPLE_ALIGN: u64 = 64;
/// Largest number of sample dimensions.
pub const MAX_NDIM: usize = 4;

/// Type of one element of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ElementType {
    /// Unsigned byte (code 0).
    U8,
    /// IEEE 754 half precision, little endian (code 1). Converted to f32
    /// exactly when read; written with round-to-nearest-even.
    F16,
    /// IEEE 754 single precision, little endian (code 2).
    F32,
}

impl ElementType {
    /// The code stored in the header.
    pub fn code(self) -> u8 {
        match self {
            ElementType::U8 => 0,
            ElementType::F16 => 1,
            ElementType::F32 => 2,
        }
    }

    /// The element type for a header code, if the code is known.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(ElementType::U8),
            1 => Some(ElementType::F16),
            2 => Some(ElementType::F32),
            _ => None,
        }
    }

    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            ElementType::U8 => 1,
            ElementType::F16 => 2,
            ElementType::F32 => 4,
        }
    }

    /// Lower-case name ("u8", "f16", "f32").
    pub fn name(self) -> &'static str {
        match self {
            ElementType::U8 => "u8",
            ElementType::F16 => "f16",
            ElementType::F32 => "f32",
        }
    }
}

/// Location of a section in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Section {
    /// Byte offset from the start of the file.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
}

impl Section {
    fn end(self) -> Option<u64> {
        self.offset.checked_add(self.len)
    }
}

/// A decoded and validated header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Element type of the samples.
    pub element_type: ElementType,
    /// Shape of one sample (1 to 4 dimensions, each at least 1).
    pub shape: Vec<usize>,
    /// Number of samples.
    pub count: u64,
    /// The samples section: `count * sample_bytes` bytes, 64-byte aligned.
    pub samples: Section,
    /// The labels section: `count` little-endian u32.
    pub labels: Section,
    /// The metadata section (bincode of [`Metadata`]).
    pub metadata: Section,
    /// FNV-1a 64 of the three sections, in order.
    pub checksum: u64,
}

impl Header {
    /// Elements per sample (product of the shape).
    pub fn sample_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Bytes per sample.
    pub fn sample_bytes(&self) -> usize {
        self.sample_len() * self.element_type.size()
    }

    /// Encodes the header into its fixed 96-byte little-endian form.
    ///
    /// Assumes a header that passed validation (shape entries fit in u32).
    pub fn encode(&self) -> [u8; HEADER_LEN as usize] {
        let mut out = [0u8; HEADER_LEN as usize];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..12].copy_from_slice(&VERSION.to_le_bytes());
        out[12] = self.element_type.code();
        out[13] = self.shape.len() as u8;
        // bytes 14..16 reserved, zero.
        for (i, &d) in self.shape.iter().take(MAX_NDIM).enumerate() {
            let at = 16 + 4 * i;
            out[at..at + 4].copy_from_slice(&(d as u32).to_le_bytes());
        }
        let words = [
            self.count,
            self.samples.offset,
            self.samples.len,
            self.labels.offset,
            self.labels.len,
            self.metadata.offset,
            self.metadata.len,
            self.checksum,
        ];
        for (i, w) in words.iter().enumerate() {
            let at = 32 + 8 * i;
            out[at..at + 8].copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// Decodes and validates a header read from a file of `file_len` bytes.
    ///
    /// Checks everything that can be checked without reading the sections:
    /// magic, version, element type, ndim, shape, size overflow, section
    /// lengths, bounds, alignment and overlap. `path` is only used in errors.
    pub fn decode(bytes: &[u8], file_len: u64, path: &Path) -> Result<Header, DataError> {
        let p = || path.to_path_buf();
        let corrupt = |reason: String| DataError::Corrupt { path: p(), reason };
        let Some(h) = bytes.get(..HEADER_LEN as usize) else {
            return Err(DataError::Truncated {
                path: p(),
                needed: HEADER_LEN,
                actual: bytes.len() as u64,
            });
        };
        if h[0..8] != MAGIC {
            return Err(DataError::NotADataset { path: p() });
        }
        let u32_at = |at: usize| u32::from_le_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let version = u32_at(8);
        if version != VERSION {
            return Err(DataError::UnsupportedVersion {
                path: p(),
                found: version,
                supported: VERSION,
            });
        }
        let element_type = match ElementType::from_code(h[12]) {
            Some(t) => t,
            None => {
                return Err(DataError::UnsupportedElementType {
                    path: p(),
                    code: h[12],
                })
            }
        };
        let ndim = usize::from(h[13]);
        if !(1..=MAX_NDIM).contains(&ndim) {
            return Err(corrupt(format!("ndim is {ndim}, must be 1 to 4")));
        }
        if h[14] != 0 || h[15] != 0 {
            return Err(corrupt("reserved header bytes 14..16 are not zero".into()));
        }
        let dims: Vec<u32> = (0..MAX_NDIM).map(|i| u32_at(16 + 4 * i)).collect();
        if let Some(i) = dims[..ndim].iter().position(|&d| d == 0) {
            return Err(corrupt(format!("shape[{i}] is 0")));
        }
        if let Some(i) = dims[ndim..].iter().position(|&d| d != 0) {
            return Err(corrupt(format!("unused shape[{}] is not 0", ndim + i)));
        }
        let overflow = |what| DataError::SizeOverflow { path: p(), what };
        let mut sample_len: u64 = 1;
        for &d in &dims[..ndim] {
            sample_len = sample_len
                .checked_mul(u64::from(d))
                .ok_or_else(|| overflow("the product of the shape"))?;
        }
        let sample_bytes = sample_len
            .checked_mul(element_type.size() as u64)
            .ok_or_else(|| overflow("sample size in bytes"))?;
        let count = u64_at(32);
        if count > u64::from(u32::MAX) {
            return Err(corrupt(format!(
                "count {count} exceeds the limit of {} samples",
                u32::MAX
            )));
        }
        let samples_len = count
            .checked_mul(sample_bytes)
            .ok_or_else(|| overflow("count * sample size"))?;
        let labels_len = count
            .checked_mul(4)
            .ok_or_else(|| overflow("count * 4 (labels)"))?;
        let section = |at: usize| Section {
            offset: u64_at(at),
            len: u64_at(at + 8),
        };
        let header = Header {
            element_type,
            shape: Vec::new(),
            count,
            samples: section(40),
            labels: section(56),
            metadata: section(72),
            checksum: u64_at(88),
        };
        let named = [
            ("samples", header.samples),
            ("labels", header.labels),
            ("metadata", header.metadata),
        ];
        for (name, s) in named {
            let fits = s.end().is_some_and(|end| end <= file_len);
            if !fits {
                return Err(DataError::SectionOutOfBounds {
                    path: p(),
                    section: name,
                    offset: s.offset,
                    len: s.len,
                    file_len,
                });
            }
            if s.offset < HEADER_LEN {
                return Err(corrupt(format!(
                    "section `{name}` starts at {} inside the {HEADER_LEN}-byte header",
                    s.offset
                )));
            }
        }
        if header.samples.len != samples_len {
            return Err(corrupt(format!(
                "samples section is {} bytes, expected count {count} * {sample_bytes} = {samples_len}",
                header.samples.len
            )));
        }
        if header.labels.len != labels_len {
            return Err(corrupt(format!(
                "labels section is {} bytes, expected count {count} * 4 = {labels_len}",
                header.labels.len
            )));
        }
        if header.metadata.len > MAX_METADATA_LEN {
            return Err(corrupt(format!(
                "metadata section is {} bytes, more than the limit of {MAX_METADATA_LEN}",
                header.metadata.len
            )));
        }
        if header.samples.offset % SAMPLE_ALIGN != 0 {
            return Err(corrupt(format!(
                "samples section offset {} is not {SAMPLE_ALIGN}-byte aligned",
                header.samples.offset
            )));
        }
        for (i, (na, a)) in named.iter().enumerate() {
            for (nb, b) in &named[i + 1..] {
                // Ends were checked above; empty sections overlap nothing.
                let overlap = a.len > 0
                    && b.len > 0
                    && a.offset < b.offset + b.len
                    && b.offset < a.offset + a.len;
                if overlap {
                    return Err(corrupt(format!("sections `{na}` and `{nb}` overlap")));
                }
            }
        }
        // Every size is now bounded by the file length, which fits in the
        // address space once mapped; still convert without truncation.
        let to_usize = |v: u64, what| usize::try_from(v).map_err(|_| overflow(what));
        to_usize(samples_len, "samples section size")?;
        let shape = dims[..ndim]
            .iter()
            .map(|&d| to_usize(u64::from(d), "shape"))
            .collect::<Result<Vec<_>, _>>()?;
        to_usize(count, "count")?;
        Ok(Header { shape, ..header })
    }
}

/// The most classes a data set may have: imported labels are class indices below it.
pub const MAX_CLASSES: usize = 65_536;

pub(crate) fn align_up(v: u64, align: u64) -> u64 {
    v.div_ceil(align) * align
}

/// Writes a data set of u8 samples to `path`, atomically.
///
/// `shape` is the shape of one sample (1 to 4 dimensions, each 1 to
/// `u32::MAX`); `samples` holds `labels.len()` samples back to back; every
/// label must be smaller than `metadata.class_names.len()`. The file is
/// written to `<path>.tmp-<pid>-<n>`, fsynced and renamed over `path`, so readers
/// never see a partial file and files that are memory-mapped elsewhere are
/// replaced, not modified.
pub fn write_u8_dataset(
    path: impl AsRef<Path>,
    shape: &[usize],
    samples: &[u8],
    labels: &[u32],
    metadata: &Metadata,
) -> Result<(), DataError> {
    write_dataset(
        path.as_ref(),
        ElementType::U8,
        shape,
        samples,
        labels,
        metadata,
    )
}

/// Writes a data set of f32 samples to `path`, atomically (see
/// [`write_u8_dataset`]). Values are stored little endian and are used as is
/// by the f32 conversions (they are not divided by 255).
pub fn write_f32_dataset(
    path: impl AsRef<Path>,
    shape: &[usize],
    samples: &[f32],
    labels: &[u32],
    metadata: &Metadata,
) -> Result<(), DataError> {
    let bytes: Vec<u8> = samples.iter().flat_map(|v| v.to_le_bytes()).collect();
    write_dataset(
        path.as_ref(),
        ElementType::F32,
        shape,
        &bytes,
        labels,
        metadata,
    )
}

/// Writes a data set of f16 samples to `path`, atomically (see
/// [`write_u8_dataset`]). Each value is rounded to the nearest f16 (ties to
/// even, [`crate::f16::f32_to_f16`]); values beyond ±65504 become ±infinity.
/// Reading converts back to f32 exactly.
pub fn write_f16_dataset(
    path: impl AsRef<Path>,
    shape: &[usize],
    samples: &[f32],
    labels: &[u32],
    metadata: &Metadata,
) -> Result<(), DataError> {
    let bytes: Vec<u8> = samples
        .iter()
        .flat_map(|&v| crate::f16::f32_to_f16(v).to_le_bytes())
        .collect();
    write_dataset(
        path.as_ref(),
        ElementType::F16,
        shape,
        &bytes,
        labels,
        metadata,
    )
}

fn write_dataset(
    path: &Path,
    element_type: ElementType,
    shape: &[usize],
    sample_bytes: &[u8],
    labels: &[u32],
    metadata: &Metadata,
) -> Result<(), DataError> {
    let invalid = |reason: String| DataError::InvalidInput {
        path: path.to_path_buf(),
        reason,
    };
    if !(1..=MAX_NDIM).contains(&shape.len()) {
        return Err(invalid(format!(
            "sample shape {shape:?} has {} dimensions, must have 1 to 4",
            shape.len()
        )));
    }
    if let Some(d) = shape.iter().find(|&&d| d == 0 || u32::try_from(d).is_err()) {
        return Err(invalid(format!(
            "sample shape {shape:?} has dimension {d}, must be 1 to {}",
            u32::MAX
        )));
    }
    if labels.len() as u64 > u64::from(u32::MAX) {
        return Err(invalid(format!(
            "{} samples exceed the limit of {}",
            labels.len(),
            u32::MAX
        )));
    }
    let sample_len = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| invalid(format!("sample shape {shape:?} overflows")))?;
    let expected = sample_len
        .checked_mul(element_type.size())
        .and_then(|b| b.checked_mul(labels.len()))
        .ok_or_else(|| invalid("total sample size overflows".into()))?;
    if sample_bytes.len() != expected {
        return Err(invalid(format!(
            "{} labels of shape {shape:?} need {expected} bytes of samples, got {}",
            labels.len(),
            sample_bytes.len()
        )));
    }
    check_label_range(path, labels, metadata.class_names.len())?;
    let meta = metadata
        .encode()
        .map_err(|e| invalid(format!("metadata cannot be encoded: {e}")))?;
    if meta.len() as u64 > MAX_METADATA_LEN {
        return Err(invalid(format!(
            "metadata is {} bytes, more than the limit of {MAX_METADATA_LEN}",
            meta.len()
        )));
    }
    let label_bytes: Vec<u8> = labels.iter().flat_map(|l| l.to_le_bytes()).collect();

    let samples = Section {
        offset: align_up(HEADER_LEN, SAMPLE_ALIGN),
        len: sample_bytes.len() as u64,
    };
    let labels_sec = Section {
        offset: align_up(samples.offset + samples.len, 8),
        len: label_bytes.len() as u64,
    };
    let meta_sec = Section {
        offset: labels_sec.offset + labels_sec.len,
        len: meta.len() as u64,
    };
    let mut hasher = Fnv1a64::new();
    hasher.update(sample_bytes);
    hasher.update(&label_bytes);
    hasher.update(&meta);
    let header = Header {
        element_type,
        shape: shape.to_vec(),
        count: labels.len() as u64,
        samples,
        labels: labels_sec,
        metadata: meta_sec,
        checksum: hasher.value(),
    };
    let pad1 = (samples.offset - HEADER_LEN) as usize;
    let pad2 = (labels_sec.offset - samples.offset - samples.len) as usize;
    atomic_write(path, |w| {
        w.write_all(&header.encode())?;
        w.write_all(&vec![0u8; pad1])?;
        w.write_all(sample_bytes)?;
        w.write_all(&vec![0u8; pad2])?;
        w.write_all(&label_bytes)?;
        w.write_all(&meta)
    })?;
    tracing::debug!(
        path = %path.display(),
        count = labels.len(),
        ?shape,
        element_type = element_type.name(),
        "wrote data set"
    );
    Ok(())
}

/// A temporary path next to `path` that no other writer uses:
/// `<path>.tmp-<pid>-<n>` with `n` unique within this process, so that
/// concurrent writers (threads or processes) never share a temporary file.
pub(crate) fn unique_temp_path(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".tmp-{}-{n}", std::process::id()));
    PathBuf::from(tmp_name)
}

/// Fsyncs the directory holding `path` so that a rename into it is durable;
/// not all platforms can fsync a directory, so failures are ignored.
pub(crate) fn sync_parent_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// Writes a file by calling `fill` on a unique temporary file next to
/// `path` ([`unique_temp_path`]), fsyncing it and renaming it over `path`.
/// The temporary file is removed on failure.
pub(crate) fn atomic_write(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<(), DataError> {
    crate::output::prepare_target(path)?;
    let tmp = unique_temp_path(path);
    let io = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| DataError::Io {
            path,
            action,
            source,
        }
    };
    let result = (|| {
        let file = File::create(&tmp).map_err(io("create", &tmp))?;
        let mut w = BufWriter::new(file);
        fill(&mut w).map_err(io("write", &tmp))?;
        let file = w
            .into_inner()
            .map_err(|e| io("write", &tmp)(e.into_error()))?;
        file.sync_all().map_err(io("fsync", &tmp))?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(io("rename into place", path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    sync_parent_dir(path);
    Ok(())
}

/// Errors with the first label of `labels` (read from `path`) that is not below `num_classes`.
pub(crate) fn check_label_range(
    path: &Path,
    labels: &[u32],
    num_classes: usize,
) -> Result<(), DataError> {
    match labels
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= num_classes)
    {
        Some((index, &label)) => Err(DataError::LabelOutOfRange {
            path: path.to_path_buf(),
            index,
            label,
            num_classes,
        }),
        None => Ok(()),
    }
}
