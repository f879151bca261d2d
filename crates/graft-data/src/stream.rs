//! [`WindowedReader`]: reads a data set through memory maps of one window
//! at a time, for files larger than the address space a process may use.
//!
//! [`Dataset::open`](crate::Dataset::open) maps the whole file, which is
//! cheap in memory (pages are loaded on demand and can be dropped by the
//! kernel) but needs address space for the whole file, so it fails under a
//! small `ulimit -v`. The windowed reader validates the file exactly like
//! `Dataset::open` (header, sections, labels, metadata), keeps only the
//! labels and metadata in memory, and maps at most `window_bytes` of
//! samples at once.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::MmapOptions;

use crate::batch::{Batch, Converter, Normalize};
use crate::checksum::Fnv1a64;
use crate::dataset::decode_labels_metadata;
use crate::error::DataError;
use crate::format::{Header, HEADER_LEN};
use crate::metadata::Metadata;

/// A validated data set read window by window; see the [module docs](self).
#[derive(Debug)]
pub struct WindowedReader {
    path: PathBuf,
    file: File,
    header: Header,
    labels: Vec<u32>,
    metadata: Metadata,
    window_samples: usize,
}

fn read_exact_at(file: &File, path: &Path, offset: u64, len: u64) -> Result<Vec<u8>, DataError> {
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        action: "read",
        source,
    };
    let len = usize::try_from(len).map_err(|_| DataError::SizeOverflow {
        path: path.to_path_buf(),
        what: "section length",
    })?;
    let mut buf = vec![0u8; len];
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.read_exact_at(&mut buf, offset).map_err(io)?;
    }
    #[cfg(not(unix))]
    {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = file;
        f.seek(SeekFrom::Start(offset)).map_err(io)?;
        f.read_exact(&mut buf).map_err(io)?;
    }
    Ok(buf)
}

impl WindowedReader {
    /// Opens and validates `path`; sample windows will span about
    /// `window_bytes` (at least one sample).
    pub fn open(path: impl AsRef<Path>, window_bytes: usize) -> Result<WindowedReader, DataError> {
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
        let head = read_exact_at(&file, &path, 0, HEADER_LEN)?;
        let header = Header::decode(&head, file_len, &path)?;
        let labels_bytes = read_exact_at(&file, &path, header.labels.offset, header.labels.len)?;
        let meta_bytes = read_exact_at(&file, &path, header.metadata.offset, header.metadata.len)?;
        let (labels, metadata) = decode_labels_metadata(&labels_bytes, &meta_bytes, &path)?;
        let window_samples = (window_bytes / header.sample_bytes().max(1)).max(1);
        Ok(WindowedReader {
            path,
            file,
            header,
            labels,
            metadata,
            window_samples,
        })
    }

    /// The validated header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// All labels.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// The metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Calls `f(first_sample_index, bytes)` for consecutive windows of whole
    /// samples, in file order; each window is mapped only during its call.
    pub fn for_each_window(
        &self,
        mut f: impl FnMut(usize, &[u8]) -> Result<(), DataError>,
    ) -> Result<(), DataError> {
        let sb = self.header.sample_bytes() as u64;
        let mut first = 0usize;
        while first < self.len() {
            let n = self.window_samples.min(self.len() - first);
            let offset = self.header.samples.offset + first as u64 * sb;
            let len = n as u64 * sb;
            // SAFETY: read-only map of a file that graft never modifies in
            // place (see `Dataset::open`); its range was validated against
            // the file length by `Header::decode`.
            let map = unsafe {
                MmapOptions::new()
                    .offset(offset)
                    .len(len as usize)
                    .map(&self.file)
            }
            .map_err(|source| DataError::Io {
                path: self.path.clone(),
                action: "memory-map a window",
                source,
            })?;
            f(first, &map)?;
            drop(map);
            first += n;
        }
        Ok(())
    }

    /// Recomputes the checksum window by window and compares it with the
    /// stored one.
    pub fn verify_checksum(&self) -> Result<(), DataError> {
        self.stream(None, Normalize::IDENTITY, |_| Ok(()))
    }

    /// Streams every sample in file order as normalised f32 batches of
    /// `batch_size` (a batch never spans two windows, so batches at window
    /// ends may be smaller) while recomputing the checksum; errors with
    /// [`DataError::ChecksumMismatch`] at the end if it differs.
    pub fn stream_batches(
        &self,
        batch_size: usize,
        norm: Normalize,
        f: impl FnMut(Batch<'_>) -> Result<(), DataError>,
    ) -> Result<(), DataError> {
        norm.check_for(&self.path)?;
        if batch_size == 0 {
            return Err(DataError::InvalidArgument {
                path: self.path.clone(),
                reason: "batch size must be at least 1".into(),
            });
        }
        self.stream(Some(batch_size), norm, f)
    }

    fn stream(
        &self,
        batch_size: Option<usize>,
        norm: Normalize,
        mut f: impl FnMut(Batch<'_>) -> Result<(), DataError>,
    ) -> Result<(), DataError> {
        let conv = Converter::new(self.header.element_type, norm);
        let n = self.header.sample_len();
        let sb = self.header.sample_bytes();
        let mut hasher = Fnv1a64::new();
        let (mut images, mut labels, mut positions) = (Vec::new(), Vec::new(), Vec::new());
        self.for_each_window(|first, bytes| {
            hasher.update(bytes);
            let Some(batch_size) = batch_size else {
                return Ok(());
            };
            for (b, chunk) in bytes
                .chunks(batch_size.saturating_mul(sb).max(1))
                .enumerate()
            {
                let start = first + b * batch_size;
                let count = chunk.len() / sb.max(1);
                images.resize(count * n, 0.0);
                labels.clear();
                positions.clear();
                for (j, (src, out)) in chunk
                    .chunks_exact(sb.max(1))
                    .zip(images.chunks_exact_mut(n.max(1)))
                    .enumerate()
                {
                    conv.convert(src, out);
                    labels.push(self.labels[start + j] as usize);
                    positions.push(start + j);
                }
                f(Batch {
                    images: &images,
                    labels: &labels,
                    positions: &positions,
                    len: count,
                })?;
            }
            Ok(())
        })?;
        let labels_bytes: Vec<u8> = self.labels.iter().flat_map(|l| l.to_le_bytes()).collect();
        hasher.update(&labels_bytes);
        let meta = read_exact_at(
            &self.file,
            &self.path,
            self.header.metadata.offset,
            self.header.metadata.len,
        )?;
        hasher.update(&meta);
        let computed = hasher.value();
        if computed != self.header.checksum {
            return Err(DataError::ChecksumMismatch {
                path: self.path.clone(),
                stored: self.header.checksum,
                computed,
            });
        }
        Ok(())
    }
}
