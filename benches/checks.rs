//! The references every benchmark checks its result against before it is timed (shared by
//! the suite and by `benches/mutation.rs`, which shows that a broken kernel fails them).
#![allow(dead_code)]

use dfdx::prelude::*;
use graft::nn::conv::InputGrad;
use graft::nn::Parameters;
use graft::nn::{Backbone, Classifier, Conv2d, ConvnetClassifier, ImageBatch, MlpClassifier};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// Relative tolerance: `max|got - want| / max(1, max|want|)`.
pub const TOL: f64 = 1e-4;

fn runner(seed: u64) -> TestRunner {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &s),
    )
}

/// `n` values in `[lo, hi)` from a proptest strategy (deterministic per seed).
pub fn gen_f32(n: usize, lo: f32, hi: f32, seed: u64) -> Vec<f32> {
    let strat = proptest::collection::vec(lo..hi, n);
    strat.new_tree(&mut runner(seed)).unwrap().current()
}

/// `n` labels in `0..classes` from a proptest strategy.
pub fn gen_labels(n: usize, classes: usize, seed: u64) -> Vec<usize> {
    let strat = proptest::collection::vec(0..classes, n);
    strat.new_tree(&mut runner(seed)).unwrap().current()
}

/// Panics unless `got` is within [`TOL`] of `want`.
pub fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs() as f64));
    let err = got
        .iter()
        .zip(want)
        .map(|(a, b)| (*a as f64 - *b as f64).abs())
        .fold(0.0, f64::max);
    assert!(
        err / scale <= TOL,
        "bench check failed: {what} differs from its reference by {err:e} (scale {scale})"
    );
}

/// `c = a · b` (`(m, k)·(k, n)`, row-major) through the gemm crate on all threads.
pub fn gemm_par(m: usize, n: usize, k: usize, c: &mut [f32], a: &[f32], b: &[f32]) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    // SAFETY: the buffers hold the row-major matrices asserted above; `c` is exclusive.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        );
    }
}

/// The gemm kernel against a naive f64 product.
pub fn check_gemm(m: usize, n: usize, k: usize, seed: u64) {
    let (a, b) = (
        gen_f32(m * k, -1.0, 1.0, seed),
        gen_f32(k * n, -1.0, 1.0, seed + 1),
    );
    let mut c = vec![0.0f32; m * n];
    gemm_par(m, n, k, &mut c, &a, &b);
    let mut want = vec![0.0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            want[i * n + j] = (0..k)
                .map(|l| a[i * k + l] as f64 * b[l * n + j] as f64)
                .sum::<f64>() as f32;
        }
    }
    assert_close("gemm", &c, &want);
}

fn refs(file: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn f32s(st: &safetensors::SafeTensors<'_>, name: &str) -> Vec<f32> {
    let t = st
        .tensor(name)
        .unwrap_or_else(|_| panic!("no tensor {name}"));
    match t.dtype() {
        safetensors::Dtype::F32 => t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        safetensors::Dtype::I64 => t
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32)
            .collect(),
        d => panic!("{name}: unexpected dtype {d:?}"),
    }
}

/// Loads `param.*` of a PyTorch reference file into `model`, then checks its logits, the
/// summed cross-entropy and every parameter gradient against PyTorch's.
pub fn check_against_pytorch<B: Backbone<F>, const F: usize>(
    model: &mut Classifier<B, F>,
    file: &str,
) {
    let bytes = refs(file);
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    model.visit_params_mut(&mut |name, p| p.write_from(&f32s(&st, &format!("param.{name}"))));
    let dev = Cpu::default();
    let input = f32s(&st, "input");
    let b = input.len() / 784;
    let x = dev.tensor_from_vec(input, (b, Const::<784>));
    let logits = model.forward(x.leaky_trace());
    assert_close(
        &format!("{file} logits"),
        &logits.as_vec(),
        &f32s(&st, "logits"),
    );
    let c = logits.shape().1;
    let mut onehot = vec![0.0f32; b * c];
    for (i, l) in f32s(&st, "labels").into_iter().enumerate() {
        onehot[i * c + l as usize] = 1.0;
    }
    let onehot: Tensor<(usize, usize), f32, Cpu> = dev.tensor_from_vec(onehot, (b, c));
    let loss = (logits.log_softmax::<Axis<1>>() * onehot).sum().negate();
    let mut grads = loss.backward();
    let mut checked = 0;
    model.visit_params(&mut |name, p| {
        let g = p.grad(&mut grads).expect("gradient").to_vec();
        assert_close(
            &format!("{file} grad.{name}"),
            &g,
            &f32s(&st, &format!("grad.{name}")),
        );
        checked += 1;
    });
    assert!(checked > 0);
}

