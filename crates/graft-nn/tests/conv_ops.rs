//! Conv2d and MaxPool2d against PyTorch (`conv2d_cases.safetensors`), and Conv2d against a
//! naive f64 direct convolution and its finite-difference gradients (proptest).
//!
//! Tolerance everywhere: `max|ours - ref| / max(1, max|ref|) <= 1e-4`.

mod common;

use common::{assert_close, Refs};
use dfdx::prelude::*;
use graft_nn::{Conv2d, ImageBatch, MaxPool2d};
use proptest::prelude::*;

const TOL: f64 = 1e-4;

/// Runs PyTorch case `conv{i}` through `Conv2d<CI, CO, K, S, P>`.
fn check_conv_case<
    const CI: usize,
    const CO: usize,
    const K: usize,
    const S: usize,
    const P: usize,
>(
    i: usize,
) {
    let r = Refs::open("conv2d_cases");
    let key = |s: &str| format!("conv{i}.{s}");
    let cfg = r.sizes(&key("config"));
    let (b, h, w) = (cfg[0], cfg[2], cfg[3]);
    assert_eq!(
        [cfg[1], cfg[4], cfg[5], cfg[6], cfg[7]],
        [CI, CO, K, S, P],
        "conv{i} config"
    );

    let dev = Cpu::seed_from_u64(0);
    let mut conv = Conv2d::<CI, CO, K, S, P>::new(&dev);
    conv.weight.copy_from(&r.f32(&key("weight")));
    conv.bias.copy_from(&r.f32(&key("bias")));
    let x: ImageBatch<CI> = dev.tensor_from_vec(r.f32(&key("x")), (b, Const, h, w));
    let gy_shape = r.shape(&key("grad_y"));
    let gy: ImageBatch<CO> =
        dev.tensor_from_vec(r.f32(&key("grad_y")), (b, Const, gy_shape[2], gy_shape[3]));

    let y = conv.forward(x.leaky_trace());
    assert_eq!(y.shape().2, gy_shape[2]);
    assert_eq!(y.shape().3, gy_shape[3]);
    assert_close(&key("y"), &y.as_vec(), &r.f32(&key("y")), TOL);

    let grads = (y * gy).sum().backward();
    assert_close(
        &key("grad_x"),
        &grads.get(&x).as_vec(),
        &r.f32(&key("grad_x")),
        TOL,
    );
    assert_close(
        &key("grad_weight"),
        &grads.get(&conv.weight).as_vec(),
        &r.f32(&key("grad_weight")),
        TOL,
    );
    assert_close(
        &key("grad_bias"),
        &grads.get(&conv.bias).as_vec(),
        &r.f32(&key("grad_bias")),
        TOL,
    );

    // Without a tape the forward pass is the same.
    let y0 = conv.forward(x.clone());
    assert_close(&key("y (no tape)"), &y0.as_vec(), &r.f32(&key("y")), TOL);
}

#[test]
fn conv2d_matches_pytorch() {
    // Configs: [batch, in, h, w, out, kernel, stride, padding].
    check_conv_case::<3, 4, 3, 1, 1>(0); // 2,3,9,7,4,3,1,1
    check_conv_case::<2, 3, 5, 2, 2>(1); // 2,2,11,10,3,5,2,2
    check_conv_case::<4, 5, 1, 1, 0>(2); // 3,4,6,6,5,1,1,0
    check_conv_case::<3, 2, 3, 2, 0>(3); // 1,3,10,9,2,3,2,0
    check_conv_case::<1, 8, 3, 1, 1>(4); // 2,1,28,28,8,3,1,1
}

/// Runs PyTorch case `maxpool{i}` through `MaxPool2d<K, S>` on `C` channels.
fn check_pool_case<const C: usize, const K: usize, const S: usize>(i: usize) {
    let r = Refs::open("conv2d_cases");
    let key = |s: &str| format!("maxpool{i}.{s}");
    let cfg = r.sizes(&key("config"));
    let (b, h, w) = (cfg[0], cfg[2], cfg[3]);
    assert_eq!([cfg[1], cfg[4], cfg[5]], [C, K, S], "maxpool{i} config");

    let dev = Cpu::seed_from_u64(0);
    let x: ImageBatch<C> = dev.tensor_from_vec(r.f32(&key("x")), (b, Const, h, w));
    let gs = r.shape(&key("grad_y"));
    let gy: ImageBatch<C> = dev.tensor_from_vec(r.f32(&key("grad_y")), (b, Const, gs[2], gs[3]));
    let y = MaxPool2d::<K, S>.forward(x.leaky_trace());
    assert_close(&key("y"), &y.as_vec(), &r.f32(&key("y")), TOL);
    let grads = (y * gy).sum().backward();
    assert_close(
        &key("grad_x"),
        &grads.get(&x).as_vec(),
        &r.f32(&key("grad_x")),
        TOL,
    );
}

