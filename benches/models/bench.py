"""Run cra's model functions and lifetimes 0.11.3 on the same customers and compare.

Usage: python bench.py CRA_BINARY WORK_FOLDER CUSTOMERS [--skip-pareto]

Generates CUSTOMERS synthetic customers with generate.py, then times, in one go on
this machine:
- lifetimes: BetaGeoFitter.fit, ParetoNBDFitter.fit, and scoring P(alive) plus
  expected purchases over 52 weeks for every customer, each timed in-process
  around the call alone (the data load is not counted);
- cra: one `cra run` per step (jobs in this folder), timed around the whole process,
  so cra's times include start-up, reading the Parquet input and writing the
  output.
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
    for job in ["fit_bgnbd.yaml", "fit_pareto_nbd.yaml", "score_bgnbd.yaml"]:
        shutil.copy(os.path.join(HERE, job), work)

    warnings.filterwarnings("ignore")
    import pandas as pd
    from lifetimes import BetaGeoFitter, ParetoNBDFitter

    frame = pd.read_parquet(data)
    f, r, t = frame["frequency"], frame["recency"], frame["t"]
    results = {}

    results["BG/NBD fit"] = (
        run_cra(binary, work, "fit_bgnbd.yaml"),
        timed_in_process(lambda: BetaGeoFitter().fit(f, r, t))[0],
    )
    if not skip_pareto:
        results["Pareto/NBD fit"] = (
            run_cra(binary, work, "fit_pareto_nbd.yaml"),
            timed_in_process(lambda: ParetoNBDFitter().fit(f, r, t))[0],
        )
    model = BetaGeoFitter()
    model.params_ = pd.Series({"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426})
    results["BG/NBD score"] = (
        run_cra(binary, work, "score_bgnbd.yaml"),
        timed_in_process(
            lambda: (
                model.conditional_probability_alive(f, r, t),
                model.conditional_expected_number_of_purchases_up_to_time(52, f, r, t),
            )
        )[0],
    )

    print(f"{customers:,} customers, {os.cpu_count()} cores")
    header = f"{'step':<16}{'cra wall s':>11}{'cpu s':>8}{'MiB':>7}"
    header += f"{'lifetimes wall s':>18}{'cpu s':>8}{'MiB':>7}{'lifetimes/cra':>15}"
    print(header)
    for step, (ours, theirs) in results.items():
        print(f"{step:<16}{ours[0]:>11.2f}{ours[1]:>8.2f}{ours[2]:>7.0f}"
              f"{theirs[0]:>18.2f}{theirs[1]:>8.2f}{theirs[2]:>7.0f}"
              f"{theirs[0] / ours[0]:>15.1f}")
    print(json.dumps({step: {"cra": ours, "lifetimes": theirs}
                      for step, (ours, theirs) in results.items()}))


if __name__ == "__main__":
    main()
