//! Locations of inputs and outputs, and the settings of the stores they are on.
//!
//! A [`Location`] is resolved once, against the job file's folder, and every later
//! step uses it: the engine turns it into a DataFusion table URL, the publisher into
//! staging and destination folders, and manifests list the files it holds. This
//! module reads no files and contacts no store, so the job loader stays free of
//! network code.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// A resolved file, folder or glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A path on the local file system, made absolute.
    Local {
        /// The absolute, lexically normalised path; may contain glob characters.
        path: PathBuf,
        /// The path as a user reads it: relative to the working folder when possible.
        display: String,
    },
    /// An object, prefix or glob in an S3-compatible bucket.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key or prefix without a leading or trailing `/`; empty for the whole
        /// bucket. May contain glob characters.
        key: String,
    },
}

const GLOB_CHARS: [char; 3] = ['*', '?', '['];

impl Location {
    /// Resolves `text` against `base`, the job file's folder.
    ///
    /// `display_base` is the same folder as the user named it, so messages show
    /// `jobs/../data/x.parquet` as `data/x.parquet`. `s3://bucket/prefix` URLs are
    /// taken as they are.
    pub fn resolve(base: &Path, display_base: &Path, text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("path is empty".to_string());
        }
        if let Some(rest) = text.strip_prefix("s3://") {
            return parse_s3(text, rest);
        }
        if let Some((scheme, _)) = text.split_once("://") {
            return Err(format!(
                "'{text}' uses the '{scheme}://' scheme; cra reads local paths and \
                 s3://bucket/prefix URLs"
            ));
        }
        let path = normalize(&base.join(text));
        let display = display_path(&normalize(&display_base.join(text)));
        Ok(Location::Local { path, display })
    }

    /// Returns the location as a user reads it in messages.
    pub fn display(&self) -> String {
        match self {
            Location::Local { display, .. } => display.clone(),
            Location::S3 { bucket, key } if key.is_empty() => format!("s3://{bucket}/"),
            Location::S3 { bucket, key } => format!("s3://{bucket}/{key}"),
        }
    }

    /// Returns the absolute local path, or `None` for a location in a bucket.
    pub fn local_path(&self) -> Option<&Path> {
        match self {
            Location::Local { path, .. } => Some(path),
            Location::S3 { .. } => None,
        }
    }

    /// Returns the bucket of an S3 location.
    pub fn bucket(&self) -> Option<&str> {
        match self {
            Location::Local { .. } => None,
            Location::S3 { bucket, .. } => Some(bucket),
        }
    }

    /// Returns the location `name` below this one, which must not be a glob.
    pub fn join(&self, name: &str) -> Location {
        match self {
            Location::Local { path, display } => Location::Local {
                path: path.join(name),
                display: format!("{}/{name}", display.trim_end_matches('/')),
            },
            Location::S3 { bucket, key } if key.is_empty() => Location::S3 {
                bucket: bucket.clone(),
                key: name.to_string(),
            },
            Location::S3 { bucket, key } => Location::S3 {
                bucket: bucket.clone(),
                key: format!("{key}/{name}"),
            },
        }
    }

    /// Returns the folder or prefix that contains this location and the last part
    /// of its name; `None` for a bucket or file system root.
    pub fn parent(&self) -> Option<(Location, String)> {
        match self {
            Location::Local { path, display } => {
                let name = path.file_name()?.to_string_lossy().into_owned();
                let parent = path.parent()?.to_path_buf();
                let display = Path::new(display)
                    .parent()
                    .map(display_path)
                    .unwrap_or_else(|| ".".to_string());
                Some((
                    Location::Local {
                        path: parent,
                        display,
                    },
                    name,
                ))
            }
            Location::S3 { bucket, key } => {
                if key.is_empty() {
                    return None;
                }
                let (parent, name) = key.rsplit_once('/').unwrap_or(("", key));
                let parent = Location::S3 {
                    bucket: bucket.clone(),
                    key: parent.to_string(),
                };
                Some((parent, name.to_string()))
            }
        }
    }

    /// Returns the URL DataFusion reads or writes this location by: a path or
    /// an `s3://` URL, ending in `/` when `folder` is set.
    pub fn url(&self, folder: bool) -> String {
        let mut text = match self {
            Location::Local { path, .. } => path.to_string_lossy().into_owned(),
            Location::S3 { bucket, key } => format!("s3://{bucket}/{key}"),
        };
        if folder && !text.ends_with('/') {
            text.push('/');
        }
        text
    }

    /// Returns true when the location is a glob pattern rather than one path.
    pub fn is_glob(&self) -> bool {
        match self {
            Location::Local { path, .. } => {
                path.to_str().is_some_and(|text| text.contains(GLOB_CHARS))
            }
            Location::S3 { key, .. } => key.contains(GLOB_CHARS),
        }
    }

    /// Returns true when `other` is this location or lies inside it.
    pub fn contains(&self, other: &Location) -> bool {
        match (self, other) {
            (
                Location::Local { path: mine, .. },
                Location::Local { path: theirs, .. },
            ) => {
                let mine = if self.is_glob() {
                    glob_root(mine)
                } else {
                    mine.to_path_buf()
                };
                theirs.starts_with(&mine)
            }
            (
                Location::S3 { bucket, key: mine },
                Location::S3 {
                    bucket: other_bucket,
                    key: theirs,
                },
            ) => {
                if bucket != other_bucket {
                    return false;
                }
                let mine = if self.is_glob() {
                    key_glob_root(mine)
                } else {
                    mine.as_str()
                };
                mine.is_empty()
                    || theirs == mine
                    || theirs
                        .strip_prefix(mine)
                        .is_some_and(|rest| rest.starts_with('/'))
            }
            _ => false,
        }
    }

    /// Lists the data files this local location names, with their sizes in bytes.
    ///
    /// A folder is walked recursively and only files ending in `extension` count,
    /// so `_SUCCESS`, `_manifest.json` and hidden files are skipped. A location in
    /// a bucket lists nothing here; the storage clients list those.
    pub fn list_files(&self, extension: &str) -> std::io::Result<Vec<(PathBuf, u64)>> {
        let Some(path) = self.local_path() else {
            return Ok(Vec::new());
        };
        let mut files = Vec::new();
        if self.is_glob() {
            let pattern = path.to_string_lossy();
            let paths = glob::glob(&pattern).map_err(|error| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, error)
            })?;
            for entry in paths.flatten() {
                let metadata = std::fs::metadata(&entry)?;
                if metadata.is_file() {
                    files.push((entry, metadata.len()));
                }
            }
        } else if path.is_dir() {
            walk(path, extension, &mut files)?;
        } else {
            let metadata = std::fs::metadata(path)?;
            files.push((path.to_path_buf(), metadata.len()));
        }
        files.sort();
        Ok(files)
    }
}

