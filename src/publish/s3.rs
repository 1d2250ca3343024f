//! Publishing to an S3-compatible bucket, which has no rename.
//!
//! Each object is written whole or not at all, so the protocol works with
//! single-object writes, copies and deletes, and a journal that lets the next run
//! roll back or finish what an interrupted one left. For an output at `p/name`:
//!
//! - staging is `p/.cra-staging.name.<run>/`, written by the engine, with the new
//!   `_manifest.json` added once the checks passed;
//! - `p/.cra-previous.name.<run>/` contains the journal (`_journal.json`: the
//!   objects the destination held, the new data files, which markers existed)
//!   and copies of the old `_manifest.json` and `_SUCCESS`.
//!
//! [`S3Destination::begin`] writes the journal, copies the old markers aside,
//! deletes `_SUCCESS` and then `_manifest.json` from the destination, and copies
//! the new data files in beside the old ones. After the run's commit point,
//! [`S3Destination::finish`] deletes the old data files and writes
//! `_manifest.json`, then `_SUCCESS`. [`S3Destination::roll_back`] deletes the new
//! data files and copies the old markers back. docs/publishing.md describes what
//! a reader sees at each step.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use super::{MANIFEST, SUCCESS};
use crate::error::Error;
use crate::storage::{Location, Stores};

const JOURNAL: &str = "_journal.json";
/// Times a prefix is listed and emptied before its removal counts as done.
const REMOVE_PASSES: usize = 3;
/// Copies and deletes in flight at once.
const CONCURRENCY: usize = 16;

/// The record of a commit's changes to one destination, written before any change.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Journal {
    /// Objects the destination held, relative to it, markers excluded.
    old: Vec<String>,
    /// Data files of the new output, relative to staging and destination.
    new: Vec<String>,
    /// Whether the destination held `_manifest.json`.
    had_manifest: bool,
    /// Whether the destination held `_SUCCESS`.
    had_success: bool,
}

/// The prefixes of one output in a bucket.
#[derive(Debug, Clone)]
pub(super) struct S3Destination {
    pub(super) display: String,
    store: Arc<dyn ObjectStore>,
    stores: Stores,
    pub(super) target: Location,
    pub(super) staging: Location,
    previous: Location,
    journal: Option<Journal>,
}

impl S3Destination {
    pub(super) fn new(
        stores: &Stores,
        target: &Location,
        run_id: &str,
    ) -> Result<Self, Error> {
        let (parent, name) = target.parent().ok_or_else(|| {
            Error::invalid(format!("output '{}' has no parent", target.display()))
        })?;
        let (store, _) = stores.resolve(target)?;
        Ok(Self {
            display: target.display(),
            store,
            stores: stores.clone(),
            target: target.clone(),
            staging: parent.join(&format!(".cra-staging.{name}.{run_id}")),
            previous: parent.join(&format!(".cra-previous.{name}.{run_id}")),
            journal: None,
        })
    }

    fn error(
        &self,
        location: &Location,
        doing: &str,
        error: &object_store::Error,
    ) -> Error {
        self.stores.error(location, doing, error)
    }

    /// Returns the run ids of earlier runs that left a staging or previous
    /// prefix beside the destination, each with whether it is a previous one.
    pub(super) async fn leftovers(&self) -> Result<Vec<(String, bool)>, Error> {
        let Some((parent, name)) = self.target.parent() else {
            return Ok(Vec::new());
        };
        let (_, parent_path) = self.stores.resolve(&parent)?;
        let root = (parent_path.as_ref() != "").then_some(&parent_path);
        let listing = self
            .store
            .list_with_delimiter(root)
            .await
            .map_err(|error| self.error(&parent, "cannot list", &error))?;
        let mut found = Vec::new();
        for prefix in listing.common_prefixes {
            let Some(entry) = prefix.filename() else {
                continue;
            };
            if let Some(run_id) = super::leftover_run_id(entry, ".cra-staging.", &name) {
                found.push((run_id, false));
            } else if let Some(run_id) =
                super::leftover_run_id(entry, ".cra-previous.", &name)
            {
                found.push((run_id, true));
            }
        }
        found.sort();
        Ok(found)
    }

