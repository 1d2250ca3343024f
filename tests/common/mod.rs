//! Helpers shared by the integration tests: a temporary workspace with real CDNOW
//! Parquet, a runner for the built `cra` binary, and folder snapshots.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arrow::datatypes::DataType;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use std::sync::Arc;
use tempfile::TempDir;

pub mod garage;

/// Returns the repository root, where `data/`, `jobs/` and `sql/` live.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A temporary folder that tests write job files into and run cra in.
pub struct Workspace {
    dir: TempDir,
}

impl Workspace {
    /// Creates an empty workspace.
    pub fn new() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("cra-test-")
                .tempdir()
                .unwrap(),
        }
    }

    /// Creates a workspace holding a copy of the CDNOW transactions as
    /// `data/transactions.parquet`.
    pub fn with_transactions() -> Self {
        let workspace = Self::new();
        workspace.copy_from_repo(
            "data/cdnow/transactions.parquet",
            "data/transactions.parquet",
        );
        workspace
    }

    /// Creates a workspace laid out like the repository, with its jobs, their SQL
    /// and the CDNOW Parquet files, so the real jobs run without touching the
    /// repository.
    pub fn with_main_job() -> Self {
        let workspace = Self::new();
        for folder in ["jobs", "sql"] {
            for entry in std::fs::read_dir(repo().join(folder)).unwrap() {
                let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                let file = format!("{folder}/{name}");
                workspace.copy_from_repo(&file, &file);
            }
        }
        for file in ["transactions.parquet", "sample_transactions.parquet"] {
            let file = format!("data/cdnow/{file}");
            workspace.copy_from_repo(&file, &file);
        }
        workspace
    }

    /// Returns the workspace folder.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Returns the absolute path of `relative`.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Writes `contents` to `relative`, creating folders.
    pub fn write(&self, relative: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Copies a repository file into the workspace.
    pub fn copy_from_repo(&self, from: &str, to: &str) {
        let target = self.path(to);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(repo().join(from), target).unwrap();
    }

    /// Writes `jobs/generated.yaml`: the main job on the transactions in
    /// `data/generated`, where `cra generate` writes them.
    pub fn write_generated_job(&self) {
        let job = std::fs::read_to_string(self.path("jobs/customer_value.yaml")).unwrap();
        let job = job.replace(
            "path: ../data/cdnow/transactions.parquet",
            "path: ../data/generated",
        );
        assert!(job.contains("path: ../data/generated"));
        self.write("jobs/generated.yaml", job);
    }

    /// Runs `cra` with `args` in the workspace folder.
    pub fn cra(&self, args: &[&str]) -> Run {
        self.cra_in(self.root(), args)
    }

    /// Runs `cra` with `args` in `cwd`.
    pub fn cra_in(&self, cwd: &Path, args: &[&str]) -> Run {
        let output = cra_command(cwd, args).output().unwrap();
        Run { output }
    }
}

/// Builds a `cra` command that logs at the default level.
pub fn cra_command(cwd: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cra"));
    command.args(args).current_dir(cwd).env_remove("RUST_LOG");
    command
}

/// The outcome of one `cra` process.
pub struct Run {
    /// Exit status and captured output.
    pub output: Output,
}

impl Run {
    /// Returns the exit code; a signal counts as -1.
    pub fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }

    /// Returns stderr as text.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Returns stdout as text.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    /// Asserts the exit code, printing both streams when it differs.
    pub fn assert_code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code(),
            expected,
            "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }

    /// Asserts that stderr contains `needle`.
    pub fn assert_stderr_contains(&self, needle: &str) -> &Self {
        let stderr = self.stderr();
        assert!(
            stderr.contains(needle),
            "stderr lacks {needle:?}:\n{stderr}"
        );
        self
    }

    /// Asserts that stderr shows no panic text.
    pub fn assert_no_panic(&self) -> &Self {
        let stderr = self.stderr();
        assert!(
            !stderr.contains("panicked"),
            "panic text in stderr:\n{stderr}"
        );
        assert!(
            !stderr.contains("RUST_BACKTRACE"),
            "panic text in stderr:\n{stderr}"
        );
        self
    }
}

/// Reads every file under `dir` into a map from relative path to contents.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    collect(dir, dir, &mut files);
    files
}

fn collect(root: &Path, dir: &Path, files: &mut BTreeMap<String, Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let relative = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            files.insert(relative, std::fs::read(&path).unwrap());
        }
    }
}

/// Returns the contents of the Parquet files under `dir`, in the order of
/// their paths.
pub fn parquet_contents(dir: &Path) -> Vec<Vec<u8>> {
    snapshot(dir)
        .into_iter()
        .filter(|(name, _)| name.ends_with(".parquet"))
        .map(|(_, bytes)| bytes)
        .collect()
}

/// Reads the rows of the Parquet files under `dir`, file by file in the order of
/// their paths and each file in its stored order. Each row is its values joined
/// by `|`.
pub fn parquet_rows_in_order(dir: &Path) -> Vec<String> {
    let mut rows = Vec::new();
    for name in snapshot(dir)
        .keys()
        .filter(|name| name.ends_with(".parquet"))
    {
        rows.extend(file_rows_in_order(&dir.join(name)));
    }
    rows
}

fn file_rows_in_order(path: &Path) -> Vec<String> {
    let file = std::fs::File::open(path).unwrap();
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
    reader
        .flat_map(|batch| batch_rows(&batch.unwrap()))
        .collect()
}

/// Formats each row of `batch` as its values joined by `|`.
fn batch_rows(batch: &arrow::record_batch::RecordBatch) -> Vec<String> {
    (0..batch.num_rows())
        .map(|row| {
            let values: Vec<String> = batch
                .columns()
                .iter()
                .map(|column| {
                    arrow::util::display::array_value_to_string(column, row).unwrap()
                })
                .collect();
            values.join("|")
        })
        .collect()
}

/// Lists the names in `dir` that cra uses for staging and rollback.
pub fn leftovers(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".cra-") && !name.starts_with(".cra-lock."))
        .collect();
    names.sort();
    names
}

/// Runs a SQL query over a Parquet folder or file and returns the rows as text,
/// one line per row with `|` between values.
pub fn query_parquet(path: &Path, sql: &str) -> Vec<String> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let ctx = datafusion::prelude::SessionContext::new();
        let mut location = path.to_string_lossy().into_owned();
        if path.is_dir() {
            location.push('/');
        }
        let url = ListingTableUrl::parse(&location).unwrap();
        let state = ctx.state();
        let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension(".parquet");
        let partitions = options.infer_partitions(&state, &url).await.unwrap();
        let options = options.with_table_partition_cols(
            partitions
                .into_iter()
                .map(|name| (name, DataType::Utf8))
                .collect(),
        );
        let schema = options.infer_schema(&state, &url).await.unwrap();
        let config = ListingTableConfig::new(url)
            .with_listing_options(options)
            .with_schema(schema);
        ctx.register_table("t", Arc::new(ListingTable::try_new(config).unwrap()))
            .unwrap();
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        batches.iter().flat_map(batch_rows).collect()
    })
}
