-- RFM scores from 1 to 5 by quintile: 5 is the most recent last purchase, the most
-- repeat purchase days and the highest total spend.
--
-- A customer's score is 1 + floor(5 * (customers with a strictly lower value) / all
-- customers), so equal values always get equal scores and the result does not
-- depend on row order or partitioning. Heavy ties (most customers never buy again)
-- leave some middle scores empty, as they must when ties are kept together.
--
-- No window runs over the customers, because a window keeps its rows in memory
-- and cannot spill. The windows below run over the distinct values of one column,
-- after a sort that can spill. With n
-- customers and values x(1) <= ... <= x(n), a customer's value v has at least
-- k * n / 5 customers strictly below it exactly when v > x(ceil(k * n / 5)), the
-- smallest value that at least k * n / 5 customers do not exceed. Those four
-- bounds per measure come from the count of each distinct value, summed in value
-- order. Each customer's score is then 1 plus the number of bounds below its value,
-- so a NULL value scores 1.
WITH customers AS (
    SELECT COUNT(*) AS n FROM customer_summary
),
last_purchase_counts AS (
    SELECT last_purchase AS v, COUNT(*) AS c FROM customer_summary GROUP BY last_purchase
),
frequency_counts AS (
    SELECT frequency AS v, COUNT(*) AS c FROM customer_summary GROUP BY frequency
),
total_spend_counts AS (
    SELECT total_spend AS v, COUNT(*) AS c FROM customer_summary GROUP BY total_spend
),
-- at_most: customers whose value is v or lower.
last_purchase_running AS (
    SELECT v, SUM(c) OVER (ORDER BY v ROWS UNBOUNDED PRECEDING) AS at_most
    FROM last_purchase_counts
),
frequency_running AS (
    SELECT v, SUM(c) OVER (ORDER BY v ROWS UNBOUNDED PRECEDING) AS at_most
    FROM frequency_counts
),
total_spend_running AS (
    SELECT v, SUM(c) OVER (ORDER BY v ROWS UNBOUNDED PRECEDING) AS at_most
    FROM total_spend_counts
),
last_purchase_bounds AS (
    SELECT
        MIN(CASE WHEN 5 * r.at_most >= 1 * n.n THEN r.v END) AS b1,
        MIN(CASE WHEN 5 * r.at_most >= 2 * n.n THEN r.v END) AS b2,
        MIN(CASE WHEN 5 * r.at_most >= 3 * n.n THEN r.v END) AS b3,
        MIN(CASE WHEN 5 * r.at_most >= 4 * n.n THEN r.v END) AS b4
    FROM last_purchase_running r CROSS JOIN customers n
),
frequency_bounds AS (
    SELECT
        MIN(CASE WHEN 5 * r.at_most >= 1 * n.n THEN r.v END) AS b1,
        MIN(CASE WHEN 5 * r.at_most >= 2 * n.n THEN r.v END) AS b2,
        MIN(CASE WHEN 5 * r.at_most >= 3 * n.n THEN r.v END) AS b3,
        MIN(CASE WHEN 5 * r.at_most >= 4 * n.n THEN r.v END) AS b4
    FROM frequency_running r CROSS JOIN customers n
),
total_spend_bounds AS (
    SELECT
        MIN(CASE WHEN 5 * r.at_most >= 1 * n.n THEN r.v END) AS b1,
        MIN(CASE WHEN 5 * r.at_most >= 2 * n.n THEN r.v END) AS b2,
        MIN(CASE WHEN 5 * r.at_most >= 3 * n.n THEN r.v END) AS b3,
        MIN(CASE WHEN 5 * r.at_most >= 4 * n.n THEN r.v END) AS b4
    FROM total_spend_running r CROSS JOIN customers n
)
SELECT
    s.*,
    CAST(1
        + CASE WHEN s.last_purchase > r.b1 THEN 1 ELSE 0 END
        + CASE WHEN s.last_purchase > r.b2 THEN 1 ELSE 0 END
        + CASE WHEN s.last_purchase > r.b3 THEN 1 ELSE 0 END
        + CASE WHEN s.last_purchase > r.b4 THEN 1 ELSE 0 END AS BIGINT) AS r_score,
    CAST(1
        + CASE WHEN s.frequency > f.b1 THEN 1 ELSE 0 END
        + CASE WHEN s.frequency > f.b2 THEN 1 ELSE 0 END
        + CASE WHEN s.frequency > f.b3 THEN 1 ELSE 0 END
        + CASE WHEN s.frequency > f.b4 THEN 1 ELSE 0 END AS BIGINT) AS f_score,
    CAST(1
        + CASE WHEN s.total_spend > m.b1 THEN 1 ELSE 0 END
        + CASE WHEN s.total_spend > m.b2 THEN 1 ELSE 0 END
        + CASE WHEN s.total_spend > m.b3 THEN 1 ELSE 0 END
        + CASE WHEN s.total_spend > m.b4 THEN 1 ELSE 0 END AS BIGINT) AS m_score
FROM customer_summary s
CROSS JOIN last_purchase_bounds r
CROSS JOIN frequency_bounds f
CROSS JOIN total_spend_bounds m
