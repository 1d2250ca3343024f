//! Clients of the stores a job names, listing of input files on them, and the
//! messages for their errors.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig};

use super::location::{Location, S3Settings, StoragePlan, key_glob_root};
use crate::error::Error;

/// One file of an input, on the local file system or in a bucket.
#[derive(Debug, Clone)]
pub struct RemoteFile {
    /// Path of the file in its store.
    pub path: ObjectPath,
    /// The file as a user reads it: a local path or an `s3://` URL.
    pub display: String,
    /// Size in bytes.
    pub size: u64,
    /// The file's path when it is on the local file system.
    pub local: Option<std::path::PathBuf>,
}

/// A client for every bucket a job names, and one for the local file system.
#[derive(Debug, Clone)]
pub struct Stores {
    buckets: BTreeMap<String, (Arc<dyn ObjectStore>, S3Settings)>,
    local: Arc<dyn ObjectStore>,
}

impl Stores {
    /// Builds a client for each bucket in `plan`. Contacts no store.
    pub fn new(plan: &StoragePlan) -> Result<Self, Error> {
        let mut buckets = BTreeMap::new();
        for (bucket, settings) in &plan.buckets {
            let store = build_client(bucket, settings)?;
            buckets.insert(bucket.clone(), (store, settings.clone()));
        }
        let mut known = known_settings().write().unwrap_or_else(|e| e.into_inner());
        known.extend(plan.buckets.clone());
        Ok(Self {
            buckets,
            local: Arc::new(LocalFileSystem::new()),
        })
    }

