//! Conversion to normalised f32 and mini-batch iteration.

use std::sync::mpsc::{channel, sync_channel, Receiver, Sender};

use crate::error::DataError;
use crate::format::ElementType;
use crate::metadata::Metadata;
use crate::rng::SplitMix64;
use crate::view::View;

/// Normalisation applied when converting samples to f32:
/// `(x - mean) / std`, where `x` is `pixel / 255` for u8 data sets and the
/// stored value for f32 and f16 data sets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalize {
    /// Subtracted after scaling.
    pub mean: f32,
    /// Divisor; must be finite and positive.
    pub std: f32,
}

impl Normalize {
    /// No normalisation beyond scaling u8 to `[0, 1]`.
    pub const IDENTITY: Normalize = Normalize {
        mean: 0.0,
        std: 1.0,
    };

    /// The data set's own statistics, if its metadata has both.
    pub fn from_metadata(metadata: &Metadata) -> Option<Normalize> {
        Some(Normalize {
            mean: metadata.mean?,
            std: metadata.std?,
        })
    }

    /// Normalises one u8 pixel: `(p / 255 - mean) / std`.
    pub fn apply_u8(&self, p: u8) -> f32 {
        (f32::from(p) / 255.0 - self.mean) / self.std
    }

    /// Normalises one stored f32 value: `(v - mean) / std`.
    pub fn apply_f32(&self, v: f32) -> f32 {
        (v - self.mean) / self.std
    }

    pub(crate) fn check(&self, view: &View<'_>) -> Result<(), DataError> {
        self.check_for(view.dataset().path())
    }

    pub(crate) fn check_for(&self, path: &std::path::Path) -> Result<(), DataError> {
        if self.mean.is_finite() && self.std.is_finite() && self.std > 0.0 {
            Ok(())
        } else {
            Err(DataError::InvalidArgument {
                path: path.to_path_buf(),
                reason: format!(
                    "normalisation mean {} / std {} is invalid; use a finite mean and a finite std > 0",
                    self.mean, self.std
                ),
            })
        }
    }
}

/// Precomputed converter from stored bytes to normalised f32.
#[derive(Debug, Clone)]
pub(crate) struct Converter {
    element_type: ElementType,
    norm: Normalize,
    /// `lut[p]` is the normalised value of pixel `p`; an array, so `u8` indices need no
    /// bounds check.
    lut: Box<[f32; 256]>,
}

impl Converter {
    pub(crate) fn new(element_type: ElementType, norm: Normalize) -> Self {
        let mut lut = Box::new([0.0f32; 256]);
        for (p, v) in lut.iter_mut().enumerate() {
            *v = norm.apply_u8(p as u8);
        }
        Self {
            element_type,
            norm,
            lut,
        }
    }

    /// Writes the normalised elements of `bytes` into `out`; elements that
    /// `bytes` lacks are set to 0 (cannot happen for validated data sets).
    pub(crate) fn convert(&self, bytes: &[u8], out: &mut [f32]) {
        let size = self.element_type.size();
        if bytes.len() != out.len() * size {
            out.fill(0.0);
        }
        match self.element_type {
            ElementType::U8 => {
                for (o, &b) in out.iter_mut().zip(bytes) {
                    *o = self.lut[usize::from(b)];
                }
            }
            ElementType::F32 => {
                for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                    *o = self
                        .norm
                        .apply_f32(f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
                }
            }
            ElementType::F16 => {
                for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    *o = self
                        .norm
                        .apply_f32(crate::f16::f16_to_f32(u16::from_le_bytes([c[0], c[1]])));
                }
            }
        }
    }
}

impl<'a> View<'a> {
    /// All samples of the view as normalised f32, in view order
    /// (`len() * sample_len()` values).
    pub fn to_f32(&self, norm: Normalize) -> Result<Vec<f32>, DataError> {
        norm.check(self)?;
        let n = self.sample_len();
        let total = n
            .checked_mul(self.len())
            .ok_or_else(|| DataError::InvalidArgument {
                path: self.dataset().path().to_path_buf(),
                reason: "view too large to convert to f32".into(),
            })?;
        let conv = Converter::new(self.dataset().element_type(), norm);
        let mut out = vec![0.0f32; total];
        for (pos, chunk) in out.chunks_exact_mut(n.max(1)).enumerate() {
            conv.convert(self.sample_bytes(pos).unwrap_or(&[]), chunk);
        }
        Ok(out)
    }

