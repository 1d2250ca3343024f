-- Model scores per customer.
--
-- p_alive             probability that the customer is still active at $as_of
-- expected_purchases  expected repeat purchases in the $horizon_weeks after $as_of
-- expected_spend      expected spend per future purchase, in dollars
-- clv_12m             value of the next 12 months (52.14 weeks), discounted at 1 %
--                     a month: per month, expected purchases times expected spend
SELECT
    s.*,
    bgnbd_p_alive(s.frequency, s.recency, s.t, m.purchase_model) AS p_alive,
    bgnbd_expected_purchases($horizon_weeks, s.frequency, s.recency, s.t, m.purchase_model)
        AS expected_purchases,
    gamma_gamma_expected_spend(s.frequency, s.monetary_value, m.spend_model)
        AS expected_spend,
    clv(
        s.frequency, s.recency, s.t, s.monetary_value,
        m.purchase_model, m.spend_model,
        12, 0.01, 4.345
    ) AS clv_12m
FROM customer_scores s
CROSS JOIN customer_models m
