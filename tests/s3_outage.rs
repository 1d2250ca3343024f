//! The S3 server stops, or cra is killed, while cra publishes. This binary is
//! apart from the other storage tests because it kills and restarts the shared
//! test server.

mod common;

use std::time::{Duration, Instant};

use common::Workspace;
use common::garage::Garage;

/// Held by each test, because one of them stops the server the others use.
static SERVER: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn server_stop_keeps_destination() {
    let _server = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let garage = Garage::from_env();
    let workspace = Workspace::with_transactions();
    let bucket = &garage.bucket;
    // 500 partitions make 500 files, so publishing takes long enough to stop
    // the server after the first files are staged.
    workspace.write(
        "job.yaml",
        format!(
            "name: outage
params:
  buckets:
    type: int
    default: 500
inputs:
  transactions:
    path: data/transactions.parquet
stages:
  - name: spread
    query: SELECT *, customer_id % $buckets AS part FROM transactions
outputs:
  - table: spread
    path: s3://{bucket}/outage/out
    partition_by: [part]
{}    retries: 1
    retry_timeout: 3s
    timeout: 3s
    connect_timeout: 1s
",
            garage.storage_yaml()
        ),
    );
    workspace
        .cra(&["run", "job.yaml", "--param", "buckets=3"])
        .assert_code(0);
    let before = garage.snapshot(bucket, "outage/out");
    assert_eq!(
        before
            .keys()
            .filter(|key| key.ends_with(".parquet"))
            .count(),
        3
    );

    let mut child = common::cra_command(workspace.root(), &["run", "job.yaml"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let staged = loop {
        let staged: Vec<String> = garage
            .keys("outage")
            .into_iter()
            .filter(|key| key.starts_with(".cra-staging.") && key.ends_with(".parquet"))
            .collect();
        if !staged.is_empty() {
            break staged;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before any file was staged"
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no file was staged"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    garage.kill();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("the run after the server stopped:\n{stderr}");
    assert_eq!(
        output.status.code(),
        Some(1),
        "{} staged, then:\n{stderr}",
        staged.len()
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    garage.restart();
    assert_eq!(
        garage.snapshot(bucket, "outage/out"),
        before,
        "the destination changed"
    );

    let rerun = workspace.cra(&["run", "job.yaml"]);
    rerun.assert_code(0);
    let after = garage.keys("outage");
    let left: Vec<&String> = after
        .iter()
        .filter(|key| key.starts_with(".cra-"))
        .collect();
    assert!(left.is_empty(), "staging left after the rerun: {left:?}");
    let files = after.iter().filter(|key| key.ends_with(".parquet")).count();
    assert_eq!(files, 500);
    for key in before.keys() {
        if key.ends_with(".parquet") {
            assert!(
                !after.contains(&format!("out/{key}")),
                "{key} of the first run remains"
            );
        }
    }
}

#[test]
fn killed_commit_rolled_back_by_rerun() {
    let _server = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let garage = Garage::from_env();
    let workspace = Workspace::with_transactions();
    let bucket = &garage.bucket;
    // The check fails only with more than 550 partitions, so the second run
    // below recovers the destination and then publishes nothing.
    workspace.write(
        "job.yaml",
        format!(
            "name: killed
params:
  buckets:
    type: int
    default: 500
inputs:
  transactions:
    path: data/transactions.parquet
stages:
  - name: spread
    query: SELECT *, customer_id % $buckets AS part FROM transactions
outputs:
  - table: spread
    path: s3://{bucket}/killed/out
    partition_by: [part]
    checks:
      - query: SELECT * FROM spread WHERE part >= 550
{}",
            garage.storage_yaml()
        ),
    );
    workspace
        .cra(&["run", "job.yaml", "--param", "buckets=3"])
        .assert_code(0);
    let before = garage.snapshot(bucket, "killed/out");

    let mut child = common::cra_command(workspace.root(), &["run", "job.yaml"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    // `_SUCCESS` leaves the destination first when the commit begins.
    while garage.exists("killed/out/_SUCCESS") {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before its commit was seen"
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the commit never began"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let interrupted = garage.snapshot(bucket, "killed/out");
    assert_ne!(
        interrupted, before,
        "the run was killed before it changed the destination"
    );
    assert!(!interrupted.contains_key("_SUCCESS"));

    // The next run rolls the interrupted commit back before it fails its check.
    let failing = workspace.cra(&["run", "job.yaml", "--param", "buckets=600"]);
    failing.assert_code(3);
    assert_eq!(
        garage.snapshot(bucket, "killed/out"),
        before,
        "the destination was not restored"
    );
    let left: Vec<String> = garage
        .keys("killed")
        .into_iter()
        .filter(|key| key.starts_with(".cra-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    workspace.cra(&["run", "job.yaml"]).assert_code(0);
    let after = garage.snapshot(bucket, "killed/out");
    assert_eq!(
        after.keys().filter(|key| key.ends_with(".parquet")).count(),
        500
    );
}

#[test]
fn second_run_on_locked_output_fails() {
    let _server = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let garage = Garage::from_env();
    let workspace = Workspace::with_transactions();
    let bucket = &garage.bucket;
    workspace.write(
        "job.yaml",
        format!(
            "name: locked
inputs:
  transactions:
    path: data/transactions.parquet
stages:
  - name: spread
    query: SELECT *, customer_id % 500 AS part FROM transactions
outputs:
  - table: spread
    path: s3://{bucket}/locked/out
    partition_by: [part]
{}",
            garage.storage_yaml()
        ),
    );
    let mut first = common::cra_command(workspace.root(), &["run", "job.yaml"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !garage
        .keys("locked")
        .iter()
        .any(|key| key.starts_with(".cra-staging.") && key.ends_with(".parquet"))
    {
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first run ended before it staged a file"
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no file was staged"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let second = workspace.cra(&["run", "job.yaml"]);
    second
        .assert_code(1)
        .assert_stderr_contains("is being written by another cra run")
        .assert_stderr_contains("wait for that run to end");
    let output = first.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let keys = garage.keys("locked");
    assert!(keys.iter().all(|key| !key.starts_with(".cra-")), "{keys:?}");
    assert_eq!(
        keys.iter().filter(|key| key.ends_with(".parquet")).count(),
        500
    );
}

#[test]
fn interrupted_run_cleaned_by_rerun() {
    let _server = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let garage = Garage::from_env();
    let workspace = Workspace::with_transactions();
    let bucket = &garage.bucket;
    workspace.write(
        "job.yaml",
        format!(
            "name: stopped
inputs:
  transactions:
    path: data/transactions.parquet
stages:
  - name: spread
    query: SELECT *, customer_id % 500 AS part FROM transactions
outputs:
  - table: spread
    path: s3://{bucket}/stopped/out
    partition_by: [part]
{}",
            garage.storage_yaml()
        ),
    );
    let mut child = common::cra_command(workspace.root(), &["run", "job.yaml"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !garage
        .keys("stopped")
        .iter()
        .any(|key| key.starts_with(".cra-staging.") && key.ends_with(".parquet"))
    {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it staged a file"
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no file was staged"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("interrupted by SIGINT"), "{stderr}");
    assert!(!garage.exists("stopped/out/_SUCCESS"));
    assert!(
        garage.keys("stopped/out").is_empty(),
        "the destination was written"
    );

    // The rerun takes over the lock at once and removes the staging.
    workspace.cra(&["run", "job.yaml"]).assert_code(0);
    let keys = garage.keys("stopped");
    let left: Vec<&String> = keys.iter().filter(|key| key.starts_with(".cra-")).collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(
        keys.iter().filter(|key| key.ends_with(".parquet")).count(),
        500
    );
}

#[test]
fn interrupt_during_commit_finishes_it() {
    let _server = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let garage = Garage::from_env();
    let workspace = Workspace::with_transactions();
    let bucket = &garage.bucket;
    workspace.write(
        "job.yaml",
        format!(
            "name: finish
params:
  buckets:
    type: int
    default: 500
inputs:
  transactions:
    path: data/transactions.parquet
stages:
  - name: spread
    query: SELECT *, customer_id % $buckets AS part FROM transactions
outputs:
  - table: spread
    path: s3://{bucket}/finish/out
    partition_by: [part]
{}",
            garage.storage_yaml()
        ),
    );
    workspace
        .cra(&["run", "job.yaml", "--param", "buckets=3"])
        .assert_code(0);
    let mut child = common::cra_command(workspace.root(), &["run", "job.yaml"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while garage.exists("finish/out/_SUCCESS") {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before its commit was seen"
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the commit never began"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("finishing the commit first"), "{stderr}");
    let after = garage.snapshot(bucket, "finish/out");
    assert!(after.contains_key("_SUCCESS"));
    assert_eq!(
        after.keys().filter(|key| key.ends_with(".parquet")).count(),
        500
    );
    let left: Vec<String> = garage
        .keys("finish")
        .into_iter()
        .filter(|key| key.starts_with(".cra-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
