//! The references every benchmark checks its result against before it is timed (shared by
//! the suite and by `benches/mutation.rs`, which shows that a broken kernel fails them).
#![allow(dead_code)]

use dfdx::prelude::*;
use graft::cuda::{AdamConfig, AdamState, Augment, ImageShape, Knn, SoftmaxXent};
use graft::data::{import_idx, Dataset, Features, Normalize};
use graft::nn::conv::InputGrad;
use graft::nn::Parameters;
use graft::nn::{Backbone, Classifier, Conv2d, ConvnetClassifier, ImageBatch, MlpClassifier};
use graft::transfer::examples::Shuffler;
use graft::transfer::Examples;
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
    before: &crate::baseline::Layers,
) {
    let x: Tensor<(usize, Const<784>), f32, Cpu> =
        dev.tensor_from_vec(gen_f32(16 * 784, 0.0, 1.0, 31), (16, Const));
    let a = model.forward(x.leaky_trace());
    let b = crate::baseline::convnet_forward(model, before, x.leaky_trace());
    assert_close("convnet vs before: logits", &a.as_vec(), &b.as_vec());
    let mut ga = a.square().sum().backward();
    let mut gb = b.square().sum().backward();
    // The old convolutions hold clones of the model's tensors (same ids, same gradient
    // entries); the old fc1 is a copy, whose gradients are under its own tensors.
    let fc1 = &before.2;
    model.visit_params(&mut |name, p| {
        let new = p.grad(&mut ga).expect("gradient").to_vec();
        let old = match name {
            "fc1.weight" => graft::nn::Param::grad(&fc1.weight, &mut gb),
            "fc1.bias" => graft::nn::Param::grad(&fc1.bias, &mut gb),
            _ => p.grad(&mut gb),
        }
        .expect("gradient")
        .to_vec();
        assert_close(&format!("convnet vs before: grad.{name}"), &new, &old);
    });
}

// ---------------------------------------------------------------------------------------
// Data: batch assembly.
// ---------------------------------------------------------------------------------------

/// Animal-MNIST (`data/animal-mnist`) imported into a temporary graft data set; the caller
/// removes `ds.path()` when done.
pub fn animal_mnist() -> Dataset {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::temp_dir().join(format!("graft-bench-{}.gds", std::process::id()));
    let data = root.join("data/animal-mnist");
    import_idx(
        data.join("images-idx3-ubyte.gz"),
        data.join("labels-idx1-ubyte.gz"),
        &out,
        None,
        "bench".into(),
    )
    .expect("import Animal-MNIST")
}

/// Every batch of one shuffled epoch equals `(p / 255 - mean) / std` of the sample it names,
/// and the epoch visits every sample once.
pub fn check_batches(ds: &Dataset, norm: Normalize) {
    let view = ds.view();
    let mut it = view.batches(64, 1, norm, true).unwrap();
    let mut seen = vec![false; ds.len()];
    while let Some(b) = it.next_batch() {
        for (row, &pos) in b.images.chunks(784).zip(b.positions) {
            let pixels = view.sample(pos).unwrap();
            for (got, &p) in row.iter().zip(pixels) {
                let want = (p as f32 / 255.0 - norm.mean) / norm.std;
                assert!(
                    (got - want).abs() < 1e-6,
                    "bench check failed: batch value {got} != {want} at sample {pos}"
                );
            }
            assert!(
                !std::mem::replace(&mut seen[pos], true),
                "bench check failed: sample {pos} twice in one epoch"
            );
        }
    }
    assert!(
        seen.iter().all(|&s| s),
        "bench check failed: an epoch must visit every sample once"
    );
}

/// A feature-cache entry reads back exactly what was written: every row, every label, the
/// sample shape, and a checksum that verifies.
pub fn check_feature_readback(ds: &Dataset, f: &Features) {
    assert_eq!(
        ds.len(),
        f.labels.len(),
        "bench check failed: feature cache rows"
    );
    assert_eq!(
        ds.sample_shape(),
        &[f.dim][..],
        "bench check failed: feature width"
    );
    assert_eq!(
        ds.labels(),
        &f.labels[..],
        "bench check failed: feature labels"
    );
    for (i, row) in f.values.chunks_exact(f.dim).enumerate() {
        let got = ds.sample_f32(i).expect("feature row");
        assert!(
            got == row,
            "bench check failed: feature cache row {i} reads back different values"
        );
    }
    ds.verify_checksum()
        .expect("bench check failed: feature cache checksum");
}

