-- The models fitted on the job's own customers: one row.
--
-- purchase_model  BG/NBD on frequency, recency and t (weeks)
-- spend_model     Gamma-Gamma on the repeat buyers' mean repeat spend; repeat
--                 buyers whose mean repeat spend is not positive are left out and
--                 counted in spend_model.excluded
SELECT
    bgnbd_fit(frequency, recency, t) AS purchase_model,
    gamma_gamma_fit(frequency, monetary_value) AS spend_model
FROM customer_summary
