-- Predicted and actual repeat purchases in the holdout period, per customer.
--
-- predicted_purchases  BG/NBD expected repeat purchases over the holdout weeks,
--                      from the model fitted on the calibration period
-- actual_purchases     repeat purchase days in the holdout period (0 when none)
SELECT
    c.customer_id,
    c.frequency,
    c.recency,
    c.t,
    bgnbd_expected_purchases(
        CAST(CAST($holdout_end AS INT) - CAST($as_of AS INT) AS DOUBLE) / 7.0,
        c.frequency, c.recency, c.t, m.purchase_model
    ) AS predicted_purchases,
    COALESCE(a.actual_purchases, 0) AS actual_purchases
FROM calibration c
CROSS JOIN holdout_model m
LEFT JOIN holdout_actual a ON a.customer_id = c.customer_id
