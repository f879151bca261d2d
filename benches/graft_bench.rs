//! graft's benchmark suite: `cargo bench -p graft --bench graft_bench [-- --quick]`, or
//! `cargo xtask bench [--quick] [--peers]`.
//!
//! Every benchmark first checks its result against a reference (PyTorch test vectors, a naive
//! implementation, or the previous implementation) and panics if it differs, so a fast wrong
//! kernel can never look good. Inputs come from proptest strategies with a fixed seed.
//! Competing implementations are timed alternately, sample by sample, in one run, so that the
//! ratios survive a noisy machine. Results go to `target/bench/summary.{json,md}`:
//! `{"gemm_peak_gflops": x, "rows": [{"name", "unit", "median", "min", "max"}, ...]}`.
//!
//! A "training step" is forward, summed cross-entropy, backward (no optimiser update), the same
//! as the PyTorch peer (`benches/peers/torch_peer.py`).
#![allow(missing_docs)]

#[path = "baseline/mod.rs"]
mod baseline;
#[path = "checks.rs"]
mod checks;

use std::fmt::Write as _;
use std::time::Instant;

use dfdx::prelude::*;
use graft::nn::conv::InputGrad;
use graft::nn::{Backbone, Classifier, ConvnetClassifier, ImageBatch, MlpClassifier};

use checks::{gen_f32, gen_labels};

/// One result row of the summary.
struct Row {
    name: String,
    unit: &'static str,
    /// Per-sample values (already in `unit`).
    values: Vec<f64>,
}

impl Row {
    fn stats(&self) -> (f64, f64, f64) {
        let mut v = self.values.clone();
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[0], v[v.len() - 1])
    }
}

/// Times every closure once per round, alternating, for `rounds` rounds after one warm-up
/// call each; returns seconds per call, per closure.
fn alternate(rounds: usize, fs: &mut [&mut dyn FnMut()]) -> Vec<Vec<f64>> {
    for f in fs.iter_mut() {
        f();
    }
    let mut out = vec![Vec::with_capacity(rounds); fs.len()];
    for _ in 0..rounds {
        for (f, o) in fs.iter_mut().zip(&mut out) {
            let t = Instant::now();
            f();
            o.push(t.elapsed().as_secs_f64());
        }
    }
    out
}

fn rate(secs: &[f64], per_call: f64) -> Vec<f64> {
    secs.iter().map(|s| per_call / s).collect()
}

fn ratio(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(a, b)| a / b).collect()
}

/// `(b, 784)` input in `[0, 1)` and labels in `0..10`, from proptest strategies.
fn batch(dev: &Cpu, b: usize, seed: u64) -> (Tensor<(usize, Const<784>), f32, Cpu>, Vec<usize>) {
    let x = gen_f32(b * 784, 0.0, 1.0, seed);
    (dev.tensor_from_vec(x, (b, Const)), gen_labels(b, 10, seed))
}

fn onehot(dev: &Cpu, labels: &[usize], c: usize) -> Tensor<(usize, usize), f32, Cpu> {
    let mut v = vec![0.0f32; labels.len() * c];
    for (i, &l) in labels.iter().enumerate() {
        v[i * c + l] = 1.0;
    }
    dev.tensor_from_vec(v, (labels.len(), c))
}

/// Summed cross-entropy of `logits` against one-hot targets.
fn ce<S>(
    logits: Tensor<S, f32, Cpu, OwnedTape<f32, Cpu>>,
    target: &Tensor<S, f32, Cpu>,
) -> Tensor<(), f32, Cpu, OwnedTape<f32, Cpu>>
where
    S: Shape<Concrete = [usize; 2]> + dfdx::shapes::ReduceShape<dfdx::shapes::Axis<1>>,
{
    (logits.log_softmax::<Axis<1>>() * target.clone())
        .sum()
        .negate()
}

fn train_step<B: Backbone<F>, const F: usize>(
    model: &Classifier<B, F>,
    x: &Tensor<(usize, Const<784>), f32, Cpu>,
    t: &Tensor<(usize, usize), f32, Cpu>,
) -> Gradients<f32, Cpu> {
    ce(model.forward(x.clone().traced(model.alloc_grads_like())), t).backward()
}

