//! Every kernel of `kernels/*.cu`, run by the emulator with the CUDA path's launch
//! shapes (and with deliberately small grids, which grid-stride kernels must also get
//! right), against the CPU references in `crate::cpu`; the cuBLAS shapes of
//! `gpu::gemm` against row-major products; and the linear-probe trainer's sequence of
//! kernels and GEMMs against `cpu::fit_linear_probe`.

use cudarc::cublas::{sys::cublasOperation_t, GemmConfig};
use cudarc::driver::LaunchConfig;
use proptest::prelude::*;

use super::{emulator, sgemm_reference, Args, Emulator, Guarded, F32_CANARY, U32_CANARY};
use crate::cpu;
use crate::device::Backend;
use crate::gpu::{block_per_row, gemm, grid_stride, thread_per_item};
use crate::linear_head::train_linear_head_on;
use crate::spec::LinearProbeConfig;
use crate::spec::{AdamConfig, AdamScalars, AdamState, Augment, ImageShape};
use crate::spec::{CachedFeatures, HeadOptimizer, HeadSteps};

/// `|got - want| <= rel * |want| + abs` for every pair, naming the first that is not.
fn assert_close(got: &[f32], want: &[f32], rel: f32, abs: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= rel * w.abs() + abs,
            "{what}[{i}]: emulated {g}, CPU reference {w}"
        );
    }
}

/// The production launch shape, or (when `small`) one or two blocks of 32 threads, so
/// that every thread walks the grid-stride loop several times.
fn grid(production: LaunchConfig, small: Option<u32>) -> LaunchConfig {
    match small {
        Some(blocks) => LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: (32, 1, 1),
            shared_mem_bytes: 0,
        },
        None => production,
    }
}

fn small_grid() -> impl Strategy<Value = Option<u32>> {
    prop_oneof![Just(None), (1u32..3).prop_map(Some)]
}

fn f32s(len: usize, scale: f32) -> impl Strategy<Value = Vec<f32>> {
    proptest::collection::vec(-scale..scale, len)
}