/// A convolution implementation under test: `(fused, x, weight, bias, gy, (batch, h, w))` to
/// the output and the gradients of `sum(output * gy)` for a `Conv(2->3, 3x3, pad 1)`; with
/// `fused`, the output is `relu(max_pool2d(conv(x), 2))`.
pub type ConvFn = dyn Fn(bool, &[f32], &[f32], &[f32], &[f32], (usize, usize, usize)) -> ConvOut;

/// Output and gradients of a [`ConvFn`].
pub struct ConvOut {
    pub y: Vec<f32>,
    pub gx: Vec<f32>,
    pub gw: Vec<f32>,
    pub gb: Vec<f32>,
}

/// graft's `Conv2d` (plain, or the fused block) as a [`ConvFn`].
pub fn graft_conv(
    fused: bool,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    gy: &[f32],
    (n, h, wd): (usize, usize, usize),
) -> ConvOut {
    let dev = Cpu::default();
    let mut conv = Conv2d::<2, 3, 3, 1, 1>::new(&dev);
    conv.weight.copy_from(w);
    conv.bias.copy_from(b);
    let xt: ImageBatch<2> = dev.tensor_from_vec(x.to_vec(), (n, Const, h, wd));
    let y = if fused {
        conv.forward_relu_pool2(xt.leaky_trace(), InputGrad::Compute)
    } else {
        conv.forward(xt.leaky_trace())
    };
    let yv = y.as_vec();
    let s = *y.shape();
    let gyt: ImageBatch<3> = dev.tensor_from_vec(gy.to_vec(), (s.0, Const, s.2, s.3));
    let grads = (y * gyt).sum().backward();
    ConvOut {
        y: yv,
        gx: grads.get(&xt).as_vec(),
        gw: grads.get(&conv.weight).as_vec(),
        gb: grads.get(&conv.bias).as_vec(),
    }
}

