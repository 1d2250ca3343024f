//! End-to-end tests of `cra run` on real Parquet: the main job, invalid jobs,
//! failures in the middle of a run, and reruns after a killed run.

mod common;

use std::time::{Duration, Instant};

use common::{Workspace, cra_command, leftovers, query_parquet, snapshot};

/// Returns a job over the CDNOW transactions with one stage and one output.
fn simple_job(stage_sql: &str) -> String {
    format!(
        "name: simple\n\
         inputs:\n  transactions:\n    path: data/transactions.parquet\n\
         stages:\n  - name: picked\n    query: {stage_sql:?}\n\
         outputs:\n  - table: picked\n    path: out/picked\n"
    )
}

fn run_invalid(job: &str, extra: &[&str]) -> (Workspace, common::Run) {
    let workspace = Workspace::with_transactions();
    workspace.write("job.yaml", job);
    let mut args = vec!["run", "job.yaml"];
    args.extend_from_slice(extra);
    let run = workspace.cra(&args);
    run.assert_code(2).assert_no_panic();
    assert!(
        !workspace.path("out/picked").exists(),
        "an invalid job wrote output"
    );
    (workspace, run)
}

#[test]
fn main_job_scores_every_customer() {
    let workspace = Workspace::with_main_job();
    let run = workspace.cra(&["run", "jobs/customer_value.yaml"]);
    run.assert_code(0);
    let out = workspace.path("out/customer_value");
    assert!(out.join("_SUCCESS").is_file());
    assert!(out.join("_manifest.json").is_file());

    let rows = query_parquet(&out, "SELECT count(*), count(DISTINCT customer_id) FROM t");
    assert_eq!(rows, vec!["23570|23570"]);
    let segments = query_parquet(&out, "SELECT count(DISTINCT rfm_segment) FROM t");
    assert!(segments[0].parse::<u32>().unwrap() > 5, "{segments:?}");

    // Model scores for every customer; the one repeat buyer whose repeat purchases
    // are all worth $0 has no Gamma-Gamma spend, so no CLV and no value tier.
    let counts = query_parquet(
        &out,
        "SELECT count(p_alive), count(expected_purchases), count(expected_spend),
                count(clv_12m), count(value_tier), count(lifecycle) FROM t",
    );
    assert_eq!(counts, vec!["23570|23570|23569|23569|23569|23570"]);
    let no_spend = query_parquet(
        &out,
        "SELECT frequency > 0, monetary_value FROM t WHERE expected_spend IS NULL",
    );
    assert_eq!(no_spend, vec!["true|0.0"]);
    let ranges = query_parquet(
        &out,
        "SELECT min(p_alive) >= 0, max(p_alive) <= 1, min(expected_purchases) >= 0,
                min(clv_12m) >= 0 FROM t",
    );
    assert_eq!(ranges, vec!["true|true|true|true"]);
    let tiers = query_parquet(
        &out,
        "SELECT value_tier, count(*) FROM t WHERE value_tier IS NOT NULL
         GROUP BY value_tier ORDER BY value_tier",
    );
    let tier_count = |name: &str| -> f64 {
        let row = tiers.iter().find(|r| r.starts_with(name)).unwrap();
        row.split('|').nth(1).unwrap().parse().unwrap()
    };
    assert!(
        (tier_count("high") / 23569.0 - 0.2).abs() < 0.01,
        "{tiers:?}"
    );
    assert!(
        (tier_count("medium") / 23569.0 - 0.3).abs() < 0.01,
        "{tiers:?}"
    );
    let models = workspace.path("out/customer_models");
    let fitted = query_parquet(
        &models,
        "SELECT purchase_model['n'], spend_model['excluded'] FROM t",
    );
    assert_eq!(fitted, vec!["23570|1"]);

    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("_manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["rows"], 23570);
    assert_eq!(manifest["job"], "customer_value");
    assert_eq!(manifest["params"]["as_of"], "1998-06-30");
    let file_rows: u64 = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| file["rows"].as_u64().unwrap())
        .sum();
    assert_eq!(file_rows, 23570);
    assert!(run.stdout().contains("23570 rows"), "{}", run.stdout());
    assert_output_encoding(&out);

    // A second run publishes the same data, with a new run id.
    let sql = "SELECT * FROM t ORDER BY customer_id";
    let first = query_parquet(&out, sql);
    workspace
        .cra(&["run", "jobs/customer_value.yaml"])
        .assert_code(0);
    assert_eq!(query_parquet(&out, sql), first);
    assert_eq!(leftovers(&workspace.path("out")), Vec::<String>::new());
}

