//! Adam (Kingma & Ba, 2015) over named parameters, with one learning rate per parameter.
//!
//! graft owns its optimiser (rather than dfdx's) so that parameter groups (backbone and
//! head at different rates, frozen blocks) and the optimiser state are plain data.

use std::collections::HashMap;

use dfdx::tensor::{Cpu, Gradients};
use graft_nn::{NnError, Parameters};

/// Adam's hyper-parameters; the defaults are PyTorch's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// Exponential decay of the first moment.
    pub beta1: f32,
    /// Exponential decay of the second moment.
    pub beta2: f32,
    /// Added to the denominator for stability.
    pub eps: f32,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// Adds a regulariser's gradient: `(parameter name, weights, gradient to add to)`.
pub type GradientHook<'a> = dyn Fn(&str, &[f32], &mut [f32]) + 'a;

#[derive(Debug, Clone, Default)]
struct Moments {
    m: Vec<f32>,
    v: Vec<f32>,
}

/// Adam with per-parameter learning rates chosen by name at every step.
#[derive(Debug, Clone, Default)]
pub struct Adam {
    config: AdamConfig,
    step: u32,
    state: HashMap<String, Moments>,
    buf: Vec<f32>,
    gbuf: Vec<f32>,
}

impl Adam {
    /// A fresh optimiser.
    pub fn new(config: AdamConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// Number of updates applied so far.
    pub fn steps(&self) -> u32 {
        self.step
    }

    /// Applies one update. `lr_for(name)` gives each parameter's learning rate, or `None`
    /// to leave it untouched (frozen: its values stay bit-identical).
    pub fn update(
        &mut self,
        model: &mut impl Parameters,
        grads: &mut Gradients<f32, Cpu>,
        lr_for: &dyn Fn(&str) -> Option<f32>,
    ) -> Result<(), NnError> {
        self.update_with(model, grads, lr_for, &|_, _, _| {})
    }

    /// [`Adam::update`] with `extra(name, weights, grad)` adding to each gradient first
    /// (a regulariser's analytic gradient, e.g. L2-SP).
    pub fn update_with(
        &mut self,
        model: &mut impl Parameters,
        grads: &mut Gradients<f32, Cpu>,
        lr_for: &dyn Fn(&str) -> Option<f32>,
        extra: &GradientHook<'_>,
    ) -> Result<(), NnError> {
        self.step += 1;
        let AdamConfig { beta1, beta2, eps } = self.config;
        let t = self.step as i32;
        let (c1, c2) = (1.0 - beta1.powi(t), 1.0 - beta2.powi(t));
        let mut result = Ok(());
        let (state, buf, gbuf) = (&mut self.state, &mut self.buf, &mut self.gbuf);
        model.visit_params_mut(&mut |name, p| {
            let Some(lr) = lr_for(name) else { return };
            if result.is_err() {
                return;
            }
            let g = match p.grad(grads) {
                Ok(g) => g,
                Err(e) => {
                    result = Err(e);
                    return;
                }
            };
            let n = p.numel();
            let mom = state.entry(name.to_string()).or_insert_with(|| Moments {
                m: vec![0.0; n],
                v: vec![0.0; n],
            });
            buf.resize(n, 0.0);
            p.read_into(buf);
            gbuf.clear();
            gbuf.extend_from_slice(g);
            extra(name, buf, gbuf);
            for i in 0..n {
                let gi = gbuf[i];
                mom.m[i] = beta1 * mom.m[i] + (1.0 - beta1) * gi;
                mom.v[i] = beta2 * mom.v[i] + (1.0 - beta2) * gi * gi;
                let m_hat = mom.m[i] / c1;
                let v_hat = mom.v[i] / c2;
                buf[i] -= lr * m_hat / (v_hat.sqrt() + eps);
            }
            p.write_from(buf);
        });
        result
    }
}

#[cfg(test)]
mod tests {
    use super::{Adam, AdamConfig};
    use dfdx::prelude::{Cpu, Rank1, Tensor, TensorFrom, Trace};
    use dfdx::tensor_ops::{Backward, SumTo};
    use graft_nn::{Param, Parameters};

    struct One(Tensor<Rank1<2>, f32, Cpu>);
    impl Parameters for One {
        fn visit_params(&self, f: &mut dyn FnMut(&str, &dyn Param)) {
            f("w", &self.0)
        }
        fn visit_params_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn Param)) {
            f("w", &mut self.0)
        }
    }

    /// Two steps of Adam on loss = sum(w^2) against the closed form written out by hand.
    #[test]
    fn adam_matches_hand_computed_steps() {
        let dev = Cpu::default();
        let mut p = One(dev.tensor([1.0f32, -2.0]));
        let mut opt = Adam::new(AdamConfig::default());
        let mut expect = [1.0f64, -2.0];
        let (mut m, mut v) = ([0.0f64; 2], [0.0f64; 2]);
        for t in 1..=2 {
            let loss = p.0.leaky_trace().square().sum();
            let mut grads = loss.backward();
            opt.update(&mut p, &mut grads, &|_| Some(0.1)).unwrap();
            for i in 0..2 {
                let g = 2.0 * expect[i];
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.999 * v[i] + 0.001 * g * g;
                let mh = m[i] / (1.0 - 0.9f64.powi(t));
                let vh = v[i] / (1.0 - 0.999f64.powi(t));
                expect[i] -= 0.1 * mh / (vh.sqrt() + 1e-8);
            }
        }
        let got = p.0.as_vec();
        for i in 0..2 {
            assert!(
                (got[i] as f64 - expect[i]).abs() < 1e-5,
                "{got:?} vs {expect:?}"
            );
        }
    }

    #[test]
    fn frozen_parameters_stay_bit_identical() {
        let dev = Cpu::default();
        let mut p = One(dev.tensor([0.3f32, 0.7]));
        let before = p.0.as_vec();
        let loss = p.0.leaky_trace().square().sum();
        let mut grads = loss.backward();
        Adam::new(AdamConfig::default())
            .update(&mut p, &mut grads, &|_| None)
            .unwrap();
        assert_eq!(p.0.as_vec(), before);
    }
}
