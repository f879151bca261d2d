//! [`DatasetWriter`]: writes a data set one sample at a time, so files far
//! larger than memory can be produced (only the labels, 4 bytes a sample,
//! are kept until the end).

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::checksum::Fnv1a64;
use crate::error::DataError;
use crate::f16::f32_to_f16;
use crate::format::{
    align_up, sync_parent_dir, unique_temp_path, ElementType, Header, Section, HEADER_LEN,
    MAX_NDIM, SAMPLE_ALIGN,
};
use crate::metadata::{Metadata, MAX_METADATA_LEN};

/// Running mean / population standard deviation of sample values, on the
/// scale the metadata uses (u8 divided by 255, f32/f16 as stored).
#[derive(Debug, Clone, Default)]
pub(crate) struct Stats {
    hist: Option<Box<[u64; 256]>>,
    n: u64,
    mean: f64,
    m2: f64,
    /// Values not yet folded in: blocks of [`STATS_BLOCK`] are folded whatever the calls
    /// that delivered them, so the statistics do not depend on how samples were pushed.
    pending: Vec<f32>,
}

/// From this many bytes, [`DatasetWriter::push_f32_rows`] syncs them to disk while hashing.
const EARLY_SYNC_BYTES: usize = 1 << 20;

/// Values per block of the f32 statistics.
const STATS_BLOCK: usize = 4096;

