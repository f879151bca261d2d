//! Optimisers over named parameters, with one learning rate per parameter: Adam (Kingma &
//! Ba, 2015), AdamW (decoupled weight decay, Loshchilov & Hutter, 2019) and SGD with
//! momentum (PyTorch's formulation), chosen by name (`adam`, `adamw`, `sgd`).
//!
//! graft owns its optimiser (rather than dfdx's) so that parameter groups (backbone and
//! head at different rates, frozen blocks) and the optimiser state are plain data: the
//! training-state files of [`crate::state`] save and restore it exactly.

use std::collections::HashMap;

use dfdx::tensor::{Cpu, Gradients};
use graft_nn::{NnError, Parameters};

use crate::TransferError;

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

/// AdamW's default decoupled weight decay (PyTorch's `torch.optim.AdamW`).
pub const ADAMW_WEIGHT_DECAY: f32 = 0.01;
/// SGD's default momentum.
pub const SGD_MOMENTUM: f32 = 0.9;
/// SGD's default factor on every per-parameter learning rate: the rates of PROTOCOLS.md
/// are Adam's, and plain SGD needs steps about ten times larger.
pub const SGD_LR_SCALE: f32 = 10.0;

/// SGD with momentum, as `torch.optim.SGD` (dampening 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdConfig {
    /// Momentum `mu` (0 for plain SGD).
    pub momentum: f32,
    /// L2 weight decay added to the gradient (`g += wd * w`).
    pub weight_decay: f32,
    /// Nesterov momentum (`g + mu * buf` instead of `buf`).
    pub nesterov: bool,
    /// Factor on every per-parameter learning rate.
    pub lr_scale: f32,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self {
            momentum: SGD_MOMENTUM,
            weight_decay: 0.0,
            nesterov: false,
            lr_scale: SGD_LR_SCALE,
        }
    }
}

/// Which optimiser, with its hyper-parameters. Parsed from `adam`, `adamw[:WEIGHT_DECAY]`
/// or `sgd[:MOMENTUM]`; the default is Adam (PROTOCOLS.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptimizerConfig {
    /// Adam.
    Adam(AdamConfig),
    /// AdamW: Adam plus `w *= 1 - lr * weight_decay` before each update.
    AdamW {
        /// Adam's moments.
        adam: AdamConfig,
        /// Decoupled weight decay.
        weight_decay: f32,
    },
    /// SGD with momentum.
    Sgd(SgdConfig),
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig::Adam(AdamConfig::default())
    }
}

impl From<AdamConfig> for OptimizerConfig {
    fn from(c: AdamConfig) -> Self {
        OptimizerConfig::Adam(c)
    }
}

impl OptimizerConfig {
    /// The optimiser's name: `adam`, `adamw` or `sgd`.
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerConfig::Adam(_) => "adam",
            OptimizerConfig::AdamW { .. } => "adamw",
            OptimizerConfig::Sgd(_) => "sgd",
        }
    }
}

impl std::fmt::Display for OptimizerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OptimizerConfig::AdamW { weight_decay, .. } => write!(f, "adamw:{weight_decay}"),
            OptimizerConfig::Sgd(s) => write!(f, "sgd:{}", s.momentum),
            OptimizerConfig::Adam(_) => f.write_str("adam"),
        }
    }
}

impl std::str::FromStr for OptimizerConfig {
    type Err = TransferError;
    /// `adam`, `adamw`, `adamw:WEIGHT_DECAY`, `sgd` or `sgd:MOMENTUM`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            TransferError::Config(format!(
                "unknown optimizer `{s}`: expected adam, adamw[:WEIGHT_DECAY] or sgd[:MOMENTUM] \
                 (e.g. adamw:0.01, sgd:0.9)"
            ))
        };
        let (name, param) = match s.split_once(':') {
            Some((n, p)) => (n, Some(p.parse::<f32>().map_err(|_| bad())?)),
            None => (s, None),
        };
        if param.is_some_and(|p| !p.is_finite() || p < 0.0) {
            return Err(bad());
        }
        Ok(match (name, param) {
            ("adam", None) => OptimizerConfig::Adam(AdamConfig::default()),
            ("adamw", wd) => OptimizerConfig::AdamW {
                adam: AdamConfig::default(),
                weight_decay: wd.unwrap_or(ADAMW_WEIGHT_DECAY),
            },
            ("sgd", mu) if mu.map_or(true, |m| m < 1.0) => OptimizerConfig::Sgd(SgdConfig {
                momentum: mu.unwrap_or(SGD_MOMENTUM),
                ..SgdConfig::default()
            }),
            _ => return Err(bad()),
        })
    }
}

/// Adds a regulariser's gradient: `(parameter name, weights, gradient to add to)`.
pub type GradientHook<'a> = dyn Fn(&str, &[f32], &mut [f32]) + 'a;

