//! [`Dense`]: a fully connected layer whose block is the fused `relu(x Wᵀ + b)`, with its own
//! backward pass.
//!
//! dfdx composes this block from a matmul, a broadcast add and a ReLU: three outputs and three
//! gradients materialised per step, a strided bias reduction, and the input's gradient always
//! computed, even for a first layer whose input is data. Here the forward is one GEMM followed
//! by one pass that adds the bias and clamps; the backward masks the upstream gradient once,
//! sums it into the bias gradient, and runs the two GEMMs `dW += gᵀ x` and (only with
//! [`InputGrad::Compute`]) `dx += g W`, accumulating straight into dfdx's gradient buffers.
//! The weight and bias are [`OwnedParam`]s: the GEMMs read them in place and the backward
//! pass shares them, with no per-step copy. Values and gradients equal dfdx's composition
//! (tested below, and against PyTorch through the reference networks).

use dfdx::nn::modules::Linear;
use dfdx::nn::{builders, BuildOnDevice};
use dfdx::shapes::{Const, HasShape, Rank1, Rank2};
use dfdx::tensor::{Cpu, CpuError, PutTape, SplitTape, Tape, TensorFromVec};
use dfdx::tensor_ops::ReshapeTo;
use gemm::Parallelism;

use crate::conv::{num_threads, sgemm_par, with_scratch, InputGrad, ScratchBuf};
use crate::{Features, Layer, OwnedParam, Param};

/// Below this many multiply-adds a GEMM runs on one thread (waking workers costs more).
const PARALLEL_MIN_MACS: usize = 1 << 18;

fn parallelism(m: usize, n: usize, k: usize) -> Parallelism {
    let threads = num_threads();
    if threads > 1 && m * n * k >= PARALLEL_MIN_MACS {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    }
}

/// `Linear(I -> O)` stored as PyTorch does (`weight` is `(O, I)`), used as the block
/// `relu(x Wᵀ + b)` by [`Dense::forward_relu`].
#[derive(Debug, Clone)]
pub struct Dense<const I: usize, const O: usize> {
    /// Weight matrix, `(O, I)`.
    pub weight: OwnedParam<Rank2<O, I>>,
    /// Bias vector, `(O,)`.
    pub bias: OwnedParam<Rank1<O>>,
}

impl<const I: usize, const O: usize> Dense<I, O> {
    /// A new layer initialised as dfdx's (and PyTorch's) `Linear`: uniform in `±1/sqrt(I)`,
    /// drawn from the device's seeded generator (the same draws as dfdx's builder).
    pub fn new(dev: &Cpu) -> Self {
        Self::from_linear(&builders::Linear::<I, O>::build_on_device(dev))
    }

    /// The layer holding `layer`'s values; gradients are stored under `layer`'s tensors' ids.
    pub fn from_linear(layer: &Linear<I, O, f32, Cpu>) -> Self {
        Self {
            weight: OwnedParam::from_tensor(&layer.weight),
            bias: OwnedParam::from_tensor(&layer.bias),
        }
    }

    /// A dfdx `Linear` holding a copy of the values (new tensors, with their own gradients).
    pub fn to_linear(&self, dev: &Cpu) -> Linear<I, O, f32, Cpu> {
        Linear {
            weight: self.weight.to_tensor(dev),
            bias: self.bias.to_tensor(dev),
        }
    }

    /// `relu(x Wᵀ + b)`. With an owned tape, records gradients for the weight, the bias and,
    /// with [`InputGrad::Compute`], the input.
    pub fn forward_relu<T: Tape<f32, Cpu>>(
        &self,
        x: Features<I, T>,
        input_grad: InputGrad,
    ) -> Features<O, T> {
        let (x, mut tape) = x.contiguous().split_tape();
        let dev = x.device().clone();
        let b = x.shape().0;
        // The output starts as the broadcast bias and the GEMM accumulates onto it.
        let mut y = Vec::with_capacity(b * O);
        for _ in 0..b {
            y.extend_from_slice(self.bias.values());
        }
        // The input is copied into a reusable scratch buffer (dfdx lends no slice of a
        // tensor), held until the backward pass needs it and then given back.
        let xv = ScratchBuf::copy_of(&x);
        let w = self.weight.shared();
        sgemm_par(
            (b, O, I),
            &mut y,
            true,
            (&xv, false),
            (&w, true),
            parallelism(b, O, I),
        );
        if !T::OWNS_TAPE {
            y.iter_mut().for_each(|v| *v = v.max(0.0));
            return dev.tensor_from_vec(y, (b, Const)).put_tape(tape);
        }
        let mask = relu_keeping_mask(&mut y);
        let out = dev.tensor_from_vec(y, (b, Const::<O>));
        let (x_g, out_g) = (x.ghost(), out.ghost());
        let (w_slot, b_slot) = (self.weight.grad_slot(), self.bias.grad_slot());
        drop(x);
        // The weight's values are only needed for the input's gradient.
        let wv = (input_grad == InputGrad::Compute).then_some(w);
        tape.add_backward_op(move |grads| {
            with_scratch(b * O, |g| -> Result<(), CpuError> {
                let up = grads.get_or_alloc_mut(&out_g)?;
                let bias_sum = masked_grad_and_bias_sum::<O>(g, up, &mask);
                for (d, s) in b_slot(grads)?.iter_mut().zip(&bias_sum) {
                    *d += *s;
                }
                let gw = w_slot(grads)?;
                sgemm_par(
                    (O, I, b),
                    gw,
                    true,
                    (g, true),
                    (&xv, false),
                    parallelism(O, I, b),
                );
                if let Some(wv) = &wv {
                    let gx = grads.get_or_alloc_mut(&x_g)?;
                    sgemm_par(
                        (b, I, O),
                        gx,
                        true,
                        (g, false),
                        (wv, false),
                        parallelism(b, I, O),
                    );
                }
                Ok(())
            })
        });
        out.put_tape(tape)
    }
}

