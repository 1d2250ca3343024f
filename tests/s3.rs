//! Storage tests against the Garage S3 server that `scripts/test` starts on
//! 127.0.0.1: the main job from and to a bucket, reruns, per-bucket settings,
//! `validate --check-storage`, errors that name their cause, and credentials
//! that never show.

mod common;

use common::garage::{Garage, var};
use common::{Workspace, query_parquet};

/// Returns the sorted rows of a Parquet folder.
fn rows(dir: &std::path::Path) -> Vec<String> {
    query_parquet(dir, "SELECT * FROM t ORDER BY customer_id")
}

#[test]
fn main_job_on_s3_matches_local() {
    let garage = Garage::from_env();
    let workspace = Workspace::with_main_job();
    workspace
        .cra(&["run", "jobs/customer_value.yaml"])
        .assert_code(0);
    let local = rows(&workspace.path("out/customer_value"));
    assert_eq!(local.len(), 23570);

    let job = garage.main_job(&workspace, "main");
    let run = workspace.cra(&["run", &job]);
    run.assert_code(0);
    assert!(
        run.stdout().contains("checks 10 of 10 passed"),
        "{}",
        run.stdout()
    );
    let keys = garage.keys("main/out/customer_value");
    assert!(keys.contains(&"_SUCCESS".to_string()), "{keys:?}");
    assert!(keys.contains(&"_manifest.json".to_string()), "{keys:?}");
    let downloaded = workspace.path("downloaded/customer_value");
    garage.download("main/out/customer_value", &downloaded);
    // Same rows, bit for bit in their text form, as the local run.
    assert_eq!(rows(&downloaded), local);
    let models = workspace.path("downloaded/customer_models");
    garage.download("main/out/customer_models", &models);
    assert_eq!(
        query_parquet(&models, "SELECT * FROM t"),
        query_parquet(&workspace.path("out/customer_models"), "SELECT * FROM t")
    );
    // Nothing of the run is left beside the outputs.
    let beside: Vec<String> = garage
        .keys("main")
        .into_iter()
        .filter(|key| key.contains(".cra-"))
        .collect();
    assert!(beside.is_empty(), "{beside:?}");
}