// ---------------------------------------------------------------------------------------
// Transfer: linear probe on cached features, fine-tuning.
// ---------------------------------------------------------------------------------------

/// `n` Animal-MNIST-sized (784-pixel) images with 10 classes from proptest strategies: noise
/// in `[0, 0.6)` plus a bright band of rows whose position is the label, so that a network
/// can learn them and a training loss has somewhere to go.
pub fn structured_images(n: usize, seed: u64) -> Examples {
    let y = gen_labels(n, 10, seed);
    let mut x = gen_f32(n * 784, 0.0, 0.6, seed + 1);
    for (row, &l) in x.chunks_mut(784).zip(&y) {
        for v in &mut row[(4 + 2 * l) * 28..(7 + 2 * l) * 28] {
            *v += 0.4;
        }
    }
    Examples {
        x,
        y,
        width: 784,
        num_classes: 10,
    }
}

/// Mean cross-entropy (f64) of the linear head `x W^T + b` on `data`.
pub fn head_loss(w: &[f64], b: &[f64], data: &Examples) -> f64 {
    let (c, f) = (b.len(), data.width);
    let mut total = 0.0;
    for i in 0..data.len() {
        let x = data.row(i);
        let z: Vec<f64> = (0..c)
            .map(|j| b[j] + (0..f).map(|t| w[j * f + t] * x[t] as f64).sum::<f64>())
            .collect();
        let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        total += lse - z[data.y[i]];
    }
    total / data.len() as f64
}

/// One epoch of `graft::transfer::train::train_head`, recomputed independently in f64:
/// the same batch order (`Shuffler` with the same seed), logits `x W^T + b`, mean
/// cross-entropy, its gradient written out by hand, and textbook Adam (β 0.9/0.999, ε 1e-8).
/// Returns the weights, the bias and each step's loss.
pub fn reference_head_epoch(
    w0: &[f32],
    b0: &[f32],
    data: &Examples,
    lr: f64,
    batch: usize,
    seed: u64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (c, f) = (b0.len(), data.width);
    let mut w: Vec<f64> = w0.iter().map(|&v| v as f64).collect();
    let mut b: Vec<f64> = b0.iter().map(|&v| v as f64).collect();
    let (mut mw, mut vw) = (vec![0.0; w.len()], vec![0.0; w.len()]);
    let (mut mb, mut vb) = (vec![0.0; c], vec![0.0; c]);
    let mut shuffler = Shuffler::new(data.len(), batch, seed);
    let mut losses = Vec::new();
    let adam = |p: &mut [f64], g: &[f64], m: &mut [f64], v: &mut [f64], t: i32| {
        for i in 0..p.len() {
            m[i] = 0.9 * m[i] + 0.1 * g[i];
            v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
            let mh = m[i] / (1.0 - 0.9f64.powi(t));
            let vh = v[i] / (1.0 - 0.999f64.powi(t));
            p[i] -= lr * mh / (vh.sqrt() + 1e-8);
        }
    };
    for t in 1..=data.len().div_ceil(batch) as i32 {
        let idx = shuffler.next_batch().to_vec();
        let n = idx.len() as f64;
        let (mut gw, mut gb) = (vec![0.0; w.len()], vec![0.0; c]);
        let mut loss = 0.0;
        for &i in &idx {
            let x = data.row(i);
            let z: Vec<f64> = (0..c)
                .map(|j| b[j] + (0..f).map(|k| w[j * f + k] * x[k] as f64).sum::<f64>())
                .collect();
            let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = z.iter().map(|v| (v - m).exp()).sum();
            loss += s.ln() + m - z[data.y[i]];
            for j in 0..c {
                let d = ((z[j] - m).exp() / s - f64::from(u8::from(j == data.y[i]))) / n;
                gb[j] += d;
                for k in 0..f {
                    gw[j * f + k] += d * x[k] as f64;
                }
            }
        }
        losses.push(loss / n);
        adam(&mut w, &gw, &mut mw, &mut vw, t);
        adam(&mut b, &gb, &mut mb, &mut vb, t);
    }
    (w, b, losses)
}

