//! Special functions for the purchase models: log-gamma, log-beta, digamma and the
//! Gauss hypergeometric function 2F1 in log space.
//!
//! 2F1 is summed as its power series in log-scaled form, so values far beyond the
//! range of `f64` (Pareto/NBD with frequency in the hundreds) keep their logarithm,
//! and negative values (BG/NBD with a + b < 1 and frequency 0) keep their sign.

/// A real number stored as sign and natural logarithm of its magnitude.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SignedLog {
    /// `ln |value|`; `-inf` for zero.
    pub ln_abs: f64,
    /// `1.0`, `-1.0`, or `0.0` for zero.
    pub sign: f64,
}

impl SignedLog {
    /// Returns the value as an `f64`, which may overflow to infinity.
    pub fn value(self) -> f64 {
        self.sign * self.ln_abs.exp()
    }
}

/// Natural log of the gamma function for `x > 0`.
pub fn ln_gamma(x: f64) -> f64 {
    libm::lgamma(x)
}

/// Natural log of the beta function B(a, b) for `a, b > 0`.
pub fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// Digamma function psi(x) = d/dx ln Gamma(x) for `x > 0`.
///
/// Shifts `x` to at least 12 with psi(x) = psi(x + 1) - 1/x, then sums the
/// asymptotic series to the x^-10 term, whose remainder there is below 3e-15.
pub fn digamma(mut x: f64) -> f64 {
    let mut shift = 0.0;
    while x < 12.0 {
        shift -= 1.0 / x;
        x += 1.0;
    }
    let inv = 1.0 / x;
    let inv2 = inv * inv;
    // Bernoulli-number coefficients of the asymptotic expansion.
    let series = inv2
        * (1.0 / 12.0
            - inv2
                * (1.0 / 120.0
                    - inv2
                        * (1.0 / 252.0 - inv2 * (1.0 / 240.0 - inv2 * (1.0 / 132.0)))));
    shift + x.ln() - 0.5 * inv - series
}

/// Reason 2F1 could not be evaluated.
#[derive(Debug, Clone, PartialEq)]
pub enum Hyp2f1Error {
    /// `c` is zero or a negative integer, where 2F1 is undefined.
    PoleInC,
    /// `z` is outside [0, 1) after transformation, or an argument is not finite.
    OutOfDomain,
    /// The series did not converge within the term limit.
    NotConverged,
}

/// Most series terms summed before 2F1 gives up. Near z = 1 the terms shrink like
/// z^n, so about 40 / (1 - z) of them are needed for full precision: the limit
/// covers z up to about 1 - 4e-5 and bounds one call to a few milliseconds.
const MAX_TERMS: usize = 1_000_000;

/// Computes ln |2F1(a, b; c; z)| and its sign for real `a`, `b`, `c` and
/// `-inf < z < 1`.
///
/// For `z < 0` Pfaff's transformation maps the argument into (0, 1). Then either the
/// series itself or Euler's transformation 2F1(a, b; c; z) = (1 - z)^(c - a - b)
/// 2F1(c - a, c - b; c; z) is summed, whichever has the smaller numerator
/// parameters and so the faster-shrinking terms.
pub fn ln_hyp2f1(a: f64, b: f64, c: f64, z: f64) -> Result<SignedLog, Hyp2f1Error> {
    if !(a.is_finite() && b.is_finite() && c.is_finite() && z.is_finite()) || z >= 1.0 {
        return Err(Hyp2f1Error::OutOfDomain);
    }
    if c <= 0.0 && c == c.floor() {
        return Err(Hyp2f1Error::PoleInC);
    }
    if z == 0.0 {
        return Ok(SignedLog {
            ln_abs: 0.0,
            sign: 1.0,
        });
    }
    if z < 0.0 {
        // Pfaff: 2F1(a, b; c; z) = (1 - z)^(-a) 2F1(a, c - b; c; z / (z - 1)).
        let w = z / (z - 1.0);
        let inner = ln_hyp2f1_unit(a, c - b, c, w)?;
        return Ok(SignedLog {
            ln_abs: inner.ln_abs - a * (-z).ln_1p(),
            sign: inner.sign,
        });
    }
    ln_hyp2f1_unit(a, b, c, z)
}