/// `(count, mean, M2)` of a block, in f64: the sum, then the squared deviations, each in
/// four partial sums (independent chains, so the loops vectorise).
fn block_moments(values: &[f32]) -> (u64, f64, f64) {
    let lanes = |f: &dyn Fn(f64) -> f64| {
        let mut acc = [0.0f64; 4];
        let mut chunks = values.chunks_exact(4);
        for c in &mut chunks {
            for t in 0..4 {
                acc[t] += f(f64::from(c[t]));
            }
        }
        let tail: f64 = chunks.remainder().iter().map(|&v| f(f64::from(v))).sum();
        (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
    };
    let n = values.len();
    let mean = lanes(&|v| v) / n as f64;
    let m2 = lanes(&|v| (v - mean) * (v - mean));
    (n as u64, mean, m2)
}

impl Stats {
    pub(crate) fn add_u8(&mut self, values: &[u8]) {
        let hist = self.hist.get_or_insert_with(|| Box::new([0u64; 256]));
        for &v in values {
            hist[usize::from(v)] += 1;
        }
    }

    /// Buffers `values`, folding every full block of [`STATS_BLOCK`] into the running
    /// moments (Chan et al.'s pairwise combination, in f64).
    pub(crate) fn add_f32(&mut self, values: impl IntoIterator<Item = f32>) {
        for v in values {
            self.pending.push(v);
            if self.pending.len() == STATS_BLOCK {
                let block = std::mem::take(&mut self.pending);
                self.fold(&block);
                self.pending = block;
                self.pending.clear();
            }
        }
    }

    fn fold(&mut self, block: &[f32]) {
        if block.is_empty() {
            return;
        }
        let (nb, mean_b, m2_b) = block_moments(block);
        let (na, nf) = (self.n as f64, (self.n + nb) as f64);
        let delta = mean_b - self.mean;
        self.mean += delta * nb as f64 / nf;
        self.m2 += m2_b + delta * delta * na * nb as f64 / nf;
        self.n += nb;
    }

    /// `(mean, std)`, or `None` when no finite statistics exist.
    pub(crate) fn finish(&self) -> Option<(f32, f32)> {
        if let Some(hist) = &self.hist {
            return crate::pixel_stats::histogram_stats(hist);
        }
        let mut all = Stats {
            hist: None,
            n: self.n,
            mean: self.mean,
            m2: self.m2,
            pending: Vec::new(),
        };
        all.fold(&self.pending);
        if all.n == 0 {
            return None;
        }
        let (mean, std) = (all.mean as f32, (all.m2 / all.n as f64).sqrt() as f32);
        (mean.is_finite() && std.is_finite()).then_some((mean, std))
    }
}

/// Writes a data set sample by sample.
///
/// Samples stream to a unique temporary file next to the target
/// (`<path>.tmp-<pid>-<n>`) while their FNV-1a 64 checksum and value
/// statistics are accumulated; [`finish`](Self::finish) appends labels and
/// metadata, writes the header, fsyncs and renames the file into place.
/// Dropping an unfinished writer removes the temporary file.
#[derive(Debug)]
pub struct DatasetWriter {
    path: PathBuf,
    tmp: PathBuf,
    out: Option<BufWriter<File>>,
    element_type: ElementType,
    shape: Vec<usize>,
    sample_len: usize,
    labels: Vec<u32>,
    hasher: Fnv1a64,
    stats: Stats,
    scratch: Vec<u8>,
}

impl DatasetWriter {
    /// Starts writing a data set of `element_type` samples of `shape` (1 to
    /// 4 dimensions, each 1 to `u32::MAX`) to `path`.
    pub fn create(
        path: impl AsRef<Path>,
        element_type: ElementType,
        shape: &[usize],
    ) -> Result<DatasetWriter, DataError> {
        let path = path.as_ref().to_path_buf();
        let invalid = |reason: String| DataError::InvalidInput {
            path: path.clone(),
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
        let sample_len = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .filter(|n| n.checked_mul(element_type.size()).is_some())
            .ok_or_else(|| invalid(format!("sample shape {shape:?} overflows")))?;
        crate::output::prepare_target(&path)?;
        let tmp = unique_temp_path(&path);
        let file = File::create(&tmp).map_err(|source| DataError::Io {
            path: tmp.clone(),
            action: "create",
            source,
        })?;
        let mut writer = DatasetWriter {
            path,
            tmp,
            out: Some(BufWriter::with_capacity(1 << 20, file)),
            element_type,
            shape: shape.to_vec(),
            sample_len,
            labels: Vec::new(),
            hasher: Fnv1a64::new(),
            stats: Stats::default(),
            scratch: Vec::new(),
        };
        // Header placeholder and padding up to the aligned samples section.
        let start = align_up(HEADER_LEN, SAMPLE_ALIGN) as usize;
        writer.write_raw(&vec![0u8; start])?;
        Ok(writer)
    }

    /// The element type being written.
    pub fn element_type(&self) -> ElementType {
        self.element_type
    }

    /// Elements per sample.
    pub fn sample_len(&self) -> usize {
        self.sample_len
    }

    /// Number of samples pushed so far.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether no sample was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Mean and population standard deviation of all values pushed so far
    /// (u8 scaled to `[0, 1]`), as [`Metadata`] records them; `None` if
    /// nothing was pushed or the values are not finite.
    pub fn stats(&self) -> Option<(f32, f32)> {
        self.stats.finish()
    }

    fn io_err(&self, action: &'static str) -> impl FnOnce(std::io::Error) -> DataError {
        let path = self.tmp.clone();
        move |source| DataError::Io {
            path,
            action,
            source,
        }
    }

    fn write_raw(&mut self, bytes: &[u8]) -> Result<(), DataError> {
        let err = self.io_err("write");
        match self.out.as_mut() {
            Some(out) => out.write_all(bytes).map_err(err),
            None => Err(err(std::io::Error::other("writer already finished"))),
        }
    }

    fn check_count(&self) -> Result<(), DataError> {
        if self.labels.len() as u64 >= u64::from(u32::MAX) {
            return Err(DataError::InvalidInput {
                path: self.path.clone(),
                reason: format!("more than {} samples", u32::MAX),
            });
        }
        Ok(())
    }

    /// Appends one sample given as its stored little-endian bytes
    /// (`sample_len * element size` bytes) with its label.
    pub fn push_bytes(&mut self, bytes: &[u8], label: u32) -> Result<(), DataError> {
        let expected = self.sample_len * self.element_type.size();
        if bytes.len() != expected {
            return Err(DataError::InvalidInput {
                path: self.path.clone(),
                reason: format!(
                    "sample {} has {} bytes, expected {expected} ({} x {})",
                    self.labels.len(),
                    bytes.len(),
                    self.element_type.name(),
                    self.sample_len
                ),
            });
        }
        self.check_count()?;
        self.write_raw(bytes)?;
        self.hasher.update(bytes);
        match self.element_type {
            ElementType::U8 => self.stats.add_u8(bytes),
            ElementType::F32 => self.stats.add_f32(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            ),
            ElementType::F16 => self.stats.add_f32(
                bytes
                    .chunks_exact(2)
                    .map(|c| crate::f16::f16_to_f32(u16::from_le_bytes([c[0], c[1]]))),
            ),
        }
        self.labels.push(label);
        Ok(())
    }

    /// Appends one sample of `sample_len` values, stored as f32 or rounded
    /// to f16 (nearest, ties to even) depending on the element type. Errors
    /// for u8 writers (use [`push_bytes`](Self::push_bytes)).
    pub fn push_f32(&mut self, values: &[f32], label: u32) -> Result<(), DataError> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        match self.element_type {
            ElementType::F32 => scratch.extend(values.iter().flat_map(|v| v.to_le_bytes())),
            ElementType::F16 => {
                scratch.extend(values.iter().flat_map(|&v| f32_to_f16(v).to_le_bytes()))
            }
            ElementType::U8 => {
                return Err(DataError::InvalidInput {
                    path: self.path.clone(),
                    reason: "f32 values pushed to a u8 data set; push bytes instead".into(),
                })
            }
        }
        let result = self.push_bytes(&scratch, label);
        self.scratch = scratch;
        result
    }

    /// Appends `labels.len()` samples of `sample_len` values each (row-major `values`), as
    /// [`push_f32`](Self::push_f32) would one by one, with the same bytes, checksum and
    /// statistics, but as one large write: f32 samples are written straight from `values`
    /// (their little-endian bytes, without a copy on little-endian machines), f16 samples
    /// from one converted buffer. The checksum (FNV-1a, a serial chain through every byte)
    /// is computed on a second thread while this one accumulates the statistics and writes
    /// and syncs the bytes.
    pub fn push_f32_rows(&mut self, values: &[f32], labels: &[u32]) -> Result<(), DataError> {
        if Some(values.len()) != labels.len().checked_mul(self.sample_len) {
            return Err(DataError::InvalidInput {
                path: self.path.clone(),
                reason: format!(
                    "{} values for {} samples of {} values",
                    values.len(),
                    labels.len(),
                    self.sample_len
                ),
            });
        }
        if (self.labels.len() as u64).saturating_add(labels.len() as u64) > u64::from(u32::MAX) {
            return Err(DataError::InvalidInput {
                path: self.path.clone(),
                reason: format!("more than {} samples", u32::MAX),
            });
        }
        let converted: Vec<u8>;
        let bytes: &[u8] = match self.element_type {
            ElementType::F32 if cfg!(target_endian = "little") => {
                // SAFETY: f32 has no padding and every byte pattern is a valid u8; the slice
                // covers exactly the values' memory, borrowed for as long as `values`.
                unsafe {
                    std::slice::from_raw_parts(
                        values.as_ptr().cast::<u8>(),
                        std::mem::size_of_val(values),
                    )
                }
            }
            ElementType::F32 => {
                converted = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                &converted
            }
            ElementType::F16 => {
                converted = values
                    .iter()
                    .flat_map(|&v| f32_to_f16(v).to_le_bytes())
                    .collect();
                &converted
            }
            ElementType::U8 => {
                return Err(DataError::InvalidInput {
                    path: self.path.clone(),
                    reason: "f32 values pushed to a u8 data set; push bytes instead".into(),
                })
            }
        };
        let element_type = self.element_type;
        let tmp = self.tmp.clone();
        let err = move |source| DataError::Io {
            path: tmp,
            action: "write",
            source,
        };
        let (hasher, stats, out) = (&mut self.hasher, &mut self.stats, &mut self.out);
        let written = std::thread::scope(|scope| {
            let hashing = scope.spawn(|| hasher.update(bytes));
            match element_type {
                // The stored values, as push_bytes reads them back.
                ElementType::F16 => stats.add_f32(
                    bytes
                        .chunks_exact(2)
                        .map(|c| crate::f16::f16_to_f32(u16::from_le_bytes([c[0], c[1]]))),
                ),
                _ => stats.add_f32(values.iter().copied()),
            }
            let written = match out.as_mut() {
                // A large write is flushed and synced while the checksum is still being
                // computed, so the disk works during the hash instead of after it (`finish`
                // syncs again, for the rest).
                Some(out) => out
                    .write_all(bytes)
                    .and_then(|()| {
                        if bytes.len() >= EARLY_SYNC_BYTES {
                            out.flush()?;
                            out.get_ref().sync_data()?;
                        }
                        Ok(())
                    })
                    .map_err(err),
                None => Err(err(std::io::Error::other("writer already finished"))),
            };
            hashing
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            written
        });
        written?;
        self.labels.extend_from_slice(labels);
        Ok(())
    }

    /// Writes labels, metadata and header and moves the file into place.
    ///
    /// Every label must be smaller than `metadata.class_names.len()`.
    pub fn finish(mut self, metadata: &Metadata) -> Result<(), DataError> {
        let num_classes = metadata.class_names.len();
        if let Some((index, &label)) = self
            .labels
            .iter()
            .enumerate()
            .find(|(_, &l)| l as usize >= num_classes)
        {
            return Err(DataError::LabelOutOfRange {
                path: self.path.clone(),
                index,
                label,
                num_classes,
            });
        }
        let meta = metadata.encode().map_err(|e| DataError::InvalidInput {
            path: self.path.clone(),
            reason: format!("metadata cannot be encoded: {e}"),
        })?;
        if meta.len() as u64 > MAX_METADATA_LEN {
            return Err(DataError::InvalidInput {
                path: self.path.clone(),
                reason: format!(
                    "metadata is {} bytes, more than the limit of {MAX_METADATA_LEN}",
                    meta.len()
                ),
            });
        }
        let label_bytes: Vec<u8> = self.labels.iter().flat_map(|l| l.to_le_bytes()).collect();
        let samples = Section {
            offset: align_up(HEADER_LEN, SAMPLE_ALIGN),
            len: (self.labels.len() * self.sample_len * self.element_type.size()) as u64,
        };
        let labels = Section {
            offset: align_up(samples.offset + samples.len, 8),
            len: label_bytes.len() as u64,
        };
        let meta_sec = Section {
            offset: labels.offset + labels.len,
            len: meta.len() as u64,
        };
        self.hasher.update(&label_bytes);
        self.hasher.update(&meta);
        let header = Header {
            element_type: self.element_type,
            shape: self.shape.clone(),
            count: self.labels.len() as u64,
            samples,
            labels,
            metadata: meta_sec,
            checksum: self.hasher.value(),
        };
        let pad = (labels.offset - samples.offset - samples.len) as usize;
        self.write_raw(&vec![0u8; pad])?;
        self.write_raw(&label_bytes)?;
        self.write_raw(&meta)?;
        let Some(out) = self.out.take() else {
            return Err(self.io_err("write")(std::io::Error::other(
                "writer already finished",
            )));
        };
        let mut file = out
            .into_inner()
            .map_err(|e| self.io_err("write")(e.into_error()))?;
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.write_all(&header.encode()))
            .map_err(self.io_err("write header"))?;
        file.sync_all().map_err(self.io_err("fsync"))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path).map_err(|source| DataError::Io {
            path: self.path.clone(),
            action: "rename into place",
            source,
        })?;
        sync_parent_dir(&self.path);
        // Renamed: nothing left for `Drop` to remove.
        self.tmp = PathBuf::new();
        tracing::debug!(
            path = %self.path.display(),
            count = self.labels.len(),
            shape = ?self.shape,
            element_type = self.element_type.name(),
            "wrote data set (streaming)"
        );
        Ok(())
    }
}

impl Drop for DatasetWriter {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            self.out = None;
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
