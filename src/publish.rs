//! Publishing outputs: staging, the commit protocol, `_manifest.json` and `_SUCCESS`.
//!
//! Each output is written to a staging folder beside its destination, so a rename
//! moves it into place. The commit runs only after every output is complete:
//!
//! 1. write `_manifest.json`, then `_SUCCESS`, into every staging folder;
//! 2. for each output, rename the destination (if any) to `.cra-previous.<name>.<run>`
//!    and the staging folder to the destination;
//! 3. write `_COMMITTED` into the run folder `.cra-run.<job>.<run>`: from here on the
//!    run counts as published;
//! 4. remove the previous folders, then the run folder.
//!
//! A run that fails before step 3 renames every destination back. A run killed
//! before step 3 leaves its folders behind, so the next run of the job rolls them
//! back before it starts. After step 3 the next run only removes them.
//! Concurrent runs that share a destination are kept apart by a lock file beside it.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::Error;
use crate::job::JobPlan;

/// Name of the manifest file in every published output.
pub const MANIFEST: &str = "_manifest.json";
/// Name of the empty marker file written last into every published output.
pub const SUCCESS: &str = "_SUCCESS";
const ABSENT: &str = "_CRA_ABSENT";
const COMMITTED: &str = "_COMMITTED";

/// The staging and destination folders of one run.
pub struct Publisher {
    job_name: String,
    run_id: String,
    run_dir: PathBuf,
    destinations: Vec<Destination>,
    locks: Vec<File>,
    committed: bool,
}

/// One output's folders.
#[derive(Debug, Clone)]
struct Destination {
    display: String,
    target: PathBuf,
    staging: PathBuf,
    previous: PathBuf,
}

impl Destination {
    fn new(target: &Path, display: &str, run_id: &str) -> Self {
        let parent = target.parent().unwrap_or(Path::new("/"));
        let name = file_name(target);
        Self {
            display: display.to_string(),
            target: target.to_path_buf(),
            staging: parent.join(format!(".cra-staging.{name}.{run_id}")),
            previous: parent.join(format!(".cra-previous.{name}.{run_id}")),
        }
    }
}

impl Publisher {
    /// Locks the destinations, recovers what earlier runs left behind, checks
    /// that each destination may be replaced, and creates empty staging folders.
    ///
    /// A destination that exists, is not empty and contains no cra manifest is left
    /// alone (exit 2) unless `force` is set.
    pub fn prepare(job: &JobPlan, run_id: &str, force: bool) -> Result<Self, Error> {
        let mut destinations = Vec::new();
        let mut locks = Vec::new();
        for output in &job.outputs {
            let target = output.location.local_path();
            let display = output.location.display();
            let parent = target.parent().unwrap_or(Path::new("/"));
            fs::create_dir_all(parent).map_err(|error| {
                Error::run(format!(
                    "{}: output '{}': cannot create folder '{}': {error}",
                    job.file,
                    output.table,
                    parent.display()
                ))
            })?;
            locks.push(lock(parent, target, &job.file, display)?);
            destinations.push(Destination::new(target, display, run_id));
        }
        let first_parent = destinations[0].target.parent().unwrap_or(Path::new("/"));
        let run_dir = first_parent.join(format!(".cra-run.{}.{run_id}", job.name));

        for destination in &destinations {
            recover(destination, first_parent, &job.name)?;
        }
        for destination in &destinations {
            remove_run_dirs(&destination.target, &job.name);
        }
        for destination in &destinations {
            check_replaceable(destination, &job.file, force)?;
        }
        for destination in &destinations {
            create_empty_dir(&destination.staging)?;
        }
        create_empty_dir(&run_dir)?;
        Ok(Self {
            job_name: job.name.clone(),
            run_id: run_id.to_string(),
            run_dir,
            destinations,
            locks,
            committed: false,
        })
    }

    /// Returns the run's own folder, for `materialize: true` stages.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// Returns the staging folder of output `index`.
    pub fn staging_dir(&self, index: usize) -> &Path {
        &self.destinations[index].staging
    }