/// One parameter's optimiser state.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Moments {
    /// Updates applied to this parameter (its bias correction counts these, as PyTorch's
    /// per-parameter `step`).
    pub(crate) t: u32,
    /// Adam's first moment, or SGD's momentum buffer.
    pub(crate) m: Vec<f32>,
    /// Adam's second moment (empty for SGD).
    pub(crate) v: Vec<f32>,
}

/// An optimiser with per-parameter learning rates chosen by name at every step.
#[derive(Debug, Clone, Default)]
pub struct Optimizer {
    config: OptimizerConfig,
    pub(crate) step: u32,
    pub(crate) state: HashMap<String, Moments>,
    buf: Vec<f32>,
    gbuf: Vec<f32>,
}

/// The optimiser under its historical name (it is Adam unless configured otherwise).
pub type Adam = Optimizer;

impl Optimizer {
    /// A fresh optimiser.
    pub fn new(config: impl Into<OptimizerConfig>) -> Self {
        Self {
            config: config.into(),
            ..Self::default()
        }
    }

    /// The configuration.
    pub fn config(&self) -> OptimizerConfig {
        self.config
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

    /// [`Optimizer::update`] with `extra(name, weights, grad)` adding to each gradient
    /// first (a regulariser's analytic gradient, e.g. L2-SP).
    pub fn update_with(
        &mut self,
        model: &mut impl Parameters,
        grads: &mut Gradients<f32, Cpu>,
        lr_for: &dyn Fn(&str) -> Option<f32>,
        extra: &GradientHook<'_>,
    ) -> Result<(), NnError> {
        self.step += 1;
        let config = self.config;
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
                t: 0,
                m: vec![0.0; n],
                v: match config {
                    OptimizerConfig::Sgd(_) => Vec::new(),
                    _ => vec![0.0; n],
                },
            });
            mom.t += 1;
            buf.resize(n, 0.0);
            p.read_into(buf);
            gbuf.clear();
            gbuf.extend_from_slice(g);
            extra(name, buf, gbuf);
            match config {
                OptimizerConfig::Adam(a) => adam_step(a, 1.0, lr, mom, buf, gbuf),
                OptimizerConfig::AdamW { adam, weight_decay } => {
                    adam_step(adam, 1.0 - lr * weight_decay, lr, mom, buf, gbuf)
                }
                OptimizerConfig::Sgd(s) => sgd_step(s, lr * s.lr_scale, mom, buf, gbuf),
            }
            p.write_from(buf);
        });
        result
    }
}

/// One Adam(W) pass: `w = w * decay - lr * m_hat / (sqrt(v_hat) + eps)`.
fn adam_step(a: AdamConfig, decay: f32, lr: f32, mom: &mut Moments, w: &mut [f32], g: &[f32]) {
    let AdamConfig { beta1, beta2, eps } = a;
    let t = mom.t as i32;
    let (c1, c2) = (1.0 - beta1.powi(t), 1.0 - beta2.powi(t));
    let (m, v) = (&mut mom.m[..w.len()], &mut mom.v[..w.len()]);
    for i in 0..w.len() {
        let gi = g[i];
        m[i] = beta1 * m[i] + (1.0 - beta1) * gi;
        v[i] = beta2 * v[i] + (1.0 - beta2) * gi * gi;
        let m_hat = m[i] / c1;
        let v_hat = v[i] / c2;
        w[i] = w[i] * decay - lr * m_hat / (v_hat.sqrt() + eps);
    }
}

/// One SGD pass (PyTorch): `g += wd w`; `buf = g` at the first step, else `mu buf + g`;
/// `w -= lr (nesterov ? g + mu buf : buf)`.
fn sgd_step(s: SgdConfig, lr: f32, mom: &mut Moments, w: &mut [f32], g: &[f32]) {
    let (mu, wd, first) = (s.momentum, s.weight_decay, mom.t == 1);
    let buf = &mut mom.m[..w.len()];
    for i in 0..w.len() {
        let gi = g[i] + wd * w[i];
        buf[i] = if first { gi } else { mu * buf[i] + gi };
        let d = if s.nesterov { gi + mu * buf[i] } else { buf[i] };
        w[i] -= lr * d;
    }
}

#[cfg(test)]
mod tests {
    use super::{AdamConfig, Optimizer, OptimizerConfig, SgdConfig};
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

    /// Runs `steps` updates of `config` on loss = sum(w^2) from [1, -2] with learning rates
    /// `lrs[t]`, returning the weights.
    fn run(config: OptimizerConfig, lrs: &[f32]) -> Vec<f32> {
        let dev = Cpu::default();
        let mut p = One(dev.tensor([1.0f32, -2.0]));
        let mut opt = Optimizer::new(config);
        for &lr in lrs {
            let loss = p.0.leaky_trace().square().sum();
            let mut grads = loss.backward();
            opt.update(&mut p, &mut grads, &|_| Some(lr)).unwrap();
        }
        p.0.as_vec()
    }

