//! Documentation of the model functions, as `cra functions` prints it.

use super::{FunctionDoc, FunctionKind};

/// The model functions, fits first, each followed by its scores.
pub const DOCS: [FunctionDoc; 12] = [
    FunctionDoc {
        name: "bgnbd_fit",
        kind: FunctionKind::Aggregate,
        signature: "bgnbd_fit(frequency DOUBLE, recency DOUBLE, t DOUBLE) -> STRUCT(model, \
                    r, alpha, a, b, log_likelihood, n, excluded)",
        summary: "maximum-likelihood BG/NBD fit; rows with invalid statistics are \
                  excluded and counted",
        example: "SELECT bgnbd_fit(frequency, recency, t) AS model FROM customer_summary",
    },
    FunctionDoc {
        name: "bgnbd_p_alive",
        kind: FunctionKind::Scalar,
        signature: "bgnbd_p_alive(frequency, recency, t, model) -> DOUBLE",
        summary: "probability that the customer is still active at t; 1 when frequency \
                  is 0",
        example: "bgnbd_p_alive(2, 30.43, 38.86, named_struct('r', 0.243, 'alpha', 4.414, \
                  'a', 0.793, 'b', 2.426))",
    },
    FunctionDoc {
        name: "bgnbd_expected_purchases",
        kind: FunctionKind::Scalar,
        signature: "bgnbd_expected_purchases(horizon, frequency, recency, t, model) -> DOUBLE",
        summary: "expected repeat purchases in the next `horizon` time units",
        example: "bgnbd_expected_purchases(39, frequency, recency, t, m.model)",
    },
    FunctionDoc {
        name: "pareto_nbd_fit",
        kind: FunctionKind::Aggregate,
        signature: "pareto_nbd_fit(frequency DOUBLE, recency DOUBLE, t DOUBLE) -> \
                    STRUCT(model, r, alpha, s, beta, log_likelihood, n, excluded)",
        summary: "maximum-likelihood Pareto/NBD fit",
        example: "SELECT pareto_nbd_fit(frequency, recency, t) AS model FROM customer_summary",
    },
    FunctionDoc {
        name: "pareto_nbd_p_alive",
        kind: FunctionKind::Scalar,
        signature: "pareto_nbd_p_alive(frequency, recency, t, model) -> DOUBLE",
        summary: "probability that the customer is still active at t",
        example: "pareto_nbd_p_alive(frequency, recency, t, m.model)",
    },
    FunctionDoc {
        name: "pareto_nbd_expected_purchases",
        kind: FunctionKind::Scalar,
        signature: "pareto_nbd_expected_purchases(horizon, frequency, recency, t, model) -> \
                    DOUBLE",
        summary: "expected repeat purchases in the next `horizon` time units",
        example: "pareto_nbd_expected_purchases(52, frequency, recency, t, m.model)",
    },
    FunctionDoc {
        name: "mbgnbd_fit",
        kind: FunctionKind::Aggregate,
        signature: "mbgnbd_fit(frequency DOUBLE, recency DOUBLE, t DOUBLE) -> STRUCT(model, \
                    r, alpha, a, b, log_likelihood, n, excluded)",
        summary: "maximum-likelihood MBG/NBD fit",
        example: "SELECT mbgnbd_fit(frequency, recency, t) AS model FROM customer_summary",
    },
    FunctionDoc {
        name: "mbgnbd_p_alive",
        kind: FunctionKind::Scalar,
        signature: "mbgnbd_p_alive(frequency, recency, t, model) -> DOUBLE",
        summary: "probability that the customer is still active at t; below 1 also \
                  when frequency is 0",
        example: "mbgnbd_p_alive(frequency, recency, t, m.model)",
    },
    FunctionDoc {
        name: "mbgnbd_expected_purchases",
        kind: FunctionKind::Scalar,
        signature: "mbgnbd_expected_purchases(horizon, frequency, recency, t, model) -> DOUBLE",
        summary: "expected repeat purchases in the next `horizon` time units",
        example: "mbgnbd_expected_purchases(52, frequency, recency, t, m.model)",
    },
    FunctionDoc {
        name: "gamma_gamma_fit",
        kind: FunctionKind::Aggregate,
        signature: "gamma_gamma_fit(frequency DOUBLE, monetary_value DOUBLE) -> \
                    STRUCT(model, p, q, v, log_likelihood, n, excluded)",
        summary: "maximum-likelihood Gamma-Gamma fit on repeat buyers; frequency 0 rows \
                  are skipped, non-positive spend rows excluded and counted",
        example: "SELECT gamma_gamma_fit(frequency, monetary_value) AS model FROM summary",
    },
    FunctionDoc {
        name: "gamma_gamma_expected_spend",
        kind: FunctionKind::Scalar,
        signature: "gamma_gamma_expected_spend(frequency, monetary_value, model) -> DOUBLE",
        summary: "expected spend per purchase: p (v + x m) / (p x + q - 1); the \
                  population mean when frequency is 0; NULL when q <= 1",
        example: "gamma_gamma_expected_spend(frequency, monetary_value, g.model)",
    },
    FunctionDoc {
        name: "clv",
        kind: FunctionKind::Scalar,
        signature: "clv(frequency, recency, t, monetary_value, purchase_model, spend_model, \
                    months, monthly_discount_rate, periods_per_month) -> DOUBLE",
        summary: "value of the next `months` months: per month, expected purchases times \
                  expected spend, discounted by (1 + rate)^month",
        example: "clv(frequency, recency, t, monetary_value, m.model, g.model, 12, 0.01, \
                  4.345)",
    },
];
