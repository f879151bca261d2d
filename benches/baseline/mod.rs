//! graft-nn's convolution and pooling as they were before the fused kernels (verbatim
//! copies), and the `convnet` built from them: the "before" of the before/after ratio, and a
//! second, independent implementation the suite checks the fast kernels against.
#![allow(dead_code)]

pub mod conv;
pub mod pool;

use dfdx::prelude::*;
use graft::nn::{ConvnetClassifier, InputBatch};

/// The old layers: `conv1`, `conv2` and dfdx's `Linear` as `fc1`.
pub type Layers = (
    conv::Conv2d<1, 32, 3, 1, 1>,
    conv::Conv2d<32, 64, 3, 1, 1>,
    dfdx::nn::modules::Linear<3136, 128, f32, Cpu>,
);

/// The `convnet` forward pass through the old kernels and dfdx's linear layer, with the
/// old layers' parameters and `model`'s head.
pub fn convnet_forward<T: Tape<f32, Cpu>>(
    model: &ConvnetClassifier,
    (c1, c2, fc1): &Layers,
    x: InputBatch<T>,
) -> Tensor<(usize, usize), f32, Cpu, T> {
    let b = x.shape().0;
    let x = x.reshape_like(&(b, Const::<1>, 28usize, 28usize));
    let h = pool::MaxPool2d::<2, 2>.forward(c1.forward(x)).relu();
    let h = pool::MaxPool2d::<2, 2>.forward(c2.forward(h)).relu();
    let h = graft::nn::flatten::<64, 3136, T>(h);
    let y = h.matmul(fc1.weight.retaped::<T>().permute());
    let shape = *y.shape();
    let f = (y + fc1.bias.retaped::<T>().broadcast_like(&shape)).relu();
    model.head.forward(f)
}

/// The old layers holding `model`'s backbone parameters: the convolutions share the model's
/// tensors (same ids, same gradient entries); `fc1` is a dfdx copy (its own ids).
pub fn layers(model: &ConvnetClassifier, dev: &Cpu) -> Layers {
    let bb = &model.backbone;
    (
        conv::Conv2d {
            weight: bb.conv1.weight.clone(),
            bias: bb.conv1.bias.clone(),
        },
        conv::Conv2d {
            weight: bb.conv2.weight.clone(),
            bias: bb.conv2.bias.clone(),
        },
        bb.fc1.to_linear(dev),
    )
}
