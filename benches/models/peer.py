"""Time lifetimes 0.11.3 on the customers that generate.py wrote.

Usage: python peer.py CUSTOMERS.parquet [--skip-pareto]. Prints one JSON object with
seconds per step: each fit (penalizer 0) and the scoring of P(alive) and expected
purchases over 52 weeks for every customer with the fitted BG/NBD model. The data
load is not timed.
"""

import json
import sys
import time
import warnings

import pandas as pd
from lifetimes import BetaGeoFitter, ParetoNBDFitter

warnings.filterwarnings("ignore")


def timed(step):
    started = time.perf_counter()
    result = step()
    return time.perf_counter() - started, result


def main():
    data = pd.read_parquet(sys.argv[1])
    f, r, t = data["frequency"], data["recency"], data["t"]
    seconds = {}

    seconds["bgnbd_fit"], bgf = timed(lambda: BetaGeoFitter().fit(f, r, t))
    seconds["bgnbd_score"], _ = timed(
        lambda: (
            bgf.conditional_probability_alive(f, r, t),
            bgf.conditional_expected_number_of_purchases_up_to_time(52, f, r, t),
        )
    )
    if "--skip-pareto" not in sys.argv:
        seconds["pareto_nbd_fit"], pnbd = timed(lambda: ParetoNBDFitter().fit(f, r, t))
    params = {name: float(value) for name, value in bgf.params_.items()}
    print(json.dumps({"seconds": seconds, "bgnbd_params": params}))


if __name__ == "__main__":
    main()
