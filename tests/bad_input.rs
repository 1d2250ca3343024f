//! Bad input, one case per folder under `tests/cases/`: each `job.yaml` is run with
//! `cra run` and `cra validate` in a workspace that also contains the CDNOW
//! transactions as `data/transactions.parquet`. Every case must exit with its code,
//! name the file and the problem, show no panic text, and write no output.

mod common;

use std::path::Path;

use common::{Workspace, repo};

/// Copies the folder `from` into `to`, recursively.
fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_folder(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Runs one case and checks its exit code and message fragments.
fn check_case(workspace: &Workspace, case: &str, code: i32, fragments: &[&str]) {
    let job = format!("{case}/job.yaml");
    for command in ["run", "validate"] {
        let run = workspace.cra(&[command, &job]);
        let stderr = run.stderr();
        assert_eq!(
            run.code(),
            code,
            "{case}: cra {command} exited {}, expected {code}; stderr:\n{stderr}",
            run.code()
        );
        run.assert_no_panic();
        assert!(
            stderr.contains(&format!("error: {case}/")),
            "{case}: cra {command} does not name the file:\n{stderr}"
        );
        for fragment in fragments {
            assert!(
                stderr.contains(fragment),
                "{case}: cra {command} lacks '{fragment}':\n{stderr}"
            );
        }
        assert!(
            !workspace.path("out").exists(),
            "{case}: cra {command} wrote output"
        );
    }
}

#[test]
fn every_bad_input_case_fails_cleanly() {
    let cases: &[(&str, i32, &[&str])] = &[
        ("empty_file", 2, &["job file is empty"]),
        (
            "yaml_list",
            2,
            &["job.yaml:1:1: expected a mapping of keys here"],
        ),
        (
            "yaml_scalar",
            2,
            &["job.yaml:1:1: expected a mapping of keys here"],
        ),
        (
            "duplicate_keys",
            2,
            &["job.yaml:2:1: key 'name' is given twice"],
        ),
        (
            "wrong_value_type",
            2,
            &["job.yaml:8:18: invalid value: expected true or false"],
        ),
        (
            "missing_required_key",
            2,
            &["required key 'outputs' is missing"],
        ),
        (
            "later_stage",
            2,
            &[
                "job.yaml:7:26: table 'second' not found",
                "runs after 'first'",
            ],
        ),
        (
            "stage_named_like_input",
            2,
            &["job.yaml:6:11: stage 'transactions' has the name of an input"],
        ),
        (
            "sql_syntax_error",
            2,
            &["sql_syntax_error/picked.sql:5:22: expected: an expression, found: EOF"],
        ),
        (
            "sql_planning_error",
            2,
            &[
                "sql_planning_error/picked.sql:2:8: column 'amout' not found",
                "did you mean 'amount'?",
            ],
        ),
        (
            "unknown_function",
            2,
            &[
                "job.yaml:7:19: unknown function 'bgnbd_palive'",
                "did you mean 'bgnbd_p_alive'?",
            ],
        ),
        (
            "cra_function_argument_types",
            2,
            &[
                "job.yaml:8:14: function 'rfm_segment' cannot take arguments of type (Utf8, Utf8, Utf8)",
                "the signature is rfm_segment(",
            ],
        ),
        (
            "missing_input_path",
            2,
            &[
                "job.yaml:4:11: input 'transactions': path 'data/no_such_file.parquet' not found",
            ],
        ),
        (
            "empty_input_folder",
            2,
            &["input 'transactions': 'empty_input_folder/empty' contains no data file"],
        ),
        (
            "truncated_parquet",
            2,
            &[
                "input 'transactions': 'truncated_parquet/truncated.parquet' is not a Parquet file: it does not end in 'PAR1'",
            ],
        ),
        (
            "ragged_csv",
            2,
            &[
                "input 'orders'",
                "orders.csv",
                "Expected 3 records, found 2 records at line 3",
            ],
        ),
        (
            "schemas_disagree",
            2,
            &[
                "input 'orders': files have different columns",
                "amount Utf8",
                "amount Float64",
            ],
        ),
        (
            "output_inside_input",
            2,
            &["output 'transactions': path 'data/out' overlaps input 'transactions'"],
        ),
        (
            "two_outputs_one_path",
            2,
            &["job.yaml:12:22: output 'b': path 'out/same' overlaps the output of 'a'"],
        ),
        (
            "not_utf8",
            2,
            &["job.yaml:1:10: job file is not valid UTF-8"],
        ),
        (
            "bad_footer_length",
            2,
            &[
                "input 'orders': 'bad_footer_length/orders.parquet' is not a valid Parquet file: its footer length",
            ],
        ),
        (
            "empty_parquet_file",
            2,
            &[
                "'empty_parquet_file/orders.parquet' is not a Parquet file: it has 0 bytes",
            ],
        ),
        (
            "columns_disagree",
            2,
            &[
                "input 'orders': files have different columns: 'columns_disagree/orders/part-1.parquet' has [note Utf8]",
                "every file of one input needs the same columns and types",
            ],
        ),
    ];
    let folder = repo().join("tests/cases");
    let listed: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for name in &listed {
        assert!(
            cases.iter().any(|(case, _, _)| case == name),
            "tests/cases/{name} has no entry in this test"
        );
    }
    for (case, code, fragments) in cases {
        let workspace = Workspace::with_transactions();
        copy_folder(&folder.join(case), &workspace.path(case));
        check_case(&workspace, case, *code, fragments);
    }
}

#[test]
fn ten_megabyte_job_file_rejected() {
    // Made here rather than kept under tests/cases, to keep 10 MB out of the
    // repository.
    let workspace = Workspace::with_transactions();
    let mut text = String::from("name: big\n");
    while text.len() < 10 << 20 {
        text.push_str("# a comment line that pads the job file to ten megabytes\n");
    }
    workspace.write("big/job.yaml", text);
    check_case(&workspace, "big", 2, &["more than the limit of 1048576"]);
}
