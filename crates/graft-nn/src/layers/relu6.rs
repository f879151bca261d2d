//! [`relu6`]: `min(max(x, 0), 6)` with its own backward pass. As in PyTorch, the gradient
//! passes only where `0 < x < 6` (none at exactly 0 or 6).

use dfdx::shapes::{HasShape, Shape};
use dfdx::tensor::{Cpu, PutTape, SplitTape, Tape, Tensor, TensorFromVec};
use dfdx::tensor_ops::ReshapeTo;
use rayon::prelude::*;

use crate::conv::values;

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// `min(max(x, 0), 6)`; the gradient is recorded when `x` carries an owned tape.
pub fn relu6<S: Shape, T: Tape<f32, Cpu>>(x: Tensor<S, f32, Cpu, T>) -> Tensor<S, f32, Cpu, T> {
    let (x, mut tape) = x.contiguous().split_tape();
    let dev = x.device().clone();
    let shape = *x.shape();
    let mut y = values(&x);
    if !T::OWNS_TAPE {
        y.par_chunks_mut(CHUNK)
            .for_each(|c| c.iter_mut().for_each(|v| *v = v.clamp(0.0, 6.0)));
        return dev.tensor_from_vec(y, shape).put_tape(tape);
    }
    let mut pass = vec![0u8; y.len()];
    y.par_chunks_mut(CHUNK)
        .zip(pass.par_chunks_mut(CHUNK))
        .for_each(|(ys, ps)| {
            for (v, p) in ys.iter_mut().zip(ps) {
                *p = u8::from(*v > 0.0 && *v < 6.0);
                *v = v.clamp(0.0, 6.0);
            }
        });
    let out = dev.tensor_from_vec(y, shape);
    let (x_g, out_g) = (x.ghost(), out.ghost());
    drop(x);
    tape.add_backward_op(move |grads| {
        // The output gradient is read once, here: taken, not copied (freed after use).
        let gy: Vec<f32> = std::mem::take(&mut **grads.get_or_alloc_mut(&out_g)?);
        let gx = grads.get_or_alloc_mut(&x_g)?;
        gx.par_chunks_mut(CHUNK)
            .zip(gy.par_chunks(CHUNK).zip(pass.par_chunks(CHUNK)))
            .for_each(|(gxs, (gys, ps))| {
                for ((d, g), &p) in gxs.iter_mut().zip(gys).zip(ps) {
                    let keep = u32::from(p).wrapping_neg();
                    *d += f32::from_bits(g.to_bits() & keep);
                }
            });
        Ok(())
    });
    out.put_tape(tape)
}
