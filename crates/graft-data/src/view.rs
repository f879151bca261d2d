//! [`View`]: a relabelled selection of a data set's samples (no pixel copies).

use crate::dataset::Dataset;
use crate::error::DataError;
use crate::rng::SplitMix64;
use crate::split::{Part, SplitRule};

/// A borrowed data set plus a list of sample indices, their labels in the
/// view's own label space, and that label space's class names.
///
/// Views never copy samples: [`sample`](Self::sample) returns slices of the
/// data set's memory map.
#[derive(Debug, Clone)]
pub struct View<'a> {
    dataset: &'a Dataset,
    indices: Vec<u32>,
    labels: Vec<u32>,
    class_names: Vec<String>,
}

impl Dataset {
    /// A view of every sample, in file order, with the file's labels.
    pub fn view(&self) -> View<'_> {
        // `Dataset::open` rejects files with more than u32::MAX samples, so
        // every index fits in a u32.
        View {
            dataset: self,
            indices: (0..self.len()).map(|i| i as u32).collect(),
            labels: self.labels().to_vec(),
            class_names: self.class_names().to_vec(),
        }
    }
}

impl<'a> View<'a> {
    fn err_path(&self) -> std::path::PathBuf {
        self.dataset.path().to_path_buf()
    }

    fn out_of_range(&self, index: usize) -> DataError {
        DataError::IndexOutOfRange {
            path: self.err_path(),
            index,
            len: self.len(),
        }
    }

