//! EfficientNet-Lite0 as a [`Backbone`] of the 28x28 grey protocols (`imagenet-animals`):
//! each flattened image is resized to `SIDE x SIDE` by bilinear interpolation with half-pixel
//! centres and no antialiasing (PyTorch's `F.interpolate(mode="bilinear",
//! align_corners=False)`), copied to the three colour channels, and run through the ImageNet
//! network with BatchNorm frozen: eval mode, the pretrained running statistics, in every
//! strategy (PROTOCOLS.md).
//!
//! The images arrive normalised as `(pixel / 255 - mean) / std`; the protocol's mean 127/255
//! and std 128/255 give EfficientNet-Lite's `(pixel - 127) / 128`. Bilinear weights sum to
//! one, so resizing the normalised image equals normalising the resized one.
//!
//! Blocks (the unit of freezing) are the network's 18 units: `_conv_stem`, `_blocks.0` ..
//! `_blocks.15`, `_conv_head`; the head is `_fc`, so the converted ImageNet checkpoint loads
//! by its own names (the 1000-class `_fc` left out for a new head).

use dfdx::shapes::HasShape;
use dfdx::tensor::{Cpu, SplitTape, Tape, TensorFromVec};

use crate::conv::values;
use crate::efficientnet::{
    block_configs, EfficientNetLite, EFFNET_FEATURES, EFFNET_HEAD_NAME, LITE0_GROUPS,
};
use crate::layers::{BnMode, Buffers, Images};
use crate::{Backbone, Features, InputBatch, Param, Parameters, IMAGE_SIDE};

/// The side the `imagenet-animals` protocols resize the 28x28 images to (`--model
/// efficientnet-lite0`); `efficientnet-lite0@224` is the network's own resolution.
pub const GREY_SIDE: usize = 96;

/// EfficientNet-Lite0 on 28x28 grey images resized to `SIDE x SIDE`, BatchNorm frozen.
#[derive(Debug, Clone)]
pub struct Lite0Grey<const SIDE: usize> {
    /// The ImageNet network without its `_fc` head.
    pub net: EfficientNetLite,
}

/// The unit names of EfficientNet-Lite0, input first (see [`EfficientNetLite::unit_names`]).
pub const LITE0_UNITS: [&str; 18] = [
    "_conv_stem",
    "_blocks.0",
    "_blocks.1",
    "_blocks.2",
    "_blocks.3",
    "_blocks.4",
    "_blocks.5",
    "_blocks.6",
    "_blocks.7",
    "_blocks.8",
    "_blocks.9",
    "_blocks.10",
    "_blocks.11",
    "_blocks.12",
    "_blocks.13",
    "_blocks.14",
    "_blocks.15",
    "_conv_head",
];

impl<const SIDE: usize> Lite0Grey<SIDE> {
    /// `(batch, 784)` grey images to `(batch, 3, SIDE, SIDE)`: bilinear resize, the grey
    /// plane copied to the three channels. No tape: the images are data.
    pub fn to_rgb(x: &InputBatch) -> Images {
        let b = x.shape().0;
        let pixels = values(x);
        let taps = bilinear_taps(IMAGE_SIDE, SIDE);
        let plane = SIDE * SIDE;
        let mut out = vec![0.0f32; b * 3 * plane];
        for (image, dst) in pixels
            .chunks_exact(IMAGE_SIDE * IMAGE_SIDE)
            .zip(out.chunks_exact_mut(3 * plane))
        {
            resize_plane(image, &taps, &mut dst[..plane]);
            let (grey, rest) = dst.split_at_mut(plane);
            rest[..plane].copy_from_slice(grey);
            rest[plane..].copy_from_slice(grey);
        }
        x.device().tensor_from_vec(out, (b, 3, SIDE, SIDE))
    }

    /// Forward FLOPs of each unit for one image, from the block table alone (the same count
    /// as [`EfficientNetLite::unit_forward_flops`], which needs the weights), plus the
    /// resize's 3 operations per output value in the first unit.
    pub fn unit_flops() -> Vec<u64> {
        let px = |h: usize, w: usize| (h * w) as u64;
        let (mut h, mut w) = (SIDE.div_ceil(2), SIDE.div_ceil(2));
        let resize = 3 * px(SIDE, SIDE);
        let mut flops = vec![resize + 2 * 3 * 9 * 32 * px(h, w) + 3 * 32 * px(h, w)];
        for c in block_configs(&LITE0_GROUPS) {
            let mid = c.mid_channels() as u64;
            let (oh, ow) = (h.div_ceil(c.stride), w.div_ceil(c.stride));
            let expand = if c.expand_ratio == 1 {
                0
            } else {
                2 * c.in_channels as u64 * mid * px(h, w) + 3 * mid * px(h, w)
            };
            let k = c.kernel as u64;
            let depthwise = 2 * k * k * mid * px(oh, ow) + 3 * mid * px(oh, ow);
            let out = c.out_channels as u64 * px(oh, ow);
            let project = 2 * mid * out + 2 * out;
            let residual = if c.has_residual() { out } else { 0 };
            flops.push(expand + depthwise + project + residual);
            (h, w) = (oh, ow);
        }
        let last = block_configs(&LITE0_GROUPS)
            .last()
            .map_or(32, |c| c.out_channels) as u64;
        let head = EFFNET_FEATURES as u64 * px(h, w);
        flops.push(2 * last * head + 4 * head);
        flops
    }
}

