//! [`frozen_linear`] against a naive f64 dense reference `x (W + s B A)ᵀ + b`.

use dfdx::prelude::*;
use dfdx::tensor_ops::Backward;
use proptest::prelude::*;

use super::{frozen_linear, Dropout, FrozenLinear, LoraParams};
use crate::bert::{Linear, Matrix};
use graft_data::SplitMix64;

struct Case {
    n: usize,
    inp: usize,
    out: usize,
    r: usize,
    w: Vec<f32>,
    bias: Vec<f32>,
    a: Vec<f32>,
    b: Vec<f32>,
    x: Vec<f32>,
    g: Vec<f32>,
    scale: f32,
}

fn values(rng: &mut SplitMix64, n: usize) -> Vec<f32> {
    (0..n).map(|_| 2.0 * rng.next_f32() - 1.0).collect()
}

impl Case {
    fn new(n: usize, inp: usize, out: usize, r: usize, seed: u64) -> Self {
        let mut rng = SplitMix64::new(seed);
        Self {
            n,
            inp,
            out,
            r,
            w: values(&mut rng, out * inp),
            bias: values(&mut rng, out),
            a: values(&mut rng, r * inp),
            b: values(&mut rng, out * r),
            x: values(&mut rng, n * inp),
            g: values(&mut rng, n * out),
            scale: 1.0 + 3.0 * rng.next_f32(),
        }
    }

    /// `(y, dx, dA, dB, db)` of `sum(y ⊙ g)` in f64, with the dense weight `W + s B A` and
    /// the adapter input `x ⊙ keep`.
    fn reference(&self, keep: &[f64]) -> [Vec<f64>; 5] {
        let (n, inp, out, r, s) = (self.n, self.inp, self.out, self.r, self.scale as f64);
        let f = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
        let (w, a, b, x, g, bias) = (
            f(&self.w),
            f(&self.a),
            f(&self.b),
            f(&self.x),
            f(&self.g),
            f(&self.bias),
        );
        let xd: Vec<f64> = x.iter().zip(keep).map(|(v, k)| v * k).collect();
        // ba[o][i] = s sum_k B[o][k] A[k][i]
        let mut ba = vec![0.0; out * inp];
        for o in 0..out {
            for i in 0..inp {
                ba[o * inp + i] = s * (0..r).map(|k| b[o * r + k] * a[k * inp + i]).sum::<f64>();
            }
        }
        let mut y = vec![0.0; n * out];
        for t in 0..n {
            for o in 0..out {
                y[t * out + o] = bias[o]
                    + (0..inp)
                        .map(|i| {
                            x[t * inp + i] * w[o * inp + i] + xd[t * inp + i] * ba[o * inp + i]
                        })
                        .sum::<f64>();
            }
        }
        let mut dx = vec![0.0; n * inp];
        for t in 0..n {
            for i in 0..inp {
                dx[t * inp + i] = (0..out)
                    .map(|o| {
                        g[t * out + o] * (w[o * inp + i] + keep[t * inp + i] * ba[o * inp + i])
                    })
                    .sum();
            }
        }
        // u = xd Aᵀ (n, r)
        let u: Vec<f64> = (0..n * r)
            .map(|tk| {
                let (t, k) = (tk / r, tk % r);
                (0..inp).map(|i| xd[t * inp + i] * a[k * inp + i]).sum()
            })
            .collect();
        let db_: Vec<f64> = (0..out * r)
            .map(|ok| {
                let (o, k) = (ok / r, ok % r);
                s * (0..n).map(|t| g[t * out + o] * u[t * r + k]).sum::<f64>()
            })
            .collect();
        let gb: Vec<f64> = (0..n * r)
            .map(|tk| {
                let (t, k) = (tk / r, tk % r);
                (0..out).map(|o| g[t * out + o] * b[o * r + k]).sum()
            })
            .collect();
        let da: Vec<f64> = (0..r * inp)
            .map(|ki| {
                let (k, i) = (ki / inp, ki % inp);
                s * (0..n).map(|t| gb[t * r + k] * xd[t * inp + i]).sum::<f64>()
            })
            .collect();
        let dbias: Vec<f64> = (0..out)
            .map(|o| (0..n).map(|t| g[t * out + o]).sum())
            .collect();
        [y, dx, da, db_, dbias]
    }
}

fn close(got: &[f32], want: &[f64], what: &str, tol: f64) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len(), "{} length", what);
    for (i, (p, q)) in got.iter().zip(want).enumerate() {
        prop_assert!(
            (*p as f64 - q).abs() <= tol * (1.0 + q.abs()),
            "{}[{}]: {} vs {}",
            what,
            i,
            p,
            q
        );
    }
    Ok(())
}

