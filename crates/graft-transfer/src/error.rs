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
    /// The loss became NaN or infinite; the weights from before the bad step were kept.
    #[error(
        "training diverged at step {step} (loss {loss}); {}; lower the learning rate or pick \
         another --schedule",
        saved_to.as_ref().map_or("nothing saved (pass --state-dir to keep the last good weights)".to_string(),
            |p| format!("last good weights kept in {}", p.display()))
    )]
    Diverged {
        /// The step at which the loss stopped being finite.
        step: usize,
        /// The loss value.
        loss: f32,
        /// Where the last good weights (or training state) are.
        saved_to: Option<PathBuf>,
    },
    /// graft-cuda's linear-head trainer (the GPU probe) failed.
    #[error("linear probe on the GPU: {0}")]
    Gpu(#[from] graft_cuda::OpError),
    /// Training was stopped (Ctrl-C) between steps.
    #[error(
        "interrupted at step {step}; {}",
        saved_to.as_ref().map_or("nothing saved (pass --state-dir to save the training state)".to_string(),
            |p| format!("training state saved to {}; continue with --resume {}", p.display(), p.display()))
    )]
    Interrupted {
        /// Updates done before stopping.
        step: usize,
        /// The training-state file written, if a state folder was given.
        saved_to: Option<PathBuf>,
    },
    /// A sweep was stopped (Ctrl-C) before every run finished; the finished runs are kept
    /// in a partial report.
    #[error(
        "sweep interrupted: {finished} of {planned} runs finished, kept in {}/report.json \
         (marked partial); run the same command with --resume {} to train only the missing runs",
        dir.display(), dir.display()
    )]
    SweepInterrupted {
        /// Runs finished (including any reused from an earlier partial report).
        finished: usize,
        /// Runs planned.
        planned: usize,
        /// The folder holding the partial report.
        dir: PathBuf,
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
