//! What a training run is asked to do and what it reports, shared by every loop, the
//! training-state files and the strategies: the schedule, the learning rates, the plan, the
//! monitor that draws the curve, and the run's statistics. Imports no other training module.

use crate::examples::Examples;
use crate::l2sp::L2Sp;
use crate::lr_schedule::LrSchedule;
use crate::optim::OptimizerConfig;

/// How long a training run lasts and how it draws batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Mini-batch size.
    pub batch: usize,
    /// Number of optimiser steps.
    pub steps: usize,
}

impl Schedule {
    /// PROTOCOLS.md's default for `n` labelled examples: batch `min(64, n)`,
    /// steps `max(300, 15 epochs)`.
    pub fn target_default(n: usize) -> Self {
        let batch = n.clamp(1, 64);
        let steps = 300.max((15 * n).div_ceil(batch));
        Self { batch, steps }
    }

    /// The default for `n` examples when the backbone's weights train: batch `min(64, n)`,
    /// steps `max(min_steps, 15 epochs)` (`min_steps` is the network's
    /// `Backbone::MIN_TRAIN_STEPS`; 300 gives [`Schedule::target_default`]).
    pub fn training_default(n: usize, min_steps: usize) -> Self {
        let batch = n.clamp(1, 64);
        let steps = min_steps.max((15 * n).div_ceil(batch));
        Self { batch, steps }
    }

    /// `epochs` passes over `n` examples at `batch`.
    pub fn epochs(n: usize, batch: usize, epochs: usize) -> Self {
        let batch = batch.clamp(1, n.max(1));
        Self {
            batch,
            steps: epochs * n.div_ceil(batch),
        }
    }
}

/// Learning rates of the two parameter groups; `None` freezes the backbone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LearningRates {
    /// Backbone learning rate, or `None` to keep it frozen (bit-identical).
    pub backbone: Option<f32>,
    /// Head learning rate.
    pub head: f32,
}

/// Everything a training run varies by strategy: per-block learning rates, freezing (static
/// or gradual), and the L2-SP penalty.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainPlan {
    /// Steps and batch size.
    pub schedule: Schedule,
    /// Learning rate of the head.
    pub head_lr: f32,
    /// Learning rate of each backbone block, input first; `None` freezes the block.
    pub block_lrs: Vec<Option<f32>>,
    /// Gradual unfreezing (ULMFiT): every this many steps one more block, from the top,
    /// joins training at its `block_lrs` rate; before that only the head trains.
    pub unfreeze_every: Option<usize>,
    /// L2-SP regularisation towards the starting weights.
    pub l2sp: Option<L2Sp>,
    /// BitFit: in the training blocks only biases and normalisation scales train (see
    /// [`is_bias_or_norm`]); every weight matrix and convolution filter stays as it is.
    pub biases_only: bool,
    /// The optimiser (default Adam).
    pub optimizer: OptimizerConfig,
    /// The learning-rate multiplier over the run (default constant).
    pub lr_schedule: LrSchedule,
}

impl TrainPlan {
    /// Every block and the head at their given rates, all trained from the first step.
    pub fn uniform(schedule: Schedule, blocks: usize, lrs: LearningRates) -> Self {
        Self {
            schedule,
            head_lr: lrs.head,
            block_lrs: vec![lrs.backbone; blocks],
            unfreeze_every: None,
            l2sp: None,
            biases_only: false,
            optimizer: OptimizerConfig::default(),
            lr_schedule: LrSchedule::Constant,
        }
    }

    /// Whether block `i` (input first) trains at `step`.
    pub fn block_trains(&self, i: usize, step: usize) -> bool {
        let blocks = self.block_lrs.len();
        let open = match self.unfreeze_every {
            Some(every) => (step / every.max(1)).min(blocks),
            None => blocks,
        };
        self.block_lrs.get(i).is_some_and(Option::is_some) && i + open >= blocks
    }

    /// Leading blocks that need no gradient at `step` (run without a tape).
    pub fn frozen_prefix(&self, step: usize) -> usize {
        (0..self.block_lrs.len())
            .take_while(|&i| !self.block_trains(i, step))
            .count()
    }
}

/// Whether a backbone parameter is a bias or a normalisation layer's scale, by its PyTorch
/// name: `*.bias`, or the `weight` of a BatchNorm (EfficientNet's `_bn0.weight`,
/// `_blocks.3._bn1.weight`). What BitFit trains (Ben Zaken et al. 2021; for CNNs with the
/// BatchNorm affine parameters, whose running statistics stay frozen).
pub fn is_bias_or_norm(name: &str) -> bool {
    let mut parts = name.rsplit('.');
    let last = parts.next();
    let module = parts.next().unwrap_or("");
    last == Some("bias") || (last == Some("weight") && module.starts_with("_bn"))
}

/// Where a training run is watched from: a labelled set outside the training examples,
/// evaluated every `every` steps to draw the accuracy curve (never used to choose anything).
#[derive(Debug, Clone, Copy)]
pub struct Monitor<'a> {
    /// The examples.
    pub data: &'a Examples,
    /// Steps between evaluations.
    pub every: usize,
}

/// One point of a training curve.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CurvePoint {
    /// Optimiser steps so far.
    pub step: usize,
    /// Training seconds so far (evaluation time excluded).
    pub seconds: f64,
    /// Training FLOPs so far.
    pub flops: f64,
    /// Accuracy on the monitor set.
    pub accuracy: f64,
}

/// What a training run cost.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainStats {
    /// Optimiser steps taken (fewer than planned when stopped early).
    pub steps: usize,
    /// With early stopping: the step whose weights were kept (best validation loss).
    pub best_step: Option<usize>,
    /// Mean loss over the last epoch's worth of steps.
    pub final_loss: f32,
    /// Floating-point operations spent (forward + backward, counted analytically).
    pub flops: f64,
    /// Training seconds (monitor evaluations excluded).
    pub seconds: f64,
    /// Monitor accuracy over training (empty without a monitor).
    pub curve: Vec<CurvePoint>,
}

impl TrainStats {
    /// These statistics followed by those of a `next` phase trained from where this one
    /// ended (LP-FT: the probe, then the fine-tuning): costs add up, `next`'s curve is
    /// shifted by this phase's seconds and FLOPs and appended, and steps, best step and
    /// final loss are `next`'s.
    pub fn then(self, next: TrainStats) -> TrainStats {
        let shifted = next.curve.into_iter().map(|mut p| {
            p.seconds += self.seconds;
            p.flops += self.flops;
            p
        });
        TrainStats {
            flops: self.flops + next.flops,
            seconds: self.seconds + next.seconds,
            curve: self.curve.into_iter().chain(shifted).collect(),
            ..next
        }
    }
}