/// Checks what warehouses read in each data file below `out`: zstd on every
/// column, dictionaries on the text columns only, and row groups of at most
/// 131,072 rows.
fn assert_output_encoding(out: &std::path::Path) {
    use parquet::basic::{Compression, Encoding, Type};
    use parquet::file::reader::{FileReader, SerializedFileReader};

    let files = snapshot(out)
        .into_keys()
        .filter(|name| name.ends_with(".parquet"))
        .collect::<Vec<_>>();
    assert!(!files.is_empty());
    for name in files {
        let file = std::fs::File::open(out.join(&name)).unwrap();
        let reader = SerializedFileReader::new(file).unwrap();
        for group in reader.metadata().row_groups() {
            assert!(group.num_rows() <= 131_072, "{name}: {}", group.num_rows());
            for column in group.columns() {
                let path = column.column_path().string();
                assert!(
                    matches!(column.compression(), Compression::ZSTD(_)),
                    "{name}: {path} is {:?}",
                    column.compression()
                );
                let text = column.column_type() == Type::BYTE_ARRAY;
                let dictionary = column.dictionary_page_offset().is_some()
                    || column
                        .encodings()
                        .any(|encoding| encoding == Encoding::RLE_DICTIONARY);
                assert_eq!(dictionary, text, "{name}: {path} dictionary");
            }
        }
    }
}

#[test]
fn main_job_matches_published_summary() {
    let workspace = Workspace::with_main_job();
    workspace
        .cra(&[
            "run",
            "jobs/customer_value.yaml",
            "--param",
            "as_of=1997-09-30",
        ])
        .assert_code(0);
    let out = workspace.path("out/customer_value");
    let rows = query_parquet(
        &out,
        "SELECT customer_id, frequency, recency, t, monetary_value FROM t",
    );
    let summary: std::collections::HashMap<i64, (i64, f64, f64, f64)> = rows
        .iter()
        .map(|row| {
            let v: Vec<&str> = row.split('|').collect();
            (
                v[0].parse().unwrap(),
                (
                    v[1].parse().unwrap(),
                    v[2].parse().unwrap(),
                    v[3].parse().unwrap(),
                    v[4].parse().unwrap(),
                ),
            )
        })
        .collect();

    // Sample id to master customer id, from the sample's own transactions.
    let sample =
        std::fs::read_to_string(common::repo().join("data/cdnow/raw/CDNOW_sample.txt"))
            .unwrap();
    let mut customer_of_sample = std::collections::HashMap::new();
    for line in sample.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() == 5 {
            let customer: i64 = fields[0].parse().unwrap();
            let sample_id: i64 = fields[1].parse().unwrap();
            customer_of_sample.insert(sample_id, customer);
        }
    }
    assert_eq!(customer_of_sample.len(), 2357);

    let expected = std::fs::read_to_string(
        common::repo().join("data/cdnow/cdnow_customers_summary_with_transactions.csv"),
    )
    .unwrap();
    let mut checked = 0;
    for line in expected.lines().skip(1) {
        let v: Vec<&str> = line.split(',').collect();
        let id: i64 = v[0].parse().unwrap();
        let (x, t_x, big_t, zbar): (i64, f64, f64, f64) = (
            v[1].parse().unwrap(),
            v[2].parse().unwrap(),
            v[3].parse().unwrap(),
            v[4].parse().unwrap(),
        );
        let customer = customer_of_sample[&id];
        let (frequency, recency, t, monetary) = summary[&customer];
        assert_eq!(frequency, x, "frequency of sample customer {id}");
        assert!(
            (recency - t_x).abs() <= 0.005,
            "recency of {id}: {recency} vs {t_x}"
        );
        assert!((t - big_t).abs() <= 0.005, "t of {id}: {t} vs {big_t}");
        // zbar is rounded half-up to cents, so 22.345 is printed as 22.35: the
        // difference reaches 0.005 itself, plus float rounding in the subtraction.
        assert!(
            (monetary - zbar).abs() <= 0.005 + 1e-9,
            "monetary of {id}: {monetary} vs {zbar}"
        );
        checked += 1;
    }
    assert_eq!(checked, 2357);

    // The plain summary file agrees with the one carrying spend.
    let plain = std::fs::read_to_string(
        common::repo().join("data/cdnow/cdnow_customers_summary.csv"),
    )
    .unwrap();
    for line in plain.lines().skip(1) {
        let v: Vec<&str> = line.split(',').collect();
        let customer = customer_of_sample[&v[0].parse::<i64>().unwrap()];
        assert_eq!(summary[&customer].0, v[1].parse::<i64>().unwrap());
    }
}

