//! The model functions through SQL in jobs: fits on the CDNOW calibration sample
//! against the published estimates, scores against `lifetimes`, and NULL handling.

mod common;

use common::{Workspace, query_parquet};

fn calibration_workspace() -> Workspace {
    let workspace = Workspace::new();
    for file in [
        "data/cdnow/cdnow_customers_summary.csv",
        "data/cdnow/cdnow_customers_summary_with_transactions.csv",
    ] {
        workspace.copy_from_repo(file, file);
    }
    workspace
}

fn field(row: &str, index: usize) -> f64 {
    row.split('|').nth(index).unwrap().parse().unwrap()
}

fn assert_near(name: &str, actual: f64, expected: f64, tolerance: f64) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{name}: {actual} is not within {tolerance} of {expected}"
    );
}

#[test]
fn fits_in_sql_match_published() {
    let workspace = calibration_workspace();
    workspace.write(
        "fit.yaml",
        r#"name: fit
inputs:
  summary: {path: data/cdnow/cdnow_customers_summary.csv, format: csv}
  spend: {path: data/cdnow/cdnow_customers_summary_with_transactions.csv, format: csv}
stages:
  - name: fits
    query: |
      SELECT
        bgnbd_fit(frequency, recency, "T") AS bgnbd,
        pareto_nbd_fit(frequency, recency, "T") AS pareto,
        mbgnbd_fit(frequency, recency, "T") AS mbg,
        (SELECT gamma_gamma_fit(x, zbar) FROM spend) AS gg
      FROM summary
outputs:
  - {table: fits, path: out/fits}
"#,
    );
    workspace.cra(&["run", "fit.yaml"]).assert_code(0);
    let rows = query_parquet(
        &workspace.path("out/fits"),
        "SELECT bgnbd['r'], bgnbd['alpha'], bgnbd['a'], bgnbd['b'], bgnbd['log_likelihood'],
                bgnbd['n'], pareto['r'], pareto['alpha'], pareto['s'], pareto['beta'],
                pareto['log_likelihood'], mbg['r'], mbg['alpha'], mbg['a'], mbg['b'],
                gg['p'], gg['q'], gg['v'], gg['n'], gg['excluded'], bgnbd['model']
         FROM t",
    );
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    let published = [
        ("bgnbd r", 0.243, 5e-4),
        ("bgnbd alpha", 4.414, 5e-4),
        ("bgnbd a", 0.793, 5e-4),
        ("bgnbd b", 2.426, 5e-4),
        ("bgnbd log-likelihood", -9582.4, 0.1),
        ("bgnbd n", 2357.0, 0.0),
        ("pareto r", 0.553, 2e-3),
        ("pareto alpha", 10.578, 2e-3),
        ("pareto s", 0.606, 2e-3),
        ("pareto beta", 11.669, 2e-3),
        ("pareto log-likelihood", -9595.0, 0.1),
        ("mbgnbd r", 0.525, 5e-4),
        ("mbgnbd alpha", 6.183, 5e-4),
        ("mbgnbd a", 0.891, 5e-4),
        ("mbgnbd b", 1.614, 5e-4),
        ("gamma-gamma p", 6.25, 0.01),
        ("gamma-gamma q", 3.74, 0.01),
        ("gamma-gamma v", 15.44, 0.01),
        ("gamma-gamma n", 946.0, 0.0),
        ("gamma-gamma excluded", 0.0, 0.0),
    ];
    for (index, (name, expected, tolerance)) in published.into_iter().enumerate() {
        assert_near(name, field(row, index), expected, tolerance);
    }
    assert!(row.ends_with("|bgnbd"), "{row}");
}

