//! Runs every CUDA kernel against its CPU reference on generated shapes and writes a
//! JSON report to the path given as the only argument:
//!
//! ```text
//! cargo run -p graft-cuda --example gpu_check -- target/gpu_check.json
//! ```
//!
//! Without a usable GPU it writes `{"device": null, "skipped": "<reason>"}` and exits 0.
//! It exits 1 when a kernel fails or disagrees with the CPU beyond its tolerance.
//! `gpu_check --cpu <output.json>` runs the same checks with the CPU backend in place of
//! the GPU (CPU against itself; a self-test of this harness and its JSON, `"device": "cpu"`).

use std::fmt::Write as _;
use std::time::Instant;

use graft_cuda::{
    adam_step_on, cpu, knn_on, normalize_images_on, softmax_xent_on, sq_distances_on,
    train_linear_head_on, usable_device, AdamConfig, AdamState, Augment, Backend, CachedFeatures,
    CudaError, HeadOptimizer, HeadSteps, ImageShape, LinearProbe, LinearProbeConfig, OpError,
};

/// One kernel comparison.
struct Check {
    kernel: &'static str,
    shapes: String,
    max_error: f64,
    tolerance: f64,
    gpu_ms: f64,
    cpu_ms: f64,
    error: Option<String>,
}

impl Check {
    fn passed(&self) -> bool {
        self.error.is_none() && self.max_error <= self.tolerance
    }
}

/// JSON string literal (quotes, backslashes and control characters escaped).
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// JSON number (non-finite values become `null`).
fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".to_owned()
    }
}