/// 2F1 for 0 < z < 1: the series or its Euler transform.
fn ln_hyp2f1_unit(a: f64, b: f64, c: f64, z: f64) -> Result<SignedLog, Hyp2f1Error> {
    let direct_size = (a * b).abs();
    let euler_size = ((c - a) * (c - b)).abs();
    let terminates = |p: f64| p <= 0.0 && p == p.floor();
    if terminates(a) || terminates(b) || direct_size <= euler_size {
        return series(a, b, c, z);
    }
    let inner = series(c - a, c - b, c, z)?;
    Ok(SignedLog {
        ln_abs: inner.ln_abs + (c - a - b) * (-z).ln_1p(),
        sign: inner.sign,
    })
}

/// Sums the power series of 2F1 with rescaling, so huge terms keep their logarithm.
///
/// NOTE: z too close to 1 for [`MAX_TERMS`] fails at once with `NotConverged`, and
/// the score that needs it is NULL. The connection formula in 1 - z would cover
/// that range but is not implemented.
fn series(a: f64, b: f64, c: f64, z: f64) -> Result<SignedLog, Hyp2f1Error> {
    let terminates = |p: f64| p <= 0.0 && p == p.floor();
    if !(terminates(a) || terminates(b)) && 40.0 / (1.0 - z.abs()) > MAX_TERMS as f64 {
        return Err(Hyp2f1Error::NotConverged);
    }
    const RESCALE_ABOVE: f64 = 1e280;
    let mut term = 1.0_f64;
    let mut sum = 1.0_f64;
    // Compensation of Neumaier summation, for sums with terms of both signs.
    let mut compensation = 0.0_f64;
    let mut ln_scale = 0.0_f64;
    let mut small_in_a_row = 0;
    for n in 0..MAX_TERMS {
        let n = n as f64;
        let ratio = (a + n) * (b + n) / ((c + n) * (n + 1.0)) * z;
        term *= ratio;
        if term == 0.0 {
            break;
        }
        let next = sum + term;
        if sum.abs() >= term.abs() {
            compensation += (sum - next) + term;
        } else {
            compensation += (term - next) + sum;
        }
        sum = next;
        if sum.abs() > RESCALE_ABOVE || term.abs() > RESCALE_ABOVE {
            sum /= RESCALE_ABOVE;
            term /= RESCALE_ABOVE;
            compensation /= RESCALE_ABOVE;
            ln_scale += RESCALE_ABOVE.ln();
        }
        // Stop once terms are negligible and shrinking, checked over a few terms so
        // that a ratio close to 1 does not stop the sum early.
        let negligible = term.abs() <= 1e-17 * (sum + compensation).abs();
        if negligible && ratio.abs() < 1.0 {
            small_in_a_row += 1;
            if small_in_a_row >= 3 {
                let total = sum + compensation;
                return Ok(SignedLog {
                    ln_abs: total.abs().ln() + ln_scale,
                    sign: total.signum(),
                });
            }
        } else {
            small_in_a_row = 0;
        }
    }
    let total = sum + compensation;
    if term == 0.0 {
        return Ok(SignedLog {
            ln_abs: total.abs().ln() + ln_scale,
            sign: if total == 0.0 { 0.0 } else { total.signum() },
        });
    }
    Err(Hyp2f1Error::NotConverged)
}

/// Returns ln(exp(x) + exp(y)) without overflow.
pub fn ln_add_exp(x: f64, y: f64) -> f64 {
    if x == f64::NEG_INFINITY {
        return y;
    }
    if y == f64::NEG_INFINITY {
        return x;
    }
    let (high, low) = if x >= y { (x, y) } else { (y, x) };
    high + (low - high).exp().ln_1p()
}

/// Returns ln(exp(x) - exp(y)) for `x >= y`; `-inf` when they are equal.
pub fn ln_sub_exp(x: f64, y: f64) -> f64 {
    if y == f64::NEG_INFINITY {
        return x;
    }
    if x <= y {
        return f64::NEG_INFINITY;
    }
    x + (-(y - x).exp_m1()).ln()
}

