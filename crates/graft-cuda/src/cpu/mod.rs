//! CPU reference implementations of every kernel.
//!
//! They are the specification the CUDA kernels are tested against and the fallback
//! when there is no GPU. Plain loops in f32 (accumulations in the order documented per
//! function), deterministic, and they check their inputs like the dispatching
//! functions in the crate root.

mod adam;
mod knn;
mod linear;
mod normalize;
mod softmax;

pub use crate::spec::{mix64, sample_hash};
pub use adam::adam_step;
#[cfg(test)]
pub(crate) use knn::row_sq_norms;
pub use knn::{knn, sq_distances, top_k_smallest};
pub use linear::fit_linear_probe;
#[cfg(test)]
pub(crate) use linear::tests::blobs;
pub(crate) use linear::{linear_logits, train_linear_head};
pub use normalize::normalize_images;
pub use softmax::softmax_xent;