/// Returns the files below the local folder `dir` whose names end in
/// `extension` but start with `_` or `.`, in folders that are not hidden.
///
/// cra skips them, and DataFusion would read them, so a caller must not hand
/// DataFusion the folder when there are any.
pub fn skipped_data_files(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut skipped = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return skipped;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let hidden = name.starts_with('.') || name.starts_with('_');
        match entry.file_type() {
            Ok(kind) if kind.is_dir() && !hidden => {
                skipped.extend(skipped_data_files(&entry.path(), extension));
            }
            Ok(kind) if kind.is_file() && hidden && name.ends_with(extension) => {
                skipped.push(entry.path());
            }
            _ => {}
        }
    }
    skipped.sort();
    skipped
}

/// Parses `s3://bucket/key`; `rest` is the text after the scheme.
fn parse_s3(text: &str, rest: &str) -> Result<Location, String> {
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    check_bucket_name(bucket).map_err(|problem| format!("'{text}': {problem}"))?;
    let key = key.strip_suffix('/').unwrap_or(key);
    if let Some(bad) = key
        .chars()
        .find(|c| c.is_control() || ['%', '#', '\\'].contains(c))
    {
        return Err(format!(
            "'{text}' has the character {bad:?} in its key, which cra does not accept in \
             S3 keys because URLs and object stores encode it differently"
        ));
    }
    if !key.is_empty() {
        for part in key.split('/') {
            if part.is_empty() || part == "." || part == ".." {
                return Err(format!(
                    "'{text}' has an empty, '.' or '..' part in its key; S3 keys are \
                     taken as written, so write the key without them"
                ));
            }
        }
    }
    Ok(Location::S3 {
        bucket: bucket.to_string(),
        key: key.to_string(),
    })
}

