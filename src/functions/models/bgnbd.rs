//! BG/NBD (Fader, Hardie and Lee 2005, "Counting Your Customers the Easy Way").
//!
//! While active, a customer buys at Poisson rate lambda, with lambda ~ Gamma(r,
//! alpha) across customers. After each repeat purchase the customer drops out with
//! probability p, with p ~ Beta(a, b). A customer without repeat purchases is active
//! by construction.

use super::Customer;
use crate::functions::special::{
    ln_add_exp, ln_beta, ln_gamma, ln_hyp2f1, logistic_of_negative,
};

/// BG/NBD parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BgNbd {
    /// Shape of the purchase-rate gamma distribution.
    pub r: f64,
    /// Scale of the purchase-rate gamma distribution, in the data's time unit.
    pub alpha: f64,
    /// First shape of the dropout-probability beta distribution.
    pub a: f64,
    /// Second shape of the dropout-probability beta distribution.
    pub b: f64,
}

impl BgNbd {
    /// Creates the model; parameters must be positive.
    pub fn new(r: f64, alpha: f64, a: f64, b: f64) -> Self {
        Self { r, alpha, a, b }
    }

    /// Returns the log-likelihood of one customer (equation 6 of the paper):
    ///
    /// L = B(a, b + x) / B(a, b) * Gamma(r + x) alpha^r / (Gamma(r) (alpha + T)^(r + x))
    ///   + [x > 0] B(a + 1, b + x - 1) / B(a, b) * Gamma(r + x) alpha^r
    ///     / (Gamma(r) (alpha + t_x)^(r + x))
    pub fn ln_likelihood(&self, c: &Customer) -> Option<f64> {
        let Self { r, alpha, a, b } = *self;
        let x = c.frequency;
        let common = ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln() + ln_beta(a, b + x)
            - ln_beta(a, b);
        let alive = -(r + x) * (alpha + c.t).ln();
        let dropped = if x > 0.0 {
            a.ln() - (b + x - 1.0).ln() - (r + x) * (alpha + c.recency).ln()
        } else {
            f64::NEG_INFINITY
        };
        let value = common + ln_add_exp(alive, dropped);
        value.is_finite().then_some(value)
    }

    /// Returns ln(a / (b + x - 1) * ((alpha + T) / (alpha + t_x))^(r + x)), the log
    /// odds of having dropped out against being active; `-inf` when x is 0.
    fn ln_dropout_odds(&self, c: &Customer) -> f64 {
        let x = c.frequency;
        if x == 0.0 {
            return f64::NEG_INFINITY;
        }
        let Self { r, alpha, a, b } = *self;
        // ln((alpha + T) / (alpha + t_x)) as ln_1p of the gap: one logarithm, and
        // exact when T - t_x is small against alpha + t_x.
        (a / (b + x - 1.0)).ln()
            + (r + x) * ((c.t - c.recency) / (alpha + c.recency)).ln_1p()
    }

    /// Returns P(active at T | x, t_x, T) = 1 / (1 + [x > 0] a / (b + x - 1)
    /// ((alpha + T) / (alpha + t_x))^(r + x)).
    pub fn p_alive(&self, c: &Customer) -> f64 {
        logistic_of_negative(self.ln_dropout_odds(c))
    }

    /// Returns the expected repeat purchases in (T, T + h] (equation 10):
    ///
    /// (a + b + x - 1) / (a - 1) * [1 - ((alpha + T) / (alpha + T + h))^(r + x)
    /// 2F1(r + x, b + x; a + b + x - 1; h / (alpha + T + h))] * P(active).
    ///
    /// NOTE: at a = 1 exactly the formula is 0 / 0 and `None` is returned; its limit
    /// exists but is not implemented.
    pub fn expected_purchases(&self, h: f64, c: &Customer) -> Option<f64> {
        let value =
            self.expected_purchases_if_alive(h, c.frequency, c.t)? * self.p_alive(c);
        value.is_finite().then_some(value)
    }

