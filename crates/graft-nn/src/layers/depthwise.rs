//! [`DepthwiseConv2d`]: one `k x k` filter per channel (PyTorch's `groups = channels`), no
//! bias, SAME padding, with its own backward pass.
//!
//! Each `(sample, channel)` plane is one parallel task. Forward: for every output row, each
//! kernel tap adds `w * x` over the row's valid outputs (a contiguous, vectorisable run at
//! stride 1; padded positions are skipped, never materialised). Backward walks the same runs:
//! `dW[tap] += Σ dY · x` per plane (partial sums per plane, added over the batch afterwards)
//! and `dX += w · dY` scattered back onto the input row.

use dfdx::shapes::HasShape;
use dfdx::tensor::{Cpu, PutTape, SplitTape, Tape, TensorFromVec};
use dfdx::tensor_ops::ReshapeTo;
use rayon::prelude::*;

use super::padding::SamePad;
use super::{add_into, normal_values, owned_param, sample_parts, sum_over_batch, Images, Shape4};
use crate::conv::{values, InputGrad};
use crate::OwnedParam;

/// The outputs `lo..hi` of a row that kernel column `kx` reads inside the input, starting
/// at input column `start` (computed once per call, not per row).
#[derive(Debug, Clone, Copy)]
struct ColRun {
    lo: usize,
    hi: usize,
    start: usize,
}

/// The geometry of one plane of a depthwise call.
#[derive(Debug, Clone)]
struct PlaneGeom {
    rows: SamePad,
    cols: SamePad,
    k: usize,
    /// One run per kernel column; `None` where the column reads only padding.
    col_runs: Vec<Option<ColRun>>,
}

impl PlaneGeom {
    fn new((h, w): (usize, usize), k: usize, stride: usize) -> Self {
        let cols = SamePad::new(w, k, stride);
        let col_runs = (0..k)
            .map(|kx| {
                let run = cols.valid_outputs(kx);
                (!run.is_empty()).then(|| ColRun {
                    lo: run.start,
                    hi: run.end,
                    start: run.start * stride + kx - cols.before,
                })
            })
            .collect();
        Self {
            rows: SamePad::new(h, k, stride),
            cols,
            k,
            col_runs,
        }
    }

    /// Planes per parallel task: enough that a task has a few thousand outputs.
    fn planes_per_task(&self) -> usize {
        (4096 / self.out_len().max(1)).max(1)
    }
    fn in_len(&self) -> usize {
        self.rows.input * self.cols.input
    }
    fn out_len(&self) -> usize {
        self.rows.out * self.cols.out
    }
}

/// `dst[i] += a * src[start + i * stride]` for every `i` of `dst`.
#[inline]
fn axpy_gather(a: f32, src: &[f32], start: usize, stride: usize, dst: &mut [f32]) {
    if stride == 1 {
        for (d, v) in dst.iter_mut().zip(&src[start..]) {
            *d += a * v;
        }
    } else {
        for (d, v) in dst.iter_mut().zip(src[start..].iter().step_by(stride)) {
            *d += a * v;
        }
    }
}

/// `dst[start + i * stride] += a * src[i]` for every `i` of `src`.
#[inline]
fn axpy_scatter(a: f32, src: &[f32], dst: &mut [f32], start: usize, stride: usize) {
    if stride == 1 {
        for (d, v) in dst[start..].iter_mut().zip(src) {
            *d += a * v;
        }
    } else {
        for (d, v) in dst[start..].iter_mut().step_by(stride).zip(src) {
            *d += a * v;
        }
    }
}

/// `Σ a[i] * b[start + i * stride]`.
#[inline]
fn dot_strided(a: &[f32], b: &[f32], start: usize, stride: usize) -> f32 {
    if stride == 1 {
        a.iter().zip(&b[start..]).map(|(p, q)| p * q).sum()
    } else {
        a.iter()
            .zip(b[start..].iter().step_by(stride))
            .map(|(p, q)| p * q)
            .sum()
    }
}