/// ReLU in place, keeping where it passed (y > 0; dfdx's ReLU passes no gradient at 0
/// either) as one byte per value for the backward pass: a quarter of a copy of y.
fn relu_keeping_mask(y: &mut [f32]) -> Vec<u8> {
    y.iter_mut()
        .map(|v| {
            let pass = *v > 0.0;
            *v = if pass { *v } else { 0.0 };
            u8::from(pass)
        })
        .collect()
}

/// `g` = the upstream gradient `up` masked by the ReLU (as a bit mask, so it vectorises),
/// rows of `O`; returns its sum over the batch (the bias gradient), made in the same pass.
fn masked_grad_and_bias_sum<const O: usize>(g: &mut [f32], up: &[f32], mask: &[u8]) -> Vec<f32> {
    let mut bias_sum = vec![0.0f32; O];
    let rows = g.chunks_exact_mut(O).zip(up.chunks_exact(O));
    for ((g_row, up_row), m_row) in rows.zip(mask.chunks_exact(O)) {
        for (((gi, ui), &m), sum) in g_row.iter_mut().zip(up_row).zip(m_row).zip(&mut bias_sum) {
            let keep = u32::from(m).wrapping_neg();
            *gi = f32::from_bits(ui.to_bits() & keep);
            *sum += *gi;
        }
    }
    bias_sum
}

impl<const I: usize, const O: usize> Layer for Dense<I, O> {
    fn weight_and_bias(&self) -> (&dyn Param, &dyn Param) {
        (&self.weight, &self.bias)
    }
    fn weight_and_bias_mut(&mut self) -> (&mut dyn Param, &mut dyn Param) {
        (&mut self.weight, &mut self.bias)
    }
}

#[cfg(test)]
mod tests {
    use super::Dense;
    use crate::conv::InputGrad;
    use dfdx::nn::{builders, modules::Linear, BuildOnDevice};
    use dfdx::prelude::{
        BroadcastTo, Const, Cpu, Gradients, HasShape, PermuteTo, SampleTensor, SumTo, Tensor,
        Trace, TryMatMul,
    };
    use dfdx::tensor_ops::Backward;

    /// Values and every gradient equal dfdx's `relu(matmul + broadcast bias)` composition.
    #[test]
    fn fused_layer_matches_dfdx_composition() {
        let dev = Cpu::seed_from_u64(3);
        let layer: Linear<7, 5, f32, Cpu> = builders::Linear::<7, 5>::build_on_device(&dev);
        let x: Tensor<(usize, Const<7>), f32, Cpu> = dev.sample_normal_like(&(6, Const));
        let up: Tensor<(usize, Const<5>), f32, Cpu> = dev.sample_normal_like(&(6, Const));

        let fused = Dense::from_linear(&layer).forward_relu(x.leaky_trace(), InputGrad::Compute);
        let reference = {
            type T = dfdx::tensor::OwnedTape<f32, Cpu>;
            let y = x
                .leaky_trace()
                .matmul(layer.weight.retaped::<T>().permute());
            let shape = *y.shape();
            (y + layer.bias.retaped::<T>().broadcast_like(&shape)).relu()
        };
        let close = |a: &[f32], b: &[f32], what: &str| {
            assert_eq!(a.len(), b.len(), "{what}");
            for (i, (p, q)) in a.iter().zip(b).enumerate() {
                assert!(
                    (p - q).abs() <= 1e-5 * (1.0 + q.abs()),
                    "{what}[{i}]: {p} vs {q}"
                );
            }
        };
        close(&fused.as_vec(), &reference.as_vec(), "values");
        let gf = (fused * up.clone()).sum().backward();
        let gr = (reference * up).sum().backward();
        close(&gf.get(&x).as_vec(), &gr.get(&x).as_vec(), "dx");
        close(
            &gf.get(&layer.weight).as_vec(),
            &gr.get(&layer.weight).as_vec(),
            "dW",
        );
        close(
            &gf.get(&layer.bias).as_vec(),
            &gr.get(&layer.bias).as_vec(),
            "db",
        );
    }

    /// With `InputGrad::Skip` the input's gradient is never written.
    #[test]
    fn skipped_input_gradient_stays_zero() {
        let dev = Cpu::seed_from_u64(4);
        let layer: Linear<3, 4, f32, Cpu> = builders::Linear::<3, 4>::build_on_device(&dev);
        let x: Tensor<(usize, Const<3>), f32, Cpu> = dev.sample_normal_like(&(2, Const));
        let mut start = Gradients::leaky();
        start.try_alloc_for(&x).unwrap();
        let grads = Dense::from_linear(&layer)
            .forward_relu(x.clone().traced(start), InputGrad::Skip)
            .sum()
            .backward();
        assert!(grads.get(&x).as_vec().iter().all(|&v| v == 0.0));
        assert!(grads.get(&layer.bias).as_vec().iter().any(|&v| v != 0.0));
    }
}
