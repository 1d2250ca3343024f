-- RFM scores from 1 to 5 by quintile: 5 is the most recent last purchase, the most
-- repeat purchase days and the highest total spend.
--
-- A customer's score is 1 + floor(5 * (customers with a strictly lower value) / all
-- customers), so equal values always get equal scores and the result does not
-- depend on row order or partitioning. Heavy ties (most customers never buy again)
-- leave some middle scores empty, as they must when ties are kept together.
SELECT
    s.*,
    CAST(1 + FLOOR(5.0 * CAST(RANK() OVER (ORDER BY s.last_purchase) - 1 AS DOUBLE)
        / CAST(COUNT(*) OVER () AS DOUBLE)) AS BIGINT) AS r_score,
    CAST(1 + FLOOR(5.0 * CAST(RANK() OVER (ORDER BY s.frequency) - 1 AS DOUBLE)
        / CAST(COUNT(*) OVER () AS DOUBLE)) AS BIGINT) AS f_score,
    CAST(1 + FLOOR(5.0 * CAST(RANK() OVER (ORDER BY s.total_spend) - 1 AS DOUBLE)
        / CAST(COUNT(*) OVER () AS DOUBLE)) AS BIGINT) AS m_score
FROM customer_summary s
