//! The S3 server stops, or cra is killed, while cra publishes. This binary is
//! apart from the other storage tests because it kills and restarts the shared
//! test server.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::Workspace;
use common::garage::Garage;

/// Held by each test, because one of them stops the server the others use.
static SERVER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Writes `job.yaml`, named `name`, which spreads the transactions into
/// `$buckets` partitions (500 by default) at `s3://bucket/name/out`.
///
/// 500 files make publishing take long enough to act on the run while it
/// stages or commits. `checks` goes below the output and `storage` below the
/// storage section.
fn spread_job(
    workspace: &Workspace,
    garage: &Garage,
    name: &str,
    checks: &str,
    storage: &str,
) {
    let bucket = &garage.bucket;
    workspace.write(
        "job.yaml",
        format!(
            "name: {name}
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
    path: s3://{bucket}/{name}/out
    partition_by: [part]
{checks}{}{storage}",
            garage.storage_yaml()
        ),
    );
}

/// Starts `cra run job.yaml` in the background, with stderr captured.
fn spawn_run(workspace: &Workspace) -> Child {
    common::cra_command(workspace.root(), &["run", "job.yaml"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Polls `reached` until it is true; fails when the run ends first or after
/// `limit`.
fn wait_until(
    child: &mut Child,
    what: &str,
    limit: Duration,
    mut reached: impl FnMut() -> bool,
) {
    let started = Instant::now();
    while !reached() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before {what}"
        );
        assert!(started.elapsed() < limit, "{what} did not happen");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Returns true when a data file of some run is staged below `prefix`.
fn staged(garage: &Garage, prefix: &str) -> bool {
    garage
        .keys(prefix)
        .iter()
        .any(|key| key.starts_with(".cra-staging.") && key.ends_with(".parquet"))
}

/// Returns the keys below `prefix` that cra uses for staging, journals and locks.
fn leftovers(garage: &Garage, prefix: &str) -> Vec<String> {
    garage
        .keys(prefix)
        .into_iter()
        .filter(|key| key.starts_with(".cra-"))
        .collect()
}

/// Returns the number of data files in a snapshot or listing.
fn data_files<'a>(keys: impl IntoIterator<Item = &'a String>) -> usize {
    keys.into_iter()
        .filter(|key| key.ends_with(".parquet"))
        .count()
}

fn send(child: &Child, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn server_stop_keeps_destination() {
    let _server = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let garage = Garage::from_env();
    let workspace = Workspace::with_transactions();
    let bucket = &garage.bucket;
    let quick = "    retries: 1\n    retry_timeout: 3s\n    timeout: 3s\n    connect_timeout: 1s\n";
    spread_job(&workspace, &garage, "outage", "", quick);
    workspace
        .cra(&["run", "job.yaml", "--param", "buckets=3"])
        .assert_code(0);
    let before = garage.snapshot(bucket, "outage/out");
    assert_eq!(data_files(before.keys()), 3);

    let mut child = spawn_run(&workspace);
    wait_until(
        &mut child,
        "a file was staged",
        Duration::from_secs(60),
        || staged(&garage, "outage"),
    );
    garage.kill();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("the run after the server stopped:\n{stderr}");
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    garage.restart();
    assert_eq!(
        garage.snapshot(bucket, "outage/out"),
        before,
        "the destination changed"
    );

    workspace.cra(&["run", "job.yaml"]).assert_code(0);
    let left = leftovers(&garage, "outage");
    assert!(left.is_empty(), "staging left after the rerun: {left:?}");
    let after = garage.keys("outage");
    assert_eq!(data_files(&after), 500);
    for key in before.keys().filter(|key| key.ends_with(".parquet")) {
        assert!(
            !after.contains(&format!("out/{key}")),
            "{key} of the first run remains"
        );
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
    let check = "    checks:\n      - query: SELECT * FROM spread WHERE part >= 550\n";
    spread_job(&workspace, &garage, "killed", check, "");
    workspace
        .cra(&["run", "job.yaml", "--param", "buckets=3"])
        .assert_code(0);
    let before = garage.snapshot(bucket, "killed/out");

    // `_SUCCESS` leaves the destination first when the commit begins.
    let mut child = spawn_run(&workspace);
    wait_until(
        &mut child,
        "the commit began",
        Duration::from_secs(120),
        || !garage.exists("killed/out/_SUCCESS"),
    );
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
    let left = leftovers(&garage, "killed");
    assert!(left.is_empty(), "{left:?}");

    workspace.cra(&["run", "job.yaml"]).assert_code(0);
    assert_eq!(
        data_files(garage.snapshot(bucket, "killed/out").keys()),
        500
    );
}

#[test]
fn second_run_on_locked_output_fails() {
    let _server = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let garage = Garage::from_env();
    let workspace = Workspace::with_transactions();
    spread_job(&workspace, &garage, "locked", "", "");
    let mut first = spawn_run(&workspace);
    wait_until(
        &mut first,
        "the first run staged a file",
        Duration::from_secs(60),
        || staged(&garage, "locked"),
    );
    workspace
        .cra(&["run", "job.yaml"])
        .assert_code(1)
        .assert_stderr_contains("is being written by another cra run")
        .assert_stderr_contains("wait for that run to end");
    let output = first.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let left = leftovers(&garage, "locked");
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(data_files(&garage.keys("locked")), 500);
}

#[test]
fn interrupted_run_cleaned_by_rerun() {
    let _server = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let garage = Garage::from_env();
    let workspace = Workspace::with_transactions();
    spread_job(&workspace, &garage, "stopped", "", "");
    let mut child = spawn_run(&workspace);
    wait_until(
        &mut child,
        "a file was staged",
        Duration::from_secs(60),
        || staged(&garage, "stopped"),
    );
    send(&child, "-INT");
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
    let left = leftovers(&garage, "stopped");
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(data_files(&garage.keys("stopped")), 500);
}

#[test]
fn interrupt_during_commit_finishes_it() {
    let _server = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let garage = Garage::from_env();
    let workspace = Workspace::with_transactions();
    let bucket = &garage.bucket;
    spread_job(&workspace, &garage, "finish", "", "");
    workspace
        .cra(&["run", "job.yaml", "--param", "buckets=3"])
        .assert_code(0);
    let mut child = spawn_run(&workspace);
    wait_until(
        &mut child,
        "the commit began",
        Duration::from_secs(120),
        || !garage.exists("finish/out/_SUCCESS"),
    );
    send(&child, "-INT");
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("finishing the commit first"), "{stderr}");
    let after = garage.snapshot(bucket, "finish/out");
    assert!(after.contains_key("_SUCCESS"));
    assert_eq!(data_files(after.keys()), 500);
    let left = leftovers(&garage, "finish");
    assert!(left.is_empty(), "{left:?}");
}