/// Checks a bucket name against the S3 naming rules.
pub fn check_bucket_name(bucket: &str) -> Result<(), String> {
    if bucket.is_empty() {
        return Err("the URL names no bucket".to_string());
    }
    let valid_chars = bucket
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
    let valid_ends = bucket
        .chars()
        .next()
        .zip(bucket.chars().last())
        .is_some_and(|(first, last)| {
            first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric()
        });
    if !(3..=63).contains(&bucket.len()) || !valid_chars || !valid_ends {
        return Err(format!(
            "bucket name '{bucket}' is invalid: it needs 3 to 63 lower-case letters, \
             digits, '.' or '-', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// Returns the part of a key before its first glob character, up to the last `/`.
pub fn key_glob_root(key: &str) -> &str {
    let end = key.find(GLOB_CHARS).unwrap_or(key.len());
    match key[..end].rfind('/') {
        Some(slash) => &key[..slash],
        None => "",
    }
}

/// A text that must not be shown: its `Debug` form is a mask.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

/// How to reach one bucket of an S3-compatible store.
///
/// Each setting comes from the bucket's entry in `storage.s3.buckets`, else from
/// `storage.s3`, else from the `AWS_*` environment variables, else the default.
#[derive(Debug, Clone, PartialEq)]
pub struct S3Settings {
    /// Endpoint URL such as `http://127.0.0.1:3900`; `None` for AWS itself.
    pub endpoint: Option<String>,
    /// Region the client signs requests for.
    pub region: String,
    /// Access key id.
    pub access_key_id: Option<Secret>,
    /// Secret access key.
    pub secret_access_key: Option<Secret>,
    /// Session token of temporary credentials.
    pub session_token: Option<Secret>,
    /// Address buckets as `bucket.endpoint` instead of `endpoint/bucket`.
    pub virtual_hosted_style: bool,
    /// Allow plain HTTP endpoints.
    pub allow_http: bool,
    /// Send unsigned requests, for public buckets.
    pub skip_signature: bool,
    /// Retries of a failed request.
    pub retries: usize,
    /// Time after which a request is no longer retried.
    pub retry_timeout: Duration,
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Time allowed for one request.
    pub timeout: Duration,
    /// Source of each setting that is not a default, by key: a position in the
    /// job file or the name of an environment variable.
    pub sources: BTreeMap<&'static str, String>,
    /// The environment variable each credential came from, by key, so that the
    /// processes of a cluster can read their own copy of it.
    pub credential_variables: BTreeMap<&'static str, String>,
}

impl S3Settings {
    /// Default region when neither the job nor the environment names one.
    pub const DEFAULT_REGION: &'static str = "us-east-1";

    /// Returns where `key` was set, or `default` when it was not.
    pub fn source(&self, key: &str) -> &str {
        self.sources
            .get(key)
            .map(String::as_str)
            .unwrap_or("default")
    }
}

impl Default for S3Settings {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: Self::DEFAULT_REGION.to_string(),
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            virtual_hosted_style: false,
            allow_http: false,
            skip_signature: false,
            // With the backoff the clients use (1 s, growing to at most 15 s), ten
            // retries span about a minute, bounded by `retry_timeout`.
            retries: 10,
            retry_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(60),
            sources: BTreeMap::new(),
            credential_variables: BTreeMap::new(),
        }
    }
}

/// The S3 settings of every bucket a job names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoragePlan {
    /// Settings by bucket name, for every bucket an input or output is in.
    pub buckets: BTreeMap<String, S3Settings>,
}

fn walk(
    dir: &Path,
    extension: &str,
    files: &mut Vec<(PathBuf, u64)>,
) -> std::io::Result<()> {
    walk_below(dir, extension, files, false)
}

/// Walks `dir`; `plain` is true below a subfolder whose name is not `column=value`.
///
/// DataFusion reads only the files of a folder and of its Hive-style subfolders, so
/// a data file below any other subfolder is an error instead of a silent omission.
fn walk_below(
    dir: &Path,
    extension: &str,
    files: &mut Vec<(PathBuf, u64)>,
    plain: bool,
) -> std::io::Result<()> {
    let mut entries = std::fs::read_dir(dir)?.collect::<Result<Vec<_>, _>>()?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            walk_below(
                &entry.path(),
                extension,
                files,
                plain || !name.contains('='),
            )?;
        } else if name.ends_with(extension) {
            if plain {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "'{}' is in a subfolder that is not a Hive partition \
                         (column=value), and such files are not read; move it up or \
                         name the files with a glob",
                        entry.path().display()
                    ),
                ));
            }
            files.push((entry.path(), entry.metadata()?.len()));
        }
    }
    Ok(())
}