#[test]
fn scores_accept_literal_models() {
    let workspace = Workspace::new();
    workspace.write(
        "x.csv",
        "id,frequency,recency,t\n1,2,30.43,38.86\n2,,1,2\n3,1.5,1,2\n4,1,3,2\n",
    );
    workspace.write(
        "score.yaml",
        r#"name: score
inputs:
  customers: {path: x.csv, format: csv}
stages:
  - name: scored
    query: |
      SELECT id,
        bgnbd_expected_purchases(39, frequency, recency, t,
          named_struct('r', 0.243, 'alpha', 4.414, 'a', 0.793, 'b', 2.426)) AS expected,
        bgnbd_p_alive(frequency, recency, t,
          named_struct('r', 0.243, 'alpha', 4.414, 'a', 0.793, 'b', 2.426)) AS p_alive
      FROM customers
outputs:
  - {table: scored, path: out/scored, sort_by: [id]}
"#,
    );
    let run = workspace.cra(&["run", "score.yaml"]);
    run.assert_code(0);
    let rows =
        query_parquet(&workspace.path("out/scored"), "SELECT * FROM t ORDER BY id");
    assert_eq!(rows.len(), 4);

    // Two rows have invalid statistics; the NULL row is not counted.
    let stdout = run.stdout();
    for function in ["bgnbd_expected_purchases", "bgnbd_p_alive"] {
        let line =
            format!("output scored: {function} scored NULL for 2 rows with invalid");
        assert!(stdout.contains(&line), "{line:?} missing in:\n{stdout}");
    }
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(workspace.path("out/scored/_manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["invalid_statistics"]["bgnbd_p_alive"], 2);
    // The published conditional expectation for x = 2, t_x = 30.43, T = 38.86.
    assert_near("expected", field(&rows[0], 1), 1.226, 5e-4);
    // NULL frequency, non-integer frequency and recency > t give NULL.
    assert_eq!(rows[1], "2||");
    assert_eq!(rows[2], "3||");
    assert_eq!(rows[3], "4||");
}

#[test]
fn score_with_wrong_model_is_invalid() {
    let workspace = Workspace::new();
    workspace.write("x.csv", "id,frequency,recency,t\n1,2,30.43,38.86\n");
    workspace.write(
        "score.yaml",
        r#"name: score
inputs:
  customers: {path: x.csv, format: csv}
stages:
  - name: scored
    query: |
      SELECT bgnbd_p_alive(frequency, recency, t,
        named_struct('p', 1.0, 'q', 2.0, 'v', 3.0)) AS p FROM customers
outputs:
  - {table: scored, path: out/scored}
"#,
    );
    let run = workspace.cra(&["run", "score.yaml"]);
    run.assert_code(2).assert_no_panic().assert_stderr_contains(
        "bgnbd_p_alive: argument 4 lacks model field(s) r, alpha, a, b",
    );
}

#[test]
fn literal_model_with_bad_parameter_fails() {
    let workspace = Workspace::new();
    workspace.write(
        "x.csv",
        "id,frequency,recency,t,spend\n1,2,30.43,38.86,20.5\n",
    );
    for (call, parameter) in [
        (
            "bgnbd_p_alive(frequency, recency, t, \
             named_struct('r', -0.5, 'alpha', 4.4, 'a', 0.8, 'b', 2.4))",
            "'r' is -0.5",
        ),
        (
            "gamma_gamma_expected_spend(frequency, spend, \
             named_struct('p', 6.25, 'q', 0.0, 'v', 15.4))",
            "'q' is 0",
        ),
    ] {
        workspace.write(
            "score.yaml",
            format!(
                "name: score\ninputs:\n  customers: {{path: x.csv, format: csv}}\n\
                 stages:\n  - name: scored\n    query: SELECT {call} AS x FROM customers\n\
                 outputs:\n  - {{table: scored, path: out/scored}}\n"
            ),
        );
        let run = workspace.cra(&["run", "score.yaml"]);
        assert_ne!(run.code(), 0, "{call}");
        run.assert_no_panic();
        run.assert_stderr_contains(&format!("model parameter {parameter}"));
        assert!(!workspace.path("out/scored").exists());
    }
}

#[test]
fn holdout_job_reproduces_paper_totals() {
    let workspace = Workspace::with_main_job();
    workspace
        .cra(&["run", "jobs/cdnow_holdout.yaml"])
        .assert_code(0);
    let customers = workspace.path("out/cdnow_holdout/customers");
    let totals = query_parquet(
        &customers,
        "SELECT count(*), sum(actual_purchases), sum(predicted_purchases) FROM t",
    );
    let row = &totals[0];
    assert_eq!(field(row, 0), 2357.0);
    // The published BG/NBD holdout check on this sample: 1,882 repeat purchase days
    // in weeks 40 to 78, about 1,653 predicted.
    assert_eq!(field(row, 1), 1882.0);
    assert_near("predicted total", field(row, 2), 1653.0, 1.0);

    let groups = query_parquet(
        &workspace.path("out/cdnow_holdout/by_frequency"),
        "SELECT frequency_label, customers FROM t ORDER BY frequency_group",
    );
    let labels: Vec<&str> = groups
        .iter()
        .map(|g| g.split('|').next().unwrap())
        .collect();
    assert_eq!(labels, ["0", "1", "2", "3", "4", "5", "6", "7+"]);
    let sum: f64 = groups.iter().map(|g| field(g, 1)).sum();
    assert_eq!(sum, 2357.0);
}

/// Reads the parameters `lifetimes` fitted, as written by
/// `scripts/reference/make_fixtures.py`.
fn lifetimes_params(model: &str) -> serde_json::Value {
    let path = common::repo().join("tests/fixtures/models/params.json");
    let params: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    params["models"][model]["params"].clone()
}

/// Writes `params` as a SQL `named_struct` literal with full precision.
fn literal(params: &serde_json::Value, names: &[&str]) -> String {
    let fields: Vec<String> = names
        .iter()
        .map(|name| {
            format!(
                "'{name}', CAST({:?} AS DOUBLE)",
                params[*name].as_f64().unwrap()
            )
        })
        .collect();
    format!("named_struct({})", fields.join(", "))
}

fn relative_difference(actual: f64, expected: f64) -> f64 {
    if actual == expected {
        return 0.0;
    }
    (actual - expected).abs() / expected.abs().max(1e-300)
}

/// Runs `select` over a fixture CSV in a job and returns the output rows by id.
fn run_over_fixture(fixtures: &[(&str, &str)], select: &str) -> Vec<Vec<f64>> {
    let workspace = Workspace::new();
    let mut inputs = String::new();
    for (table, file) in fixtures {
        let from = format!("tests/fixtures/models/{file}");
        workspace.copy_from_repo(&from, file);
        inputs.push_str(&format!("  {table}: {{path: {file}, format: csv}}\n"));
    }
    let job = format!(
        "name: compare\ninputs:\n{inputs}stages:\n  - name: compared\n    query: |\n      {}\n\
         outputs:\n  - {{table: compared, path: out/compared}}\n",
        select.replace('\n', "\n      ")
    );
    workspace.write("compare.yaml", job);
    workspace.cra(&["run", "compare.yaml"]).assert_code(0);
    query_parquet(
        &workspace.path("out/compared"),
        "SELECT * FROM t ORDER BY 1",
    )
    .iter()
    .map(|row| {
        row.split('|')
            .map(|v| v.parse().unwrap_or(f64::NAN))
            .collect()
    })
    .collect()
}

#[test]
fn purchase_scores_match_lifetimes() {
    for (model, names) in [
        ("bgnbd", ["r", "alpha", "a", "b"]),
        ("pareto_nbd", ["r", "alpha", "s", "beta"]),
        ("mbgnbd", ["r", "alpha", "a", "b"]),
    ] {
        let model_literal = literal(&lifetimes_params(model), &names);
        let select = format!(
            "SELECT id,
               {model}_p_alive(frequency, recency, t, {model_literal}), p_alive,
               {model}_expected_purchases(39, frequency, recency, t, {model_literal}),
               expected_39,
               {model}_expected_purchases(52, frequency, recency, t, {model_literal}),
               expected_52
             FROM scores"
        );
        let file = format!("{model}_scores.csv");
        let rows = run_over_fixture(&[("scores", &file)], &select);
        assert_eq!(rows.len(), 2357, "{model}");
        let mut worst = 0.0_f64;
        for row in &rows {
            for (ours, theirs, what) in [
                (row[1], row[2], "p_alive"),
                (row[3], row[4], "expected_39"),
                (row[5], row[6], "expected_52"),
            ] {
                assert!(
                    theirs.is_finite(),
                    "{model}: reference {what} of {} is not finite",
                    row[0]
                );
                let difference = relative_difference(ours, theirs);
                assert!(
                    difference <= 1e-8,
                    "{model} {what} of customer {}: {ours} vs lifetimes {theirs}",
                    row[0]
                );
                worst = worst.max(difference);
            }
        }
        println!("{model}: largest relative difference from lifetimes {worst:.2e}");
    }
}

#[test]
fn spend_and_clv_match_lifetimes() {
    let purchase = literal(&lifetimes_params("bgnbd"), &["r", "alpha", "a", "b"]);
    let spend = literal(&lifetimes_params("gamma_gamma"), &["p", "q", "v"]);
    let select = format!(
        "SELECT g.id,
           gamma_gamma_expected_spend(g.frequency, g.monetary_value, {spend}), g.expected_spend,
           clv(b.frequency, b.recency, b.t, g.monetary_value, {purchase}, {spend},
               12, 0.01, 4.345),
           g.clv_12m
         FROM spend g JOIN scores b ON b.id = g.id"
    );
    let rows = run_over_fixture(
        &[
            ("spend", "gamma_gamma_scores.csv"),
            ("scores", "bgnbd_scores.csv"),
        ],
        &select,
    );
    assert_eq!(rows.len(), 2357);
    for row in &rows {
        let (id, spend, reference_spend, clv, reference_clv) =
            (row[0], row[1], row[2], row[3], row[4]);
        assert!(
            relative_difference(spend, reference_spend) <= 1e-8,
            "expected spend of {id}: {spend} vs lifetimes {reference_spend}"
        );
        assert!(
            relative_difference(clv, reference_clv) <= 1e-8,
            "clv of {id}: {clv} vs lifetimes {reference_clv}"
        );
    }
}

#[test]
fn score_rejects_other_models_struct() {
    let workspace = calibration_workspace();
    workspace.write(
        "mix.yaml",
        r#"name: mix
inputs:
  summary: {path: data/cdnow/cdnow_customers_summary.csv, format: csv}
stages:
  - name: fitted
    query: SELECT mbgnbd_fit(frequency, recency, "T") AS model FROM summary
  - name: scored
    query: |
      SELECT bgnbd_p_alive(s.frequency, s.recency, s."T", f.model) AS p
      FROM summary s CROSS JOIN fitted f
outputs:
  - {table: scored, path: out/scored}
"#,
    );
    let run = workspace.cra(&["run", "mix.yaml"]);
    run.assert_code(1)
        .assert_no_panic()
        .assert_stderr_contains("the model struct is a 'mbgnbd' model, not 'bgnbd'");
    assert!(!workspace.path("out/scored").exists());
}
