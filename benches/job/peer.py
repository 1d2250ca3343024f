"""The main job as a user would build it without cra: DuckDB for the SQL, lifetimes
for the models.

Usage: python peer.py sql|models|job WORK_FOLDER

Reads and writes inside WORK_FOLDER, where bench.py put the generated
transactions (data/), a copy of the repository's sql/ and data/rfm/:

- sql     the main job's SQL part (customer_summary.sql, rfm_scores.sql, then the
          RFM segment) in DuckDB, from data/ to out/peer_sql/part-0.parquet;
- models  BG/NBD and Gamma-Gamma fitted with lifetimes on out/cra_sql/ (the SQL
          part's output), then P(alive), expected purchases over 52 weeks,
          expected spend and the 12-month CLV of every customer, written to
          out/peer_models/part-0.parquet;
- job     the whole main job: the DuckDB SQL part, lifetimes on its result, then
          the value tier and lifecycle of customer_value.sql in DuckDB, written
          partitioned by rfm_segment to out/peer_job/.

The SQL is the repository's own files, with the changes DuckDB needs: parameters
become literals, CAST(date AS INT) becomes days since 1970-01-01, and
rfm_segment() is a join with data/rfm/segments_by_rfm_code.csv. Comments are
dropped.
"""

import os
import re
import shutil
import sys
import warnings

import duckdb

AS_OF = "1998-06-30"
HORIZON_WEEKS = 52


def repo_sql(work, name):
    """Returns one of the repository's SQL files in DuckDB's dialect."""
    text = open(os.path.join(work, "sql", name)).read()
    text = re.sub(r"--[^\n]*", "", text)
    text = text.replace("$as_of", f"DATE '{AS_OF}'")
    text = re.sub(r"CAST\(([^()]+?) AS INT\)", r"(\1 - DATE '1970-01-01')", text)
    return text.strip()


def quoted(path):
    """Returns `path` as a DuckDB string literal."""
    return "'" + path.replace("'", "''") + "'"


def connect(work):
    con = duckdb.connect()
    segments = os.path.join(work, "data", "rfm", "segments_by_rfm_code.csv")
    con.execute(
        "CREATE TABLE segments AS SELECT CAST(rfm_code AS INTEGER) AS code, segment "
        f"FROM read_csv({quoted(segments)}, header = true, "
        "columns = {'rfm_code': 'VARCHAR', 'segment': 'VARCHAR'})"
    )
    transactions = os.path.join(work, "data", "transactions", "*.parquet")
    con.execute(
        f"CREATE VIEW transactions AS SELECT * FROM read_parquet({quoted(transactions)})"
    )
    return con


def sql_part(con, work):
    """Builds the customer_segments view: summary, RFM scores and segment."""
    # customer_summary is referenced by rfm_scores.sql four times, so it is made a
    # table, as the cra job materializes it.
    con.execute(
        "CREATE TABLE customer_summary AS " + repo_sql(work, "customer_summary.sql")
    )
    con.execute("CREATE VIEW customer_scores AS " + repo_sql(work, "rfm_scores.sql"))
    con.execute(
        "CREATE VIEW customer_segments AS SELECT s.*, g.segment AS rfm_segment "
        "FROM customer_scores s LEFT JOIN segments g "
        "ON g.code = s.r_score * 100 + s.f_score * 10 + s.m_score"
    )


def fit_and_score(frame):
    """Fits both models with lifetimes and adds the score columns to `frame`."""
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    warnings.simplefilter("ignore")
    purchases = BetaGeoFitter()
    purchases.fit(frame["frequency"], frame["recency"], frame["t"])
    repeat = frame[(frame["frequency"] > 0) & (frame["monetary_value"] > 0)]
    spend = GammaGammaFitter()
    spend.fit(repeat["frequency"], repeat["monetary_value"])

    frame["p_alive"] = purchases.conditional_probability_alive(
        frame["frequency"], frame["recency"], frame["t"]
    )
    frame["expected_purchases"] = (
        purchases.conditional_expected_number_of_purchases_up_to_time(
            HORIZON_WEEKS, frame["frequency"], frame["recency"], frame["t"]
        )
    )
    # cra gives no spend to a repeat buyer whose repeat purchases are worth
    # nothing, and the population mean to a customer without repeat purchases.
    valid = (frame["frequency"] == 0) | (frame["monetary_value"] > 0)
    expected_spend = spend.conditional_expected_average_profit(
        frame["frequency"], frame["monetary_value"]
    )
    frame["expected_spend"] = expected_spend.where(valid)
    clv = spend.customer_lifetime_value(
        purchases,
        frame["frequency"],
        frame["recency"],
        frame["t"],
        frame["monetary_value"],
        time=12,
        discount_rate=0.01,
        freq="W",
    )
    frame["clv_12m"] = clv.where(valid)
    return frame


def main():
    mode, work = sys.argv[1], sys.argv[2]
    out = os.path.join(work, "out")
    if mode == "sql":
        con = connect(work)
        sql_part(con, work)
        os.makedirs(os.path.join(out, "peer_sql"), exist_ok=True)
        target = os.path.join(out, "peer_sql", "part-0.parquet")
        con.execute(
            f"COPY customer_segments TO {quoted(target)} (FORMAT parquet, COMPRESSION zstd)"
        )
    elif mode == "models":
        con = duckdb.connect()
        source = os.path.join(out, "cra_sql", "*.parquet")
        frame = con.execute(
            "SELECT customer_id, frequency, recency, t, monetary_value "
            f"FROM read_parquet({quoted(source)})"
        ).df()
        frame = fit_and_score(frame)
        os.makedirs(os.path.join(out, "peer_models"), exist_ok=True)
        frame.to_parquet(
            os.path.join(out, "peer_models", "part-0.parquet"), compression="zstd"
        )
    elif mode == "job":
        con = connect(work)
        sql_part(con, work)
        frame = fit_and_score(con.execute("SELECT * FROM customer_segments").df())
        con.register("customer_predictions_frame", frame)
        con.execute(
            "CREATE VIEW customer_predictions AS SELECT * FROM customer_predictions_frame"
        )
        value = repo_sql(work, "customer_value.sql")
        # rfm_segment was added with the scores above.
        value = value.replace(
            "rfm_segment(p.r_score, p.f_score, p.m_score) AS rfm_segment,", ""
        )
        target = os.path.join(out, "peer_job")
        # DuckDB does not write partitions into a folder that is not empty, and
        # --repeat writes the same folder again.
        shutil.rmtree(target, ignore_errors=True)
        con.execute(
            f"COPY ({value}) TO {quoted(target)} "
            "(FORMAT parquet, COMPRESSION zstd, PARTITION_BY (rfm_segment))"
        )
    else:
        sys.exit(f"unknown mode {mode!r}: expected sql, models or job")


if __name__ == "__main__":
    main()
