//! The one error type of graft-advise.

use std::path::PathBuf;

/// Everything that can go wrong estimating transferability.
#[derive(Debug, thiserror::Error)]
pub enum AdviseError {
    /// A data set could not be read, or a feature cache entry could not be written.
    #[error(transparent)]
    Data(#[from] graft_data::DataError),
    /// A checkpoint could not be read or does not fit its network.
    #[error(transparent)]
    Nn(#[from] graft_nn::NnError),
    /// Opening a protocol's data or training a probe failed.
    #[error(transparent)]
    Transfer(#[from] graft_transfer::TransferError),
    /// A candidate could not be used.
    #[error("candidate `{candidate}`: {reason}")]
    Candidate {
        /// The candidate as given (a checkpoint path or `random:NETWORK[:SEED]`).
        candidate: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// An estimator's inputs are malformed (sizes, labels, non-finite values).
    #[error("{estimator}: {reason}")]
    Input {
        /// The estimator that refused them.
        estimator: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A request that cannot be carried out as given.
    #[error("{0}")]
    Config(String),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}
