//! EfficientNet-Lite's operators on random shapes (proptest) against naive float64
//! implementations written from the definitions, with gradients by finite differences:
//! depthwise and full convolutions with TensorFlow "SAME" padding (any size, kernel 1..5,
//! stride 1..2), and BatchNorm in train mode (batch statistics, running update).
//!
//! The convolutions are linear in the input and in the weight, so their finite differences
//! with a unit step are exact (up to f64 rounding). Tolerances, per element with `b` the f64
//! value: values and convolution gradients `|a - b| <= 1e-4 * max(|b|, 1)`; BatchNorm's
//! gradients (central differences, step 1e-3) `|a - b| <= 1e-3 * max(|b|, 1)`.

use dfdx::prelude::*;
use graft_nn::conv::InputGrad;
use graft_nn::layers::{BatchNorm2d, BnMode, DepthwiseConv2d, Images, SameConv2d};
use graft_nn::Param;
use proptest::prelude::*;

/// Deterministic values in `[-2, 2)` from a seed (SplitMix64).
fn random_values(seed: u64, n: usize) -> Vec<f32> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect()
}

fn check(what: &str, got: &[f32], want: &[f64], tol: f64) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len(), "{} length", what);
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        let err = (*a as f64 - b).abs() / b.abs().max(1.0);
        prop_assert!(
            err <= tol,
            "{}[{}]: {} vs {} (error {:.2e})",
            what,
            i,
            a,
            b,
            err
        );
    }
    Ok(())
}

/// A grouped convolution's sizes: `groups = ci` is depthwise, `groups = 1` a full one.
#[derive(Debug, Clone, Copy)]
struct ConvCase {
    b: usize,
    ci: usize,
    co: usize,
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    groups: usize,
}

impl ConvCase {
    /// TensorFlow's SAME padding, written out again: `(out, before)`.
    fn same(n: usize, k: usize, s: usize) -> (usize, usize) {
        let out = n.div_ceil(s);
        let total = ((out - 1) * s + k).saturating_sub(n);
        (out, total / 2)
    }

    fn out(&self) -> (usize, usize) {
        (
            Self::same(self.h, self.k, self.s).0,
            Self::same(self.w, self.k, self.s).0,
        )
    }

    fn x_len(&self) -> usize {
        self.b * self.ci * self.h * self.w
    }

    fn w_len(&self) -> usize {
        self.co * (self.ci / self.groups) * self.k * self.k
    }

    /// The convolution in f64, directly from its definition.
    fn naive(&self, x: &[f64], wt: &[f64]) -> Vec<f64> {
        let (oh, ow) = self.out();
        let (pt, pl) = (
            Self::same(self.h, self.k, self.s).1,
            Self::same(self.w, self.k, self.s).1,
        );
        let (cig, cog) = (self.ci / self.groups, self.co / self.groups);
        let mut y = vec![0.0; self.b * self.co * oh * ow];
        for (idx, out) in y.iter_mut().enumerate() {
            let (ox, oy) = (idx % ow, idx / ow % oh);
            let (o, bi) = (idx / (ow * oh) % self.co, idx / (ow * oh * self.co));
            for il in 0..cig {
                let i = o / cog * cig + il;
                for ky in 0..self.k {
                    for kx in 0..self.k {
                        let iy = (oy * self.s + ky) as isize - pt as isize;
                        let ix = (ox * self.s + kx) as isize - pl as isize;
                        if iy < 0 || ix < 0 || iy >= self.h as isize || ix >= self.w as isize {
                            continue;
                        }
                        let xi = ((bi * self.ci + i) * self.h + iy as usize) * self.w + ix as usize;
                        let wi = ((o * cig + il) * self.k + ky) * self.k + kx;
                        *out += wt[wi] * x[xi];
                    }
                }
            }
        }
        y
    }

