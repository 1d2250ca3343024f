"""Time cra against DuckDB and lifetimes on the main job, on the same data, in one go.

Usage: python bench.py CRA_BINARY REPO WORK_FOLDER CUSTOMERS... [--lifetimes-up-to N]
                       [--memory-limit SIZE] [--repeat N]

For each number of customers, generates the transactions with `cra generate`
(default seed, 8 files), then runs, each as its own process timed by /usr/bin/time:

- SQL part:   benches/job/sql_part.yaml in cra, and peer.py sql (DuckDB);
- model part: benches/job/models_part.yaml in cra, and peer.py models
              (lifetimes), both on the SQL part's output of cra;
- whole job:  jobs/customer_value.yaml in cra, and peer.py job (DuckDB, then
              lifetimes, then DuckDB);
- with --memory-limit, the whole job in cra again under that limit, whose
  output must equal the run without it.

The runs that need lifetimes (the model part and the whole job's peer) happen
only up to --lifetimes-up-to customers (default: all), since lifetimes takes
minutes on millions of customers. With --repeat N, each run is made N times and
the run with the median wall time is reported; cra and its peer take turns, so a
change in the machine's speed affects both alike. Each pair's outputs are compared,
so a faster wrong result cannot pass. Prints wall seconds, CPU
seconds (user + system) and peak resident memory of each run, and the ratios
cra / peer.
"""

import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


REPEAT = 1