/// Checks a [`ConvFn`], plain and fused, against a naive f64 direct convolution (with naive
/// pooling and ReLU) on proptest-generated inputs with odd image sizes.
pub fn check_conv_kernels(conv: &ConvFn) {
    let (n, ci, co, h, wd) = (3usize, 2usize, 3usize, 9usize, 7usize);
    let x = gen_f32(n * ci * h * wd, -1.0, 1.0, 21);
    let w = gen_f32(co * ci * 9, -0.5, 0.5, 22);
    let b = gen_f32(co, -0.2, 0.2, 23);
    let at = |v: &[f32], bi: usize, c: usize, y: isize, xx: isize| -> f64 {
        if y < 0 || xx < 0 || y >= h as isize || xx >= wd as isize {
            0.0
        } else {
            v[((bi * ci + c) * h + y as usize) * wd + xx as usize] as f64
        }
    };
    // Naive convolution output (b, co, h, w).
    let mut y = vec![0.0f64; n * co * h * wd];
    for bi in 0..n {
        for o in 0..co {
            for oy in 0..h {
                for ox in 0..wd {
                    let mut s = b[o] as f64;
                    for c in 0..ci {
                        for kh in 0..3 {
                            for kw in 0..3 {
                                let wv = w[((o * ci + c) * 3 + kh) * 3 + kw] as f64;
                                s += wv
                                    * at(&x, bi, c, (oy + kh) as isize - 1, (ox + kw) as isize - 1);
                            }
                        }
                    }
                    y[((bi * co + o) * h + oy) * wd + ox] = s;
                }
            }
        }
    }
    for fused in [false, true] {
        // The output and the gradient reaching the convolution output, dy.
        let (ph, pw) = if fused { (h / 2, wd / 2) } else { (h, wd) };
        let gy = gen_f32(n * co * ph * pw, -1.0, 1.0, 24 + fused as u64);
        let mut out = vec![0.0f64; n * co * ph * pw];
        let mut dy = vec![0.0f64; n * co * h * wd];
        for p in 0..n * co {
            for py in 0..ph {
                for px in 0..pw {
                    let o = (p * ph + py) * pw + px;
                    if !fused {
                        out[o] = y[o];
                        dy[o] = gy[o] as f64;
                        continue;
                    }
                    let mut best = (f64::NEG_INFINITY, 0);
                    for ky in 0..2 {
                        for kx in 0..2 {
                            let i = (p * h + 2 * py + ky) * wd + 2 * px + kx;
                            if y[i] > best.0 {
                                best = (y[i], i);
                            }
                        }
                    }
                    out[o] = best.0.max(0.0);
                    if best.0 > 0.0 {
                        dy[best.1] += gy[o] as f64;
                    }
                }
            }
        }
        let mut gx = vec![0.0f64; x.len()];
        let mut gw = vec![0.0f64; w.len()];
        let mut gb = vec![0.0f64; co];
        for bi in 0..n {
            for o in 0..co {
                for oy in 0..h {
                    for ox in 0..wd {
                        let d = dy[((bi * co + o) * h + oy) * wd + ox];
                        gb[o] += d;
                        for c in 0..ci {
                            for kh in 0..3 {
                                for kw in 0..3 {
                                    let (iy, ix) = ((oy + kh) as isize - 1, (ox + kw) as isize - 1);
                                    let wi = ((o * ci + c) * 3 + kh) * 3 + kw;
                                    gw[wi] += d * at(&x, bi, c, iy, ix);
                                    if iy >= 0 && ix >= 0 && iy < h as isize && ix < wd as isize {
                                        gx[((bi * ci + c) * h + iy as usize) * wd + ix as usize] +=
                                            d * w[wi] as f64;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        let got = conv(fused, &x, &w, &b, &gy, (n, h, wd));
        let f = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect::<Vec<_>>();
        let kind = if fused { "fused conv block" } else { "conv" };
        assert_close(&format!("{kind} forward"), &got.y, &f(out));
        assert_close(&format!("{kind} grad x"), &got.gx, &f(gx));
        assert_close(&format!("{kind} grad weight"), &got.gw, &f(gw));
        assert_close(&format!("{kind} grad bias"), &got.gb, &f(gb));
    }
}

/// The bare dfdx `mlp`: dfdx's own modules, no graft code.
pub type BareMlp = (
    dfdx::nn::modules::Linear<784, 512, f32, Cpu>,
    dfdx::nn::modules::ReLU,
    dfdx::nn::modules::Linear<512, 256, f32, Cpu>,
    dfdx::nn::modules::ReLU,
    dfdx::nn::modules::Linear<256, 10, f32, Cpu>,
);

/// The bare dfdx `mlp` with `mlp`'s parameters; checked to give the same logits.
pub fn bare_mlp_from(dev: &Cpu, mlp: &MlpClassifier) -> BareMlp {
    type Builder = (
        dfdx::nn::builders::Linear<784, 512>,
        dfdx::nn::builders::ReLU,
        dfdx::nn::builders::Linear<512, 256>,
        dfdx::nn::builders::ReLU,
        dfdx::nn::builders::Linear<256, 10>,
    );
    let mut m: BareMlp = dev.build_module::<Builder, f32>();
    let params: std::collections::HashMap<String, Vec<f32>> = mlp.snapshot().into_iter().collect();
    m.0.weight.copy_from(&params["fc1.weight"]);
    m.0.bias.copy_from(&params["fc1.bias"]);
    m.2.weight.copy_from(&params["fc2.weight"]);
    m.2.bias.copy_from(&params["fc2.bias"]);
    m.4.weight.copy_from(&params["fc3.weight"]);
    m.4.bias.copy_from(&params["fc3.bias"]);
    let x: Tensor<(usize, Const<784>), f32, Cpu> =
        dev.tensor_from_vec(gen_f32(8 * 784, 0.0, 1.0, 41), (8, Const));
    assert_close(
        "bare dfdx mlp vs graft mlp: logits",
        &m.forward(x.clone()).as_vec(),
        &mlp.forward(x).as_vec(),
    );
    m
}

/// The old kernels and the fused ones give the same logits and gradients on a random batch.
pub fn check_baseline_agrees(
    dev: &Cpu,
    model: &ConvnetClassifier,
    c1: &crate::baseline::conv::Conv2d<1, 32, 3, 1, 1>,
    c2: &crate::baseline::conv::Conv2d<32, 64, 3, 1, 1>,
) {
    let x: Tensor<(usize, Const<784>), f32, Cpu> =
        dev.tensor_from_vec(gen_f32(16 * 784, 0.0, 1.0, 31), (16, Const));
    let a = model.forward(x.leaky_trace());
    let b = crate::baseline::convnet_forward(model, c1, c2, x.leaky_trace());
    assert_close("convnet vs before: logits", &a.as_vec(), &b.as_vec());
    let mut ga = a.square().sum().backward();
    let mut gb = b.square().sum().backward();
    // The old layers hold clones of the model's tensors (same ids): same gradient names.
    model.visit_params(&mut |name, p| {
        let new = p.grad(&mut ga).expect("gradient").to_vec();
        let old = p.grad(&mut gb).expect("gradient").to_vec();
        assert_close(&format!("convnet vs before: grad.{name}"), &new, &old);
    });
}