#[test]
fn job_runs_from_any_folder() {
    let workspace = Workspace::with_main_job();
    let elsewhere = workspace.path("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let job = workspace.path("jobs/customer_value.yaml");
    workspace
        .cra_in(&elsewhere, &["run", job.to_str().unwrap()])
        .assert_code(0);
    assert!(workspace.path("out/customer_value/_SUCCESS").is_file());
    assert!(!elsewhere.join("out").exists());
}

#[test]
fn string_param_stays_a_value() {
    let workspace = Workspace::with_transactions();
    let injection = "x'; DROP TABLE transactions; --";
    workspace.write(
        "job.yaml",
        "name: injection\n\
         params:\n  label: {type: string, default: none}\n\
         inputs:\n  transactions: {path: data/transactions.parquet}\n\
         stages:\n  - name: labelled\n    query: |\n      \
         SELECT $label AS label, count(*) AS n FROM transactions\n\
         outputs:\n  - {table: labelled, path: out/labelled}\n",
    );
    let param = format!("label={injection}");
    workspace
        .cra(&["run", "job.yaml", "--param", &param])
        .assert_code(0);
    let rows = query_parquet(&workspace.path("out/labelled"), "SELECT label, n FROM t");
    assert_eq!(rows, vec![format!("{injection}|69659")]);
}

#[test]
fn typed_params_bind_by_type() {
    let workspace = Workspace::with_transactions();
    workspace.write(
        "job.yaml",
        "name: typed\n\
         params:\n  \
           day: {type: date, default: 1997-01-01}\n  \
           n: {type: int, default: 2}\n  \
           f: {type: float, default: 1.5}\n  \
           on: {type: bool, default: true}\n\
         inputs:\n  transactions: {path: data/transactions.parquet}\n\
         stages:\n  - name: picked\n    query: |\n      \
         SELECT count(*) AS rows, $n * 2 AS n2, $f * 2 AS f2, $on AS on_flag\n      \
         FROM transactions WHERE order_date = $day\n\
         outputs:\n  - {table: picked, path: out/picked}\n",
    );
    workspace
        .cra(&[
            "run",
            "job.yaml",
            "--param",
            "n=21",
            "--param",
            "day=1997-01-02",
        ])
        .assert_code(0);
    let rows = query_parquet(&workspace.path("out/picked"), "SELECT * FROM t");
    let day_rows = query_parquet(
        &common::repo().join("data/cdnow/transactions.parquet"),
        "SELECT count(*) FROM t WHERE order_date = DATE '1997-01-02'",
    );
    assert_eq!(rows, vec![format!("{}|42|3.0|true", day_rows[0])]);
}

#[test]
fn invalid_jobs_exit_2_with_file_and_problem() {
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "unknown key",
            simple_job("SELECT * FROM transactions").replace("stages:", "stagse:"),
            "did you mean 'stages'?",
        ),
        ("yaml syntax", "name: [x\n".to_string(), "job.yaml:"),
        (
            "missing sql file",
            simple_job("x").replace("query: \"x\"", "sql: sql/missing.sql"),
            "SQL file 'sql/missing.sql' not found",
        ),
        (
            "duplicate stage",
            simple_job("SELECT 1 AS x").replace(
                "outputs:",
                "  - name: picked\n    query: SELECT 2 AS x\noutputs:",
            ),
            "stage name 'picked' is used twice",
        ),
        (
            "stage reads unknown table",
            simple_job("SELECT * FROM transaction"),
            "table 'transaction' not found",
        ),
        (
            "output names unknown table",
            simple_job("SELECT 1 AS x").replace("table: picked", "table: pickd"),
            "did you mean 'picked'?",
        ),
        (
            "both sql and query",
            simple_job("SELECT 1 AS x")
                .replace("    query:", "    sql: a.sql\n    query:"),
            "has both 'sql' and 'query'",
        ),
        (
            "neither sql nor query",
            simple_job("SELECT 1 AS x").replace("    query: \"SELECT 1 AS x\"\n", ""),
            "has neither 'sql' nor 'query'",
        ),
        (
            "default of wrong type",
            simple_job("SELECT 1 AS x").replace(
                "inputs:",
                "params:\n  n: {type: int, default: abc}\ninputs:",
            ),
            "parameter 'n': default 'abc' (a string) does not match type int",
        ),
        (
            "create table",
            simple_job("CREATE TABLE x AS SELECT 1"),
            "CREATE TABLE is not allowed in a stage",
        ),
        (
            "insert",
            simple_job("INSERT INTO transactions VALUES (1)"),
            "INSERT is not allowed in a stage",
        ),
        (
            "copy",
            simple_job("COPY transactions TO 'x.parquet'"),
            "COPY is not allowed in a stage",
        ),
        (
            "drop table",
            simple_job("DROP TABLE transactions"),
            "DROP TABLE is not allowed in a stage",
        ),
        (
            "several statements",
            simple_job("SELECT 1 AS x; SELECT 2 AS y"),
            "SQL contains 2 statements",
        ),
        (
            "undeclared placeholder",
            simple_job("SELECT * FROM transactions WHERE cds > $min_cds"),
            "parameter '$min_cds' is not declared",
        ),
        (
            "misspelt column",
            simple_job("SELECT customer_id, amont FROM transactions"),
            "column 'amont' not found",
        ),
        (
            "wrong argument type",
            simple_job("SELECT rfm_segment('a', 1, 1) AS s FROM transactions"),
            "rfm_segment",
        ),
        (
            "partition column missing",
            simple_job("SELECT customer_id FROM transactions").replace(
                "path: out/picked",
                "path: out/picked\n    partition_by: [segment]",
            ),
            "partition column 'segment' not found",
        ),
    ];
    for (name, job, expected) in cases {
        let (_workspace, run) = run_invalid(&job, &[]);
        let stderr = run.stderr();
        assert!(
            stderr.contains("job.yaml"),
            "case {name}: no file name in:\n{stderr}"
        );
        assert!(
            stderr.contains(expected),
            "case {name}: {expected:?} missing in:\n{stderr}"
        );
        let errors = stderr.lines().filter(|l| l.starts_with("error: ")).count();
        assert_eq!(
            errors, 1,
            "case {name}: expected one error line in:\n{stderr}"
        );
    }
}