    /// Rolls back or finishes what interrupted runs left beside the destination;
    /// `committed` returns whether a run reached its commit point.
    pub(super) async fn recover(
        &self,
        leftovers: &[(String, bool)],
        committed: &dyn Fn(&str) -> bool,
    ) -> Result<(), Error> {
        for (run_id, _) in leftovers.iter().filter(|(_, previous)| *previous) {
            let mut interrupted = S3Destination::new(&self.stores, &self.target, run_id)?;
            let journal = interrupted.read_journal().await?;
            interrupted.journal = journal;
            if interrupted.journal.is_none() {
                // The journal is written first and removed last, so without it
                // the prefix contains nothing the destination needs.
                interrupted.remove_prefix(&interrupted.previous).await?;
            } else if committed(run_id) {
                tracing::info!(output = %self.display, run_id, "finishing the commit of an interrupted run");
                interrupted.finish().await?;
            } else {
                tracing::warn!(
                    output = %self.display,
                    run_id,
                    "rolling back the unfinished commit of an interrupted run"
                );
                interrupted.roll_back().await?;
            }
        }
        for (run_id, _) in leftovers.iter().filter(|(_, previous)| !*previous) {
            let interrupted = S3Destination::new(&self.stores, &self.target, run_id)?;
            tracing::info!(
                path = %interrupted.staging.display(),
                "removing staging of an interrupted run"
            );
            interrupted.remove_prefix(&interrupted.staging).await?;
        }
        Ok(())
    }

    async fn read_journal(&self) -> Result<Option<Journal>, Error> {
        let location = self.previous.join(JOURNAL);
        let (_, path) = self.stores.resolve(&location)?;
        let bytes = match self.store.get(&path).await {
            Ok(result) => result
                .bytes()
                .await
                .map_err(|error| self.error(&location, "cannot read", &error))?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(self.error(&location, "cannot read", &error)),
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|error| {
            Error::run(format!(
                "'{}' is not a cra journal: {error}",
                location.display()
            ))
            .with_hint("remove the prefix by hand once the destination is checked")
        })
    }

    /// Rejects a destination whose objects are not a cra output, unless `force`.
    pub(super) async fn check_replaceable(
        &self,
        job_file: &str,
        force: bool,
    ) -> Result<(), Error> {
        let objects = self.list(&self.target).await?;
        if objects.is_empty() || force {
            return Ok(());
        }
        let manifest = self.target.join(MANIFEST);
        let (_, path) = self.stores.resolve(&manifest)?;
        let is_cra = match self.store.get(&path).await {
            Ok(result) => result
                .bytes()
                .await
                .is_ok_and(|bytes| super::is_cra_manifest(&bytes)),
            Err(object_store::Error::NotFound { .. }) => false,
            Err(error) => return Err(self.error(&manifest, "cannot read", &error)),
        };
        if is_cra {
            Ok(())
        } else {
            Err(super::not_cra_output(job_file, &self.display))
        }
    }

    /// Removes what an earlier attempt with the same run id left in staging,
    /// then writes and deletes one object there, so a key that may not write
    /// fails the run before its stages are computed.
    pub(super) async fn clear_staging(&self) -> Result<(), Error> {
        self.remove_prefix(&self.staging).await?;
        let probe = self.staging.join(".cra-probe");
        self.put(&probe, b"cra write check\n".to_vec()).await?;
        self.delete_all(&self.staging, &[".cra-probe".to_string()])
            .await
    }

    /// Writes the new manifest into staging, for [`Self::finish`] to copy.
    pub(super) async fn write_manifest(&self, manifest_json: &[u8]) -> Result<(), Error> {
        self.put(&self.staging.join(MANIFEST), manifest_json.to_vec())
            .await
    }

    /// Lists the objects below `prefix`, relative to it.
    async fn list(&self, prefix: &Location) -> Result<Vec<String>, Error> {
        let (_, path) = self.stores.resolve(prefix)?;
        let objects: Vec<_> = self
            .store
            .list(Some(&path))
            .try_collect()
            .await
            .map_err(|error| self.error(prefix, "cannot list", &error))?;
        let root = format!("{path}/");
        let mut relative: Vec<String> = objects
            .into_iter()
            .filter_map(|meta| {
                meta.location
                    .as_ref()
                    .strip_prefix(&root)
                    .map(str::to_string)
            })
            .collect();
        relative.sort();
        Ok(relative)
    }

    async fn put(&self, location: &Location, bytes: Vec<u8>) -> Result<(), Error> {
        let (_, path) = self.stores.resolve(location)?;
        self.store
            .put(&path, PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|error| self.error(location, "cannot write", &error))
    }

