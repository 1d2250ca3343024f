//! The machine-readable run summary that `cra run --summary-file PATH` writes.
//!
//! The summary is written when the run ends, whether it succeeded or not, so an
//! orchestrator reads one JSON file instead of parsing logs. It is written to a
//! temporary file beside `PATH` and renamed, so a reader never sees half of it.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::engine::{CheckResult, StageReport};
use crate::error::Error;
use crate::publish::ManifestFile;

/// Record of a run, as far as it got.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// cra version.
    pub cra_version: String,
    /// Run id.
    pub run_id: String,
    /// Job name; `null` when the job file could not be read.
    pub job: Option<String>,
    /// Job file as named on the command line.
    pub job_file: String,
    /// Parameter values the run used.
    pub params: serde_json::Map<String, serde_json::Value>,
    /// UTC start, RFC 3339.
    pub started_at: String,
    /// UTC end, RFC 3339.
    pub finished_at: String,
    /// `succeeded`, `failed` (exit 1), `invalid` (exit 2) or `check_failed` (exit 3).
    pub status: &'static str,
    /// The process exit code.
    pub exit_code: u8,
    /// Error messages, one per problem, with their hints.
    pub errors: Vec<SummaryError>,
    /// Stages in run order.
    pub stages: Vec<StageSummary>,
    /// Outputs in job order.
    pub outputs: Vec<OutputSummary>,
    /// Data checks in job order.
    pub checks: Vec<CheckResult>,
}

/// One error of a failed run.
#[derive(Debug, Clone, Serialize)]
pub struct SummaryError {
    /// The message, as printed after `error: `.
    pub message: String,
    /// The hint, as printed after `hint: `.
    pub hint: Option<String>,
}

/// One stage of a run.
#[derive(Debug, Clone, Serialize)]
pub struct StageSummary {
    /// Stage name.
    pub name: String,
    /// Whether the stage was written to Parquet once.
    pub materialized: bool,
    /// Rows the stage returned.
    pub rows: u64,
    /// Bytes spilled to disk while writing a materialized stage.
    pub spilled_bytes: u64,
    /// Wall time in milliseconds.
    pub elapsed_ms: u64,
}

impl From<&StageReport> for StageSummary {
    fn from(report: &StageReport) -> Self {
        Self {
            name: report.name.clone(),
            materialized: report.materialized,
            rows: report.rows,
            spilled_bytes: report.spilled_bytes,
            elapsed_ms: report.elapsed.as_millis() as u64,
        }
    }
}

/// One output of a run.
#[derive(Debug, Clone, Serialize)]
pub struct OutputSummary {
    /// Table written.
    pub table: String,
    /// Destination as the user reads it.
    pub path: String,
    /// Whether the destination now contains this run's files.
    pub published: bool,
    /// Rows written.
    pub rows: u64,
    /// Bytes of the data files.
    pub bytes: u64,
    /// Data files, relative to the destination.
    pub files: Vec<ManifestFile>,
    /// Bytes that sorts and aggregations spilled to disk while computing it.
    pub spilled_bytes: u64,
    /// Wall time to compute and stage the output, in milliseconds.
    pub elapsed_ms: u64,
}

impl RunSummary {
    /// Starts the summary of a run of `job_file`.
    pub fn new(run_id: &str, job_file: &str) -> Self {
        Self {
            cra_version: crate::VERSION.to_string(),
            run_id: run_id.to_string(),
            job: None,
            job_file: job_file.to_string(),
            params: serde_json::Map::new(),
            started_at: chrono::Utc::now().to_rfc3339(),
            finished_at: String::new(),
            status: "failed",
            exit_code: 1,
            errors: Vec::new(),
            stages: Vec::new(),
            outputs: Vec::new(),
            checks: Vec::new(),
        }
    }

    /// Records how the run ended.
    pub fn finish(&mut self, result: Result<(), &Error>) {
        self.finished_at = chrono::Utc::now().to_rfc3339();
        match result {
            Ok(()) => {
                self.status = "succeeded";
                self.exit_code = 0;
            }
            Err(error) => {
                self.exit_code = error.kind().code();
                self.status = match self.exit_code {
                    2 => "invalid",
                    3 => "check_failed",
                    _ => "failed",
                };
                self.errors = error
                    .problems()
                    .map(|problem| SummaryError {
                        message: crate::redact::text(problem.message()).into_owned(),
                        hint: problem
                            .hint()
                            .map(|hint| crate::redact::text(hint).into_owned()),
                    })
                    .collect();
            }
        }
    }

