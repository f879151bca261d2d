//! The check a CUDA device passes before graft trusts it with work: every kernel, run
//! through the public `*_on` operations on small fixed inputs, against the CPU reference.
//!
//! [`crate::select_backend`] runs it once per process on the device it found; if a kernel
//! fails or disagrees, graft takes the CPU path and says why, rather than train on wrong
//! numbers. The inputs are shaped to reach every branch of the launches: several blocks,
//! rows wider than a block, batches that end mid-epoch, crops that leave the image.

use crate::device::Backend;
use crate::error::CudaError;
use crate::linear_head::train_linear_head_on;
use crate::ops::{adam_step_on, knn_on, normalize_images_on, softmax_xent_on, sq_distances_on};
use crate::spec::{
    AdamConfig, AdamState, Augment, CachedFeatures, HeadOptimizer, HeadSteps, ImageShape, OpError,
};

/// Relative tolerance of value comparisons (f32 arithmetic; the device's `expf`/`logf`
/// and summation order differ from the CPU's by a few ulps).
pub const SELF_CHECK_REL: f32 = 1e-4;
/// Absolute floor of value comparisons, for values near zero.
pub const SELF_CHECK_ABS: f32 = 1e-5;

/// The operations the self-check runs, in order.
pub const SELF_CHECKED: [&str; 6] = [
    "normalize_images",
    "softmax_xent",
    "adam_step",
    "sq_distances",
    "knn",
    "train_linear_head",
];

/// Runs every graft kernel on `backend` and compares it with the CPU reference: values
/// within [`SELF_CHECK_REL`] relative plus [`SELF_CHECK_ABS`], neighbour indices exactly.
/// Returns the operations checked ([`SELF_CHECKED`]), or [`CudaError::SelfCheck`] naming the
/// first that failed or disagreed. On [`Backend::Cpu`] it compares the CPU with itself.
pub fn self_check(backend: &Backend) -> Result<Vec<&'static str>, CudaError> {
    let cpu = Backend::Cpu;
    let mut rng = Lcg(0x6772_6166_7421);

    let shape = ImageShape {
        n: 3,
        channels: 3,
        height: 9,
        width: 11,
    };
    let pixels: Vec<u8> = (0..3 * 3 * 9 * 11).map(|_| rng.next() as u8).collect();
    let (mean, std) = ([0.49, 0.48, 0.45], [0.25, 0.24, 0.26]);
    let augment = Augment {
        pad: 2,
        flip: true,
        seed: 7,
        first_index: 5,
    };
    for aug in [None, Some(&augment)] {
        let run = |b: &Backend| normalize_images_on(b, &pixels, shape, &mean, &std, aug);
        compare("normalize_images", &run(backend), &run(&cpu))?;
    }

    // 37 rows of 300 classes: wider than the largest block (256 threads).
    let (rows, classes) = (37, 300);
    let logits = rng.values(rows * classes, 8.0);
    let labels: Vec<u32> = (0..rows)
        .map(|_| (rng.next() % classes as u64) as u32)
        .collect();
    let run = |b: &Backend| softmax_xent_on(b, &logits, &labels, classes);
    let (got, want) = (run(backend), run(&cpu));
    compare_by("softmax_xent", &got, &want, |r| &r.grad)?;
    compare_by("softmax_xent", &got, &want, |r| &r.row_losses)?;

    // 1000 parameters (4 blocks of 256), three steps of Adam and of AdamW.
    let params = rng.values(1000, 1.0);
    let grads: Vec<Vec<f32>> = (0..3).map(|_| rng.values(1000, 0.5)).collect();
    for cfg in [AdamConfig::adam(1e-2), AdamConfig::adamw(1e-2, 0.1)] {
        let run = |b: &Backend| -> Result<Vec<f32>, OpError> {
            let (mut p, mut state) = (params.clone(), AdamState::new(params.len()));
            for g in &grads {
                adam_step_on(b, &mut p, g, &mut state, &cfg)?;
            }
            p.extend(state.m);
            p.extend(state.v);
            Ok(p)
        };
        compare("adam_step", &run(backend), &run(&cpu))?;
    }

    // Small integer coordinates: every distance is exact in f32, so ties are real ties
    // and the neighbour order (ties to the lower index) must match exactly.
    let dim = 5;
    let queries: Vec<f32> = (0..50 * dim).map(|_| rng.coordinate()).collect();
    let references: Vec<f32> = (0..70 * dim).map(|_| rng.coordinate()).collect();
    let run = |b: &Backend| sq_distances_on(b, &queries, &references, dim);
    compare("sq_distances", &run(backend), &run(&cpu))?;
    let run = |b: &Backend| knn_on(b, &queries, &references, dim, 4);
    let (got, want) = (run(backend), run(&cpu));
    compare_by("knn", &got, &want, |k| &k.distances)?;
    match (got, want) {
        (Ok(g), Ok(w)) if g.indices != w.indices => {
            return Err(mismatch("knn", "neighbour indices differ from the CPU's"))
        }
        _ => {}
    }

    // A linear head: 2 epochs of 40 rows in batches of 16 (the last one of 8).
    let (n, d, c) = (40, 12, 3);
    let values = rng.values(n * d, 1.0);
    let labels: Vec<u32> = (0..n).map(|i| (i % c) as u32).collect();
    let data = CachedFeatures {
        values: &values,
        dim: d,
        labels: &labels,
        classes: c,
    };
    let steps = HeadSteps::epochs(3, n, 16, 2);
    let opt = HeadOptimizer {
        weight: AdamConfig::adamw(1e-2, 1e-2),
        bias: AdamConfig::adam(1e-2),
    };
    let run = |b: &Backend| -> Result<Vec<f32>, OpError> {
        let (mut w, mut bias) = (vec![0.0; c * d], vec![0.0; c]);
        let mut out = train_linear_head_on(b, &data, &mut w, &mut bias, &steps, &opt)?;
        out.extend(w);
        out.extend(bias);
        Ok(out)
    };
    compare("train_linear_head", &run(backend), &run(&cpu))?;
    Ok(SELF_CHECKED.to_vec())
}

