//! Learning-rate schedules: a multiplier in `(0, 1]` applied at every step on top of the
//! per-parameter learning rates of a [`crate::train::TrainPlan`].
//!
//! Step `t` counts optimiser updates from 0 (the first update uses `multiplier(0, total)`).

use std::f64::consts::PI;

use crate::TransferError;

/// Default fraction of the steps spent warming up in [`LrSchedule::WarmupCosine`].
pub const WARMUP_FRACTION: f32 = 0.1;
/// Default fraction of the steps spent rising in [`LrSchedule::OneCycle`] (PyTorch's 0.3).
pub const ONE_CYCLE_PCT_START: f32 = 0.3;

/// How the learning rate changes over a run. Parsed from `constant`, `cosine[:WARMUP]`
/// (warm-up fraction) or `one-cycle[:PCT_START]`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum LrSchedule {
    /// The per-parameter rates throughout (PROTOCOLS.md's default).
    #[default]
    Constant,
    /// Linear warm-up over the first `warmup * total` steps, `(t + 1) / w`, then cosine
    /// decay to zero: `(1 + cos(pi (t - w) / (total - w))) / 2`.
    WarmupCosine {
        /// Fraction of the steps spent warming up, in `[0, 1)`.
        warmup: f32,
    },
    /// Smith's one-cycle policy as PyTorch's `OneCycleLR` (cosine annealing, two phases):
    /// from `1/div_factor` up to 1 over the first `pct_start` of the steps, then down to
    /// `1/(div_factor * final_div_factor)` at the last step.
    OneCycle {
        /// Fraction of the steps spent rising.
        pct_start: f32,
        /// Initial rate = peak / `div_factor` (PyTorch: 25).
        div_factor: f32,
        /// Final rate = initial / `final_div_factor` (PyTorch: 1e4).
        final_div_factor: f32,
    },
}

impl LrSchedule {
    /// PyTorch's `OneCycleLR` defaults.
    pub const ONE_CYCLE: LrSchedule = LrSchedule::OneCycle {
        pct_start: ONE_CYCLE_PCT_START,
        div_factor: 25.0,
        final_div_factor: 1e4,
    };

    /// The factor on every learning rate at update `step` (0-based) of `total`.
    pub fn multiplier(&self, step: usize, total: usize) -> f32 {
        let (t, n) = (step as f64, total.max(1) as f64);
        let m = match *self {
            LrSchedule::Constant => return 1.0,
            LrSchedule::WarmupCosine { warmup } => {
                let w = (warmup as f64 * n).round();
                if t < w {
                    (t + 1.0) / w
                } else {
                    let span = (n - w).max(1.0);
                    0.5 * (1.0 + (PI * ((t - w) / span).min(1.0)).cos())
                }
            }
            LrSchedule::OneCycle {
                pct_start,
                div_factor,
                final_div_factor,
            } => {
                let initial = 1.0 / div_factor as f64;
                let min = initial / final_div_factor as f64;
                let up_end = pct_start as f64 * n - 1.0;
                let down_end = n - 1.0;
                let anneal = |from: f64, to: f64, pct: f64| {
                    to + (from - to) / 2.0 * (1.0 + (PI * pct.clamp(0.0, 1.0)).cos())
                };
                if t <= up_end {
                    anneal(initial, 1.0, if up_end > 0.0 { t / up_end } else { 1.0 })
                } else {
                    let span = down_end - up_end;
                    anneal(1.0, min, if span > 0.0 { (t - up_end) / span } else { 1.0 })
                }
            }
        };
        m as f32
    }
}

impl std::fmt::Display for LrSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            LrSchedule::Constant => f.write_str("constant"),
            LrSchedule::WarmupCosine { warmup } => write!(f, "cosine:{warmup}"),
            LrSchedule::OneCycle { pct_start, .. } => write!(f, "one-cycle:{pct_start}"),
        }
    }
}

