//! The reader's errors: one for the file, one typed [`Problem`] for what is wrong in it.

use std::path::PathBuf;

/// Why a checkpoint could not be read or converted.
#[derive(Debug, thiserror::Error)]
pub enum PthError {
    /// The file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file's content is not a checkpoint graft can read.
    #[error("{}: {problem}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: Problem,
    },
}

impl PthError {
    /// The typed problem, when the file was read but refused.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            PthError::Invalid { problem, .. } => Some(problem),
            PthError::Io { .. } => None,
        }
    }
}

/// What is wrong with a checkpoint's bytes. Every message says what graft expected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Problem {
    /// Neither PyTorch format: the message says what the file looks like instead.
    #[error("not a PyTorch checkpoint ({0})")]
    NotPyTorch(String),
    /// The bytes end inside a section.
    #[error(
        "truncated: the file ends inside {section} (at byte {offset}); download or copy it again"
    )]
    Truncated {
        /// The section being read.
        section: &'static str,
        /// Where the bytes ran out.
        offset: usize,
    },
    /// A pickle opcode a state dict never uses (or an unknown byte).
    #[error("pickle opcode {name} (0x{byte:02x}) at byte {offset} is not allowed: a state dict of tensors never needs it")]
    Opcode {
        /// The opcode byte.
        byte: u8,
        /// Its pickle name, or `unknown`.
        name: &'static str,
        /// Where it is.
        offset: usize,
    },
    /// A global outside the closed list: graft never imports or calls it.
    #[error("the pickle names `{module}.{name}`, which graft does not allow (it runs nothing from a checkpoint); save only `model.state_dict()` with torch.save")]
    ForbiddenGlobal {
        /// The global's module.
        module: String,
        /// Its name.
        name: String,
    },
    /// An allowed global used in a way a state dict never does, or a malformed value.
    #[error("unexpected pickle structure at byte {offset}: {what}")]
    Structure {
        /// What was found.
        what: String,
        /// Where.
        offset: usize,
    },
    /// A limit that keeps a hostile file from taking unbounded memory or time.
    #[error("{what} exceeds graft's limit of {limit}; a state dict never needs that many")]
    Limit {
        /// What was counted.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// A storage whose recorded size disagrees with its bytes.
    #[error("storage {key}: {what}")]
    Storage {
        /// The storage key.
        key: String,
        /// What disagrees.
        what: String,
    },
    /// A tensor whose view reaches outside its storage, or whose shape is invalid.
    #[error("tensor {name}: {what}")]
    Tensor {
        /// The tensor's name in the state dict.
        name: String,
        /// What is wrong.
        what: String,
    },
    /// The zip container is malformed or uses a feature PyTorch never writes.
    #[error("zip archive: {0}")]
    Zip(String),
    /// The pickle holds no dict of tensors.
    #[error("no dict of tensors found (the pickle holds {0}); save `model.state_dict()` with torch.save")]
    NoTensors(String),
}
