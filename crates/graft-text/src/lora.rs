//! LoRA (Hu et al. 2021) on a frozen linear layer, as a dfdx operation with its own
//! backward pass.
//!
//! [`frozen_linear`] computes `y = x Wᵀ + b + s (drop(x) Aᵀ) Bᵀ` with `s = alpha / r`,
//! without ever forming `W + s B A`: one GEMM for the frozen part accumulating onto the
//! broadcast bias, two thin GEMMs (`n x r`, then `n x out`) for the adapter. The backward
//! pass writes the gradients of the input, of `A` and `B` and (only when asked, for
//! `bitfit`) of the bias; the frozen weight's gradient is never computed, and the forward
//! keeps only what those gradients need: the dropped input and `s (drop(x) Aᵀ)` when there is
//! an adapter, nothing of `x` otherwise (`W` is shared, not copied).
//!
//! Initialisation follows PEFT: `B = 0`, `A` Kaiming-uniform with `a = sqrt(5)` (PyTorch's
//! `nn.Linear` default: uniform in `±1/sqrt(in)`).

use std::sync::Arc;

use dfdx::shapes::HasShape;
use dfdx::tensor::{Cpu, CpuError, PutTape, SplitTape, Tape, TensorFromVec};
use dfdx::tensor_ops::ReshapeTo;
use graft_data::SplitMix64;
use graft_nn::gemm::gemm_strided;

use crate::bert::{Linear, Matrix, Vector};

/// A linear layer whose weight is frozen: `(out, in)` values shared, never copied.
#[derive(Debug, Clone)]
pub struct FrozenLinear {
    /// `(out, in)`, row-major.
    pub weight: Arc<Vec<f32>>,
    /// `(out,)`: a tensor so that `bitfit` can train it.
    pub bias: Vector,
    /// Output width.
    pub out: usize,
    /// Input width.
    pub inp: usize,
}

impl FrozenLinear {
    /// Takes `l`'s values (the bias is a new tensor with its own gradient).
    pub fn of(l: &Linear) -> Self {
        let (out, inp) = *l.weight.shape();
        let bias = l.bias.clone();
        Self {
            weight: Arc::new(l.weight.as_vec()),
            bias: bias.device().tensor_from_vec(bias.as_vec(), (out,)),
            out,
            inp,
        }
    }
}

/// A LoRA adapter on one linear layer: `A` is `(r, in)`, `B` is `(out, r)`.
#[derive(Debug, Clone)]
pub struct LoraParams {
    /// `lora_A.weight`, `(r, in)`.
    pub a: Matrix,
    /// `lora_B.weight`, `(out, r)`.
    pub b: Matrix,
    /// `alpha / r`.
    pub scale: f32,
}

impl LoraParams {
    /// PEFT's initialisation: `B = 0`, `A` Kaiming-uniform with `a = sqrt(5)`, i.e. uniform
    /// in `±1/sqrt(in)` (gain `sqrt(2 / (1 + 5))`, bound `gain * sqrt(3 / in)`), drawn from
    /// `rng`.
    pub fn init(
        dev: &Cpu,
        inp: usize,
        out: usize,
        rank: usize,
        alpha: f32,
        rng: &mut SplitMix64,
    ) -> Self {
        let bound = (2.0f32 / 6.0).sqrt() * (3.0 / inp as f32).sqrt();
        let a = (0..rank * inp)
            .map(|_| (2.0 * rng.next_f32() - 1.0) * bound)
            .collect();
        Self {
            a: dev.tensor_from_vec(a, (rank, inp)),
            b: dev.tensor_from_vec(vec![0.0; out * rank], (out, rank)),
            scale: alpha / rank as f32,
        }
    }

    /// Rank `r`.
    pub fn rank(&self) -> usize {
        self.a.shape().0
    }

    /// `W + s B A` as `(out, in)` values (for merging; training never forms it).
    pub fn merged(&self, weight: &[f32], out: usize, inp: usize) -> Vec<f32> {
        let r = self.rank();
        let mut w = weight.to_vec();
        let a = self.a.as_vec();
        let b: Vec<f32> = self.b.as_vec().iter().map(|v| v * self.scale).collect();
        gemm_strided(
            (out, inp, r),
            (&mut w, inp, true),
            (&b, r, 1),
            (&a, inp, 1),
            gemm::Parallelism::None,
        );
        w
    }
}

/// Dropout on the adapter's input: drop probability and the seed of this call's mask.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    /// Probability of zeroing an input value (kept ones are scaled by `1 / (1 - p)`).
    pub p: f32,
    /// Seed of the mask.
    pub seed: u64,
}

fn par(m: usize, n: usize, k: usize) -> gemm::Parallelism {
    let threads = rayon::current_num_threads();
    if threads > 1 && m * n * k >= 1 << 18 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    }
}