    /// Publishes every output: manifests and `_SUCCESS` into staging, then the
    /// renames. On failure every destination is as it was before the run.
    pub fn commit(&mut self, manifests: &[Manifest]) -> Result<(), Error> {
        for (destination, manifest) in self.destinations.iter().zip(manifests) {
            write_markers(&destination.staging, manifest).map_err(|error| {
                Error::run(format!(
                    "output '{}': cannot write the manifest in staging: {error}",
                    destination.display
                ))
            })?;
        }

        for index in 0..self.destinations.len() {
            if let Err(error) = swap_in(&self.destinations[index]) {
                let failed = &self.destinations[index];
                let message = format!(
                    "output '{}': cannot move the new output into place: {error}",
                    failed.display
                );
                for destination in self.destinations[..index].iter().rev() {
                    if let Err(rollback) = roll_back(destination) {
                        tracing::error!(
                            output = %destination.display,
                            error = %rollback,
                            "cannot restore the previous output"
                        );
                    }
                }
                return Err(Error::run(message));
            }
        }

        // The commit point: from here on the next run finishes the cleanup instead
        // of rolling back.
        write_synced(&self.run_dir.join(COMMITTED), b"").map_err(|error| {
            Error::run(format!(
                "cannot record the commit of run '{}': {error}",
                self.run_id
            ))
        })?;
        self.committed = true;
        for destination in &self.destinations {
            remove_quietly(&destination.previous);
        }
        remove_quietly(&self.run_dir);
        tracing::debug!(job = %self.job_name, run_id = %self.run_id, "outputs committed");
        Ok(())
    }
}

impl Drop for Publisher {
    /// Removes staging after a failed run; destinations were never touched.
    fn drop(&mut self) {
        if !self.committed {
            for destination in &self.destinations {
                remove_quietly(&destination.staging);
            }
            remove_quietly(&self.run_dir);
        }
        // Dropping the files releases the locks.
        self.locks.clear();
    }
}

fn lock(
    parent: &Path,
    target: &Path,
    job_file: &str,
    display: &str,
) -> Result<File, Error> {
    let path = parent.join(format!(".cra-lock.{}", file_name(target)));
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|error| {
            Error::run(format!(
                "{job_file}: cannot open lock file '{}': {error}",
                path.display()
            ))
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(Error::run(format!(
            "{job_file}: output '{display}' is being written by another cra run"
        ))
        .with_hint("wait for that run to end; runs that share an output cannot overlap")),
        Err(fs::TryLockError::Error(error)) => Err(Error::run(format!(
            "{job_file}: cannot lock '{}': {error}",
            path.display()
        ))),
    }
}

/// Rolls back or finishes what an interrupted run left beside `destination`.
///
/// `run_parent` is the folder of the run folders, beside the first output.
fn recover(
    destination: &Destination,
    run_parent: &Path,
    job_name: &str,
) -> Result<(), Error> {
    let parent = destination.target.parent().unwrap_or(Path::new("/"));
    let name = file_name(&destination.target);
    let entries = match fs::read_dir(parent) {
        Ok(entries) => entries,
        Err(_) => return Ok(()),
    };
    let staging_prefix = format!(".cra-staging.{name}.");
    let run_prefix = format!(".cra-run.{job_name}.");
    // An output may be named like another with a dot, such as `a` and `a.b`. Run
    // ids hold no dot, so the part after the last dot is the run id and the rest
    // must be this output's name exactly.
    let leftover = |prefix: &str, entry_name: &str| -> Option<String> {
        let (output, run_id) = entry_name.strip_prefix(prefix)?.rsplit_once('.')?;
        (output == name).then(|| run_id.to_string())
    };
    for entry in entries.flatten() {
        let entry_name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if leftover(".cra-staging.", &entry_name).is_some() {
            tracing::info!(path = %path.display(), "removing staging of an interrupted run");
            remove_quietly(&path);
        } else if let Some(run_id) = leftover(".cra-previous.", &entry_name) {
            let run_id = run_id.as_str();
            let run_dir = run_parent.join(format!("{run_prefix}{run_id}"));
            if run_dir.join(COMMITTED).exists() {
                remove_quietly(&path);
                continue;
            }
            tracing::warn!(
                output = %destination.display,
                run_id,
                "rolling back the unfinished commit of an interrupted run"
            );
            let interrupted = Destination {
                display: destination.display.clone(),
                target: destination.target.clone(),
                staging: parent.join(format!("{staging_prefix}{run_id}")),
                previous: path.clone(),
            };
            roll_back(&interrupted).map_err(|error| {
                Error::run(format!(
                    "output '{}': cannot roll back interrupted run '{run_id}': {error}",
                    destination.display
                ))
                .with_hint(format!(
                    "the previous output is kept in '{}'; move it back by hand",
                    path.display()
                ))
            })?;
            remove_quietly(&interrupted.staging);
        }
    }
    Ok(())
}

