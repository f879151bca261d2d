//! What a training loop is told besides its plan: a validation set for early stopping,
//! where to save its training state, a state to resume from, and when to stop (Ctrl-C).

use std::path::{Path, PathBuf};

use graft_nn::Parameters;

use crate::early_stop::EarlyStopping;
use crate::examples::Examples;
use crate::state::TrainingState;
use crate::TransferError;

/// A validation set carved from the labelled examples, with early-stopping settings.
#[derive(Debug, Clone, Copy)]
pub struct Validation<'a> {
    /// The held-out labelled examples (same width as the training examples).
    pub data: &'a Examples,
    /// When to evaluate and when to give up.
    pub early: EarlyStopping,
}

/// Where a run saves its training state: `<dir>/<name>.state`, rewritten atomically every
/// `every` steps (if set), at the end and on interruption; after a divergence the last
/// finite weights go to `<dir>/<name>.last-good.safetensors`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateFiles {
    /// The folder (created on first write).
    pub dir: PathBuf,
    /// The run's file stem, e.g. `fine-tune-n20-seed0`.
    pub name: String,
    /// Steps between saves; `None` saves only at the end and on interruption.
    pub every: Option<usize>,
}

impl StateFiles {
    /// The training-state file.
    pub fn state_path(&self) -> PathBuf {
        self.dir.join(format!("{}.state", self.name))
    }

    /// Where the weights from before a diverging step are written.
    pub fn last_good_path(&self) -> PathBuf {
        self.dir
            .join(format!("{}.last-good.safetensors", self.name))
    }
}

/// Asks whether to stop before update `step` (0-based); e.g. `&|_| interrupt::requested()`.
pub type StopCheck<'a> = dyn Fn(usize) -> bool + 'a;

/// Run-time controls of [`crate::train::train_classifier_with`]; the default is a plain run.
#[derive(Clone, Copy, Default)]
pub struct TrainControl<'a> {
    /// Early stopping on a validation set (restoring the best weights at the end).
    pub validation: Option<Validation<'a>>,
    /// Where to save the training state.
    pub state: Option<&'a StateFiles>,
    /// A saved state to continue from.
    pub resume: Option<&'a TrainingState>,
    /// Checked before every update; `true` saves the state and returns
    /// [`TransferError::Interrupted`].
    pub stop: Option<&'a StopCheck<'a>>,
    /// A hash of the source backbone the run started from (its checkpoint's weights): saved
    /// in the training state, and a state saved from another source is refused on resume.
    pub source: Option<u64>,
}

impl TrainControl<'_> {
    /// Whether to stop before update `step`.
    pub(crate) fn should_stop(&self, step: usize) -> bool {
        self.stop.is_some_and(|f| f(step))
    }
}

/// The error for a non-finite loss at `step`: writes `model`'s weights (those from before
/// the bad step) to the last-good path when they are finite and a state folder is given;
/// otherwise names the last saved training state, if any.
pub(crate) fn diverged(
    step: usize,
    loss: f32,
    model: &impl Parameters,
    network: &str,
    files: Option<&StateFiles>,
    last_saved: Option<&Path>,
) -> TransferError {
    let mut finite = true;
    model.visit_params(&mut |_, p| finite &= p.to_vec().iter().all(|v| v.is_finite()));
    let saved_to = match files {
        Some(f) if finite => {
            let path = f.last_good_path();
            match graft_nn::checkpoint::save(&path, model, network, None) {
                Ok(()) => Some(path),
                Err(e) => {
                    tracing::warn!(error = %e, "could not save the last good weights");
                    last_saved.map(Path::to_path_buf)
                }
            }
        }
        _ => last_saved.map(Path::to_path_buf),
    };
    TransferError::Diverged {
        step,
        loss,
        saved_to,
    }
}