#[test]
fn s3_rerun_replaces_every_file() {
    let garage = Garage::from_env();
    let workspace = Workspace::with_main_job();
    let job = garage.main_job(&workspace, "rerun");
    workspace.cra(&["run", &job]).assert_code(0);
    let first = garage.snapshot(&garage.bucket, "rerun/out/customer_value");
    workspace.cra(&["run", &job]).assert_code(0);
    let second = garage.snapshot(&garage.bucket, "rerun/out/customer_value");

    let data = |files: &std::collections::BTreeMap<String, Vec<u8>>| -> Vec<String> {
        files
            .keys()
            .filter(|key| key.ends_with(".parquet"))
            .cloned()
            .collect()
    };
    assert_eq!(data(&first).len(), 11, "{:?}", data(&first));
    assert_eq!(data(&second).len(), 11, "{:?}", data(&second));
    for key in data(&first) {
        assert!(!second.contains_key(&key), "{key} of the first run remains");
    }
    // The destination contains exactly the files its manifest lists, and the markers.
    let manifest: serde_json::Value =
        serde_json::from_slice(&second["_manifest.json"]).unwrap();
    let mut listed: Vec<String> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| file["path"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    assert_eq!(listed, data(&second));
    assert_eq!(second.len(), listed.len() + 2);
    assert!(second["_SUCCESS"].is_empty());
}

#[test]
fn failed_check_keeps_s3_destination() {
    let garage = Garage::from_env();
    let workspace = Workspace::with_main_job();
    let job = garage.main_job(&workspace, "check");
    workspace.cra(&["run", &job]).assert_code(0);
    let before = garage.snapshot(&garage.bucket, "check");

    let text = std::fs::read_to_string(workspace.path(&job)).unwrap();
    let failing = text.replace("row_count: {min: 1}", "row_count: {min: 1000000}");
    assert_ne!(failing, text);
    workspace.write(&job, failing);
    let run = workspace.cra(&["run", &job]);
    run.assert_code(3).assert_stderr_contains("row_count");
    assert_eq!(garage.snapshot(&garage.bucket, "check"), before);
}

#[test]
fn mixed_paths_with_bucket_keys() {
    let garage = Garage::from_env();
    let workspace = Workspace::with_transactions();
    let (bucket, second) = (&garage.bucket, &garage.second_bucket);
    // The input stays local; one output goes to each bucket, the second
    // reachable only with its own key; a third output stays local.
    workspace.write(
        "job.yaml",
        format!(
            "name: mixed
inputs:
  transactions:
    path: data/transactions.parquet
stages:
  - name: per_customer
    query: SELECT customer_id, count(*) AS orders FROM transactions GROUP BY customer_id
    materialize: true
outputs:
  - table: per_customer
    path: s3://{second}/mixed/per_customer
  - table: per_customer
    path: s3://{bucket}/mixed/per_customer
  - table: per_customer
    path: out/per_customer
{}    buckets:
      {second}:
        access_key_id: ${{env:CRA_TEST_S3_SECOND_KEY_ID}}
        secret_access_key: ${{env:CRA_TEST_S3_SECOND_SECRET}}
",
            garage.storage_yaml()
        ),
    );
    let check = workspace.cra(&["validate", "--check-storage", "job.yaml"]);
    check.assert_code(0);
    let stdout = check.stdout();
    assert!(
        stdout.contains(&format!("storage s3://{second}/mixed: listed and written")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("storage s3://{bucket}/mixed: listed and written")),
        "{stdout}"
    );

    workspace.cra(&["run", "job.yaml"]).assert_code(0);
    let local = query_parquet(
        &workspace.path("out/per_customer"),
        "SELECT * FROM t ORDER BY 1",
    );
    assert_eq!(local.len(), 23570);
    for (store_bucket, name) in [(second, "second"), (bucket, "main")] {
        let dir = workspace.path(&format!("downloaded/{name}"));
        for (relative, bytes) in garage.snapshot(store_bucket, "mixed/per_customer") {
            let path = dir.join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        assert_eq!(
            query_parquet(&dir, "SELECT * FROM t ORDER BY 1"),
            local,
            "{name}"
        );
    }
    // The materialized stage went to the run prefix beside the first output,
    // which is gone after the run.
    let left: Vec<String> = garage
        .snapshot(second, "mixed")
        .into_keys()
        .filter(|key| key.starts_with(".cra-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // Without the per-bucket key, the second bucket refuses the main key.
    let text = std::fs::read_to_string(workspace.path("job.yaml")).unwrap();
    let without = text[..text.find("    buckets:").unwrap()].to_string();
    workspace.write("job.yaml", without);
    let refused = workspace.cra(&["validate", "--check-storage", "job.yaml"]);
    refused
        .assert_code(1)
        .assert_stderr_contains("has no permission")
        .assert_stderr_contains(&format!("s3://{second}/mixed"));
}

/// Writes a one-input, one-output job on the test bucket with `settings` in
/// place of the usual storage section.
fn probe_job(workspace: &Workspace, bucket: &str, settings: &str) {
    workspace.write(
        "probe.yaml",
        format!(
            "name: probe
inputs:
  t:
    path: s3://{bucket}/probe/input/transactions.parquet
outputs:
  - table: t
    path: s3://{bucket}/probe/out
storage:
  s3:
{settings}"
        ),
    );
}

#[test]
fn storage_errors_name_cause() {
    let garage = Garage::from_env();
    let workspace = Workspace::with_transactions();
    garage.upload(
        &workspace.path("data/transactions.parquet"),
        "probe/input/transactions.parquet",
    );
    // A port that accepts connections and never responds.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    // The thread keeps every connection open until the test process ends.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming() {
            held.push(stream);
        }
    });
    // A port with nothing behind it.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // SAFETY: the tests of this binary read these variables only through cra
    // processes started after this point.
    unsafe {
        std::env::set_var("CRA_TEST_WRONG_SECRET", "0".repeat(64));
        std::env::set_var("CRA_TEST_UNKNOWN_KEY", "GK000000000000000000000000");
    }
    let endpoint = &garage.endpoint;
    let main_key = "    access_key_id: ${env:CRA_TEST_S3_ACCESS_KEY_ID}\n    \
                    secret_access_key: ${env:CRA_TEST_S3_SECRET_ACCESS_KEY}\n";
    let quick =
        "    retries: 1\n    timeout: 1s\n    retry_timeout: 2s\n    allow_http: true\n";
    let cases: Vec<(&str, String, &str, i32, &str, &str)> = vec![
        (
            "endpoint with nothing behind it",
            format!(
                "    endpoint: http://127.0.0.1:{closed_port}\n    region: garage\n{main_key}{quick}"
            ),
            &garage.bucket,
            1,
            "cannot connect to http://127.0.0.1:",
            "that the store is running",
        ),
        (
            "endpoint with a trailing slash",
            format!("    endpoint: {endpoint}/\n    region: garage\n{main_key}{quick}"),
            &garage.bucket,
            2,
            "ends with '/'",
            "write 'http://127.0.0.1:",
        ),
        (
            "wrong region",
            format!("    endpoint: {endpoint}\n    region: eu-west-3\n{main_key}{quick}"),
            &garage.bucket,
            1,
            "rejected the region 'eu-west-3' (from probe.yaml:",
            "set region to the store's own region",
        ),
        (
            "wrong secret",
            format!(
                "    endpoint: {endpoint}\n    region: garage\n    access_key_id: \
                 ${{env:CRA_TEST_S3_ACCESS_KEY_ID}}\n    secret_access_key: \
                 ${{env:CRA_TEST_WRONG_SECRET}}\n{quick}"
            ),
            &garage.bucket,
            1,
            "the secret access key is wrong",
            "check the secret access key (from probe.yaml:",
        ),
        (
            "unknown access key",
            format!(
                "    endpoint: {endpoint}\n    region: garage\n    access_key_id: \
                 ${{env:CRA_TEST_UNKNOWN_KEY}}\n    secret_access_key: \
                 ${{env:CRA_TEST_S3_SECRET_ACCESS_KEY}}\n{quick}"
            ),
            &garage.bucket,
            1,
            "access key id is not known to the store",
            "check the access key id",
        ),
        (
            "missing bucket",
            format!("    endpoint: {endpoint}\n    region: garage\n{main_key}{quick}"),
            "cra-no-such-bucket",
            1,
            "bucket 'cra-no-such-bucket' does not exist",
            "create the bucket",
        ),
        (
            "read-only key",
            format!(
                "    endpoint: {endpoint}\n    region: garage\n    access_key_id: \
                 ${{env:CRA_TEST_S3_READONLY_KEY_ID}}\n    secret_access_key: \
                 ${{env:CRA_TEST_S3_READONLY_SECRET}}\n{quick}"
            ),
            &garage.bucket,
            1,
            "cannot write: the key has no permission",
            "grant the key",
        ),
        (
            "store that never responds",
            format!(
                "    endpoint: http://127.0.0.1:{silent_port}\n    region: garage\n{main_key}{quick}"
            ),
            &garage.bucket,
            1,
            "timed out",
            "a request may take 1s (timeout, from probe.yaml:",
        ),
        (
            "endpoint with a user and password",
            format!(
                "    endpoint: http://user:hunter2secret@127.0.0.1:{closed_port}\n    region: \
                 garage\n{main_key}{quick}"
            ),
            &garage.bucket,
            2,
            "an endpoint has no query, fragment, user or spaces",
            "the scheme, the host and the port only",
        ),
        (
            "endpoint with a port out of range",
            format!(
                "    endpoint: http://127.0.0.1:99999\n    region: garage\n{main_key}{quick}"
            ),
            &garage.bucket,
            2,
            "has the port '99999', which is not from 1 to 65535",
            "",
        ),
        (
            "plain HTTP not allowed",
            format!("    endpoint: {endpoint}\n    region: garage\n{main_key}"),
            &garage.bucket,
            2,
            "is plain HTTP",
            "allow_http: true",
        ),
        (
            "credential in the job file",
            format!(
                "    endpoint: {endpoint}\n    region: garage\n    allow_http: true\n    \
                 access_key_id: GK1234\n    secret_access_key: notasecret\n"
            ),
            &garage.bucket,
            2,
            "a credential must not be written in the job file",
            "${env:NAME}",
        ),
    ];
    for (name, settings, bucket, code, message, hint) in cases {
        probe_job(&workspace, bucket, &settings);
        for command in [
            &["validate", "--check-storage", "probe.yaml"][..],
            &["run", "probe.yaml"],
        ] {
            let run = workspace.cra(command);
            let stderr = run.stderr();
            assert_eq!(run.code(), code, "{name} ({command:?}):\n{stderr}");
            assert!(
                stderr.contains(message),
                "{name} ({command:?}) lacks {message:?}:\n{stderr}"
            );
            assert!(
                stderr.contains(hint),
                "{name} ({command:?}) lacks hint {hint:?}:\n{stderr}"
            );
            assert!(
                !stderr.contains("hunter2secret"),
                "{name}: the password is shown:\n{stderr}"
            );
            run.assert_no_panic();
        }
    }
    // Nothing reached the destination.
    assert!(garage.keys("probe/out").is_empty());
}

#[test]
fn credentials_never_shown() {
    let garage = Garage::from_env();
    let workspace = Workspace::with_main_job();
    let job = garage.main_job(&workspace, "secrets");
    let secret = var("CRA_TEST_S3_SECRET_ACCESS_KEY");
    let key_id = var("CRA_TEST_S3_ACCESS_KEY_ID");
    let mut seen = Vec::new();
    for format in ["text", "json"] {
        let summary = workspace.path(&format!("summary-{format}.json"));
        let summary_arg = summary.to_string_lossy().into_owned();
        let mut command = common::cra_command(
            workspace.root(),
            &[
                "-vv",
                "--log-format",
                format,
                "run",
                &job,
                "--summary-file",
                &summary_arg,
            ],
        );
        command.env("RUST_LOG", "trace");
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        seen.push(String::from_utf8_lossy(&output.stdout).into_owned());
        seen.push(String::from_utf8_lossy(&output.stderr).into_owned());
        seen.push(std::fs::read_to_string(&summary).unwrap());
    }
    // A failing run: its error names the store's error code, not the secret.
    let text = std::fs::read_to_string(workspace.path(&job)).unwrap();
    workspace.write(
        &job,
        text.replace(
            "${env:CRA_TEST_S3_SECRET_ACCESS_KEY}",
            "${env:CRA_TEST_S3_READONLY_SECRET}",
        ),
    );
    for command in [
        &["run", job.as_str()][..],
        &["validate", "--check-storage", job.as_str()],
        &["explain", job.as_str()],
    ] {
        let run = workspace.cra(command);
        assert_ne!(run.code(), 0);
        seen.push(run.stdout());
        seen.push(run.stderr());
    }
    for (key, bytes) in garage.snapshot(&garage.bucket, "secrets/out") {
        if key.ends_with(".json") {
            seen.push(String::from_utf8(bytes).unwrap());
        }
    }
    assert!(
        seen.iter().any(|text| text.contains("TRACE")),
        "no trace lines were logged"
    );
    for text in &seen {
        assert!(
            !text.contains(&secret),
            "the secret access key appears in:\n{text}"
        );
        assert!(
            !text.contains(&key_id),
            "the access key id appears in:\n{text}"
        );
    }
}

#[test]
fn aws_variables_alone_configure_s3() {
    let garage = Garage::from_env();
    let workspace = Workspace::with_transactions();
    let bucket = &garage.bucket;
    garage.upload(
        &workspace.path("data/transactions.parquet"),
        "env/input/transactions.parquet",
    );
    workspace.write(
        "job.yaml",
        format!(
            "name: env
inputs:
  t:
    path: s3://{bucket}/env/input/transactions.parquet
outputs:
  - table: t
    path: s3://{bucket}/env/out
"
        ),
    );
    let secret = var("CRA_TEST_S3_SECRET_ACCESS_KEY");
    let key_id = var("CRA_TEST_S3_ACCESS_KEY_ID");
    let run = |args: &[&str], region: &str| {
        let mut command = common::cra_command(workspace.root(), args);
        command
            .env("AWS_ENDPOINT_URL", &garage.endpoint)
            .env("AWS_REGION", region)
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", &key_id)
            .env("AWS_SECRET_ACCESS_KEY", &secret)
            .env("RUST_LOG", "trace");
        command.output().unwrap()
    };
    let output = run(&["-vv", "run", "job.yaml"], &garage.region);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        !stderr.contains(&secret),
        "the secret appears in:\n{stderr}"
    );
    assert!(
        !stderr.contains(&key_id),
        "the access key id appears in:\n{stderr}"
    );
    assert!(garage.exists("env/out/_SUCCESS"));

    // A wrong region from the environment is named with its variable.
    let output = run(&["validate", "--check-storage", "job.yaml"], "eu-west-3");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("rejected the region 'eu-west-3' (from AWS_REGION)"),
        "{stderr}"
    );
}