/// A gradient store for `model`'s parameters (dfdx's `alloc_grads` for graft's networks).
trait AllocGrads {
    fn alloc_grads_like(&self) -> Gradients<f32, Cpu>;
}
impl<B: Backbone<F>, const F: usize> AllocGrads for Classifier<B, F> {
    fn alloc_grads_like(&self) -> Gradients<f32, Cpu> {
        Gradients::leaky()
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let rounds: usize = if quick { 5 } else { 20 };
    let dev = Cpu::seed_from_u64(0);
    let mut rows: Vec<Row> = Vec::new();
    let t_start = Instant::now();
    let mut push = |name: String, unit: &'static str, values: Vec<f64>| {
        rows.push(Row { name, unit, values });
    };

    // ---- Checks first: everything below is timed only if these pass. ----
    checks::check_gemm(256, 192, 320, 7);
    let mut mlp = MlpClassifier::new(&dev, 10).unwrap();
    checks::check_against_pytorch(&mut mlp, "mlp_ref.safetensors");
    let mut convnet = ConvnetClassifier::new(&dev, 10).unwrap();
    checks::check_against_pytorch(&mut convnet, "convnet_ref.safetensors");
    checks::check_conv_kernels(&checks::graft_conv);
    let bare = checks::bare_mlp_from(&dev, &mlp);
    let (c1, c2) = baseline::convs(&convnet);
    checks::check_baseline_agrees(&dev, &convnet, &c1, &c2);
    eprintln!(
        "bench: all checks passed ({:.1} s)",
        t_start.elapsed().as_secs_f64()
    );

    // ---- GEMM peak, alternated with the convnet step (the fraction is measured in one run). ----
    let n = 1024;
    let (ga, gb) = (gen_f32(n * n, -1.0, 1.0, 11), gen_f32(n * n, -1.0, 1.0, 12));
    let mut gc = vec![0.0f32; n * n];
    let gemm_flop = 2.0 * (n * n * n) as f64;
    let conv_flop_b64 = 3.0 * (convnet.forward_flops_per_sample() * 64) as f64;

    // ---- Network rows. ----
    for &b in &[64usize, 256] {
        let (x, labels) = batch(&dev, b, b as u64);
        let t = onehot(&dev, &labels, 10);
        let tb: Tensor<(usize, Const<10>), f32, Cpu> = dev.tensor_from_vec(t.as_vec(), (b, Const));
        let r = if b == 256 { rounds.div_ceil(2) } else { rounds };
        let mut s_conv = || drop(train_step(&convnet, &x, &t));
        let mut s_base = || {
            let logits = baseline::convnet_forward(&convnet, &c1, &c2, x.leaky_trace());
            drop(ce(logits, &t).backward());
        };
        let mut s_gemm = || checks::gemm_par(n, n, n, &mut gc, &ga, &gb);
        let mut s_mlp = || drop(train_step(&mlp, &x, &t));
        let mut s_bare = || drop(ce(bare.forward(x.leaky_trace()), &tb).backward());
        let res = alternate(
            r,
            &mut [
                &mut s_conv,
                &mut s_base,
                &mut s_gemm,
                &mut s_mlp,
                &mut s_bare,
            ],
        );
        let bf = b as f64;
        push(
            format!("convnet/train/b{b}"),
            "samples/s",
            rate(&res[0], bf),
        );
        push(
            format!("convnet-before/train/b{b}"),
            "samples/s",
            rate(&res[1], bf),
        );
        push(format!("mlp/train/b{b}"), "samples/s", rate(&res[3], bf));
        push(
            format!("mlp-bare-dfdx/train/b{b}"),
            "samples/s",
            rate(&res[4], bf),
        );
        push(
            format!("ratio/convnet-train-b{b}/after-over-before"),
            "x",
            ratio(&res[1], &res[0]),
        );
        push(
            format!("ratio/mlp-train-b{b}/graft-over-bare-dfdx"),
            "x",
            ratio(&res[4], &res[3]),
        );
        let conv_flop = conv_flop_b64 * bf / 64.0;
        let conv_gf = rate(&res[0], conv_flop * 1e-9);
        let gemm_gf = rate(&res[2], gemm_flop * 1e-9);
        push(
            format!("convnet/train/b{b}/gflops"),
            "GFLOP/s",
            conv_gf.clone(),
        );
        push(format!("gemm/1024/during-b{b}"), "GFLOP/s", gemm_gf.clone());
        push(
            format!("ratio/convnet-train-b{b}/fraction-of-gemm-peak"),
            "x",
            ratio(&conv_gf, &gemm_gf),
        );
    }
    {
        let b = 256;
        let (x, _) = batch(&dev, b, 99);
        let mut i_conv = || drop(convnet.forward(x.clone()));
        let mut i_mlp = || drop(mlp.forward(x.clone()));
        let res = alternate(rounds, &mut [&mut i_conv, &mut i_mlp]);
        push(
            format!("convnet/infer/b{b}"),
            "samples/s",
            rate(&res[0], b as f64),
        );
        push(
            format!("mlp/infer/b{b}"),
            "samples/s",
            rate(&res[1], b as f64),
        );
    }

