//! Evaluation without a tape: accuracy, mean loss and backbone features.

use dfdx::prelude::*;
use graft_nn::{on_workers, Backbone, Classifier, InputBatch, INPUT_LEN};

use crate::examples::Examples;
use crate::TransferError;

/// Mean cross-entropy of `model` on `data` (no tape), in f64 then rounded.
pub fn mean_loss<B: Backbone<F>, const F: usize>(
    dev: &Cpu,
    model: &Classifier<B, F>,
    data: &Examples,
) -> Result<f32, TransferError> {
    check_width(data, INPUT_LEN)?;
    let mut total = 0.0f64;
    for (chunk, labels) in data.x.chunks(256 * INPUT_LEN).zip(data.y.chunks(256)) {
        let t: InputBatch = dev.tensor_from_vec(chunk.to_vec(), (labels.len(), Const));
        let logits = model.forward(t).as_vec();
        total += row_losses(&logits, model.num_classes(), labels);
    }
    Ok((total / data.len().max(1) as f64) as f32)
}

/// Sum over rows of `-log softmax(row)[label]`.
pub(crate) fn row_losses(logits: &[f32], classes: usize, labels: &[usize]) -> f64 {
    logits
        .chunks(classes)
        .zip(labels)
        .map(|(row, &l)| {
            let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
            let lse = row
                .iter()
                .map(|&v| (v as f64 - max).exp())
                .sum::<f64>()
                .ln()
                + max;
            lse - row[l] as f64
        })
        .sum()
}

/// Backbone features of every row of `data`, computed without recording gradients.
pub fn extract_features<B: Backbone<F>, const F: usize>(
    dev: &Cpu,
    backbone: &B,
    data: &Examples,
) -> Result<Examples, TransferError> {
    check_width(data, INPUT_LEN)?;
    let mut x = vec![0.0; data.len() * F];
    // On the kernels' pool (see `graft_nn::on_workers`); features copied out in one memcpy.
    on_workers(|| {
        for (chunk, out) in data.x.chunks(256 * INPUT_LEN).zip(x.chunks_mut(256 * F)) {
            let b = chunk.len() / INPUT_LEN;
            let t: InputBatch = dev.tensor_from_vec(chunk.to_vec(), (b, Const));
            backbone.forward(t).copy_into(out);
        }
    });
    Ok(Examples {
        x,
        y: data.y.clone(),
        width: F,
        num_classes: data.num_classes,
    })
}

/// Fraction of `data` that `model` classifies correctly.
pub fn accuracy<B: Backbone<F>, const F: usize>(
    dev: &Cpu,
    model: &Classifier<B, F>,
    data: &Examples,
) -> Result<f64, TransferError> {
    check_width(data, INPUT_LEN)?;
    let mut correct = 0usize;
    let c = model.num_classes();
    let mut logits = vec![0.0; 256 * c];
    on_workers(|| {
        for (chunk, labels) in data.x.chunks(256 * INPUT_LEN).zip(data.y.chunks(256)) {
            let t: InputBatch = dev.tensor_from_vec(chunk.to_vec(), (labels.len(), Const));
            let out = &mut logits[..labels.len() * c];
            model.forward(t).copy_into(out);
            for (row, &label) in out.chunks(c).zip(labels) {
                correct += usize::from(argmax(row) == label);
            }
        }
    });
    Ok(correct as f64 / data.len().max(1) as f64)
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

pub(crate) fn check_width(data: &Examples, width: usize) -> Result<(), TransferError> {
    if data.width == width && data.x.len() == data.len() * width {
        Ok(())
    } else {
        Err(TransferError::Shape(format!(
            "examples have width {} ({} values for {} rows), the network takes {width}",
            data.width,
            data.x.len(),
            data.len()
        )))
    }
}