    async fn copy(&self, from: &Location, to: &Location) -> Result<(), Error> {
        let (_, from_path) = self.stores.resolve(from)?;
        let (_, to_path) = self.stores.resolve(to)?;
        self.store
            .copy(&from_path, &to_path)
            .await
            .map_err(|error| self.error(to, "cannot copy to", &error))
    }

    /// Copies `names` from below `from` to below `to`, several at a time.
    async fn copy_all(
        &self,
        from: &Location,
        to: &Location,
        names: &[String],
    ) -> Result<(), Error> {
        futures::stream::iter(names.iter().map(|name| (from.join(name), to.join(name))))
            .map(|(from, to)| async move { self.copy(&from, &to).await })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await
            .map(|_| ())
    }

    /// Deletes `names` below `prefix`; objects already gone count as deleted.
    async fn delete_all(&self, prefix: &Location, names: &[String]) -> Result<(), Error> {
        let paths = names
            .iter()
            .map(|name| {
                self.stores
                    .resolve(&prefix.join(name))
                    .map(|(_, path)| path)
            })
            .collect::<Result<Vec<ObjectPath>, Error>>()?;
        let results: Vec<_> = self
            .store
            .delete_stream(futures::stream::iter(paths.into_iter().map(Ok)).boxed())
            .collect()
            .await;
        for result in results {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(self.error(prefix, "cannot delete in", &error)),
            }
        }
        Ok(())
    }

    /// Deletes every object below `prefix`, the journal last.
    async fn remove_prefix(&self, prefix: &Location) -> Result<(), Error> {
        // A listing right after many writes may miss some of them (seen with
        // Garage), so the prefix is listed again until it is empty.
        for _ in 0..REMOVE_PASSES {
            let mut names = self.list(prefix).await?;
            if names.is_empty() {
                return Ok(());
            }
            let journal = names
                .iter()
                .position(|name| name == JOURNAL)
                .map(|at| names.remove(at));
            self.delete_all(prefix, &names).await?;
            if let Some(journal) = journal {
                self.delete_all(prefix, &[journal]).await?;
            }
        }
        Ok(())
    }

    /// Returns the data files in staging, relative to it, markers excluded.
    async fn staged_files(&self) -> Result<Vec<String>, Error> {
        let mut names = self.list(&self.staging).await?;
        names.retain(|name| name != MANIFEST && name != SUCCESS);
        Ok(names)
    }

    /// Journals the commit, takes the old markers out of the destination and
    /// copies the new data files in beside the old ones.
    pub(super) async fn begin(&mut self) -> Result<(), Error> {
        let existing = self.list(&self.target).await?;
        let new = self.staged_files().await?;
        let had_manifest = existing.iter().any(|name| name == MANIFEST);
        let had_success = existing.iter().any(|name| name == SUCCESS);
        let old: Vec<String> = existing
            .into_iter()
            .filter(|name| name != MANIFEST && name != SUCCESS)
            .collect();
        let old_names: BTreeSet<&String> = old.iter().collect();
        if let Some(clash) = new.iter().find(|name| old_names.contains(name)) {
            return Err(Error::run(format!(
                "output '{}': the new file '{clash}' has the name of a file the \
                 destination holds",
                self.display
            ))
            .with_hint("run the job again: new file names are random"));
        }
        let journal = Journal {
            old,
            new,
            had_manifest,
            had_success,
        };
        let json = serde_json::to_vec_pretty(&journal)
            .map_err(|error| Error::run(format!("internal error: {error}")))?;
        self.put(&self.previous.join(JOURNAL), json).await?;
        self.journal = Some(journal.clone());

        let markers: Vec<String> = [(had_manifest, MANIFEST), (had_success, SUCCESS)]
            .into_iter()
            .filter(|(had, _)| *had)
            .map(|(_, name)| name.to_string())
            .collect();
        self.copy_all(&self.target, &self.previous, &markers)
            .await?;
        // `_SUCCESS` goes first: a reader that waits for it stops trusting the
        // destination before anything else changes.
        if had_success {
            self.delete_all(&self.target, &[SUCCESS.to_string()])
                .await?;
        }
        if had_manifest {
            self.delete_all(&self.target, &[MANIFEST.to_string()])
                .await?;
        }
        self.copy_all(&self.staging, &self.target, &journal.new)
            .await
    }

    /// Completes the commit after the run's commit point: the old data files
    /// go, then the manifest and `_SUCCESS` arrive, then the run's prefixes go.
    pub(super) async fn finish(&self) -> Result<(), Error> {
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        let new: BTreeSet<&String> = journal.new.iter().collect();
        let stale: Vec<String> = journal
            .old
            .iter()
            .filter(|name| !new.contains(name))
            .cloned()
            .collect();
        self.delete_all(&self.target, &stale).await?;
        let staged_manifest = self.staging.join(MANIFEST);
        let (_, staged_path) = self.stores.resolve(&staged_manifest)?;
        match self.store.head(&staged_path).await {
            Ok(_) => {
                self.copy(&staged_manifest, &self.target.join(MANIFEST))
                    .await?;
                self.put(&self.target.join(SUCCESS), Vec::new()).await?;
            }
            // An earlier finish got as far as removing staging, which happens
            // only after both markers were written.
            Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => {
                return Err(self.error(&staged_manifest, "cannot read", &error));
            }
        }
        self.remove_prefix(&self.previous).await?;
        self.remove_prefix(&self.staging).await
    }

    /// Undoes [`Self::begin`]: deletes the new data files, copies the old
    /// manifest and then `_SUCCESS` back, and removes the run's prefixes.
    pub(super) async fn roll_back(&self) -> Result<(), Error> {
        if let Some(journal) = &self.journal {
            let old: BTreeSet<&String> = journal.old.iter().collect();
            let added: Vec<String> = journal
                .new
                .iter()
                .filter(|name| !old.contains(name))
                .cloned()
                .collect();
            self.delete_all(&self.target, &added).await?;
            for (had, name) in [
                (journal.had_manifest, MANIFEST),
                (journal.had_success, SUCCESS),
            ] {
                if had {
                    self.copy(&self.previous.join(name), &self.target.join(name))
                        .await?;
                }
            }
            self.remove_prefix(&self.previous).await?;
        }
        self.remove_prefix(&self.staging).await
    }

    /// Removes staging after a run that never began its commit here.
    pub(super) async fn discard(&self) -> Result<(), Error> {
        self.remove_prefix(&self.staging).await
    }

    /// Deletes the staged data files `names`, relative to staging.
    pub(super) async fn delete_staged(&self, names: &[String]) -> Result<(), Error> {
        self.delete_all(&self.staging, names).await
    }

    /// Lists the Parquet files in staging with rows from each footer.
    pub(super) async fn list_data_files(
        &self,
    ) -> Result<Vec<super::ManifestFile>, Error> {
        let (_, root) = self.stores.resolve(&self.staging)?;
        let objects: Vec<_> = self
            .store
            .list(Some(&root))
            .try_collect()
            .await
            .map_err(|error| self.error(&self.staging, "cannot list", &error))?;
        let prefix = format!("{root}/");
        let mut files = Vec::new();
        for meta in objects {
            let Some(relative) = meta.location.as_ref().strip_prefix(&prefix) else {
                continue;
            };
            if relative == MANIFEST || relative == SUCCESS {
                continue;
            }
            let relative = relative.to_string();
            let metadata = crate::engine::inputs::read_footer(
                self.store.as_ref(),
                &meta.location,
                meta.size,
            )
            .await
            .map_err(|problem| match problem {
                crate::engine::inputs::FooterError::Store(error) => {
                    self.error(&self.staging, "cannot read the staged files", &error)
                }
                invalid => Error::run(format!(
                    "'{}/{relative}' {invalid}",
                    self.staging.display()
                )),
            })?;
            files.push(super::ManifestFile {
                path: relative,
                rows: metadata.file_metadata().num_rows().max(0) as u64,
                bytes: meta.size,
            });
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }
}