#[test]
fn odd_keys_and_partition_values_publish() {
    let garage = Garage::from_env();
    let workspace = Workspace::with_transactions();
    let bucket = &garage.bucket;
    let job = |output: &str| {
        format!(
            "name: odd
inputs:
  transactions:
    path: data/transactions.parquet
stages:
  - name: labelled
    query: |
      SELECT customer_id, count(*) AS orders,
             CASE customer_id % 5 WHEN 0 THEN 'ünï' WHEN 1 THEN 'a/b' WHEN 2 THEN '50%'
                  WHEN 3 THEN 'sp ace' ELSE 'x=y' END AS label
      FROM transactions GROUP BY customer_id
outputs:
  - table: labelled
    path: {output}
    partition_by: [label]
{}",
            garage.storage_yaml()
        )
    };
    workspace.write("local.yaml", job("out/labelled"));
    workspace.cra(&["run", "local.yaml"]).assert_code(0);
    let local = query_parquet(
        &workspace.path("out/labelled"),
        "SELECT * FROM t ORDER BY customer_id",
    );
    assert_eq!(local.len(), 23570);

    workspace.write(
        "s3.yaml",
        job(&format!("s3://{bucket}/odd/ünï sp/labelled")),
    );
    let run = workspace.cra(&["run", "s3.yaml"]);
    run.assert_code(0);
    assert!(
        run.stdout().contains("23570 rows  5 files"),
        "{}",
        run.stdout()
    );
    let downloaded = workspace.path("downloaded");
    garage.download("odd/ünï sp/labelled", &downloaded);
    assert_eq!(
        query_parquet(&downloaded, "SELECT * FROM t ORDER BY customer_id"),
        local
    );
    // A rerun replaces the odd names too and leaves nothing beside them.
    workspace.cra(&["run", "s3.yaml"]).assert_code(0);
    let keys = garage.keys("odd/ünï sp");
    assert_eq!(
        keys.iter().filter(|key| key.ends_with(".parquet")).count(),
        5,
        "{keys:?}"
    );
    assert!(keys.iter().all(|key| !key.contains(".cra-")), "{keys:?}");

    // Characters that URLs and stores encode differently are rejected up front.
    for (path, code) in [
        (format!("s3://{bucket}/odd/50%/out"), 2),
        (format!("s3://{bucket}/odd/a#b/out"), 2),
        (format!("s3://{bucket}/odd/.cra-staging.out.x"), 2),
        (format!("s3://{bucket}/odd/.cra-staging.o.keep/t"), 2),
        ("out/.cra-lock.x".to_string(), 2),
    ] {
        workspace.write("bad.yaml", job(&path));
        let run = workspace.cra(&["run", "bad.yaml"]);
        assert_eq!(run.code(), code, "{path}: {}", run.stderr());
        run.assert_no_panic();
    }
}