#[test]
fn sgemm_reference_by_hand() {
    // A = [[1, 2, 3], [4, 5, 6]], B = [[1, 0], [0, 1], [1, 1]], A·B = [[4, 5], [10, 11]].
    let cfg = |transa, lda| GemmConfig {
        transa,
        transb: cublasOperation_t::CUBLAS_OP_N,
        m: 2,
        n: 2,
        k: 3,
        alpha: 1.0,
        lda,
        ldb: 3,
        beta: 0.0,
        ldc: 2,
    };
    let b = [1.0, 0.0, 1.0, 0.0, 1.0, 1.0];
    // A stored column-major as is (2 × 3, lda 2), then as Aᵀ (3 × 2, lda 3) transposed.
    for (trans, lda, a) in [
        (
            cublasOperation_t::CUBLAS_OP_N,
            2,
            [1.0, 4.0, 2.0, 5.0, 3.0, 6.0],
        ),
        (
            cublasOperation_t::CUBLAS_OP_T,
            3,
            [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        ),
    ] {
        let mut c = [0.0; 4];
        sgemm_reference(&cfg(trans, lda), &a, &b, &mut c);
        assert_eq!(c, [4.0, 10.0, 5.0, 11.0], "{trans:?}");
    }
}

/// `Σ_p a[i][p] b[j][p]` over row-major `rows_a × d` and `rows_b × d`, in `p` order.
fn dot_rows(a: &[f32], b: &[f32], d: usize, i: usize, j: usize) -> f32 {
    (0..d).fold(0.0f32, |s, p| s + a[i * d + p] * b[j * d + p])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The three GEMMs, given the buffers in the order the CUDA path passes them, give
    /// the row-major products their doc comments promise, bit for bit.
    #[test]
    fn gemm_shapes_give_the_row_major_products(
        (rows, other, d, x, y) in (1usize..7, 1usize..9, 1usize..6).prop_flat_map(|(r, o, d)| {
            (Just(r), Just(o), Just(d), f32s(r * d, 2.0), f32s(o * d, 2.0))
        }),
    ) {
        // D = -2 Q Rᵀ with Q = x (rows × d), R = y (other × d): gemm(cfg, R, Q, D).
        let mut dmat = vec![0.0; rows * other];
        sgemm_reference(&gemm::neg2_q_rt(rows, other, d).unwrap(), &y, &x, &mut dmat);
        for i in 0..rows {
            for j in 0..other {
                prop_assert_eq!(dmat[i * other + j], -2.0 * dot_rows(&x, &y, d, i, j));
            }
        }
        // L = X Wᵀ with X = x (rows × d), W = y (classes = other): gemm(cfg, W, X, L).
        let mut logits = vec![0.0; rows * other];
        sgemm_reference(&gemm::logits(rows, other, d).unwrap(), &y, &x, &mut logits);
        for r in 0..rows {
            for c in 0..other {
                prop_assert_eq!(logits[r * other + c], dot_rows(&x, &y, d, r, c));
            }
        }
        // gW = Gᵀ X with G = logits (rows × classes), X = x: gemm(cfg, X, G, gW).
        let mut gw = vec![0.0; other * d];
        sgemm_reference(&gemm::weight_grad(rows, other, d).unwrap(), &x, &logits, &mut gw);
        for c in 0..other {
            for p in 0..d {
                let want = (0..rows).fold(0.0f32, |s, r| s + logits[r * other + c] * x[r * d + p]);
                prop_assert_eq!(gw[c * d + p], want);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn normalize_images_matches_cpu(
        (shape, pixels) in (1usize..4, 1usize..4, 1usize..9, 1usize..9).prop_flat_map(|(n, c, h, w)| {
            let shape = ImageShape { n, channels: c, height: h, width: w };
            (Just(shape), proptest::collection::vec(any::<u8>(), n * c * h * w))
        }),
        stats in proptest::collection::vec((0.0f32..1.0, 0.1f32..1.0), 3),
        augment in proptest::option::of((0usize..5, any::<bool>(), any::<u64>(), any::<u64>())),
        small in small_grid(),
    ) {
        let Some(emu) = emulator() else { return Ok(()) };
        let c = shape.channels;
        let mean: Vec<f32> = stats[..c].iter().map(|s| s.0).collect();
        let std: Vec<f32> = stats[..c].iter().map(|s| s.1).collect();
        let augment = augment.map(|(pad, flip, seed, first_index)| Augment { pad, flip, seed, first_index });
        let want = cpu::normalize_images(&pixels, shape, &mean, &std, augment.as_ref()).unwrap();

        let mut src = Guarded::new(&pixels, 0u8);
        let mut out = Guarded::filled(pixels.len(), 0.0, F32_CANARY);
        let (mut mean_d, mut std_d) = (Guarded::new(&mean, F32_CANARY), Guarded::new(&std, F32_CANARY));
        let (pad, flip, on, seed, first) = match augment {
            Some(a) => (a.pad as u32, i32::from(a.flip), 1i32, a.seed, a.first_index),
            None => (0, 0, 0, 0, 0),
        };
        let args = Args::default().buf(&mut src).buf(&mut out).buf(&mut mean_d).buf(&mut std_d)
            .val(shape.n as u32).val(c as u32).val(shape.height as u32).val(shape.width as u32)
            .val(pad).val(flip).val(on).val(seed).val(first);
        emu.launch("normalize_images", grid(grid_stride(pixels.len()), small), args);
        assert_close(out.values(), &want, 1e-5, 0.0, "normalize_images");
        prop_assert!(src.values() == pixels.as_slice());
    }

    #[test]
    fn softmax_xent_matches_cpu(
        (rows, classes, logits, labels) in (1usize..5, 1usize..600).prop_flat_map(|(r, c)| {
            (Just(r), Just(c), f32s(r * c, 30.0), proptest::collection::vec(0..c as u32, r))
        }),
    ) {
        let Some(emu) = emulator() else { return Ok(()) };
        let want = cpu::softmax_xent(&logits, &labels, classes).unwrap();
        let mut x = Guarded::new(&logits, F32_CANARY);
        let mut y = Guarded::new(&labels, U32_CANARY);
        let mut grad = Guarded::filled(logits.len(), 0.0, F32_CANARY);
        let mut loss = Guarded::filled(rows, 0.0, F32_CANARY);
        let args = Args::default().buf(&mut x).buf(&mut y).buf(&mut grad).buf(&mut loss)
            .val(rows as u32).val(classes as u32).val(1.0f32 / rows as f32);
        emu.launch("softmax_xent", block_per_row(rows, classes), args);
        // The block sums exp() in a tree, the CPU in class order: equal to f32 rounding.
        // At the label, p - 1 cancels (p near 1): a one-ulp difference in the sum moves it by
        // an ulp of 1.0, so the absolute floor is a few ulps of 1 (times 1/rows), not 1e-7.
        let grad_floor = 4.0 * f32::EPSILON / rows as f32;
        assert_close(grad.values(), &want.grad, 1e-5, grad_floor, "grad");
        assert_close(loss.values(), &want.row_losses, 1e-5, 1e-5, "row loss");
    }

    #[test]
    fn adam_step_matches_cpu(
        (params, grads) in (1usize..3000).prop_flat_map(|n| {
            (f32s(n, 1.0), proptest::collection::vec(f32s(n, 1.0), 3))
        }),
        lr in 1e-4f32..0.1,
        decay in prop_oneof![Just(0.0f32), 1e-4f32..0.1],
        decoupled in any::<bool>(),
        small in small_grid(),
    ) {
        let Some(emu) = emulator() else { return Ok(()) };
        let cfg = AdamConfig { lr, weight_decay: decay, decoupled, ..AdamConfig::default() };
        let n = params.len();
        let mut want = params.clone();
        let mut state = AdamState::new(n);
        let mut p = Guarded::new(&params, F32_CANARY);
        let mut m = Guarded::filled(n, 0.0, F32_CANARY);
        let mut v = Guarded::filled(n, 0.0, F32_CANARY);
        for (step, g) in grads.iter().enumerate() {
            cpu::adam_step(&mut want, g, &mut state, &cfg).unwrap();
            let mut g = Guarded::new(g, F32_CANARY);
            launch_adam(emu, [&mut p, &mut g, &mut m, &mut v], &cfg, step as u64 + 1, small);
        }
        assert_close(p.values(), &want, 1e-6, 1e-7, "params");
        assert_close(m.values(), &state.m, 1e-6, 1e-7, "m");
        assert_close(v.values(), &state.v, 1e-6, 1e-7, "v");
    }

    #[test]
    fn knn_kernels_match_cpu(
        (nq, nr, d, k, q, r) in (1usize..5, 1usize..300, 1usize..6, any::<bool>())
            .prop_flat_map(|(nq, nr, d, ties)| {
                // With `ties`, coordinates on a grid of 3 values: many equal distances.
                let coords = move |len| proptest::collection::vec(-4i32..4, len).prop_map(move |v| {
                    v.into_iter().map(|c| if ties { (c % 3) as f32 } else { c as f32 * 0.37 }).collect::<Vec<f32>>()
                });
                (Just(nq), Just(nr), Just(d), 1..=nr.min(12), coords(nq * d), coords(nr * d))
            }),
    ) {
        let Some(emu) = emulator() else { return Ok(()) };
        let norms = |x: &[f32], rows: usize| {
            let mut xd = Guarded::new(x, F32_CANARY);
            let mut out = Guarded::filled(rows, 0.0, F32_CANARY);
            let args = Args::default().buf(&mut xd).buf(&mut out).val(rows as u32).val(d as u32);
            emu.launch("row_sq_norms", thread_per_item(rows), args);
            out.values().to_vec()
        };
        let (qn, rn) = (norms(&q, nq), norms(&r, nr));
        prop_assert_eq!(&qn, &cpu::row_sq_norms(&q, d));
        prop_assert_eq!(&rn, &cpu::row_sq_norms(&r, d));

        let mut dist = Guarded::filled(nq * nr, 0.0, F32_CANARY);
        sgemm_reference(&gemm::neg2_q_rt(nq, nr, d).unwrap(), &r, &q, dist.values_mut());
        let (mut qn_d, mut rn_d) = (Guarded::new(&qn, F32_CANARY), Guarded::new(&rn, F32_CANARY));
        let args = Args::default().buf(&mut dist).buf(&mut qn_d).buf(&mut rn_d)
            .val(nq as u32).val(nr as u32);
        emu.launch("finish_sq_distances", grid_stride(nq * nr), args);
        let want = cpu::sq_distances(&q, &r, d).unwrap();
        assert_close(dist.values(), &want, 1e-6, 1e-6, "squared distances");

        // Top-k of the same matrix: indices exact, ties to the lower index.
        let (want_idx, want_dist) = cpu::top_k_smallest(dist.values(), nr, k);
        let mut idx = Guarded::filled(nq * k, 0u32, U32_CANARY);
        let mut best = Guarded::filled(nq * k, 0.0, F32_CANARY);
        let args = Args::default().buf(&mut dist).val(nq as u32).val(nr as u32).val(k as u32)
            .buf(&mut idx).buf(&mut best);
        emu.launch("topk_smallest", block_per_row(nq, nr), args);
        prop_assert_eq!(idx.values(), want_idx.as_slice());
        prop_assert_eq!(best.values(), want_dist.as_slice());
    }

    #[test]
    fn linear_probe_helpers_match_naive(
        (n, dim, classes, x, g, order, start) in (1usize..40, 1usize..7, 1usize..300).prop_flat_map(|(n, d, c)| {
            (Just(n), Just(d), Just(c), f32s(n * d, 3.0), f32s(n * c, 3.0),
             Just((0..n as u32).rev().collect::<Vec<u32>>()), 0..n)
        }),
        small in small_grid(),
    ) {
        let Some(emu) = emulator() else { return Ok(()) };
        let labels: Vec<u32> = (0..n as u32).map(|i| i * 7 % classes as u32).collect();
        let b = n - start;
        // gather_rows: rows order[start..start + b] of x and labels.
        let (mut xd, mut yd, mut od) = (
            Guarded::new(&x, F32_CANARY), Guarded::new(&labels, U32_CANARY), Guarded::new(&order, U32_CANARY),
        );
        let mut xb = Guarded::filled(b * dim, 0.0, F32_CANARY);
        let mut yb = Guarded::filled(b, 0u32, U32_CANARY);
        let args = Args::default().buf(&mut xd).buf(&mut yd).buf(&mut od)
            .val(start as u32).val(b as u32).val(dim as u32).buf(&mut xb).buf(&mut yb);
        emu.launch("gather_rows", grid(grid_stride(b * dim), small), args);
        for r in 0..b {
            let src = order[start + r] as usize;
            prop_assert_eq!(&xb.values()[r * dim..][..dim], &x[src * dim..][..dim]);
            prop_assert_eq!(yb.values()[r], labels[src]);
        }
        // add_bias on the n × classes matrix g, with bias = its first row.
        let bias: Vec<f32> = g[..classes].to_vec();
        let (mut gd, mut bd) = (Guarded::new(&g, F32_CANARY), Guarded::new(&bias, F32_CANARY));
        let args = Args::default().buf(&mut gd).buf(&mut bd).val(n as u32).val(classes as u32);
        emu.launch("add_bias", grid(grid_stride(n * classes), small), args);
        let want: Vec<f32> = g.iter().enumerate().map(|(t, &v)| v + bias[t % classes]).collect();
        prop_assert_eq!(gd.values(), want.as_slice());
        // column_sums of g, rows summed in order.
        let (mut gd, mut sums) = (Guarded::new(&g, F32_CANARY), Guarded::filled(classes, 0.0, F32_CANARY));
        let args = Args::default().buf(&mut gd).buf(&mut sums).val(n as u32).val(classes as u32);
        emu.launch("column_sums", thread_per_item(classes), args);
        let want: Vec<f32> = (0..classes).map(|c| (0..n).fold(0.0f32, |s, r| s + g[r * classes + c])).collect();
        prop_assert_eq!(sums.values(), want.as_slice());
    }
}

/// `adam_step` launched as `Gpu::launch_adam` launches it, on `[params, grads, m, v]`.
fn launch_adam(
    emu: &Emulator,
    [p, g, m, v]: [&mut Guarded<f32>; 4],
    cfg: &AdamConfig,
    step: u64,
    small: Option<u32>,
) {
    let k = AdamScalars::new(cfg, step);
    let n = p.values().len();
    let args = Args::default()
        .buf(p)
        .buf(g)
        .buf(m)
        .buf(v)
        .val(n as u64)
        .val(cfg.beta1)
        .val(cfg.beta2)
        .val(cfg.eps)
        .val(cfg.weight_decay)
        .val(i32::from(cfg.decoupled))
        .val(k.decay)
        .val(k.step_size)
        .val(k.bc2_sqrt);
    emu.launch("adam_step", grid(grid_stride(n), small), args);
}

/// The trainer of `Gpu::train_linear_head` (gpu/linear_head.rs), step for step, with the
/// emulator for the kernels and [`sgemm_reference`] for cuBLAS. Returns (W, b, row losses).
fn emulated_train(
    emu: &Emulator,
    data: &CachedFeatures<'_>,
    start_weights: (&[f32], &[f32]),
    steps: &HeadSteps,
    opt: &HeadOptimizer,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (dim, classes) = (data.dim, data.classes);
    let batch = steps.batch_sizes.iter().copied().max().unwrap_or(1);
    let zeros = |len| Guarded::filled(len, 0.0f32, F32_CANARY);
    let (mut xd, mut yd) = (
        Guarded::new(data.values, F32_CANARY),
        Guarded::new(data.labels, U32_CANARY),
    );
    let mut rows = Guarded::new(&steps.rows, U32_CANARY);
    let (mut w, mut wm, mut wv, mut gw) = (
        Guarded::new(start_weights.0, F32_CANARY),
        zeros(classes * dim),
        zeros(classes * dim),
        zeros(classes * dim),
    );
    let (mut bias, mut bm, mut bv, mut gb) = (
        Guarded::new(start_weights.1, F32_CANARY),
        zeros(classes),
        zeros(classes),
        zeros(classes),
    );
    let (mut xb, mut yb) = (zeros(batch * dim), Guarded::filled(batch, 0u32, U32_CANARY));
    let (mut logits, mut grad, mut row_loss) = (
        zeros(batch * classes),
        zeros(batch * classes),
        zeros(steps.rows.len()),
    );
    let mut start = 0;
    for (i, (&bsz, &scale)) in steps.batch_sizes.iter().zip(&steps.lr_scale).enumerate() {
        let args = Args::default()
            .buf(&mut xd)
            .buf(&mut yd)
            .buf(&mut rows)
            .val(start as u32)
            .val(bsz as u32)
            .val(dim as u32)
            .buf(&mut xb)
            .buf(&mut yb);
        emu.launch("gather_rows", grid_stride(bsz * dim), args);
        let fwd = gemm::logits(bsz, classes, dim).unwrap();
        sgemm_reference(&fwd, w.values(), xb.values(), logits.values_mut());
        let args = Args::default()
            .buf(&mut logits)
            .buf(&mut bias)
            .val(bsz as u32)
            .val(classes as u32);
        emu.launch("add_bias", grid_stride(bsz * classes), args);
        let args = Args::default()
            .buf(&mut logits)
            .buf(&mut yb)
            .buf(&mut grad)
            .buf_at(&mut row_loss, start)
            .val(bsz as u32)
            .val(classes as u32)
            .val(1.0f32 / bsz as f32);
        emu.launch("softmax_xent", block_per_row(bsz, classes), args);
        let bwd = gemm::weight_grad(bsz, classes, dim).unwrap();
        sgemm_reference(&bwd, xb.values(), grad.values(), gw.values_mut());
        let args = Args::default()
            .buf(&mut grad)
            .buf(&mut gb)
            .val(bsz as u32)
            .val(classes as u32);
        emu.launch("column_sums", thread_per_item(classes), args);
        let step = i as u64 + 1;
        let (wcfg, bcfg) = (opt.weight.scaled(scale), opt.bias.scaled(scale));
        launch_adam(emu, [&mut w, &mut gw, &mut wm, &mut wv], &wcfg, step, None);
        launch_adam(
            emu,
            [&mut bias, &mut gb, &mut bm, &mut bv],
            &bcfg,
            step,
            None,
        );
        start += bsz;
    }
    (
        w.values().to_vec(),
        bias.values().to_vec(),
        row_loss.values().to_vec(),
    )
}

#[test]
fn linear_probe_trainer_matches_cpu() {
    let Some(emu) = emulator() else { return };
    let (n, dim, classes) = (150, 12, 5);
    let (x, y) = cpu::blobs(n, dim, classes, 3);
    let data = CachedFeatures {
        values: &x,
        dim,
        labels: &y,
        classes,
    };
    for batch in [32, 150, 1000] {
        let cfg = LinearProbeConfig {
            epochs: 4,
            batch,
            lr: 0.02,
            weight_decay: 1e-3,
            seed: 5,
        };
        let steps = HeadSteps::epochs(cfg.seed, n, cfg.batch, cfg.epochs);
        let opt = HeadOptimizer {
            weight: AdamConfig::adamw(cfg.lr, cfg.weight_decay),
            bias: AdamConfig::adam(cfg.lr),
        };
        let zeros = (vec![0.0; classes * dim], vec![0.0; classes]);
        let (w, b, losses) = emulated_train(emu, &data, (&zeros.0, &zeros.1), &steps, &opt);
        let want = cpu::fit_linear_probe(&x, n, dim, &y, classes, &cfg).unwrap();
        assert_close(&w, &want.weights, 1e-4, 1e-5, "weights");
        assert_close(&b, &want.bias, 1e-4, 1e-5, "bias");
        let history: Vec<f32> = losses
            .chunks(n)
            .map(|e| (e.iter().map(|&l| f64::from(l)).sum::<f64>() / n as f64) as f32)
            .collect();
        assert_close(&history, &want.loss_history, 1e-5, 1e-6, "loss history");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Any start, any batches (rows repeated, uneven sizes), any learning-rate factors.
    #[test]
    fn linear_head_trainer_matches_cpu(
        (n, dim, classes) in (1usize..30, 1usize..6, 1usize..7),
        sizes in proptest::collection::vec(1usize..20, 1..8),
        seed in any::<u64>(),
        decay in prop_oneof![Just(0.0f32), 1e-3f32..0.1],
    ) {
        let Some(emu) = emulator() else { return Ok(()) };
        let hash = |k: u64, i: usize| cpu::sample_hash(seed ^ k, i as u64);
        let unit = |k: u64, i: usize| (hash(k, i) >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
        let x: Vec<f32> = (0..n * dim).map(|i| 4.0 * unit(1, i)).collect();
        let y: Vec<u32> = (0..n).map(|i| (hash(2, i) % classes as u64) as u32).collect();
        let total: usize = sizes.iter().sum();
        let steps = HeadSteps {
            rows: (0..total).map(|i| (hash(3, i) % n as u64) as u32).collect(),
            lr_scale: (0..sizes.len()).map(|i| 0.5 + unit(4, i)).collect(),
            batch_sizes: sizes,
        };
        let w0: Vec<f32> = (0..classes * dim).map(|i| unit(5, i)).collect();
        let b0: Vec<f32> = (0..classes).map(|i| unit(6, i)).collect();
        let opt = HeadOptimizer {
            weight: AdamConfig::adamw(0.05, decay),
            bias: AdamConfig { weight_decay: decay, ..AdamConfig::adam(0.03) },
        };
        let data = CachedFeatures { values: &x, dim, labels: &y, classes };
        let (w, b, losses) = emulated_train(emu, &data, (&w0, &b0), &steps, &opt);
        let (mut w_cpu, mut b_cpu) = (w0.clone(), b0.clone());
        let want = train_linear_head_on(&Backend::Cpu, &data, &mut w_cpu, &mut b_cpu, &steps, &opt).unwrap();
        assert_close(&w, &w_cpu, 1e-4, 1e-5, "weights");
        assert_close(&b, &b_cpu, 1e-4, 1e-5, "bias");
        assert_close(&losses, &want, 1e-4, 1e-5, "row losses");
    }
}

#[test]
fn canaries_catch_a_write_past_the_end() {
    let Some(emu) = emulator() else { return };
    // add_bias told of 3 rows on a buffer of 2: the kernel writes one row too many.
    let mut logits = Guarded::filled(2 * 4, 0.0, F32_CANARY);
    let mut bias = Guarded::new(&[1.0, 2.0, 3.0, 4.0], F32_CANARY);
    let args = Args::default()
        .buf(&mut logits)
        .buf(&mut bias)
        .val(3u32)
        .val(4u32);
    emu.launch("add_bias", grid_stride(12), args);
    let read = std::panic::catch_unwind(|| logits.values().len());
    assert!(read.is_err(), "the overrun went unnoticed");
}