def median(runs):
    """Returns the run with the median wall time."""
    return sorted(runs, key=lambda run: run["wall"])[len(runs) // 2]


def timed(command, cwd, report_dir):
    """Runs `command` in `cwd` REPEAT times; returns the wall s, CPU s and peak MiB,
    from /usr/bin/time, of the run with the median wall time."""
    return median([timed_once(command, cwd, report_dir) for _ in range(REPEAT)])


def timed_pair(command, peer_command, cwd, report_dir):
    """Runs `command` and `peer_command` in turn, REPEAT times each, and returns the
    median run of each. Taking turns keeps a change in the shared machine's speed
    from favouring whichever of the two would run last."""
    runs, peer_runs = [], []
    for _ in range(REPEAT):
        runs.append(timed_once(command, cwd, report_dir))
        peer_runs.append(timed_once(peer_command, cwd, report_dir))
    return median(runs), median(peer_runs)


def timed_once(command, cwd, report_dir):
    """Runs `command` in `cwd` once; returns wall s, CPU s and peak MiB."""
    report = os.path.join(report_dir, "time.txt")
    full = ["/usr/bin/time", "-f", "%e %U %S %M", "-o", report] + command
    result = subprocess.run(full, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if result.returncode != 0:
        sys.stderr.write(result.stdout.decode() + result.stderr.decode())
        sys.exit(f"{' '.join(command)} failed with exit code {result.returncode}")
    wall, user, system, peak_kib = open(report).read().split()[-4:]
    return {
        "wall": float(wall),
        "cpu": float(user) + float(system),
        "peak_mib": int(peak_kib) / 1024,
    }


def prepare(binary, repo, folder, customers):
    """Generates the data and lays out the jobs and SQL in `folder`."""
    data = os.path.join(folder, "data", "transactions")
    if not os.path.exists(os.path.join(data, "_generator.json")):
        subprocess.run(
            [binary, "-q", "generate", "--customers", str(customers), "--out", data,
             "--files", "8", "--force"],
            check=True,
        )
    shutil.copytree(os.path.join(repo, "sql"), os.path.join(folder, "sql"), dirs_exist_ok=True)
    shutil.copytree(
        os.path.join(repo, "data", "rfm"), os.path.join(folder, "data", "rfm"), dirs_exist_ok=True
    )
    for name in ("sql_part.yaml", "models_part.yaml"):
        shutil.copy(os.path.join(HERE, name), folder)
    job = open(os.path.join(repo, "jobs", "customer_value.yaml")).read()
    job = job.replace("../data/cdnow/transactions.parquet", "data/transactions")
    job = job.replace("../sql/", "sql/").replace("../out/", "out/cra_job/")
    open(os.path.join(folder, "job.yaml"), "w").write(job)
    limited = job.replace("out/cra_job/", "out/cra_job_limited/")
    open(os.path.join(folder, "job_limited.yaml"), "w").write(limited)


def compare(folder, query):
    """Runs a DuckDB query in `folder` that counts differing rows; returns the count."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    return con.execute(query.replace("OUT", os.path.join(folder, "out"))).fetchone()[0]


def data_file_digests(dir):
    """Returns the SHA-256 of each Parquet file under `dir` by folder, ignoring the
    file names, which hold a random write id."""
    import hashlib

    digests = []
    for root, _, files in os.walk(dir):
        for name in sorted(files):
            if name.endswith(".parquet"):
                with open(os.path.join(root, name), "rb") as data:
                    digest = hashlib.sha256(data.read()).hexdigest()
                digests.append((os.path.relpath(root, dir), digest))
    return sorted(digests)


SQL_COLUMNS = (
    "customer_id, frequency, recency, t, monetary_value, orders, "
    "CAST(total_spend AS DOUBLE), r_score, f_score, m_score, rfm_segment"
)


def symmetric_difference(columns, left, right):
    """Returns a query counting the rows of `columns` that only one of two Parquet
    folders under OUT contains, duplicates included."""
    a = f"SELECT {columns} FROM read_parquet('OUT/{left}/*.parquet')"
    b = f"SELECT {columns} FROM read_parquet('OUT/{right}/*.parquet')"
    return f"SELECT count(*) FROM (({a} EXCEPT ALL {b}) UNION ALL ({b} EXCEPT ALL {a}))"


SQL_DIFFERENCES = symmetric_difference(SQL_COLUMNS, "cra_sql", "peer_sql")

# Both fit by maximum likelihood with different optimisers, so scores agree to
# a relative tolerance, not bit for bit.
MODEL_DIFFERENCES = """
SELECT count(*) FROM read_parquet('OUT/cra_models/*.parquet') c
FULL JOIN read_parquet('OUT/peer_models/*.parquet') p USING (customer_id)
WHERE c.customer_id IS NULL OR p.customer_id IS NULL
   OR abs(c.p_alive - p.p_alive) > 1e-4 * greatest(abs(p.p_alive), 1e-6)
   OR abs(c.expected_purchases - p.expected_purchases)
      > 1e-4 * greatest(abs(p.expected_purchases), 1e-6)
   OR (c.clv_12m IS NULL) <> (p.clv_12m IS NULL)
   OR abs(c.clv_12m - p.clv_12m) > 1e-3 * greatest(abs(p.clv_12m), 1e-6)
"""

# Customers whose categories differ. The value tier comes from the rank of a CLV
# that both compute to about 1e-6 relative, so a customer right at a tier bound
# could fall on either side. None did in the runs in docs/benchmarks.md.
JOB_DIFFERENCES = """
SELECT count(*)
FROM read_parquet('OUT/cra_job/customer_value/*/*.parquet', hive_partitioning = true) c
FULL JOIN read_parquet('OUT/peer_job/*/*.parquet', hive_partitioning = true) p
    USING (customer_id)
WHERE c.customer_id IS NULL OR p.customer_id IS NULL
   OR c.rfm_segment IS DISTINCT FROM p.rfm_segment
   OR c.value_tier IS DISTINCT FROM p.value_tier
   OR c.lifecycle IS DISTINCT FROM p.lifecycle
"""


def run_size(binary, repo, work, customers, with_lifetimes, memory_limit):
    folder = os.path.join(work, str(customers))
    os.makedirs(folder, exist_ok=True)
    prepare(binary, repo, folder, customers)
    shutil.rmtree(os.path.join(folder, "out"), ignore_errors=True)
    python = sys.executable
    peer = os.path.join(HERE, "peer.py")
    rows = []

    def cra_command(job, *extra):
        return [binary, "-q", "run", job, *extra]

    def cra(job, *extra):
        return timed(cra_command(job, *extra), folder, folder)

    def with_peer(part, job, peer_name, mode, differences):
        row = {"part": part, "peer_name": peer_name}
        row["cra"], row["peer"] = timed_pair(
            cra_command(job), [python, peer, mode, folder], folder, folder)
        row["differing_rows"] = compare(folder, differences)
        return row

    rows.append(with_peer("SQL part", "sql_part.yaml", "DuckDB", "sql", SQL_DIFFERENCES))
    if with_lifetimes:
        rows.append(with_peer("model part", "models_part.yaml", "lifetimes", "models",
                              MODEL_DIFFERENCES))
        rows.append(with_peer("whole job", "job.yaml", "DuckDB + lifetimes", "job",
                              JOB_DIFFERENCES))
    else:
        rows.append({"part": "model part", "cra": cra("models_part.yaml")})
        rows.append({"part": "whole job", "cra": cra("job.yaml")})

    if memory_limit:
        limited = {
            "part": f"whole job, --memory-limit {memory_limit}",
            "cra": cra("job_limited.yaml", "--memory-limit", memory_limit,
                       "--spill-dir", os.path.join(folder, "spill")),
        }
        # Sorted outputs are written one file at a time, so equal rows mean equal
        # bytes, and the files themselves are compared.
        out = os.path.join(folder, "out")
        same = data_file_digests(os.path.join(out, "cra_job")) == data_file_digests(
            os.path.join(out, "cra_job_limited"))
        limited["differing_rows"] = 0 if same else "files differ"
        limited["peer_name"] = "(same output as without a limit)"
        rows.append(limited)
    return rows


def print_table(results):
    header = ("customers", "part", "cra wall s", "cra CPU s", "cra peak MiB", "peer",
              "peer wall s", "peer CPU s", "peer peak MiB", "cra/peer wall",
              "cra/peer CPU", "differing rows")
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for customers, rows in results:
        for row in rows:
            c, p = row["cra"], row.get("peer")
            cells = [f"{customers:,}", row["part"], f"{c['wall']:.2f}", f"{c['cpu']:.2f}",
                     f"{c['peak_mib']:.0f}", row.get("peer_name", "")]
            if p:
                cells += [f"{p['wall']:.2f}", f"{p['cpu']:.2f}", f"{p['peak_mib']:.0f}",
                          f"{c['wall'] / p['wall']:.3f}", f"{c['cpu'] / p['cpu']:.3f}"]
            else:
                cells += ["", "", "", "", ""]
            cells.append(str(row.get("differing_rows", "")))
            print("| " + " | ".join(cells) + " |")


def main():
    global REPEAT
    args = sys.argv[1:]
    lifetimes_up_to = None
    memory_limit = None
    if "--lifetimes-up-to" in args:
        at = args.index("--lifetimes-up-to")
        lifetimes_up_to = int(args[at + 1])
        del args[at:at + 2]
    if "--memory-limit" in args:
        at = args.index("--memory-limit")
        memory_limit = args[at + 1]
        del args[at:at + 2]
    if "--repeat" in args:
        at = args.index("--repeat")
        REPEAT = int(args[at + 1])
        del args[at:at + 2]
    binary, repo, work = args[0], args[1], args[2]

    sizes = [int(n) for n in args[3:]] or [1_000_000]
    results = []
    for customers in sizes:
        with_lifetimes = lifetimes_up_to is None or customers <= lifetimes_up_to
        rows = run_size(binary, repo, work, customers, with_lifetimes, memory_limit)
        results.append((customers, rows))
        print(f"{customers:,} customers done", file=sys.stderr, flush=True)

    print_table(results)
    with open(os.path.join(work, "results.json"), "w") as out:
        json.dump(results, out, indent=1)
    failed = [
        (customers, row["part"])
        for customers, rows in results
        for row in rows
        if row.get("differing_rows", 0) != 0
    ]
    if failed:
        sys.exit(f"outputs differ: {failed}")


if __name__ == "__main__":
    main()
