//! What every reusable backbone offers: a typed forward pass to `F` features, named blocks,
//! PyTorch parameter names and a FLOP count.

use dfdx::tensor::{Cpu, Tape};

use crate::{Features, InputBatch, Parameters};

/// A feature extractor mapping flattened 28x28 images to `F` features.
///
/// `F` is part of the type, so [`crate::Classifier`] only accepts a [`crate::Head`] of the
/// same width: a mismatch is a compile error.
pub trait Backbone<const F: usize>: Parameters + Clone + Send + Sync {
    /// The network's name in PROTOCOLS.md (`mlp`, `convnet`).
    const NAME: &'static str;
    /// The PyTorch module name of the head that follows this backbone (`fc3` for `mlp`).
    const HEAD_NAME: &'static str;
    /// Names of the backbone's blocks, input first (the unit of freezing).
    const BLOCKS: &'static [&'static str];

    /// A randomly initialised backbone (PyTorch's default initialisation), drawn from the
    /// device's seeded generator.
    fn build(dev: &Cpu) -> Self;

    /// Runs every block; gradients are recorded when `x` carries an owned tape.
    fn forward<T: Tape<f32, Cpu>>(&self, x: InputBatch<T>) -> Features<F, T>;

    /// Runs every block like [`Backbone::forward`], but the first `frozen_blocks` blocks (in
    /// [`Backbone::BLOCKS`] order) without recording gradients; `tape` is attached to their
    /// output, so only the later blocks (and whatever follows, e.g. the head) get gradients.
    /// `0` is the same as `forward(x.put_tape(tape))`; `BLOCKS.len()` or more freezes the whole
    /// backbone (the features still carry `tape`).
    fn forward_frozen<T: Tape<f32, Cpu>>(
        &self,
        x: InputBatch,
        frozen_blocks: usize,
        tape: T,
    ) -> Features<F, T>;

    /// Multiply-adds (counted as 2 FLOPs) and element-wise operations of one forward pass, per sample.
    fn forward_flops_per_sample() -> u64;

    /// Forward FLOPs per sample of each block, in [`Backbone::BLOCKS`] order (they sum to
    /// [`Backbone::forward_flops_per_sample`]). The default splits the total evenly; networks
    /// override it with exact counts.
    fn block_forward_flops() -> Vec<u64> {
        let n = Self::BLOCKS.len().max(1) as u64;
        vec![Self::forward_flops_per_sample() / n; Self::BLOCKS.len()]
    }
}

/// The reference networks of PROTOCOLS.md, chosen at run time (CLI `--model`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkKind {
    /// `Linear(784->512) ReLU Linear(512->256) ReLU | Linear(256->C)`.
    Mlp,
    /// `Conv(1->32,3x3,pad 1) ReLU MaxPool(2) Conv(32->64,3x3,pad 1) ReLU MaxPool(2)
    /// Flatten Linear(3136->128) ReLU | Linear(128->C)`.
    Convnet,
}

impl NetworkKind {
    /// The network's name, as used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            NetworkKind::Mlp => "mlp",
            NetworkKind::Convnet => "convnet",
        }
    }
}

impl std::str::FromStr for NetworkKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mlp" => Ok(NetworkKind::Mlp),
            "convnet" => Ok(NetworkKind::Convnet),
            other => Err(format!(
                "unknown network `{other}`: expected `mlp` or `convnet`"
            )),
        }
    }
}
