SELECT customer_id,
       amout
FROM transactions