    /// Mini-batches over the view, for one epoch.
    ///
    /// If `shuffle`, the order is a Fisher–Yates permutation of the view's
    /// positions drawn from [`SplitMix64`] seeded with `seed_for_epoch`;
    /// otherwise it is view order and the seed is unused. Every sample
    /// appears exactly once; the last batch may be smaller than
    /// `batch_size`. Errors if `batch_size` is 0 or `norm` is invalid.
    pub fn batches(
        &self,
        batch_size: usize,
        seed_for_epoch: u64,
        norm: Normalize,
        shuffle: bool,
    ) -> Result<BatchIter<'_, 'a>, DataError> {
        norm.check(self)?;
        if batch_size == 0 {
            return Err(DataError::InvalidArgument {
                path: self.dataset().path().to_path_buf(),
                reason: "batch size must be at least 1".into(),
            });
        }
        let mut order: Vec<usize> = (0..self.len()).collect();
        if shuffle {
            SplitMix64::new(seed_for_epoch).shuffle(&mut order);
        }
        Ok(BatchIter {
            view: self,
            order,
            cursor: 0,
            batch_size,
            conv: Converter::new(self.dataset().element_type(), norm),
            images: Vec::new(),
            labels: Vec::new(),
            positions: Vec::new(),
        })
    }
}

/// One mini-batch, borrowed from its [`BatchIter`]'s reused buffers.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'b> {
    /// `len * sample_len` normalised values, sample-major.
    pub images: &'b [f32],
    /// Label (view label space) of each sample, as `usize`.
    pub labels: &'b [usize],
    /// View position of each sample.
    pub positions: &'b [usize],
    /// Number of samples in this batch.
    pub len: usize,
}

/// Lending iterator over mini-batches of a [`View`]; see [`View::batches`].
#[derive(Debug)]
pub struct BatchIter<'v, 'a> {
    view: &'v View<'a>,
    order: Vec<usize>,
    cursor: usize,
    batch_size: usize,
    conv: Converter,
    images: Vec<f32>,
    labels: Vec<usize>,
    positions: Vec<usize>,
}

impl BatchIter<'_, '_> {
    /// Number of batches in the epoch (including a final partial one).
    pub fn num_batches(&self) -> usize {
        self.order.len().div_ceil(self.batch_size)
    }

    /// The epoch's order of view positions.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// The next batch, or `None` at the end of the epoch. The returned batch
    /// borrows buffers that the next call overwrites.
    pub fn next_batch(&mut self) -> Option<Batch<'_>> {
        let rest = self.order.get(self.cursor..)?;
        if rest.is_empty() {
            return None;
        }
        let take = rest.len().min(self.batch_size);
        let chosen = &rest[..take];
        self.cursor += take;
        let n = self.view.sample_len();
        self.images.resize(take * n, 0.0);
        self.labels.clear();
        self.positions.clear();
        for (&pos, out) in chosen.iter().zip(self.images.chunks_exact_mut(n.max(1))) {
            self.conv
                .convert(self.view.sample_bytes(pos).unwrap_or(&[]), out);
            self.labels
                .push(self.view.labels().get(pos).map_or(0, |&l| l as usize));
            self.positions.push(pos);
        }
        Some(Batch {
            images: &self.images,
            labels: &self.labels,
            positions: &self.positions,
            len: take,
        })
    }
}

/// Buffers of one batch prepared by the prefetching worker.
#[derive(Debug, Default)]
struct OwnedBatch {
    images: Vec<f32>,
    labels: Vec<usize>,
    positions: Vec<usize>,
}

impl OwnedBatch {
    fn as_batch(&self) -> Batch<'_> {
        Batch {
            images: &self.images,
            labels: &self.labels,
            positions: &self.positions,
            len: self.positions.len(),
        }
    }
}

/// Mini-batches prepared on a worker thread; see
/// [`View::prefetching_batches`].
///
/// While the caller holds batch `k`, the worker has batch `k + 1` ready in
/// a one-slot channel and is filling batch `k + 2`; buffers are recycled,
/// so an epoch allocates at most three of them.
#[derive(Debug)]
pub struct PrefetchBatches {
    ready: Receiver<OwnedBatch>,
    recycle: Sender<OwnedBatch>,
    current: Option<OwnedBatch>,
    num_batches: usize,
    order: Vec<usize>,
}

