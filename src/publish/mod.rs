//! Publishing outputs: staging, the commit protocol, `_manifest.json` and `_SUCCESS`.
//!
//! Each output is written to a staging folder or prefix beside its destination.
//! The commit runs only after every output is complete and every check passed:
//!
//! 1. the new `_manifest.json` (and on local disk `_SUCCESS`) go into staging;
//! 2. each destination takes in its new files. On local disk the destination is
//!    renamed to `.cra-previous.<name>.<run>` and staging into its place
//!    ([`local`]). In a bucket the change is journalled, the old markers are taken
//!    out and the new files are copied in ([`s3`]);
//! 3. `_COMMITTED` is written into the run folder `.cra-run.<job>.<run>` beside
//!    the first output: from here on the run counts as published;
//! 4. each destination finishes: the previous folder goes; in a bucket the old
//!    files go and the manifest, then `_SUCCESS`, arrive.
//!
//! A run that fails before step 3 rolls every destination back. A run killed
//! before step 3 leaves its folders and prefixes behind, so the next run of the
//! job rolls them back before it starts; after step 3 the next run finishes them.
//! Concurrent runs that share a local destination are kept apart by a lock file
//! beside it.

mod local;
mod s3;

use std::collections::{BTreeMap, HashSet};
use std::fs::File;

use serde::Serialize;

use crate::error::Error;
use crate::job::JobPlan;
use crate::storage::{Location, Stores};
use local::LocalDestination;
use s3::S3Destination;

/// Name of the manifest file in every published output.
pub const MANIFEST: &str = "_manifest.json";
/// Name of the empty marker file written last into every published output.
pub const SUCCESS: &str = "_SUCCESS";
const COMMITTED: &str = "_COMMITTED";

/// Time an aborted cluster run waits before it removes its staging once more.
/// In tests, cancelled tasks wrote their last files up to 150 ms after their job
/// had ended.
const CANCELLED_TASK_SETTLE: std::time::Duration = std::time::Duration::from_secs(1);

static COMMITTING: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Returns true from a run's first change of its destinations on: while it
/// commits, and once it has passed the commit point. A commit that failed and
/// was rolled back clears it.
pub fn commit_started() -> bool {
    COMMITTING.load(std::sync::atomic::Ordering::SeqCst)
}

/// Marks the commit as started; dropped before the commit point, it marks the
/// commit as rolled back.
struct CommitGuard {
    committed: bool,
}

impl CommitGuard {
    fn start() -> Self {
        COMMITTING.store(true, std::sync::atomic::Ordering::SeqCst);
        CommitGuard { committed: false }
    }
}

