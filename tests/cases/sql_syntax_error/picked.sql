-- Picks customers.
SELECT customer_id,
       amount
FROM transactions
WHERE amount > 10 AND
