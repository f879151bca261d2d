//! [`MbConv`]: the inverted-residual block of MobileNetV2 / EfficientNet-Lite (no
//! squeeze-excite), with the EfficientNet checkpoints' parameter names.
//!
//! ```text
//! _expand_conv (1x1, in -> in*e), _bn0, ReLU6      (absent when e = 1)
//! _depthwise_conv (k x k, stride s, SAME), _bn1, ReLU6
//! _project_conv (1x1, -> out), _bn2                (no activation)
//! + the input, when s = 1 and in = out
//! ```

use dfdx::shapes::HasShape;
use dfdx::tensor::{Cpu, NoneTape, Tape, TensorFromVec};
use dfdx::tensor_ops::ReshapeTo;

use rayon::prelude::*;

use super::depthwise::depthwise_values;
use super::folded;

use super::Buffers;
use super::{
    relu6, residual_add, BatchNorm2d, BnMode, DepthwiseConv2d, Images, PointwiseConv2d, Shape4,
};
use crate::conv::{values, InputGrad};
use crate::{Param, Parameters};

/// The shape of one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MbConvConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Expansion ratio `e` (1: no expand convolution).
    pub expand_ratio: usize,
    /// Depthwise kernel side (3 or 5).
    pub kernel: usize,
    /// Depthwise stride (1 or 2).
    pub stride: usize,
}

impl MbConvConfig {
    /// Channels between the expand and project convolutions: `in * e`.
    pub fn mid_channels(&self) -> usize {
        self.in_channels * self.expand_ratio
    }

    /// Whether the block adds its input (stride 1 and as many channels out as in).
    pub fn has_residual(&self) -> bool {
        self.stride == 1 && self.in_channels == self.out_channels
    }
}

/// `prefix.name`, or `name` when the prefix is empty.
pub(crate) fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// One inverted-residual block (see the module docs).
#[derive(Debug, Clone)]
pub struct MbConv {
    /// The block's shape.
    pub config: MbConvConfig,
    /// `_expand_conv` and `_bn0`, absent when the expansion ratio is 1.
    pub expand: Option<(PointwiseConv2d, BatchNorm2d)>,
    /// `_depthwise_conv`.
    pub depthwise: DepthwiseConv2d,
    /// `_bn1`, after the depthwise convolution.
    pub bn1: BatchNorm2d,
    /// `_project_conv`.
    pub project: PointwiseConv2d,
    /// `_bn2`, after the project convolution.
    pub bn2: BatchNorm2d,
}

impl MbConv {
    /// A randomly initialised block (EfficientNet's initialisation, BatchNorm γ = 1, β = 0).
    pub fn new(dev: &Cpu, config: MbConvConfig) -> Self {
        let mid = config.mid_channels();
        let expand = (config.expand_ratio != 1).then(|| {
            (
                PointwiseConv2d::new(dev, config.in_channels, mid),
                BatchNorm2d::new(dev, mid),
            )
        });
        Self {
            config,
            expand,
            depthwise: DepthwiseConv2d::new(dev, mid, config.kernel, config.stride),
            bn1: BatchNorm2d::new(dev, mid),
            project: PointwiseConv2d::new(dev, mid, config.out_channels),
            bn2: BatchNorm2d::new(dev, config.out_channels),
        }
    }

    /// Runs the block with BatchNorm in `mode`. With an owned tape, records gradients for every
    /// parameter and, with [`InputGrad::Compute`], the input. In eval mode the block is one
    /// operation that keeps about half the memory for its backward pass (`mbconv_eval`); in
    /// train mode, a chain of the separate operations.
    pub fn forward<T: Tape<f32, Cpu>>(
        &self,
        x: Images<T>,
        mode: BnMode,
        input_grad: InputGrad,
    ) -> Images<T> {
        if mode == BnMode::Eval {
            return self.forward_eval_fused(x, input_grad);
        }
        let skip = self.config.has_residual().then(|| x.retaped::<NoneTape>());
        let (h, grad) = match &self.expand {
            Some((conv, bn)) => (
                relu6(bn.forward(conv.forward(x, input_grad), mode)),
                InputGrad::Compute,
            ),
            None => (x, input_grad),
        };
        let h = relu6(self.bn1.forward(self.depthwise.forward(h, grad), mode));
        let y = self
            .bn2
            .forward(self.project.forward(h, InputGrad::Compute), mode);
        match skip {
            Some(skip) => residual_add(y, skip),
            None => y,
        }
    }

    /// The block in eval mode without a tape, each BatchNorm folded into its convolution (the
    /// same values as `forward(x, BnMode::Eval, ..)` up to f32 rounding, in fewer passes).
    pub fn forward_inference(&self, x: Images) -> Images {
        let dev = x.device().clone();
        let dims = *x.shape();
        let (y, shape) = self.forward_folded(values(&x.contiguous()), dims);
        dev.tensor_from_vec(y, shape)
    }

