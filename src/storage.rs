//! Locations of inputs and outputs.
//!
//! A [`Location`] is resolved once, against the job file's folder, and every later
//! step uses it: the engine turns it into a DataFusion table URL, the publisher into
//! staging and destination folders, and manifests list the files it holds.

use std::path::{Component, Path, PathBuf};

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
}

impl Location {
    /// Resolves `text` against `base`, the job file's folder.
    ///
    /// `display_base` is the same folder as the user named it, so messages show
    /// `jobs/../data/x.parquet` as `data/x.parquet`.
    pub fn resolve(base: &Path, display_base: &Path, text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("path is empty".to_string());
        }
        if let Some((scheme, _)) = text.split_once("://") {
            return Err(format!(
                "'{text}' uses the '{scheme}://' scheme, which this build of cra does \
                 not support; use a local path"
            ));
        }
        let path = normalize(&base.join(text));
        let display = display_path(&normalize(&display_base.join(text)));
        Ok(Location::Local { path, display })
    }

    /// Returns the location as a user reads it in messages.
    pub fn display(&self) -> &str {
        match self {
            Location::Local { display, .. } => display,
        }
    }

    /// Returns the absolute local path.
    pub fn local_path(&self) -> &Path {
        match self {
            Location::Local { path, .. } => path,
        }
    }

    /// Returns true when the location is a glob pattern rather than one path.
    pub fn is_glob(&self) -> bool {
        self.local_path()
            .to_str()
            .is_some_and(|text| text.contains(['*', '?', '[']))
    }

    /// Returns true when `other` is this location or lies inside it.
    pub fn contains(&self, other: &Location) -> bool {
        let (mine, theirs) = (self.local_path(), other.local_path());
        let mine = if self.is_glob() {
            glob_root(mine)
        } else {
            mine.to_path_buf()
        };
        theirs.starts_with(&mine)
    }

    /// Lists the data files this input location names, with their sizes in bytes.
    ///
    /// A folder is walked recursively and only files ending in `extension` count,
    /// so `_SUCCESS`, `_manifest.json` and hidden files are skipped.
    pub fn list_files(&self, extension: &str) -> std::io::Result<Vec<(PathBuf, u64)>> {
        let path = self.local_path();
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
        assert_eq!(location.local_path(), Path::new("/repo/data/t.parquet"));
        assert_eq!(location.display(), "data/t.parquet");
    }

    #[test]
    fn remote_scheme_rejected() {
        let error =
            Location::resolve(Path::new("/"), Path::new("."), "s3://b/x").unwrap_err();
        assert!(error.contains("s3://"), "{error}");
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