/// Removes the run folders of earlier runs of `job_name` beside `target`.
///
/// Called only after [`recover`] handled every destination, because the run
/// folder's `_COMMITTED` marker decides between rolling back and finishing.
fn remove_run_dirs(target: &Path, job_name: &str) {
    let parent = target.parent().unwrap_or(Path::new("/"));
    let run_prefix = format!(".cra-run.{job_name}.");
    if let Ok(entries) = fs::read_dir(parent) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&run_prefix) {
                remove_quietly(&entry.path());
            }
        }
    }
}

fn check_replaceable(
    destination: &Destination,
    job_file: &str,
    force: bool,
) -> Result<(), Error> {
    let target = &destination.target;
    let Ok(metadata) = fs::symlink_metadata(target) else {
        return Ok(());
    };
    if !metadata.is_dir() {
        return Err(Error::invalid(format!(
            "{job_file}: output path '{}' exists and is not a folder",
            destination.display
        ))
        .with_hint("point the output at a folder, or remove the file"));
    }
    if force || is_cra_output(target) {
        return Ok(());
    }
    let is_empty = fs::read_dir(target)
        .map(|mut e| e.next().is_none())
        .unwrap_or(false);
    if is_empty {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "{job_file}: output folder '{}' exists and contains no cra output",
        destination.display
    ))
    .with_hint("pass --force to replace its contents, or choose another path"))
}

/// Returns true when `dir` contains a manifest written by cra.
pub fn is_cra_output(dir: &Path) -> bool {
    let Ok(text) = fs::read_to_string(dir.join(MANIFEST)) else {
        return false;
    };
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|value| value.get("cra_version").cloned())
        .is_some()
}

fn swap_in(destination: &Destination) -> std::io::Result<()> {
    if fs::symlink_metadata(&destination.target).is_ok() {
        fs::rename(&destination.target, &destination.previous)?;
    } else {
        fs::create_dir(&destination.previous)?;
        write_synced(&destination.previous.join(ABSENT), b"")?;
    }
    if let Err(error) = fs::rename(&destination.staging, &destination.target) {
        roll_back(destination)?;
        return Err(error);
    }
    sync_dir(destination.target.parent().unwrap_or(Path::new("/")));
    Ok(())
}

/// Puts the previous output back in place, keeping the new one as staging.
fn roll_back(destination: &Destination) -> std::io::Result<()> {
    if !destination.previous.exists() {
        return Ok(());
    }
    if fs::symlink_metadata(&destination.target).is_ok() {
        if destination.staging.exists() {
            fs::remove_dir_all(&destination.target)?;
        } else {
            fs::rename(&destination.target, &destination.staging)?;
        }
    }
    if destination.previous.join(ABSENT).exists() {
        fs::remove_dir_all(&destination.previous)?;
    } else {
        fs::rename(&destination.previous, &destination.target)?;
    }
    sync_dir(destination.target.parent().unwrap_or(Path::new("/")));
    Ok(())
}

