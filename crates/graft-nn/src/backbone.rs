//! What every reusable backbone offers: a typed forward pass to `F` features, named blocks,
//! PyTorch parameter names and a FLOP count.

use dfdx::tensor::{Cpu, Tape};

use crate::{Buffers, Features, InputBatch, Parameters};

/// A feature extractor mapping flattened 28x28 images to `F` features.
///
/// `F` is part of the type, so [`crate::Classifier`] only accepts a [`crate::Head`] of the
/// same width: a mismatch is a compile error. Non-trainable state (BatchNorm running
/// statistics) is visited through [`Buffers`], so checkpoints load and save it with the
/// weights; networks without any keep its empty defaults.
pub trait Backbone<const F: usize>: Parameters + Buffers + Clone + Send + Sync {
    /// The network's name in PROTOCOLS.md (`mlp`, `convnet`).
    const NAME: &'static str;
    /// The PyTorch module name of the head that follows this backbone (`fc3` for `mlp`).
    const HEAD_NAME: &'static str;
    /// Names of the backbone's blocks, input first (the unit of freezing).
    const BLOCKS: &'static [&'static str];
    /// The input each sample becomes inside the network, `(channels, rows, columns)`: the
    /// 28x28 grey image itself unless the network resizes it.
    const INPUT_SHAPE: (usize, usize, usize) = (1, 28, 28);
    /// The least optimiser steps of a default training run that updates this backbone's
    /// weights (the schedule is `max(this, 15 epochs)`). PROTOCOLS.md's 300 suits small
    /// networks; a large pretrained one reaches its plateau far sooner.
    const MIN_TRAIN_STEPS: usize = 300;

    /// The block (index into [`Backbone::BLOCKS`]) a parameter belongs to, from its name:
    /// the block whose name is the parameter's prefix up to a `.` (`fc1.weight` is `fc1`'s,
    /// `_blocks.1.x` is `_blocks.1`'s, not `_blocks.10`'s); `None` outside the backbone.
    /// Networks whose parameter names do not start with their block's name override it.
    fn block_of_param(name: &str) -> Option<usize> {
        Self::BLOCKS.iter().position(|b| {
            name.strip_prefix(b)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
        })
    }

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
    /// The ImageNet EfficientNet-Lite0 on the grey images resized to
    /// [`crate::lite0_grey::GREY_SIDE`] (the `imagenet-animals` protocols' choice).
    Lite0,
    /// The same at the network's own resolution, 224.
    Lite0At224,
}

impl NetworkKind {
    /// Every network, in the order the command line lists them.
    pub const ALL: [NetworkKind; 4] = [
        NetworkKind::Mlp,
        NetworkKind::Convnet,
        NetworkKind::Lite0,
        NetworkKind::Lite0At224,
    ];

    /// The network's name, as used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            NetworkKind::Mlp => "mlp",
            NetworkKind::Convnet => "convnet",
            NetworkKind::Lite0 => "efficientnet-lite0",
            NetworkKind::Lite0At224 => "efficientnet-lite0@224",
        }
    }

    /// Whether the network comes pretrained from elsewhere (ImageNet) rather than being
    /// pretrained by graft on a protocol's source task.
    pub fn is_imagenet(self) -> bool {
        matches!(self, NetworkKind::Lite0 | NetworkKind::Lite0At224)
    }
}

impl std::str::FromStr for NetworkKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NetworkKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = NetworkKind::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "unknown network `{s}`: expected one of {}",
                    names.join(", ")
                )
            })
    }
}