fn mismatch(kernel: &'static str, detail: impl Into<String>) -> CudaError {
    CudaError::SelfCheck {
        kernel,
        detail: detail.into(),
    }
}

/// `got` (the backend's) against `want` (the CPU's): both succeeded, same length, and
/// every value within tolerance.
fn compare(
    kernel: &'static str,
    got: &Result<Vec<f32>, OpError>,
    want: &Result<Vec<f32>, OpError>,
) -> Result<(), CudaError> {
    compare_by(kernel, got, want, |v| v)
}

/// [`compare`] on the values `field` picks out of each result.
fn compare_by<T>(
    kernel: &'static str,
    got: &Result<T, OpError>,
    want: &Result<T, OpError>,
    field: impl Fn(&T) -> &[f32],
) -> Result<(), CudaError> {
    let want = want
        .as_ref()
        .map(&field)
        .map_err(|e| mismatch(kernel, format!("the CPU reference failed: {e}")))?;
    let got = got
        .as_ref()
        .map(&field)
        .map_err(|e| mismatch(kernel, e.to_string()))?;
    if got.len() != want.len() {
        return Err(mismatch(
            kernel,
            format!("{} values, the CPU gave {}", got.len(), want.len()),
        ));
    }
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = (g - w).abs() <= SELF_CHECK_ABS + SELF_CHECK_REL * w.abs();
        if !ok {
            return Err(mismatch(
                kernel,
                format!("value {i} is {g}, the CPU gave {w}"),
            ));
        }
    }
    Ok(())
}

/// Knuth's MMIX linear congruential generator: fixed inputs without a dependency.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    /// `len` values uniform in `[-scale, scale)`.
    fn values(&mut self, len: usize, scale: f32) -> Vec<f32> {
        (0..len)
            .map(|_| ((self.next() % 1_000_000) as f32 / 500_000.0 - 1.0) * scale)
            .collect()
    }

    /// An integer in `-4..4`, as f32.
    fn coordinate(&mut self) -> f32 {
        (self.next() % 8) as f32 - 4.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_passes_its_own_self_check_on_valid_inputs() {
        // A self-check input the checks reject would keep every GPU on the CPU path.
        assert_eq!(self_check(&Backend::Cpu), Ok(SELF_CHECKED.to_vec()));
    }

    #[test]
    fn compare_accepts_rounding_and_rejects_errors() {
        let want = Ok(vec![1.0, -200.0, 0.0]);
        let rounded = Ok(vec![1.0 + 5e-5, -200.0 * (1.0 + 5e-5), 9e-6]);
        assert_eq!(compare("k", &rounded, &want), Ok(()));
        for bad in [
            vec![1.001, -200.0, 0.0],
            vec![1.0, -200.0, 2e-5],
            vec![1.0, f32::NAN, 0.0],
            vec![1.0, -200.0],
        ] {
            let err = compare("k", &Ok(bad.clone()), &want).unwrap_err();
            assert!(
                matches!(err, CudaError::SelfCheck { kernel: "k", .. }),
                "{bad:?}: {err}"
            );
        }
        let failed = Err(OpError::Cuda(CudaError::Driver(
            "cuLaunchKernel: boom".into(),
        )));
        let err = compare("k", &failed, &want).unwrap_err();
        assert!(err.to_string().contains("boom"), "{err}");
    }
}
