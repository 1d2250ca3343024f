//! Cluster tests against the loopback Ballista cluster that `scripts/test` starts
//! (one `cra scheduler`, two `cra executor` processes) and the Garage S3 server.
//! They cover the main job on the cluster against the local run, the publish
//! rules, and an executor killed in the middle of a job.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::garage::{Garage, var};
use common::{Workspace, query_parquet};

/// Returns the rows of a Parquet folder sorted by customer, as cells.
fn sorted_cells(dir: &Path) -> Vec<Vec<String>> {
    query_parquet(dir, "SELECT * FROM t ORDER BY customer_id")
        .into_iter()
        .map(|row| row.split('|').map(str::to_string).collect())
        .collect()
}

/// Asserts that two tables have the same rows: text cells equal, numbers within
/// 1e-12 relative.
fn assert_same_rows(cluster: &[Vec<String>], local: &[Vec<String>]) {
    assert_eq!(cluster.len(), local.len(), "row counts differ");
    for (row, (left, right)) in cluster.iter().zip(local).enumerate() {
        assert_eq!(left.len(), right.len(), "row {row}: column counts differ");
        for (column, (a, b)) in left.iter().zip(right).enumerate() {
            if a == b {
                continue;
            }
            let close = match (a.parse::<f64>(), b.parse::<f64>()) {
                (Ok(x), Ok(y)) => (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
                _ => false,
            };
            assert!(close, "row {row}, column {column}: cluster {a}, local {b}");
        }
    }
}

#[test]
fn main_job_on_cluster_matches_local() {
    let garage = Garage::from_env();
    let url = var("CRA_TEST_CLUSTER_URL");
    let workspace = Workspace::with_main_job();
    workspace
        .cra(&["run", "jobs/customer_value.yaml"])
        .assert_code(0);
    let local = sorted_cells(&workspace.path("out/customer_value"));
    assert_eq!(local.len(), 23570);

    let job = garage.main_job(&workspace, "cluster");
    let run = workspace.cra(&["run", &job, "--cluster", &url]);
    run.assert_code(0);
    assert!(
        run.stdout().contains("checks 10 of 10 passed"),
        "{}",
        run.stdout()
    );
    let downloaded = workspace.path("downloaded/customer_value");
    garage.download("cluster/out/customer_value", &downloaded);
    assert_same_rows(&sorted_cells(&downloaded), &local);
    let models = workspace.path("downloaded/customer_models");
    garage.download("cluster/out/customer_models", &models);
    assert_same_rows(
        &sorted_cells_of(&models),
        &sorted_cells_of(&workspace.path("out/customer_models")),
    );
    let beside: Vec<String> = garage
        .keys("cluster")
        .into_iter()
        .filter(|key| key.contains(".cra-"))
        .collect();
    assert!(beside.is_empty(), "{beside:?}");
}

/// Returns the rows of a one-row table such as the models, as cells.
fn sorted_cells_of(dir: &Path) -> Vec<Vec<String>> {
    query_parquet(dir, "SELECT * FROM t")
        .into_iter()
        .map(|row| row.split('|').map(str::to_string).collect())
        .collect()
}

#[test]
fn failed_check_on_cluster_publishes_nothing() {
    let garage = Garage::from_env();
    let url = var("CRA_TEST_CLUSTER_URL");
    let workspace = Workspace::with_main_job();
    let job = garage.main_job(&workspace, "cluster-check");
    let text = std::fs::read_to_string(workspace.path(&job)).unwrap();
    let failing = text.replace("row_count: {min: 1}", "row_count: {min: 1000000}");
    assert_ne!(failing, text);
    workspace.write(&job, failing);

    let run = workspace.cra(&["run", &job, "--cluster", &url]);
    run.assert_code(3);
    run.assert_stderr_contains("check 'row_count' failed");
    assert!(garage.keys("cluster-check/out").is_empty());
}

#[test]
fn cluster_url_errors_exit_2() {
    let workspace = Workspace::with_main_job();
    for url in [
        "127.0.0.1:50050",
        "http://127.0.0.1:50050",
        "df://127.0.0.1",
    ] {
        let run = workspace.cra(&["run", "jobs/customer_value.yaml", "--cluster", url]);
        run.assert_code(2).assert_no_panic();
        run.assert_stderr_contains("df://HOST:PORT");
    }
    assert!(!workspace.path("out").exists());
}

#[test]
fn unreachable_scheduler_exits_1() {
    let workspace = Workspace::with_main_job();
    // Nothing listens on a port that was free a moment ago.
    let url = format!("df://127.0.0.1:{}", free_port());
    let run = workspace.cra(&["run", "jobs/customer_value.yaml", "--cluster", &url]);
    run.assert_code(1).assert_no_panic();
    run.assert_stderr_contains("cannot reach the scheduler");
    run.assert_stderr_contains("start `cra scheduler`");
    assert!(!workspace.path("out").exists());
}

/// One process of a cluster that a test starts for itself, killed when dropped.
struct Process {
    child: Child,
    log: PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(args: &[String], log: PathBuf) -> Process {
    let file = std::fs::File::create(&log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_cra"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap();
    Process { child, log }
}

fn log_contains(path: &Path, needle: &str) -> bool {
    std::fs::File::open(path)
        .map(|file| {
            BufReader::new(file)
                .lines()
                .map_while(Result::ok)
                .any(|line| line.contains(needle))
        })
        .unwrap_or(false)
}

fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits up to `timeout` for `child` to exit and returns its status, or kills
/// it and returns `None`.
fn wait_for_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Starts a cluster of the test's own: a scheduler that counts an executor
/// lost after 3 s and cancels a job stalled for 3 s, and `executors` executors
/// of one task each, with their logs in the workspace's `logs` folder. Returns
/// the scheduler's port.
fn own_cluster(
    workspace: &Workspace,
    executors: usize,
) -> (Process, Vec<Process>, String) {
    let logs = workspace.path("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let scheduler_port = free_port().to_string();
    let scheduler = start(
        &[
            "scheduler".to_string(),
            "--bind-port".to_string(),
            scheduler_port.clone(),
            "--executor-timeout-seconds".to_string(),
            "3".to_string(),
            "--stalled-job-timeout-seconds".to_string(),
            "3".to_string(),
        ],
        logs.join("scheduler.log"),
    );
    let executors: Vec<Process> = (1..=executors)
        .map(|n| {
            let args = [
                "executor",
                "--bind-port",
                &free_port().to_string(),
                "--bind-grpc-port",
                &free_port().to_string(),
                "--scheduler-port",
                &scheduler_port,
                "--concurrent-tasks",
                "1",
                "--work-dir",
                &workspace
                    .path(&format!("executor-{n}"))
                    .display()
                    .to_string(),
            ]
            .map(str::to_string);
            start(&args, logs.join(format!("executor-{n}.log")))
        })
        .collect();
    for executor in &executors {
        wait_for("executor registration", Duration::from_secs(60), || {
            log_contains(&executor.log, "Executor registration succeed")
        });
    }
    (scheduler, executors, scheduler_port)
}

/// Kills one of two executors once it runs a task of the main job. Ballista
/// 55 runs the lost tasks again on the other executor, so the job completes
/// with the same rows. A run that fails instead must exit 1 and publish nothing.
#[test]
fn killed_executor_leaves_no_partial_output() {
    let garage = Garage::from_env();
    let workspace = Workspace::with_main_job();
    let (_scheduler, mut executors, scheduler_port) = own_cluster(&workspace, 2);

    let local = {
        workspace
            .cra(&["run", "jobs/customer_value.yaml"])
            .assert_code(0);
        sorted_cells(&workspace.path("out/customer_value"))
    };
    let job = garage.main_job(&workspace, "cluster-kill");
    let url = format!("df://127.0.0.1:{scheduler_port}");
    let run = common::cra_command(workspace.root(), &["run", &job, "--cluster", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Kill whichever executor runs a task first.
    let mut victim = None;
    wait_for("a task on an executor", Duration::from_secs(60), || {
        victim = executors
            .iter()
            .position(|executor| log_contains(&executor.log, "Execute task"));
        victim.is_some()
    });
    let victim = victim.unwrap();
    executors[victim].child.kill().unwrap();
    executors[victim].child.wait().unwrap();

    let output = run.wait_with_output().unwrap();
    let code = output.status.code().unwrap_or(-1);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let keys = garage.keys("cluster-kill/out");
    match code {
        0 => {
            let downloaded = workspace.path("downloaded/customer_value");
            garage.download("cluster-kill/out/customer_value", &downloaded);
            assert_same_rows(&sorted_cells(&downloaded), &local);
        }
        1 => assert!(keys.is_empty(), "a failed run published {keys:?}"),
        other => panic!("exit {other} after an executor was killed: {stderr}"),
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    eprintln!("after a killed executor the run exited {code}");
}

/// Kills one of two executors once the run has run 15 tasks, so that later
/// stages need shuffle files of the lost executor. Ballista 55 either runs the
/// lost tasks again or stalls, and the scheduler then cancels the stalled job.
/// Either way the run ends: exit 0 with the local rows, or exit 1 with nothing
/// published.
#[test]
fn executor_killed_mid_job_ends_the_run() {
    let workspace = workspace_with_generated_job();
    let local = {
        workspace
            .cra(&["run", "jobs/generated.yaml"])
            .assert_code(0);
        let rows = sorted_cells(&workspace.path("out/customer_value"));
        std::fs::remove_dir_all(workspace.path("out")).unwrap();
        rows
    };
    let (_scheduler, mut executors, scheduler_port) = own_cluster(&workspace, 2);
    let url = format!("df://127.0.0.1:{scheduler_port}");
    let stderr_path = workspace.path("run.log");
    let mut run = common::cra_command(
        workspace.root(),
        &["run", "jobs/generated.yaml", "--cluster", &url],
    )
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&stderr_path).unwrap())
    .spawn()
    .unwrap();

    let tasks_of = |executor: &Process| {
        std::fs::read_to_string(&executor.log)
            .unwrap_or_default()
            .matches("Execute task")
            .count()
    };
    wait_for("15 tasks of the run", Duration::from_secs(120), || {
        executors.iter().map(tasks_of).sum::<usize>() >= 15
    });
    assert!(
        run.try_wait().unwrap().is_none(),
        "the run ended before an executor was killed"
    );
    let victim = (0..executors.len())
        .max_by_key(|&index| tasks_of(&executors[index]))
        .unwrap();
    executors[victim].child.kill().unwrap();
    executors[victim].child.wait().unwrap();
    let killed = Instant::now();

    // Ballista 55 may leave a job waiting for ever; the scheduler's
    // stalled-job check must end it well before this.
    let status = wait_for_exit(&mut run, Duration::from_secs(180)).unwrap_or_else(|| {
        panic!(
            "the run did not end within 180 s of the kill: {}",
            std::fs::read_to_string(&stderr_path).unwrap()
        )
    });
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    match status.code() {
        Some(0) => {
            assert_same_rows(&sorted_cells(&workspace.path("out/customer_value")), &local)
        }
        Some(1) => {
            // A stalled job is cancelled, and a failed one keeps its id.
            assert!(stderr.contains("cluster job "), "{stderr}");
            assert!(
                !workspace.path("out/customer_value").exists(),
                "a failed run published customer_value: {stderr}"
            );
            assert!(
                !workspace.path("out/customer_models").exists(),
                "a failed run published customer_models: {stderr}"
            );
        }
        other => panic!("exit {other:?} after an executor was killed: {stderr}"),
    }
    let error = stderr
        .lines()
        .find(|line| line.starts_with("error:"))
        .unwrap_or("");
    eprintln!(
        "after an executor was killed mid-job the run exited {:?} in {:?} {error}",
        status.code(),
        killed.elapsed()
    );
}

/// Sends SIGTERM to a cluster run while its first job runs. The run cancels
/// the job on the scheduler and exits 1 once the job has stopped, and neither
/// the run nor the cancelled job leaves files beside the outputs.
#[cfg(unix)]
#[test]
fn interrupted_run_cancels_its_cluster_job() {
    let url = var("CRA_TEST_CLUSTER_URL");
    let cluster_dir = PathBuf::from(var("CRA_TEST_CLUSTER_DIR"));
    let workspace = workspace_with_generated_job();

    let stderr_path = workspace.path("run.log");
    let mut run = common::cra_command(
        workspace.root(),
        &["run", "jobs/generated.yaml", "--cluster", &url],
    )
    // Ballista's client logs each job's id once the scheduler runs it.
    .env("RUST_LOG", "warn,cra=info,ballista_core=info")
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&stderr_path).unwrap())
    .spawn()
    .unwrap();
    wait_for(
        "the run's first cluster job",
        Duration::from_secs(120),
        || log_contains(&stderr_path, "is running"),
    );
    let signalled = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = run.wait().unwrap();
    let stopped_in = signalled.elapsed();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("were cancelled and nothing was published"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    // The job that ran or waited when the signal came.
    let job_id = logged_job_ids(&stderr)
        .pop()
        .unwrap_or_else(|| panic!("no job id in: {stderr}"));
    assert!(
        log_contains(
            &cluster_dir.join("scheduler.log"),
            &format!("Received cancellation request for job {job_id}")
        ),
        "the scheduler was not asked to cancel job {job_id}"
    );

    // A task that kept running would write into the staging within a moment.
    std::thread::sleep(Duration::from_secs(2));
    let left = entries_in_out(&workspace);
    assert!(left.is_empty(), "left beside the outputs: {left:?}");
    eprintln!("the interrupted cluster run exited {stopped_in:?} after SIGTERM");
}

/// Returns the ids of the Ballista jobs a run logged with
/// `RUST_LOG=ballista_core=info`, in the order of their first line: "Job ID is
/// queued...", "Job ID is running..." or "Job ID finished executing in ...".
fn logged_job_ids(stderr: &str) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for line in stderr.lines() {
        let Some((_, rest)) = line.split_once(" Job ") else {
            continue;
        };
        let Some((id, status)) = rest.split_once(' ') else {
            continue;
        };
        let known = ["is queued", "is running", "finished executing"]
            .iter()
            .any(|word| status.starts_with(word));
        if known && !ids.iter().any(|seen| seen == id) {
            ids.push(id.to_string());
        }
    }
    ids
}

/// The scheduler that `scripts/cluster` starts removes each job's shuffle
/// files a second after the job; the default is a minute.
#[test]
fn finished_jobs_leave_no_shuffle_files() {
    let url = var("CRA_TEST_CLUSTER_URL");
    let cluster_dir = PathBuf::from(var("CRA_TEST_CLUSTER_DIR"));
    let workspace = Workspace::with_main_job();
    let output = common::cra_command(
        workspace.root(),
        &["run", "jobs/customer_value.yaml", "--cluster", &url],
    )
    .env("RUST_LOG", "warn,ballista_core=info")
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let jobs = logged_job_ids(&stderr);
    assert!(jobs.len() >= 5, "{stderr}");
    let work_dirs = ["executor-1", "executor-2"].map(|name| cluster_dir.join(name));
    let left = || -> Vec<String> {
        jobs.iter()
            .filter(|job| work_dirs.iter().any(|dir| dir.join(job).exists()))
            .cloned()
            .collect()
    };
    wait_for("the shuffle files to go", Duration::from_secs(60), || {
        left().is_empty()
    });
}

#[test]
fn executor_without_scheduler_exits_1() {
    let workspace = Workspace::new();
    let run = workspace.cra(&[
        "executor",
        "--scheduler-port",
        &free_port().to_string(),
        "--scheduler-connect-timeout-seconds",
        "1",
        "--bind-port",
        &free_port().to_string(),
        "--bind-grpc-port",
        &free_port().to_string(),
        "--work-dir",
        "work",
    ]);
    run.assert_code(1).assert_no_panic();
    run.assert_stderr_contains("no scheduler answered within 1 s");
    run.assert_stderr_contains("--scheduler-connect-timeout-seconds");
}

#[test]
fn executor_on_a_taken_port_exits_1() {
    let workspace = Workspace::new();
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    let run = workspace.cra(&[
        "executor",
        "--bind-port",
        &port,
        "--bind-grpc-port",
        &free_port().to_string(),
        "--work-dir",
        "work",
    ]);
    run.assert_code(1).assert_no_panic();
    run.assert_stderr_contains(&format!("--bind-port {port}: cannot listen"));
}

#[test]
fn executor_port_as_cluster_exits_1() {
    let port = var("CRA_TEST_EXECUTOR_GRPC_PORT");
    let workspace = Workspace::with_main_job();
    let url = format!("df://127.0.0.1:{port}");
    let run = workspace.cra(&["run", "jobs/customer_value.yaml", "--cluster", &url]);
    run.assert_code(1).assert_no_panic();
    run.assert_stderr_contains("not a Ballista scheduler");
    run.assert_stderr_contains("--bind-port of `cra scheduler`");
    assert!(!workspace.path("out").exists());
}

/// Stops the scheduler while a run waits for its job: the run fails with exit
/// 1, names the scheduler rather than the stage's SQL, and publishes nothing.
#[test]
fn stopped_scheduler_fails_the_run() {
    let workspace = Workspace::with_main_job();
    let (mut scheduler, executors, scheduler_port) = own_cluster(&workspace, 1);
    let url = format!("df://127.0.0.1:{scheduler_port}");
    let run = common::cra_command(
        workspace.root(),
        &["run", "jobs/customer_value.yaml", "--cluster", &url],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    wait_for("a task on the executor", Duration::from_secs(60), || {
        log_contains(&executors[0].log, "Execute task")
    });
    scheduler.child.kill().unwrap();
    scheduler.child.wait().unwrap();

    let output = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&url), "{stderr}");
    assert!(
        !stderr.contains(".sql"),
        "the stage's SQL is blamed: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!workspace.path("out/customer_value").exists());
    assert!(!workspace.path("out/customer_models").exists());

    // Ballista's executor stops on its own once the scheduler is gone; cra
    // makes that exit 1, so that a supervisor restarts it.
    let mut executor = executors.into_iter().next().unwrap();
    let status = wait_for_exit(&mut executor.child, Duration::from_secs(60))
        .expect("the executor still runs");
    assert_eq!(status.code(), Some(1));
    assert!(log_contains(&executor.log, "lost the scheduler"));
}

#[test]
fn scheduler_stops_on_sigterm_with_exit_0() {
    let workspace = Workspace::new();
    let log = workspace.path("scheduler.log");
    let mut scheduler = start(
        &[
            "scheduler".to_string(),
            "--bind-port".to_string(),
            free_port().to_string(),
        ],
        log.clone(),
    );
    wait_for("the scheduler", Duration::from_secs(60), || {
        log_contains(&log, "scheduler listening")
    });
    let killed = Command::new("kill")
        .args(["-TERM", &scheduler.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = scheduler.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(log_contains(&log, "scheduler stopping"));
}

#[test]
fn cluster_processes_reject_port_0() {
    let workspace = Workspace::new();
    for args in [
        ["scheduler", "--bind-port", "0"],
        ["executor", "--bind-port", "0"],
        ["executor", "--bind-grpc-port", "0"],
        ["executor", "--scheduler-port", "0"],
    ] {
        let run = workspace.cra(&args);
        run.assert_code(2).assert_no_panic();
        run.assert_stderr_contains("0 is not in 1..=65535");
    }
}

#[test]
fn cluster_processes_reject_bad_values() {
    let workspace = Workspace::new();
    for (args, expected) in [
        (
            ["executor", "--scheduler-host", ""],
            "a value is required for '--scheduler-host",
        ),
        (
            ["executor", "--external-host", ""],
            "a value is required for '--external-host",
        ),
        (
            ["scheduler", "--external-host", ""],
            "a value is required for '--external-host",
        ),
        (
            ["executor", "--concurrent-tasks", "100000"],
            "invalid value '100000' for '--concurrent-tasks",
        ),
        (
            ["scheduler", "--executor-timeout-seconds", "-5"],
            "invalid value '-5' for '--executor-timeout-seconds",
        ),
        (
            ["executor", "--job-data-ttl-seconds", "-1"],
            "invalid value '-1' for '--job-data-ttl-seconds",
        ),
    ] {
        let run = workspace.cra(&args);
        run.assert_code(2).assert_no_panic();
        run.assert_stderr_contains(expected);
    }
}

/// A scheduler without executors would keep a job queued for ever; its
/// stalled-job check cancels the job, and the run exits 1 with nothing
/// published.
#[test]
fn run_without_executors_is_cancelled() {
    let workspace = Workspace::with_main_job();
    let (scheduler, _, scheduler_port) = own_cluster(&workspace, 0);
    // The scheduler logs that it listens just before it binds its port.
    wait_for("the scheduler's port", Duration::from_secs(60), || {
        std::net::TcpStream::connect((
            "127.0.0.1",
            scheduler_port.parse::<u16>().unwrap(),
        ))
        .is_ok()
    });
    let url = format!("df://127.0.0.1:{scheduler_port}");
    let stderr_path = workspace.path("run.log");
    let mut run = common::cra_command(
        workspace.root(),
        &["run", "jobs/customer_value.yaml", "--cluster", &url],
    )
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&stderr_path).unwrap())
    .spawn()
    .unwrap();

    let status = wait_for_exit(&mut run, Duration::from_secs(120))
        .expect("the run without executors still waited after 120 s");

    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("was cancelled on the scheduler"),
        "{stderr}"
    );
    assert!(stderr.contains("Check that executors run"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!workspace.path("out/customer_value").exists());
    assert!(!workspace.path("out/customer_models").exists());
    assert!(log_contains(
        &scheduler.log,
        "cancelling a job that has had no task running"
    ));
}

/// `--timeout` stops a cluster run as SIGTERM does: its job is cancelled, and
/// nothing is published or left beside the outputs.
#[test]
fn run_timeout_cancels_cluster_job() {
    let url = var("CRA_TEST_CLUSTER_URL");
    let workspace = workspace_with_generated_job();
    let run = workspace.cra(&[
        "run",
        "jobs/generated.yaml",
        "--cluster",
        &url,
        "--timeout",
        "1",
    ]);
    run.assert_code(1).assert_no_panic();
    run.assert_stderr_contains("run timed out after 1 s (--timeout)");
    run.assert_stderr_contains("nothing was published");
    std::thread::sleep(Duration::from_secs(2));
    let left = entries_in_out(&workspace);
    assert!(left.is_empty(), "left beside the outputs: {left:?}");
}

/// Returns the names in the workspace's `out` folder but the lock files, which
/// stay from run to run.
fn entries_in_out(workspace: &Workspace) -> Vec<String> {
    std::fs::read_dir(workspace.path("out"))
        .map(|entries| {
            entries
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| !name.starts_with(".cra-lock."))
                .collect()
        })
        .unwrap_or_default()
}

/// Returns a workspace with `jobs/generated.yaml`, the main job on 300,000
/// generated customers: a few seconds on the test cluster, long enough to stop
/// a run in the middle.
fn workspace_with_generated_job() -> Workspace {
    let workspace = Workspace::with_main_job();
    workspace
        .cra(&[
            "generate",
            "--customers",
            "300000",
            "--out",
            "data/generated",
        ])
        .assert_code(0);
    workspace.write_generated_job();
    workspace
}
