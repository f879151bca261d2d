//! The one error type of graft-transfer.

use std::path::PathBuf;

/// Everything that can go wrong running a transfer experiment.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// A data set could not be read or is malformed.
    #[error(transparent)]
    Data(#[from] graft_data::DataError),
    /// A network or checkpoint problem.
    #[error(transparent)]
    Nn(#[from] graft_nn::NnError),
    /// The loss became NaN or infinite.
    #[error("training diverged at step {step} (loss {loss}); lower the learning rate")]
    Diverged {
        /// The step at which the loss stopped being finite.
        step: usize,
        /// The loss value.
        loss: f32,
    },
    /// Inputs of the wrong width.
    #[error("{0}")]
    Shape(String),
    /// A report or cache file could not be written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The experiment configuration is invalid.
    #[error("{0}")]
    Config(String),
}