#[test]
fn sql_error_points_into_sql_file() {
    let workspace = Workspace::with_transactions();
    workspace.write(
        "sql/pick.sql",
        "SELECT\n    customer_id,\n    amont\nFROM transactions\n",
    );
    workspace.write(
        "job.yaml",
        simple_job("x").replace("query: \"x\"", "sql: sql/pick.sql"),
    );
    let run = workspace.cra(&["run", "job.yaml"]);
    run.assert_code(2)
        .assert_stderr_contains(
            "error: job.yaml: stage 'picked': sql/pick.sql:3:5: column 'amont' not found",
        )
        .assert_stderr_contains("hint: did you mean 'amount'?");
}

#[test]
fn inline_sql_error_points_into_job_file() {
    let workspace = Workspace::with_transactions();
    let job = "name: inline\n\
               inputs:\n  transactions: {path: data/transactions.parquet}\n\
               stages:\n  - name: picked\n    query: |\n      SELECT\n        amont\n      \
               FROM transactions\n\
               outputs:\n  - {table: picked, path: out/picked}\n";
    workspace.write("job.yaml", job);
    let run = workspace.cra(&["run", "job.yaml"]);
    run.assert_code(2).assert_stderr_contains(
        "job.yaml: stage 'picked': job.yaml:8:9: column 'amont' not found",
    );
}