/// One plane's output `y` (overwritten) from its input `x` and filter `wk` (`k * k`).
fn forward_plane(x: &[f32], wk: &[f32], g: &PlaneGeom, y: &mut [f32]) {
    y.fill(0.0);
    let (w, ow, s) = (g.cols.input, g.cols.out, g.cols.stride);
    for (oy, y_row) in y.chunks_exact_mut(ow).enumerate() {
        for ky in 0..g.k {
            let Some(iy) = g.rows.input_of(oy, ky) else {
                continue;
            };
            let x_row = &x[iy * w..][..w];
            for (kx, run) in g.col_runs.iter().enumerate() {
                let Some(run) = run else { continue };
                let dst = &mut y_row[run.lo..run.hi];
                axpy_gather(wk[ky * g.k + kx], x_row, run.start, s, dst);
            }
        }
    }
}

/// One plane's backward pass: `gw` (`k * k`) += the filter's gradient, `gx` (if any) += the
/// input's.
fn backward_plane(
    x: &[f32],
    wk: &[f32],
    gy: &[f32],
    g: &PlaneGeom,
    gw: &mut [f32],
    mut gx: Option<&mut [f32]>,
) {
    let (w, ow, s) = (g.cols.input, g.cols.out, g.cols.stride);
    for (oy, gy_row) in gy.chunks_exact(ow).enumerate() {
        for ky in 0..g.k {
            let Some(iy) = g.rows.input_of(oy, ky) else {
                continue;
            };
            let x_row = &x[iy * w..][..w];
            for (kx, run) in g.col_runs.iter().enumerate() {
                let Some(run) = run else { continue };
                let gy_run = &gy_row[run.lo..run.hi];
                gw[ky * g.k + kx] += dot_strided(gy_run, x_row, run.start, s);
                if let Some(gx) = gx.as_deref_mut() {
                    let gx_row = &mut gx[iy * w..][..w];
                    axpy_scatter(wk[ky * g.k + kx], gy_run, gx_row, run.start, s);
                }
            }
        }
    }
}

/// The output `(b, c, ceil(h / s), ceil(w / s))` of a depthwise convolution of `x` (`dims`)
/// with the filters `wv` (`(c, k, k)`), `(k, s)` = kernel and stride; no tape.
pub(crate) fn depthwise_values(
    x: &[f32],
    (b, c, h, w): Shape4,
    wv: &[f32],
    (k, s): (usize, usize),
) -> Vec<f32> {
    let g = PlaneGeom::new((h, w), k, s);
    let mut y = vec![0.0f32; b * c * g.out_len()];
    y.par_chunks_mut(g.out_len().max(1))
        .enumerate()
        .with_min_len(g.planes_per_task())
        .for_each(|(p, yp)| {
            let wk = &wv[(p % c) * k * k..][..k * k];
            forward_plane(&x[p * g.in_len()..][..g.in_len()], wk, &g, yp);
        });
    y
}

/// The backward pass of a depthwise convolution on plain values: returns the filters'
/// gradient (`(c, k, k)`) and adds the input's to `gx` when given.
pub(crate) fn depthwise_grads(
    x: &[f32],
    wv: &[f32],
    gy: &[f32],
    (b, c, h, w): Shape4,
    (k, s): (usize, usize),
    gx: Option<&mut [f32]>,
) -> Vec<f32> {
    let g = PlaneGeom::new((h, w), k, s);
    let mut gw_parts = vec![0.0f32; b * c * k * k];
    gw_parts
        .par_chunks_mut(k * k)
        .zip(sample_parts(gx, g.in_len(), b * c))
        .enumerate()
        .with_min_len(g.planes_per_task())
        .for_each(|(p, (gw, gx))| {
            let x = &x[p * g.in_len()..][..g.in_len()];
            let wk = &wv[(p % c) * k * k..][..k * k];
            let gy = &gy[p * g.out_len()..][..g.out_len()];
            backward_plane(x, wk, gy, &g, gw, gx);
        });
    let mut gw = vec![0.0f32; c * k * k];
    sum_over_batch(&gw_parts, c, k * k, &mut gw);
    gw
}

