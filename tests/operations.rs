//! End-to-end tests of what an orchestrator relies on: `cra validate`, data
//! checks, the run summary, run ids, JSON logs and the redaction of values taken
//! from the environment.

mod common;

use common::{Workspace, snapshot};
use parquet::file::reader::{FileReader, SerializedFileReader};

/// Returns a job over the CDNOW transactions with one stage, one output and
/// `checks` (YAML list items indented for the output).
fn job_with_checks(checks: &str) -> String {
    format!(
        "name: checked\n\
         inputs:\n  transactions:\n    path: data/transactions.parquet\n\
         stages:\n  - name: customers\n    query: |\n      \
         SELECT customer_id, count(*) AS orders, sum(amount) AS spend\n      \
         FROM transactions GROUP BY customer_id\n\
         outputs:\n  - table: customers\n    path: out/customers\n    checks:\n{checks}"
    )
}

fn read_json(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn validate_accepts_main_job_and_writes_nothing() {
    let workspace = Workspace::with_main_job();
    let run = workspace.cra(&["validate", "jobs/customer_value.yaml"]);
    run.assert_code(0);
    assert!(
        run.stdout().contains("job customer_value is valid"),
        "{}",
        run.stdout()
    );
    assert!(!workspace.path("out").exists(), "validate wrote output");
}

#[test]
fn validate_points_into_stage_sql() {
    let workspace = Workspace::with_transactions();
    let job = job_with_checks(
        "      - not_null: custmer_id\n      - range: {column: spend, min: 0}\n",
    )
    .replace("sum(amount) AS spend", "sum(amout) AS spend");
    workspace.write("job.yaml", job);
    let run = workspace.cra(&["validate", "job.yaml"]);
    run.assert_code(2).assert_no_panic();
    run.assert_stderr_contains("column 'amout' not found");
    run.assert_stderr_contains("did you mean 'amount'?");
}

#[test]
fn validate_reports_check_problems() {
    let workspace = Workspace::with_transactions();
    workspace.write(
        "job.yaml",
        job_with_checks(
            "      - range: {column: customer_id, min: 5, max: 1}\n\
             \x20     - unique: orders\n        not_null: orders\n",
        ),
    );
    let run = workspace.cra(&["validate", "job.yaml"]);
    run.assert_code(2).assert_no_panic();
    run.assert_stderr_contains(
        "job.yaml:14:16: output 'customers': check range: min 5 is above max 1",
    );
    run.assert_stderr_contains("job.yaml:15:9: output 'customers': check names 2 kinds");

    workspace.write(
        "job.yaml",
        job_with_checks("      - not_null: custmer_id\n"),
    );
    let run = workspace.cra(&["validate", "job.yaml"]);
    run.assert_code(2).assert_no_panic();
    run.assert_stderr_contains(
        "job.yaml:14:9: output 'customers': check 'not_null custmer_id': column 'custmer_id' not found",
    );
    run.assert_stderr_contains("did you mean 'customer_id'?");
}

#[test]
fn range_on_text_column_is_invalid() {
    let workspace = Workspace::with_transactions();
    let job = job_with_checks("      - range: {column: label, min: 0}\n")
        .replace("count(*) AS orders", "'x' AS label, count(*) AS orders");
    workspace.write("job.yaml", job);
    let run = workspace.cra(&["run", "job.yaml"]);
    run.assert_code(2).assert_no_panic();
    run.assert_stderr_contains("range needs a numeric column, and 'label' is Utf8");
    assert!(!workspace.path("out").exists());
}

#[test]
fn validate_reads_no_data_pages() {
    // The data pages of a copy of the transactions are overwritten with garbage
    // and its footer is kept, so only reading data rows can fail.
    let workspace = Workspace::with_transactions();
    let path = workspace.path("data/transactions.parquet");
    let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    for group in reader.metadata().row_groups() {
        for column in group.columns() {
            let (start, length) = column.byte_range();
            for byte in &mut bytes[start as usize..(start + length) as usize] {
                *byte = 0xA5;
            }
        }
    }
    std::fs::write(&path, bytes).unwrap();
    workspace.write("job.yaml", job_with_checks("      - row_count: {min: 1}\n"));

    let validated = workspace.cra(&["validate", "job.yaml"]);
    validated.assert_code(0);

    let run = workspace.cra(&["run", "job.yaml"]);
    run.assert_code(1).assert_no_panic();
    run.assert_stderr_contains("error: job.yaml");
    run.assert_stderr_contains(
        "hint: input file 'data/transactions.parquet' cannot be read",
    );
    assert!(!workspace.path("out/customers").exists());
    assert_eq!(common::leftovers(workspace.root()), Vec::<String>::new());
}

#[test]
fn failing_error_check_exits_3_and_keeps_destination() {
    let workspace = Workspace::with_transactions();
    workspace.write("job.yaml", job_with_checks("      - row_count: {min: 1}\n"));
    workspace.cra(&["run", "job.yaml"]).assert_code(0);
    let before = snapshot(&workspace.path("out/customers"));

    workspace.write(
        "job.yaml",
        job_with_checks(
            "      - unique: orders\n        name: orders repeat\n\
             \x20     - accepted_values: {column: orders, values: [1, 2]}\n\
             \x20     - row_count: {max: 10}\n",
        ),
    );
    let run = workspace.cra(&["run", "job.yaml", "--summary-file", "summary.json"]);
    run.assert_code(3).assert_no_panic();
    run.assert_stderr_contains(
        "job.yaml:14:9: output 'customers': check 'orders repeat' failed:",
    );
    run.assert_stderr_contains("for example orders=1 (");
    run.assert_stderr_contains("check 'accepted_values orders' failed:");
    run.assert_stderr_contains("check 'row_count' failed: the table has 23570 rows");
    run.assert_stderr_contains("3 error checks failed, so nothing was published");
    assert_eq!(snapshot(&workspace.path("out/customers")), before);
    assert_eq!(common::leftovers(workspace.root()), Vec::<String>::new());

    let summary = read_json(&workspace.path("summary.json"));
    assert_eq!(summary["exit_code"], 3);
    assert_eq!(summary["status"], "check_failed");
    assert_eq!(summary["outputs"][0]["published"], false);
    let checks = summary["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 3);
    assert!(checks.iter().all(|c| c["passed"] == false));
    assert_eq!(checks[2]["rows"], 23570);
}

/// Each counting check reports exactly its own failing rows: NULLs fail
/// `not_null` only, and NaN fails `range`.
#[test]
fn checks_count_their_failing_rows() {
    let workspace = Workspace::with_transactions();
    workspace.write(
        "job.yaml",
        "name: counted\n\
         inputs:\n  transactions:\n    path: data/transactions.parquet\n\
         stages:\n  - name: customers\n    query: |\n      \
         SELECT customer_id, count(*) AS orders,\n        \
         CASE WHEN count(*) > 3 THEN NULL ELSE sum(amount) END AS spend,\n        \
         CASE WHEN count(*) = 2 THEN CAST('NaN' AS DOUBLE)\n          \
         WHEN count(*) = 1 THEN 0.25 ELSE 1.0 END AS ratio\n      \
         FROM transactions GROUP BY customer_id\n\
         outputs:\n  - table: customers\n    path: out/customers\n    checks:\n\
         \x20     - not_null: [spend]\n        severity: warn\n\
         \x20     - range: {column: spend, min: 10}\n        severity: warn\n\
         \x20     - range: {column: ratio, min: 0, max: 0.5}\n        severity: warn\n\
         \x20     - accepted_values: {column: orders, values: [1, 2, 3]}\n        \
         severity: warn\n\
         \x20     - row_count: {min: 1}\n",
    );
    workspace.cra(&["run", "job.yaml"]).assert_code(0);

    let out = workspace.path("out/customers");
    let count = |condition: &str| -> u64 {
        let rows = common::query_parquet(
            &out,
            &format!("SELECT count(*) FROM t WHERE {condition}"),
        );
        rows[0].parse().unwrap()
    };
    let expected = [
        count("spend IS NULL"),
        count("spend < 10"),
        count("orders <> 1"),
        count("orders > 3"),
        0,
    ];
    assert!(expected[..4].iter().all(|rows| *rows > 0), "{expected:?}");
    let manifest = read_json(&out.join("_manifest.json"));
    let checks = manifest["checks"].as_array().unwrap();
    assert_eq!(checks.len(), expected.len());
    for (check, rows) in checks.iter().zip(expected) {
        assert_eq!(check["failing_rows"].as_u64(), Some(rows), "{check}");
    }
    assert_eq!(checks[4]["rows"], 23570);
}

#[test]
fn warn_check_publishes_and_is_recorded() {
    let workspace = Workspace::with_transactions();
    workspace.write(
        "job.yaml",
        job_with_checks(
            "      - query: SELECT * FROM customers WHERE spend > 1000\n\
             \x20       name: big spenders\n        severity: warn\n\
             \x20     - unique: customer_id\n",
        ),
    );
    let run = workspace.cra(&["run", "job.yaml"]);
    run.assert_code(0);
    assert!(
        run.stdout().contains("checks 1 of 2 passed"),
        "{}",
        run.stdout()
    );
    assert!(
        run.stdout().contains(
            "warning: job.yaml:14:9: output 'customers': check 'big spenders' failed"
        ),
        "{}",
        run.stdout()
    );
    run.assert_stderr_contains("WARN");
    let manifest = read_json(&workspace.path("out/customers/_manifest.json"));
    let checks = manifest["checks"].as_array().unwrap();
    assert_eq!(checks[0]["name"], "big spenders");
    assert_eq!(checks[0]["passed"], false);
    assert_eq!(checks[0]["severity"], "warn");
    assert!(checks[0]["failing_rows"].as_u64().unwrap() > 0);
    assert_eq!(checks[1]["passed"], true);
    assert_eq!(manifest["stages"][0]["name"], "customers");
}

#[test]
fn summary_describes_successful_run() {
    let workspace = Workspace::with_transactions();
    workspace.write("job.yaml", job_with_checks("      - unique: customer_id\n"));
    let run = workspace.cra(&[
        "run",
        "job.yaml",
        "--summary-file",
        "summary.json",
        "--run-id",
        "nightly-2026-12-04",
    ]);
    run.assert_code(0);
    let summary = read_json(&workspace.path("summary.json"));
    assert_eq!(summary["run_id"], "nightly-2026-12-04");
    assert_eq!(summary["job"], "checked");
    assert_eq!(summary["status"], "succeeded");
    assert_eq!(summary["exit_code"], 0);
    assert_eq!(summary["cra_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(summary["stages"][0]["rows"], 23570);
    let output = &summary["outputs"][0];
    assert_eq!(output["published"], true);
    assert_eq!(output["rows"], 23570);
    assert!(output["bytes"].as_u64().unwrap() > 0);
    assert!(!output["files"].as_array().unwrap().is_empty());
    assert_eq!(summary["checks"][0]["passed"], true);
    assert!(
        summary["started_at"].as_str().unwrap()
            <= summary["finished_at"].as_str().unwrap()
    );
    let manifest = read_json(&workspace.path("out/customers/_manifest.json"));
    assert_eq!(manifest["run_id"], "nightly-2026-12-04");
}

#[test]
fn summary_written_for_invalid_job() {
    let workspace = Workspace::with_transactions();
    workspace.write("job.yaml", "name: broken\n");
    let run = workspace.cra(&["run", "job.yaml", "--summary-file", "summary.json"]);
    run.assert_code(2);
    let summary = read_json(&workspace.path("summary.json"));
    assert_eq!(summary["status"], "invalid");
    assert_eq!(summary["exit_code"], 2);
    let message = summary["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("required key 'inputs' is missing"),
        "{message}"
    );
}

#[test]
fn bad_run_id_and_summary_folder_rejected() {
    let workspace = Workspace::with_transactions();
    workspace.write("job.yaml", job_with_checks("      - unique: customer_id\n"));
    let run = workspace.cra(&["run", "job.yaml", "--run-id", "../escape"]);
    run.assert_code(2);
    run.assert_stderr_contains("--run-id '../escape' is not a valid run id");
    let run =
        workspace.cra(&["run", "job.yaml", "--summary-file", "missing/summary.json"]);
    run.assert_code(2);
    run.assert_stderr_contains("folder 'missing' does not exist");
    assert!(!workspace.path("out").exists());
}

#[test]
fn json_logs_are_one_object_per_line() {
    let workspace = Workspace::with_transactions();
    workspace.write("job.yaml", job_with_checks("      - unique: customer_id\n"));
    let run = workspace.cra(&["--log-format", "json", "run", "job.yaml"]);
    run.assert_code(0);
    let stderr = run.stderr();
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(lines.len() >= 3, "{stderr}");
    for line in &lines {
        for key in ["timestamp", "level", "job", "stage", "message", "fields"] {
            assert!(line.get(key).is_some(), "no '{key}' in {line}");
        }
    }
    let stage = lines
        .iter()
        .find(|l| l["message"] == "stage done")
        .expect("a stage line");
    assert_eq!(stage["job"], "checked");
    assert_eq!(stage["stage"], "customers");
    assert_eq!(stage["level"], "INFO");
    assert_eq!(stage["fields"]["rows"], 23570);
}

#[test]
fn environment_values_are_redacted() {
    const SECRET: &str = "Sup3r-S3cret-Value-7f3a";
    let workspace = Workspace::with_transactions();
    // The secret is a parameter default and part of an output path.
    let job = job_with_checks(
        "      - query: SELECT * FROM customers WHERE $token = 'x'\n",
    )
    .replace(
        "inputs:",
        "params:\n  token: {type: string, default: \"${env:CRA_TEST_TOKEN}\"}\ninputs:",
    )
    .replace("path: out/customers", "path: out/${env:CRA_TEST_TOKEN}")
    .replace(
        "GROUP BY customer_id",
        "WHERE $token <> '' GROUP BY customer_id",
    );
    workspace.write("job.yaml", job);
    let output = common::cra_command(
        workspace.root(),
        &["-v", "run", "job.yaml", "--summary-file", "summary.json"],
    )
    .env("CRA_TEST_TOKEN", SECRET)
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(workspace.path(&format!("out/{SECRET}/_SUCCESS")).is_file());
    assert!(!stdout.contains(SECRET), "stdout: {stdout}");
    assert!(!stderr.contains(SECRET), "stderr: {stderr}");
    assert!(stdout.contains("out/***"), "{stdout}");
    let summary = std::fs::read_to_string(workspace.path("summary.json")).unwrap();
    assert!(!summary.contains(SECRET), "{summary}");
    let manifest =
        std::fs::read_to_string(workspace.path(&format!("out/{SECRET}/_manifest.json")))
            .unwrap();
    assert!(!manifest.contains(SECRET), "{manifest}");
    assert!(manifest.contains("***"), "{manifest}");

    // Unset, the variable is an invalid job that names it.
    let run = workspace.cra(&["run", "job.yaml"]);
    run.assert_code(2);
    run.assert_stderr_contains("environment variable CRA_TEST_TOKEN is not set");
}

#[test]
fn explain_prints_each_stage_plan() {
    let workspace = Workspace::with_main_job();
    let run = workspace.cra(&["explain", "jobs/customer_value.yaml"]);
    run.assert_code(0);
    let stdout = run.stdout();
    for stage in ["customer_summary", "customer_models", "customer_value"] {
        assert!(
            stdout.contains(&format!("stage {stage} (")),
            "{stage}:\n{stdout}"
        );
    }
    assert!(stdout.contains("logical plan:"), "{stdout}");
    assert!(stdout.contains("physical plan:"), "{stdout}");
    assert!(
        stdout.contains("Date32(\"1998-06-30\")"),
        "the parameter is bound"
    );
    assert!(!workspace.path("out").exists(), "explain wrote output");
}

#[test]
fn explain_analyze_shows_metrics_of_one_stage() {
    let workspace = Workspace::with_main_job();
    let run = workspace.cra(&[
        "explain",
        "jobs/customer_value.yaml",
        "--stage",
        "customer_models",
        "--analyze",
    ]);
    run.assert_code(0);
    let stdout = run.stdout();
    assert!(
        stdout.contains("stage customer_models (materialized)"),
        "{stdout}"
    );
    assert!(!stdout.contains("stage customer_summary ("), "{stdout}");
    assert!(
        stdout.contains("physical plan with metrics (1 rows in"),
        "{stdout}"
    );
    assert!(stdout.contains("output_rows=23.57 K"), "{stdout}");
    assert!(!workspace.path("out").exists(), "explain wrote output");

    let run = workspace.cra(&[
        "explain",
        "jobs/customer_value.yaml",
        "--stage",
        "customer_model",
    ]);
    run.assert_code(2);
    run.assert_stderr_contains("did you mean 'customer_models'?");
}

#[test]
fn progress_shows_only_on_a_terminal() {
    let workspace = Workspace::with_transactions();
    workspace.write("job.yaml", job_with_checks("      - unique: customer_id\n"));
    // `script` runs cra on a pseudo-terminal, so stderr is a terminal there.
    let command = format!("{} run job.yaml", env!("CARGO_BIN_EXE_cra"));
    let output = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(workspace.root())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{screen}");
    assert!(
        screen.contains("stage customers: 23570 rows in"),
        "{screen}"
    );
    assert!(
        screen.contains("output customers: 23570 rows in"),
        "{screen}"
    );

    let run = workspace.cra(&["run", "job.yaml"]);
    run.assert_code(0);
    assert!(!run.stderr().contains("rows in"), "{}", run.stderr());
}

#[test]
fn null_partition_value_fails_the_run() {
    let workspace = Workspace::with_transactions();
    workspace.write(
        "job.yaml",
        "name: partitioned\n\
         inputs:\n  transactions:\n    path: data/transactions.parquet\n\
         stages:\n  - name: picked\n    query: |\n      \
         SELECT customer_id, CASE WHEN customer_id = 2 THEN NULL ELSE cds END AS cds\n      \
         FROM transactions WHERE customer_id < 5\n\
         outputs:\n  - {table: picked, path: out/picked, partition_by: [cds]}\n",
    );
    let run = workspace.cra(&["run", "job.yaml"]);
    run.assert_code(1).assert_no_panic();
    run.assert_stderr_contains("partition column 'cds' is NULL in 2 rows");
    run.assert_stderr_contains("replace NULL with COALESCE");
    assert!(!workspace.path("out/picked").exists());
    assert_eq!(common::leftovers(workspace.root()), Vec::<String>::new());
}

#[test]
fn summary_never_replaces_job_or_data() {
    let workspace = Workspace::with_transactions();
    let job = job_with_checks("      - unique: customer_id\n");
    workspace.write("job.yaml", &job);
    workspace.cra(&["run", "job.yaml"]).assert_code(0);
    for target in [
        "job.yaml",
        "data/transactions.parquet",
        "out/customers/_manifest.json",
    ] {
        let run = workspace.cra(&["run", "job.yaml", "--summary-file", target]);
        run.assert_code(2);
        run.assert_stderr_contains(&format!("--summary-file '{target}' would overwrite"));
    }
    assert_eq!(
        std::fs::read_to_string(workspace.path("job.yaml")).unwrap(),
        job
    );
}

#[test]
fn summary_replaces_stale_one_on_bad_run_id() {
    let workspace = Workspace::with_transactions();
    workspace.write("job.yaml", job_with_checks("      - unique: customer_id\n"));
    workspace.write("summary.json", "{\"status\": \"succeeded\"}");
    let run = workspace.cra(&[
        "run",
        "job.yaml",
        "--run-id",
        "bad id",
        "--summary-file",
        "summary.json",
    ]);
    run.assert_code(2);
    let summary = read_json(&workspace.path("summary.json"));
    assert_eq!(summary["status"], "invalid");
    assert_eq!(summary["exit_code"], 2);
}

#[test]
fn json_logs_stay_json_on_failure() {
    let workspace = Workspace::with_transactions();
    workspace.write("job.yaml", job_with_checks("      - row_count: {max: 3}\n"));
    let run = workspace.cra(&["--log-format", "json", "run", "job.yaml"]);
    run.assert_code(3);
    let stderr = run.stderr();
    let mut errors = 0;
    for line in stderr.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if value["level"] == "ERROR" {
            errors += 1;
            let message = value["message"].as_str().unwrap();
            assert!(message.contains("outside max 3"), "{message}");
            let hint = value["fields"]["hint"].as_str().unwrap();
            assert!(hint.contains("nothing was published"), "{hint}");
        }
    }
    assert_eq!(errors, 1, "{stderr}");
}

#[test]
fn accepted_values_of_wrong_type_are_invalid() {
    let workspace = Workspace::with_transactions();
    let job =
        job_with_checks("      - accepted_values: {column: label, values: [1, y]}\n")
            .replace("count(*) AS orders", "'x' AS label, count(*) AS orders");
    workspace.write("job.yaml", job);
    let run = workspace.cra(&["validate", "job.yaml"]);
    run.assert_code(2).assert_no_panic();
    run.assert_stderr_contains(
        "the column is Utf8, so its values must be strings, not 1, true",
    );
    run.assert_stderr_contains("YAML reads y, n, yes, no, on and off as booleans");
}

#[test]
fn closed_stderr_keeps_exit_code() {
    let workspace = Workspace::with_transactions();
    workspace.write("job.yaml", "name: broken\n");
    let mut child = common::cra_command(workspace.root(), &["run", "job.yaml"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Closing the read end makes every write to stderr fail.
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(2));
}

#[test]
fn summary_spares_job_file_that_does_not_load() {
    let workspace = Workspace::with_transactions();
    workspace.write("job.yaml", "name: broken\n");
    let run = workspace.cra(&["run", "job.yaml", "--summary-file", "job.yaml"]);
    run.assert_code(2);
    run.assert_stderr_contains("--summary-file 'job.yaml' would overwrite the job file");
    assert_eq!(
        std::fs::read_to_string(workspace.path("job.yaml")).unwrap(),
        "name: broken\n"
    );
}

#[test]
fn numbers_from_environment_are_masked_in_manifest() {
    let workspace = Workspace::with_transactions();
    let job = job_with_checks("      - unique: customer_id\n").replace(
        "inputs:",
        "params:\n  port: {type: int, default: \"${env:CRA_TEST_PORT}\"}\ninputs:",
    );
    workspace.write("job.yaml", job);
    let output = common::cra_command(
        workspace.root(),
        &["run", "job.yaml", "--summary-file", "summary.json"],
    )
    .env("CRA_TEST_PORT", "48213")
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(0));
    for file in ["summary.json", "out/customers/_manifest.json"] {
        let value = read_json(&workspace.path(file));
        assert_eq!(value["params"]["port"], "***", "{file}");
    }
}

#[test]
fn json_errors_shown_whatever_the_filter() {
    let workspace = Workspace::with_transactions();
    workspace.write("job.yaml", "name: broken\n");
    let output = common::cra_command(
        workspace.root(),
        &["--log-format", "json", "run", "job.yaml"],
    )
    .env("RUST_LOG", "off")
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line: serde_json::Value = serde_json::from_str(stderr.trim()).unwrap();
    assert_eq!(line["level"], "ERROR");
    assert!(
        line["message"]
            .as_str()
            .unwrap()
            .contains("required key 'inputs' is missing")
    );
}

#[test]
fn outputs_named_with_a_dot_prefix_stay_apart() {
    let workspace = Workspace::with_transactions();
    workspace.write(
        "job.yaml",
        "name: dotted\n\
         inputs:\n  transactions:\n    path: data/transactions.parquet\n\
         stages:\n  - name: one\n    query: SELECT 1 AS x\n  - name: two\n    query: SELECT 2 AS x\n\
         outputs:\n  - {table: one, path: out/a}\n  - {table: two, path: out/a.b}\n",
    );
    for _ in 0..2 {
        workspace.cra(&["run", "job.yaml"]).assert_code(0);
        assert_eq!(
            common::query_parquet(&workspace.path("out/a"), "SELECT x FROM t"),
            vec!["1"]
        );
        assert_eq!(
            common::query_parquet(&workspace.path("out/a.b"), "SELECT x FROM t"),
            vec!["2"]
        );
    }
}

#[test]
fn recovery_keeps_leftovers_of_a_dotted_name_apart() {
    let workspace = Workspace::with_transactions();
    let job = |third: &str| {
        format!(
            "name: dotted\n\
             inputs:\n  transactions:\n    path: data/transactions.parquet\n\
             stages:\n  - name: one\n    query: SELECT 1 AS x\n\
             \x20 - name: bad\n    query: SELECT CAST(NULL AS BIGINT) AS k, 1 AS x\n\
             outputs:\n  - {{table: one, path: out/a}}\n{third}"
        )
    };
    workspace.write("job.yaml", job(""));
    workspace.cra(&["run", "job.yaml"]).assert_code(0);
    // What a killed commit of another job's output `out/a.b` leaves: its old
    // output moved aside, and no `_COMMITTED`.
    workspace.write(
        "out/.cra-previous.a.b.20261204T000000Z-deadbeef/stray.parquet",
        "x",
    );
    // This run recovers, then fails while writing, so recovery's effect stays.
    workspace.write(
        "job.yaml",
        job("  - {table: bad, path: out/bad, partition_by: [k]}\n"),
    );
    workspace.cra(&["run", "job.yaml"]).assert_code(1);
    assert_eq!(
        common::query_parquet(&workspace.path("out/a"), "SELECT x FROM t"),
        vec!["1"]
    );
    assert!(
        workspace
            .path("out/.cra-previous.a.b.20261204T000000Z-deadbeef/stray.parquet")
            .exists(),
        "recovery of out/a touched the leftovers of out/a.b"
    );
}

#[test]
fn range_treats_negative_zero_as_zero() {
    let workspace = Workspace::with_transactions();
    let job = job_with_checks("      - range: {column: delta, min: 0, max: 0}\n")
        .replace(
            "count(*) AS orders",
            "CAST(-0.0 AS DOUBLE) AS delta, count(*) AS orders",
        );
    workspace.write("job.yaml", job);
    let run = workspace.cra(&["run", "job.yaml"]);
    run.assert_code(0);
}

#[test]
fn memory_limit_spills_sort_and_keeps_output() {
    let workspace = Workspace::new();
    // 1.66 million orders: about 40 MB for the sort, well past its share of the
    // limit below. One partition, because partitions sorting side by side under
    // a tight limit can take the memory one another's merges need, which makes
    // the outcome depend on timing (docs/operations.md).
    workspace
        .cra(&[
            "generate",
            "--customers",
            "600000",
            "--out",
            "data/generated",
        ])
        .assert_code(0);
    workspace.write(
        "job.yaml",
        "name: spill
inputs:
  transactions:
    path: data/generated
stages:
  - name: ordered
    query: SELECT customer_id, order_date, amount FROM transactions
outputs:
  - table: ordered
    path: out/ordered
    sort_by: [amount desc, customer_id, order_date]
engine:
  target_partitions: 1
",
    );
    workspace
        .cra(&["run", "job.yaml", "--summary-file", "unlimited.json"])
        .assert_code(0);
    let unlimited_summary = read_json(&workspace.path("unlimited.json"));
    assert_eq!(unlimited_summary["outputs"][0]["spilled_bytes"], 0);
    let unlimited = common::parquet_contents(&workspace.path("out/ordered"));

    let spill = workspace.path("spill");
    let spill_arg = spill.to_string_lossy().into_owned();
    let run = workspace.cra(&[
        "run",
        "job.yaml",
        "--memory-limit",
        "64M",
        "--spill-dir",
        &spill_arg,
        "--batch-size",
        "4096",
        "--summary-file",
        "limited.json",
    ]);
    run.assert_code(0);
    let limited_summary = read_json(&workspace.path("limited.json"));
    let spilled = limited_summary["outputs"][0]["spilled_bytes"]
        .as_u64()
        .unwrap();
    assert!(spilled > 0, "the sort of the output did not spill");
    // One file at a time for a sorted output, so the bytes match too.
    let limited = common::parquet_contents(&workspace.path("out/ordered"));
    assert_eq!(limited.len(), 1, "a sorted output was split");
    assert!(
        limited == unlimited,
        "the output under a memory limit differs"
    );
    let sorted = "SELECT * FROM t ORDER BY amount DESC, customer_id, order_date";
    let rows = common::query_parquet(&workspace.path("out/ordered"), sorted);
    let in_file_order = common::parquet_rows_in_order(&workspace.path("out/ordered"));
    assert_eq!(rows.len(), 1_658_627);
    assert!(
        rows == in_file_order,
        "the file does not hold the rows in order"
    );

    // The same sort as a stage, explained with its metrics, spills to disk.
    workspace.write(
        "sorted.yaml",
        "name: sorted
inputs:
  transactions:
    path: data/generated
stages:
  - name: ordered
    query: |
      SELECT customer_id, order_date, amount FROM transactions
      ORDER BY amount DESC, customer_id, order_date
outputs:
  - table: ordered
    path: out/sorted
engine:
  target_partitions: 1
",
    );
    let explained = workspace.cra(&[
        "explain",
        "sorted.yaml",
        "--analyze",
        "--memory-limit",
        "64M",
        "--batch-size",
        "4096",
    ]);
    explained.assert_code(0);
    let stdout = explained.stdout();
    let spills: u64 = stdout
        .split("spill_count=")
        .skip(1)
        .filter_map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert!(spills > 0, "no operator spilled:\n{stdout}");

    // A limit too small for one batch fails the run, with a hint on what to change.
    workspace
        .cra(&["run", "job.yaml", "--memory-limit", "1K"])
        .assert_code(1)
        .assert_stderr_contains("memory");
    for bad in [
        ["--memory-limit", "lots"],
        ["--memory-limit", "99999999999999999999"],
        ["--target-partitions", "0"],
        ["--target-partitions", "100000"],
        ["--batch-size", "4294967296"],
    ] {
        let mut args = vec!["run", "job.yaml"];
        args.extend(bad);
        workspace.cra(&args).assert_code(2);
    }
    let huge = std::fs::read_to_string(workspace.path("job.yaml"))
        .unwrap()
        .replace(
            "  target_partitions: 1\n",
            "  batch_size: 18446744073709551615\n",
        );
    workspace.write("huge.yaml", huge);
    workspace
        .cra(&["validate", "huge.yaml"])
        .assert_code(2)
        .assert_stderr_contains("engine.batch_size must be a whole number from 1 to");

    // validate checks the spill folder but creates nothing; a file there is
    // a usage error for validate and run alike.
    let missing = workspace.path("no/such/spill");
    let missing_arg = missing.to_string_lossy().into_owned();
    workspace
        .cra(&["validate", "job.yaml", "--spill-dir", &missing_arg])
        .assert_code(0);
    assert!(!workspace.path("no").exists());
    workspace.write("a-file", "");
    let file_arg = workspace.path("a-file").to_string_lossy().into_owned();
    for command in ["validate", "run"] {
        workspace
            .cra(&[command, "job.yaml", "--spill-dir", &file_arg])
            .assert_code(2)
            .assert_stderr_contains("cannot use the spill folder");
    }
}
