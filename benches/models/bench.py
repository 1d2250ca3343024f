"""Run cra's model functions and lifetimes 0.11.3 on the same customers and compare.

Usage: python bench.py CRA_BINARY WORK_FOLDER CUSTOMERS [--skip-pareto]

Generates CUSTOMERS synthetic customers with generate.py, then times, in one go on
this machine:
- lifetimes: BetaGeoFitter.fit, ParetoNBDFitter.fit, and scoring P(alive) plus
  expected purchases over 52 weeks for every customer, each timed in-process
  around the call alone (the data load is not counted);
- cra: one `cra run` per step (jobs in this folder), timed around the whole process,
  so cra's times include start-up and reading the Parquet input. The scoring step
  sums the scores, as lifetimes keeps them in memory; "score + write" also writes
  them to Parquet.
Prints wall seconds, CPU seconds and peak memory of each step and the ratio
lifetimes / cra of wall time.
"""

import json
import os
import resource
import shutil
import subprocess
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))


def cpu_seconds(usage):
    return usage.ru_utime + usage.ru_stime


def run_cra(binary, work, job, params=()):
    """Runs one cra job; returns wall, CPU and peak memory in MiB, measured by
    /usr/bin/time."""
    report = os.path.join(work, "time.txt")
    command = ["/usr/bin/time", "-f", "%e %U %S %M", "-o", report, binary, "-q", "run", job]
    for param in params:
        command += ["--param", param]
    subprocess.run(command, cwd=work, check=True, stdout=subprocess.DEVNULL)
    wall, user, system, peak_kib = open(report).read().split()
    return float(wall), float(user) + float(system), int(peak_kib) / 1024


def timed_in_process(step):
    before = cpu_seconds(resource.getrusage(resource.RUSAGE_SELF))
    started = time.perf_counter()
    result = step()
    wall = time.perf_counter() - started
    cpu = cpu_seconds(resource.getrusage(resource.RUSAGE_SELF)) - before
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return (wall, cpu, peak), result


def main():
    binary, work, customers = sys.argv[1], sys.argv[2], int(sys.argv[3])
    skip_pareto = "--skip-pareto" in sys.argv
    os.makedirs(work, exist_ok=True)
    data = os.path.join(work, "customers.parquet")
    subprocess.run([sys.executable, os.path.join(HERE, "generate.py"), str(customers), "1", data],
                   check=True)
    for job in ["fit_bgnbd.yaml", "fit_pareto_nbd.yaml", "score_bgnbd.yaml",
                "score_bgnbd_sum.yaml"]:
        shutil.copy(os.path.join(HERE, job), work)

    warnings.filterwarnings("ignore")
    import pandas as pd
    from lifetimes import BetaGeoFitter, ParetoNBDFitter

    frame = pd.read_parquet(data)
    f, r, t = frame["frequency"], frame["recency"], frame["t"]
    results = {}

    agreement = {}
    timing, fitted = timed_in_process(lambda: BetaGeoFitter().fit(f, r, t))
    results["BG/NBD fit"] = (run_cra(binary, work, "fit_bgnbd.yaml"), timing)
    agreement["BG/NBD fit"] = largest_difference(work, "fit_bgnbd", fitted.params_)
    if not skip_pareto:
        timing, fitted = timed_in_process(lambda: ParetoNBDFitter().fit(f, r, t))
        results["Pareto/NBD fit"] = (run_cra(binary, work, "fit_pareto_nbd.yaml"), timing)
        agreement["Pareto/NBD fit"] = largest_difference(work, "fit_pareto_nbd",
                                                         fitted.params_)
    model = BetaGeoFitter()
    model.params_ = pd.Series({"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426})
    scoring = timed_in_process(
        lambda: (
            model.conditional_probability_alive(f, r, t),
            model.conditional_expected_number_of_purchases_up_to_time(52, f, r, t),
        )
    )[0]
    # lifetimes returns the scores in memory, so the cra job that sums them is the
    # like-for-like step. The job that writes them to Parquet is shown beside it.
    results["BG/NBD score"] = (run_cra(binary, work, "score_bgnbd_sum.yaml"), scoring)
    results["score + write"] = (run_cra(binary, work, "score_bgnbd.yaml"), scoring)

    print(f"{customers:,} customers, {os.cpu_count()} cores")
    header = f"{'step':<16}{'cra wall s':>11}{'cpu s':>8}{'MiB':>7}"
    header += f"{'lifetimes wall s':>18}{'cpu s':>8}{'MiB':>7}{'lifetimes/cra':>15}"
    print(header)
    for step, (ours, theirs) in results.items():
        print(f"{step:<16}{ours[0]:>11.2f}{ours[1]:>8.2f}{ours[2]:>7.0f}"
              f"{theirs[0]:>18.2f}{theirs[1]:>8.2f}{theirs[2]:>7.0f}"
              f"{theirs[0] / ours[0]:>15.1f}")
    for step, difference in agreement.items():
        print(f"{step}: largest relative difference of a parameter, cra against "
              f"lifetimes: {difference:.1e}")
    print(json.dumps({step: {"cra": ours, "lifetimes": theirs}
                      for step, (ours, theirs) in results.items()}))


def largest_difference(work, output, params):
    """Returns the largest relative difference between the parameters cra wrote to
    `output` and lifetimes' fitted `params`."""
    import pyarrow.parquet as pq

    model = pq.read_table(os.path.join(work, "out", output)).to_pylist()[0]["model"]
    return max(abs(model[name] - value) / abs(value) for name, value in params.items())


if __name__ == "__main__":
    main()