#[test]
fn param_errors_exit_2() {
    let job = simple_job("SELECT * FROM transactions WHERE cds > $min_cds").replace(
        "inputs:",
        "params:\n  min_cds: {type: int, default: 1}\ninputs:",
    );
    let (_w, run) = run_invalid(&job, &["--param", "min_cd=3"]);
    run.assert_stderr_contains("no parameter 'min_cd' is declared")
        .assert_stderr_contains("did you mean 'min_cds'?");
    let (_w, run) = run_invalid(&job, &["--param", "min_cds=three"]);
    run.assert_stderr_contains("'three' is not an int");
    let (_w, run) = run_invalid(&job, &["--param", "min_cds"]);
    run.assert_stderr_contains("is not NAME=VALUE");
}

#[test]
fn several_problems_reported_together() {
    let job = "name: many\n\
               inputs:\n  transactions: {path: data/missing.parquet}\n\
               stages:\n  - name: a\n  - name: a\n    sql: nope.sql\n\
               outputs:\n  - {table: zzz, path: out/x}\n";
    let (_w, run) = run_invalid(job, &[]);
    let stderr = run.stderr();
    assert!(
        stderr.contains("path 'data/missing.parquet' not found"),
        "{stderr}"
    );
    assert!(stderr.contains("has neither 'sql' nor 'query'"), "{stderr}");
    assert!(stderr.contains("SQL file 'nope.sql' not found"), "{stderr}");
    assert!(stderr.contains("table 'zzz'"), "{stderr}");
    assert_eq!(stderr.matches("error: ").count(), 5, "{stderr}");
}

/// A job with two outputs; `fail` makes the second output's query fail at run time.
const TWO_OUTPUTS: &str = "name: two\n\
    params:\n  fail: {type: bool, default: false}\n  fail_stage: {type: bool, default: false}\n\
    inputs:\n  transactions: {path: data/transactions.parquet}\n\
    stages:\n  \
      - name: summary\n    materialize: true\n    query: |\n      \
        SELECT customer_id, count(*) AS orders,\n        \
        CAST(CASE WHEN $fail_stage AND customer_id > 20000 THEN 'x'\n          \
        ELSE CAST(customer_id AS VARCHAR) END AS BIGINT) AS id_again\n      \
        FROM transactions GROUP BY customer_id\n  \
      - name: checked\n    query: |\n      \
        SELECT customer_id,\n        \
        CAST(CASE WHEN $fail AND customer_id > 20000 THEN 'x'\n          \
        ELSE CAST(orders AS VARCHAR) END AS BIGINT) AS orders\n      \
        FROM summary\n\
    outputs:\n  \
      - {table: summary, path: out/summary, partition_by: [orders]}\n  \
      - {table: checked, path: out/checked}\n";

