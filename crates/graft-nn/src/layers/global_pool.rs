//! [`global_avg_pool`]: the mean of every channel over its rows and columns, with its own
//! backward pass (each input gets `1 / (rows * columns)` of its channel's gradient).

use dfdx::shapes::HasShape;
use dfdx::tensor::{Cpu, PutTape, SplitTape, Tape, Tensor, TensorFromVec};
use dfdx::tensor_ops::ReshapeTo;
use rayon::prelude::*;

use super::Images;
use crate::conv::values;

/// `(batch, channels, rows, columns)` to `(batch, channels)`: the mean of each plane.
pub fn global_avg_pool<T: Tape<f32, Cpu>>(x: Images<T>) -> Tensor<(usize, usize), f32, Cpu, T> {
    let (x, mut tape) = x.contiguous().split_tape();
    let dev = x.device().clone();
    let (b, c, h, w) = *x.shape();
    let hw = h * w;
    let xv = values(&x);
    let means: Vec<f32> = xv
        .par_chunks(hw.max(1))
        .map(|plane| (plane.iter().map(|&v| v as f64).sum::<f64>() / hw as f64) as f32)
        .collect();
    drop(xv);
    let out = dev.tensor_from_vec(means, (b, c));
    if T::OWNS_TAPE {
        let (x_g, out_g) = (x.ghost(), out.ghost());
        drop(x);
        tape.add_backward_op(move |grads| {
            // The output gradient is read once, here: taken, not copied (freed after use).
            let gy: Vec<f32> = std::mem::take(&mut **grads.get_or_alloc_mut(&out_g)?);
            let gx = grads.get_or_alloc_mut(&x_g)?;
            let share = 1.0 / hw as f32;
            gx.par_chunks_mut(hw.max(1))
                .zip(gy.par_iter())
                .for_each(|(plane, g)| plane.iter_mut().for_each(|d| *d += g * share));
            Ok(())
        });
    }
    out.put_tape(tape)
}
