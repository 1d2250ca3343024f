//! The customer-base models behind cra's SQL functions.
//!
//! Purchase models (BG/NBD, Pareto/NBD, MBG/NBD) describe repeat purchases and
//! dropout from a customer's `frequency` (repeat purchase periods), `recency` (time
//! from first to last purchase) and `t` (time from first purchase to the end of
//! observation), all in one time unit. Gamma-Gamma describes spend per purchase.
//! Each model computes its log-likelihood for fitting and its scores.

pub mod bgnbd;
pub mod gamma_gamma;
pub mod mbgnbd;
pub mod pareto_nbd;

/// One customer's purchase statistics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Customer {
    /// Repeat purchase periods: distinct purchase days minus one.
    pub frequency: f64,
    /// Time from the first to the last purchase.
    pub recency: f64,
    /// Time from the first purchase to the end of observation.
    pub t: f64,
}

impl Customer {
    /// Returns the statistics when they are valid: finite, not negative, frequency
    /// a whole number, recency at most `t`, and recency 0 when frequency is 0.
    pub fn checked(frequency: f64, recency: f64, t: f64) -> Option<Self> {
        let finite = frequency.is_finite() && recency.is_finite() && t.is_finite();
        let valid = finite
            && frequency >= 0.0
            && frequency == frequency.floor()
            && recency >= 0.0
            && recency <= t
            && (frequency > 0.0 || recency == 0.0);
        valid.then_some(Self {
            frequency,
            recency,
            t,
        })
    }
}

/// Purchase model of a struct, as named in its `model` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PurchaseKind {
    /// BG/NBD with r, alpha, a, b.
    BgNbd,
    /// Pareto/NBD with r, alpha, s, beta.
    ParetoNbd,
    /// MBG/NBD with r, alpha, a, b.
    MbgNbd,
}

impl PurchaseKind {
    /// Returns the name stored in the `model` field of fitted structs.
    pub fn name(self) -> &'static str {
        match self {
            PurchaseKind::BgNbd => "bgnbd",
            PurchaseKind::ParetoNbd => "pareto_nbd",
            PurchaseKind::MbgNbd => "mbgnbd",
        }
    }

    /// Returns the parameter names, in struct order.
    pub fn params(self) -> [&'static str; 4] {
        match self {
            PurchaseKind::BgNbd | PurchaseKind::MbgNbd => ["r", "alpha", "a", "b"],
            PurchaseKind::ParetoNbd => ["r", "alpha", "s", "beta"],
        }
    }

    /// Returns the kind named by `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            PurchaseKind::BgNbd,
            PurchaseKind::ParetoNbd,
            PurchaseKind::MbgNbd,
        ]
        .into_iter()
        .find(|kind| kind.name() == name)
    }
}

/// A purchase model with its parameters, all positive and finite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PurchaseModel {
    /// BG/NBD.
    BgNbd(bgnbd::BgNbd),
    /// Pareto/NBD.
    ParetoNbd(pareto_nbd::ParetoNbd),
    /// MBG/NBD.
    MbgNbd(mbgnbd::MbgNbd),
}

impl PurchaseModel {
    /// Builds a model of `kind` from its four parameters in struct order, or `None`
    /// when one is not positive and finite.
    pub fn new(kind: PurchaseKind, params: [f64; 4]) -> Option<Self> {
        if !params.iter().all(|p| p.is_finite() && *p > 0.0) {
            return None;
        }
        let [p0, p1, p2, p3] = params;
        Some(match kind {
            PurchaseKind::BgNbd => {
                PurchaseModel::BgNbd(bgnbd::BgNbd::new(p0, p1, p2, p3))
            }
            PurchaseKind::ParetoNbd => {
                PurchaseModel::ParetoNbd(pareto_nbd::ParetoNbd::new(p0, p1, p2, p3))
            }
            PurchaseKind::MbgNbd => {
                PurchaseModel::MbgNbd(mbgnbd::MbgNbd::new(p0, p1, p2, p3))
            }
        })
    }

    /// Returns the log-likelihood of one customer.
    pub fn ln_likelihood(&self, customer: &Customer) -> Option<f64> {
        match self {
            PurchaseModel::BgNbd(m) => m.ln_likelihood(customer),
            PurchaseModel::ParetoNbd(m) => m.ln_likelihood(customer),
            PurchaseModel::MbgNbd(m) => m.ln_likelihood(customer),
        }
    }