#[test]
fn maxpool2d_matches_pytorch() {
    check_pool_case::<3, 2, 2>(0); // 2,3,8,8,2,2
    check_pool_case::<2, 2, 2>(1); // 1,2,7,9,2,2 (odd sizes: last row/column dropped)
    check_pool_case::<1, 2, 2>(2); // 2,1,28,28,2,2
}

#[test]
fn maxpool2d_ties_go_to_the_first_maximum() {
    let dev = Cpu::seed_from_u64(0);
    let x: ImageBatch<1> = dev.tensor_from_vec(vec![1.0, 3.0, 3.0, 3.0], (1, Const, 2, 2));
    let y = MaxPool2d::<2, 2>.forward(x.leaky_trace());
    assert_eq!(y.as_vec(), vec![3.0]);
    let grads = y.sum().backward();
    assert_eq!(grads.get(&x).as_vec(), vec![0.0, 1.0, 0.0, 0.0]);
}

#[test]
fn flatten_is_channel_row_column() {
    let dev = Cpu::seed_from_u64(0);
    let v: Vec<f32> = (0..2 * 3 * 2 * 2).map(|i| i as f32).collect();
    let x: ImageBatch<3> = dev.tensor_from_vec(v.clone(), (2, Const, 2, 2));
    let f = graft_nn::flatten::<3, 12, _>(x.leaky_trace());
    assert_eq!(f.as_vec(), v);
    let grads = (f * 2.0).sum().backward();
    assert_eq!(grads.get(&x).as_vec(), vec![2.0; 24]);
    assert_eq!(*graft_nn::flatten_dyn(x).shape(), (2, 12));
}

// ---------------------------------------------------------------------------------------------
// Naive f64 reference and finite differences.

/// Geometry of one naive convolution.
#[derive(Debug, Clone, Copy)]
struct Dims {
    b: usize,
    ci: usize,
    h: usize,
    w: usize,
    co: usize,
    k: usize,
    s: usize,
    p: usize,
}

impl Dims {
    fn out(&self) -> (usize, usize) {
        (
            (self.h + 2 * self.p - self.k) / self.s + 1,
            (self.w + 2 * self.p - self.k) / self.s + 1,
        )
    }
}

/// Direct convolution, straight from the definition, in f64.
fn naive_conv(d: Dims, x: &[f64], wt: &[f64], bias: &[f64]) -> Vec<f64> {
    let (oh, ow) = d.out();
    let mut y = vec![0.0; d.b * d.co * oh * ow];
    for n in 0..d.b {
        for o in 0..d.co {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = bias[o];
                    for c in 0..d.ci {
                        for ky in 0..d.k {
                            for kx in 0..d.k {
                                let iy = (oy * d.s + ky) as isize - d.p as isize;
                                let ix = (ox * d.s + kx) as isize - d.p as isize;
                                if iy < 0 || ix < 0 || iy >= d.h as isize || ix >= d.w as isize {
                                    continue;
                                }
                                let xv =
                                    x[((n * d.ci + c) * d.h + iy as usize) * d.w + ix as usize];
                                acc += xv * wt[((o * d.ci + c) * d.k + ky) * d.k + kx];
                            }
                        }
                    }
                    y[((n * d.co + o) * oh + oy) * ow + ox] = acc;
                }
            }
        }
    }
    y
}

/// Central finite differences of `L = sum(naive_conv(..) * gy)` with respect to `which`
/// (0: x, 1: weight, 2: bias).
fn finite_diff(d: Dims, args: [&[f64]; 3], gy: &[f64], which: usize) -> Vec<f32> {
    let loss = |a: [&[f64]; 3]| -> f64 {
        naive_conv(d, a[0], a[1], a[2])
            .iter()
            .zip(gy)
            .map(|(y, g)| y * g)
            .sum()
    };
    let eps = 1e-3;
    let mut v = args[which].to_vec();
    (0..v.len())
        .map(|i| {
            let orig = v[i];
            v[i] = orig + eps;
            let mut a = args;
            a[which] = &v;
            let lp = loss(a);
            v[i] = orig - eps;
            let mut a = args;
            a[which] = &v;
            let lm = loss(a);
            v[i] = orig;
            ((lp - lm) / (2.0 * eps)) as f32
        })
        .collect()
}

/// Checks `Conv2d<CI, CO, K, S, P>` against the naive reference on one generated case.
fn check_against_naive<
    const CI: usize,
    const CO: usize,
    const K: usize,
    const S: usize,
    const P: usize,
