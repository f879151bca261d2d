//! Small-sample statistics for reports: mean and sample standard deviation, Student's t
//! quantiles, and paired-difference confidence intervals.
//!
//! A sweep has few seeds (often 3 to 10), so intervals use Student's t distribution with
//! `n - 1` degrees of freedom rather than the normal approximation. The t quantile is computed
//! by inverting the t CDF, which is written with the regularized incomplete beta function
//! (evaluated by its continued fraction, modified Lentz's method), so no table is needed and
//! any number of degrees of freedom works.

use serde::Serialize;

/// Mean and sample standard deviation (divisor `n - 1`) of `v`.
///
/// Matches the convention of the report summary: one value has standard deviation 0, and an
/// empty slice gives `(0.0, 0.0)`.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (mean, 0.0);
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// `ln Γ(x)` for `x > 0` (Lanczos approximation, g = 7, 9 terms; relative error about 1e-15).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEF: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 - x) = π / sin(πx).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = COEF[0];
    let t = x + G + 0.5;
    for (i, &c) in COEF.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Floor that keeps Lentz's method away from division by zero.
const TINY: f64 = 1e-300;

/// One step of Lentz's method with coefficient `aa`: updates `c` and `d` (clamped away
/// from zero) and returns the factor `c * d` the continued fraction is multiplied by.
fn lentz_step(aa: f64, c: &mut f64, d: &mut f64) -> f64 {
    *d = 1.0 + aa * *d;
    if d.abs() < TINY {
        *d = TINY;
    }
    *c = 1.0 + aa / *c;
    if c.abs() < TINY {
        *c = TINY;
    }
    *d = 1.0 / *d;
    *c * *d
}

/// Continued fraction of the incomplete beta function (modified Lentz's method).
fn beta_continued_fraction(a: f64, b: f64, x: f64) -> f64 {
    const MAX_ITER: usize = 100_000;
    const EPS: f64 = 1e-15;
    let qab = a + b;
    let qap = a + 1.0;
    let qam = a - 1.0;
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=MAX_ITER {
        let m = m as f64;
        let m2 = 2.0 * m;
        // Even step, then odd step.
        h *= lentz_step(m * (b - m) * x / ((qam + m2) * (a + m2)), &mut c, &mut d);
        let del = lentz_step(
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
            &mut c,
            &mut d,
        );
        h *= del;
        if (del - 1.0).abs() < EPS {
            break;
        }
    }
    h
}

/// The regularized incomplete beta function `I_x(a, b)` for `a, b > 0`, `0 <= x <= 1`.
fn incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    let front = ln_front.exp();
    // The continued fraction converges fast for x < (a + 1) / (a + b + 2); use the symmetry
    // I_x(a, b) = 1 - I_{1-x}(b, a) on the other side.
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_continued_fraction(a, b, x) / a
    } else {
        1.0 - front * beta_continued_fraction(b, a, 1.0 - x) / b
    }
}

/// Upper tail `P(T > t)` of Student's t with `df` degrees of freedom, for `t >= 0`.
fn t_upper_tail(t: f64, df: f64) -> f64 {
    0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
}

