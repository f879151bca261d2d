//! graft-nn's convolution and pooling as they were before the fused kernels (verbatim
//! copies), and the `convnet` built from them: the "before" of the before/after ratio, and a
//! second, independent implementation the suite checks the fast kernels against.
#![allow(dead_code)]

pub mod conv;
pub mod pool;

use dfdx::prelude::*;
use graft::nn::{ConvnetClassifier, InputBatch};

/// The `convnet` forward pass through the old kernels, with `model`'s parameters.
pub fn convnet_forward<T: Tape<f32, Cpu>>(
    model: &ConvnetClassifier,
    c1: &conv::Conv2d<1, 32, 3, 1, 1>,
    c2: &conv::Conv2d<32, 64, 3, 1, 1>,
    x: InputBatch<T>,
) -> Tensor<(usize, usize), f32, Cpu, T> {
    let b = x.shape().0;
    let x = x.reshape_like(&(b, Const::<1>, 28usize, 28usize));
    let h = pool::MaxPool2d::<2, 2>.forward(c1.forward(x)).relu();
    let h = pool::MaxPool2d::<2, 2>.forward(c2.forward(h)).relu();
    let h = graft::nn::flatten::<64, 3136, T>(h);
    let fc1 = &model.backbone.fc1;
    let y = h.matmul(fc1.weight.retaped::<T>().permute());
    let shape = *y.shape();
    let f = (y + fc1.bias.retaped::<T>().broadcast_like(&shape)).relu();
    model.head.forward(f)
}

/// The old layers holding `model`'s convolution parameters.
pub fn convs(
    model: &ConvnetClassifier,
) -> (conv::Conv2d<1, 32, 3, 1, 1>, conv::Conv2d<32, 64, 3, 1, 1>) {
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
    )
}
