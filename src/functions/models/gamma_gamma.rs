//! Gamma-Gamma spend model (Fader, Hardie and Lee 2005, "RFM and CLV: Using
//! Iso-Value Curves for Customer Base Analysis"; Colombo and Jiang 1999).
//!
//! Each purchase of a customer is worth Gamma(p, nu) dollars, with the customer's
//! nu ~ Gamma(q, v) across customers. Spend is assumed independent of the purchase
//! process. Only customers with at least one repeat purchase carry information.

use crate::functions::special::ln_gamma;

/// Gamma-Gamma parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GammaGamma {
    /// Shape of the spend per purchase.
    pub p: f64,
    /// Shape of the customers' spend-rate distribution.
    pub q: f64,
    /// Scale of the customers' spend-rate distribution, in currency units.
    pub v: f64,
}

impl GammaGamma {
    /// Creates the model; parameters must be positive.
    pub fn new(p: f64, q: f64, v: f64) -> Self {
        Self { p, q, v }
    }

    /// Returns the log-likelihood of a customer with `x > 0` repeat purchases of mean
    /// value `m > 0`:
    ///
    /// ln L = lnGamma(p x + q) - lnGamma(p x) - lnGamma(q) + q ln v + (p x - 1) ln m
    ///      + p x ln x - (p x + q) ln(x m + v).
    pub fn ln_likelihood(&self, x: f64, m: f64) -> Option<f64> {
        let Self { p, q, v } = *self;
        let px = p * x;
        let value = ln_gamma(px + q) - ln_gamma(px) - ln_gamma(q)
            + q * v.ln()
            + (px - 1.0) * m.ln()
            + px * x.ln()
            - (px + q) * (x * m + v).ln();
        value.is_finite().then_some(value)
    }

    /// Returns the expected spend per purchase, p (v + x m) / (p x + q - 1): for
    /// `x = 0` the population mean p v / (q - 1). `None` when q <= 1, where the
    /// population mean is infinite.
    pub fn expected_spend(&self, x: f64, m: f64) -> Option<f64> {
        let Self { p, q, v } = *self;
        if q <= 1.0 {
            return None;
        }
        let value = p * (v + x * m) / (p * x + q - 1.0);
        value.is_finite().then_some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn population_mean() {
        // p * v / (q - 1) with the published rounded estimates: 35.22.
        let model = GammaGamma::new(6.25, 3.74, 15.44);
        let mean = model.expected_spend(0.0, 0.0).unwrap();
        assert!((mean - 35.22).abs() < 5e-3, "{mean}");
    }

    #[test]
    fn infinite_mean_is_none() {
        assert_eq!(
            GammaGamma::new(6.0, 0.9, 15.0).expected_spend(2.0, 20.0),
            None
        );
    }
}
