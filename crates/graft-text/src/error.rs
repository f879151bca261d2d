//! [`TextError`]: everything that can go wrong in graft-text.

use std::path::PathBuf;

/// The error type of graft-text. Messages name the file involved and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done (`read`, `write`, ...).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The model folder lacks a file.
    #[error("{path} not found: run `cargo xtask fetch minilm` (or pass the folder holding config.json, tokenizer.json and model.safetensors)")]
    MissingModelFile {
        /// The missing file.
        path: PathBuf,
    },
    /// `config.json` is not a BERT configuration graft can run.
    #[error("{path}: {reason}")]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The weights file does not match the configuration.
    #[error("{path}: {reason}")]
    Weights {
        /// The safetensors file.
        path: PathBuf,
        /// Every problem found, one per line.
        reason: String,
    },
    /// The tokenizer failed to load or to encode.
    #[error("tokenizer {path}: {reason}")]
    Tokenizer {
        /// `tokenizer.json`.
        path: PathBuf,
        /// The tokenizers crate's message.
        reason: String,
    },
    /// A caller passed something unusable (empty batch, bad k, ...).
    #[error("{0}")]
    Invalid(String),
    /// A data-set error from graft-data.
    #[error(transparent)]
    Data(#[from] graft_data::DataError),
    /// A report error from graft-transfer.
    #[error(transparent)]
    Transfer(#[from] graft_transfer::TransferError),
    /// dfdx failed to allocate.
    #[error("tensor operation failed: {0}")]
    Tensor(String),
}

impl TextError {
    /// An [`TextError::Io`] for `path`.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> TextError {
        let path = path.into();
        move |source| TextError::Io {
            action,
            path,
            source,
        }
    }
}
