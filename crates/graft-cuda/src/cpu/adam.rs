//! Reference for `kernels/adam.cu`.

use crate::spec::{check_adam, AdamConfig, AdamScalars, AdamState, OpError};

/// CPU reference of [`crate::adam_step`], element by element as in the kernel:
/// AdamW `p *= 1 - lr·wd` or Adam `g += wd·p`; `m = β1 m + (1-β1) g`;
/// `v = β2 v + (1-β2) g²`; `p -= lr/(1-β1^t) · m / (√v / √(1-β2^t) + eps)`.
pub fn adam_step(
    params: &mut [f32],
    grads: &[f32],
    state: &mut AdamState,
    cfg: &AdamConfig,
) -> Result<(), OpError> {
    check_adam(params, grads, state, cfg)?;
    state.step += 1;
    apply(
        params,
        grads,
        &mut state.m,
        &mut state.v,
        cfg,
        AdamScalars::new(cfg, state.step),
    );
    Ok(())
}

/// The update itself, on already-checked slices of equal length.
pub(crate) fn apply(
    params: &mut [f32],
    grads: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    cfg: &AdamConfig,
    k: AdamScalars,
) {
    let (b1, b2) = (cfg.beta1, cfg.beta2);
    for (((p, &g), m), v) in params.iter_mut().zip(grads).zip(m).zip(v) {
        let mut param = *p;
        let mut grad = g;
        if cfg.weight_decay != 0.0 {
            if cfg.decoupled {
                param *= k.decay;
            } else {
                grad += cfg.weight_decay * param;
            }
        }
        let mi = b1 * *m + (1.0 - b1) * grad;
        let vi = b2 * *v + (1.0 - b2) * grad * grad;
        *m = mi;
        *v = vi;
        let denom = vi.sqrt() / k.bc2_sqrt + cfg.eps;
        *p = param - k.step_size * (mi / denom);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn first_steps_by_hand() {
        // Step 1: m̂ = g, v̂ = g², so p -= lr · g / (|g| + eps) ≈ lr · sign(g).
        let mut p = vec![1.0f32, -2.0];
        let mut st = AdamState::new(2);
        adam_step(&mut p, &[0.5, -4.0], &mut st, &AdamConfig::adam(0.1)).unwrap();
        assert!(
            (p[0] - 0.9).abs() < 1e-6 && (p[1] + 1.9).abs() < 1e-6,
            "{p:?}"
        );
        assert_eq!(st.step, 1);
        assert!((st.m[0] - 0.05).abs() < 1e-7 && (st.v[0] - 0.000_25).abs() < 1e-8);

        // Step 2 with g = 0.25 for p[0], computed by hand:
        // m = 0.9·0.05 + 0.1·0.25 = 0.07, v = 0.999·0.00025 + 0.001·0.0625 = 0.00031225
        // m̂ = 0.07/0.19, v̂ = 0.00031225/0.001999, p = 0.9 - 0.1·m̂/(√v̂ + 1e-8)
        adam_step(&mut p, &[0.25, 0.0], &mut st, &AdamConfig::adam(0.1)).unwrap();
        let m_hat = 0.07f64 / 0.19;
        let v_hat = 0.000_312_25f64 / 0.001_999;
        let want = 0.9 - 0.1 * m_hat / (v_hat.sqrt() + 1e-8);
        assert!((f64::from(p[0]) - want).abs() < 1e-6, "{} vs {want}", p[0]);
    }

    #[test]
    fn adamw_decays_before_the_step_and_adam_adds_l2() {
        let mut p = vec![1.0f32];
        let mut st = AdamState::new(1);
        adam_step(&mut p, &[0.5], &mut st, &AdamConfig::adamw(0.1, 0.1)).unwrap();
        // p = 1·(1 - 0.1·0.1) - 0.1·0.5/(0.5 + 1e-8) = 0.99 - 0.1
        assert!((p[0] - 0.89).abs() < 1e-6, "{p:?}");

        let mut p = vec![1.0f32];
        let mut st = AdamState::new(1);
        let cfg = AdamConfig {
            weight_decay: 0.1,
            ..AdamConfig::adam(0.1)
        };
        adam_step(&mut p, &[-0.05], &mut st, &cfg).unwrap();
        // g = -0.05 + 0.1·1 = 0.05 > 0, so the step goes down by ≈ lr.
        assert!((p[0] - 0.9).abs() < 1e-6, "{p:?}");
        assert!((st.m[0] - 0.005).abs() < 1e-8);
    }

    #[test]
    fn mismatched_lengths_and_bad_config_are_errors() {
        let mut st = AdamState::new(2);
        assert!(adam_step(&mut [0.0; 2], &[0.0; 3], &mut st, &AdamConfig::default()).is_err());
        let bad = AdamConfig {
            beta1: 1.0,
            ..Default::default()
        };
        assert!(adam_step(&mut [0.0; 2], &[0.0; 2], &mut st, &bad).is_err());
        assert_eq!(st.step, 0, "a rejected step does not count");
    }

    /// Textbook Adam(W) in f64 (Kingma & Ba, Loshchilov & Hutter), written independently.
    fn textbook(p: &mut [f64], grads: &[Vec<f64>], lr: f64, wd: f64, decoupled: bool) {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        let mut m = vec![0.0; p.len()];
        let mut v = vec![0.0; p.len()];
        for (t, g) in grads.iter().enumerate() {
            let t = (t + 1) as i32;
            for i in 0..p.len() {
                let gi = if decoupled { g[i] } else { g[i] + wd * p[i] };
                if decoupled {
                    p[i] -= lr * wd * p[i];
                }
                m[i] = b1 * m[i] + (1.0 - b1) * gi;
                v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
                let m_hat = m[i] / (1.0 - b1.powi(t));
                let v_hat = v[i] / (1.0 - b2.powi(t));
                p[i] -= lr * m_hat / (v_hat.sqrt() + eps);
            }
        }
    }

    proptest! {
        #[test]
        fn matches_textbook_over_several_steps(
            init in proptest::collection::vec(-2.0f32..2.0, 1..8),
            seeds in proptest::collection::vec(any::<u64>(), 1..6),
            lr in 1e-3f32..0.1,
            wd in prop_oneof![Just(0.0f32), 1e-3f32..0.1],
            decoupled in any::<bool>(),
        ) {
            let n = init.len();
            let grads: Vec<Vec<f32>> = seeds.iter().map(|&s| {
                (0..n).map(|i| (crate::cpu::sample_hash(s, i as u64) % 2001) as f32 / 500.0 - 2.0).collect()
            }).collect();
            let cfg = AdamConfig { lr, weight_decay: wd, decoupled, ..Default::default() };
            let mut p = init.clone();
            let mut st = AdamState::new(n);
            for g in &grads {
                adam_step(&mut p, g, &mut st, &cfg).unwrap();
            }
            let mut want: Vec<f64> = init.iter().map(|&v| f64::from(v)).collect();
            let g64: Vec<Vec<f64>> = grads.iter().map(|g| g.iter().map(|&v| f64::from(v)).collect()).collect();
            textbook(&mut want, &g64, f64::from(lr), f64::from(wd), decoupled);
            for (a, b) in p.iter().zip(&want) {
                prop_assert!((f64::from(*a) - b).abs() < 1e-4 * (1.0 + b.abs()), "{} vs {}", a, b);
            }
        }
    }
}