impl std::str::FromStr for LrSchedule {
    type Err = TransferError;
    /// `constant`, `cosine`, `cosine:WARMUP`, `one-cycle` or `one-cycle:PCT_START`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            TransferError::Config(format!(
                "unknown schedule `{s}`: expected constant, cosine[:WARMUP_FRACTION] or \
                 one-cycle[:PCT_START] (fractions in [0, 1), e.g. cosine:0.1)"
            ))
        };
        let (name, param) = match s.split_once(':') {
            Some((n, p)) => (n, Some(p.parse::<f32>().map_err(|_| bad())?)),
            None => (s, None),
        };
        if param.is_some_and(|p| !(0.0..1.0).contains(&p)) {
            return Err(bad());
        }
        Ok(match (name, param) {
            ("constant", None) => LrSchedule::Constant,
            ("cosine", w) => LrSchedule::WarmupCosine {
                warmup: w.unwrap_or(WARMUP_FRACTION),
            },
            ("one-cycle", p) => match LrSchedule::ONE_CYCLE {
                LrSchedule::OneCycle {
                    div_factor,
                    final_div_factor,
                    ..
                } => LrSchedule::OneCycle {
                    pct_start: p.unwrap_or(ONE_CYCLE_PCT_START),
                    div_factor,
                    final_div_factor,
                },
                other => other,
            },
            _ => return Err(bad()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::LrSchedule;

    fn close(a: f32, b: f64) {
        assert!((a as f64 - b).abs() < 1e-6, "{a} vs {b}");
    }

    #[test]
    fn constant_is_exactly_one() {
        assert_eq!(LrSchedule::Constant.multiplier(17, 100), 1.0);
    }

    /// 100 steps, 10 of warm-up: 1/10 at step 0, 1 at step 9, then half a cosine.
    #[test]
    fn warmup_cosine_matches_its_closed_form() {
        let s: LrSchedule = "cosine:0.1".parse().unwrap();
        close(s.multiplier(0, 100), 0.1);
        close(s.multiplier(4, 100), 0.5);
        close(s.multiplier(9, 100), 1.0);
        close(s.multiplier(10, 100), 1.0);
        // Halfway through the decay (t - w = 45 of 90): cos(pi/2) = 0.
        close(s.multiplier(55, 100), 0.5);
        close(
            s.multiplier(40, 100),
            0.5 * (1.0 + (std::f64::consts::PI / 3.0).cos()),
        );
        close(
            s.multiplier(99, 100),
            0.5 * (1.0 + (std::f64::consts::PI * 89.0 / 90.0).cos()),
        );
    }

    /// PyTorch's OneCycleLR(max_lr=1, total_steps=100): phase ends at 29 and 99; initial
    /// 1/25 = 0.04, minimum 0.04 / 1e4 = 4e-6.
    #[test]
    fn one_cycle_matches_pytorch_closed_form() {
        let s: LrSchedule = "one-cycle".parse().unwrap();
        let cos = |from: f64, to: f64, pct: f64| {
            to + (from - to) / 2.0 * (1.0 + (std::f64::consts::PI * pct).cos())
        };
        close(s.multiplier(0, 100), 0.04);
        close(s.multiplier(10, 100), cos(0.04, 1.0, 10.0 / 29.0));
        close(s.multiplier(29, 100), 1.0);
        close(s.multiplier(50, 100), cos(1.0, 4e-6, 21.0 / 70.0));
        close(s.multiplier(99, 100), 4e-6);
        // The peak is the largest value.
        let peak = (0..100).map(|t| s.multiplier(t, 100)).fold(0.0, f32::max);
        close(peak, 1.0);
    }

    #[test]
    fn names_parse_and_bad_ones_are_refused() {
        for name in ["constant", "cosine:0.1", "one-cycle:0.3"] {
            let s: LrSchedule = name.parse().unwrap();
            assert_eq!(s.to_string(), name);
        }
        for bad in ["linear", "cosine:1.5", "one-cycle:-0.1", "constant:0.2"] {
            assert!(bad.parse::<LrSchedule>().is_err(), "{bad}");
        }
    }
}