fn write_markers(dir: &Path, manifest: &Manifest) -> std::io::Result<()> {
    let mut json = crate::redact::to_json_pretty(manifest)?;
    json.push(b'\n');
    write_synced(&dir.join(MANIFEST), &json)?;
    write_synced(&dir.join(SUCCESS), b"")?;
    sync_dir(dir);
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn sync_dir(dir: &Path) {
    if let Ok(file) = File::open(dir) {
        let _ = file.sync_all();
    }
}

fn create_empty_dir(dir: &Path) -> Result<(), Error> {
    remove_quietly(dir);
    fs::create_dir_all(dir).map_err(|error| {
        Error::run(format!(
            "cannot create staging folder '{}': {error}",
            dir.display()
        ))
    })
}

fn remove_quietly(path: &Path) {
    let result = match fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(_) => return,
    };
    if let Err(error) = result {
        tracing::warn!(path = %path.display(), %error, "cannot remove leftover folder");
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".to_string())
}

/// The `_manifest.json` of one published output.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    /// cra version that wrote the output.
    pub cra_version: String,
    /// Run id, shared by every output of the run.
    pub run_id: String,
    /// Job name.
    pub job: String,
    /// Job file as it was named on the command line.
    pub job_file: String,
    /// UTC start of the run, RFC 3339.
    pub started_at: String,
    /// UTC time the outputs were complete, RFC 3339.
    pub finished_at: String,
    /// Parameter values the run used.
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Inputs with their files and sizes.
    pub inputs: Vec<ManifestInput>,
    /// Table the output holds.
    pub table: String,
    /// Total rows.
    pub rows: u64,
    /// Hive partition columns, in folder order.
    pub partition_by: Vec<String>,
    /// Columns of the table, partition columns included.
    pub schema: Vec<ManifestColumn>,
    /// Data files, relative to the output folder.
    pub files: Vec<ManifestFile>,
    /// Rows with invalid statistics (negative values, recency above t, frequency
    /// not whole) that scored NULL while this output was written, by function.
    pub invalid_statistics: std::collections::BTreeMap<String, u64>,
    /// Stages of the run, with rows and elapsed time.
    pub stages: Vec<crate::summary::StageSummary>,
    /// Results of the output's data checks; failed ones are warnings, since a
    /// failed error check publishes nothing.
    pub checks: Vec<crate::engine::CheckResult>,
}

/// One input of a run.
#[derive(Debug, Clone, Serialize)]
pub struct ManifestInput {
    /// Table name.
    pub name: String,
    /// Location as the user reads it.
    pub path: String,
    /// Number of data files.
    pub files: usize,
    /// Total bytes of the data files.
    pub bytes: u64,
}

/// One column of an output.
#[derive(Debug, Clone, Serialize)]
pub struct ManifestColumn {
    /// Column name.
    pub name: String,
    /// Arrow data type.
    #[serde(rename = "type")]
    pub data_type: String,
    /// Whether the column may hold NULL.
    pub nullable: bool,
}

/// One data file of an output.
#[derive(Debug, Clone, Serialize)]
pub struct ManifestFile {
    /// Path relative to the output folder, with `/` separators.
    pub path: String,
    /// Rows in the file, from its Parquet footer.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
}

/// Lists the Parquet files written under `dir`, with rows from each footer.
pub fn list_data_files(dir: &Path) -> std::io::Result<Vec<ManifestFile>> {
    let mut files = Vec::new();
    collect_files(dir, dir, &mut files)?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn collect_files(
    root: &Path,
    dir: &Path,
    files: &mut Vec<ManifestFile>,
) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            collect_files(root, &path, files)?;
            continue;
        }
        let bytes = entry.metadata()?.len();
        let reader = parquet::file::reader::SerializedFileReader::new(File::open(&path)?)
            .map_err(|error| {
                std::io::Error::other(format!("{}: {error}", path.display()))
            })?;
        use parquet::file::reader::FileReader;
        let rows = reader.metadata().file_metadata().num_rows().max(0) as u64;
        let relative = path.strip_prefix(root).unwrap_or(&path);
        let relative = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        files.push(ManifestFile {
            path: relative,
            rows,
            bytes,
        });
    }
    Ok(())
}