    /// `d/dv Σ gy * conv(...)` for every element of `v` (the input when `of_input`, else the
    /// weight), by unit finite differences (exact: the map is linear in each).
    fn finite_diff(&self, x: &[f64], wt: &[f64], gy: &[f64], of_input: bool) -> Vec<f64> {
        let loss = |x: &[f64], wt: &[f64]| -> f64 {
            self.naive(x, wt).iter().zip(gy).map(|(y, g)| y * g).sum()
        };
        let base = loss(x, wt);
        let n = if of_input { x.len() } else { wt.len() };
        (0..n)
            .map(|i| {
                let (mut x2, mut w2) = (x.to_vec(), wt.to_vec());
                if of_input {
                    x2[i] += 1.0;
                } else {
                    w2[i] += 1.0;
                }
                loss(&x2, &w2) - base
            })
            .collect()
    }
}

/// Runs graft's kernel for `case` (depthwise when `groups == ci == co`; with one channel
/// the two are the same convolution), returning `y`, `dx`, `dw`.
fn run_graft(case: ConvCase, x: &[f32], wt: &[f32], gy: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let dev = Cpu::seed_from_u64(0);
    let xt: Images = dev.tensor_from_vec(x.to_vec(), (case.b, case.ci, case.h, case.w));
    let (oh, ow) = case.out();
    let gyt: Images = dev.tensor_from_vec(gy.to_vec(), (case.b, case.co, oh, ow));
    let (y, mut grads, weight): (Vec<f32>, _, Box<dyn Param>) =
        if case.groups == case.ci && case.co == case.ci {
            let mut conv = DepthwiseConv2d::new(&dev, case.ci, case.k, case.s);
            conv.weight.write_from(wt);
            let y = conv.forward(xt.leaky_trace(), InputGrad::Compute);
            (
                y.as_vec(),
                (y * gyt).sum().backward(),
                Box::new(conv.weight),
            )
        } else {
            let mut conv = SameConv2d::new(&dev, (case.ci, case.co), case.k, case.s);
            conv.weight.write_from(wt);
            let y = conv.forward(xt.leaky_trace(), InputGrad::Compute);
            (
                y.as_vec(),
                (y * gyt).sum().backward(),
                Box::new(conv.weight),
            )
        };
    let gw = weight.grad(&mut grads).unwrap().to_vec();
    (y, grads.get(&xt).as_vec(), gw)
}

fn check_conv(case: ConvCase, seed: u64) -> Result<(), TestCaseError> {
    let (oh, ow) = case.out();
    let x = random_values(seed, case.x_len());
    let wt = random_values(seed ^ 1, case.w_len());
    let gy = random_values(seed ^ 2, case.b * case.co * oh * ow);
    let (y, gx, gw) = run_graft(case, &x, &wt, &gy);
    let wide = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<f64>>();
    let (x64, w64, gy64) = (wide(&x), wide(&wt), wide(&gy));
    check("y", &y, &case.naive(&x64, &w64), 1e-4)?;
    check(
        "grad_x",
        &gx,
        &case.finite_diff(&x64, &w64, &gy64, true),
        1e-4,
    )?;
    check(
        "grad_w",
        &gw,
        &case.finite_diff(&x64, &w64, &gy64, false),
        1e-4,
    )
}

