//! Labelled examples held in memory as normalised f32 rows, the unit every training loop
//! draws shuffled batches from.

use graft_data::{Normalize, SplitMix64, View};

use crate::TransferError;

/// `n` rows of `width` normalised values with their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Examples {
    /// Row-major values, `len() * width` of them.
    pub x: Vec<f32>,
    /// One label per row, in `0..num_classes`.
    pub y: Vec<usize>,
    /// Values per row.
    pub width: usize,
    /// Number of classes the labels range over.
    pub num_classes: usize,
}

impl Examples {
    /// Converts every sample of `view` to normalised f32 (one read of the memory map).
    pub fn from_view(view: &View<'_>, norm: Normalize) -> Result<Self, TransferError> {
        Ok(Self {
            x: view.to_f32(norm)?,
            y: view.labels().iter().map(|&l| l as usize).collect(),
            width: view.sample_len(),
            num_classes: view.num_classes(),
        })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.x[i * self.width..(i + 1) * self.width]
    }

    /// Copies rows `idx` into `x` and their labels into `y` (both cleared first).
    pub fn gather(&self, idx: &[usize], x: &mut Vec<f32>, y: &mut Vec<usize>) {
        x.clear();
        y.clear();
        for &i in idx {
            x.extend_from_slice(self.row(i));
            y.push(self.y[i]);
        }
    }
}

/// Endless shuffled mini-batches: each epoch is a new permutation drawn from [`SplitMix64`].
#[derive(Debug)]
pub struct Shuffler {
    rng: SplitMix64,
    order: Vec<usize>,
    pos: usize,
    batch: usize,
    shuffles: u64,
}

impl Shuffler {
    /// Batches of `batch` indices into `0..n`, shuffled with `seed`.
    pub fn new(n: usize, batch: usize, seed: u64) -> Self {
        Self {
            rng: SplitMix64::new(seed),
            order: (0..n).collect(),
            pos: n,
            batch: batch.max(1),
            shuffles: 0,
        }
    }

    /// Where the shuffler stands: (permutations drawn, position in the current one).
    pub fn position(&self) -> (u64, usize) {
        (self.shuffles, self.pos)
    }

    /// The shuffler `Shuffler::new(n, batch, seed)` becomes after drawing `shuffles`
    /// permutations and `pos` indices of the last: the permutations are replayed, so the
    /// generator's state is exactly the original's.
    pub fn resume(n: usize, batch: usize, seed: u64, shuffles: u64, pos: usize) -> Self {
        let mut s = Self::new(n, batch, seed);
        for _ in 0..shuffles {
            s.rng.shuffle(&mut s.order);
        }
        s.shuffles = shuffles;
        s.pos = if shuffles == 0 { n } else { pos.min(n) };
        s
    }

    /// The next batch's indices; an epoch's last batch may be shorter.
    pub fn next_batch(&mut self) -> &[usize] {
        if self.pos >= self.order.len() {
            self.rng.shuffle(&mut self.order);
            self.shuffles += 1;
            self.pos = 0;
        }
        let end = (self.pos + self.batch).min(self.order.len());
        let out = &self.order[self.pos..end];
        self.pos = end;
        out
    }
}