#[test]
fn failure_leaves_previous_output() {
    let workspace = Workspace::with_transactions();
    workspace.write("job.yaml", TWO_OUTPUTS);
    workspace.cra(&["run", "job.yaml"]).assert_code(0);
    let before = snapshot(&workspace.path("out"));
    assert!(
        before.keys().any(|k| k.starts_with("summary/orders=1/")),
        "{:?}",
        before.keys()
    );

    // At a stage: the materialized stage fails while it is computed.
    let run = workspace.cra(&["run", "job.yaml", "--param", "fail_stage=true"]);
    run.assert_code(1)
        .assert_no_panic()
        .assert_stderr_contains("stage 'summary'");
    assert_eq!(snapshot(&workspace.path("out")), before);

    // While writing: the first output is staged, the second fails.
    let run = workspace.cra(&["run", "job.yaml", "--param", "fail=true"]);
    run.assert_code(1)
        .assert_no_panic()
        .assert_stderr_contains("output 'checked'");
    assert_eq!(snapshot(&workspace.path("out")), before);
    assert_eq!(leftovers(&workspace.path("out")), Vec::<String>::new());
}

#[test]
fn rerun_replaces_every_previous_file() {
    let workspace = Workspace::with_transactions();
    workspace.write("job.yaml", TWO_OUTPUTS);
    workspace.cra(&["run", "job.yaml"]).assert_code(0);
    let first = snapshot(&workspace.path("out/summary"));
    workspace.cra(&["run", "job.yaml"]).assert_code(0);
    let second = snapshot(&workspace.path("out/summary"));
    let shared: Vec<&String> = first
        .keys()
        .filter(|k| k.ends_with(".parquet") && second.contains_key(*k))
        .collect();
    assert!(
        shared.is_empty(),
        "files of the first run remain: {shared:?}"
    );
    let first_manifest: serde_json::Value =
        serde_json::from_slice(&first["_manifest.json"]).unwrap();
    let second_manifest: serde_json::Value =
        serde_json::from_slice(&second["_manifest.json"]).unwrap();
    assert_ne!(first_manifest["run_id"], second_manifest["run_id"]);
}

#[test]
fn foreign_folder_needs_force() {
    let workspace = Workspace::with_transactions();
    workspace.write(
        "job.yaml",
        simple_job("SELECT customer_id FROM transactions"),
    );
    workspace.write("out/picked/notes.txt", "keep me");
    let run = workspace.cra(&["run", "job.yaml"]);
    run.assert_code(2)
        .assert_stderr_contains("contains no cra output");
    assert_eq!(
        std::fs::read_to_string(workspace.path("out/picked/notes.txt")).unwrap(),
        "keep me"
    );

    workspace
        .cra(&["run", "job.yaml", "--force"])
        .assert_code(0);
    assert!(!workspace.path("out/picked/notes.txt").exists());
    assert!(workspace.path("out/picked/_SUCCESS").exists());
}