    /// Returns each bucket's `s3://bucket` URL with its client, to register in a
    /// DataFusion session.
    pub fn s3_clients(
        &self,
    ) -> impl Iterator<Item = (String, Arc<dyn ObjectStore>)> + '_ {
        self.buckets
            .iter()
            .map(|(bucket, (store, _))| (format!("s3://{bucket}"), Arc::clone(store)))
    }

    /// Returns the names of the buckets.
    pub fn bucket_names(&self) -> impl Iterator<Item = &str> {
        self.buckets.keys().map(String::as_str)
    }

    /// Returns the settings of `bucket`.
    pub fn settings(&self, bucket: &str) -> Option<&S3Settings> {
        self.buckets.get(bucket).map(|(_, settings)| settings)
    }

    /// Returns the client of the store that contains `location`.
    pub fn store_for(&self, location: &Location) -> Result<Arc<dyn ObjectStore>, Error> {
        match location {
            Location::Local { .. } => Ok(Arc::clone(&self.local)),
            Location::S3 { .. } => self.resolve(location).map(|(store, _)| store),
        }
    }

    /// Returns the client of the store that contains `location`, and the path of
    /// `location` in it.
    pub fn resolve(
        &self,
        location: &Location,
    ) -> Result<(Arc<dyn ObjectStore>, ObjectPath), Error> {
        match location {
            Location::Local { path, .. } => {
                let object = ObjectPath::from_filesystem_path(path).map_err(|error| {
                    Error::invalid(format!("'{}': {error}", location.display()))
                })?;
                Ok((Arc::clone(&self.local), object))
            }
            Location::S3 { bucket, key } => {
                let (store, _) = self.buckets.get(bucket).ok_or_else(|| {
                    Error::run(format!("internal error: no client for bucket '{bucket}'"))
                })?;
                // `parse` keeps the key as it is; `from` would percent-encode
                // characters that DataFusion writes unencoded.
                let path = ObjectPath::parse(key).map_err(|error| {
                    Error::invalid(format!("'{}': {error}", location.display()))
                })?;
                Ok((Arc::clone(store), path))
            }
        }
    }

    /// Turns a store error about `location` into a run error (exit 1) whose
    /// message names the cause and whose hint names what to check.
    pub fn error(
        &self,
        location: &Location,
        doing: &str,
        error: &object_store::Error,
    ) -> Error {
        let settings = location.bucket().and_then(|bucket| self.settings(bucket));
        let (cause, hint) = describe_store_error(location, settings, error);
        let error = Error::run(format!("{}: {doing}: {cause}", location.display()));
        match hint {
            Some(hint) => error.with_hint(hint),
            None => error,
        }
    }

    /// Lists the data files that an input in a bucket names: one object, every
    /// object below a prefix, or the objects a glob matches.
    ///
    /// Below a prefix the rules of local folders hold: names starting with `_`
    /// or `.` are skipped, only names ending in `extension` count, and a data
    /// file below a part that is not `column=value` is an error.
    pub async fn list_s3(
        &self,
        location: &Location,
        extension: &str,
    ) -> Result<Vec<RemoteFile>, Error> {
        self.list_s3_with_skipped(location, extension)
            .await
            .map(|(files, _)| files)
    }

    /// [`Self::list_s3`], also returning the keys below the prefix that end in
    /// `extension` but were skipped for a name starting with `_` or `.`.
    pub async fn list_s3_with_skipped(
        &self,
        location: &Location,
        extension: &str,
    ) -> Result<(Vec<RemoteFile>, Vec<String>), Error> {
        let Location::S3 { bucket, key } = location else {
            return Ok((Vec::new(), Vec::new()));
        };
        let (store, _) = self.resolve(location)?;
        let display = |path: &ObjectPath| format!("s3://{bucket}/{path}");
        let listing_error =
            |error: object_store::Error| self.error(location, "cannot list", &error);

        if location.is_glob() {
            let pattern = glob::Pattern::new(key).map_err(|error| {
                Error::invalid(format!("'{}': {error}", location.display()))
            })?;
            let options = glob::MatchOptions {
                require_literal_separator: true,
                ..glob::MatchOptions::new()
            };
            let root = ObjectPath::parse(key_glob_root(key)).map_err(|error| {
                Error::invalid(format!("'{}': {error}", location.display()))
            })?;
            let objects: Vec<_> = store
                .list(Some(&root))
                .try_collect()
                .await
                .map_err(listing_error)?;
            let mut files: Vec<RemoteFile> = objects
                .into_iter()
                .filter(|meta| pattern.matches_with(meta.location.as_ref(), options))
                // Staging of other runs and hidden files are skipped, as in folders.
                .filter(|meta| {
                    !meta
                        .location
                        .as_ref()
                        .split('/')
                        .any(|part| part.starts_with('.') || part.starts_with('_'))
                })
                .map(|meta| RemoteFile {
                    display: display(&meta.location),
                    path: meta.location,
                    size: meta.size,
                    local: None,
                })
                .collect();
            files.sort_by(|a, b| a.path.cmp(&b.path));
            return Ok((files, Vec::new()));
        }

        let (_, path) = self.resolve(location)?;
        if !key.is_empty() {
            match store.head(&path).await {
                Ok(meta) => {
                    let file = RemoteFile {
                        display: display(&meta.location),
                        path: meta.location,
                        size: meta.size,
                        local: None,
                    };
                    return Ok((vec![file], Vec::new()));
                }
                Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => {
                    // A response to HEAD has no body, so it lacks the store's error
                    // code. A listing of the same key fails the same way and includes it.
                    let listed = store.list_with_delimiter(Some(&path)).await;
                    let error = listed.err().unwrap_or(error);
                    return Err(self.error(location, "cannot read", &error));
                }
            }
        }
        let root = (!key.is_empty()).then_some(&path);
        let objects: Vec<_> = store
            .list(root)
            .try_collect()
            .await
            .map_err(listing_error)?;
        let mut files = Vec::new();
        let mut skipped = Vec::new();
        for meta in objects {
            let relative: Vec<&str> = meta
                .location
                .as_ref()
                .strip_prefix(key)
                .unwrap_or(meta.location.as_ref())
                .trim_start_matches('/')
                .split('/')
                .collect();
            let Some((name, folders)) = relative.split_last() else {
                continue;
            };
            let hidden = |part: &&str| part.starts_with('.') || part.starts_with('_');
            if folders.iter().any(hidden) || !name.ends_with(extension) {
                continue;
            }
            if hidden(name) {
                skipped.push(display(&meta.location));
                continue;
            }
            if folders.iter().any(|part| !part.contains('=')) {
                return Err(Error::invalid(format!(
                    "'{}' is below a part that is not a Hive partition (column=value), \
                     and such files are not read",
                    display(&meta.location)
                ))
                .with_hint("move it up, or name the files with a glob"));
            }
            files.push(RemoteFile {
                display: display(&meta.location),
                path: meta.location,
                size: meta.size,
                local: None,
            });
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok((files, skipped))
    }

    /// Checks that `prefix` in `bucket` can be listed with its settings.
    pub async fn probe_list(&self, bucket: &str, prefix: &str) -> Result<(), Error> {
        let location = Location::S3 {
            bucket: bucket.to_string(),
            key: prefix.to_string(),
        };
        let (store, path) = self.resolve(&location)?;
        let root = (!prefix.is_empty()).then_some(&path);
        store
            .list_with_delimiter(root)
            .await
            .map(|_| ())
            .map_err(|error| self.error(&location, "cannot list", &error))
    }

    /// Checks that `bucket` can be listed, written and cleaned up with its
    /// settings, by writing one small object below `prefix` and deleting it.
    pub async fn probe(
        &self,
        bucket: &str,
        prefix: &str,
        run_id: &str,
    ) -> Result<(), Error> {
        let probe_key = if prefix.is_empty() {
            format!(".cra-probe.{run_id}")
        } else {
            format!("{prefix}/.cra-probe.{run_id}")
        };
        let location = Location::S3 {
            bucket: bucket.to_string(),
            key: probe_key,
        };
        let (store, path) = self.resolve(&location)?;
        let listed = Location::S3 {
            bucket: bucket.to_string(),
            key: prefix.to_string(),
        };
        let (_, prefix_path) = self.resolve(&listed)?;
        let list_root = (!prefix.is_empty()).then_some(prefix_path);
        store
            .list_with_delimiter(list_root.as_ref())
            .await
            .map_err(|error| self.error(&listed, "cannot list", &error))?;
        store
            .put(&path, b"cra storage check\n".to_vec().into())
            .await
            .map_err(|error| self.error(&listed, "cannot write", &error))?;
        store
            .delete(&path)
            .await
            .map_err(|error| self.error(&listed, "cannot delete", &error))?;
        Ok(())
    }
}

