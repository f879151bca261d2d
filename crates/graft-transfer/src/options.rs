//! Run options shared by every strategy: optimiser, learning-rate schedule, early stopping,
//! training-state files, resumption, Ctrl-C, and the feature cache of linear probes.

use std::path::{Path, PathBuf};

use dfdx::tensor::Cpu;
use graft_data::checksum::Fnv1a64;
use graft_data::{FeatureCache, FeatureKey, Features};
use graft_nn::{Backbone, Parameters};

use crate::early_stop::EarlyStopping;
use crate::examples::Examples;
use crate::lr_schedule::LrSchedule;
use crate::optim::OptimizerConfig;
use crate::train::extract_features;
use crate::TransferError;

/// How strategies train, beyond what each strategy fixes (rates, freezing). The default
/// is PROTOCOLS.md's: Adam, constant rates, no early stopping, nothing saved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainOptions {
    /// The optimiser.
    pub optimizer: OptimizerConfig,
    /// The learning-rate schedule (a multiplier on every per-parameter rate).
    pub lr_schedule: LrSchedule,
    /// Early stopping on a validation part of the labelled examples (off by default).
    pub early_stopping: Option<EarlyStopping>,
    /// Folder for training-state files (`<strategy>-n<examples>-seed<seed>.state`).
    pub state_dir: Option<PathBuf>,
    /// Steps between training-state saves (besides the end and Ctrl-C).
    pub save_every: Option<usize>,
    /// A training-state file to continue from.
    pub resume: Option<PathBuf>,
    /// Folder of the linear-probe feature cache; `None` extracts features in memory.
    pub feature_cache: Option<PathBuf>,
    /// Stop cleanly (saving the state) when Ctrl-C was pressed
    /// ([`crate::interrupt::install`] must have been called, or a binary calls
    /// [`crate::interrupt::request`] on Ctrl-C).
    pub stop_on_interrupt: bool,
}

impl TrainOptions {
    /// Checks, before any training, that the training-state folder and the feature cache can
    /// be written (made if missing), so that a bad location fails at once rather than when
    /// the first state or features are saved.
    pub fn check_locations(&self) -> Result<(), TransferError> {
        if let Some(dir) = &self.state_dir {
            check_writable_dir("--state-dir (training-state folder)", dir)?;
        }
        if let Some(dir) = &self.feature_cache {
            check_writable_dir("--cache (linear-probe feature cache)", dir)?;
        }
        Ok(())
    }
}

/// Makes `dir` if missing and checks a file can be created in it (a probe file, removed at
/// once). `what` names the option in the one-line error.
pub fn check_writable_dir(what: &str, dir: &Path) -> Result<(), TransferError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        TransferError::Config(format!(
            "{what} {}: cannot make the folder ({e}); pass a folder you can write to",
            dir.display()
        ))
    })?;
    let probe = dir.join(format!(".graft-write-check-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)
        .map_err(|e| {
            TransferError::Config(format!(
                "{what} {}: cannot write there ({e}); pass a folder you can write to",
                dir.display()
            ))
        })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// FNV-1a 64 of every parameter's name and value bits.
pub(crate) fn weights_hash(model: &impl Parameters) -> u64 {
    let mut h = Fnv1a64::new();
    model.visit_params(&mut |name, p| {
        h.update(name.as_bytes());
        for v in p.to_vec() {
            h.update(&v.to_le_bytes());
        }
    });
    h.value()
}

/// FNV-1a 64 of the examples' width, labels and value bits.
fn examples_hash(data: &Examples) -> u64 {
    let mut h = Fnv1a64::new();
    h.update(&(data.width as u64).to_le_bytes());
    h.update(&(data.num_classes as u64).to_le_bytes());
    for &y in &data.y {
        h.update(&(y as u64).to_le_bytes());
    }
    for v in &data.x {
        h.update(&v.to_le_bytes());
    }
    h.value()
}

/// `backbone`'s features of every row of `data`: from the cache in `cache` when it holds
/// them (keyed by the weights' and the rows' content), otherwise extracted (and stored
/// there). Returns the features and whether they were extracted.
pub fn probe_features<B: Backbone<F>, const F: usize>(
    dev: &Cpu,
    backbone: &B,
    data: &Examples,
    cache: Option<&Path>,
) -> Result<(Examples, bool), TransferError> {
    let Some(dir) = cache else {
        return Ok((extract_features(dev, backbone, data)?, true));
    };
    let key = FeatureKey {
        checkpoint_hash: weights_hash(backbone),
        dataset_hash: examples_hash(data),
        layer: format!("{} backbone output ({F} features)", B::NAME),
        preprocessing: "graft-transfer Examples rows as given (normalised f32)".into(),
    };
    let mut extracted = false;
    let ds = FeatureCache::new(dir).get_or_build(&key, |_| {
        extracted = true;
        let f = extract_features(dev, backbone, data)?;
        let labels = f.y.iter().map(|&y| y as u32).collect();
        Ok::<_, TransferError>(Features::new(f.x, labels, F))
    })?;
    let mut x = Vec::with_capacity(ds.len() * F);
    for i in 0..ds.len() {
        x.extend(ds.sample_f32(i)?);
    }
    let features = Examples {
        x,
        y: ds.labels().iter().map(|&l| l as usize).collect(),
        width: F,
        num_classes: data.num_classes,
    };
    if features.len() != data.len() || features.x.len() != data.len() * F {
        return Err(TransferError::Shape(format!(
            "{}: cached features hold {} rows of {}, expected {} of {F}; delete the file",
            ds.path().display(),
            features.len(),
            ds.sample_len(),
            data.len()
        )));
    }
    tracing::debug!(path = %ds.path().display(), extracted, "linear-probe features");
    Ok((features, extracted))
}