/// Returns true when the object at `location` exists.
pub(super) async fn exists(stores: &Stores, location: &Location) -> Result<bool, Error> {
    let (store, path) = stores.resolve(location)?;
    match store.head(&path).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(error) => Err(stores.error(location, "cannot read", &error)),
    }
}

/// Writes an empty object at `location`.
pub(super) async fn put_empty(stores: &Stores, location: &Location) -> Result<(), Error> {
    let (store, path) = stores.resolve(location)?;
    store
        .put(&path, PutPayload::default())
        .await
        .map(|_| ())
        .map_err(|error| stores.error(location, "cannot write", &error))
}

/// Deletes every object below `prefix`.
pub(super) async fn remove_prefix(
    stores: &Stores,
    prefix: &Location,
) -> Result<(), Error> {
    let (store, path) = stores.resolve(prefix)?;
    for _ in 0..REMOVE_PASSES {
        let listed: Vec<_> = store
            .list(Some(&path))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(|error| stores.error(prefix, "cannot list", &error))?;
        if listed.is_empty() {
            return Ok(());
        }
        let paths = futures::stream::iter(listed.into_iter().map(Ok)).boxed();
        let results: Vec<_> = store.delete_stream(paths).collect().await;
        for result in results {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => {
                    return Err(stores.error(prefix, "cannot delete in", &error));
                }
            }
        }
    }
    Ok(())
}

