//! The operators of MobileNet / EfficientNet-Lite backbones, as dfdx operations with their
//! own backward passes, on image batches whose channel counts are known only at run time.
//!
//! Every convolution uses TensorFlow's "SAME" padding ([`SamePad`]): `out = ceil(in / stride)`,
//! the smaller half of the padding before, the extra pixel after. Weights and BatchNorm
//! scales are [`OwnedParam`]s (read in place by the kernels, gradients in dfdx's
//! `Gradients`); BatchNorm running statistics are [`Buffer`]s, visited by name through
//! [`Buffers`].
//!
//! Memory: each operation keeps a copy of its input for its backward pass (freed when that
//! pass has run), and its backward pass *takes* its output's gradient out of dfdx's
//! `Gradients` instead of copying it: the buffer is released as soon as it is read (every
//! consumer of the output has already added to it by then), so a backward pass holds the
//! gradients of a few layers at a time instead of all of them. The one consequence: after a
//! backward pass, the gradient of an operation's *output* reads as empty; the gradients of
//! inputs and parameters are unaffected. In eval mode an MBConv block is one operation that
//! keeps only its input and its convolutions' outputs (`mbconv_eval`). Peak RSS of one
//! EfficientNet-Lite0 fine-tuning step at batch 32, 224x224, BatchNorm frozen (measured on
//! the 2-core machine): 4.5 GB with copied gradients and separate operations, 2.8 GB with
//! taken gradients, 1.6 GB with the fused eval-mode block.

use dfdx::shapes::Shape;
use dfdx::tensor::{Cpu, NoneTape, SampleTensor, Tensor, TensorFromVec};

use crate::OwnedParam;

pub mod batch_norm;
pub mod buffers;
pub mod depthwise;
pub(crate) mod folded;
pub mod global_pool;
pub mod mbconv;
mod mbconv_eval;
pub mod padding;
pub mod pointwise;
pub mod relu6;
pub mod residual;
pub mod same_conv;

pub use batch_norm::{BatchNorm2d, BnMode};
pub use buffers::{Buffer, Buffers, WithBuffers};
pub use depthwise::DepthwiseConv2d;
pub use global_pool::global_avg_pool;
pub use mbconv::{MbConv, MbConvConfig};
pub use padding::SamePad;
pub use pointwise::PointwiseConv2d;
pub use relu6::relu6;
pub use residual::residual_add;
pub use same_conv::SameConv2d;

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