fn f32v(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// Checks one trained probe epoch against [`reference_head_epoch`]: the weights, the bias
/// and the epoch's mean loss agree, and the loss on the whole set went down.
#[allow(clippy::too_many_arguments)]
pub fn check_probe_epoch(
    before: (&[f32], &[f32]),
    after: (&[f32], &[f32]),
    epoch_mean_loss: f32,
    data: &Examples,
    lr: f32,
    batch: usize,
    seed: u64,
) {
    let (w, b, losses) = reference_head_epoch(before.0, before.1, data, lr as f64, batch, seed);
    assert!(
        epoch_mean_loss.is_finite(),
        "bench check failed: probe loss {epoch_mean_loss}"
    );
    assert_close("probe epoch: head weight", after.0, &f32v(&w));
    assert_close("probe epoch: head bias", after.1, &f32v(&b));
    let mean = losses.iter().sum::<f64>() / losses.len() as f64;
    assert_close("probe epoch: mean loss", &[epoch_mean_loss], &[mean as f32]);
    let w0: Vec<f64> = before.0.iter().map(|&v| v as f64).collect();
    let b0: Vec<f64> = before.1.iter().map(|&v| v as f64).collect();
    let (l0, l1) = (head_loss(&w0, &b0, data), head_loss(&w, &b, data));
    assert!(
        l1 < l0,
        "bench check failed: one probe epoch did not lower the loss ({l0} -> {l1})"
    );
}

// ---------------------------------------------------------------------------------------
// graft-cuda's CPU reference kernels against naive f64 computations.
// ---------------------------------------------------------------------------------------

/// `softmax_xent` against log-sum-exp and `(softmax - onehot) / rows` in f64.
pub fn check_softmax_xent(logits: &[f32], labels: &[u32], classes: usize, got: &SoftmaxXent) {
    let rows = labels.len();
    let (mut loss, mut row_losses, mut grad) = (0.0, Vec::new(), Vec::new());
    for (r, &l) in labels.iter().enumerate() {
        let x: Vec<f64> = logits[r * classes..][..classes]
            .iter()
            .map(|&v| v as f64)
            .collect();
        let m = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = x.iter().map(|v| (v - m).exp()).sum();
        let rl = s.ln() + m - x[l as usize];
        loss += rl / rows as f64;
        row_losses.push(rl);
        for (c, v) in x.iter().enumerate() {
            let p = (v - m).exp() / s;
            grad.push((p - f64::from(u8::from(c == l as usize))) / rows as f64);
        }
    }
    assert_close("softmax_xent loss", &[got.loss], &[loss as f32]);
    assert_close(
        "softmax_xent row losses",
        &got.row_losses,
        &f32v(&row_losses),
    );
    assert_close("softmax_xent grad", &got.grad, &f32v(&grad));
}

/// `adam_step` over `grads.len()` steps against textbook Adam(W) in f64 (Kingma & Ba;
/// Loshchilov & Hutter): parameters and both moments.
pub fn check_adam(init: &[f32], grads: &[Vec<f32>], cfg: &AdamConfig) {
    let mut p = init.to_vec();
    let mut st = AdamState::new(p.len());
    for g in grads {
        graft::cuda::cpu::adam_step(&mut p, g, &mut st, cfg).expect("adam_step");
    }
    let (lr, wd) = (cfg.lr as f64, cfg.weight_decay as f64);
    let (b1, b2, eps) = (cfg.beta1 as f64, cfg.beta2 as f64, cfg.eps as f64);
    let mut want: Vec<f64> = init.iter().map(|&v| v as f64).collect();
    let (mut m, mut v) = (vec![0.0f64; p.len()], vec![0.0f64; p.len()]);
    for (t, g) in grads.iter().enumerate() {
        let t = t as i32 + 1;
        for i in 0..want.len() {
            let mut gi = g[i] as f64;
            if cfg.decoupled {
                want[i] -= lr * wd * want[i];
            } else {
                gi += wd * want[i];
            }
            m[i] = b1 * m[i] + (1.0 - b1) * gi;
            v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
            let mh = m[i] / (1.0 - b1.powi(t));
            let vh = v[i] / (1.0 - b2.powi(t));
            want[i] -= lr * mh / (vh.sqrt() + eps);
        }
    }
    assert_close("adam_step params", &p, &f32v(&want));
    assert_close("adam_step first moment", &st.m, &f32v(&m));
    assert_close("adam_step second moment", &st.v, &f32v(&v));
    assert_eq!(st.step, grads.len() as u64, "adam_step step count");
}

/// `knn` against brute-force f64 distances: every returned distance is the true distance of
/// the returned reference, in ascending order, the references are distinct, none is farther
/// than the true k-th nearest, and where `planted[i]` names a reference the query was drawn
/// next to, it comes first.
pub fn check_knn(q: &[f32], r: &[f32], dim: usize, planted: &[usize], got: &Knn) {
    let (nq, nr, k) = (q.len() / dim, r.len() / dim, got.k);
    assert_eq!(got.indices.len(), nq * k, "knn: indices length");
    assert_eq!(got.distances.len(), nq * k, "knn: distances length");
    let norm = |v: &[f32]| v.iter().map(|&x| x as f64 * x as f64).sum::<f64>();
    for i in 0..nq {
        let qi = &q[i * dim..][..dim];
        let d: Vec<f64> = r
            .chunks_exact(dim)
            .map(|rj| {
                qi.iter()
                    .zip(rj)
                    .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
                    .sum()
            })
            .collect();
        let mut sorted = d.clone();
        sorted.sort_by(f64::total_cmp);
        let kth = sorted[k - 1];
        let mut prev = f32::NEG_INFINITY;
        for t in 0..k {
            let (j, dist) = (got.indices[i * k + t] as usize, got.distances[i * k + t]);
            assert!(j < nr, "bench check failed: knn index {j} out of range");
            // f32 norm-form distances lose precision relative to the norms.
            let tol = 1e-5 * (1.0 + norm(qi) + norm(&r[j * dim..][..dim]));
            assert!(
                (dist as f64 - d[j]).abs() <= tol,
                "bench check failed: knn query {i}: distance to {j} is {dist}, want {}",
                d[j]
            );
            assert!(
                d[j] <= kth + tol,
                "bench check failed: knn query {i}: {j} at {} is not among the {k} nearest (k-th {kth})",
                d[j]
            );
            assert!(
                dist >= prev,
                "bench check failed: knn query {i}: not ascending"
            );
            prev = dist;
            assert!(
                !got.indices[i * k..i * k + t].contains(&(j as u32)),
                "bench check failed: knn query {i}: {j} twice"
            );
        }
        assert_eq!(
            got.indices[i * k] as usize,
            planted[i],
            "bench check failed: knn query {i}: the planted neighbour is not first"
        );
    }
}

/// `normalize_images` against an independent formulation: pad each plane with zeros,
/// crop at the sample's offsets, flip the crop if drawn, then `(p / 255 - mean) / std`.
pub fn check_normalize(
    pixels: &[u8],
    shape: ImageShape,
    mean: &[f32],
    std: &[f32],
    augment: Option<&Augment>,
    got: &[f32],
) {
    let ImageShape {
        n,
        channels,
        height: h,
        width: w,
    } = shape;
    let pad = augment.map_or(0, |a| a.pad);
    let (ph, pw) = (h + 2 * pad, w + 2 * pad);
    let mut want = Vec::with_capacity(pixels.len());
    for s in 0..n {
        let (oy, ox, flip) = match augment {
            Some(a) => {
                let d = a.for_sample(s as u64);
                (d.offset_y, d.offset_x, d.flipped)
            }
            None => (pad, pad, false),
        };
        for c in 0..channels {
            let plane = &pixels[(s * channels + c) * h * w..][..h * w];
            let mut padded = vec![0u8; ph * pw];
            for y in 0..h {
                padded[(y + pad) * pw + pad..][..w].copy_from_slice(&plane[y * w..][..w]);
            }
            for y in 0..h {
                let mut row: Vec<u8> = padded[(y + oy) * pw + ox..][..w].to_vec();
                if flip {
                    row.reverse();
                }
                want.extend(
                    row.iter()
                        .map(|&p| ((p as f64 / 255.0 - mean[c] as f64) / std[c] as f64) as f32),
                );
            }
        }
    }
    assert_close("normalize_images", got, &want);
}
