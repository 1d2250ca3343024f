-- Repeat purchase days per customer in the holdout period ($as_of, $holdout_end].
SELECT
    customer_id,
    COUNT(DISTINCT order_date) AS actual_purchases
FROM transactions
WHERE order_date > $as_of AND order_date <= $holdout_end
GROUP BY customer_id