/// Returns the longest leading part of a glob pattern without glob characters.
pub fn glob_root(pattern: &Path) -> PathBuf {
    let mut root = PathBuf::new();
    for component in pattern.components() {
        if component
            .as_os_str()
            .to_string_lossy()
            .contains(['*', '?', '['])
        {
            break;
        }
        root.push(component);
    }
    root
}

/// Removes `.` and resolves `..` without touching the file system.
pub fn normalize(path: &Path) -> PathBuf {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => match normal.components().next_back() {
                Some(Component::Normal(_)) => {
                    normal.pop();
                }
                // `/..` is `/`; a leading `..` stays.
                Some(Component::RootDir) | Some(Component::Prefix(_)) => {}
                _ => normal.push(".."),
            },
            other => normal.push(other),
        }
    }
    normal
}

fn display_path(path: &Path) -> String {
    if path.as_os_str().is_empty() {
        ".".to_string()
    } else {
        path.to_string_lossy().into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_resolves_parent_folders() {
        assert_eq!(
            normalize(Path::new("jobs/../data/x")),
            PathBuf::from("data/x")
        );
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(normalize(Path::new("../x")), PathBuf::from("../x"));
    }

    #[test]
    fn resolve_against_job_folder() {
        let location = Location::resolve(
            Path::new("/repo/jobs"),
            Path::new("jobs"),
            "../data/t.parquet",
        )
        .unwrap();
        assert_eq!(
            location.local_path(),
            Some(Path::new("/repo/data/t.parquet"))
        );
        assert_eq!(location.display(), "data/t.parquet");
    }

    #[test]
    fn other_schemes_rejected() {
        let error =
            Location::resolve(Path::new("/"), Path::new("."), "gs://b/x").unwrap_err();
        assert!(error.contains("gs://"), "{error}");
    }

    #[test]
    fn s3_urls_parse_and_nest() {
        let base = Path::new("/repo");
        let output = Location::resolve(base, base, "s3://cra-data/out/value/").unwrap();
        assert_eq!(output.display(), "s3://cra-data/out/value");
        assert_eq!(output.url(true), "s3://cra-data/out/value/");
        let (parent, name) = output.parent().unwrap();
        assert_eq!(
            (parent.display().as_str(), name.as_str()),
            ("s3://cra-data/out", "value")
        );
        assert_eq!(
            parent.join(".cra-staging.value.r1").display(),
            "s3://cra-data/out/.cra-staging.value.r1"
        );
        let input = Location::resolve(base, base, "s3://cra-data/in/*.parquet").unwrap();
        assert!(input.is_glob());
        assert!(
            input.contains(&Location::resolve(base, base, "s3://cra-data/in/x").unwrap())
        );
        assert!(!input.contains(&output));
        let sibling = Location::resolve(base, base, "s3://cra-data/out/value2").unwrap();
        assert!(!output.contains(&sibling));
        let root = Location::resolve(base, base, "s3://cra-data").unwrap();
        assert!(root.contains(&output) && root.parent().is_none());
        for bad in [
            "s3://",
            "s3://Upper/x",
            "s3://ab/x",
            "s3://b-b/a//c",
            "s3://b-b/a/../c",
        ] {
            assert!(Location::resolve(base, base, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn glob_contains_its_matches() {
        let base = Path::new("/repo");
        let input = Location::resolve(base, base, "data/*.parquet").unwrap();
        let output = Location::resolve(base, base, "data/out").unwrap();
        assert!(input.contains(&output));
        let elsewhere = Location::resolve(base, base, "out").unwrap();
        assert!(!input.contains(&elsewhere));
    }
}
