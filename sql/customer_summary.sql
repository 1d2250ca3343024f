-- One row per customer: purchase statistics at $as_of, in weeks.
--
-- frequency       distinct purchase days minus 1 (same-day orders count once)
-- recency         weeks from the first to the last purchase day
-- t               weeks from the first purchase day to $as_of (inclusive end)
-- monetary_value  mean of the repeat purchase-day totals; 0 when frequency is 0
-- total_spend     all orders up to $as_of, in dollars
WITH purchase_days AS (
    SELECT
        customer_id,
        order_date,
        COUNT(*) AS day_orders,
        SUM(amount) AS day_amount
    FROM transactions
    WHERE order_date <= $as_of
    GROUP BY customer_id, order_date
),
customers AS (
    -- first_day_amount is taken by the aggregation itself, not by joining
    -- purchase_days back on the first day: a hash join keeps its whole build
    -- side in memory and cannot spill.
    SELECT
        customer_id,
        MIN(order_date) AS first_purchase,
        MAX(order_date) AS last_purchase,
        COUNT(*) AS days_with_purchase,
        SUM(day_orders) AS orders,
        SUM(day_amount) AS total_spend,
        FIRST_VALUE(day_amount ORDER BY order_date) AS first_day_amount
    FROM purchase_days
    GROUP BY customer_id
)
SELECT
    c.customer_id,
    c.days_with_purchase - 1 AS frequency,
    CAST(CAST(c.last_purchase AS INT) - CAST(c.first_purchase AS INT) AS DOUBLE) / 7.0
        AS recency,
    CAST(CAST($as_of AS INT) - CAST(c.first_purchase AS INT) AS DOUBLE) / 7.0 AS t,
    CASE
        WHEN c.days_with_purchase > 1
            THEN CAST(c.total_spend - c.first_day_amount AS DOUBLE)
                / CAST(c.days_with_purchase - 1 AS DOUBLE)
        ELSE 0.0
    END AS monetary_value,
    c.first_purchase,
    c.last_purchase,
    c.orders,
    CAST(c.total_spend AS DECIMAL(12, 2)) AS total_spend
FROM customers c