/// A depthwise convolution: `channels` filters of `kernel x kernel`, stride `stride`, SAME
/// padding, no bias (the layout of PyTorch's `Conv2d(c, c, k, groups=c, bias=False)`).
#[derive(Debug, Clone)]
pub struct DepthwiseConv2d {
    /// Filters, `(channels, 1, kernel, kernel)`.
    pub weight: OwnedParam<Shape4>,
    /// Stride along both axes.
    pub stride: usize,
}

impl DepthwiseConv2d {
    /// Filters drawn from a normal distribution with standard deviation `sqrt(2 / fan_out)`
    /// (EfficientNet's initialisation; `fan_out = k * k` for a depthwise filter).
    pub fn new(dev: &Cpu, channels: usize, kernel: usize, stride: usize) -> Self {
        let std = (2.0 / (kernel * kernel) as f32).sqrt();
        let values = normal_values(dev, channels * kernel * kernel, std);
        Self {
            weight: owned_param(dev, values, (channels, 1, kernel, kernel)),
            stride,
        }
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.weight.values().len() / (self.kernel() * self.kernel())
    }

    /// Kernel side.
    pub fn kernel(&self) -> usize {
        let dims = crate::Param::dims(&self.weight);
        dims[3]
    }

    /// Output size `(rows, columns)` for an `h x w` input: `(ceil(h / s), ceil(w / s))`.
    pub fn output_size(&self, h: usize, w: usize) -> (usize, usize) {
        (h.div_ceil(self.stride), w.div_ceil(self.stride))
    }

    /// FLOPs of one forward pass for one `h x w` image (2 per multiply-add, padding included).
    pub fn forward_flops(&self, h: usize, w: usize) -> u64 {
        let (oh, ow) = self.output_size(h, w);
        (2 * self.kernel() * self.kernel() * self.channels() * oh * ow) as u64
    }

    /// Convolves a batch; records gradients for the weight and (with [`InputGrad::Compute`])
    /// the input when `x` carries an owned tape.
    ///
    /// # Panics
    /// If `x` has another channel count than the filters.
    pub fn forward<T: Tape<f32, Cpu>>(&self, x: Images<T>, input_grad: InputGrad) -> Images<T> {
        let (x, mut tape) = x.contiguous().split_tape();
        let dev = x.device().clone();
        let (b, c, h, w) = *x.shape();
        assert_eq!(c, self.channels(), "depthwise conv: channel count");
        let (k, stride) = (self.kernel(), self.stride);
        let g = PlaneGeom::new((h, w), k, stride);
        let xv = values(&x);
        let wv = self.weight.shared();
        let y = depthwise_values(&xv, (b, c, h, w), &wv, (k, self.stride));
        let out = dev.tensor_from_vec(y, (b, c, g.rows.out, g.cols.out));
        if !T::OWNS_TAPE {
            return out.put_tape(tape);
        }
        let (x_g, out_g, w_slot) = (x.ghost(), out.ghost(), self.weight.grad_slot());
        drop(x);
        tape.add_backward_op(move |grads| {
            // The output gradient is read once, here: taken, not copied (freed after use).
            let gy: Vec<f32> = std::mem::take(&mut **grads.get_or_alloc_mut(&out_g)?);
            let gx = match input_grad {
                InputGrad::Compute => Some(&mut grads.get_or_alloc_mut(&x_g)?[..]),
                InputGrad::Skip => None,
            };
            let gw = depthwise_grads(&xv, &wv, &gy, (b, c, h, w), (k, stride), gx);
            add_into(w_slot(grads)?, &gw);
            Ok(())
        });
        out.put_tape(tape)
    }
}