    /// The data set this view borrows.
    pub fn dataset(&self) -> &'a Dataset {
        self.dataset
    }

    /// Number of samples in the view.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether the view is empty.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Data-set index of each view position.
    pub fn indices(&self) -> &[u32] {
        &self.indices
    }

    /// Label (view label space) of each view position.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Label of view position `i`.
    pub fn label(&self, i: usize) -> Result<u32, DataError> {
        self.labels
            .get(i)
            .copied()
            .ok_or_else(|| self.out_of_range(i))
    }

    /// Sample at view position `i` (u8 data sets; zero-copy).
    pub fn sample(&self, i: usize) -> Result<&'a [u8], DataError> {
        let idx = *self.indices.get(i).ok_or_else(|| self.out_of_range(i))?;
        self.dataset.sample(idx as usize)
    }

    /// Raw little-endian bytes of the sample at view position `i`.
    pub fn sample_bytes(&self, i: usize) -> Option<&'a [u8]> {
        let idx = *self.indices.get(i)?;
        self.dataset.sample_bytes(idx as usize)
    }

    /// Elements per sample.
    pub fn sample_len(&self) -> usize {
        self.dataset.sample_len()
    }

    /// Number of classes in the view's label space.
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// Class names of the view's label space.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// Number of samples of each class (view label space).
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes()];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(l as usize) {
                *c += 1;
            }
        }
        counts
    }

    /// Keeps only the samples whose label is in `classes` and renumbers
    /// `classes[k]` to `k`; class names follow.
    ///
    /// `classes` are labels of this view's label space (for
    /// [`Dataset::view`] these are the file's labels). Order of samples is
    /// preserved. Errors if a class is out of range or repeated.
    pub fn select_classes(&self, classes: &[u32]) -> Result<View<'a>, DataError> {
        let mut map: Vec<Option<u32>> = vec![None; self.num_classes()];
        for (new, &c) in classes.iter().enumerate() {
            let slot = map
                .get_mut(c as usize)
                .ok_or_else(|| DataError::ClassOutOfRange {
                    path: self.err_path(),
                    class: c,
                    num_classes: self.num_classes(),
                })?;
            if slot.is_some() {
                return Err(DataError::DuplicateClass {
                    path: self.err_path(),
                    class: c,
                });
            }
            // new < classes.len() <= num_classes, which came from u32 labels.
            *slot = Some(new as u32);
        }
        let mut indices = Vec::new();
        let mut labels = Vec::new();
        for (&idx, &l) in self.indices.iter().zip(&self.labels) {
            if let Some(Some(new)) = map.get(l as usize) {
                indices.push(idx);
                labels.push(*new);
            }
        }
        let class_names = classes
            .iter()
            .map(|&c| self.class_names[c as usize].clone())
            .collect();
        Ok(View {
            dataset: self.dataset,
            indices,
            labels,
            class_names,
        })
    }

    /// Keeps the samples that `rule` assigns to `part`, in view order.
    ///
    /// The rule sees each sample's position within its class over the whole
    /// file ([`Dataset::class_ranks`]), so the result does not depend on
    /// which view it is applied to. Errors if the rule is invalid.
    pub fn split(&self, rule: SplitRule, part: Part) -> Result<View<'a>, DataError> {
        rule.validate()
            .map_err(|reason| DataError::InvalidArgument {
                path: self.err_path(),
                reason,
            })?;
        let ranks = self.dataset.class_ranks();
        let keep = |idx: u32| {
            ranks
                .get(idx as usize)
                .is_some_and(|&r| rule.part_of(r as usize) == part)
        };
        Ok(self.filter_positions(|pos| keep(self.indices[pos])))
    }

    fn filter_positions(&self, mut keep: impl FnMut(usize) -> bool) -> View<'a> {
        let mut indices = Vec::new();
        let mut labels = Vec::new();
        for pos in 0..self.len() {
            if keep(pos) {
                indices.push(self.indices[pos]);
                labels.push(self.labels[pos]);
            }
        }
        View {
            dataset: self.dataset,
            indices,
            labels,
            class_names: self.class_names.clone(),
        }
    }

    fn at_positions(&self, positions: &[usize]) -> View<'a> {
        View {
            dataset: self.dataset,
            indices: positions.iter().map(|&p| self.indices[p]).collect(),
            labels: positions.iter().map(|&p| self.labels[p]).collect(),
            class_names: self.class_names.clone(),
        }
    }

    /// Samples `k` examples of every class.
    ///
    /// One [`SplitMix64`] is seeded with `seed`; for each class `c = 0, 1,
    /// ...` in turn, that class's samples (in view order) are permuted with
    /// [`SplitMix64::shuffle`] (Fisher–Yates) using that same generator, and
    /// the first `k` are kept. The result is ordered by class, then by
    /// permutation order; labels and class names are unchanged. The same
    /// seed on the same view always gives the same result. Errors if some
    /// class has fewer than `k` samples.
    pub fn k_shot(&self, k: usize, seed: u64) -> Result<View<'a>, DataError> {
        self.sample_per_class(Some(k), seed)
    }

    /// Like [`k_shot`](Self::k_shot) with every sample of every class kept:
    /// a per-class shuffle with the same generator sequence.
    pub fn k_shot_all(&self, seed: u64) -> Result<View<'a>, DataError> {
        self.sample_per_class(None, seed)
    }

    fn sample_per_class(&self, k: Option<usize>, seed: u64) -> Result<View<'a>, DataError> {
        let positions =
            sample_positions(&self.labels, &self.class_names, k, seed, || self.err_path())?;
        Ok(self.at_positions(&positions))
    }
}

/// Positions (into `labels`) of the k-shot draw shared by image and text views: one
/// [`SplitMix64`] seeded with `seed` permutes each class's positions in turn (class 0
/// first) and the first `k` (or all) are kept, ordered by class then permutation. Errors,
/// naming `path()`, when a class has fewer than `k`.
pub(crate) fn sample_positions(
    labels: &[u32],
    class_names: &[String],
    k: Option<usize>,
    seed: u64,
    path: impl Fn() -> std::path::PathBuf,
) -> Result<Vec<usize>, DataError> {
    let mut per_class: Vec<Vec<usize>> = vec![Vec::new(); class_names.len()];
    for (pos, &l) in labels.iter().enumerate() {
        if let Some(v) = per_class.get_mut(l as usize) {
            v.push(pos);
        }
    }
    if let Some(k) = k {
        if let Some((c, v)) = per_class.iter().enumerate().find(|(_, v)| v.len() < k) {
            return Err(DataError::NotEnoughSamples {
                path: path(),
                class: c as u32,
                name: class_names[c].clone(),
                available: v.len(),
                k,
            });
        }
    }
    let mut rng = SplitMix64::new(seed);
    let mut positions = Vec::new();
    for mut v in per_class {
        rng.shuffle(&mut v);
        let keep = k.unwrap_or(v.len());
        positions.extend_from_slice(&v[..keep]);
    }
    Ok(positions)
}
