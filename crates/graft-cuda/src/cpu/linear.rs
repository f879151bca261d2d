//! CPU linear-probe trainer (the reference for the cuBLAS + kernels version).

use crate::cpu::adam::apply;
use crate::cpu::softmax_xent;
use crate::device::Backend;
use crate::spec::{AdamScalars, OpError};
use crate::spec::{CachedFeatures, HeadOptimizer, HeadSteps};
use crate::spec::{LinearProbe, LinearProbeConfig};

/// `rows × classes` logits `x Wᵀ + b`; each dot product summed in feature order.
pub(crate) fn linear_logits(x: &[f32], d: usize, w: &[f32], b: &[f32], classes: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len() / d * classes);
    for row in x.chunks_exact(d) {
        for (wc, &bc) in w.chunks_exact(d).zip(b) {
            out.push(bc + row.iter().zip(wc).fold(0.0f32, |s, (&a, &b)| s + a * b));
        }
    }
    out
}

/// CPU implementation of [`LinearProbe::fit`].
pub fn fit_linear_probe(
    features: &[f32],
    n: usize,
    d: usize,
    labels: &[u32],
    classes: usize,
    cfg: &LinearProbeConfig,
) -> Result<LinearProbe, OpError> {
    LinearProbe::fit_on(&Backend::Cpu, features, n, d, labels, classes, cfg)
}

