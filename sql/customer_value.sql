-- Categories per customer.
--
-- rfm_segment  the named RFM segment of the three scores
-- value_tier   by clv_12m rank: 'high' for the top 20 % of customers, 'medium' for
--              the next 30 %, 'low' for the rest. Ties share the better tier: the
--              tier comes from the number of customers with a strictly higher
--              clv_12m. NULL where clv_12m is NULL.
-- lifecycle    from the weeks since the last purchase (t - recency) and p_alive:
--              'new'      no repeat purchase yet and first purchase within 13 weeks
--              'active'   last purchase within 26 weeks and p_alive >= 0.5
--              'at risk'  last purchase within 52 weeks and p_alive >= 0.2
--              'lapsed'   everyone else
--              BG/NBD gives p_alive = 1 to every customer without a repeat
--              purchase, so the weeks since the last purchase decide for them.
--
-- No window runs over the customers: as in rfm_scores.sql, the lowest clv_12m of
-- each tier comes from the count of each distinct value, summed from the highest
-- value down, and each customer is compared with those two bounds.
WITH customers AS (
    SELECT COUNT(*) AS n FROM customer_predictions
),
clv_counts AS (
    SELECT clv_12m AS v, COUNT(*) AS c
    FROM customer_predictions
    WHERE clv_12m IS NOT NULL
    GROUP BY clv_12m
),
-- above: customers whose clv_12m is higher than v.
clv_running AS (
    SELECT v, SUM(c) OVER (ORDER BY v DESC ROWS UNBOUNDED PRECEDING) - c AS above
    FROM clv_counts
),
tier_bounds AS (
    SELECT
        MIN(CASE WHEN 5 * r.above < n.n THEN r.v END) AS high_from,
        MIN(CASE WHEN 2 * r.above < n.n THEN r.v END) AS medium_from
    FROM clv_running r CROSS JOIN customers n
)
SELECT
    p.*,
    rfm_segment(p.r_score, p.f_score, p.m_score) AS rfm_segment,
    CASE
        WHEN p.clv_12m IS NULL THEN NULL
        WHEN p.clv_12m >= b.high_from THEN 'high'
        WHEN p.clv_12m >= b.medium_from THEN 'medium'
        ELSE 'low'
    END AS value_tier,
    CASE
        WHEN p.frequency = 0 AND p.t <= 13 THEN 'new'
        WHEN p.t - p.recency <= 26 AND p.p_alive >= 0.5 THEN 'active'
        WHEN p.t - p.recency <= 52 AND p.p_alive >= 0.2 THEN 'at risk'
        ELSE 'lapsed'
    END AS lifecycle
FROM customer_predictions p
CROSS JOIN tier_bounds b
