"""Write synthetic customer statistics drawn from the BG/NBD purchase process.

Each customer makes a first purchase on a day uniform over the first 12 weeks, then
buys at Poisson rate lambda ~ Gamma(r, alpha) while active and drops out after each
repeat purchase with probability p ~ Beta(a, b). Observation ends 78 weeks after the
start; times are whole days divided by 7, as in the CDNOW data. The parameters are
the BG/NBD fit on the CDNOW sample (r 0.243, alpha 4.414, a 0.793, b 2.426).

Usage: python generate.py CUSTOMERS SEED OUT.parquet (columns customer_id, frequency,
recency, t, monetary_value; monetary_value from Gamma-Gamma p 6.25, q 3.74, v 15.44),
in row groups of 131,072 rows.
"""

import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

R, ALPHA, A, B = 0.243, 4.414, 0.793, 2.426
P, Q, V = 6.25, 3.74, 15.44
END_DAY = 78 * 7


def simulate(customers, rng):
    first_day = rng.integers(0, 84, customers)
    rate = rng.gamma(R, 1.0 / ALPHA, customers) / 7.0  # purchases per day
    dropout = rng.beta(A, B, customers)
    frequency = np.zeros(customers, dtype=np.int64)
    last_day = first_day.copy()
    day = first_day.astype(np.float64)
    active = np.ones(customers, dtype=bool)
    while active.any():
        index = np.flatnonzero(active)
        day[index] += rng.exponential(1.0 / rate[index])
        bought = day[index] <= END_DAY
        ended = index[~bought]
        active[ended] = False
        index = index[bought]
        purchase_day = np.floor(day[index]).astype(np.int64)
        # Several purchases on one day count as one purchase day.
        new_day = purchase_day > last_day[index]
        frequency[index[new_day]] += 1
        last_day[index] = np.maximum(last_day[index], purchase_day)
        dropped = rng.random(index.size) < dropout[index]
        active[index[dropped]] = False
    recency = (last_day - first_day) / 7.0
    t = (END_DAY - first_day) / 7.0
    nu = rng.gamma(Q, 1.0 / V, customers)
    spend = np.where(
        frequency > 0,
        rng.gamma(P * np.maximum(frequency, 1), 1.0, customers)
        / (nu * np.maximum(frequency, 1)),
        0.0,
    )
    return frequency, recency, t, spend


def main():
    customers, seed, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    rng = np.random.default_rng(seed)
    frequency, recency, t, spend = simulate(customers, rng)
    table = pa.table(
        {
            "customer_id": np.arange(1, customers + 1, dtype=np.int64),
            "frequency": frequency.astype(np.float64),
            "recency": recency,
            "t": t,
            "monetary_value": spend,
        }
    )
    # Row groups of 131,072 rows, near DuckDB's 122,880: a reader can split the
    # file across cores by row group, as it can most files written by engines.
    pq.write_table(table, out, compression="zstd", row_group_size=131072)


if __name__ == "__main__":
    main()
