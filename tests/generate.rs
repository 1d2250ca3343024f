//! `cra generate`: files, metadata, replacement rules, and the main job on
//! generated data.

mod common;

use common::{Workspace, query_parquet};

#[test]
fn generated_data_runs_main_job() {
    let workspace = Workspace::with_main_job();
    let run = workspace.cra(&[
        "generate",
        "--customers",
        "30000",
        "--out",
        "data/generated",
        "--files",
        "2",
        "--seed",
        "5",
    ]);
    run.assert_code(0);
    assert!(
        run.stdout().contains("generated 30000 customers"),
        "{}",
        run.stdout()
    );
    let metadata: serde_json::Value = serde_json::from_slice(
        &std::fs::read(workspace.path("data/generated/_generator.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(metadata["seed"], 5);
    assert_eq!(metadata["files"], 2);
    assert_eq!(metadata["process"]["r"], 0.243);
    let rows = query_parquet(
        &workspace.path("data/generated"),
        "SELECT count(DISTINCT customer_id), count(*), min(order_date), max(order_date) FROM t",
    );
    let expected_rows = metadata["rows"].as_u64().unwrap();
    assert_eq!(
        rows,
        vec![format!("30000|{expected_rows}|1997-01-01|1998-06-30")],
        "first orders start on 1997-01-01 and no order falls after 1998-06-30"
    );

    workspace.write_generated_job();
    let run = workspace.cra(&["run", "jobs/generated.yaml"]);
    run.assert_code(0);
    assert!(
        run.stdout().contains("checks 10 of 10 passed"),
        "{}",
        run.stdout()
    );
    let scored = query_parquet(
        &workspace.path("out/customer_value"),
        "SELECT count(*) FROM t",
    );
    assert_eq!(scored, vec!["30000"]);
}

#[test]
fn generate_replaces_only_its_own_output() {
    let workspace = Workspace::new();
    let args = ["generate", "--customers", "1000", "--out", "gen"];
    workspace.cra(&args).assert_code(0);
    let first = common::snapshot(&workspace.path("gen"));
    // The same seed gives the same files; a rerun replaces the folder.
    workspace.cra(&args).assert_code(0);
    let second = common::snapshot(&workspace.path("gen"));
    let data = |files: &std::collections::BTreeMap<String, Vec<u8>>| {
        files
            .iter()
            .filter(|(name, _)| name.ends_with(".parquet"))
            .map(|(n, b)| (n.clone(), b.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(data(&first), data(&second));

    workspace.write("foreign/notes.txt", "keep me");
    workspace
        .cra(&["generate", "--customers", "10", "--out", "foreign"])
        .assert_code(2)
        .assert_stderr_contains("contains files that cra generate did not write");
    assert!(workspace.path("foreign/notes.txt").is_file());

    // A metadata file alone does not make a folder replaceable.
    workspace.write("fake/_generator.json", "{}");
    workspace.write("fake/precious.txt", "keep me");
    workspace
        .cra(&["generate", "--customers", "10", "--out", "fake"])
        .assert_code(2);
    assert!(workspace.path("fake/precious.txt").is_file());

    // Staging left by a killed run, whose process is gone, goes on the next run.
    workspace.write(".cra-generate.gen.4000000000/part-00000.parquet", "partial");
    workspace.cra(&args).assert_code(0);
    assert!(!workspace.path(".cra-generate.gen.4000000000").exists());

    for bad in [
        ["--customers", "0"],
        ["--customers", "10000000001"],
        ["--files", "0"],
    ] {
        let mut args = vec!["generate", "--out", "x"];
        if bad[0] == "--files" {
            args.extend(["--customers", "10"]);
        }
        args.extend(bad);
        workspace.cra(&args).assert_code(2);
    }
    let leftovers: Vec<String> = std::fs::read_dir(workspace.root())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".cra-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