    // ---- Convolution kernels (conv2 of the convnet, batch 64), fused vs before. ----
    {
        let b = 64;
        let conv = &convnet.backbone.conv2;
        let x: ImageBatch<32> =
            dev.tensor_from_vec(gen_f32(b * 32 * 196, -1.0, 1.0, 5), (b, Const, 14, 14));
        let mut f_new = || drop(conv.forward_relu_pool2(x.clone(), InputGrad::Compute));
        let mut f_old = || {
            drop(
                baseline::pool::MaxPool2d::<2, 2>
                    .forward(c2.forward(x.clone()))
                    .relu(),
            )
        };
        let mut fb_new = || {
            let y = conv.forward_relu_pool2(x.leaky_trace(), InputGrad::Compute);
            drop(y.sum::<Rank0, _>().backward());
        };
        let mut fb_old = || {
            let y = baseline::pool::MaxPool2d::<2, 2>
                .forward(c2.forward(x.leaky_trace()))
                .relu();
            drop(y.sum::<Rank0, _>().backward());
        };
        let res = alternate(
            rounds,
            &mut [&mut f_new, &mut f_old, &mut fb_new, &mut fb_old],
        );
        let bf = b as f64;
        push(
            format!("conv2-block/forward/b{b}"),
            "samples/s",
            rate(&res[0], bf),
        );
        push(
            format!("conv2-block-before/forward/b{b}"),
            "samples/s",
            rate(&res[1], bf),
        );
        push(
            format!("conv2-block/forward+backward/b{b}"),
            "samples/s",
            rate(&res[2], bf),
        );
        push(
            format!("conv2-block-before/forward+backward/b{b}"),
            "samples/s",
            rate(&res[3], bf),
        );
    }
    let mut peak = Row {
        name: String::new(),
        unit: "GFLOP/s",
        values: Vec::new(),
    };
    for r in rows.iter().filter(|r| r.name.starts_with("gemm/1024")) {
        peak.values.extend(&r.values);
    }
    let gemm_peak = peak.stats().0;
    write_summary(gemm_peak, &rows, quick);
    eprintln!("bench: done in {:.1} s", t_start.elapsed().as_secs_f64());
}

fn write_summary(gemm_peak: f64, rows: &[Row], quick: bool) {
    let json_rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let (med, min, max) = r.stats();
            serde_json::json!({"name": r.name, "unit": r.unit, "median": med, "min": min, "max": max})
        })
        .collect();
    let json = serde_json::json!({"gemm_peak_gflops": gemm_peak, "rows": json_rows});
    let mut md = format!(
        "# graft benchmarks{}\n\nGEMM peak (1024³ f32, gemm crate, all threads): {gemm_peak:.1} GFLOP/s\n\n\
         | name | unit | median | min | max |\n|---|---|---:|---:|---:|\n",
        if quick { " (quick)" } else { "" }
    );
    for r in rows {
        let (med, min, max) = r.stats();
        let _ = writeln!(
            md,
            "| {} | {} | {med:.3} | {min:.3} | {max:.3} |",
            r.name, r.unit
        );
    }
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("bench");
    std::fs::create_dir_all(&dir).expect("create target/bench");
    let write = |name: &str, text: &str| {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).expect("write summary");
        std::fs::rename(&tmp, dir.join(name)).expect("rename summary");
    };
    write(
        "summary.json",
        &serde_json::to_string_pretty(&json).unwrap(),
    );
    write("summary.md", &md);
    print!("{md}");
    eprintln!("bench: wrote {}", dir.join("summary.json").display());
}