#[test]
fn rerun_after_sigkill_succeeds() {
    let workspace = Workspace::with_transactions();
    // Many rows, so the run is still writing when it is killed.
    workspace.write(
        "job.yaml",
        "name: slow\n\
         inputs:\n  transactions: {path: data/transactions.parquet}\n\
         stages:\n  - name: big\n    query: |\n      \
         SELECT t.*, g.value AS copy FROM transactions t CROSS JOIN range(300) g\n\
         outputs:\n  - {table: big, path: out/big}\n",
    );
    workspace.cra(&["run", "job.yaml"]).assert_code(0);
    let before = snapshot(&workspace.path("out/big"));

    let mut child = cra_command(workspace.root(), &["run", "job.yaml"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let staging = std::fs::read_dir(workspace.path("out"))
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(".cra-staging."));
        if staging {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "run ended before staging appeared"
        );
        assert!(Instant::now() < deadline, "no staging folder appeared");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Let the writer get going; the run takes seconds, so it is mid-write.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "run ended before it could be killed"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(snapshot(&workspace.path("out/big")), before);
    assert!(
        !leftovers(&workspace.path("out")).is_empty(),
        "killed run left no staging"
    );

    workspace.cra(&["run", "job.yaml"]).assert_code(0);
    assert_eq!(leftovers(&workspace.path("out")), Vec::<String>::new());
    let rows = query_parquet(&workspace.path("out/big"), "SELECT count(*) FROM t");
    assert_eq!(rows, vec![(69659 * 300).to_string()]);
}

#[test]
fn inputs_read_csv_glob_and_hive_folders() {
    let workspace = Workspace::with_transactions();
    workspace.write("csv/a.csv", "id,name\n1,ann\n2,bob\n");
    workspace.write("csv/b.csv", "id,name\n3,cy\n");
    workspace.write("csv/notes.txt", "not data");
    workspace.write("hive/region=north/part.csv", "id,amount\n1,10\n");
    workspace.write("hive/region=south/part.csv", "id,amount\n2,20\n3,30\n");
    workspace.write(
        "job.yaml",
        "name: formats\n\
         inputs:\n  \
           people: {path: csv/*.csv, format: csv}\n  \
           sales: {path: hive, format: csv}\n\
         stages:\n  - name: joined\n    query: |\n      \
         SELECT p.name, s.region, s.amount FROM people p JOIN sales s ON p.id = s.id\n\
         outputs:\n  - {table: joined, path: out/joined, sort_by: [name]}\n",
    );
    workspace.cra(&["run", "job.yaml"]).assert_code(0);
    let rows = query_parquet(
        &workspace.path("out/joined"),
        "SELECT * FROM t ORDER BY name",
    );
    assert_eq!(rows, vec!["ann|north|10", "bob|south|20", "cy|south|30"]);
}

#[test]
fn functions_lists_rfm_segment() {
    let workspace = Workspace::new();
    let run = workspace.cra(&["functions"]);
    run.assert_code(0);
    assert!(
        run.stdout().contains("rfm_segment(r_score BIGINT"),
        "{}",
        run.stdout()
    );
}

#[test]
fn bad_usage_exits_2() {
    let workspace = Workspace::new();
    workspace.cra(&["run"]).assert_code(2);
    workspace.cra(&["bogus"]).assert_code(2);
    workspace
        .cra(&["run", "missing.yaml"])
        .assert_code(2)
        .assert_stderr_contains("error: missing.yaml: job file not found");
}

#[test]
fn output_over_job_folder_rejected() {
    let workspace = Workspace::with_transactions();
    let job = simple_job("SELECT customer_id FROM transactions")
        .replace("path: out/picked", "path: .");
    workspace.write("job.yaml", &job);
    workspace.write("notes.txt", "keep me");
    let run = workspace.cra(&["run", "job.yaml", "--force"]);
    run.assert_code(2)
        .assert_stderr_contains("contains the job file's folder");
    assert!(workspace.path("job.yaml").exists());
    assert!(workspace.path("notes.txt").exists());
}

#[test]
fn csv_headers_must_agree() {
    let workspace = Workspace::new();
    workspace.write("csv/a.csv", "amount,id\n10,1\n");
    workspace.write("csv/b.csv", "id,amount\n2,20\n");
    workspace.write(
        "job.yaml",
        "name: csv\ninputs:\n  t: {path: csv, format: csv}\n\
         outputs:\n  - {table: t, path: out/t}\n",
    );
    let run = workspace.cra(&["run", "job.yaml"]);
    run.assert_code(2)
        .assert_stderr_contains("CSV files have different header rows");
    assert!(!workspace.path("out/t").exists());
}

#[test]
fn plain_subfolder_files_rejected() {
    let workspace = Workspace::with_transactions();
    workspace.copy_from_repo("data/cdnow/transactions.parquet", "in/sub/t.parquet");
    workspace.write(
        "job.yaml",
        "name: sub\ninputs:\n  t: {path: in}\noutputs:\n  - {table: t, path: out/t}\n",
    );
    let run = workspace.cra(&["run", "job.yaml"]);
    run.assert_code(2)
        .assert_stderr_contains("not a Hive partition");
}

#[test]
fn deep_expression_does_not_crash() {
    let workspace = Workspace::with_transactions();
    let terms = vec!["cds"; 3000].join(" + ");
    workspace.write(
        "job.yaml",
        simple_job(&format!("SELECT {terms} AS z FROM transactions")),
    );
    workspace
        .cra(&["run", "job.yaml"])
        .assert_code(0)
        .assert_no_panic();
}

#[test]
fn closed_stdout_keeps_success() {
    let workspace = Workspace::with_transactions();
    workspace.write(
        "job.yaml",
        simple_job("SELECT customer_id FROM transactions"),
    );
    let mut child = cra_command(workspace.root(), &["-q", "run", "job.yaml"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Closing the read end makes every write to stdout fail.
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(workspace.path("out/picked/_SUCCESS").exists());
}

#[test]
fn empty_materialized_stage_fails_row_count() {
    // Every stage runs on zero rows, materialized ones too; then the main job's
    // row_count check stops the publish.
    let workspace = Workspace::with_main_job();
    let run = workspace.cra(&[
        "run",
        "jobs/customer_value.yaml",
        "--param",
        "as_of=1996-01-01",
    ]);
    run.assert_code(3).assert_no_panic();
    run.assert_stderr_contains("check 'row_count' failed: the table has 0 rows");
    assert!(!workspace.path("out/customer_value").exists());
}

#[test]
fn hidden_input_files_are_skipped() {
    let workspace = Workspace::with_transactions();
    let data = std::fs::read(workspace.path("data/transactions.parquet")).unwrap();
    workspace.write("plain/a.parquet", &data);
    workspace.write("plain/_tmp.parquet", b"junk");
    workspace.write("plain/.partial.parquet", b"junk");
    workspace.write(
        "job.yaml",
        "name: hidden
inputs:
  transactions:
    path: plain
outputs:
  - table: transactions
    path: out/plain
    checks:
      - row_count: {min: 69659, max: 69659}
",
    );
    workspace.cra(&["run", "job.yaml"]).assert_code(0);

    // In a partitioned folder DataFusion would read the hidden file, so the
    // input is rejected with the file's name.
    workspace.write("parts/k=1/a.parquet", &data);
    workspace.write("parts/k=1/_tmp.parquet", b"junk");
    let text = std::fs::read_to_string(workspace.path("job.yaml")).unwrap();
    workspace.write("job.yaml", text.replace("path: plain", "path: parts"));
    workspace
        .cra(&["run", "job.yaml"])
        .assert_code(2)
        .assert_stderr_contains("_tmp.parquet")
        .assert_stderr_contains("move the file out of the input folder");

    // A glob matches hidden names too, and they are skipped as in folders.
    let text = std::fs::read_to_string(workspace.path("job.yaml")).unwrap();
    workspace.write(
        "job.yaml",
        text.replace("path: parts", "path: plain/*.parquet"),
    );
    workspace.cra(&["run", "job.yaml"]).assert_code(0);

    // Partition folders named with '_' or '.' would be hidden from readers.
    let text = std::fs::read_to_string(workspace.path("job.yaml")).unwrap();
    workspace.write(
        "job.yaml",
        text.replace(
            "    path: out/plain\n",
            "    path: out/plain\n    partition_by: [_p]\n",
        ),
    );
    workspace
        .cra(&["run", "job.yaml"])
        .assert_code(2)
        .assert_stderr_contains("partition column '_p' starts with '_' or '.'");
}
