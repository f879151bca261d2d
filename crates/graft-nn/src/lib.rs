#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod backbone;
pub mod checkpoint;
pub mod classifier;
pub mod conv;
pub mod convnet;
pub mod efficientnet;
pub mod error;
pub mod gemm;
pub mod head;
pub mod layers;
pub mod linear;
pub mod mlp;
pub mod owned;
pub mod param;
pub mod pool;
pub mod rename;
pub mod workers;

pub use backbone::{Backbone, NetworkKind};
pub use checkpoint::{Checkpoint, LoadScope, Normalization};
pub use classifier::{Classifier, MlpClassifier};
pub use conv::{Conv2d, ImageBatch};
pub use convnet::{ConvnetBackbone, ConvnetClassifier};
pub use efficientnet::{EfficientNetClassifier, EfficientNetLite, Phase};
pub use error::NnError;
pub use head::Head;
pub use layers::{BnMode, Buffers, Images, WithBuffers};
pub use linear::Dense;
pub use mlp::MlpBackbone;
pub use owned::OwnedParam;
pub use param::{Layer, Param, Parameters};
pub use pool::{flatten, flatten_dyn, MaxPool2d};
pub use rename::{RenameRule, RenameRules};
pub use workers::on_workers;

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