    /// Returns the expected repeat purchases in (T, T + h] of a customer still
    /// active at T with frequency x: the factor before P(active) above. It does
    /// not depend on recency.
    pub fn expected_purchases_if_alive(&self, h: f64, x: f64, t: f64) -> Option<f64> {
        let Self { r, alpha, a, b } = *self;
        let z = h / (alpha + t + h);
        let hyp = ln_hyp2f1(r + x, b + x, a + b + x - 1.0, z).ok()?;
        let ln_power = (r + x) * ((alpha + t).ln() - (alpha + t + h).ln());
        let bracket = one_minus_signed_exp(hyp.sign, ln_power + hyp.ln_abs);
        Some((a + b + x - 1.0) / (a - 1.0) * bracket)
    }

    /// Returns E[X(t)], the expected repeat purchases of a new customer in (0, t]
    /// (equation 9): (a + b - 1) / (a - 1) * [1 - (alpha / (alpha + t))^r
    /// 2F1(r, b; a + b - 1; t / (alpha + t))].
    pub fn unconditional_expected(&self, t: f64) -> Option<f64> {
        let Self { r, alpha, a, b } = *self;
        let hyp = ln_hyp2f1(r, b, a + b - 1.0, t / (alpha + t)).ok()?;
        let ln_power = r * (alpha.ln() - (alpha + t).ln());
        let bracket = one_minus_signed_exp(hyp.sign, ln_power + hyp.ln_abs);
        let value = (a + b - 1.0) / (a - 1.0) * bracket;
        value.is_finite().then_some(value)
    }

    /// Returns P(X(t) = x) for a new customer (equation 8).
    pub fn probability(&self, x: u32, t: f64) -> f64 {
        let Self { r, alpha, a, b } = *self;
        let xf = f64::from(x);
        let ln_rate = (alpha / (alpha + t)).ln();
        let ln_share = (t / (alpha + t)).ln();
        let ln_nbd = ln_gamma(r + xf) - ln_gamma(r) - ln_gamma(xf + 1.0)
            + r * ln_rate
            + xf * ln_share;
        let first = (ln_beta(a, b + xf) - ln_beta(a, b) + ln_nbd).exp();
        if x == 0 {
            return first;
        }
        // 1 - (alpha / (alpha + t))^r * sum_{j < x} Gamma(r + j) / (Gamma(r) j!)
        // (t / (alpha + t))^j: the NBD probability of at least x purchases.
        let mut cumulative = 0.0;
        for j in 0..x {
            let jf = f64::from(j);
            cumulative += (ln_gamma(r + jf) - ln_gamma(r) - ln_gamma(jf + 1.0)
                + r * ln_rate
                + jf * ln_share)
                .exp();
        }
        let second =
            (ln_beta(a + 1.0, b + xf - 1.0) - ln_beta(a, b)).exp() * (1.0 - cumulative);
        first + second
    }
}

/// Returns 1 - sign * exp(ln_abs) without cancellation when the exponential is
/// close to 1.
pub(crate) fn one_minus_signed_exp(sign: f64, ln_abs: f64) -> f64 {
    if sign > 0.0 {
        -ln_abs.exp_m1()
    } else if sign < 0.0 {
        1.0 + ln_abs.exp()
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published fit on the CDNOW calibration sample, time in weeks.
    const PUBLISHED: BgNbd = BgNbd {
        r: 0.243,
        alpha: 4.414,
        a: 0.793,
        b: 2.426,
    };

    fn relative(actual: f64, expected: f64) -> f64 {
        ((actual - expected) / expected).abs()
    }

    #[test]
    fn published_conditional_expectation() {
        // x = 2, t_x = 30.43, T = 38.86: 1.226 purchases in the next 39 weeks.
        let customer = Customer::checked(2.0, 30.43, 38.86).unwrap();
        let value = PUBLISHED.expected_purchases(39.0, &customer).unwrap();
        assert!((value - 1.226).abs() < 5e-4, "{value}");
    }

    #[test]
    fn published_probabilities() {
        let value = PUBLISHED.probability(0, 39.0);
        assert!(relative(value, 0.5737864) < 1e-6, "{value}");
        let value = PUBLISHED.probability(10, 2.0);
        assert!(relative(value, 1.07869e-07) < 1e-5, "{value}");
    }

    #[test]
    fn no_repeat_purchase_is_alive() {
        let customer = Customer::checked(0.0, 0.0, 38.86).unwrap();
        assert_eq!(PUBLISHED.p_alive(&customer), 1.0);
    }
}
