//! [`SameConv2d`]: a full convolution with SAME padding and no bias (EfficientNet's stem,
//! `3 -> 32, 3x3, stride 2`), by im2col and one GEMM per sample, with its own backward pass.
//!
//! Per sample: `col` (`(ci*k*k, oh*ow)`) holds the input patches, padding as zeros, and
//! `Y = W · col`. Backward: `dW += dY · colᵀ`, and `dcol = Wᵀ · dY` folded back onto `dX`.
//! Samples run in parallel; each worker sums its own weight gradient, added at the end.

use dfdx::shapes::HasShape;
use dfdx::tensor::{Cpu, PutTape, SplitTape, Tape, TensorFromVec};
use dfdx::tensor_ops::ReshapeTo;
use rayon::prelude::*;

use super::padding::SamePad;
use super::{add_into, normal_values, owned_param, sample_parts, Images, Shape4};
use crate::conv::{sgemm_par, values, with_scratch, InputGrad};
use crate::{OwnedParam, Param};

/// The geometry of one call (per sample).
#[derive(Debug, Clone, Copy)]
struct ConvGeom {
    ci: usize,
    co: usize,
    k: usize,
    rows: SamePad,
    cols: SamePad,
}

impl ConvGeom {
    fn new((ci, co): (usize, usize), (h, w): (usize, usize), k: usize, stride: usize) -> Self {
        Self {
            ci,
            co,
            k,
            rows: SamePad::new(h, k, stride),
            cols: SamePad::new(w, k, stride),
        }
    }
    fn in_len(&self) -> usize {
        self.ci * self.rows.input * self.cols.input
    }
    fn out_pixels(&self) -> usize {
        self.rows.out * self.cols.out
    }
    fn patch_len(&self) -> usize {
        self.ci * self.k * self.k
    }
}

/// Unfolds one sample `x` (`(ci, h, w)`) into `col` (`(ci*k*k, oh*ow)`), padding as zeros.
fn im2col(x: &[f32], g: &ConvGeom, col: &mut [f32]) {
    let (h, w, ow, s) = (g.rows.input, g.cols.input, g.cols.out, g.cols.stride);
    let mut rows = col.chunks_exact_mut(g.out_pixels());
    for c in 0..g.ci {
        let plane = &x[c * h * w..][..h * w];
        for ky in 0..g.k {
            for kx in 0..g.k {
                let row = rows.next().expect("im2col: short column matrix");
                let run = g.cols.valid_outputs(kx);
                for (oy, dst) in row.chunks_exact_mut(ow).enumerate() {
                    let Some(iy) = g.rows.input_of(oy, ky).filter(|_| !run.is_empty()) else {
                        dst.fill(0.0);
                        continue;
                    };
                    dst[..run.start].fill(0.0);
                    dst[run.end..].fill(0.0);
                    let start = iy * w + run.start * s + kx - g.cols.before;
                    let src = plane[start..].iter().step_by(s);
                    for (d, v) in dst[run.clone()].iter_mut().zip(src) {
                        *d = *v;
                    }
                }
            }
        }
    }
}

/// Folds `col` (`(ci*k*k, oh*ow)`) back onto one sample's gradient `gx` (`(ci, h, w)`), adding.
fn col2im(col: &[f32], g: &ConvGeom, gx: &mut [f32]) {
    let (h, w, ow, s) = (g.rows.input, g.cols.input, g.cols.out, g.cols.stride);
    let mut rows = col.chunks_exact(g.out_pixels());
    for c in 0..g.ci {
        let plane = &mut gx[c * h * w..][..h * w];
        for ky in 0..g.k {
            for kx in 0..g.k {
                let row = rows.next().expect("col2im: short column matrix");
                let run = g.cols.valid_outputs(kx);
                for (oy, src) in row.chunks_exact(ow).enumerate() {
                    let Some(iy) = g.rows.input_of(oy, ky).filter(|_| !run.is_empty()) else {
                        continue;
                    };
                    let start = iy * w + run.start * s + kx - g.cols.before;
                    let dst = plane[start..].iter_mut().step_by(s);
                    for (d, v) in dst.zip(&src[run.clone()]) {
                        *d += *v;
                    }
                }
            }
        }
    }
}

/// The output `(b, co, ceil(h / s), ceil(w / s))` of a SAME convolution of `x` (`dims`) with
/// the filters `wv` (`(co, ci, k, k)`), `(co, k, s)` = output channels, kernel and stride.
pub(crate) fn conv_values(
    x: &[f32],
    (b, ci, h, w): Shape4,
    wv: &[f32],
    (co, k, s): (usize, usize, usize),
) -> Vec<f32> {
    let g = ConvGeom::new((ci, co), (h, w), k, s);
    let out_len = co * g.out_pixels();
    let par = super::pointwise::inner_parallelism(b, out_len * g.patch_len());
    let mut y = vec![0.0f32; b * out_len];
    y.par_chunks_mut(out_len.max(1))
        .enumerate()
        .for_each(|(bi, yb)| {
            with_scratch(g.patch_len() * g.out_pixels(), |col| {
                im2col(&x[bi * g.in_len()..][..g.in_len()], &g, col);
                let mnk = (co, g.out_pixels(), g.patch_len());
                sgemm_par(mnk, yb, false, (wv, false), (col, false), par);
            });
        });
    y
}

