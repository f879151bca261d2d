//! Reference for `kernels/softmax_xent.cu`.

use crate::spec::{check_softmax, mean_loss, OpError, SoftmaxXent};

/// CPU reference of [`crate::softmax_xent`]: per row, `m = max x`, `s = Σ exp(x - m)`
/// (summed in class order), loss `ln s + m - x[label]`, gradient
/// `(exp(x - m) / s - onehot) / rows`.
pub fn softmax_xent(
    logits: &[f32],
    labels: &[u32],
    classes: usize,
) -> Result<SoftmaxXent, OpError> {
    check_softmax(logits, labels, classes)?;
    let rows = labels.len();
    let inv_batch = 1.0 / rows.max(1) as f32;
    let mut grad = vec![0.0f32; logits.len()];
    let mut row_losses = Vec::with_capacity(rows);
    for (r, &label) in labels.iter().enumerate() {
        let x = &logits[r * classes..][..classes];
        let g = &mut grad[r * classes..][..classes];
        let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let s: f32 = x.iter().map(|&v| (v - m).exp()).sum();
        for (c, (gc, &xc)) in g.iter_mut().zip(x).enumerate() {
            let target = if c == label as usize { 1.0 } else { 0.0 };
            *gc = ((xc - m).exp() / s - target) * inv_batch;
        }
        row_losses.push(s.ln() + m - x[label as usize]);
    }
    Ok(SoftmaxXent {
        loss: mean_loss(&row_losses),
        row_losses,
        grad,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Mean cross-entropy computed naively in f64: -log(exp(x_y) / Σ exp(x)).
    fn naive_loss(logits: &[f64], labels: &[u32], classes: usize) -> f64 {
        let rows = labels.len();
        (0..rows)
            .map(|r| {
                let x = &logits[r * classes..][..classes];
                let z: f64 = x.iter().map(|v| v.exp()).sum();
                -(x[labels[r] as usize].exp() / z).ln()
            })
            .sum::<f64>()
            / rows as f64
    }

    #[test]
    fn uniform_logits_by_hand() {
        let out = softmax_xent(&[0.0; 8], &[1, 3], 4).unwrap();
        assert!((out.loss - 4f32.ln()).abs() < 1e-6);
        // (1/4 - onehot) / 2
        let want = [0.125, -0.375, 0.125, 0.125, 0.125, 0.125, 0.125, -0.375];
        for (g, w) in out.grad.iter().zip(want) {
            assert!((g - w).abs() < 1e-7, "{:?}", out.grad);
        }
    }

    #[test]
    fn large_logits_are_stable() {
        let out = softmax_xent(&[1000.0, 0.0, -1000.0], &[0], 3).unwrap();
        assert!(out.loss.abs() < 1e-6 && out.grad.iter().all(|g| g.is_finite()));
        let out = softmax_xent(&[1000.0, 0.0], &[1], 2).unwrap();
        assert!((out.loss - 1000.0).abs() < 1e-3);
    }

    #[test]
    fn invalid_inputs_are_errors() {
        assert!(softmax_xent(&[0.0; 4], &[0, 2], 2).is_err());
        assert!(softmax_xent(&[0.0; 5], &[0, 1], 2).is_err());
        assert!(softmax_xent(&[], &[], 0).is_err());
        let empty = softmax_xent(&[], &[], 3).unwrap();
        assert_eq!(empty.loss, 0.0);
    }

    proptest! {
        #[test]
        fn loss_matches_naive_and_grad_matches_finite_differences(
            (classes, rows, logits, labels) in (1usize..6, 1usize..5).prop_flat_map(|(c, r)| (
                Just(c),
                Just(r),
                proptest::collection::vec(-4.0f32..4.0, c * r),
                proptest::collection::vec(0..c as u32, r),
            ))
        ) {
            let out = softmax_xent(&logits, &labels, classes).unwrap();
            let x64: Vec<f64> = logits.iter().map(|&v| f64::from(v)).collect();
            let naive = naive_loss(&x64, &labels, classes);
            prop_assert!((f64::from(out.loss) - naive).abs() < 1e-5, "{} vs {}", out.loss, naive);
            // Central differences of the naive f64 loss.
            let h = 1e-4;
            for i in 0..logits.len() {
                let mut plus = x64.clone();
                plus[i] += h;
                let mut minus = x64.clone();
                minus[i] -= h;
                let fd = (naive_loss(&plus, &labels, classes) - naive_loss(&minus, &labels, classes)) / (2.0 * h);
                prop_assert!((f64::from(out.grad[i]) - fd).abs() < 1e-5, "grad[{}] {} vs {}", i, out.grad[i], fd);
            }
            // Each row of the gradient sums to zero.
            for r in 0..rows {
                let s: f32 = out.grad[r * classes..][..classes].iter().sum();
                prop_assert!(s.abs() < 1e-6);
            }
        }
    }
}