/// `x Wᵀ + b + s (drop(x) Aᵀ) Bᵀ` for `x` of shape `(n, in)` (see the module docs). With an
/// owned tape it records the gradients of `x`, of the adapter's `A` and `B` and, when
/// `train_bias`, of `base.bias`; `W` gets none. `dropout` applies to the adapter's input only
/// (as PEFT's `lora_dropout`), and only when there is an adapter.
pub fn frozen_linear<T: Tape<f32, Cpu>>(
    x: Matrix<T>,
    base: &FrozenLinear,
    lora: Option<&LoraParams>,
    dropout: Option<Dropout>,
    train_bias: bool,
) -> Matrix<T> {
    // The gradient buffer of `x` is laid out as its storage: make it row-major first.
    let (x, mut tape) = x.contiguous().split_tape();
    let dev = x.device().clone();
    let (n, inp) = *x.shape();
    assert_eq!(inp, base.inp, "frozen_linear: input width");
    let out = base.out;
    let xv = x.as_vec();
    let mut y = Vec::with_capacity(n * out);
    let bias = base.bias.as_vec();
    for _ in 0..n {
        y.extend_from_slice(&bias);
    }
    let w = Arc::clone(&base.weight);
    gemm_strided(
        (n, out, inp),
        (&mut y, out, true),
        (&xv, inp, 1),
        (&w, 1, inp),
        par(n, out, inp),
    );
    // The adapter: keep = dropout factors (None: every value kept as is).
    let adapter = lora.map(|l| {
        let r = l.rank();
        assert_eq!(*l.a.shape(), (r, inp), "lora A shape");
        assert_eq!(*l.b.shape(), (out, r), "lora B shape");
        let keep: Option<Vec<f32>> = dropout.filter(|d| d.p > 0.0).map(|d| {
            let mut rng = SplitMix64::new(d.seed);
            let s = 1.0 / (1.0 - d.p);
            (0..n * inp)
                .map(|_| if rng.next_f32() < d.p { 0.0 } else { s })
                .collect()
        });
        let xd: Vec<f32> = match &keep {
            Some(k) => xv.iter().zip(k).map(|(v, f)| v * f).collect(),
            None => xv.clone(),
        };
        let (a, b) = (l.a.as_vec(), l.b.as_vec());
        let mut u = vec![0.0f32; n * r];
        gemm_strided(
            (n, r, inp),
            (&mut u, r, false),
            (&xd, inp, 1),
            (&a, 1, inp),
            par(n, r, inp),
        );
        u.iter_mut().for_each(|v| *v *= l.scale);
        gemm_strided(
            (n, out, r),
            (&mut y, out, true),
            (&u, r, 1),
            (&b, 1, r),
            par(n, out, r),
        );
        (l.a.ghost(), l.b.ghost(), a, b, l.scale, r, keep, xd, u)
    });
    drop(xv);
    let y = dev.tensor_from_vec(y, (n, out));
    if !T::OWNS_TAPE {
        return y.put_tape(tape);
    }
    let (x_g, y_g) = (x.ghost(), y.ghost());
    let bias_g = train_bias.then(|| base.bias.ghost());
    drop(x);
    tape.add_backward_op(move |grads| -> Result<(), CpuError> {
        let g = grads.get_or_alloc_mut(&y_g)?.to_vec();
        if let Some(bg) = &bias_g {
            let gb = grads.get_or_alloc_mut(bg)?;
            for row in g.chunks_exact(out) {
                for (d, v) in gb.iter_mut().zip(row) {
                    *d += *v;
                }
            }
        }
        {
            let gx = grads.get_or_alloc_mut(&x_g)?;
            gemm_strided(
                (n, inp, out),
                (gx, inp, true),
                (&g, out, 1),
                (&w, inp, 1),
                par(n, inp, out),
            );
        }
        if let Some((a_g, b_g, a, b, scale, r, keep, xd, u)) = &adapter {
            let r = *r;
            // dB += gᵀ (s xd Aᵀ)
            let gb = grads.get_or_alloc_mut(b_g)?;
            gemm_strided(
                (out, r, n),
                (gb, r, true),
                (&g, 1, out),
                (u, r, 1),
                par(out, r, n),
            );
            // t = s g B, (n, r)
            let mut t = vec![0.0f32; n * r];
            gemm_strided(
                (n, r, out),
                (&mut t, r, false),
                (&g, out, 1),
                (b, r, 1),
                par(n, r, out),
            );
            t.iter_mut().for_each(|v| *v *= *scale);
            // dA += tᵀ xd
            let ga = grads.get_or_alloc_mut(a_g)?;
            gemm_strided(
                (r, inp, n),
                (ga, inp, true),
                (&t, 1, r),
                (xd, inp, 1),
                par(r, inp, n),
            );
            // dx += (t A) ⊙ keep
            let gx = grads.get_or_alloc_mut(&x_g)?;
            match keep {
                None => gemm_strided(
                    (n, inp, r),
                    (gx, inp, true),
                    (&t, r, 1),
                    (a, inp, 1),
                    par(n, inp, r),
                ),
                Some(k) => {
                    let mut v = vec![0.0f32; n * inp];
                    gemm_strided(
                        (n, inp, r),
                        (&mut v, inp, false),
                        (&t, r, 1),
                        (a, inp, 1),
                        par(n, inp, r),
                    );
                    for ((d, v), f) in gx.iter_mut().zip(&v).zip(k) {
                        *d += v * f;
                    }
                }
            }
        }
        Ok(())
    });
    y.put_tape(tape)
}

#[cfg(test)]
mod tests;