/// A bias-free convolution `ci -> co`, `kernel x kernel`, stride `stride`, SAME padding.
#[derive(Debug, Clone)]
pub struct SameConv2d {
    /// Filters, `(co, ci, kernel, kernel)` (PyTorch layout).
    pub weight: OwnedParam<Shape4>,
    /// Stride along both axes.
    pub stride: usize,
}

impl SameConv2d {
    /// Filters drawn from a normal distribution with standard deviation `sqrt(2 / fan_out)`,
    /// `fan_out = co * k * k` (EfficientNet's initialisation).
    pub fn new(dev: &Cpu, (ci, co): (usize, usize), kernel: usize, stride: usize) -> Self {
        let std = (2.0 / (co * kernel * kernel) as f32).sqrt();
        let values = normal_values(dev, co * ci * kernel * kernel, std);
        Self {
            weight: owned_param(dev, values, (co, ci, kernel, kernel)),
            stride,
        }
    }

    /// `(in channels, out channels, kernel)`.
    pub fn dims(&self) -> (usize, usize, usize) {
        let d = self.weight.dims();
        (d[1], d[0], d[2])
    }

    /// Output size `(rows, columns)` for an `h x w` input.
    pub fn output_size(&self, h: usize, w: usize) -> (usize, usize) {
        (h.div_ceil(self.stride), w.div_ceil(self.stride))
    }

    /// FLOPs of one forward pass for one `h x w` image (2 per multiply-add).
    pub fn forward_flops(&self, h: usize, w: usize) -> u64 {
        let (ci, co, k) = self.dims();
        let (oh, ow) = self.output_size(h, w);
        (2 * ci * k * k * co * oh * ow) as u64
    }

    /// Convolves a batch; records gradients for the weight and (with [`InputGrad::Compute`])
    /// the input when `x` carries an owned tape.
    ///
    /// # Panics
    /// If `x` has another channel count than the filters.
    pub fn forward<T: Tape<f32, Cpu>>(&self, x: Images<T>, input_grad: InputGrad) -> Images<T> {
        let (x, mut tape) = x.contiguous().split_tape();
        let dev = x.device().clone();
        let (b, ci, h, w) = *x.shape();
        let (wci, co, k) = self.dims();
        assert_eq!(ci, wci, "conv: input channel count");
        let g = ConvGeom::new((ci, co), (h, w), k, self.stride);
        let xv = values(&x);
        let wv = self.weight.shared();
        let out_len = co * g.out_pixels();
        let par = super::pointwise::inner_parallelism(b, co * g.out_pixels() * g.patch_len());
        let y = conv_values(&xv, (b, ci, h, w), &wv, (co, k, self.stride));
        let out = dev.tensor_from_vec(y, (b, co, g.rows.out, g.cols.out));
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
            let parts = sample_parts(gx, g.in_len(), b);
            let gw = parts
                .into_par_iter()
                .enumerate()
                .fold(
                    || vec![0.0f32; co * g.patch_len()],
                    |mut gw, (bi, gx)| {
                        let x = &xv[bi * g.in_len()..][..g.in_len()];
                        backward_sample(
                            x,
                            &wv,
                            &gy[bi * out_len..][..out_len],
                            &g,
                            &mut gw,
                            gx,
                            par,
                        );
                        gw
                    },
                )
                .reduce_with(|mut a, b| {
                    add_into(&mut a, &b);
                    a
                });
            if let Some(gw) = gw {
                add_into(w_slot(grads)?, &gw);
            }
            Ok(())
        });
        out.put_tape(tape)
    }
}

/// One sample's backward pass: `gw += dY · colᵀ`, and `gx += col2im(Wᵀ · dY)` if asked.
fn backward_sample(
    x: &[f32],
    w: &[f32],
    gy: &[f32],
    g: &ConvGeom,
    gw: &mut [f32],
    gx: Option<&mut [f32]>,
    par: gemm::Parallelism,
) {
    let (kk, ohw) = (g.patch_len(), g.out_pixels());
    with_scratch(kk * ohw, |col| {
        im2col(x, g, col);
        sgemm_par((g.co, kk, ohw), gw, true, (gy, false), (col, true), par);
        if let Some(gx) = gx {
            sgemm_par((kk, ohw, g.co), col, false, (w, true), (gy, false), par);
            col2im(col, g, gx);
        }
    });
}
