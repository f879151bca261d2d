#![deny(missing_docs)]
#![doc = include_str!("../README.md")]

mod backend;
pub mod cpu;
mod error;
mod gpu;
pub mod kernels;
mod linear_head;
mod linear_probe;
mod ops;
mod probe;

pub use backend::{select_backend, Backend};
pub use error::CudaError;
pub use linear_head::{train_linear_head_on, CachedFeatures, HeadOptimizer, HeadSteps};
pub use linear_probe::{epoch_order, LinearProbe, LinearProbeConfig};
pub use ops::{
    adam_step, adam_step_on, knn, knn_on, normalize_images, normalize_images_on, softmax_xent,
    softmax_xent_on, sq_distances, sq_distances_on, AdamConfig, AdamState, Augment, ImageShape,
    Knn, OpError, SampleAugmentation, SoftmaxXent,
};
pub use probe::{describe, nvrtc_available, probe, DeviceInfo};