    /// Writes the summary to `path` through a temporary file and a rename.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut text =
            crate::redact::to_json_pretty(self).map_err(std::io::Error::other)?;
        text.push(b'\n');
        let temporary = temporary_path(path, &self.run_id);
        let written = (|| {
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(&text)?;
            file.sync_all()?;
            std::fs::rename(&temporary, path)
        })();
        if written.is_err() {
            std::fs::remove_file(&temporary).ok();
        }
        written
    }
}

/// Returns the temporary file beside `path` that [`RunSummary::write`] renames.
fn temporary_path(path: &Path, run_id: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "summary.json".to_string());
    path.with_file_name(format!(".{name}.{run_id}.tmp"))
}

/// Checks that writing the summary to `path` would replace nothing of the job:
/// not the job file, nor anything inside a folder with a published cra output (a
/// `_manifest.json`). With the loaded `job`, inputs, outputs and the SQL files of
/// stages are checked too.
pub fn check_target(
    path: &Path,
    job_file: &str,
    job: Option<&crate::job::JobPlan>,
) -> Result<(), Error> {
    let absolute =
        |p: &Path| std::path::absolute(p).map(|p| crate::storage::normalize(&p));
    let Ok(target) = absolute(path) else {
        return Ok(());
    };
    let mut clash = if absolute(Path::new(job_file)).is_ok_and(|file| file == target) {
        Some("the job file".to_string())
    } else {
        target
            .ancestors()
            .skip(1)
            .find(|folder| folder.join("_manifest.json").is_file())
            .map(|folder| format!("the published output in '{}'", folder.display()))
    };
    if let Some(job) = job
        && clash.is_none()
    {
        clash = job_clash(&target, job);
    }
    match clash {
        Some(what) => Err(Error::invalid(format!(
            "--summary-file '{}' would overwrite {what}",
            path.display()
        ))
        .with_hint("write the summary to a file outside every input and output")),
        None => Ok(()),
    }
}

/// Names the input, output or stage SQL file of `job` that `target` would replace.
fn job_clash(target: &Path, job: &crate::job::JobPlan) -> Option<String> {
    let inputs = job
        .inputs
        .iter()
        .map(|input| (format!("input '{}'", input.name), &input.location));
    let outputs = job
        .outputs
        .iter()
        .map(|output| (format!("output '{}'", output.table), &output.location));
    let location = inputs.chain(outputs).find_map(|(what, location)| {
        // A summary is a local file, so only local locations can clash.
        let path = location.local_path()?;
        let root = if location.is_glob() {
            crate::storage::glob_root(path)
        } else {
            path.to_path_buf()
        };
        target.starts_with(root).then_some(what)
    });
    location.or_else(|| {
        job.stages.iter().find_map(|stage| match &stage.origin {
            crate::job::SqlOrigin::File { display } => std::path::absolute(display)
                .is_ok_and(|file| crate::storage::normalize(&file) == target)
                .then(|| format!("the SQL file of stage '{}'", stage.name)),
            crate::job::SqlOrigin::Inline { .. } => None,
        })
    })
}

/// Checks before a run that the summary can be written to `path`: its folder
/// exists and `path` is no folder. A run that would only fail to report
/// itself at the end exits 2 at the start instead.
pub fn check_path(path: &Path) -> Result<(), Error> {
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if !folder.is_dir() {
        let problem = if folder.exists() {
            "is not a folder"
        } else {
            "does not exist"
        };
        return Err(Error::invalid(format!(
            "--summary-file '{}': folder '{}' {problem}",
            path.display(),
            folder.display()
        ))
        .with_hint("create the folder first, or name a file in an existing one"));
    }
    if path.is_dir() {
        return Err(Error::invalid(format!(
            "--summary-file '{}' is a folder",
            path.display()
        ))
        .with_hint("name a file, such as summary.json"));
    }
    Ok(())
}