impl Drop for CommitGuard {
    fn drop(&mut self) {
        if !self.committed {
            COMMITTING.store(false, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// The staging and destination folders of one run.
pub struct Publisher {
    job_name: String,
    run_id: String,
    stores: Stores,
    run_dir: Location,
    destinations: Vec<Destination>,
    locks: Vec<File>,
    s3_locks: Vec<s3::S3Lock>,
    committed: bool,
    cleaned: bool,
}

/// One output's folders or prefixes.
enum Destination {
    Local(LocalDestination),
    S3(Box<S3Destination>),
}

impl Destination {
    fn display(&self) -> &str {
        match self {
            Destination::Local(local) => &local.display,
            Destination::S3(s3) => &s3.display,
        }
    }

    fn staging(&self) -> Location {
        match self {
            Destination::Local(local) => Location::Local {
                path: local.staging.clone(),
                display: local.staging.display().to_string(),
            },
            Destination::S3(s3) => s3.staging.clone(),
        }
    }

    async fn roll_back(&self) -> Result<(), Error> {
        match self {
            Destination::Local(local) => local.roll_back().map_err(|error| {
                Error::run(format!(
                    "output '{}': cannot restore the previous output: {error}",
                    local.display
                ))
            }),
            Destination::S3(s3) => s3.roll_back().await,
        }
    }
}

/// Returns the run id in `entry` when it is `<prefix><name>.<run id>`.
///
/// An output may be named like another with a dot, such as `a` and `a.b`. Run ids
/// hold no dot, so the part after the last dot is the run id and the rest must be
/// the output's name exactly.
fn leftover_run_id(entry: &str, prefix: &str, name: &str) -> Option<String> {
    let (output, run_id) = entry.strip_prefix(prefix)?.rsplit_once('.')?;
    (output == name).then(|| run_id.to_string())
}

/// Returns true when `bytes` are a manifest that cra wrote.
fn is_cra_manifest(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|value| value.get("cra_version").cloned())
        .is_some()
}

fn not_cra_output(job_file: &str, display: &str) -> Error {
    Error::invalid(format!(
        "{job_file}: output folder '{display}' exists and contains no cra output"
    ))
    .with_hint("pass --force to replace its contents, or choose another path")
}

impl Publisher {
    /// Locks the destinations, recovers what earlier runs left behind, checks
    /// that each destination may be replaced, and creates empty staging.
    ///
    /// A destination that exists, is not empty and contains no cra manifest is left
    /// alone (exit 2) unless `force` is set.
    pub async fn prepare(
        job: &JobPlan,
        stores: &Stores,
        run_id: &str,
        force: bool,
    ) -> Result<Self, Error> {
        let mut destinations = Vec::new();
        let mut locks = Vec::new();
        let mut s3_locks = Vec::new();
        for output in &job.outputs {
            match &output.location {
                Location::Local { path, display } => {
                    let destination = LocalDestination::new(path, display, run_id);
                    locks.push(destination.lock(&job.file, &output.table)?);
                    destinations.push(Destination::Local(destination));
                }
                location @ Location::S3 { .. } => {
                    let destination = S3Destination::new(stores, location, run_id)?;
                    let lock =
                        s3::S3Lock::acquire(stores, location, run_id, &job.name).await;
                    let lock = match lock {
                        Ok(lock) => lock,
                        Err(error) => {
                            for mut held in s3_locks {
                                s3::S3Lock::release(&mut held).await;
                            }
                            return Err(error);
                        }
                    };
                    s3_locks.extend(lock);
                    destinations.push(Destination::S3(Box::new(destination)));
                }
            }
        }
        let (run_parent, _) = job.outputs[0].location.parent().ok_or_else(|| {
            Error::invalid(format!(
                "{}: the first output has no parent folder",
                job.file
            ))
        })?;
        let run_prefix = format!(".cra-run.{}.", job.name);
        let run_dir = run_parent.join(&format!("{run_prefix}{run_id}"));
        let mut publisher = Self {
            job_name: job.name.clone(),
            run_id: run_id.to_string(),
            stores: stores.clone(),
            run_dir,
            destinations,
            locks,
            s3_locks,
            committed: false,
            cleaned: false,
        };
        match publisher.recover_and_clear(job, &run_parent, force).await {
            Ok(()) => Ok(publisher),
            Err(error) => {
                publisher.release_locks().await;
                publisher.cleaned = true;
                Err(error)
            }
        }
    }

    /// Recovers what interrupted runs left beside every output, checks that each
    /// destination may be replaced, and clears this run's staging.
    async fn recover_and_clear(
        &self,
        job: &JobPlan,
        run_parent: &Location,
        force: bool,
    ) -> Result<(), Error> {
        let stores = &self.stores;
        let destinations = &self.destinations;
        let run_prefix = format!(".cra-run.{}.", job.name);
        // Which interrupted runs reached their commit point decides, for each
        // destination, between rolling back and finishing.
        let mut leftovers = Vec::new();
        let mut interrupted = HashSet::new();
        for destination in destinations {
            let found = match destination {
                Destination::Local(local) => local
                    .interrupted_runs()
                    .into_iter()
                    .map(|run_id| (run_id, true))
                    .collect(),
                Destination::S3(s3) => s3.leftovers().await?,
            };
            interrupted.extend(
                found
                    .iter()
                    .filter(|(_, previous)| *previous)
                    .map(|(run_id, _)| run_id.clone()),
            );
            leftovers.push(found);
        }
        let mut committed = HashSet::new();
        for run_id in interrupted {
            let marker = run_parent
                .join(&format!("{run_prefix}{run_id}"))
                .join(COMMITTED);
            if marker_exists(stores, &marker).await? {
                committed.insert(run_id);
            }
        }
        let is_committed = |run_id: &str| committed.contains(run_id);
        for (destination, found) in destinations.iter().zip(&leftovers) {
            match destination {
                Destination::Local(local) => local.recover(&is_committed)?,
                Destination::S3(s3) => s3.recover(found, &is_committed).await?,
            }
        }
        remove_run_dirs(stores, &job.outputs, &run_prefix).await?;

        for destination in destinations {
            match destination {
                Destination::Local(local) => local.check_replaceable(&job.file, force)?,
                Destination::S3(s3) => s3.check_replaceable(&job.file, force).await?,
            }
        }
        for destination in destinations {
            match destination {
                Destination::Local(local) => local::create_empty_dir(&local.staging)?,
                Destination::S3(s3) => s3.clear_staging().await?,
            }
        }
        match self.run_dir.local_path() {
            Some(path) => local::create_empty_dir(path)?,
            None => s3::remove_prefix(stores, &self.run_dir).await?,
        }
        Ok(())
    }

    /// Returns the run's own folder, for `materialize: true` stages.
    pub fn run_dir(&self) -> &Location {
        &self.run_dir
    }

    /// Returns the staging folder or prefix of output `index`.
    pub fn staging(&self, index: usize) -> Location {
        self.destinations[index].staging()
    }

    /// Lists the Parquet files staged for output `index`, with their rows.
    pub async fn list_staged(&self, index: usize) -> Result<Vec<ManifestFile>, Error> {
        match &self.destinations[index] {
            Destination::Local(local) => {
                local::list_data_files(&local.staging).map_err(|error| {
                    Error::run(format!(
                        "output '{}': cannot list the staged files: {error}",
                        local.display
                    ))
                })
            }
            Destination::S3(s3) => s3.list_data_files().await,
        }
    }

    /// Lists the files staged for output `index` and keeps those of the one write
    /// attempt that wrote `rows` rows, deleting the others.
    ///
    /// DataFusion names each file of one write after an id drawn for that write,
    /// as `ID_N.parquet`. On a cluster, a write task that failed and ran again
    /// leaves the files of its first attempt under another id, and publishing
    /// them would repeat rows. A staging whose files match no attempt's rows is
    /// an error.
    pub async fn keep_complete_write(
        &self,
        index: usize,
        rows: u64,
    ) -> Result<Vec<ManifestFile>, Error> {
        let files = self.list_staged(index).await?;
        let (kept, abandoned) = complete_write(files, rows).ok_or_else(|| {
            Error::run(format!(
                "output '{}': the staged files do not hold the {rows} rows the write                  reported, so nothing was published",
                self.destinations[index].display()
            ))
        })?;
        if abandoned.is_empty() {
            return Ok(kept);
        }
        tracing::warn!(
            output = %self.destinations[index].display(),
            files = abandoned.len(),
            "removing files of an abandoned write attempt from staging"
        );
        match &self.destinations[index] {
            Destination::Local(local) => {
                for name in &abandoned {
                    let path = local.staging.join(name);
                    std::fs::remove_file(&path).map_err(|error| {
                        Error::run(format!(
                            "output '{}': cannot remove '{}' from staging: {error}",
                            local.display,
                            path.display()
                        ))
                    })?;
                }
            }
            Destination::S3(s3) => s3.delete_staged(&abandoned).await?,
        }
        Ok(kept)
    }

    /// Publishes every output. On failure before the commit point every
    /// destination is as it was before the run.
    pub async fn commit(&mut self, manifests: &[Manifest]) -> Result<(), Error> {
        for (destination, manifest) in self.destinations.iter().zip(manifests) {
            let mut json = crate::redact::to_json_pretty(manifest).map_err(|error| {
                Error::run(format!("internal error: cannot write a manifest: {error}"))
            })?;
            json.push(b'\n');
            match destination {
                Destination::Local(local) => {
                    local.write_markers(&json).map_err(|error| {
                        Error::run(format!(
                            "output '{}': cannot write the manifest in staging: {error}",
                            local.display
                        ))
                    })?
                }
                Destination::S3(s3) => s3.write_manifest(&json).await?,
            }
        }

        for lock in &self.s3_locks {
            lock.check_held().await?;
        }
        let mut guard = CommitGuard::start();
        for index in 0..self.destinations.len() {
            let result = match &mut self.destinations[index] {
                Destination::Local(local) => local.swap_in().map_err(|error| {
                    Error::run(format!(
                        "output '{}': cannot move the new output into place: {error}",
                        local.display
                    ))
                }),
                Destination::S3(s3) => s3.begin().await,
            };
            if let Err(error) = result {
                return Err(self.roll_back(index + 1, error).await);
            }
        }

        // The commit point: from here on the next run finishes the cleanup instead
        // of rolling back.
        let marker = self.run_dir.join(COMMITTED);
        let recorded = match marker.local_path() {
            Some(path) => local::write_synced(path, b"").map_err(|error| {
                Error::run(format!(
                    "cannot record the commit of run '{}': {error}",
                    self.run_id
                ))
            }),
            None => s3::put_empty(&self.stores, &marker).await,
        };
        if let Err(error) = recorded {
            return Err(self.roll_back(self.destinations.len(), error).await);
        }
        self.committed = true;
        guard.committed = true;

        let mut unfinished = Vec::new();
        for destination in &self.destinations {
            match destination {
                Destination::Local(local) => local.finish(),
                Destination::S3(s3) => {
                    if let Err(error) = s3.finish().await {
                        unfinished.push(error);
                    }
                }
            }
        }
        if !unfinished.is_empty() {
            let hint = format!(
                "the run is committed; the next run of job '{}' finishes it before it \
                 starts, and until then the output has no _SUCCESS",
                self.job_name
            );
            let last = unfinished.pop().map(|error| error.with_hint(hint));
            unfinished.extend(last);
            self.release_locks().await;
            return Err(Error::many(unfinished));
        }
        self.remove_run_dir().await;
        self.release_locks().await;
        self.cleaned = true;
        tracing::debug!(job = %self.job_name, run_id = %self.run_id, "outputs committed");
        Ok(())
    }

    /// Rolls back the first `count` destinations after `error` and returns the
    /// error, with a hint when a roll back failed too.
    async fn roll_back(&mut self, count: usize, error: Error) -> Error {
        let mut failed = Vec::new();
        for destination in self.destinations[..count].iter().rev() {
            if let Err(rollback) = destination.roll_back().await {
                tracing::error!(
                    output = %destination.display(),
                    error = %rollback,
                    "cannot restore the previous output"
                );
                failed.push(destination.display().to_string());
            }
        }
        if failed.is_empty() {
            tracing::warn!("every destination was restored as it was before the run");
            let restored = "nothing was published: every destination was restored as it \
                            was before the run";
            let hint = match error.hint() {
                Some(hint) => format!("{hint}; {restored}"),
                None => restored.to_string(),
            };
            return error.with_hint(hint);
        }
        error.with_hint(format!(
            "cannot restore {} yet; the next run of job '{}' rolls it back before it \
             starts",
            failed.join(", "),
            self.job_name
        ))
    }

    /// Removes the staging of a run that failed before its commit point. A
    /// local staging folder goes also when the publisher is dropped; prefixes in
    /// a bucket that this cannot remove go at the job's next run.
    pub async fn abort(&mut self) {
        if self.committed || self.cleaned {
            return;
        }
        self.discard().await;
        if crate::cluster::stopping() {
            // A cancelled cluster task may finish a file it was writing after
            // its job has ended, so the staging is removed once more after a
            // pause, while the locks still keep other runs out.
            tokio::time::sleep(CANCELLED_TASK_SETTLE).await;
            self.discard().await;
        }
        self.release_locks().await;
        self.cleaned = true;
    }

    /// Removes the staging of every output and the run's folder.
    async fn discard(&self) {
        for destination in &self.destinations {
            match destination {
                Destination::Local(local) => local.discard(),
                Destination::S3(s3) => {
                    if let Err(error) = s3.discard().await {
                        tracing::warn!(output = %s3.display, %error, "cannot remove staging; the next run removes it");
                    }
                }
            }
        }
        self.remove_run_dir().await;
    }

    async fn release_locks(&mut self) {
        for lock in &mut self.s3_locks {
            lock.release().await;
        }
        self.s3_locks.clear();
    }

    async fn remove_run_dir(&self) {
        match self.run_dir.local_path() {
            Some(path) => local::remove_quietly(path),
            None => {
                if let Err(error) = s3::remove_prefix(&self.stores, &self.run_dir).await {
                    tracing::warn!(%error, "cannot remove the run prefix; the next run removes it");
                }
            }
        }
    }
}

impl Drop for Publisher {
    /// Removes local staging after a failed run that was not aborted.
    fn drop(&mut self) {
        if !self.committed && !self.cleaned {
            for destination in &self.destinations {
                if let Destination::Local(local) = destination {
                    local.discard();
                }
            }
            if let Some(path) = self.run_dir.local_path() {
                local::remove_quietly(path);
            }
        }
        // Dropping the files releases the locks.
        self.locks.clear();
    }
}

async fn marker_exists(stores: &Stores, marker: &Location) -> Result<bool, Error> {
    match marker.local_path() {
        Some(path) => Ok(path.exists()),
        None => s3::exists(stores, marker).await,
    }
}

/// Removes the run folders of earlier runs beside every output.
///
/// Called only after every destination recovered, because a run folder's
/// `_COMMITTED` marker decides between rolling back and finishing.
async fn remove_run_dirs(
    stores: &Stores,
    outputs: &[crate::job::OutputPlan],
    run_prefix: &str,
) -> Result<(), Error> {
    for output in outputs {
        let Some((parent, _)) = output.location.parent() else {
            continue;
        };
        match parent.local_path() {
            Some(path) => {
                if let Ok(entries) = std::fs::read_dir(path) {
                    for entry in entries.flatten() {
                        if entry.file_name().to_string_lossy().starts_with(run_prefix) {
                            tracing::info!(path = %entry.path().display(), "removing the run folder of an interrupted run");
                            local::remove_quietly(&entry.path());
                        }
                    }
                }
            }
            None => {
                for name in s3::prefixes_named(stores, &parent, run_prefix).await? {
                    let dir = parent.join(&name);
                    tracing::info!(path = %dir.display(), "removing the run folder of an interrupted run");
                    s3::remove_prefix(stores, &dir).await?;
                }
            }
        }
    }
    Ok(())
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

/// Splits staged files by write id, the part of the file name before its first
/// `_` or `.`, and returns the files of the write whose rows add up to `rows`, and the
/// paths of all other files. Returns `None` when no write matches.
fn complete_write(
    files: Vec<ManifestFile>,
    rows: u64,
) -> Option<(Vec<ManifestFile>, Vec<String>)> {
    let write_id = |file: &ManifestFile| -> String {
        let name = file.path.rsplit('/').next().unwrap_or(&file.path);
        name.split(['_', '.']).next().unwrap_or(name).to_string()
    };
    let mut by_write: BTreeMap<String, (u64, usize)> = BTreeMap::new();
    for file in &files {
        let entry = by_write.entry(write_id(file)).or_default();
        entry.0 += file.rows;
        entry.1 += 1;
    }
    let total: u64 = files.iter().map(|file| file.rows).sum();
    if total == rows {
        return Some((files, Vec::new()));
    }
    // A write that finished is complete: prefer the attempt with the most files
    // among those whose rows match, since a zero-row file may be an attempt's
    // only file.
    let chosen = by_write
        .iter()
        .filter(|(_, (sum, _))| *sum == rows)
        .max_by_key(|(_, (_, count))| *count)
        .map(|(id, _)| id.clone())?;
    let (kept, abandoned): (Vec<ManifestFile>, Vec<ManifestFile>) =
        files.into_iter().partition(|file| write_id(file) == chosen);
    Some((kept, abandoned.into_iter().map(|file| file.path).collect()))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, rows: u64) -> ManifestFile {
        ManifestFile {
            path: path.to_string(),
            rows,
            bytes: 100,
        }
    }

    fn paths(files: &[ManifestFile]) -> Vec<&str> {
        files.iter().map(|file| file.path.as_str()).collect()
    }

    #[test]
    fn complete_write_keeps_one_attempt() {
        let single = vec![file("a=1/AAAA.parquet", 60), file("a=2/AAAA.parquet", 40)];
        let (kept, abandoned) = complete_write(single, 100).unwrap();
        assert_eq!(paths(&kept), ["a=1/AAAA.parquet", "a=2/AAAA.parquet"]);
        assert!(abandoned.is_empty());

        // A first attempt wrote one file of two before its task failed.
        let retried = vec![
            file("BBBB_0.parquet", 50),
            file("CCCC_0.parquet", 50),
            file("CCCC_1.parquet", 50),
        ];
        let (kept, abandoned) = complete_write(retried, 100).unwrap();
        assert_eq!(paths(&kept), ["CCCC_0.parquet", "CCCC_1.parquet"]);
        assert_eq!(abandoned, ["BBBB_0.parquet"]);

        // Two attempts that both finished: either is whole, one is kept.
        let twice = vec![file("DDDD_0.parquet", 100), file("EEEE_0.parquet", 100)];
        let (kept, abandoned) = complete_write(twice, 100).unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(abandoned.len(), 1);
    }

    #[test]
    fn complete_write_rejects_mismatch() {
        let short = vec![file("FFFF_0.parquet", 30), file("GGGG_0.parquet", 30)];
        assert!(complete_write(short, 100).is_none());
    }
}