    /// FLOPs of one forward pass for one `h x w` input: 2 per multiply-add, 2 per BatchNorm
    /// value, 1 per ReLU6 value and per residual addition.
    pub fn forward_flops(&self, h: usize, w: usize) -> u64 {
        let c = self.config;
        let mid = c.mid_channels() as u64;
        let (oh, ow) = self.depthwise.output_size(h, w);
        let (in_px, out_px) = ((h * w) as u64, (oh * ow) as u64);
        let expand = self
            .expand
            .as_ref()
            .map_or(0, |(conv, _)| conv.forward_flops(h, w) + 3 * mid * in_px);
        let depthwise = self.depthwise.forward_flops(h, w) + 3 * mid * out_px;
        let out = c.out_channels as u64 * out_px;
        let project = self.project.forward_flops(oh, ow) + 2 * out;
        let residual = if c.has_residual() { out } else { 0 };
        expand + depthwise + project + residual
    }

    /// Visits every trainable tensor under `prefix` (`<prefix>._expand_conv.weight`, ...).
    pub fn visit_params_under(&self, prefix: &str, f: &mut dyn FnMut(&str, &dyn Param)) {
        if let Some((conv, bn)) = &self.expand {
            f(&join(prefix, "_expand_conv.weight"), &conv.weight);
            bn.visit(&join(prefix, "_bn0"), f);
        }
        f(
            &join(prefix, "_depthwise_conv.weight"),
            &self.depthwise.weight,
        );
        self.bn1.visit(&join(prefix, "_bn1"), f);
        f(&join(prefix, "_project_conv.weight"), &self.project.weight);
        self.bn2.visit(&join(prefix, "_bn2"), f);
    }

    /// Visits every trainable tensor under `prefix`, mutably.
    pub fn visit_params_mut_under(
        &mut self,
        prefix: &str,
        f: &mut dyn FnMut(&str, &mut dyn Param),
    ) {
        if let Some((conv, bn)) = &mut self.expand {
            f(&join(prefix, "_expand_conv.weight"), &mut conv.weight);
            bn.visit_mut(&join(prefix, "_bn0"), f);
        }
        f(
            &join(prefix, "_depthwise_conv.weight"),
            &mut self.depthwise.weight,
        );
        self.bn1.visit_mut(&join(prefix, "_bn1"), f);
        f(
            &join(prefix, "_project_conv.weight"),
            &mut self.project.weight,
        );
        self.bn2.visit_mut(&join(prefix, "_bn2"), f);
    }

    /// Every BatchNorm with its name (`_bn0` first when present).
    fn batch_norms(&self) -> Vec<(&'static str, &BatchNorm2d)> {
        let mut out = Vec::with_capacity(3);
        if let Some((_, bn)) = &self.expand {
            out.push(("_bn0", bn));
        }
        out.push(("_bn1", &self.bn1));
        out.push(("_bn2", &self.bn2));
        out
    }

    /// Visits every BatchNorm's running statistics under `prefix`.
    pub fn visit_buffers_under(&self, prefix: &str, f: &mut dyn FnMut(&str, &dyn Param)) {
        for (name, bn) in self.batch_norms() {
            bn.visit_buffers(&join(prefix, name), f);
        }
    }

    /// Visits every BatchNorm's running statistics under `prefix`, mutably.
    pub fn visit_buffers_mut_under(
        &mut self,
        prefix: &str,
        f: &mut dyn FnMut(&str, &mut dyn Param),
    ) {
        if let Some((_, bn)) = &mut self.expand {
            bn.visit_buffers_mut(&join(prefix, "_bn0"), f);
        }
        self.bn1.visit_buffers_mut(&join(prefix, "_bn1"), f);
        self.bn2.visit_buffers_mut(&join(prefix, "_bn2"), f);
    }
}

/// A block on its own: names without a prefix (`_expand_conv.weight`, ...).
impl Parameters for MbConv {
    fn visit_params(&self, f: &mut dyn FnMut(&str, &dyn Param)) {
        self.visit_params_under("", f);
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn Param)) {
        self.visit_params_mut_under("", f);
    }
}

impl Buffers for MbConv {
    fn visit_buffers(&self, f: &mut dyn FnMut(&str, &dyn Param)) {
        self.visit_buffers_under("", f);
    }
    fn visit_buffers_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn Param)) {
        self.visit_buffers_mut_under("", f);
    }
}
impl MbConv {
    /// The block in eval mode with each BatchNorm folded into its convolution (see
    /// `folded`); returns the output and its shape.
    pub(crate) fn forward_folded(&self, x: Vec<f32>, dims: Shape4) -> (Vec<f32>, Shape4) {
        let expanded;
        let (h, hdims) = match &self.expand {
            Some((conv, bn)) => {
                let (values, hdims) = folded::pointwise(conv, bn, &x, dims, true);
                expanded = values;
                (&expanded[..], hdims)
            }
            None => (&x[..], dims),
        };
        let dw = &self.depthwise;
        let f = folded::fold(dw.weight.values(), &self.bn1);
        let mut h = depthwise_values(h, hdims, &f.weight, (dw.kernel(), dw.stride));
        let (oh, ow) = dw.output_size(hdims.2, hdims.3);
        folded::add_shift(&mut h, &f.shift, oh * ow, true);
        let (mut y, ydims) = folded::pointwise(
            &self.project,
            &self.bn2,
            &h,
            (dims.0, hdims.1, oh, ow),
            false,
        );
        if self.config.has_residual() {
            y.par_iter_mut()
                .zip(x.par_iter())
                .for_each(|(a, b)| *a += b);
        }
        (y, ydims)
    }
}
