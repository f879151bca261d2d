//! Single-shot tasks behind the CLI's `pretrain`, `transfer` and `eval` commands.

use std::path::{Path, PathBuf};

use dfdx::tensor::Cpu;
use graft_data::{Dataset, Normalize, Part, SplitRule};
use graft_nn::{
    checkpoint, Backbone, Checkpoint, Classifier, LoadScope, NetworkKind, Normalization,
    RenameRules, WithBuffers,
};
use serde::Serialize;

use crate::examples::Examples;
use crate::options::TrainOptions;
use crate::pretrain::{
    pretrained_backbone, PretrainConfig, PretrainInfo, IMAGENET_LITE_NORMALIZATION,
};
use crate::protocol::{DataDirs, Protocol, ProtocolData};
use crate::strategy::{evaluate, run_strategy_with, Strategy};
use crate::TransferError;

/// Pretrains `network` on `protocol`'s source task (or reuses the cached checkpoint) and
/// copies the checkpoint to `out`.
pub fn pretrain(
    protocol: Protocol,
    network: NetworkKind,
    data: &DataDirs,
    cache_dir: &Path,
    out: &Path,
) -> Result<PretrainInfo, TransferError> {
    // Checked before any training: a device node or folder at `out` would be found only after.
    graft_data::output::check_outputs(&[], &[out])?;
    crate::options::check_writable_dir("--cache", cache_dir)?;
    protocol.check_network(network)?;
    let ds = protocol.open(data, cache_dir)?;
    let config = PretrainConfig::default();
    let info = for_network!(network, pretrain_info(protocol, &ds, cache_dir, config))?;
    let bytes = std::fs::read(&info.checkpoint).map_err(|source| TransferError::Io {
        path: info.checkpoint.clone(),
        source,
    })?;
    checkpoint::write_atomically(out, &bytes)?;
    Ok(info)
}

fn pretrain_info<B: Backbone<F>, const F: usize>(
    protocol: Protocol,
    ds: &ProtocolData,
    cache_dir: &Path,
    config: PretrainConfig,
) -> Result<PretrainInfo, TransferError> {
    Ok(pretrained_backbone::<B, F>(protocol, ds, cache_dir, config)?.1)
}

/// The result of one transfer run on a protocol's target.
#[derive(Debug, Clone, Serialize)]
pub struct TransferResult {
    /// Strategy id.
    pub strategy: String,
    /// Labels per class (`None` for all).
    pub k: Option<usize>,
    /// Seed.
    pub seed: u64,
    /// Accuracy on the target test split.
    pub accuracy: f64,
    /// Test examples.
    pub n: usize,
    /// Training wall time.
    pub wall_seconds: f64,
    /// Training FLOPs.
    pub flops: f64,
    /// Where the trained network was saved.
    pub checkpoint: PathBuf,
    /// Where the new head was trained: `cpu`, or `cuda:N` for a linear probe on a GPU.
    pub head_device: String,
}

/// One transfer run on a protocol's target: what `graft transfer` asks for.
#[derive(Debug, Clone)]
pub struct TransferRequest {
    /// The protocol whose target task to learn.
    pub protocol: Protocol,
    /// The reference network of the checkpoint.
    pub network: NetworkKind,
    /// Folders with the raw data sets.
    pub data: DataDirs,
    /// Folder for imported data sets.
    pub cache_dir: PathBuf,
    /// The pretrained checkpoint whose backbone is reused.
    pub checkpoint: PathBuf,
    /// How to reuse it.
    pub strategy: Strategy,
    /// Labels per class (`None` for all).
    pub k: Option<usize>,
    /// Seed of the k-shot draw, the new weights and the batch order.
    pub seed: u64,
    /// Where to save the trained network.
    pub out: PathBuf,
    /// Optimiser, schedule, early stopping, training-state files, feature cache.
    pub options: TrainOptions,
}

/// Reuses the request's checkpoint backbone on its protocol's target with its strategy, `k`
/// labels per class and seed; saves the trained network and evaluates it on the test split.
pub fn transfer(req: &TransferRequest) -> Result<TransferResult, TransferError> {
    req.protocol.check_network(req.network)?;
    for_network!(req.network, transfer_with(req))
}