/// Runs the operation on `case` and checks values and gradients against the reference.
fn check(case: &Case, dropout: Option<Dropout>, tol: f64) -> Result<(), TestCaseError> {
    let dev = Cpu::seed_from_u64(0);
    let (n, inp, out, r) = (case.n, case.inp, case.out, case.r);
    let base = FrozenLinear::of(&Linear {
        weight: dev.tensor_from_vec(case.w.clone(), (out, inp)),
        bias: dev.tensor_from_vec(case.bias.clone(), (out,)),
    });
    let lora = LoraParams {
        a: dev.tensor_from_vec(case.a.clone(), (r, inp)),
        b: dev.tensor_from_vec(case.b.clone(), (out, r)),
        scale: case.scale,
    };
    let x: Matrix = dev.tensor_from_vec(case.x.clone(), (n, inp));
    let g: Matrix = dev.tensor_from_vec(case.g.clone(), (n, out));
    let y = frozen_linear(x.leaky_trace(), &base, Some(&lora), dropout, true);
    let keep: Vec<f64> = match dropout {
        None => vec![1.0; n * inp],
        Some(d) => {
            let mut rng = SplitMix64::new(d.seed);
            (0..n * inp)
                .map(|_| {
                    if rng.next_f32() < d.p {
                        0.0
                    } else {
                        1.0 / (1.0 - d.p as f64)
                    }
                })
                .collect()
        }
    };
    let [ry, rdx, rda, rdb, rdbias] = case.reference(&keep);
    close(&y.as_vec(), &ry, "y", tol)?;
    let grads = (y * g).sum().backward();
    close(&grads.get(&x).as_vec(), &rdx, "dx", tol)?;
    close(&grads.get(&lora.a).as_vec(), &rda, "dA", tol)?;
    close(&grads.get(&lora.b).as_vec(), &rdb, "dB", tol)?;
    close(&grads.get(&base.bias).as_vec(), &rdbias, "dbias", tol)?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Forward and the gradients of x, A, B (and the bias) equal the dense f64 reference.
    #[test]
    fn lora_equals_dense_reference(
        n in 1usize..9, inp in 1usize..13, out in 1usize..13, r in 1usize..5, seed in 0u64..1000
    ) {
        check(&Case::new(n, inp, out, r, seed), None, 1e-5)?;
    }

    /// The same with dropout on the adapter's input (the reference rebuilds the mask).
    #[test]
    fn lora_with_dropout_equals_dense_reference(
        n in 1usize..9, inp in 1usize..13, out in 1usize..13, r in 1usize..5, seed in 0u64..1000
    ) {
        check(&Case::new(n, inp, out, r, seed), Some(Dropout { p: 0.3, seed: seed + 7 }), 1e-5)?;
    }
}

/// Shapes large enough for the multi-threaded GEMM path. Sums of up to 80 x 70 f32 products
/// of magnitude ~1 carry rounding near 1e-5 here, so the bound is 1e-4.
#[test]
fn lora_equals_dense_reference_on_a_large_case() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    pool.install(|| check(&Case::new(70, 96, 80, 8, 5), None, 1e-4))
        .unwrap();
}

/// `B = 0` (PEFT's initialisation) adds exactly nothing, and with no adapter the weight gets
/// no gradient while the input does.
#[test]
fn zero_b_is_exactly_the_frozen_layer() {
    let dev = Cpu::seed_from_u64(1);
    let mut rng = SplitMix64::new(9);
    let (n, inp, out) = (5, 7, 6);
    let base = FrozenLinear::of(&Linear {
        weight: dev.tensor_from_vec(values(&mut rng, out * inp), (out, inp)),
        bias: dev.tensor_from_vec(values(&mut rng, out), (out,)),
    });
    let lora = LoraParams::init(&dev, inp, out, 3, 6.0, &mut rng);
    assert!(lora.b.as_vec().iter().all(|&v| v == 0.0));
    let bound = 1.0 / (inp as f32).sqrt();
    assert!(lora.a.as_vec().iter().all(|v| v.abs() <= bound));
    assert!(lora.a.as_vec().iter().any(|&v| v != 0.0));
    let x: Matrix = dev.tensor_from_vec(values(&mut rng, n * inp), (n, inp));
    let with = frozen_linear(x.clone(), &base, Some(&lora), None, false).as_vec();
    let without = frozen_linear(x.clone(), &base, None, None, false).as_vec();
    assert_eq!(with, without);
    assert_eq!(lora.merged(&base.weight, out, inp), *base.weight);
    let mut start = Gradients::leaky();
    start.try_alloc_for(&base.bias).unwrap();
    let grads = frozen_linear(x.clone().traced(start), &base, None, None, false)
        .sum()
        .backward();
    assert!(grads.get(&x).as_vec().iter().any(|&v| v != 0.0));
    assert!(grads.get(&base.bias).as_vec().iter().all(|&v| v == 0.0));
}