/// The `p` quantile of Student's t distribution with `df` degrees of freedom: the `t` with
/// `P(T <= t) = p`.
///
/// Computed by inverting the CDF `P(T > t) = I_{df/(df+t²)}(df/2, 1/2) / 2` by bisection to
/// full double precision. `student_t_quantile(0.975, 9)` is 2.2622 (the value in every t
/// table). Returns `-inf` for `p == 0`, `+inf` for `p == 1`, and NaN when `df == 0` or `p` is
/// outside `[0, 1]` or NaN.
pub fn student_t_quantile(p: f64, df: usize) -> f64 {
    if df == 0 || p.is_nan() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    if p == 0.5 {
        return 0.0;
    }
    if p < 0.5 {
        return -student_t_quantile(1.0 - p, df);
    }
    let df = df as f64;
    let tail = 1.0 - p;
    // Bracket: the upper tail falls from 1/2 at t = 0; grow `hi` until it is below `tail`.
    let mut lo = 0.0_f64;
    let mut hi = 2.0_f64;
    while t_upper_tail(hi, df) > tail {
        lo = hi;
        hi *= 2.0;
        if !hi.is_finite() {
            return f64::INFINITY;
        }
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if t_upper_tail(mid, df) > tail {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// The mean paired difference `a[i] - b[i]` with its 95 % two-sided Student-t confidence
/// interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PairedDifference {
    /// Mean of `a[i] - b[i]`.
    pub mean: f64,
    /// Lower end of the 95 % confidence interval of the mean difference.
    pub ci_low: f64,
    /// Upper end of the 95 % confidence interval of the mean difference.
    pub ci_high: f64,
    /// Number of pairs.
    pub n: usize,
}

impl PairedDifference {
    /// Whether the interval excludes zero: the difference is distinguishable from noise at
    /// the 5 % level (two-sided).
    pub fn excludes_zero(&self) -> bool {
        self.ci_low > 0.0 || self.ci_high < 0.0
    }
}

/// The paired difference `a - b` (pairs matched by index, e.g. the same seed and k-shot set)
/// with a 95 % two-sided t interval over `n - 1` degrees of freedom:
/// `mean ± t_{0.975, n-1} · s / √n`, where `s` is the sample standard deviation of the
/// differences.
///
/// Returns `None` when there are fewer than two pairs (no spread to estimate), when the
/// slices differ in length (the pairing would be ambiguous), or when a value is not finite.
pub fn paired_difference(a: &[f64], b: &[f64]) -> Option<PairedDifference> {
    if a.len() != b.len() || a.len() < 2 {
        return None;
    }
    let diffs: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    if diffs.iter().any(|d| !d.is_finite()) {
        return None;
    }
    let n = diffs.len();
    let (mean, std) = mean_std(&diffs);
    let half = student_t_quantile(0.975, n - 1) * std / (n as f64).sqrt();
    Some(PairedDifference {
        mean,
        ci_low: mean - half,
        ci_high: mean + half,
        n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_std_uses_n_minus_one() {
        let (m, s) = mean_std(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert!((m - 5.0).abs() < 1e-12);
        // Sum of squared deviations is 32; 32 / 7.
        assert!((s - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert_eq!(mean_std(&[3.0]), (3.0, 0.0));
        assert_eq!(mean_std(&[]), (0.0, 0.0));
    }

    #[test]
    fn ln_gamma_matches_factorials_and_half() {
        for (n, fact) in [(1.0, 1.0), (2.0, 1.0), (5.0, 24.0), (11.0, 3_628_800.0)] {
            assert!((ln_gamma(n) - f64::ln(fact)).abs() < 1e-12, "n = {n}");
        }
        // Γ(1/2) = √π.
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
    }

    #[test]
    fn t_quantiles_match_published_tables() {
        // t_{0.975, df} from standard tables (4 decimals).
        for (df, want) in [
            (1, 12.7062),
            (2, 4.3027),
            (3, 3.1824),
            (4, 2.7764),
            (9, 2.2622),
            (29, 2.0452),
            (120, 1.9799),
        ] {
            let got = student_t_quantile(0.975, df);
            assert!((got - want).abs() < 1e-4, "df {df}: {got} vs {want}");
        }
        // Other levels: t_{0.95, 10} = 1.8125, t_{0.995, 5} = 4.0321.
        assert!((student_t_quantile(0.95, 10) - 1.8125).abs() < 1e-4);
        assert!((student_t_quantile(0.995, 5) - 4.0321).abs() < 1e-4);
    }

    #[test]
    fn t_quantile_tends_to_the_normal_quantile() {
        let z = 1.959_963_984_540_054;
        let t = student_t_quantile(0.975, 1_000_000);
        assert!((t - z).abs() < 1e-5, "{t}");
        assert!(student_t_quantile(0.975, 1000) > t);
    }

    #[test]
    fn t_quantile_matches_closed_forms_for_one_and_two_df() {
        for p in [0.6, 0.75, 0.9, 0.975, 0.999, 0.05, 0.3] {
            // df = 1 is the Cauchy distribution.
            let cauchy = (std::f64::consts::PI * (p - 0.5)).tan();
            let got = student_t_quantile(p, 1);
            assert!((got - cauchy).abs() < 1e-9 * cauchy.abs().max(1.0), "p {p}");
            let two = (2.0 * p - 1.0) / (2.0 * p * (1.0 - p)).sqrt();
            let got = student_t_quantile(p, 2);
            assert!((got - two).abs() < 1e-9 * two.abs().max(1.0), "p {p}");
        }
    }

    #[test]
    fn t_quantile_edges() {
        assert_eq!(student_t_quantile(0.5, 7), 0.0);
        assert!((student_t_quantile(0.025, 4) + 2.7764).abs() < 1e-4);
        assert!(student_t_quantile(0.975, 0).is_nan());
        assert!(student_t_quantile(1.5, 3).is_nan());
        assert!(student_t_quantile(f64::NAN, 3).is_nan());
        assert_eq!(student_t_quantile(1.0, 3), f64::INFINITY);
        assert_eq!(student_t_quantile(0.0, 3), f64::NEG_INFINITY);
    }

    #[test]
    fn paired_difference_interval_by_hand() {
        // Differences 0.1, 0.2, 0.3: mean 0.2, s = 0.1, n = 3, t_{0.975,2} = 4.302653.
        let a = [0.7, 0.8, 0.9];
        let b = [0.6, 0.6, 0.6];
        let d = paired_difference(&a, &b).unwrap();
        assert_eq!(d.n, 3);
        assert!((d.mean - 0.2).abs() < 1e-12);
        let half = 4.302_652_729_749_464 * 0.1 / 3f64.sqrt();
        assert!((d.ci_low - (0.2 - half)).abs() < 1e-9, "{d:?}");
        assert!((d.ci_high - (0.2 + half)).abs() < 1e-9, "{d:?}");
        // half ≈ 0.248 > 0.2: three seeds this noisy cannot rule out no effect.
        assert!(!d.excludes_zero());
        // Differences 0.19, 0.20, 0.21 (s = 0.01): the interval is ±0.0248 and excludes 0.
        let d = paired_difference(&[0.69, 0.8, 0.91], &[0.5, 0.6, 0.7]).unwrap();
        assert!(
            (d.ci_high - d.ci_low - 2.0 * 4.302_652_729_749_464 * 0.01 / 3f64.sqrt()).abs() < 1e-9
        );
        assert!(d.excludes_zero());
    }

    #[test]
    fn paired_difference_needs_two_matched_pairs() {
        assert_eq!(paired_difference(&[0.5], &[0.4]), None);
        assert_eq!(paired_difference(&[], &[]), None);
        assert_eq!(paired_difference(&[0.5, 0.6], &[0.4]), None);
        assert_eq!(paired_difference(&[0.5, f64::NAN], &[0.4, 0.4]), None);
        // Identical differences: zero-width interval.
        let d = paired_difference(&[0.5, 0.6], &[0.4, 0.5]).unwrap();
        assert!((d.ci_high - d.ci_low).abs() < 1e-12);
        // A noisy difference straddles zero.
        let d = paired_difference(&[0.5, 0.7], &[0.6, 0.6]).unwrap();
        assert!(!d.excludes_zero());
    }
}