/// Settings of every bucket this process has a client for, so errors that reach
/// the user through DataFusion can still name the source of a setting.
fn known_settings() -> &'static std::sync::RwLock<BTreeMap<String, S3Settings>> {
    static KNOWN: std::sync::OnceLock<std::sync::RwLock<BTreeMap<String, S3Settings>>> =
        std::sync::OnceLock::new();
    KNOWN.get_or_init(Default::default)
}

/// Describes a store error met while DataFusion read or wrote, naming the
/// bucket whose URL the error shows.
pub fn describe_store_error_in_text(
    error: &object_store::Error,
) -> (String, Option<String>) {
    let text = error.to_string();
    let known = known_settings().read().unwrap_or_else(|e| e.into_inner());
    let found = known.iter().find(|(bucket, _)| {
        text.contains(&format!("/{bucket}/"))
            || text.contains(&format!("/{bucket}?"))
            || text.contains(&format!("//{bucket}."))
    });
    match found {
        Some((bucket, settings)) => {
            let location = Location::S3 {
                bucket: bucket.clone(),
                key: String::new(),
            };
            describe_store_error(&location, Some(settings), error)
        }
        None => describe_store_error(
            &Location::Local {
                path: Default::default(),
                display: String::new(),
            },
            None,
            error,
        ),
    }
}

fn build_client(
    bucket: &str,
    settings: &S3Settings,
) -> Result<Arc<dyn ObjectStore>, Error> {
    let mut client = ClientOptions::new()
        .with_allow_http(settings.allow_http)
        .with_timeout(settings.timeout)
        .with_connect_timeout(settings.connect_timeout);
    if settings.endpoint.is_none() {
        client = client.with_allow_http(false);
    }
    // object_store's own backoff starts at 0.1 s, so ten retries pass within
    // about 1.5 s. Starting at 1 s and growing to 15 s, they span about a
    // minute, which `retry_timeout` bounds.
    let retry = RetryConfig {
        max_retries: settings.retries,
        retry_timeout: settings.retry_timeout,
        backoff: object_store::BackoffConfig {
            init_backoff: std::time::Duration::from_secs(1),
            max_backoff: std::time::Duration::from_secs(15),
            base: 2.0,
        },
    };
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(&settings.region)
        .with_virtual_hosted_style_request(settings.virtual_hosted_style)
        .with_skip_signature(settings.skip_signature)
        .with_client_options(client)
        .with_retry(retry);
    if let Some(endpoint) = &settings.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let (Some(key_id), Some(secret)) =
        (&settings.access_key_id, &settings.secret_access_key)
    {
        builder = builder
            .with_access_key_id(&key_id.0)
            .with_secret_access_key(&secret.0);
        if let Some(token) = &settings.session_token {
            builder = builder.with_token(&token.0);
        }
    }
    let store = builder.build().map_err(|error| {
        Error::invalid(format!(
            "bucket '{bucket}': the S3 settings are not usable: {}",
            crate::redact::text(&error.to_string())
        ))
    })?;
    Ok(Arc::new(store))
}