impl<const SIDE: usize> Backbone<EFFNET_FEATURES> for Lite0Grey<SIDE> {
    const NAME: &'static str = match SIDE {
        GREY_SIDE => "efficientnet-lite0",
        224 => "efficientnet-lite0@224",
        _ => "efficientnet-lite0 (another resolution)",
    };
    const HEAD_NAME: &'static str = EFFNET_HEAD_NAME;
    const BLOCKS: &'static [&'static str] = &LITE0_UNITS;
    const INPUT_SHAPE: (usize, usize, usize) = (3, SIDE, SIDE);
    /// Chosen from the monitor curves (pool images outside the k-shot sets, never the test
    /// split) of 300-step fine-tuning at k = 10, seeds 0..3: every curve was flat (within
    /// half a point) from step 30 to step 300.
    const MIN_TRAIN_STEPS: usize = 50;

    /// The stem's BatchNorm `_bn0` belongs to `_conv_stem`, the head's `_bn1` to
    /// `_conv_head`; `_blocks.N.*` to `_blocks.N`.
    fn block_of_param(name: &str) -> Option<usize> {
        match name.split('.').next()? {
            "_conv_stem" | "_bn0" => Some(0),
            "_conv_head" | "_bn1" => Some(LITE0_UNITS.len() - 1),
            _ => LITE0_UNITS[1..LITE0_UNITS.len() - 1]
                .iter()
                .position(|b| {
                    name.strip_prefix(b)
                        .is_some_and(|rest| rest.starts_with('.'))
                })
                .map(|i| i + 1),
        }
    }

    fn build(dev: &Cpu) -> Self {
        Self {
            net: EfficientNetLite::lite0(dev),
        }
    }

    fn forward<T: Tape<f32, Cpu>>(&self, x: InputBatch<T>) -> Features<EFFNET_FEATURES, T> {
        let (x, tape) = x.split_tape();
        self.forward_frozen(x, 0, tape)
    }

    fn forward_frozen<T: Tape<f32, Cpu>>(
        &self,
        x: InputBatch,
        frozen_blocks: usize,
        tape: T,
    ) -> Features<EFFNET_FEATURES, T> {
        let images = Self::to_rgb(&x);
        self.net
            .forward_frozen(images, frozen_blocks, BnMode::Eval, tape)
    }

    fn forward_flops_per_sample() -> u64 {
        Self::unit_flops().iter().sum()
    }

    fn block_forward_flops() -> Vec<u64> {
        Self::unit_flops()
    }
}

impl<const SIDE: usize> Parameters for Lite0Grey<SIDE> {
    fn visit_params(&self, f: &mut dyn FnMut(&str, &dyn Param)) {
        self.net.visit_params(f);
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn Param)) {
        self.net.visit_params_mut(f);
    }
}

impl<const SIDE: usize> Buffers for Lite0Grey<SIDE> {
    fn visit_buffers(&self, f: &mut dyn FnMut(&str, &dyn Param)) {
        self.net.visit_buffers(f);
    }
    fn visit_buffers_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn Param)) {
        self.net.visit_buffers_mut(f);
    }
}

/// For each output coordinate: the two input neighbours and the weight of the second, with
/// half-pixel centres (PyTorch's `align_corners=False`; sources below 0 clamp to 0).
fn bilinear_taps(n_in: usize, n_out: usize) -> Vec<(usize, usize, f32)> {
    let scale = n_in as f64 / n_out as f64;
    (0..n_out)
        .map(|o| {
            let s = ((o as f64 + 0.5) * scale - 0.5).clamp(0.0, (n_in - 1) as f64);
            let i0 = s.floor() as usize;
            (i0, (i0 + 1).min(n_in - 1), (s - i0 as f64) as f32)
        })
        .collect()
}

/// Resizes one square `IMAGE_SIDE` plane into `out` (`taps.len()` squared values).
fn resize_plane(src: &[f32], taps: &[(usize, usize, f32)], out: &mut [f32]) {
    let at = |y: usize, x: usize| src[y * IMAGE_SIDE + x];
    let side = taps.len();
    for (row, &(y0, y1, fy)) in out.chunks_exact_mut(side).zip(taps) {
        for (v, &(x0, x1, fx)) in row.iter_mut().zip(taps) {
            let top = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx;
            let bottom = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx;
            *v = top * (1.0 - fy) + bottom * fy;
        }
    }
}
