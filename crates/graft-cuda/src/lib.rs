#![deny(missing_docs)]
#![doc = include_str!("../README.md")]

mod auto;
mod backend;
pub mod cpu;
mod device;
mod error;
mod gpu;
pub mod kernels;
mod linear_head;
mod linear_probe;
mod ops;
mod probe;
mod self_check;
mod spec;

pub use auto::{adam_step, knn, normalize_images, softmax_xent, sq_distances};
pub use backend::{backend_choice, select_backend, usable_device, BackendChoice};
pub use device::Backend;
pub use error::CudaError;
pub use linear_head::{linear_head_on_device, train_linear_head_on};
pub use ops::{adam_step_on, knn_on, normalize_images_on, softmax_xent_on, sq_distances_on};
pub use probe::{describe, nvrtc_available, probe, DeviceInfo};
pub use self_check::{self_check, SELF_CHECKED, SELF_CHECK_ABS, SELF_CHECK_REL};
pub use spec::{
    epoch_order, AdamConfig, AdamState, Augment, CachedFeatures, HeadOptimizer, HeadSteps,
    ImageShape, Knn, LinearProbe, LinearProbeConfig, OpError, SampleAugmentation, SoftmaxXent,
};