fn values(seed: u64, len: usize) -> Vec<f32> {
    (0..len as u64)
        .map(|i| (cpu::sample_hash(seed, i) >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from((x - y).abs()))
        .fold(0.0, f64::max)
}

/// Times `gpu` and `cpu`, then compares their outputs with `diff`.
fn check<T>(
    kernel: &'static str,
    shapes: String,
    tolerance: f64,
    gpu: impl FnOnce() -> Result<T, OpError>,
    cpu: impl FnOnce() -> Result<T, OpError>,
    diff: impl FnOnce(&T, &T) -> f64,
) -> Check {
    let t = Instant::now();
    let got = gpu();
    let gpu_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let want = cpu();
    let cpu_ms = t.elapsed().as_secs_f64() * 1e3;
    let (max_error, error) = match (got, want) {
        (Ok(g), Ok(w)) => (diff(&g, &w), None),
        (Err(e), _) => (f64::INFINITY, Some(format!("GPU: {e}"))),
        (_, Err(e)) => (f64::INFINITY, Some(format!("CPU: {e}"))),
    };
    Check {
        kernel,
        shapes,
        max_error,
        tolerance,
        gpu_ms,
        cpu_ms,
        error,
    }
}

fn run_checks(backend: &Backend) -> Vec<Check> {
    let mut checks = Vec::new();

    for (n, c, h, w, augment) in [
        (256, 1, 28, 28, None),
        (
            256,
            3,
            32,
            32,
            Some(Augment {
                pad: 4,
                flip: true,
                seed: 7,
                first_index: 0,
            }),
        ),
    ] {
        let shape = ImageShape {
            n,
            channels: c,
            height: h,
            width: w,
        };
        let pixels: Vec<u8> = (0..(n * c * h * w) as u64)
            .map(|i| cpu::sample_hash(1, i) as u8)
            .collect();
        let (mean, std) = (vec![0.5; c], vec![0.25; c]);
        checks.push(check(
            "normalize_images",
            format!("n={n} c={c} h={h} w={w} augment={}", augment.is_some()),
            1e-6,
            || normalize_images_on(backend, &pixels, shape, &mean, &std, augment.as_ref()),
            || cpu::normalize_images(&pixels, shape, &mean, &std, augment.as_ref()),
            |a, b| max_abs_diff(a, b),
        ));
    }

    for (rows, classes) in [(512, 10), (256, 1000)] {
        let logits: Vec<f32> = values(3, rows * classes).iter().map(|v| 8.0 * v).collect();
        let labels: Vec<u32> = (0..rows as u64)
            .map(|i| (cpu::sample_hash(4, i) % classes as u64) as u32)
            .collect();
        checks.push(check(
            "softmax_xent",
            format!("rows={rows} classes={classes}"),
            1e-5,
            || softmax_xent_on(backend, &logits, &labels, classes),
            || cpu::softmax_xent(&logits, &labels, classes),
            |a, b| max_abs_diff(&a.grad, &b.grad).max(f64::from((a.loss - b.loss).abs())),
        ));
    }

    for (name, cfg) in [
        ("adam", AdamConfig::adam(1e-3)),
        ("adamw", AdamConfig::adamw(1e-3, 0.05)),
    ] {
        let n = 1 << 20;
        let p0 = values(5, n);
        let g = values(6, n);
        let step = |on_gpu: bool| -> Result<Vec<f32>, OpError> {
            let mut p = p0.clone();
            let mut st = AdamState::new(n);
            for _ in 0..2 {
                if on_gpu {
                    adam_step_on(backend, &mut p, &g, &mut st, &cfg)?;
                } else {
                    cpu::adam_step(&mut p, &g, &mut st, &cfg)?;
                }
            }
            Ok(p)
        };
        checks.push(check(
            "adam_step",
            format!("n={n} variant={name} steps=2"),
            1e-6,
            || step(true),
            || step(false),
            |a, b| max_abs_diff(a, b),
        ));
    }

    let (dim, nq, nr, k) = (64, 500, 5000, 10);
    let q = values(20, nq * dim);
    let r = values(21, nr * dim);
    checks.push(check(
        "sq_distances",
        format!("queries={nq} references={nr} dim={dim}"),
        1e-3,
        || sq_distances_on(backend, &q, &r, dim),
        || cpu::sq_distances(&q, &r, dim),
        |a, b| max_abs_diff(a, b),
    ));
    checks.push(check(
        "knn",
        format!("queries={nq} references={nr} dim={dim} k={k}"),
        1e-3,
        || knn_on(backend, &q, &r, dim, k),
        || cpu::knn(&q, &r, dim, k),
        |a, b| max_abs_diff(&a.distances, &b.distances),
    ));

    let (n, d, classes) = (4000, 64, 10);
    let noise = values(30, n * d);
    let x: Vec<f32> = (0..n * d)
        .map(|t| if t % d % classes == t / d % classes { 2.0 } else { 0.0 } + noise[t])
        .collect();
    let y: Vec<u32> = (0..n).map(|i| (i % classes) as u32).collect();
    let cfg = LinearProbeConfig {
        epochs: 5,
        batch: 128,
        lr: 0.01,
        weight_decay: 1e-4,
        seed: 3,
    };
    checks.push(check(
        "linear_probe",
        format!("n={n} d={d} classes={classes} epochs=5 batch=128"),
        1e-3,
        || LinearProbe::fit_on(backend, &x, n, d, &y, classes, &cfg),
        || cpu::fit_linear_probe(&x, n, d, &y, classes, &cfg),
        |a, b| {
            max_abs_diff(&a.weights, &b.weights)
                .max(max_abs_diff(&a.bias, &b.bias))
                .max(max_abs_diff(&a.loss_history, &b.loss_history))
        },
    ));

    // graft-transfer's GPU probe path: a non-zero start, batches of its own, changing rates.
    let data = CachedFeatures {
        values: &x,
        dim: d,
        labels: &y,
        classes,
    };
    let sizes: Vec<usize> = (0..200).map(|i| 1 + (i * 37) % 128).collect();
    let total: usize = sizes.iter().sum();
    let steps = HeadSteps {
        rows: (0..total as u64)
            .map(|i| (cpu::sample_hash(9, i) % n as u64) as u32)
            .collect(),
        lr_scale: (0..sizes.len()).map(|i| 1.0 - i as f32 / 200.0).collect(),
        batch_sizes: sizes,
    };
    let opt = HeadOptimizer {
        weight: AdamConfig::adamw(0.01, 0.01),
        bias: AdamConfig::adamw(0.01, 0.01),
    };
    let start = (values(40, classes * d), values(41, classes));
    // (weights, bias, row losses)
    type Trained = (Vec<f32>, Vec<f32>, Vec<f32>);
    let train = |on: &Backend| -> Result<Trained, OpError> {
        let (mut w, mut b) = start.clone();
        let losses = train_linear_head_on(on, &data, &mut w, &mut b, &steps, &opt)?;
        Ok((w, b, losses))
    };
    checks.push(check(
        "linear_head",
        format!("n={n} d={d} classes={classes} steps=200 rows={total} start=random"),
        1e-3,
        || train(backend),
        || train(&Backend::Cpu),
        |a, b| {
            max_abs_diff(&a.0, &b.0)
                .max(max_abs_diff(&a.1, &b.1))
                .max(max_abs_diff(&a.2, &b.2))
        },
    ));
    checks
}

fn report(
    backend: &Backend,
    checks: &[Check],
    self_check: &Result<Vec<&'static str>, CudaError>,
) -> String {
    let device = match backend {
        Backend::Cuda(info) => format!(
            "{{\"ordinal\": {}, \"name\": {}, \"compute_capability\": \"{}.{}\"}}",
            info.ordinal,
            json_str(&info.name),
            info.compute_capability.0,
            info.compute_capability.1
        ),
        Backend::Cpu => "\"cpu\"".to_owned(),
    };
    let mut out = format!("{{\n  \"device\": {device},\n  \"checks\": [\n");
    for (i, c) in checks.iter().enumerate() {
        let _ = writeln!(
            out,
            "    {{\"kernel\": {}, \"shapes\": {}, \"max_error\": {}, \"tolerance\": {}, \
             \"gpu_ms\": {}, \"cpu_ms\": {}, \"passed\": {}, \"error\": {}}}{}",
            json_str(c.kernel),
            json_str(&c.shapes),
            json_num(c.max_error),
            json_num(c.tolerance),
            json_num(c.gpu_ms),
            json_num(c.cpu_ms),
            c.passed(),
            c.error.as_deref().map_or("null".to_owned(), json_str),
            if i + 1 < checks.len() { "," } else { "" }
        );
    }
    let passed = checks.iter().all(Check::passed) && self_check.is_ok();
    let self_check = match self_check {
        Ok(_) => "\"passed\"".to_owned(),
        Err(e) => json_str(&e.to_string()),
    };
    let _ = write!(
        out,
        "  ],\n  \"self_check\": {self_check},\n  \"passed\": {passed}\n}}\n"
    );
    out
}

fn print_checks(checks: &[Check]) {
    for c in checks {
        println!(
            "{:<17} {:<45} max error {:.3e} (tol {:.0e})  gpu {:.1} ms  cpu {:.1} ms  {}",
            c.kernel,
            c.shapes,
            c.max_error,
            c.tolerance,
            c.gpu_ms,
            c.cpu_ms,
            if c.passed() { "ok" } else { "FAILED" }
        );
        if let Some(e) = &c.error {
            println!("  {e}");
        }
    }
}

fn main() {
    let mut args: Vec<_> = std::env::args_os().skip(1).collect();
    let cpu_selftest = args.first().is_some_and(|a| a == "--cpu");
    if cpu_selftest {
        args.remove(0);
    }
    let [path] = args.as_slice() else {
        eprintln!("usage: gpu_check [--cpu] <output.json>");
        std::process::exit(2);
    };
    // The device select_backend would try, before its self-check: this check is the
    // fuller comparison, so it runs even where the self-check would keep graft on the CPU.
    let (json, ok) = match usable_device() {
        _ if cpu_selftest => {
            println!("self-test: CPU backend in place of the GPU");
            let checks = run_checks(&Backend::Cpu);
            print_checks(&checks);
            let self_check = graft_cuda::self_check(&Backend::Cpu);
            (
                report(&Backend::Cpu, &checks, &self_check),
                checks.iter().all(Check::passed) && self_check.is_ok(),
            )
        }
        Err(reason) => {
            println!("skipped: {reason}");
            (
                format!(
                    "{{\"device\": null, \"skipped\": {}}}\n",
                    json_str(&reason.to_string())
                ),
                true,
            )
        }
        Ok(info) => {
            println!("checking kernels on cuda:{} ({})", info.ordinal, info.name);
            let backend = Backend::Cuda(info);
            let checks = run_checks(&backend);
            print_checks(&checks);
            let self_check = graft_cuda::self_check(&backend);
            match &self_check {
                Ok(ops) => println!(
                    "self-check (what select_backend runs): passed, {}",
                    ops.join(", ")
                ),
                Err(e) => println!("self-check (what select_backend runs): FAILED: {e}"),
            }
            (
                report(&backend, &checks, &self_check),
                checks.iter().all(Check::passed) && self_check.is_ok(),
            )
        }
    };
    if let Err(e) = std::fs::write(path, json) {
        eprintln!("error: cannot write {}: {e}", path.to_string_lossy());
        std::process::exit(1);
    }
    std::process::exit(if ok { 0 } else { 1 });
}