#[test]
fn s3_globs_match_like_local() {
    let garage = Garage::from_env();
    let workspace = Workspace::with_transactions();
    let bucket = &garage.bucket;
    let file = workspace.path("data/transactions.parquet");
    for name in ["a.parquet", "b.parquet", "long.parquet", "sub/c.parquet"] {
        garage.upload(&file, &format!("glob/{name}"));
    }
    // Hidden names and another run's staging match the patterns but are skipped.
    for name in ["_h.parquet", ".h.parquet", ".cra-staging.x.r/c.parquet"] {
        garage.upload(
            &workspace.path("data/transactions.parquet"),
            &format!("glob/{name}"),
        );
    }
    for (pattern, files) in [
        ("*.parquet", 3),
        ("?.parquet", 2),
        ("[a].parquet", 1),
        ("*/c.parquet", 1),
    ] {
        workspace.write(
            "glob.yaml",
            format!(
                "name: glob
inputs:
  transactions:
    path: s3://{bucket}/glob/{pattern}
outputs:
  - table: transactions
    path: out/glob
    checks:
      - row_count: {{min: {rows}, max: {rows}}}
{}",
                garage.storage_yaml(),
                rows = 69659 * files
            ),
        );
        let run = workspace.cra(&["run", "glob.yaml"]);
        run.assert_code(0);
        let manifest: serde_json::Value = serde_json::from_slice(
            &std::fs::read(workspace.path("out/glob/_manifest.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(manifest["inputs"][0]["files"], files, "{pattern}");
    }

    // A prefix holding a file that cra skips by name reads the other files only.
    garage.upload(&file, "hidden/a.parquet");
    garage.upload(&workspace.path("glob.yaml"), "hidden/_junk.parquet");
    let text = std::fs::read_to_string(workspace.path("glob.yaml")).unwrap();
    let folder = text
        .replace("glob/*/c.parquet", "hidden")
        .replace("out/glob", "out/hidden");
    workspace.write("glob.yaml", folder);
    workspace.cra(&["run", "glob.yaml"]).assert_code(0);
}
