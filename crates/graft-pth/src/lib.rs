#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod convert;
mod error;
mod legacy;
mod pickle;
mod read;
mod state_dict;
mod torch;
mod value;
mod zip;

pub use convert::{convert, to_safetensors, ConvertOptions, ConvertReport, WrittenTensor};
pub use error::{Problem, PthError};
pub use read::{looks_like_pytorch, read_bytes, read_file, Format, StateDict};
pub use state_dict::{Skipped, Tensor};
pub use torch::ElemType;
