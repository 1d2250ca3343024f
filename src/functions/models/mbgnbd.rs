//! MBG/NBD (Batislam, Denizel and Filiztekin 2007).
//!
//! As BG/NBD, but a customer may also drop out right after the first purchase, so
//! customers without repeat purchases are not certain to be active.

use super::Customer;
use super::bgnbd::one_minus_signed_exp;
use crate::functions::special::{
    ln_add_exp, ln_beta, ln_gamma, ln_hyp2f1, logistic_of_negative,
};

/// MBG/NBD parameters, with the meaning they have in BG/NBD.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MbgNbd {
    /// Shape of the purchase-rate gamma distribution.
    pub r: f64,
    /// Scale of the purchase-rate gamma distribution, in the data's time unit.
    pub alpha: f64,
    /// First shape of the dropout-probability beta distribution.
    pub a: f64,
    /// Second shape of the dropout-probability beta distribution.
    pub b: f64,
}

impl MbgNbd {
    /// Creates the model; parameters must be positive.
    pub fn new(r: f64, alpha: f64, a: f64, b: f64) -> Self {
        Self { r, alpha, a, b }
    }

    /// Returns the log-likelihood of one customer:
    ///
    /// L = B(a, b + x + 1) / B(a, b) * Gamma(r + x) alpha^r / (Gamma(r) (alpha +
    /// T)^(r + x)) + B(a + 1, b + x) / B(a, b) * Gamma(r + x) alpha^r / (Gamma(r)
    /// (alpha + t_x)^(r + x)).
    pub fn ln_likelihood(&self, c: &Customer) -> Option<f64> {
        let Self { r, alpha, a, b } = *self;
        let x = c.frequency;
        let common =
            ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln() + ln_beta(a, b + x + 1.0)
                - ln_beta(a, b);
        let alive = -(r + x) * (alpha + c.t).ln();
        let dropped = a.ln() - (b + x).ln() - (r + x) * (alpha + c.recency).ln();
        let value = common + ln_add_exp(alive, dropped);
        value.is_finite().then_some(value)
    }

    /// Returns P(active at T) = 1 / (1 + a / (b + x) ((alpha + T) / (alpha +
    /// t_x))^(r + x)).
    pub fn p_alive(&self, c: &Customer) -> f64 {
        let Self { r, alpha, a, b } = *self;
        let x = c.frequency;
        let ln_odds = a.ln() - (b + x).ln()
            + (r + x) * ((alpha + c.t).ln() - (alpha + c.recency).ln());
        logistic_of_negative(ln_odds)
    }

    /// Returns the expected repeat purchases in (T, T + h]:
    ///
    /// (a + b + x) / (a - 1) * [1 - ((alpha + T) / (alpha + T + h))^(r + x) 2F1(r +
    /// x, b + x + 1; a + b + x; h / (alpha + T + h))] * P(active).
    pub fn expected_purchases(&self, h: f64, c: &Customer) -> Option<f64> {
        let value =
            self.expected_purchases_if_alive(h, c.frequency, c.t)? * self.p_alive(c);
        value.is_finite().then_some(value)
    }

    /// Returns the expected repeat purchases in (T, T + h] of a customer still
    /// active at T with frequency x, the factor before P(active) above.
    pub fn expected_purchases_if_alive(&self, h: f64, x: f64, t: f64) -> Option<f64> {
        let Self { r, alpha, a, b } = *self;
        let z = h / (alpha + t + h);
        let hyp = ln_hyp2f1(r + x, b + x + 1.0, a + b + x, z).ok()?;
        let ln_power = (r + x) * ((alpha + t).ln() - (alpha + t + h).ln());
        let bracket = one_minus_signed_exp(hyp.sign, ln_power + hyp.ln_abs);
        Some((a + b + x) / (a - 1.0) * bracket)
    }
}
