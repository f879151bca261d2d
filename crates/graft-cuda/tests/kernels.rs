//! Kernel tests that need no GPU (NVRTC compiles every kernel to PTX) and GPU-vs-CPU
//! tests written once for both backends (candle's `test_device!` idea): the `cpu`
//! variant always runs, the `cuda` variant prints `skipped: <reason>` without a device.

use graft_cuda::kernels::{compile_ptx, SOURCES};
use graft_cuda::{
    adam_step_on, cpu, knn_on, normalize_images_on, probe, softmax_xent_on, sq_distances_on,
    train_linear_head_on, AdamConfig, AdamState, Augment, Backend, CachedFeatures, CudaError,
    HeadOptimizer, HeadSteps, ImageShape, LinearProbe, LinearProbeConfig,
};

#[test]
fn nvrtc_compiles_every_kernel() {
    // SAFETY: `is_culib_present` only tries `dlopen` on NVRTC's candidate names and
    // closes what it opened.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        // `cargo xtask nvrtc` (run by CI) sets this: there a missing NVRTC is a failure.
        assert!(
            std::env::var_os("GRAFT_REQUIRE_NVRTC").is_none(),
            "NVRTC not found although GRAFT_REQUIRE_NVRTC is set (LD_LIBRARY_PATH = {:?})",
            std::env::var("LD_LIBRARY_PATH")
        );
        println!("skipped: NVRTC not found (set LD_LIBRARY_PATH, see `cargo xtask nvrtc`)");
        return;
    }
    let mut failures = Vec::new();
    for kernel in SOURCES {
        for arch in ["compute_80", "compute_90"] {
            match compile_ptx(kernel, arch) {
                Ok(ptx) => {
                    let target = format!(".target sm_{}", arch.trim_start_matches("compute_"));
                    assert!(
                        ptx.contains(&target),
                        "{} for {arch}: no `{target}`",
                        kernel.file
                    );
                    for f in kernel.functions {
                        assert!(
                            ptx.contains(&format!(".entry {f}(")),
                            "{} for {arch}: PTX lacks entry {f}",
                            kernel.file
                        );
                    }
                    println!(
                        "ok: {} for {arch} ({} bytes of PTX)",
                        kernel.file,
                        ptx.len()
                    );
                }
                Err(err) => {
                    println!("NVRTC failed: {err}");
                    failures.push(format!("{} for {arch}", kernel.file));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "kernels failed to compile: {failures:?}"
    );
}

/// The CUDA backend for the first device, or why there is none.
fn cuda_backend() -> Result<Backend, String> {
    let devices = probe().map_err(|e| e.to_string())?;
    if !graft_cuda::nvrtc_available() {
        return Err(CudaError::NoNvrtc.to_string());
    }
    Ok(Backend::Cuda(devices[0].clone()))
}

/// One test body, run as `<name>::cpu` and `<name>::cuda`.
macro_rules! test_device {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[test]
            fn cpu() {
                let body: fn(&Backend) = $body;
                body(&Backend::Cpu);
            }

            #[test]
            fn cuda() {
                match cuda_backend() {
                    Ok(backend) => {
                        let body: fn(&Backend) = $body;
                        body(&backend);
                    }
                    Err(reason) => println!("skipped: {reason}"),
                }
            }
        }
    };
}

