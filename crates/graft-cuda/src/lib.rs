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
mod self_check;

pub use backend::{backend_choice, select_backend, usable_device, Backend, BackendChoice};
pub use error::CudaError;
pub use linear_head::{
    linear_head_on_device, train_linear_head_on, CachedFeatures, HeadOptimizer, HeadSteps,
};
pub use linear_probe::{epoch_order, LinearProbe, LinearProbeConfig};
pub use ops::{
    adam_step, adam_step_on, knn, knn_on, normalize_images, normalize_images_on, softmax_xent,
    softmax_xent_on, sq_distances, sq_distances_on, AdamConfig, AdamState, Augment, ImageShape,
    Knn, OpError, SampleAugmentation, SoftmaxXent,
};
pub use probe::{describe, nvrtc_available, probe, DeviceInfo};
pub use self_check::{self_check, SELF_CHECKED, SELF_CHECK_ABS, SELF_CHECK_REL};