fn transfer_with<B: Backbone<F>, const F: usize>(
    req: &TransferRequest,
) -> Result<TransferResult, TransferError> {
    let TransferRequest {
        protocol,
        data,
        cache_dir,
        checkpoint: checkpoint_path,
        strategy,
        k,
        seed,
        out,
        options,
        ..
    } = req;
    let (protocol, strategy, k, seed) = (*protocol, *strategy, *k, *seed);
    graft_data::output::check_outputs(&[checkpoint_path], &[out])?;
    // Every output location before any training: state files and features are written
    // during training, the cache when the data set is imported.
    crate::options::check_writable_dir("--cache", cache_dir)?;
    options.check_locations()?;
    let ckpt = Checkpoint::open(checkpoint_path)?;
    // The ImageNet checkpoint's preprocessing is the network's own, not a metadata entry.
    let imagenet = protocol
        .is_imagenet()
        .then_some(IMAGENET_LITE_NORMALIZATION);
    let norm = ckpt.normalization()?.or(imagenet).ok_or_else(|| {
        TransferError::Config(format!(
            "{}: no input_mean/input_std metadata; re-save it with graft pretrain",
            checkpoint_path.display()
        ))
    })?;
    let dev = Cpu::seed_from_u64(seed);
    let classes = shape_classes(&ckpt, B::HEAD_NAME, &RenameRules::default()).unwrap_or(2);
    let mut source = Classifier::<B, F>::new(&dev, classes)?;
    ckpt.load_into(
        &mut WithBuffers(&mut source),
        B::NAME,
        LoadScope::BackboneOnly { head: B::HEAD_NAME },
    )?;
    let ds = protocol.open(data, cache_dir)?;
    let normalize = Normalize {
        mean: norm.mean,
        std: norm.std,
    };
    let pool = protocol.target_pool(&ds)?;
    let shots = match k {
        Some(k) => pool.k_shot(k, seed)?,
        None => pool.k_shot_all(seed)?,
    };
    let train = Examples::from_view(&shots, normalize)?;
    let mut run =
        run_strategy_with::<B, F>(strategy, &source.backbone, &train, seed, None, options)?;
    let test = Examples::from_view(&protocol.target_test(&ds)?, normalize)?;
    let accuracy = evaluate(&run, &test)?;
    checkpoint::save(out, &WithBuffers(&mut run.model), B::NAME, Some(norm))?;
    Ok(TransferResult {
        strategy: strategy.name().into(),
        k,
        seed,
        accuracy,
        n: test.len(),
        wall_seconds: run.wall_seconds,
        flops: run.flops,
        checkpoint: out.clone(),
        head_device: run.head_device,
    })
}

/// The class count of the checkpoint's head: the length of `<head>.bias` after renaming.
fn shape_classes(ckpt: &Checkpoint, head: &str, rules: &RenameRules) -> Option<usize> {
    let want = format!("{head}.bias");
    ckpt.names()
        .into_iter()
        .find(|n| rules.apply(n).as_deref() == Some(want.as_str()))
        .and_then(|n| ckpt.shape_of(&n))
        .and_then(|s| s.first().copied())
}

/// Which part of a data set to evaluate on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitChoice {
    /// The train part under the Animal-MNIST rule.
    Train,
    /// The test part under the Animal-MNIST rule.
    Test,
    /// Every sample.
    All,
}

/// The accuracy of a checkpoint on a data set.
#[derive(Debug, Clone, Serialize)]
pub struct EvalResult {
    /// Fraction classified correctly.
    pub accuracy: f64,
    /// Samples evaluated.
    pub n: usize,
}

/// Evaluates the network in `checkpoint_path` on `data` (a graft data set file), keeping
/// `classes` (original labels, renumbered 0.. in the order given) and the chosen split.
/// `norm` overrides the checkpoint's input normalisation.
pub fn eval(
    network: NetworkKind,
    checkpoint_path: &Path,
    data: &Path,
    classes: Option<&[u32]>,
    split: SplitChoice,
    norm: Option<Normalization>,
    rules: &RenameRules,
) -> Result<EvalResult, TransferError> {
    for_network!(
        network,
        eval_with(checkpoint_path, data, classes, split, norm, rules)
    )
}

fn eval_with<B: Backbone<F>, const F: usize>(
    checkpoint_path: &Path,
    data: &Path,
    classes: Option<&[u32]>,
    split: SplitChoice,
    norm: Option<Normalization>,
    rules: &RenameRules,
) -> Result<EvalResult, TransferError> {
    let ckpt = Checkpoint::open(checkpoint_path)?;
    let norm = match norm {
        Some(n) => n,
        None => ckpt.normalization()?.ok_or_else(|| {
            TransferError::Config(format!(
                "{}: no input_mean/input_std metadata; pass --mean and --std",
                checkpoint_path.display()
            ))
        })?,
    };
    let head_classes = shape_classes(&ckpt, B::HEAD_NAME, rules).ok_or_else(|| {
        TransferError::Config(format!(
            "{}: no tensor {}.bias, so the class count is unknown; is this a {} checkpoint?",
            checkpoint_path.display(),
            B::HEAD_NAME,
            B::NAME
        ))
    })?;
    let dev = Cpu::default();
    let mut model = Classifier::<B, F>::new(&dev, head_classes)?;
    ckpt.load_into_renamed(
        &mut WithBuffers(&mut model),
        B::NAME,
        LoadScope::Whole,
        rules,
    )?;
    let ds = Dataset::open(data)?;
    let mut view = ds.view();
    view = match split {
        SplitChoice::All => view,
        SplitChoice::Train => view.split(SplitRule::ANIMAL_MNIST, Part::Train)?,
        SplitChoice::Test => view.split(SplitRule::ANIMAL_MNIST, Part::Test)?,
    };
    if let Some(c) = classes {
        view = view.select_classes(c)?;
    }
    if view.num_classes() > model.num_classes() {
        return Err(TransferError::Config(format!(
            "{} has {} classes but the checkpoint's head predicts {}; pick classes with --classes",
            data.display(),
            view.num_classes(),
            model.num_classes()
        )));
    }
    let examples = Examples::from_view(
        &view,
        Normalize {
            mean: norm.mean,
            std: norm.std,
        },
    )?;
    if examples.is_empty() {
        return Err(TransferError::Config(format!(
            "{}: no samples to evaluate on (split {split:?}, classes {classes:?}); an accuracy \
             over nothing means nothing: pick another --split or --classes",
            data.display()
        )));
    }
    let accuracy = crate::train::accuracy(&dev, &model, &examples)?;
    Ok(EvalResult {
        accuracy,
        n: examples.len(),
    })
}
