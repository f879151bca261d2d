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
//!
//! Sections: network training and inference steps (with the bare dfdx loop and the GEMM peak
//! alternated in), the graft-cuda CPU reference kernels (`cuda-cpu/*`), the feature cache
//! (`feature-cache/*`), batch assembly against a plain copy (`data/*`), one linear-probe epoch
//! on cached features against one fine-tune epoch (`probe-vs-finetune/*`) and the fused
//! convolution block. `--networks-only` runs only the checks and the network rows (the rounds
//! `cargo xtask bench --peers` alternates with PyTorch); `--out PATH` writes the JSON there
//! instead of `target/bench/summary.{json,md}`.
#![allow(missing_docs)]

#[path = "baseline/mod.rs"]
mod baseline;
#[path = "checks.rs"]
mod checks;

use std::fmt::Write as _;
use std::time::Instant;

use std::hint::black_box;
use std::path::{Path, PathBuf};

use dfdx::prelude::*;
use graft::nn::conv::InputGrad;
use graft::nn::{
    on_workers, Backbone, BnMode, Classifier, ConvnetBackbone, ConvnetClassifier,
    EfficientNetClassifier, Head, ImageBatch, MlpClassifier, Parameters, Phase,
};
use graft::transfer::Examples;

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

/// One training step, run on the kernels' thread pool as graft's training loop runs it.
fn train_step<B: Backbone<F> + Sync, const F: usize>(
    model: &Classifier<B, F>,
    x: &Tensor<(usize, Const<784>), f32, Cpu>,
    t: &Tensor<(usize, usize), f32, Cpu>,
) -> Gradients<f32, Cpu> {
    on_workers(|| ce(model.forward(x.clone().traced(model.alloc_grads_like())), t).backward())
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
    let networks_only = args.iter().any(|a| a == "--networks-only");
    let out: Option<PathBuf> = args
        .iter()
        .position(|a| a == "--out")
        .map(|i| PathBuf::from(args.get(i + 1).expect("--out needs a path")));
    let rounds: usize = if quick { 5 } else { 20 };
    let dev = Cpu::seed_from_u64(0);
    let mut rows: Vec<Row> = Vec::new();
    let t_start = Instant::now();

    // ---- Checks first: everything below is timed only if these pass. ----
    checks::check_gemm(256, 192, 320, 7);
    let mut mlp = MlpClassifier::new(&dev, 10).unwrap();
    checks::check_against_pytorch(&mut mlp, "mlp_ref.safetensors");
    let mut convnet = ConvnetClassifier::new(&dev, 10).unwrap();
    checks::check_against_pytorch(&mut convnet, "convnet_ref.safetensors");
    checks::check_conv_kernels(&checks::graft_conv);
    let bare = checks::bare_mlp_from(&dev, &mlp);
    let before = baseline::layers(&convnet, &dev);
    let c2 = &before.1;
    checks::check_baseline_agrees(&dev, &convnet, &before);
    eprintln!(
        "bench: all checks passed ({:.1} s)",
        t_start.elapsed().as_secs_f64()
    );

    // ---- GEMM peak, alternated with the convnet step (the fraction is measured in one run). ----
    let n = 1024;
    let (ga, gb) = (gen_f32(n * n, -1.0, 1.0, 11), gen_f32(n * n, -1.0, 1.0, 12));
    let mut gc = vec![0.0f32; n * n];
    let gemm_flop = 2.0 * (n * n * n) as f64;

    // ---- Sections that check their own results first, then time (cheapest checks first). ----
    if !networks_only {
        cuda_cpu_rows(&mut rows, rounds, (&ga, &gb, &mut gc, n));
        feature_cache_rows(&mut rows, rounds);
        data_rows(&mut rows, rounds);
        probe_vs_finetune_rows(&mut rows, if quick { 3 } else { 10 });
    }
    let mut push = |name: String, unit: &'static str, values: Vec<f64>| {
        rows.push(Row { name, unit, values });
    };
    let conv_flop_b64 = 3.0 * (convnet.forward_flops_per_sample() * 64) as f64;

    // ---- Network rows. ----
    for &b in &[64usize, 256] {
        let (x, labels) = batch(&dev, b, b as u64);
        let t = onehot(&dev, &labels, 10);
        let tb: Tensor<(usize, Const<10>), f32, Cpu> = dev.tensor_from_vec(t.as_vec(), (b, Const));
        let r = if b == 256 { rounds.div_ceil(2) } else { rounds };
        let mut s_conv = || drop(train_step(&convnet, &x, &t));
        // The baselines run on the pool too: the ratios compare kernels, not threading.
        let mut s_base = || {
            drop(on_workers(|| {
                let logits = baseline::convnet_forward(&convnet, &before, x.leaky_trace());
                ce(logits, &t).backward()
            }))
        };
        let mut s_gemm = || checks::gemm_par(n, n, n, &mut gc, &ga, &gb);
        let mut s_mlp = || drop(train_step(&mlp, &x, &t));
        let mut s_bare = || {
            drop(on_workers(|| {
                ce(bare.forward(x.leaky_trace()), &tb).backward()
            }))
        };
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
        let mut i_conv = || drop(on_workers(|| convnet.forward(x.clone())));
        let mut i_mlp = || drop(on_workers(|| mlp.forward(x.clone())));
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
    if !networks_only {
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
    // ---- EfficientNet-Lite0 (not in --quick: a batch of 32 at 224 takes seconds). ----
    if !quick {
        effnet_rows(&mut rows, 3);
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
    write_summary(gemm_peak, &rows, quick, out.as_deref());
    eprintln!("bench: done in {:.1} s", t_start.elapsed().as_secs_f64());
}

/// EfficientNet-Lite0 at batch 32, at 224 (its resolution) and 96 (`imagenet-animals`'):
/// inference as `graft predict` runs it, feature extraction for the linear probe (BatchNorm folded, no tape; the
/// last unit's maps, before the negligible pooling) and a
/// fine-tuning step with BatchNorm frozen (forward, summed cross-entropy, backward; no
/// optimiser), the rows `benches/peers/torch_peer.py` times in PyTorch. Random weights: the
/// speed does not depend on their values; correctness is `tests/effnet_lite0.rs`'s.
fn effnet_rows(rows: &mut Vec<Row>, rounds: usize) {
    let dev = Cpu::seed_from_u64(3);
    let net = EfficientNetClassifier::lite0(&dev, 1000).expect("Lite0");
    let b = 32;
    for side in [224usize, 96] {
        let x: graft::nn::Images = dev.tensor_from_vec(
            gen_f32(b * 3 * side * side, -1.0, 1.0, side as u64),
            (b, 3, side, side),
        );
        let t = onehot(&dev, &gen_labels(b, 1000, 7), 1000);
        let units = net.backbone.num_units();
        let mut infer = || drop(on_workers(|| net.forward(x.clone(), Phase::Inference)));
        let mut features = || drop(on_workers(|| net.backbone.forward_units(x.clone(), units)));
        let mut step = || {
            drop(on_workers(|| {
                let f =
                    net.backbone
                        .forward_frozen(x.clone(), 0, BnMode::Eval, OwnedTape::default());
                ce(net.classify(f, Phase::Training(BnMode::Eval)), &t).backward()
            }))
        };
        let res = alternate(rounds, &mut [&mut infer, &mut features, &mut step]);
        for (i, row) in ["infer", "features", "train-bn-frozen"].iter().enumerate() {
            rows.push(Row {
                name: format!("effnet-lite0/{row}/b{b}/r{side}"),
                unit: "samples/s",
                values: rate(&res[i], b as f64),
            });
        }
    }
}

/// The median of the row named `name`, if the run has it.
fn median_of(rows: &[Row], name: &str) -> Option<f64> {
    rows.iter().find(|r| r.name == name).map(|r| r.stats().0)
}

fn write_summary(gemm_peak: f64, rows: &[Row], quick: bool, out: Option<&Path>) {
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
    let targets = [
        (
            "ratio/finetune-epoch-over-probe-epoch",
            50.0,
            "linear-probe epoch on cached features vs one fine-tune epoch",
        ),
        (
            "ratio/data/batch-assembly-over-plain-copy",
            0.5,
            "batch assembly vs a plain copy (GB/s)",
        ),
        (
            "ratio/mlp-train-b64/graft-over-bare-dfdx",
            1.0,
            "mlp training step vs a bare dfdx loop, b64",
        ),
        (
            "ratio/mlp-train-b256/graft-over-bare-dfdx",
            1.0,
            "mlp training step vs a bare dfdx loop, b256",
        ),
        (
            "ratio/convnet-train-b64/fraction-of-gemm-peak",
            0.4,
            "convnet training step, fraction of the GEMM peak, b64",
        ),
        (
            "ratio/convnet-train-b256/fraction-of-gemm-peak",
            0.4,
            "convnet training step, fraction of the GEMM peak, b256",
        ),
        (
            "ratio/feature-cache/build-over-plain-write",
            0.5,
            "feature-cache build vs a plain atomic write of the same bytes",
        ),
        (
            "ratio/cuda-cpu-knn/fraction-of-gemm-peak",
            0.25,
            "graft-cuda CPU kNN, fraction of the GEMM peak",
        ),
    ];
    let mut tmd = String::from(
        "\n## Targets (medians of ratios measured alternately in this run)\n\n| target | row | need | got | met |\n|---|---|---:|---:|---|\n",
    );
    let mut any = false;
    for (name, need, what) in targets {
        if let Some(got) = median_of(rows, name) {
            any = true;
            let met = if got >= need { "yes" } else { "**no**" };
            let _ = writeln!(tmd, "| {what} | {name} | {need:.2}x | {got:.2}x | {met} |");
        }
    }
    if any {
        md.push_str(&tmd);
    }
    if let Some(path) = out {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create --out directory");
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(&json).unwrap()).expect("write --out");
        std::fs::rename(&tmp, path).expect("rename --out");
        eprintln!("bench: wrote {}", path.display());
        return;
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

/// Bytes or FLOPs per call divided by each timed call, in units of 1e9.
fn giga(secs: &[f64], per_call: f64) -> Vec<f64> {
    rate(secs, per_call * 1e-9)
}

/// graft-cuda's CPU reference kernels (`graft::cuda::cpu`), each checked against a naive f64
/// computation first; kNN alternated with the GEMM for its fraction of the peak.
fn cuda_cpu_rows(
    rows: &mut Vec<Row>,
    rounds: usize,
    (ga, gb, gc, n): (&[f32], &[f32], &mut [f32], usize),
) {
    use graft::cuda::{cpu, AdamConfig, AdamState, Augment, ImageShape};
    let t0 = Instant::now();

    // Softmax cross-entropy: MNIST-like and ImageNet-like class counts.
    let sm_shapes = [(8192usize, 10usize), (256, 1000)];
    let sm: Vec<(Vec<f32>, Vec<u32>)> = sm_shapes
        .iter()
        .enumerate()
        .map(|(i, &(r, c))| {
            let logits = gen_f32(r * c, -8.0, 8.0, 81 + i as u64);
            let labels = gen_labels(r, c, 83 + i as u64);
            (logits, labels.into_iter().map(|l| l as u32).collect())
        })
        .collect();
    for ((logits, labels), &(_, c)) in sm.iter().zip(&sm_shapes) {
        let got = cpu::softmax_xent(logits, labels, c).expect("softmax_xent");
        checks::check_softmax_xent(logits, labels, c, &got);
    }

    // Adam: Adam with L2 and AdamW over three steps, then AdamW timed on 1M parameters.
    let pn = 1 << 20;
    let init = gen_f32(pn, -1.0, 1.0, 85);
    let grads: Vec<Vec<f32>> = (0..3).map(|s| gen_f32(pn, -1.0, 1.0, 86 + s)).collect();
    let adamw = AdamConfig::adamw(1e-3, 1e-2);
    checks::check_adam(&init, &grads, &adamw);
    let small: Vec<Vec<f32>> = grads.iter().map(|g| g[..4096].to_vec()).collect();
    let adam_l2 = AdamConfig {
        weight_decay: 1e-2,
        ..AdamConfig::adam(1e-3)
    };
    checks::check_adam(&init[..4096], &small, &adam_l2);

    // kNN: queries planted next to known references.
    let (nq, nr, dim, k) = (256usize, 4096usize, 128usize, 10usize);
    let refs = gen_f32(nr * dim, -1.0, 1.0, 91);
    let planted = gen_labels(nq, nr, 92);
    let noise = gen_f32(nq * dim, -0.05, 0.05, 93);
    let queries: Vec<f32> = planted
        .iter()
        .enumerate()
        .flat_map(|(i, &j)| (0..dim).map(move |t| (i, j, t)))
        .map(|(i, j, t)| refs[j * dim + t] + noise[i * dim + t])
        .collect();
    let got = cpu::knn(&queries, &refs, dim, k).expect("knn");
    checks::check_knn(&queries, &refs, dim, &planted, &got);

    // Image normalisation: MNIST as stored, and CIFAR-sized RGB with crop and flip.
    let mnist = ImageShape {
        n: 256,
        channels: 1,
        height: 28,
        width: 28,
    };
    let rgb = ImageShape {
        n: 256,
        channels: 3,
        height: 32,
        width: 32,
    };
    let pix = |s: ImageShape, seed| -> Vec<u8> {
        gen_labels(s.len().unwrap(), 256, seed)
            .into_iter()
            .map(|v| v as u8)
            .collect()
    };
    let (p1, p3) = (pix(mnist, 95), pix(rgb, 96));
    let (m1, s1) = ([0.2728f32], [0.4056f32]);
    let (m3, s3) = ([0.49f32, 0.48, 0.45], [0.25f32, 0.24, 0.26]);
    let aug = Augment {
        pad: 4,
        flip: true,
        seed: 7,
        first_index: 1000,
    };
    let got = cpu::normalize_images(&p1, mnist, &m1, &s1, None).expect("normalize");
    checks::check_normalize(&p1, mnist, &m1, &s1, None, &got);
    let got = cpu::normalize_images(&p3, rgb, &m3, &s3, Some(&aug)).expect("normalize");
    checks::check_normalize(&p3, rgb, &m3, &s3, Some(&aug), &got);
    eprintln!(
        "bench: cuda-cpu checks passed ({:.1} s)",
        t0.elapsed().as_secs_f64()
    );

    // Timings.
    let mut f_sm0 = || drop(black_box(cpu::softmax_xent(&sm[0].0, &sm[0].1, 10)));
    let mut f_sm1 = || drop(black_box(cpu::softmax_xent(&sm[1].0, &sm[1].1, 1000)));
    let mut params = init.clone();
    let mut state = AdamState::new(pn);
    let mut f_adam = || cpu::adam_step(&mut params, &grads[0], &mut state, &adamw).unwrap();
    let mut f_n1 = || drop(black_box(cpu::normalize_images(&p1, mnist, &m1, &s1, None)));
    let mut f_n3 = || {
        drop(black_box(cpu::normalize_images(
            &p3,
            rgb,
            &m3,
            &s3,
            Some(&aug),
        )))
    };
    let res = alternate(
        rounds,
        &mut [&mut f_sm0, &mut f_sm1, &mut f_adam, &mut f_n1, &mut f_n3],
    );
    let sm_bytes = |(r, c): (usize, usize)| (8 * r * c + 8 * r) as f64;
    let mut push = |name: String, unit: &'static str, values: Vec<f64>| {
        rows.push(Row { name, unit, values });
    };
    for (i, &(r, c)) in sm_shapes.iter().enumerate() {
        push(
            format!("cuda-cpu/softmax-xent/{r}x{c}"),
            "GB/s",
            giga(&res[i], sm_bytes((r, c))),
        );
    }
    // Reads parameters, gradients and both moments; writes parameters and both moments.
    push(
        "cuda-cpu/adam-step/adamw-1M".into(),
        "GB/s",
        giga(&res[2], (28 * pn) as f64),
    );
    // u8 in, f32 out.
    push(
        "cuda-cpu/normalize-images/b256-1x28x28".into(),
        "GB/s",
        giga(&res[3], (5 * mnist.len().unwrap()) as f64),
    );
    push(
        "cuda-cpu/normalize-images/b256-3x32x32-pad4-flip".into(),
        "GB/s",
        giga(&res[4], (5 * rgb.len().unwrap()) as f64),
    );

    let mut f_knn = || drop(black_box(cpu::knn(&queries, &refs, dim, k)));
    let mut f_gemm = || checks::gemm_par(n, n, n, gc, ga, gb);
    let res = alternate(rounds, &mut [&mut f_knn, &mut f_gemm]);
    let knn_gf = giga(&res[0], 2.0 * (nq * nr * dim) as f64);
    let gemm_gf = giga(&res[1], 2.0 * (n * n * n) as f64);
    push(
        format!("cuda-cpu/knn/q{nq}-r{nr}-d{dim}-k{k}"),
        "GFLOP/s",
        knn_gf.clone(),
    );
    push(format!("gemm/{n}/during-knn"), "GFLOP/s", gemm_gf.clone());
    push(
        "ratio/cuda-cpu-knn/fraction-of-gemm-peak".into(),
        "x",
        ratio(&knn_gf, &gemm_gf),
    );
}

/// `FeatureCache::put` of 16384 x 128 f32 features (validate, write, fsync, rename, open),
/// checked to read back what was written, alternated with a plain atomic write (write,
/// fsync, rename) of the same bytes.
fn feature_cache_rows(rows: &mut Vec<Row>, rounds: usize) {
    use graft::data::{FeatureCache, FeatureKey, Features};
    use std::io::Write as _;
    let (n, dim) = (16384usize, 128usize);
    let labels = gen_labels(n, 10, 102)
        .into_iter()
        .map(|l| l as u32)
        .collect();
    let features = Features::new(gen_f32(n * dim, -4.0, 4.0, 101), labels, dim);
    let dir = std::env::temp_dir().join(format!("graft-bench-cache-{}", std::process::id()));
    let cache = FeatureCache::new(&dir);
    let key = FeatureKey {
        checkpoint_hash: 0x0067_7261_6674,
        dataset_hash: 0x0062_656e_6368,
        layer: "fc1".into(),
        preprocessing: "bench".into(),
    };
    let ds = cache.put(&key, &features).expect("feature cache put");
    checks::check_feature_readback(&ds, &features);
    drop(ds);
    let hit = cache
        .get(&key)
        .expect("bench check failed: the entry just written is a miss");
    checks::check_feature_readback(&hit, &features);
    drop(hit);

    let bytes: Vec<u8> = features
        .values
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let mut f_put = || {
        drop(black_box(
            cache.put(&key, &features).expect("feature cache put"),
        ))
    };
    let mut f_write = || {
        let tmp = dir.join(".plain.tmp");
        let mut f = std::fs::File::create(&tmp).expect("create");
        f.write_all(&bytes).expect("write");
        f.sync_all().expect("fsync");
        std::fs::rename(&tmp, dir.join("plain.bin")).expect("rename");
    };
    let res = alternate(rounds, &mut [&mut f_put, &mut f_write]);
    let per_call = (n * dim * 4) as f64;
    rows.push(Row {
        name: format!("feature-cache/build/{n}x{dim}"),
        unit: "GB/s",
        values: giga(&res[0], per_call),
    });
    rows.push(Row {
        name: "feature-cache/plain-write".into(),
        unit: "GB/s",
        values: giga(&res[1], per_call),
    });
    rows.push(Row {
        name: "ratio/feature-cache/build-over-plain-write".into(),
        unit: "x",
        values: ratio(&res[1], &res[0]),
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// One shuffled epoch of batch-64 assembly from the memory-mapped Animal-MNIST (u8 ->
/// normalised f32), checked against a naive computation, alternated with a plain copy of the
/// same number of output bytes.
fn data_rows(rows: &mut Vec<Row>, rounds: usize) {
    let ds = checks::animal_mnist();
    let norm = graft::data::Normalize {
        mean: 0.2728,
        std: 0.4056,
    };
    checks::check_batches(&ds, norm);
    let view = ds.view();
    let len = ds.len() * 784;
    let mut epoch = 1u64;
    let mut f_batches = || {
        epoch += 1;
        let mut it = view.batches(64, epoch, norm, true).unwrap();
        let mut sum = 0.0f32;
        while let Some(batch) = it.next_batch() {
            sum += batch.images[0];
        }
        black_box(sum);
    };
    let src = vec![1.0f32; len];
    let mut dst = vec![0.0f32; len];
    let mut f_copy = || {
        dst.copy_from_slice(black_box(&src));
        black_box(&mut dst);
    };
    let res = alternate(rounds * 2, &mut [&mut f_batches, &mut f_copy]);
    let bytes = (len * 4) as f64;
    rows.push(Row {
        name: "data/batch-assembly/b64".into(),
        unit: "GB/s",
        values: giga(&res[0], bytes),
    });
    rows.push(Row {
        name: "data/plain-copy".into(),
        unit: "GB/s",
        values: giga(&res[1], bytes),
    });
    rows.push(Row {
        name: "ratio/data/batch-assembly-over-plain-copy".into(),
        unit: "x",
        values: ratio(&res[1], &res[0]),
    });
    let _ = std::fs::remove_file(ds.path());
}

/// Mean cross-entropy (f64) of `model` on the first `rows` examples of `data`.
fn mean_ce(dev: &Cpu, model: &ConvnetClassifier, data: &Examples, rows: usize) -> f64 {
    let x: Tensor<(usize, Const<784>), f32, Cpu> =
        dev.tensor_from_vec(data.x[..rows * 784].to_vec(), (rows, Const));
    let logits = model.forward(x).as_vec();
    let c = model.num_classes();
    let total: f64 = logits
        .chunks(c)
        .zip(&data.y)
        .map(|(z, &y)| {
            let m = z.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
            let s: f64 = z.iter().map(|&v| (v as f64 - m).exp()).sum();
            s.ln() + m - z[y] as f64
        })
        .sum();
    total / rows as f64
}

/// One epoch of the linear probe on cached convnet features against one fine-tune epoch of
/// the convnet on the same 1600 images (batch 64, the strategies' learning rates), alternated;
/// feature extraction (the cache's one-time cost) is timed alongside.
fn probe_vs_finetune_rows(rows: &mut Vec<Row>, rounds: usize) {
    use graft::transfer::strategy::{FINE_TUNE_BACKBONE_LR, HEAD_LR};
    use graft::transfer::train::{
        extract_features, train_classifier, train_head, LearningRates, Schedule, TrainPlan,
    };
    let t0 = Instant::now();
    let (n, batch) = (1600usize, 64usize);
    let images = checks::structured_images(n, 71);
    let dev = Cpu::seed_from_u64(1);
    let source = ConvnetClassifier::new(&dev, 10).unwrap();
    let feats = extract_features(&dev, &source.backbone, &images).expect("extract_features");
    // The cached features are what the backbone gives the head: head(features) == logits.
    let x: Tensor<(usize, Const<784>), f32, Cpu> =
        dev.tensor_from_vec(images.x[..64 * 784].to_vec(), (64, Const));
    let fx: Tensor<(usize, Const<128>), f32, Cpu> =
        dev.tensor_from_vec(feats.x[..64 * 128].to_vec(), (64, Const));
    checks::assert_close(
        "extract_features: head(features) vs the classifier's logits",
        &source.head.forward(fx).as_vec(),
        &source.forward(x).as_vec(),
    );
    let bar = indicatif::ProgressBar::hidden();
    let schedule = Schedule::epochs(n, batch, 1);

    // The probe epoch against an independent f64 recomputation.
    let mut head = Head::<128>::new(&dev, 10).unwrap();
    let (w0, b0) = (head.weight.as_vec(), head.bias.as_vec());
    let stats = train_head(&dev, &mut head, &feats, HEAD_LR, schedule, 5, &bar).expect("probe");
    checks::check_probe_epoch(
        (&w0, &b0),
        (&head.weight.as_vec(), &head.bias.as_vec()),
        stats.final_loss,
        &feats,
        HEAD_LR,
        batch,
        5,
    );

    // The fine-tune epoch: finite, every parameter (backbone too) moved, the loss went down.
    let mut model = ConvnetClassifier::new(&Cpu::seed_from_u64(1), 10).unwrap();
    let plan = TrainPlan::uniform(
        schedule,
        ConvnetBackbone::BLOCKS.len(),
        LearningRates {
            backbone: Some(FINE_TUNE_BACKBONE_LR),
            head: HEAD_LR,
        },
    );
    let before = model.snapshot();
    let l0 = mean_ce(&dev, &model, &images, 512);
    let stats =
        train_classifier(&dev, &mut model, &images, &plan, 5, None, &bar).expect("fine-tune");
    let l1 = mean_ce(&dev, &model, &images, 512);
    assert!(
        stats.final_loss.is_finite() && stats.steps == n.div_ceil(batch),
        "bench check failed: fine-tune epoch: loss {} after {} steps",
        stats.final_loss,
        stats.steps
    );
    assert!(
        l1 < l0,
        "bench check failed: one fine-tune epoch did not lower the loss ({l0} -> {l1})"
    );
    for ((name, a), (_, b)) in before.iter().zip(model.snapshot()) {
        assert!(
            a != &b,
            "bench check failed: fine-tuning left {name} unchanged"
        );
    }
    eprintln!(
        "bench: probe-vs-finetune checks passed ({:.1} s)",
        t0.elapsed().as_secs_f64()
    );

    // A probe epoch takes milliseconds: each sample is the mean of `PROBE_REPS` epochs.
    const PROBE_REPS: usize = 8;
    let mut seed = 10;
    let mut f_probe = || {
        for _ in 0..PROBE_REPS {
            seed += 1;
            let s = train_head(&dev, &mut head, &feats, HEAD_LR, schedule, seed, &bar).unwrap();
            black_box(s);
        }
    };
    let mut f_ft = || {
        let s = train_classifier(&dev, &mut model, &images, &plan, 6, None, &bar).unwrap();
        black_box(s);
    };
    let mut f_extract = || {
        drop(black_box(
            extract_features(&dev, &source.backbone, &images).unwrap(),
        ))
    };
    let mut res = alternate(rounds, &mut [&mut f_probe, &mut f_ft, &mut f_extract]);
    for t in &mut res[0] {
        *t /= PROBE_REPS as f64;
    }
    let nf = n as f64;
    let extract_plus_probe: Vec<f64> = res[0].iter().zip(&res[2]).map(|(a, b)| a + b).collect();
    rows.push(Row {
        name: format!("probe-vs-finetune/probe-epoch/n{n}-b{batch}"),
        unit: "samples/s",
        values: rate(&res[0], nf),
    });
    rows.push(Row {
        name: format!("probe-vs-finetune/finetune-epoch/n{n}-b{batch}"),
        unit: "samples/s",
        values: rate(&res[1], nf),
    });
    rows.push(Row {
        name: format!("probe-vs-finetune/extract-features/n{n}"),
        unit: "samples/s",
        values: rate(&res[2], nf),
    });
    rows.push(Row {
        name: "ratio/finetune-epoch-over-probe-epoch".into(),
        unit: "x",
        values: ratio(&res[1], &res[0]),
    });
    rows.push(Row {
        name: "ratio/finetune-epoch-over-extract-plus-probe-epoch".into(),
        unit: "x",
        values: ratio(&res[1], &extract_plus_probe),
    });
}
