//! Publishing to the local file system by rename.
//!
//! For each output, the destination (if any) is renamed to
//! `.cra-previous.<name>.<run>` and the staging folder to the destination. A
//! destination that did not exist gets a previous folder holding `_CRA_ABSENT`,
//! so a roll back removes the new output instead of restoring one.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{MANIFEST, SUCCESS};
use crate::error::Error;

const ABSENT: &str = "_CRA_ABSENT";

/// The folders of one output on the local file system.
#[derive(Debug, Clone)]
pub(super) struct LocalDestination {
    pub(super) display: String,
    pub(super) target: PathBuf,
    pub(super) staging: PathBuf,
    previous: PathBuf,
}

impl LocalDestination {
    pub(super) fn new(target: &Path, display: &str, run_id: &str) -> Self {
        let parent = parent_of(target);
        let name = file_name(target);
        Self {
            display: display.to_string(),
            target: target.to_path_buf(),
            staging: parent.join(format!(".cra-staging.{name}.{run_id}")),
            previous: parent.join(format!(".cra-previous.{name}.{run_id}")),
        }
    }

    /// Creates the parent folder and takes the lock beside the destination.
    pub(super) fn lock(&self, job_file: &str, table: &str) -> Result<File, Error> {
        let parent = parent_of(&self.target);
        fs::create_dir_all(parent).map_err(|error| {
            Error::run(format!(
                "{job_file}: output '{table}': cannot create folder '{}': {error}",
                parent.display()
            ))
        })?;
        let path = parent.join(format!(".cra-lock.{}", file_name(&self.target)));
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
                "{job_file}: output '{}' is being written by another cra run",
                self.display
            ))
            .with_hint(
                "wait for that run to end; runs that share an output cannot overlap",
            )),
            Err(fs::TryLockError::Error(error)) => Err(Error::run(format!(
                "{job_file}: cannot lock '{}': {error}",
                path.display()
            ))),
        }
    }

    /// Returns the run ids of earlier runs that left a previous folder here.
    pub(super) fn interrupted_runs(&self) -> Vec<String> {
        leftovers(&self.target, ".cra-previous.")
            .into_iter()
            .map(|(run_id, _)| run_id)
            .collect()
    }

    /// Rolls back or finishes what interrupted runs left beside the destination;
    /// `committed` returns whether a run reached its commit point.
    pub(super) fn recover(&self, committed: &dyn Fn(&str) -> bool) -> Result<(), Error> {
        for (_, path) in leftovers(&self.target, ".cra-staging.") {
            tracing::info!(path = %path.display(), "removing staging of an interrupted run");
            remove_quietly(&path);
        }
        for (run_id, path) in leftovers(&self.target, ".cra-previous.") {
            if committed(&run_id) {
                remove_quietly(&path);
                continue;
            }
            tracing::warn!(
                output = %self.display,
                run_id,
                "rolling back the unfinished commit of an interrupted run"
            );
            let parent = parent_of(&self.target);
            let interrupted = LocalDestination {
                display: self.display.clone(),
                target: self.target.clone(),
                staging: parent
                    .join(format!(".cra-staging.{}.{run_id}", file_name(&self.target))),
                previous: path.clone(),
            };
            interrupted.roll_back().map_err(|error| {
                Error::run(format!(
                    "output '{}': cannot roll back interrupted run '{run_id}': {error}",
                    self.display
                ))
                .with_hint(format!(
                    "the previous output is kept in '{}'; move it back by hand",
                    path.display()
                ))
            })?;
            remove_quietly(&interrupted.staging);
        }
        Ok(())
    }

    /// Refuses a destination that is a file, or a folder with other contents
    /// than a cra output, unless `force` is set.
    pub(super) fn check_replaceable(
        &self,
        job_file: &str,
        force: bool,
    ) -> Result<(), Error> {
        let target = &self.target;
        let Ok(metadata) = fs::symlink_metadata(target) else {
            return Ok(());
        };
        if !metadata.is_dir() {
            return Err(Error::invalid(format!(
                "{job_file}: output path '{}' exists and is not a folder",
                self.display
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
        Err(super::not_cra_output(job_file, &self.display))
    }

    /// Writes the manifest, then `_SUCCESS`, into staging.
    pub(super) fn write_markers(&self, manifest_json: &[u8]) -> std::io::Result<()> {
        write_synced(&self.staging.join(MANIFEST), manifest_json)?;
        write_synced(&self.staging.join(SUCCESS), b"")?;
        sync_dir(&self.staging);
        Ok(())
    }

    /// Moves the destination aside and the staging folder into its place.
    pub(super) fn swap_in(&self) -> std::io::Result<()> {
        if fs::symlink_metadata(&self.target).is_ok() {
            fs::rename(&self.target, &self.previous)?;
        } else {
            fs::create_dir(&self.previous)?;
            write_synced(&self.previous.join(ABSENT), b"")?;
        }
        if let Err(error) = fs::rename(&self.staging, &self.target) {
            self.roll_back()?;
            return Err(error);
        }
        sync_dir(parent_of(&self.target));
        Ok(())
    }

    /// Puts the previous output back in place, keeping the new one as staging.
    pub(super) fn roll_back(&self) -> std::io::Result<()> {
        if !self.previous.exists() {
            return Ok(());
        }
        if fs::symlink_metadata(&self.target).is_ok() {
            if self.staging.exists() {
                fs::remove_dir_all(&self.target)?;
            } else {
                fs::rename(&self.target, &self.staging)?;
            }
        }
        if self.previous.join(ABSENT).exists() {
            fs::remove_dir_all(&self.previous)?;
        } else {
            fs::rename(&self.previous, &self.target)?;
        }
        sync_dir(parent_of(&self.target));
        Ok(())
    }

    /// Removes the previous output once the run is committed.
    pub(super) fn finish(&self) {
        remove_quietly(&self.previous);
    }

    /// Removes the staging folder of a run that did not commit.
    pub(super) fn discard(&self) {
        remove_quietly(&self.staging);
    }
}

/// Returns `(run id, path)` of the entries beside `target` named
/// `<prefix><name>.<run id>`, where `<name>` is the target's name exactly.
fn leftovers(target: &Path, prefix: &str) -> Vec<(String, PathBuf)> {
    let name = file_name(target);
    let Ok(entries) = fs::read_dir(parent_of(target)) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let entry_name = entry.file_name().to_string_lossy().into_owned();
        if let Some(run_id) = super::leftover_run_id(&entry_name, prefix, &name) {
            found.push((run_id, entry.path()));
        }
    }
    found.sort();
    found
}

/// Returns true when `dir` contains a manifest written by cra.
pub fn is_cra_output(dir: &Path) -> bool {
    fs::read(dir.join(MANIFEST)).is_ok_and(|bytes| super::is_cra_manifest(&bytes))
}

pub(super) fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn sync_dir(dir: &Path) {
    if let Ok(file) = File::open(dir) {
        let _ = file.sync_all();
    }
}

/// Creates `dir` empty, removing what an earlier run with the same id left.
pub(super) fn create_empty_dir(dir: &Path) -> Result<(), Error> {
    remove_quietly(dir);
    fs::create_dir_all(dir).map_err(|error| {
        Error::run(format!(
            "cannot create staging folder '{}': {error}",
            dir.display()
        ))
    })
}

pub(super) fn remove_quietly(path: &Path) {
    let result = match fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(_) => return,
    };
    if let Err(error) = result {
        tracing::warn!(path = %path.display(), %error, "cannot remove leftover folder");
    }
}

pub(super) fn parent_of(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("/"))
}

pub(super) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".to_string())
}

/// Lists the Parquet files written under `dir`, with rows from each footer.
pub(super) fn list_data_files(dir: &Path) -> std::io::Result<Vec<super::ManifestFile>> {
    let mut files = Vec::new();
    collect_files(dir, dir, &mut files)?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn collect_files(
    root: &Path,
    dir: &Path,
    files: &mut Vec<super::ManifestFile>,
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
        files.push(super::ManifestFile {
            path: relative,
            rows,
            bytes,
        });
    }
    Ok(())
}