/// Returns the cause of a store error as a sentence, with a hint when the cause
/// is one a user can fix.
///
/// Object stores respond with an HTTP status and an XML code, and transport
/// failures come from the HTTP client. Both are read from the error's text. The
/// text contains no secret, because requests are signed and URLs carry none, and
/// registered values are masked in it as everywhere.
pub fn describe_store_error(
    location: &Location,
    settings: Option<&S3Settings>,
    error: &object_store::Error,
) -> (String, Option<String>) {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    let text = crate::redact::text(&text).into_owned();
    let shown = crate::redact::text(&error.to_string()).into_owned();
    let unknown = S3Settings::default();
    let settings = settings.unwrap_or(&unknown);
    let bucket = location.bucket().unwrap_or_default();
    let endpoint = settings
        .endpoint
        .clone()
        .unwrap_or_else(|| "the AWS endpoint".to_string());
    let endpoint_source = settings.source("endpoint");
    let has = |needles: &[&str]| needles.iter().any(|needle| text.contains(needle));

    let code = xml_element(&text, "Code").unwrap_or_default();
    let (cause, hint) = if code == "NoSuchBucket" {
        (
            format!("bucket '{bucket}' does not exist at {endpoint}"),
            format!(
                "create the bucket, or correct its name in the path; the endpoint comes \
                 from {endpoint_source}"
            ),
        )
    } else if code == "InvalidAccessKeyId" || has(&["No such key", "Unknown access key"])
    {
        (
            "the access key id is not known to the store".to_string(),
            format!(
                "check the access key id (from {}) against the store's keys",
                settings.source("access_key_id")
            ),
        )
    } else if code == "SignatureDoesNotMatch" || has(&["Invalid signature"]) {
        (
            "the store rejected the request signature: the secret access key is wrong"
                .to_string(),
            format!(
                "check the secret access key (from {}) and the endpoint (from \
                 {endpoint_source})",
                settings.source("secret_access_key")
            ),
        )
    } else if matches!(
        code.as_str(),
        "AuthorizationHeaderMalformed"
            | "PermanentRedirect"
            | "IllegalLocationConstraintException"
    ) || has(&["incorrectly configured region"])
    {
        (
            format!(
                "the store rejected the region '{}' (from {})",
                settings.region,
                settings.source("region")
            ),
            "set region to the store's own region: Garage's is the s3_region of its \
             configuration, and on AWS it is the bucket's region"
                .to_string(),
        )
    } else if (code == "AccessDenied" || code == "Forbidden") && settings.skip_signature {
        (
            format!("bucket '{bucket}' does not allow this without credentials"),
            "remove skip_signature and give an access key id and secret".to_string(),
        )
    } else if code == "AccessDenied" || code == "Forbidden" {
        (
            format!("the key has no permission for this in bucket '{bucket}'"),
            format!(
                "grant the key (from {}) read and write access to the bucket",
                settings.source("access_key_id")
            ),
        )
    } else if has(&["Connection refused", "connection refused", "dns error"]) {
        (
            format!("cannot connect to {endpoint}"),
            format!(
                "check the endpoint (from {endpoint_source}) and that the store is running"
            ),
        )
    } else if has(&["timed out", "TimedOut", "deadline has elapsed"]) {
        (
            format!("the request to {endpoint} timed out"),
            format!(
                "check that the store responds; a request may take {:?} (timeout, from {}) \
                 and is retried {} times",
                settings.timeout,
                settings.source("timeout"),
                settings.retries
            ),
        )
    } else if has(&[
        "error sending request",
        "error trying to connect",
        "connection closed",
    ]) {
        (
            format!("cannot reach {endpoint}"),
            format!(
                "check the endpoint (from {endpoint_source}) and that the store is running"
            ),
        )
    } else {
        return (shown, None);
    };
    (format!("{cause} ({})", short_detail(&text)), Some(hint))
}

/// Finds the object store error in an error's chain of sources, also inside
/// the I/O errors that DataFusion's writers wrap store errors in.
pub fn find_store_error<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a object_store::Error> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(found) = error.downcast_ref::<object_store::Error>() {
            return Some(found);
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(found) = inner.downcast_ref::<object_store::Error>()
        {
            return Some(found);
        }
        current = error.source();
    }
    None
}

/// Returns the store's or the connection's error, without the request URL:
/// the S3 error code and message, or the innermost transport error.
fn short_detail(text: &str) -> String {
    if let Some(code) = xml_element(text, "Code") {
        return match xml_element(text, "Message") {
            Some(message) => format!("store error {code}: {message}"),
            None => format!("store error {code}"),
        };
    }
    let innermost = text.rsplit(": ").next().unwrap_or(text);
    innermost
        .chars()
        .take(200)
        .collect::<String>()
        .trim()
        .to_string()
}

/// Returns the text of the first `<name>` element in an S3 error body.
fn xml_element(text: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find("</")? + start;
    let entities = [
        ("&apos;", "'"),
        ("&quot;", "\""),
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&amp;", "&"),
    ];
    let mut value = text[start..end].to_string();
    for (entity, character) in entities {
        value = value.replace(entity, character);
    }
    Some(value)
}