/// Returns the names of the prefixes directly below `parent` that start with
/// `start`.
pub(super) async fn prefixes_named(
    stores: &Stores,
    parent: &Location,
    start: &str,
) -> Result<Vec<String>, Error> {
    let (store, path) = stores.resolve(parent)?;
    let root = (path.as_ref() != "").then_some(&path);
    let listing = store
        .list_with_delimiter(root)
        .await
        .map_err(|error| stores.error(parent, "cannot list", &error))?;
    Ok(listing
        .common_prefixes
        .iter()
        .filter_map(|prefix| prefix.filename())
        .filter(|name| name.starts_with(start))
        .map(str::to_string)
        .collect())
}

/// How long a lock on an S3 output counts as held without a heartbeat.
const LEASE: std::time::Duration = std::time::Duration::from_secs(60);

/// The contents of a run's lock object.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LockRecord {
    run_id: String,
    job: String,
    host: String,
    pid: u32,
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_default()
}

/// A lock on an S3 output that keeps concurrent runs apart.
///
/// Many S3-compatible stores (Garage among them) ignore conditional writes, so
/// the lock does not rely on them. Each run writes its own lock object,
/// `p/.cra-lock.<name>.<token>`, once, then lists the lock objects beside it. The
/// one the store wrote first, by its own clock and then by token, owns the
/// output, and every later run deletes its own object and stops. The owner writes
/// `p/.cra-heartbeat.<name>.<token>` every 20 seconds. A lock whose last
/// heartbeat is older than a minute, or whose process on this host is gone,
/// belongs to an ended run and is removed.
pub(super) struct S3Lock {
    stores: Stores,
    lock: Location,
    heartbeat: Location,
    renewing: Option<tokio::task::JoinHandle<()>>,
}

impl S3Lock {
    /// Takes the lock beside `target`, or fails with exit 1 naming the run that
    /// holds it.
    pub(super) async fn acquire(
        stores: &Stores,
        target: &Location,
        run_id: &str,
        job: &str,
    ) -> Result<Option<Self>, Error> {
        let Some((parent, name)) = target.parent() else {
            return Ok(None);
        };
        let lock_name = |id: &str| format!(".cra-lock.{name}.{id}");
        let beat_name = |id: &str| format!(".cra-heartbeat.{name}.{id}");
        // Locks are named by a token of this process, not by the run id, so two
        // runs started with the same `--run-id` still write two locks.
        let token = uuid::Uuid::new_v4().simple().to_string();
        let record = LockRecord {
            run_id: run_id.to_string(),
            job: job.to_string(),
            host: host_name(),
            pid: std::process::id(),
        };
        let lock = parent.join(&lock_name(&token));
        let (store, _) = stores.resolve(&lock)?;
        put_bytes(
            stores,
            &lock,
            serde_json::to_vec(&record).unwrap_or_default(),
        )
        .await?;
        let held = Self {
            stores: stores.clone(),
            lock: lock.clone(),
            heartbeat: parent.join(&beat_name(&token)),
            renewing: None,
        };

        let (_, parent_path) = stores.resolve(&parent)?;
        let root = (parent_path.as_ref() != "").then_some(&parent_path);
        let listing = store
            .list_with_delimiter(root)
            .await
            .map_err(|error| stores.error(&parent, "cannot list", &error))?;
        let written = |entry: &str| {
            listing
                .objects
                .iter()
                .find(|meta| meta.location.filename() == Some(entry))
                .map(|meta| meta.last_modified)
        };
        let Some(mine) = written(&lock_name(&token)) else {
            return Err(Error::run(format!(
                "the lock '{}' was written but is not listed; the store does not list \
                 what it has just written",
                lock.display()
            )));
        };
        for meta in &listing.objects {
            let Some(id) = meta
                .location
                .filename()
                .and_then(|entry| super::leftover_run_id(entry, ".cra-lock.", &name))
            else {
                continue;
            };
            if id == token {
                continue;
            }
            let other = parent.join(&lock_name(&id));
            let holder: Option<LockRecord> = match store.get(&meta.location).await {
                Ok(result) => result
                    .bytes()
                    .await
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok()),
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(error) => return Err(stores.error(&other, "cannot read", &error)),
            };
            let beat = written(&beat_name(&id)).unwrap_or(meta.last_modified);
            let silent = (mine - beat).to_std().unwrap_or_default() > LEASE;
            let gone = holder.as_ref().is_some_and(|holder| {
                holder.host == host_name()
                    && std::path::Path::new("/proc/self").exists()
                    && !std::path::Path::new(&format!("/proc/{}", holder.pid)).exists()
            });
            if silent || gone {
                tracing::warn!(lock = %other.display(), "removing the lock of an ended run");
                remove_objects(stores, &parent, &[lock_name(&id), beat_name(&id)])
                    .await?;
                continue;
            }
            if (meta.last_modified, id.as_str()) < (mine, token.as_str()) {
                let mut held = held;
                held.release().await;
                let holder = holder
                    .map(|h| {
                        format!(
                            "run '{}' of job '{}' on host '{}' (process {})",
                            h.run_id, h.job, h.host, h.pid
                        )
                    })
                    .unwrap_or_else(|| format!("run '{id}'"));
                return Err(Error::run(format!(
                    "output '{}' is being written by another cra run: {holder}",
                    target.display()
                ))
                .with_hint(format!(
                    "wait for that run to end; if it was stopped, its lock '{}' lapses a \
                     minute after its last heartbeat",
                    other.display()
                )));
            }
        }

