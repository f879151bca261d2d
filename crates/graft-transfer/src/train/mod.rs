//! The training loops: a whole classifier (backbone and head at their own learning rates)
//! and a head alone on cached features. Both minimise the mean cross-entropy with the
//! plan's optimiser (Adam by default) and learning-rate schedule; the classifier loop also
//! stops early on a validation set, saves and resumes its training state, and stops
//! cleanly when asked (see [`TrainControl`]).
//!
//! `plan` (what a run is asked and what it reports) imports no other training module;
//! `step` is one optimiser step, `progress` where a run stands, `classifier` the loop.
//! This module only names their public items (and those of the modules around them).

mod classifier;
pub(crate) mod plan;
pub(crate) mod progress;
pub(crate) mod step;

pub use crate::control::{StateFiles, TrainControl, Validation};
pub use crate::head_train::{train_head, train_head_with};
pub use crate::l2sp::L2Sp;
pub use crate::metrics::{accuracy, extract_features, mean_loss};
pub use classifier::{train_classifier, train_classifier_with};
pub use plan::{
    is_bias_or_norm, CurvePoint, LearningRates, Monitor, Schedule, TrainPlan, TrainStats,
};
pub use progress::progress_bar;
