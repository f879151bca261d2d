//! graft: deep transfer learning in Rust.
//!
//! This facade re-exports graft's crates so one dependency gives the whole toolkit; each
//! crate can also be depended on alone (see ARCHITECTURE.md):
//!
//! - [`data`] (graft-data): memory-mapped data sets, splits, k-shot sampling, batches.
//! - [`nn`] (graft-nn): statically typed dfdx networks split into backbone and head, checkpoints.
//! - [`transfer`] (graft-transfer): strategies, protocols, sweeps and reports.
//! - [`cuda`] (graft-cuda): the CUDA kernel layer, probed at run time.
#![deny(missing_docs)]

pub use graft_cuda as cuda;
pub use graft_data as data;
pub use graft_nn as nn;
pub use graft_transfer as transfer;