        let mut held = held;
        held.renewing = Some(tokio::spawn(beat(stores.clone(), held.heartbeat.clone())));
        Ok(Some(held))
    }

    /// Fails when the lock object is gone, which happens when another run found
    /// this one's heartbeat too old.
    pub(super) async fn check_held(&self) -> Result<(), Error> {
        if exists(&self.stores, &self.lock).await? {
            return Ok(());
        }
        Err(Error::run(format!(
            "the lock '{}' was removed by another run, which may be writing the output; \
             nothing was published",
            self.lock.display()
        ))
        .with_hint(
            "check that the store accepted the heartbeats of this run, then run the job again",
        ))
    }

    /// Stops the heartbeat and deletes the lock.
    pub(super) async fn release(&mut self) {
        if let Some(task) = self.renewing.take() {
            task.abort();
            // Wait until the heartbeat has stopped, so it cannot write after the
            // deletes below.
            let _ = task.await;
        }
        for location in [&self.heartbeat, &self.lock] {
            if let Ok((store, path)) = self.stores.resolve(location)
                && let Err(error) = store.delete(&path).await
                && !matches!(error, object_store::Error::NotFound { .. })
            {
                tracing::warn!(lock = %location.display(), %error, "cannot remove the lock; it lapses by itself");
            }
        }
    }
}

impl Drop for S3Lock {
    fn drop(&mut self) {
        if let Some(task) = self.renewing.take() {
            task.abort();
        }
    }
}

/// Writes the heartbeat of a lock every third of the lease.
///
/// The lock object's own write time counts as the first beat.
async fn beat(stores: Stores, heartbeat: Location) {
    loop {
        tokio::time::sleep(LEASE / 3).await;
        if let Err(error) = put_bytes(&stores, &heartbeat, Vec::new()).await {
            // A store away for a moment: the next beat comes well before the
            // lease ends.
            tracing::warn!(%error, "cannot write the lock's heartbeat");
        }
    }
}

async fn put_bytes(
    stores: &Stores,
    location: &Location,
    bytes: Vec<u8>,
) -> Result<(), Error> {
    let (store, path) = stores.resolve(location)?;
    store
        .put(&path, PutPayload::from(bytes))
        .await
        .map(|_| ())
        .map_err(|error| stores.error(location, "cannot write", &error))
}

async fn remove_objects(
    stores: &Stores,
    parent: &Location,
    names: &[String],
) -> Result<(), Error> {
    for name in names {
        let location = parent.join(name);
        let (store, path) = stores.resolve(&location)?;
        match store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => return Err(stores.error(&location, "cannot delete", &error)),
        }
    }
    Ok(())
}
