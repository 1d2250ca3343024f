//! Pareto/NBD (Schmittlein, Morrison and Colombo 1987).
//!
//! While active, a customer buys at Poisson rate lambda ~ Gamma(r, alpha) and stays
//! active for an exponential lifetime with rate mu ~ Gamma(s, beta). Formulas follow
//! Fader and Hardie, "A Note on Deriving the Pareto/NBD Model and Related
//! Expressions" (2005), evaluated in log space because 2F1 overflows `f64` when
//! beta is much larger than alpha and frequency is in the hundreds.

use super::Customer;
use crate::functions::special::{
    ln_add_exp, ln_gamma, ln_hyp2f1, ln_sub_exp, logistic_of_negative,
};

/// Pareto/NBD parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParetoNbd {
    /// Shape of the purchase-rate gamma distribution.
    pub r: f64,
    /// Scale of the purchase-rate gamma distribution, in the data's time unit.
    pub alpha: f64,
    /// Shape of the dropout-rate gamma distribution.
    pub s: f64,
    /// Scale of the dropout-rate gamma distribution, in the data's time unit.
    pub beta: f64,
}

impl ParetoNbd {
    /// Creates the model; parameters must be positive.
    pub fn new(r: f64, alpha: f64, s: f64, beta: f64) -> Self {
        Self { r, alpha, s, beta }
    }

    /// Returns ln A0, where
    ///
    /// A0 = F(t_x) - F(T), with F(y) = 2F1(r + s + x, s + 1; r + s + x + 1;
    /// (alpha - beta) / (alpha + y)) / (alpha + y)^(r + s + x) when alpha >= beta,
    /// and F(y) = 2F1(r + s + x, r + x; r + s + x + 1; (beta - alpha) / (beta + y))
    /// / (beta + y)^(r + s + x) otherwise.
    fn ln_a0(&self, c: &Customer) -> Option<f64> {
        let Self { r, alpha, s, beta } = *self;
        let x = c.frequency;
        let total = r + s + x;
        let ln_f = |y: f64| -> Option<f64> {
            let (base, b_param) = if alpha >= beta {
                (alpha + y, s + 1.0)
            } else {
                (beta + y, r + x)
            };
            let z = (alpha - beta).abs() / base;
            let hyp = ln_hyp2f1(total, b_param, total + 1.0, z).ok()?;
            (hyp.sign > 0.0).then_some(hyp.ln_abs - total * base.ln())
        };
        let at_recency = ln_f(c.recency)?;
        let at_t = ln_f(c.t)?;
        Some(ln_sub_exp(at_recency, at_t))
    }

    /// Returns the log-likelihood of one customer:
    ///
    /// L = Gamma(r + x) alpha^r beta^s / Gamma(r) * [1 / ((alpha + T)^(r + x)
    /// (beta + T)^s) + s / (r + s + x) * A0].
    pub fn ln_likelihood(&self, c: &Customer) -> Option<f64> {
        let Self { r, alpha, s, beta } = *self;
        let x = c.frequency;
        let ln_a0 = self.ln_a0(c)?;
        let alive = -(r + x) * (alpha + c.t).ln() - s * (beta + c.t).ln();
        let dropped = (s / (r + s + x)).ln() + ln_a0;
        let value = ln_gamma(r + x) - ln_gamma(r)
            + r * alpha.ln()
            + s * beta.ln()
            + ln_add_exp(alive, dropped);
        value.is_finite().then_some(value)
    }

    /// Returns P(active at T) = 1 / (1 + s / (r + s + x) (alpha + T)^(r + x)
    /// (beta + T)^s A0).
    pub fn p_alive(&self, c: &Customer) -> Option<f64> {
        let Self { r, alpha, s, beta } = *self;
        let x = c.frequency;
        let ln_odds = (s / (r + s + x)).ln()
            + (r + x) * (alpha + c.t).ln()
            + s * (beta + c.t).ln()
            + self.ln_a0(c)?;
        Some(logistic_of_negative(ln_odds))
    }

    /// Returns the expected repeat purchases in (T, T + h]:
    ///
    /// (r + x) (beta + T) / ((alpha + T) (s - 1)) * [1 - ((beta + T) / (beta + T +
    /// h))^(s - 1)] * P(active), with the limit (r + x) (beta + T) / (alpha + T)
    /// ln((beta + T + h) / (beta + T)) * P(active) at s = 1.
    pub fn expected_purchases(&self, h: f64, c: &Customer) -> Option<f64> {
        let value =
            self.expected_purchases_if_alive(h, c.frequency, c.t)? * self.p_alive(c)?;
        value.is_finite().then_some(value)
    }

    /// Returns the expected repeat purchases in (T, T + h] of a customer still
    /// active at T with frequency x, the factor before P(active) above.
    pub fn expected_purchases_if_alive(&self, h: f64, x: f64, t: f64) -> Option<f64> {
        let Self { r, alpha, s, beta } = *self;
        let ln_ratio = (beta + t).ln() - (beta + t + h).ln();
        // [1 - q^(s - 1)] / (s - 1) = -expm1((s - 1) ln q) / (s - 1), stable near s = 1.
        let shape = if s == 1.0 {
            -ln_ratio
        } else {
            -((s - 1.0) * ln_ratio).exp_m1() / (s - 1.0)
        };
        Some((r + x) * (beta + t) / (alpha + t) * shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLISHED: ParetoNbd = ParetoNbd {
        r: 0.553,
        alpha: 10.578,
        s: 0.606,
        beta: 11.669,
    };

    #[test]
    fn published_customer_scores() {
        // x = 26, t_x = 30.86, T = 31: P(alive) 0.9979, 25.46 purchases in 52 weeks.
        let customer = Customer::checked(26.0, 30.86, 31.0).unwrap();
        let p_alive = PUBLISHED.p_alive(&customer).unwrap();
        assert!((p_alive - 0.9979).abs() < 5e-5, "{p_alive}");
        let expected = PUBLISHED.expected_purchases(52.0, &customer).unwrap();
        assert!((expected - 25.46).abs() < 5e-3, "{expected}");
    }

    #[test]
    fn large_frequency_stays_finite() {
        let model = ParetoNbd::new(0.553, 10.578, 64.0, 7721.0);
        let customer = Customer::checked(600.0, 30.0, 39.0).unwrap();
        let p_alive = model.p_alive(&customer).unwrap();
        assert!(
            p_alive.is_finite() && (0.0..=1.0).contains(&p_alive),
            "{p_alive}"
        );
        assert!(model.ln_likelihood(&customer).unwrap().is_finite());
    }
}
