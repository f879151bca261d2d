//! The one error type of graft-nn.

use std::path::PathBuf;

/// Everything that can go wrong building networks or reading and writing checkpoints.
///
/// Messages are one line, name the file, and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum NnError {
    /// The checkpoint file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The checkpoint path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A PyTorch checkpoint that graft-pth refused (the problem says why).
    #[error("{}: cannot read this PyTorch checkpoint: {problem}", path.display())]
    PyTorch {
        /// The checkpoint path.
        path: PathBuf,
        /// What is wrong with it.
        problem: graft_pth::Problem,
    },
    /// An output path would destroy something: it exists and is not a regular file.
    #[error("refusing to write {}: {reason}", path.display())]
    UnsafeOutput {
        /// The output path.
        path: PathBuf,
        /// What it is and what to do.
        reason: String,
    },
    /// A tensor holds NaN or infinity: the network would compute garbage without a word.
    #[error("{}: tensor {tensor} holds {value} at index {index}; weights must be finite (the checkpoint comes from a diverged run or is damaged): use another checkpoint", path.display())]
    NonFinite {
        /// The checkpoint path.
        path: PathBuf,
        /// The tensor's name in the file's naming after renaming.
        tensor: String,
        /// The first non-finite element.
        index: usize,
        /// Its value.
        value: f32,
    },
    /// The file is not a readable safetensors file.
    #[error("{}: not a valid safetensors checkpoint ({reason}); re-save it with graft or safetensors.torch.save_file", path.display())]
    Format {
        /// The checkpoint path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Tensors are missing, unexpected, or of the wrong shape or dtype.
    #[error("{}: does not fit network `{network}`: {}", path.display(), problems.join("; "))]
    Mismatch {
        /// The checkpoint path.
        path: PathBuf,
        /// The network it was loaded into.
        network: String,
        /// Every problem found, one entry each.
        problems: Vec<String>,
    },
    /// A class count outside what a head supports.
    #[error("a head needs between 2 and {max} classes, got {got}")]
    ClassCount {
        /// The requested class count.
        got: usize,
        /// The largest supported class count.
        max: usize,
    },
    /// The input normalisation metadata is malformed.
    #[error("{}: metadata `{key}` = {value:?} is not a positive decimal number; fix it or pass --mean/--std", path.display())]
    BadNormalization {
        /// The checkpoint path.
        path: PathBuf,
        /// The metadata key.
        key: String,
        /// Its value.
        value: String,
    },
    /// A batch or buffer had the wrong length.
    #[error("shape mismatch: {0}")]
    Shape(String),
}