fn conv_sizes() -> impl Strategy<Value = (usize, usize, usize, usize, usize, usize)> {
    (
        1usize..=2,
        1usize..=3,
        1usize..=9,
        1usize..=9,
        1usize..=5,
        1usize..=2,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn depthwise_matches_naive_f64((b, c, h, w, k, s) in conv_sizes(), seed in any::<u64>()) {
        check_conv(ConvCase { b, ci: c, co: c, h, w, k, s, groups: c }, seed)?;
    }

    #[test]
    fn same_conv_matches_naive_f64(
        (b, ci, h, w, k, s) in conv_sizes(),
        co in 1usize..=4,
        seed in any::<u64>(),
    ) {
        check_conv(ConvCase { b, ci, co, h, w, k, s, groups: 1 }, seed)?;
    }

    #[test]
    fn batch_norm_train_matches_f64_and_finite_differences(
        b in 1usize..=3,
        c in 1usize..=3,
        (h, w) in (1usize..=4, 1usize..=4),
        seed in any::<u64>(),
    ) {
        prop_assume!(b * h * w > 1);
        check_batch_norm(b, c, (h, w), seed)?;
    }
}

/// BatchNorm in train mode, in f64: `Σ gy * y` and the batch's per-channel moments.
fn naive_bn_loss(
    x: &[f64],
    gamma: &[f64],
    beta: &[f64],
    gy: &[f64],
    (c, hw): (usize, usize),
) -> f64 {
    let n = (x.len() / c) as f64;
    let mut loss = 0.0;
    for ch in 0..c {
        let idx = || (0..x.len()).filter(move |i| i / hw % c == ch);
        let mean = idx().map(|i| x[i]).sum::<f64>() / n;
        let var = idx().map(|i| (x[i] - mean).powi(2)).sum::<f64>() / n;
        for i in idx() {
            let y = gamma[ch] * (x[i] - mean) / (var + 1e-3).sqrt() + beta[ch];
            loss += y * gy[i];
        }
    }
    loss
}

/// Central differences of [`naive_bn_loss`] in each of `x`, `gamma`, `beta`.
fn bn_finite_diffs(args: [&[f64]; 3], gy: &[f64], dims: (usize, usize)) -> [Vec<f64>; 3] {
    let step = 1e-3;
    let diff = |which: usize| -> Vec<f64> {
        (0..args[which].len())
            .map(|i| {
                let at = |delta: f64| {
                    let mut a: Vec<Vec<f64>> = args.iter().map(|v| v.to_vec()).collect();
                    a[which][i] += delta;
                    naive_bn_loss(&a[0], &a[1], &a[2], gy, dims)
                };
                (at(step) - at(-step)) / (2.0 * step)
            })
            .collect()
    };
    [diff(0), diff(1), diff(2)]
}

fn check_batch_norm(
    b: usize,
    c: usize,
    (h, w): (usize, usize),
    seed: u64,
) -> Result<(), TestCaseError> {
    let dev = Cpu::seed_from_u64(0);
    let n = b * c * h * w;
    let x: Vec<f32> = random_values(seed, n)
        .iter()
        .enumerate()
        .map(|(i, v)| v + (i / (h * w) % c) as f32)
        .collect();
    let gamma = random_values(seed ^ 1, c);
    let beta = random_values(seed ^ 2, c);
    let gy = random_values(seed ^ 3, n);
    let mut bn = BatchNorm2d::new(&dev, c);
    bn.weight.write_from(&gamma);
    bn.bias.write_from(&beta);
    let xt: Images = dev.tensor_from_vec(x.clone(), (b, c, h, w));
    let gyt: Images = dev.tensor_from_vec(gy.clone(), (b, c, h, w));
    let y = bn.forward(xt.leaky_trace(), BnMode::Train);
    let mut grads = (y * gyt).sum().backward();
    let wide = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<f64>>();
    let (x64, g64, b64, gy64) = (wide(&x), wide(&gamma), wide(&beta), wide(&gy));
    let [dx, dgamma, dbeta] = bn_finite_diffs([&x64, &g64, &b64], &gy64, (c, h * w));
    check("grad_x", &grads.get(&xt).as_vec(), &dx, 1e-3)?;
    check(
        "grad_gamma",
        bn.weight.grad(&mut grads).unwrap(),
        &dgamma,
        1e-3,
    )?;
    check("grad_beta", bn.bias.grad(&mut grads).unwrap(), &dbeta, 1e-3)?;
    // The running statistics: 0.99 * (0, 1) + 0.01 * (batch mean, unbiased batch variance).
    let count = (b * h * w) as f64;
    for ch in 0..c {
        let vals: Vec<f64> = (0..n)
            .filter(|i| i / (h * w) % c == ch)
            .map(|i| x64[i])
            .collect();
        let mean = vals.iter().sum::<f64>() / count;
        let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (count - 1.0);
        check(
            "running_mean",
            &bn.running_mean.values()[ch..=ch],
            &[0.01 * mean],
            1e-4,
        )?;
        check(
            "running_var",
            &bn.running_var.values()[ch..=ch],
            &[0.99 + 0.01 * var],
            1e-4,
        )?;
    }
    Ok(())
}
