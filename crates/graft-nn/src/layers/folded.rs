//! Inference with every BatchNorm folded into the convolution before it.
//!
//! In eval mode BatchNorm is `y = scale * conv(x) + shift` per output channel, so
//! `conv'(x) = conv(x; scale * W)` plus `shift`: one convolution whose output pass adds the
//! shift and clamps (ReLU6), with no BatchNorm pass, no intermediate tensors and no tape. The
//! folded weights are recomputed on each call (a few hundred thousand multiplies: parameters
//! can change between calls). The values equal the unfolded eval-mode path up to f32
//! rounding (tested against it and, through the network, against PyTorch).

use rayon::prelude::*;

use super::pointwise::pointwise_values;
use super::same_conv::conv_values;
use super::{BatchNorm2d, PointwiseConv2d, SameConv2d, Shape4};

/// A convolution's weight scaled per output channel by its BatchNorm, and the shift to add.
pub(crate) struct Folded {
    pub(crate) weight: Vec<f32>,
    pub(crate) shift: Vec<f32>,
}

/// Folds `bn` into `weight` (`(co, ...)`, one row per output channel).
pub(crate) fn fold(weight: &[f32], bn: &BatchNorm2d) -> Folded {
    let (scale, shift) = bn.scale_shift();
    let per_out = weight.len() / scale.len();
    let mut weight = weight.to_vec();
    for (row, s) in weight.chunks_exact_mut(per_out).zip(&scale) {
        row.iter_mut().for_each(|v| *v *= s);
    }
    Folded { weight, shift }
}

/// Adds each plane's channel shift to `y` (`(b, c, plane)`), then clamps to [0, 6] when
/// `relu6`.
pub(crate) fn add_shift(y: &mut [f32], shift: &[f32], plane: usize, relu6: bool) {
    let c = shift.len();
    y.par_chunks_mut(plane.max(1))
        .enumerate()
        .for_each(|(p, yp)| {
            let s = shift[p % c];
            if relu6 {
                yp.iter_mut().for_each(|v| *v = (*v + s).clamp(0.0, 6.0));
            } else {
                yp.iter_mut().for_each(|v| *v += s);
            }
        });
}

/// `ReLU6(BN(conv(x)))` for the stem; returns the output and its shape.
pub(crate) fn stem(
    conv: &SameConv2d,
    bn: &BatchNorm2d,
    x: &[f32],
    dims: Shape4,
) -> (Vec<f32>, Shape4) {
    let (_, co, k) = conv.dims();
    let f = fold(conv.weight.values(), bn);
    let mut y = conv_values(x, dims, &f.weight, (co, k, conv.stride));
    let (oh, ow) = conv.output_size(dims.2, dims.3);
    add_shift(&mut y, &f.shift, oh * ow, true);
    (y, (dims.0, co, oh, ow))
}

/// `BN(conv1x1(x))`, then ReLU6 when `relu6`; returns the output and its shape.
pub(crate) fn pointwise(
    conv: &PointwiseConv2d,
    bn: &BatchNorm2d,
    x: &[f32],
    dims: Shape4,
    relu6: bool,
) -> (Vec<f32>, Shape4) {
    let (_, co) = conv.dims();
    let f = fold(conv.weight.values(), bn);
    let mut y = pointwise_values(x, dims, &f.weight, co);
    add_shift(&mut y, &f.shift, dims.2 * dims.3, relu6);
    (y, (dims.0, co, dims.2, dims.3))
}