/// Deterministic values in [-1, 1).
fn values(seed: u64, len: usize) -> Vec<f32> {
    (0..len as u64)
        .map(|i| (cpu::sample_hash(seed, i) >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

test_device!(normalize_matches_cpu, |backend| {
    let shape = ImageShape {
        n: 17,
        channels: 3,
        height: 9,
        width: 11,
    };
    let pixels: Vec<u8> = (0..17 * 3 * 9 * 11u64)
        .map(|i| cpu::sample_hash(1, i) as u8)
        .collect();
    let (mean, std) = ([0.5, 0.4, 0.3], [0.25, 0.2, 0.3]);
    for augment in [
        None,
        Some(Augment {
            pad: 3,
            flip: true,
            seed: 99,
            first_index: 1000,
        }),
    ] {
        let got =
            normalize_images_on(backend, &pixels, shape, &mean, &std, augment.as_ref()).unwrap();
        let want = cpu::normalize_images(&pixels, shape, &mean, &std, augment.as_ref()).unwrap();
        assert!(max_abs_diff(&got, &want) <= 1e-6, "{augment:?}");
    }
});

test_device!(softmax_xent_matches_cpu, |backend| {
    for (rows, classes) in [(1, 1), (7, 10), (33, 1000)] {
        let logits: Vec<f32> = values(3, rows * classes).iter().map(|v| 8.0 * v).collect();
        let labels: Vec<u32> = (0..rows as u64)
            .map(|i| (cpu::sample_hash(4, i) % classes as u64) as u32)
            .collect();
        let got = softmax_xent_on(backend, &logits, &labels, classes).unwrap();
        let want = cpu::softmax_xent(&logits, &labels, classes).unwrap();
        assert!((got.loss - want.loss).abs() <= 1e-5 * (1.0 + want.loss.abs()));
        assert!(max_abs_diff(&got.row_losses, &want.row_losses) <= 1e-4);
        assert!(
            max_abs_diff(&got.grad, &want.grad) <= 1e-6,
            "{rows}x{classes}"
        );
    }
});

test_device!(adam_matches_cpu, |backend| {
    for cfg in [
        AdamConfig::adam(0.01),
        AdamConfig::adamw(0.01, 0.05),
        AdamConfig {
            weight_decay: 0.05,
            ..AdamConfig::adam(0.01)
        },
    ] {
        let n = 10_001;
        let mut p_gpu = values(5, n);
        let mut p_cpu = p_gpu.clone();
        let (mut s_gpu, mut s_cpu) = (AdamState::new(n), AdamState::new(n));
        for step in 0..3 {
            let g = values(10 + step, n);
            adam_step_on(backend, &mut p_gpu, &g, &mut s_gpu, &cfg).unwrap();
            cpu::adam_step(&mut p_cpu, &g, &mut s_cpu, &cfg).unwrap();
        }
        assert_eq!(s_gpu.step, 3);
        assert!(max_abs_diff(&p_gpu, &p_cpu) <= 1e-6, "{cfg:?}");
        assert!(max_abs_diff(&s_gpu.v, &s_cpu.v) <= 1e-6);
    }
});

test_device!(knn_matches_cpu, |backend| {
    let dim = 24;
    let (nq, nr, k) = (37, 501, 10);
    let q = values(20, nq * dim);
    let r = values(21, nr * dim);
    let d_got = sq_distances_on(backend, &q, &r, dim).unwrap();
    let d_want = cpu::sq_distances(&q, &r, dim).unwrap();
    assert!(max_abs_diff(&d_got, &d_want) <= 1e-4);
    let got = knn_on(backend, &q, &r, dim, k).unwrap();
    let want = cpu::knn(&q, &r, dim, k).unwrap();
    assert!(max_abs_diff(&got.distances, &want.distances) <= 1e-4);
    // Indices agree except where two distances are within rounding of each other.
    for i in 0..nq * k {
        if got.indices[i] != want.indices[i] {
            let j = got.indices[i] as usize;
            let row = i / k;
            assert!(
                (d_want[row * nr + j] - want.distances[i]).abs() <= 1e-4,
                "row {row}"
            );
        }
    }
    // Exact ties (duplicated references) go to the lower index on both backends.
    let mut dup = r.clone();
    dup.extend_from_slice(&r[..dim * 5]);
    let tie = knn_on(backend, &r[..dim], &dup, dim, 2).unwrap();
    assert_eq!(tie.indices[0], 0);
    assert!(tie.distances[0] <= 1e-4);
});

fn blobs(n: usize, d: usize, classes: usize) -> (Vec<f32>, Vec<u32>) {
    let noise = values(77, n * d);
    let x = (0..n * d)
        .map(|t| {
            let (i, j) = (t / d, t % d);
            let centre = if j % classes == i % classes { 3.0 } else { 0.0 };
            centre + 1.5 * noise[t]
        })
        .collect();
    let y = (0..n).map(|i| (i % classes) as u32).collect();
    (x, y)
}

test_device!(linear_probe_matches_cpu, |backend| {
    let (n, d, classes) = (700, 16, 6);
    let (x, y) = blobs(n, d, classes);
    let cfg = LinearProbeConfig {
        epochs: 6,
        batch: 64,
        lr: 0.02,
        weight_decay: 1e-3,
        seed: 11,
    };
    let got = LinearProbe::fit_on(backend, &x, n, d, &y, classes, &cfg).unwrap();
    let want = cpu::fit_linear_probe(&x, n, d, &y, classes, &cfg).unwrap();
    assert!(max_abs_diff(&got.weights, &want.weights) <= 1e-3);
    assert!(max_abs_diff(&got.bias, &want.bias) <= 1e-3);
    assert!(max_abs_diff(&got.loss_history, &want.loss_history) <= 1e-3);
    assert!(got.accuracy(&x, &y).unwrap() > 0.95);
});

#[test]
fn select_backend_dispatch_never_panics_without_cuda() {
    let (x, y) = blobs(60, 6, 3);
    let cfg = LinearProbeConfig {
        epochs: 3,
        batch: 16,
        lr: 0.05,
        weight_decay: 0.0,
        seed: 2,
    };
    let probe = LinearProbe::fit(&x, 60, 6, &y, 3, &cfg).unwrap();
    assert_eq!(probe.loss_history.len(), 3);
    assert!(graft_cuda::knn(&x, &x, 6, 1).unwrap().indices.len() == 60);
    assert!(graft_cuda::softmax_xent(&[0.0; 3], &[2], 3).is_ok());
    assert!(graft_cuda::softmax_xent(&[0.0; 3], &[3], 3).is_err());
}

test_device!(linear_head_from_a_start_matches_cpu, |backend| {
    // A start that is not zero, uneven batches with repeated rows, changing learning rates.
    let (n, d, classes) = (300, 20, 4);
    let (x, y) = blobs(n, d, classes);
    let data = CachedFeatures {
        values: &x,
        dim: d,
        labels: &y,
        classes,
    };
    let sizes = [64usize, 1, 200, 33, 300, 7];
    let total: usize = sizes.iter().sum();
    let steps = HeadSteps {
        rows: (0..total as u64)
            .map(|i| (cpu::sample_hash(8, i) % n as u64) as u32)
            .collect(),
        batch_sizes: sizes.to_vec(),
        lr_scale: vec![1.0, 0.5, 2.0, 0.0, 1.0, 0.25],
    };
    let opt = HeadOptimizer {
        weight: AdamConfig::adamw(0.03, 0.01),
        bias: AdamConfig::adam(0.03),
    };
    let (w0, b0) = (values(30, classes * d), values(31, classes));
    let (mut w, mut b) = (w0.clone(), b0.clone());
    let got = train_linear_head_on(backend, &data, &mut w, &mut b, &steps, &opt).unwrap();
    let (mut w_cpu, mut b_cpu) = (w0, b0);
    let want =
        train_linear_head_on(&Backend::Cpu, &data, &mut w_cpu, &mut b_cpu, &steps, &opt).unwrap();
    assert!(max_abs_diff(&w, &w_cpu) <= 1e-4);
    assert!(max_abs_diff(&b, &b_cpu) <= 1e-4);
    assert!(max_abs_diff(&got, &want) <= 1e-4);
    assert_eq!(got.len(), total);
});