    fn assert_close(got: &[f32], expect: &[f64]) {
        for (g, e) in got.iter().zip(expect) {
            assert!((*g as f64 - e).abs() < 1e-5, "{got:?} vs {expect:?}");
        }
    }

    /// Textbook Adam(W) in f64: `decay` is AdamW's weight decay (0 for Adam).
    fn adam_f64(lrs: &[f32], wd: f64) -> Vec<f64> {
        let mut w = [1.0f64, -2.0];
        let (mut m, mut v) = ([0.0f64; 2], [0.0f64; 2]);
        for (t, &lr) in lrs.iter().enumerate() {
            let (lr, t) = (lr as f64, t as i32 + 1);
            for i in 0..2 {
                let g = 2.0 * w[i];
                w[i] *= 1.0 - lr * wd;
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.999 * v[i] + 0.001 * g * g;
                let mh = m[i] / (1.0 - 0.9f64.powi(t));
                let vh = v[i] / (1.0 - 0.999f64.powi(t));
                w[i] -= lr * mh / (vh.sqrt() + 1e-8);
            }
        }
        w.to_vec()
    }

    /// Adam on loss = sum(w^2) against the closed form written out by hand.
    #[test]
    fn adam_matches_hand_computed_steps() {
        let lrs = [0.1, 0.05, 0.1];
        assert_close(
            &run(AdamConfig::default().into(), &lrs),
            &adam_f64(&lrs, 0.0),
        );
    }

    /// AdamW decays the weights by `lr * wd` before Adam's step (Loshchilov & Hutter).
    #[test]
    fn adamw_matches_hand_computed_steps() {
        let lrs = [0.1, 0.05, 0.1];
        let cfg = OptimizerConfig::AdamW {
            adam: AdamConfig::default(),
            weight_decay: 0.5,
        };
        let got = run(cfg, &lrs);
        assert_close(&got, &adam_f64(&lrs, 0.5));
        // The decay is not Adam's: it changes the result.
        let plain = adam_f64(&lrs, 0.0);
        assert!((got[0] as f64 - plain[0]).abs() > 1e-3);
    }

    /// PyTorch's SGD: the buffer starts at the first gradient, then `mu buf + g`.
    #[test]
    fn sgd_momentum_matches_hand_computed_steps() {
        for nesterov in [false, true] {
            let cfg = SgdConfig {
                momentum: 0.9,
                weight_decay: 0.1,
                nesterov,
                lr_scale: 2.0,
            };
            let lrs = [0.05f32, 0.05, 0.025];
            let mut w = [1.0f64, -2.0];
            let mut buf = [0.0f64; 2];
            for (t, &lr) in lrs.iter().enumerate() {
                for i in 0..2 {
                    let g = 2.0 * w[i] + 0.1 * w[i];
                    buf[i] = if t == 0 { g } else { 0.9 * buf[i] + g };
                    let d = if nesterov { g + 0.9 * buf[i] } else { buf[i] };
                    w[i] -= 2.0 * lr as f64 * d;
                }
            }
            assert_close(&run(OptimizerConfig::Sgd(cfg), &lrs), &w);
        }
    }

    #[test]
    fn frozen_parameters_stay_bit_identical() {
        for cfg in ["adam", "adamw", "sgd"] {
            let dev = Cpu::default();
            let mut p = One(dev.tensor([0.3f32, 0.7]));
            let before = p.0.as_vec();
            let loss = p.0.leaky_trace().square().sum();
            let mut grads = loss.backward();
            Optimizer::new(cfg.parse::<OptimizerConfig>().unwrap())
                .update(&mut p, &mut grads, &|_| None)
                .unwrap();
            assert_eq!(p.0.as_vec(), before, "{cfg}");
        }
    }

    #[test]
    fn names_parse_and_bad_names_are_refused() {
        let ok = |s: &str| s.parse::<OptimizerConfig>().unwrap();
        assert_eq!(ok("adam"), OptimizerConfig::default());
        assert!(
            matches!(ok("adamw:0.05"), OptimizerConfig::AdamW { weight_decay, .. } if weight_decay == 0.05)
        );
        assert!(matches!(ok("sgd"), OptimizerConfig::Sgd(s) if s.momentum == 0.9));
        assert_eq!(ok("sgd:0.5").to_string(), "sgd:0.5");
        for bad in ["lion", "adam:1", "sgd:1.5", "adamw:-1", "adamw:x"] {
            let e = bad.parse::<OptimizerConfig>().unwrap_err().to_string();
            assert!(e.contains("expected adam"), "{bad}: {e}");
        }
    }
}
