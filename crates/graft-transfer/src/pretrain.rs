//! Pretraining on the source task, cached by content hash.

use std::path::{Path, PathBuf};
use std::time::Instant;

use dfdx::tensor::Cpu;
use graft_data::checksum::fnv1a64;
use graft_data::{idx::pixel_stats, Normalize, View};
use graft_nn::{checkpoint, Backbone, Checkpoint, Classifier, LoadScope, Normalization};
use serde::{Deserialize, Serialize};

use crate::examples::Examples;
use crate::protocol::{Protocol, ProtocolData};
use crate::strategy::HEAD_LR;
use crate::train::{progress_bar, train_classifier, LearningRates, Schedule, TrainPlan};
use crate::TransferError;

/// Source training settings (PROTOCOLS.md: 5 epochs at batch 128, Adam 1e-3).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PretrainConfig {
    /// Passes over the source training set.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch: usize,
    /// Adam learning rate.
    pub lr: f32,
    /// Seed of the initial weights and the batch order.
    pub seed: u64,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        Self {
            epochs: 5,
            batch: 128,
            lr: HEAD_LR,
            seed: 0,
        }
    }
}

/// What pretraining cost and where its checkpoint lives.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PretrainInfo {
    /// The cached checkpoint.
    pub checkpoint: PathBuf,
    /// Whether it was reused from an earlier run (then the cost below is that run's).
    pub cached: bool,
    /// Wall time of the pretraining run that produced the checkpoint (0 when cached).
    pub wall_seconds: f64,
    /// FLOPs of pretraining (analytic; the same whether or not cached).
    pub flops: f64,
    /// Source examples.
    pub source_examples: usize,
    /// The settings used.
    pub config: PretrainConfig,
    /// Input normalisation computed on the source training set.
    pub mean: f32,
    /// See `mean`.
    pub std: f32,
}

/// Mean and standard deviation of the pixels (scaled to [0, 1]) of `view`.
pub fn source_normalization(view: &View<'_>) -> Result<Normalization, TransferError> {
    let mut pixels = Vec::with_capacity(view.len() * view.sample_len());
    for i in 0..view.len() {
        pixels.extend_from_slice(view.sample(i)?);
    }
    let (mean, std) = pixel_stats(&pixels)
        .filter(|&(_, s)| s > 0.0)
        .ok_or_else(|| TransferError::Config("the source data set is empty or constant".into()))?;
    Ok(Normalization { mean, std })
}

/// The backbone pretrained on `protocol`'s source task: loaded from `cache_dir` when a
/// checkpoint with the same content key exists, trained and saved otherwise.
pub fn pretrained_backbone<B: Backbone<F>, const F: usize>(
    protocol: Protocol,
    ds: &ProtocolData,
    cache_dir: &Path,
    config: PretrainConfig,
) -> Result<(B, PretrainInfo), TransferError> {
    let source = protocol.source_train(ds)?;
    let norm = source_normalization(&source)?;
    let schedule = Schedule::epochs(source.len(), config.batch, config.epochs);
    let classes = source.num_classes();
    let dev = Cpu::seed_from_u64(config.seed);
    let mut model = Classifier::<B, F>::new(&dev, classes)?;
    let flops =
        3.0 * model.forward_flops_per_sample() as f64 * (schedule.steps * config.batch) as f64;
    let key = fnv1a64(&[
        &ds.source.header().checksum.to_le_bytes(),
        protocol.name().as_bytes(),
        B::NAME.as_bytes(),
        format!("{config:?}").as_bytes(),
    ]);
    let path = cache_dir.join(format!(
        "pretrain-{}-{}-{key:016x}.safetensors",
        protocol.name(),
        B::NAME
    ));
    let mut info = PretrainInfo {
        checkpoint: path.clone(),
        cached: true,
        wall_seconds: 0.0,
        flops,
        source_examples: source.len(),
        config,
        mean: norm.mean,
        std: norm.std,
    };
    if let Ok(ckpt) = Checkpoint::open(&path) {
        if ckpt
            .load_into(&mut model, B::NAME, LoadScope::Whole)
            .is_ok()
        {
            tracing::info!("reusing pretrained checkpoint {}", path.display());
            return Ok((model.backbone, info));
        }
        tracing::warn!(
            "cached checkpoint {} does not load; retraining",
            path.display()
        );
    }
    let start = Instant::now();
    let data = Examples::from_view(
        &source,
        Normalize {
            mean: norm.mean,
            std: norm.std,
        },
    )?;
    let bar = progress_bar(schedule.steps as u64, "pretraining");
    let lrs = LearningRates {
        backbone: Some(config.lr),
        head: config.lr,
    };
    let plan = TrainPlan::uniform(schedule, B::BLOCKS.len(), lrs);
    let stats = train_classifier(&dev, &mut model, &data, &plan, config.seed, None, &bar)?;
    bar.finish_and_clear();
    info.wall_seconds = start.elapsed().as_secs_f64();
    info.flops = stats.flops;
    info.cached = false;
    checkpoint::save(&path, &model, B::NAME, Some(norm))?;
    tracing::info!(
        "pretrained {} on {} source examples in {:.1} s (final loss {:.3})",
        B::NAME,
        source.len(),
        info.wall_seconds,
        stats.final_loss
    );
    Ok((model.backbone, info))
}
