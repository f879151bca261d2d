//! Features of a candidate's blocks (and its source softmax) on the target sample, through
//! graft-data's [`FeatureCache`]: the key is the checkpoint's bytes (or the random network's
//! name and seed), the sample (data set checksum and the indices drawn), the block and the
//! input normalisation, so a second `graft advise` on the same sample reads them back.

use graft_data::checksum::fnv1a64;
use graft_data::idx::pixel_stats;
use graft_data::{FeatureCache, FeatureKey, Features, Normalize, View};
use graft_nn::{Checkpoint, NetworkKind, Normalization};

use crate::network::SourceNetwork;
use crate::{AdviseError, Candidate};

/// Cache entry name of the source head's softmax.
const SOFTMAX: &str = "softmax";

/// A candidate's features on one sample of target images.
#[derive(Debug, Clone)]
pub struct CandidateFeatures {
    /// The candidate.
    pub candidate: Candidate,
    /// Its network.
    pub kind: NetworkKind,
    /// `(block, rows * width values, width)` for each block, input first.
    pub blocks: Vec<(String, Vec<f32>, usize)>,
    /// The source head's softmax, `rows * source_classes` values.
    pub probs: Vec<f32>,
    /// Classes of the source head.
    pub source_classes: usize,
}

/// Loads `candidate` and returns its normalisation and the content hash that keys its cache
/// entries.
fn open(
    candidate: &Candidate,
    sample: &View<'_>,
) -> Result<(SourceNetwork, Normalization, u64), AdviseError> {
    let own_stats = || -> Result<Normalization, AdviseError> {
        let mut pixels = Vec::with_capacity(sample.len() * sample.sample_len());
        for i in 0..sample.len() {
            pixels.extend_from_slice(sample.sample(i)?);
        }
        let (mean, std) = pixel_stats(&pixels)
            .filter(|&(_, s)| s > 0.0)
            .ok_or_else(|| AdviseError::Config("the target sample is empty or constant".into()))?;
        Ok(Normalization { mean, std })
    };
    match candidate {
        Candidate::Random { kind, seed } => {
            let net = SourceNetwork::random(*kind, *seed)?;
            let hash = fnv1a64(&[candidate.to_string().as_bytes()]);
            Ok((net, own_stats()?, hash))
        }
        Candidate::Checkpoint(path) => {
            let bytes = std::fs::read(path).map_err(|source| AdviseError::Io {
                path: path.clone(),
                source,
            })?;
            let ckpt = Checkpoint::open(path)?;
            let (net, norm) = SourceNetwork::load(&ckpt)?;
            let norm = match norm {
                Some(n) => n,
                None => {
                    tracing::warn!(
                        "{} records no input_mean/input_std; normalising with the target sample's own statistics",
                        path.display()
                    );
                    own_stats()?
                }
            };
            Ok((net, norm, fnv1a64(&[&bytes])))
        }
    }
}

/// The features of every block of `candidate` on `sample`, read from `cache` when every entry
/// is there, computed (and stored) otherwise.
pub fn candidate_features(
    candidate: &Candidate,
    sample: &View<'_>,
    cache: Option<&FeatureCache>,
) -> Result<CandidateFeatures, AdviseError> {
    let (net, norm, checkpoint_hash) = open(candidate, sample)?;
    let kind = net.kind();
    let indices: Vec<u8> = sample
        .indices()
        .iter()
        .flat_map(|i| i.to_le_bytes())
        .collect();
    let dataset_hash = fnv1a64(&[&sample.dataset().header().checksum.to_le_bytes(), &indices]);
    let key = |layer: &str| FeatureKey {
        checkpoint_hash,
        dataset_hash,
        layer: layer.to_string(),
        preprocessing: format!("graft-advise v1; (x/255 - {}) / {}", norm.mean, norm.std),
    };
    let names = SourceNetwork::blocks(kind);
    let labels: Vec<u32> = sample.labels().to_vec();
    if let Some(cache) = cache {
        let cached: Option<Vec<(Vec<f32>, usize)>> = names
            .iter()
            .chain([&SOFTMAX])
            .map(|name| {
                cache
                    .get(&key(name))
                    .and_then(|ds| read_rows(&ds, sample.len()))
            })
            .collect();
        if let Some(mut cached) = cached {
            tracing::debug!(candidate = %candidate, "features read from the cache");
            let (probs, source_classes) = cached.pop().unwrap_or_default();
            return Ok(CandidateFeatures {
                candidate: candidate.clone(),
                kind,
                blocks: names
                    .iter()
                    .zip(cached)
                    .map(|(n, (v, w))| (n.to_string(), v, w))
                    .collect(),
                probs,
                source_classes,
            });
        }
    }
    let images = sample.to_f32(Normalize {
        mean: norm.mean,
        std: norm.std,
    })?;
    let acts = net.activations(&images)?;
    let n = sample.len().max(1);
    let source_classes = net.source_classes();
    let mut blocks = Vec::with_capacity(names.len());
    for (name, values) in acts.blocks {
        let width = values.len() / n;
        if let Some(cache) = cache {
            cache.put(
                &key(name),
                &Features::new(values.clone(), labels.clone(), width),
            )?;
        }
        blocks.push((name.to_string(), values, width));
    }
    if let Some(cache) = cache {
        cache.put(
            &key(SOFTMAX),
            &Features::new(acts.probs.clone(), labels.clone(), source_classes),
        )?;
    }
    Ok(CandidateFeatures {
        candidate: candidate.clone(),
        kind,
        blocks,
        probs: acts.probs,
        source_classes,
    })
}

/// Every row of a cached feature set, if it has `rows` of them.
fn read_rows(ds: &graft_data::Dataset, rows: usize) -> Option<(Vec<f32>, usize)> {
    if ds.len() != rows {
        return None;
    }
    let width = ds.sample_len();
    let mut values = Vec::with_capacity(rows * width);
    for i in 0..rows {
        values.extend(ds.sample_f32(i).ok()?);
    }
    Some((values, width))
}
