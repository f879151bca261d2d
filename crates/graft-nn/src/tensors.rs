//! The device and the batch types every network shares: flattened 28x28 input images,
//! `F`-wide features and logits. Imports no other module of the crate.

/// The device every graft network runs on (dfdx's CPU device; GPU work goes through graft-cuda).
pub type Device = dfdx::tensor::Cpu;

/// The side of a square grey input image, in pixels (all reference networks take 28x28).
pub const IMAGE_SIDE: usize = 28;

/// Elements of one flattened input image.
pub const INPUT_LEN: usize = IMAGE_SIDE * IMAGE_SIDE;

/// A batch of flattened input images, `(batch, 784)`, on tape `T`.
pub type InputBatch<T = dfdx::tensor::NoneTape> =
    dfdx::tensor::Tensor<(usize, dfdx::shapes::Const<INPUT_LEN>), f32, Device, T>;

/// A batch of `F`-wide features, `(batch, F)`, on tape `T`.
pub type Features<const F: usize, T = dfdx::tensor::NoneTape> =
    dfdx::tensor::Tensor<(usize, dfdx::shapes::Const<F>), f32, Device, T>;

/// A batch of logits, `(batch, classes)` with the class count known at run time.
pub type Logits<T = dfdx::tensor::NoneTape> = dfdx::tensor::Tensor<(usize, usize), f32, Device, T>;