    /// Returns the probability that the customer is still active at `t`.
    pub fn p_alive(&self, customer: &Customer) -> Option<f64> {
        match self {
            PurchaseModel::BgNbd(m) => Some(m.p_alive(customer)),
            PurchaseModel::ParetoNbd(m) => m.p_alive(customer),
            PurchaseModel::MbgNbd(m) => Some(m.p_alive(customer)),
        }
    }

    /// Returns the expected repeat purchases in the `horizon` time units after `t`.
    pub fn expected_purchases(&self, horizon: f64, customer: &Customer) -> Option<f64> {
        let if_alive =
            self.expected_purchases_if_alive(horizon, customer.frequency, customer.t)?;
        if horizon == 0.0 {
            return Some(0.0);
        }
        expected_from_parts(if_alive, self.p_alive(customer)?)
    }

    /// Returns the kind and parameters in struct order.
    pub fn params(&self) -> (PurchaseKind, [f64; 4]) {
        match *self {
            PurchaseModel::BgNbd(m) => (PurchaseKind::BgNbd, [m.r, m.alpha, m.a, m.b]),
            PurchaseModel::ParetoNbd(m) => {
                (PurchaseKind::ParetoNbd, [m.r, m.alpha, m.s, m.beta])
            }
            PurchaseModel::MbgNbd(m) => (PurchaseKind::MbgNbd, [m.r, m.alpha, m.a, m.b]),
        }
    }

    /// Returns the expected repeat purchases in the `horizon` time units after `t`
    /// of a customer with `frequency` who is still active at `t`. Customers who
    /// share frequency and t share the value, so a caller may reuse it with
    /// [`expected_from_parts`].
    pub fn expected_purchases_if_alive(
        &self,
        horizon: f64,
        frequency: f64,
        t: f64,
    ) -> Option<f64> {
        if !(horizon.is_finite() && horizon >= 0.0) {
            return None;
        }
        if horizon == 0.0 {
            return Some(0.0);
        }
        match self {
            PurchaseModel::BgNbd(m) => {
                m.expected_purchases_if_alive(horizon, frequency, t)
            }
            PurchaseModel::ParetoNbd(m) => {
                m.expected_purchases_if_alive(horizon, frequency, t)
            }
            PurchaseModel::MbgNbd(m) => {
                m.expected_purchases_if_alive(horizon, frequency, t)
            }
        }
    }
}

/// Returns the expected repeat purchases from its two factors: the value for a
/// customer still active ([`PurchaseModel::expected_purchases_if_alive`]) and
/// P(alive). Callers that score one customer at several horizons, or many
/// customers who share frequency and t, compute each factor once.
pub fn expected_from_parts(if_alive: f64, p_alive: f64) -> Option<f64> {
    let value = if_alive * p_alive;
    value.is_finite().then_some(value.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::bgnbd::BgNbd;
    use super::*;

    /// Checks every case of `tests/fixtures/models/high_precision.csv`: values from
    /// the closed forms in 50-digit arithmetic (mpmath), including the cases where
    /// `lifetimes` 0.11.3 returns NaN.
    #[test]
    fn high_precision_cases() {
        let text = include_str!("../../../tests/fixtures/models/high_precision.csv");
        let mut checked = 0;
        let mut lifetimes_nan = 0;
        let mut worst = 0.0_f64;
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            let number = |i: usize| f[i].parse::<f64>().unwrap();
            let (model, quantity) = (f[0], f[1]);
            let params = [number(6), number(7), number(8), number(9)];
            let expected = number(10);
            let actual = if quantity == "unconditional_expected" {
                BgNbd::new(params[0], params[1], params[2], params[3])
                    .unconditional_expected(number(5))
            } else {
                let kind = PurchaseKind::from_name(model).unwrap();
                let purchase = PurchaseModel::new(kind, params).unwrap();
                let customer =
                    Customer::checked(number(2), number(3), number(4)).unwrap();
                match quantity {
                    "expected" => purchase.expected_purchases(number(5), &customer),
                    "p_alive" => purchase.p_alive(&customer),
                    "log_likelihood" => purchase.ln_likelihood(&customer),
                    other => panic!("unknown quantity {other}"),
                }
            };
            let actual = actual.unwrap_or_else(|| panic!("no value for {line}"));
            let relative = ((actual - expected) / expected).abs();
            assert!(
                relative <= 1e-10,
                "{line}: cra {actual}, relative error {relative:.2e}"
            );
            worst = worst.max(relative);
            if f[11] == "nan" {
                lifetimes_nan += 1;
            }
            checked += 1;
        }
        assert_eq!(checked, 56);
        assert_eq!(lifetimes_nan, 19);
        println!("largest relative error against 50-digit values: {worst:.2e}");
    }
}