/// Returns 1 / (1 + exp(u)) without overflow.
pub fn logistic_of_negative(u: f64) -> f64 {
    if u > 0.0 {
        let e = (-u).exp();
        e / (1.0 + e)
    } else {
        1.0 / (1.0 + u.exp())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64, relative: f64) -> bool {
        (actual - expected).abs() <= relative * expected.abs().max(f64::MIN_POSITIVE)
    }

    #[test]
    fn hyp2f1_elementary_cases() {
        // 2F1(1, 1; 2; z) = -ln(1 - z) / z.
        for z in [0.1, 0.5, 0.9, 0.999, -0.5, -3.0] {
            let value = ln_hyp2f1(1.0, 1.0, 2.0, z).unwrap().value();
            let expected = -(-z).ln_1p() / z;
            assert!(
                close(value, expected, 1e-13),
                "z {z}: {value} vs {expected}"
            );
        }
        // 2F1(a, b; b; z) = (1 - z)^(-a).
        let value = ln_hyp2f1(2.5, 3.0, 3.0, 0.7).unwrap().value();
        assert!(close(value, 0.3_f64.powf(-2.5), 1e-13), "{value}");
        // A terminating series: 2F1(-2, b; c; z) = 1 - 2bz/c + b(b+1)z^2/(c(c+1)).
        let (b, c, z) = (1.5, 2.5, 0.4);
        let expected = 1.0 - 2.0 * b * z / c + b * (b + 1.0) * z * z / (c * (c + 1.0));
        let value = ln_hyp2f1(-2.0, b, c, z).unwrap().value();
        assert!(close(value, expected, 1e-14), "{value} vs {expected}");
    }

    #[test]
    fn hyp2f1_negative_value_keeps_sign() {
        // c < 0 and not an integer: 2F1(1, 1; -0.5; 0.5) is negative. Reference from
        // mpmath 1.3.0, mpmath.hyp2f1(1, 1, -0.5, 0.5) at 30 digits.
        let value = ln_hyp2f1(1.0, 1.0, -0.5, 0.5).unwrap();
        assert_eq!(value.sign, -1.0);
        assert!(
            close(value.value(), -8.712_388_980_384_69, 1e-13),
            "{}",
            value.value()
        );
    }

    #[test]
    fn hyp2f1_beyond_f64_range() {
        // 2F1(a, b; a + 1; z) with a = 1000.5: the value is near (1 - z)^(1 - b), far
        // beyond f64. Euler's transform gives it as (1 - z)^(1 - b) 2F1(1, a + 1 - b;
        // a + 1; z), whose series is checked against the direct sum at a small z.
        let (a, b, z) = (1000.5, 300.5, 0.99);
        let value = ln_hyp2f1(a, b, a + 1.0, z).unwrap();
        assert_eq!(value.sign, 1.0);
        let inner = series(1.0, a + 1.0 - b, a + 1.0, z).unwrap();
        let expected = inner.ln_abs + (1.0 - b) * (1.0 - z).ln();
        assert!(
            close(value.ln_abs, expected, 1e-14),
            "{} vs {expected}",
            value.ln_abs
        );
        assert!(value.ln_abs > 1000.0);
    }

    #[test]
    fn hyp2f1_near_one_gives_up() {
        // About 4e11 terms would be needed; the check before summing rejects it.
        assert_eq!(
            ln_hyp2f1(0.5, 2.5, 3.5, 1.0 - 1e-10),
            Err(Hyp2f1Error::NotConverged)
        );
    }

    #[test]
    fn hyp2f1_rejects_poles() {
        assert_eq!(ln_hyp2f1(1.0, 1.0, -2.0, 0.5), Err(Hyp2f1Error::PoleInC));
        assert_eq!(ln_hyp2f1(1.0, 1.0, 2.0, 1.0), Err(Hyp2f1Error::OutOfDomain));
    }

    #[test]
    fn digamma_known_values() {
        let euler_gamma = 0.577_215_664_901_532_9;
        assert!(close(digamma(1.0), -euler_gamma, 1e-14));
        assert!(close(
            digamma(0.5),
            -euler_gamma - 2.0 * 2.0_f64.ln(),
            1e-14
        ));
        // mpmath 1.3.0: mpmath.digamma(100).
        assert!(close(digamma(100.0), 4.600_161_852_738_087, 1e-14));
    }

    #[test]
    fn log_sum_helpers() {
        assert!(close(
            ln_add_exp(1000.0, 1000.0),
            1000.0 + 2.0_f64.ln(),
            1e-15
        ));
        // ln(2 - 1) = 0.
        assert!(ln_sub_exp(2.0_f64.ln(), 0.0).abs() < 1e-15);
        assert_eq!(ln_sub_exp(1.0, 1.0), f64::NEG_INFINITY);
        assert!(close(
            logistic_of_negative(800.0),
            (-800.0_f64).exp(),
            1e-12
        ));
        assert_eq!(logistic_of_negative(-800.0), 1.0);
    }
}