/// CPU reference of [`crate::train_linear_head_on`] on checked inputs: per step, gather the
/// batch, logits, [`softmax_xent`], `gW = Gᵀ X` and `gb = Σ_rows G` (rows in batch order),
/// then Adam(W) on W and on b with the step's scaled learning rates.
pub(crate) fn train_linear_head(
    data: &CachedFeatures<'_>,
    w: &mut [f32],
    b: &mut [f32],
    steps: &HeadSteps,
    opt: &HeadOptimizer,
) -> Vec<f32> {
    let (d, classes) = (data.dim, data.classes);
    let (mut wm, mut wv) = (vec![0.0f32; w.len()], vec![0.0f32; w.len()]);
    let (mut bm, mut bv) = (vec![0.0f32; classes], vec![0.0f32; classes]);
    let mut gw = vec![0.0f32; w.len()];
    let mut gb = vec![0.0f32; classes];
    let batch_max = steps.batch_sizes.iter().copied().max().unwrap_or(0);
    let mut xb = Vec::with_capacity(batch_max * d);
    let mut yb = Vec::with_capacity(batch_max);
    let mut row_losses = Vec::with_capacity(steps.rows.len());
    let mut start = 0;
    for (i, (&bsz, &scale)) in steps.batch_sizes.iter().zip(&steps.lr_scale).enumerate() {
        xb.clear();
        yb.clear();
        for &r in &steps.rows[start..start + bsz] {
            xb.extend_from_slice(&data.values[r as usize * d..][..d]);
            yb.push(data.labels[r as usize]);
        }
        start += bsz;
        let logits = linear_logits(&xb, d, w, b, classes);
        let sx = softmax_xent(&logits, &yb, classes).expect("inputs checked by the caller");
        row_losses.extend_from_slice(&sx.row_losses);
        gw.iter_mut().for_each(|v| *v = 0.0);
        gb.iter_mut().for_each(|v| *v = 0.0);
        for (g_row, x_row) in sx.grad.chunks_exact(classes).zip(xb.chunks_exact(d)) {
            for (c, &gc) in g_row.iter().enumerate() {
                gb[c] += gc;
                for (acc, &xv) in gw[c * d..][..d].iter_mut().zip(x_row) {
                    *acc += gc * xv;
                }
            }
        }
        let step = i as u64 + 1;
        let (wcfg, bcfg) = (opt.weight.scaled(scale), opt.bias.scaled(scale));
        apply(
            w,
            &gw,
            &mut wm,
            &mut wv,
            &wcfg,
            AdamScalars::new(&wcfg, step),
        );
        apply(
            b,
            &gb,
            &mut bm,
            &mut bv,
            &bcfg,
            AdamScalars::new(&bcfg, step),
        );
    }
    row_losses
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::spec::epoch_order;

    /// `classes` well-separated Gaussian-ish blobs in `d` dimensions (deterministic).
    pub(crate) fn blobs(n: usize, d: usize, classes: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
        let u =
            |i: u64| (crate::cpu::sample_hash(seed, i) >> 11) as f32 / (1u64 << 53) as f32 - 0.5;
        let mut x = Vec::with_capacity(n * d);
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let c = i % classes;
            for j in 0..d {
                let centre = if j % classes == c { 3.0 } else { 0.0 };
                x.push(centre + 2.0 * u((i * d + j) as u64));
            }
            y.push(c as u32);
        }
        (x, y)
    }

    #[test]
    fn separable_blobs_reach_high_train_accuracy() {
        let (n, d, classes) = (600, 12, 5);
        let (x, y) = blobs(n, d, classes, 42);
        let cfg = LinearProbeConfig {
            epochs: 10,
            batch: 32,
            lr: 0.05,
            weight_decay: 1e-4,
            seed: 1,
        };
        let probe = fit_linear_probe(&x, n, d, &y, classes, &cfg).unwrap();
        let acc = probe.accuracy(&x, &y).unwrap();
        assert!(acc > 0.95, "train accuracy {acc}");
        assert_eq!(probe.loss_history.len(), 10);
        let (first, last) = (probe.loss_history[0], *probe.loss_history.last().unwrap());
        assert!(last < first * 0.5, "{:?}", probe.loss_history);
        assert!(
            first < (classes as f32).ln() + 1e-3,
            "starts at or below ln(classes)"
        );
    }

    #[test]
    fn deterministic_and_seed_sensitive() {
        let (x, y) = blobs(100, 4, 3, 9);
        let cfg = LinearProbeConfig {
            epochs: 2,
            batch: 7,
            lr: 0.01,
            weight_decay: 0.0,
            seed: 5,
        };
        let a = fit_linear_probe(&x, 100, 4, &y, 3, &cfg).unwrap();
        assert_eq!(a, fit_linear_probe(&x, 100, 4, &y, 3, &cfg).unwrap());
        let b = fit_linear_probe(&x, 100, 4, &y, 3, &LinearProbeConfig { seed: 6, ..cfg }).unwrap();
        assert_ne!(a.weights, b.weights);
    }

    #[test]
    fn one_full_batch_step_by_hand() {
        // Two points, zero init: logits 0, softmax ½, grad (½ - onehot)/2.
        // gW = [[-¼·1 + ¼·0], [¼·1 - ¼·0]] for x = [1, 0] (label 0), [0, 1]... use d = 1:
        // x = [1, -1], y = [0, 1]; g = [[-¼, ¼], [¼, -¼]]; gW = [-½, ½]; gb = [0, 0].
        // Adam step 1 moves each weight by lr·sign: w = [0.1, -0.1], b unchanged.
        let cfg = LinearProbeConfig {
            epochs: 1,
            batch: 2,
            lr: 0.1,
            weight_decay: 0.0,
            seed: 0,
        };
        let p = fit_linear_probe(&[1.0, -1.0], 2, 1, &[0, 1], 2, &cfg).unwrap();
        assert!(
            (p.weights[0] - 0.1).abs() < 1e-6 && (p.weights[1] + 0.1).abs() < 1e-6,
            "{p:?}"
        );
        assert_eq!(p.bias, vec![0.0, 0.0]);
        assert!((p.loss_history[0] - 2f32.ln()).abs() < 1e-6);
    }

    #[test]
    fn epoch_order_is_a_permutation() {
        let o = epoch_order(3, 1, 50);
        let mut s = o.clone();
        s.sort_unstable();
        assert_eq!(s, (0..50).collect::<Vec<u32>>());
        assert_ne!(o, epoch_order(3, 2, 50));
        assert_eq!(o, epoch_order(3, 1, 50));
    }

    #[test]
    fn invalid_inputs_are_errors() {
        let cfg = LinearProbeConfig {
            epochs: 1,
            batch: 0,
            lr: 0.1,
            weight_decay: 0.0,
            seed: 0,
        };
        assert!(fit_linear_probe(&[0.0; 4], 2, 2, &[0, 1], 2, &cfg).is_err());
        let cfg = LinearProbeConfig { batch: 1, ..cfg };
        assert!(fit_linear_probe(&[0.0; 4], 2, 2, &[0, 2], 2, &cfg).is_err());
        assert!(fit_linear_probe(&[0.0; 3], 2, 2, &[0, 1], 2, &cfg).is_err());
        assert!(fit_linear_probe(&[0.0; 4], 2, 2, &[0, 1], 2, &cfg).is_ok());
    }
}
