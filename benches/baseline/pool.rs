//! Max pooling and flattening for image batches, on stable dfdx.
//!
//! [`MaxPool2d`] is PyTorch's `max_pool2d` without padding (`ceil_mode = False`): the gradient
//! of each output goes to the position of its window's maximum; on ties the first maximum in
//! row-major window order wins, and a NaN is taken as the maximum, as in PyTorch's CPU kernel.
//! [`flatten`] and [`flatten_dyn`] reshape `(batch, C, rows, columns)` to `(batch, C*rows*columns)`
//! in PyTorch's `(channel, row, column)` order.

use dfdx::shapes::{Const, HasShape};
use dfdx::tensor::{Cpu, CpuError, PutTape, SplitTape, Tape, TensorFromVec};
use dfdx::tensor_ops::ReshapeTo;

use super::conv::{conv_out_len, with_scratch, with_values, ImageBatch};

/// `MaxPool2d(kernel K, stride S)`, no padding, no parameters.
///
/// ```
/// use dfdx::prelude::*;
/// use graft_nn::pool::MaxPool2d;
///
/// let dev = Cpu::seed_from_u64(0);
/// let x: Tensor<(usize, Const<3>, usize, usize), f32, _> = dev.zeros_like(&(2, Const, 7, 9));
/// let y = MaxPool2d::<2, 2>.forward(x);
/// assert_eq!(*y.shape(), (2, Const::<3>, 3, 4));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct MaxPool2d<const K: usize, const S: usize>;

impl<const K: usize, const S: usize> MaxPool2d<K, S> {
    /// Output size `(rows, columns)` for an `h x w` input, or `None` if it is smaller than
    /// the window.
    pub const fn output_size(h: usize, w: usize) -> Option<(usize, usize)> {
        match (conv_out_len(h, K, S, 0), conv_out_len(w, K, S, 0)) {
            (Some(oh), Some(ow)) => Some((oh, ow)),
            _ => None,
        }
    }

    /// Comparisons of one forward pass for one `C`-channel `h x w` image (`K*K` per output).
    ///
    /// # Panics
    /// If the image is smaller than the window.
    pub fn forward_flops(channels: usize, h: usize, w: usize) -> u64 {
        let (oh, ow) = Self::output_size(h, w).expect("max_pool2d: input smaller than the window");
        (channels * oh * ow * K * K) as u64
    }

    /// Pools a batch; the gradient is recorded when `x` carries an owned tape.
    ///
    /// # Panics
    /// If an image is smaller than the window.
    pub fn forward<const C: usize, T: Tape<f32, Cpu>>(
        &self,
        x: ImageBatch<C, T>,
    ) -> ImageBatch<C, T> {
        const { assert!(K > 0 && S > 0, "max_pool2d needs kernel and stride >= 1") };
        let (x, mut tape) = x.contiguous().split_tape();
        let dev = x.device().clone();
        let (b, _, h, w) = *x.shape();
        let Some((oh, ow)) = Self::output_size(h, w) else {
            panic!("max_pool2d: a {h}x{w} input is smaller than the {K}x{K} window");
        };
        let planes = b * C;
        let mut out = Vec::with_capacity(planes * oh * ow);
        let mut arg = Vec::with_capacity(if T::OWNS_TAPE { planes * oh * ow } else { 0 });
        with_values(&x, |xs| {
            for pl in 0..planes {
                let plane = &xs[pl * h * w..][..h * w];
                for oy in 0..oh {
                    for ox in 0..ow {
                        let first = oy * S * w + ox * S;
                        let (mut best, mut max) = (first, f32::NEG_INFINITY);
                        for ky in 0..K {
                            let row = first + ky * w;
                            for (i, &v) in plane[row..row + K].iter().enumerate() {
                                if v > max || v.is_nan() {
                                    max = v;
                                    best = row + i;
                                }
                            }
                        }
                        out.push(max);
                        if T::OWNS_TAPE {
                            arg.push(pl * h * w + best);
                        }
                    }
                }
            }
        });
        let out = dev.tensor_from_vec(out, (b, Const::<C>, oh, ow));
        if T::OWNS_TAPE {
            let x_g = x.ghost();
            let out_g = out.ghost();
            drop(x);
            tape.add_backward_op(move |grads| {
                let n = arg.len();
                with_scratch(n, |gy| -> Result<(), CpuError> {
                    gy.copy_from_slice(grads.get_or_alloc_mut(&out_g)?);
                    let gx = grads.get_or_alloc_mut(&x_g)?;
                    for (&i, g) in arg.iter().zip(gy.iter()) {
                        gx[i] += g;
                    }
                    Ok(())
                })
            });
        }
        out.put_tape(tape)
    }
}