impl PrefetchBatches {
    /// Number of batches in the epoch (including a final partial one).
    pub fn num_batches(&self) -> usize {
        self.num_batches
    }

    /// The epoch's order of view positions (the same as
    /// [`BatchIter::order`] for the same arguments).
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// The next batch, or `None` at the end of the epoch. The returned
    /// batch's buffers go back to the worker on the next call.
    pub fn next_batch(&mut self) -> Option<Batch<'_>> {
        if let Some(done) = self.current.take() {
            // The worker may already have finished; then the buffer is dropped.
            let _ = self.recycle.send(done);
        }
        self.current = self.ready.recv().ok();
        self.current.as_ref().map(OwnedBatch::as_batch)
    }
}

impl View<'_> {
    /// Like [`batches`](Self::batches), but each batch is converted on a
    /// worker thread while `consume` works on the previous one.
    ///
    /// Batches are identical to those of `batches(batch_size,
    /// seed_for_epoch, norm, shuffle)`, in the same order. The worker lives
    /// in a [`std::thread::scope`] that ends when `consume` returns (also if
    /// it stops early), and its result is returned. Errors as `batches` does.
    ///
    /// ```
    /// # use graft_data::{write_u8_dataset, Dataset, Metadata, Normalize};
    /// # let path = std::env::temp_dir().join(format!("prefetch-doc-{}", std::process::id()));
    /// # let meta = Metadata { class_names: vec!["a".into()], ..Metadata::default() };
    /// # write_u8_dataset(&path, &[2], &[1, 2, 3, 4, 5, 6], &[0, 0, 0], &meta).unwrap();
    /// let ds = Dataset::open(&path)?;
    /// let view = ds.view();
    /// let seen = view.prefetching_batches(2, 7, Normalize::IDENTITY, true, |batches| {
    ///     let mut seen = 0;
    ///     while let Some(b) = batches.next_batch() {
    ///         seen += b.len; // train on `b` here
    ///     }
    ///     seen
    /// })?;
    /// assert_eq!(seen, 3);
    /// # std::fs::remove_file(&path).unwrap();
    /// # Ok::<(), graft_data::DataError>(())
    /// ```
    pub fn prefetching_batches<R>(
        &self,
        batch_size: usize,
        seed_for_epoch: u64,
        norm: Normalize,
        shuffle: bool,
        consume: impl FnOnce(&mut PrefetchBatches) -> R,
    ) -> Result<R, DataError> {
        let iter = self.batches(batch_size, seed_for_epoch, norm, shuffle)?;
        let order = iter.order.clone();
        let conv = iter.conv.clone();
        let num_batches = iter.num_batches();
        let (ready_tx, ready_rx) = sync_channel::<OwnedBatch>(1);
        let (recycle_tx, recycle_rx) = channel::<OwnedBatch>();
        let n = self.sample_len();
        Ok(std::thread::scope(|scope| {
            let worker_order = &order;
            scope.spawn(move || {
                for chunk in worker_order.chunks(batch_size) {
                    let mut buf = recycle_rx.try_recv().unwrap_or_default();
                    buf.images.resize(chunk.len() * n, 0.0);
                    buf.labels.clear();
                    buf.positions.clear();
                    for (&pos, out) in chunk.iter().zip(buf.images.chunks_exact_mut(n.max(1))) {
                        conv.convert(self.sample_bytes(pos).unwrap_or(&[]), out);
                        buf.labels
                            .push(self.labels().get(pos).map_or(0, |&l| l as usize));
                        buf.positions.push(pos);
                    }
                    if ready_tx.send(buf).is_err() {
                        // The consumer stopped early.
                        return;
                    }
                }
            });
            let mut batches = PrefetchBatches {
                ready: ready_rx,
                recycle: recycle_tx,
                current: None,
                num_batches,
                order: order.clone(),
            };
            consume(&mut batches)
            // `batches` drops here, closing the channel, so a worker blocked
            // on `send` returns before the scope joins it.
        }))
    }
}
