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
    let dims = Dims { n, inp, out };
    let xv = x.as_vec();
    let mut y = frozen_forward(&xv, base, dims);
    let adapter = lora.map(|l| {
        let saved = adapter_forward(l, &xv, &mut y, dims, dropout);
        (l.a.ghost(), l.b.ghost(), saved)
    });
    drop(xv);
    let y = dev.tensor_from_vec(y, (n, out));
    if !T::OWNS_TAPE {
        return y.put_tape(tape);
    }
    let w = Arc::clone(&base.weight);
    let (x_g, y_g) = (x.ghost(), y.ghost());
    let bias_g = train_bias.then(|| base.bias.ghost());
    drop(x);
    tape.add_backward_op(move |grads| -> Result<(), CpuError> {
        let g = grads.get_or_alloc_mut(&y_g)?.to_vec();
        if let Some(bg) = &bias_g {
            add_bias_grad(grads.get_or_alloc_mut(bg)?, &g, dims);
        }
        add_input_grad_through_weight(grads.get_or_alloc_mut(&x_g)?, &g, &w, dims);
        if let Some((a_g, b_g, saved)) = &adapter {
            add_b_grad(grads.get_or_alloc_mut(b_g)?, &g, saved, dims);
            let t = scaled_grad_through_b(&g, saved, dims);
            add_a_grad(grads.get_or_alloc_mut(a_g)?, &t, saved, dims);
            add_input_grad_through_adapter(grads.get_or_alloc_mut(&x_g)?, &t, saved, dims);
        }
        Ok(())
    });
    y.put_tape(tape)
}

/// The sizes of one [`frozen_linear`] call: `n` rows of `inp` values in, `out` values out.
#[derive(Debug, Clone, Copy)]
struct Dims {
    n: usize,
    inp: usize,
    out: usize,
}

/// `x Wᵀ + b`: the bias broadcast to every row, the frozen weight's GEMM accumulated onto it.
fn frozen_forward(xv: &[f32], base: &FrozenLinear, Dims { n, inp, out }: Dims) -> Vec<f32> {
    let mut y = Vec::with_capacity(n * out);
    let bias = base.bias.as_vec();
    for _ in 0..n {
        y.extend_from_slice(&bias);
    }
    gemm_strided(
        (n, out, inp),
        (&mut y, out, true),
        (xv, inp, 1),
        (&base.weight, 1, inp),
        par(n, out, inp),
    );
    y
}

/// The dropout factors of `len` input values (`0` or `1 / (1 - p)`), drawn from the mask's
/// seed; `None` when nothing is dropped.
fn dropout_factors(dropout: Option<Dropout>, len: usize) -> Option<Vec<f32>> {
    dropout.filter(|d| d.p > 0.0).map(|d| {
        let mut rng = SplitMix64::new(d.seed);
        let s = 1.0 / (1.0 - d.p);
        (0..len)
            .map(|_| if rng.next_f32() < d.p { 0.0 } else { s })
            .collect()
    })
}

/// What the adapter's backward pass keeps from its forward.
struct AdapterSaved {
    /// `A`, `(r, in)`.
    a: Vec<f32>,
    /// `B`, `(out, r)`.
    b: Vec<f32>,
    scale: f32,
    r: usize,
    /// Dropout factors (`None`: every value kept as is).
    keep: Option<Vec<f32>>,
    /// The dropped input, `(n, in)`.
    xd: Vec<f32>,
    /// `s (xd Aᵀ)`, `(n, r)`.
    u: Vec<f32>,
}

/// Adds `s (drop(x) Aᵀ) Bᵀ` to `y` and keeps what the backward pass needs.
fn adapter_forward(
    l: &LoraParams,
    xv: &[f32],
    y: &mut [f32],
    Dims { n, inp, out }: Dims,
    dropout: Option<Dropout>,
) -> AdapterSaved {
    let r = l.rank();
    assert_eq!(*l.a.shape(), (r, inp), "lora A shape");
    assert_eq!(*l.b.shape(), (out, r), "lora B shape");
    let keep = dropout_factors(dropout, n * inp);
    let xd: Vec<f32> = match &keep {
        Some(k) => xv.iter().zip(k).map(|(v, f)| v * f).collect(),
        None => xv.to_vec(),
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
        (y, out, true),
        (&u, r, 1),
        (&b, 1, r),
        par(n, out, r),
    );
    AdapterSaved {
        a,
        b,
        scale: l.scale,
        r,
        keep,
        xd,
        u,
    }
}

/// `db += Σ_rows g` (bitfit's bias gradient).
fn add_bias_grad(gb: &mut [f32], g: &[f32], Dims { out, .. }: Dims) {
    for row in g.chunks_exact(out) {
        for (d, v) in gb.iter_mut().zip(row) {
            *d += *v;
        }
    }
}

/// `dx += g W` (the frozen part).
fn add_input_grad_through_weight(gx: &mut [f32], g: &[f32], w: &[f32], d: Dims) {
    let Dims { n, inp, out } = d;
    gemm_strided(
        (n, inp, out),
        (gx, inp, true),
        (g, out, 1),
        (w, inp, 1),
        par(n, inp, out),
    );
}

/// `dB += gᵀ (s xd Aᵀ)`.
fn add_b_grad(gb: &mut [f32], g: &[f32], ad: &AdapterSaved, Dims { n, out, .. }: Dims) {
    let r = ad.r;
    gemm_strided(
        (out, r, n),
        (gb, r, true),
        (g, 1, out),
        (&ad.u, r, 1),
        par(out, r, n),
    );
}

/// `t = s g B`, `(n, r)`: the gradient reaching the adapter's `drop(x) Aᵀ`.
fn scaled_grad_through_b(g: &[f32], ad: &AdapterSaved, Dims { n, out, .. }: Dims) -> Vec<f32> {
    let r = ad.r;
    let mut t = vec![0.0f32; n * r];
    gemm_strided(
        (n, r, out),
        (&mut t, r, false),
        (g, out, 1),
        (&ad.b, r, 1),
        par(n, r, out),
    );
    t.iter_mut().for_each(|v| *v *= ad.scale);
    t
}

/// `dA += tᵀ xd`.
fn add_a_grad(ga: &mut [f32], t: &[f32], ad: &AdapterSaved, Dims { n, inp, .. }: Dims) {
    let r = ad.r;
    gemm_strided(
        (r, inp, n),
        (ga, inp, true),
        (t, 1, r),
        (&ad.xd, inp, 1),
        par(r, inp, n),
    );
}

/// `dx += (t A) ⊙ keep`.
fn add_input_grad_through_adapter(
    gx: &mut [f32],
    t: &[f32],
    ad: &AdapterSaved,
    Dims { n, inp, .. }: Dims,
) {
    let r = ad.r;
    match &ad.keep {
        None => gemm_strided(
            (n, inp, r),
            (gx, inp, true),
            (t, r, 1),
            (&ad.a, inp, 1),
            par(n, inp, r),
        ),
        Some(k) => {
            let mut v = vec![0.0f32; n * inp];
            gemm_strided(
                (n, inp, r),
                (&mut v, inp, false),
                (t, r, 1),
                (&ad.a, inp, 1),
                par(n, inp, r),
            );
            for ((d, v), f) in gx.iter_mut().zip(&v).zip(k) {
                *d += v * f;
            }
        }
    }
}

#[cfg(test)]
mod tests;
