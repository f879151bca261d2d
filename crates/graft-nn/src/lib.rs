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
pub mod lite0_grey;
pub mod mlp;
pub mod owned;
pub mod param;
pub mod pool;
pub mod rename;
mod tensors;
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
pub use lite0_grey::Lite0Grey;
pub use mlp::MlpBackbone;
pub use owned::OwnedParam;
pub use param::{Layer, Param, Parameters};
pub use pool::{flatten, flatten_dyn, MaxPool2d};
pub use rename::{RenameRule, RenameRules};
pub use tensors::{Device, Features, InputBatch, Logits, IMAGE_SIDE, INPUT_LEN};
pub use workers::on_workers;
