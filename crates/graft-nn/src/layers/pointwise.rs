//! [`PointwiseConv2d`]: a bias-free 1x1 convolution `ci -> co` as one GEMM per sample, with
//! its own backward pass.
//!
//! A sample's input is already the `(ci, h*w)` matrix the GEMM needs, so nothing is copied:
//! `Y_b = W · X_b`; backward `dW += dY_b · X_bᵀ` and `dX_b += Wᵀ · dY_b`, accumulated
//! straight into dfdx's gradient buffer. Samples run in parallel; when there are fewer
//! samples than threads, each GEMM is split over the threads instead.

use dfdx::shapes::HasShape;
use dfdx::tensor::{Cpu, PutTape, SplitTape, Tape, TensorFromVec};
use dfdx::tensor_ops::ReshapeTo;
use gemm::Parallelism;
use rayon::prelude::*;

use super::{add_into, normal_values, owned_param, sample_parts, Images, Shape4};
use crate::conv::{num_threads, sgemm_par, values, InputGrad};
use crate::{OwnedParam, Param};

/// Below this many multiply-adds a GEMM runs on one thread.
const PARALLEL_MIN_MACS: usize = 1 << 18;

/// The threads one per-sample GEMM of `macs` multiply-adds gets when `samples` run in
/// parallel: all of them when the samples alone cannot keep the threads busy.
pub(crate) fn inner_parallelism(samples: usize, macs: usize) -> Parallelism {
    let threads = num_threads();
    if threads > 1 && samples < threads && macs >= PARALLEL_MIN_MACS {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    }
}

/// The output `(b, co, h, w)` of a 1x1 convolution of `x` (`dims`) with the filters `wv`
/// (`(co, ci)`); no tape.
pub(crate) fn pointwise_values(
    x: &[f32],
    (b, ci, h, w): Shape4,
    wv: &[f32],
    co: usize,
) -> Vec<f32> {
    let hw = h * w;
    let par = inner_parallelism(b, co * ci * hw);
    let mut y = vec![0.0f32; b * co * hw];
    y.par_chunks_mut((co * hw).max(1))
        .zip(x.par_chunks((ci * hw).max(1)))
        .for_each(|(yb, xb)| sgemm_par((co, hw, ci), yb, false, (wv, false), (xb, false), par));
    y
}

/// The backward pass of a 1x1 convolution on plain values: returns the weight's gradient
/// (`(co, ci)`) and adds the input's to `gx` when given. `x` is `(b, ci, hw)`, `gy`
/// `(b, co, hw)`.
pub(crate) fn pointwise_grads(
    x: &[f32],
    wv: &[f32],
    gy: &[f32],
    (b, ci, co, hw): (usize, usize, usize, usize),
    gx: Option<&mut [f32]>,
) -> Vec<f32> {
    let par = inner_parallelism(b, co * ci * hw);
    sample_parts(gx, ci * hw, b)
        .into_par_iter()
        .enumerate()
        .fold(
            || vec![0.0f32; co * ci],
            |mut gw, (bi, gx)| {
                let xb = &x[bi * ci * hw..][..ci * hw];
                let gyb = &gy[bi * co * hw..][..co * hw];
                sgemm_par((co, ci, hw), &mut gw, true, (gyb, false), (xb, true), par);
                if let Some(gx) = gx {
                    sgemm_par((ci, hw, co), gx, true, (wv, true), (gyb, false), par);
                }
                gw
            },
        )
        .reduce_with(|mut a, b| {
            add_into(&mut a, &b);
            a
        })
        .unwrap_or_else(|| vec![0.0; co * ci])
}

/// A bias-free 1x1 convolution (stride 1): EfficientNet's expand, project and head convs.
#[derive(Debug, Clone)]
pub struct PointwiseConv2d {
    /// Filters, `(co, ci, 1, 1)` (PyTorch layout).
    pub weight: OwnedParam<Shape4>,
}

impl PointwiseConv2d {
    /// Filters drawn from a normal distribution with standard deviation `sqrt(2 / co)`
    /// (EfficientNet's initialisation).
    pub fn new(dev: &Cpu, ci: usize, co: usize) -> Self {
        let values = normal_values(dev, co * ci, (2.0 / co as f32).sqrt());
        Self {
            weight: owned_param(dev, values, (co, ci, 1, 1)),
        }
    }

    /// `(in channels, out channels)`.
    pub fn dims(&self) -> (usize, usize) {
        let d = self.weight.dims();
        (d[1], d[0])
    }

    /// FLOPs of one forward pass for one `h x w` image (2 per multiply-add).
    pub fn forward_flops(&self, h: usize, w: usize) -> u64 {
        let (ci, co) = self.dims();
        (2 * ci * co * h * w) as u64
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
        let (wci, co) = self.dims();
        assert_eq!(ci, wci, "1x1 conv: input channel count");
        let hw = h * w;
        let xv = values(&x);
        let wv = self.weight.shared();
        let y = pointwise_values(&xv, (b, ci, h, w), &wv, co);
        let out = dev.tensor_from_vec(y, (b, co, h, w));
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
            let gw = pointwise_grads(&xv, &wv, &gy, (b, ci, co, hw), gx);
            add_into(w_slot(grads)?, &gw);
            Ok(())
        });
        out.put_tape(tape)
    }
}