>(
    (b, h, w): (usize, usize, usize),
    x: Vec<f32>,
    wt: Vec<f32>,
    bias: Vec<f32>,
    gy: Vec<f32>,
) -> Result<(), TestCaseError> {
    let d = Dims {
        b,
        ci: CI,
        h,
        w,
        co: CO,
        k: K,
        s: S,
        p: P,
    };
    let (oh, ow) = d.out();
    let dev = Cpu::seed_from_u64(1);
    let mut conv = Conv2d::<CI, CO, K, S, P>::new(&dev);
    conv.weight.copy_from(&wt);
    conv.bias.copy_from(&bias);
    let xt: ImageBatch<CI> = dev.tensor_from_vec(x.clone(), (b, Const, h, w));
    let gyt: ImageBatch<CO> = dev.tensor_from_vec(gy.clone(), (b, Const, oh, ow));
    let y = conv.forward(xt.leaky_trace());
    prop_assert_eq!(y.shape().2, oh);
    prop_assert_eq!(y.shape().3, ow);

    let f64v = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<f64>>();
    let (x64, w64, b64, gy64) = (f64v(&x), f64v(&wt), f64v(&bias), f64v(&gy));
    let want_y: Vec<f32> = naive_conv(d, &x64, &w64, &b64)
        .iter()
        .map(|&v| v as f32)
        .collect();
    let e = common::rel_err(&y.as_vec(), &want_y);
    prop_assert!(e <= TOL, "forward: relative error {:.3e}", e);

    let grads = (y * gyt).sum().backward();
    let args: [&[f64]; 3] = [&x64, &w64, &b64];
    let got = [
        grads.get(&xt).as_vec(),
        grads.get(&conv.weight).as_vec(),
        grads.get(&conv.bias).as_vec(),
    ];
    for (which, name) in ["grad_x", "grad_weight", "grad_bias"].iter().enumerate() {
        let want = finite_diff(d, args, &gy64, which);
        let e = common::rel_err(&got[which], &want);
        prop_assert!(e <= TOL, "{}: relative error {:.3e}", name, e);
    }
    Ok(())
}

/// A batch size and an image size of at least `min` (the padded input must hold the kernel),
/// then the input, weight, bias and output-gradient values.
#[allow(clippy::type_complexity)]
fn case(
    ci: usize,
    co: usize,
    k: usize,
    s: usize,
    p: usize,
) -> impl Strategy<
    Value = (
        (usize, usize, usize),
        Vec<f32>,
        Vec<f32>,
        Vec<f32>,
        Vec<f32>,
    ),
> {
    let min = k.saturating_sub(2 * p).max(1);
    (1..=2usize, min..=8usize, min..=8usize).prop_flat_map(move |(b, h, w)| {
        let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
        let vals = |n: usize| proptest::collection::vec(-1.0f32..1.0, n);
        (
            Just((b, h, w)),
            vals(b * ci * h * w),
            vals(co * ci * k * k),
            vals(co),
            vals(b * co * oh * ow),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn conv_3x3_pad1_matches_naive((dims, x, w, b, gy) in case(2, 3, 3, 1, 1)) {
        check_against_naive::<2, 3, 3, 1, 1>(dims, x, w, b, gy)?;
    }

    #[test]
    fn conv_3x3_stride2_matches_naive((dims, x, w, b, gy) in case(3, 2, 3, 2, 0)) {
        check_against_naive::<3, 2, 3, 2, 0>(dims, x, w, b, gy)?;
    }

    #[test]
    fn conv_5x5_stride2_pad2_matches_naive((dims, x, w, b, gy) in case(1, 2, 5, 2, 2)) {
        check_against_naive::<1, 2, 5, 2, 2>(dims, x, w, b, gy)?;
    }

    #[test]
    fn conv_2x2_stride3_pad1_matches_naive((dims, x, w, b, gy) in case(2, 2, 2, 3, 1)) {
        check_against_naive::<2, 2, 2, 3, 1>(dims, x, w, b, gy)?;
    }

    #[test]
    fn conv_1x1_matches_naive((dims, x, w, b, gy) in case(3, 4, 1, 1, 0)) {
        check_against_naive::<3, 4, 1, 1, 0>(dims, x, w, b, gy)?;
    }
}

#[test]
fn conv_init_is_bounded_and_seeded() {
    let a = Conv2d::<32, 64, 3, 1, 1>::new(&Cpu::seed_from_u64(7));
    let b = Conv2d::<32, 64, 3, 1, 1>::new(&Cpu::seed_from_u64(7));
    let bound = 1.0 / (32.0f32 * 9.0).sqrt();
    let w = a.weight.as_vec();
    assert!(w.iter().all(|v| v.abs() <= bound));
    assert!(w.iter().any(|v| v.abs() > 0.9 * bound));
    assert!(a.bias.as_vec().iter().all(|v| v.abs() <= bound));
    assert_eq!(w, b.weight.as_vec());
    assert_eq!(a.bias.as_vec(), b.bias.as_vec());
}
