//! The image-batch types every layer takes, and the buffer helpers the layers share
//! (parameters from values, seeded normal draws, per-sample gradient parts, sums). Imports
//! no other layer.

use dfdx::shapes::Shape;
use dfdx::tensor::{Cpu, NoneTape, SampleTensor, Tensor, TensorFromVec};

use crate::owned::OwnedParam;

/// The shape of an image batch with run-time channel count: `(batch, channels, rows, columns)`.
pub type Shape4 = (usize, usize, usize, usize);

/// A batch of images `(batch, channels, rows, columns)`, every size known at run time.
pub type Images<T = NoneTape> = Tensor<Shape4, f32, Cpu, T>;

/// A parameter holding `values` with shape `shape` (gradients under a fresh tensor's id).
pub(crate) fn owned_param<S: Shape>(dev: &Cpu, values: Vec<f32>, shape: S) -> OwnedParam<S> {
    OwnedParam::from_tensor(&dev.tensor_from_vec(values, shape))
}

/// `n` draws from a normal distribution with standard deviation `std`, from the device's
/// seeded generator.
pub(crate) fn normal_values(dev: &Cpu, n: usize, std: f32) -> Vec<f32> {
    let t: Tensor<(usize,), f32, Cpu> = dev.sample_normal_like(&(n,));
    t.as_vec().into_iter().map(|v| v * std).collect()
}

/// Splits an optional gradient buffer into `count` per-sample parts of `per` elements
/// (all `None` when there is no buffer), for a parallel loop over samples.
pub(crate) fn sample_parts(
    gx: Option<&mut [f32]>,
    per: usize,
    count: usize,
) -> Vec<Option<&mut [f32]>> {
    match gx {
        Some(gx) => gx.chunks_mut(per).take(count).map(Some).collect(),
        None => (0..count).map(|_| None).collect(),
    }
}

/// Adds `src` to `dst` elementwise.
pub(crate) fn add_into(dst: &mut [f32], src: &[f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += *s;
    }
}

/// Sums the per-plane partial weight gradients `parts` (`(batch, channels, per)`) over the
/// batch into `out` (`(channels, per)`), adding.
pub(crate) fn sum_over_batch(parts: &[f32], channels: usize, per: usize, out: &mut [f32]) {
    for sample in parts.chunks_exact(channels * per) {
        add_into(out, sample);
    }
}
