//! Registering the job's inputs as DataFusion listing tables.

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::SessionContext;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::error::Error;
use crate::job::spec::InputFormat;
use crate::job::{InputPlan, JobPlan};
use crate::storage::{Location, RemoteFile, Stores};

/// Files and bytes of an input when the run read its schema.
#[derive(Debug, Clone)]
pub struct InputReport {
    /// Table name.
    pub name: String,
    /// The location as the user reads it.
    pub path: String,
    /// Number of data files.
    pub files: usize,
    /// Total size of the data files in bytes.
    pub bytes: u64,
}

/// Registers `input` in `ctx`, reading only file listings and schemas.
///
/// Parquet schemas come from the footers; CSV schemas from the header and the
/// first rows. Hive-style `column=value` folders become `VARCHAR` columns.
pub async fn register(
    ctx: &SessionContext,
    stores: &Stores,
    job: &JobPlan,
    input: &InputPlan,
) -> Result<InputReport, Error> {
    let context = format!("{}: input '{}'", job.file, input.name);
    let (format, extension): (Arc<dyn FileFormat>, &str) = match input.format {
        InputFormat::Parquet => (Arc::new(ParquetFormat::default()), ".parquet"),
        InputFormat::Csv => {
            (Arc::new(CsvFormat::default().with_has_header(true)), ".csv")
        }
    };

    let (files, single, has_skipped) =
        list_input(stores, &context, &input.location, extension).await?;
    if files.is_empty() {
        let what = if input.location.is_glob() {
            "matches no file"
        } else if input.location.bucket().is_some() {
            "is not found: no object has this key, and the prefix contains no data file"
        } else {
            "contains no data file"
        };
        return Err(Error::invalid(format!(
            "{context}: '{}' {what}",
            input.location.display()
        ))
        .with_hint(format!("expected files ending in '{extension}'")));
    }

    let store = stores.store_for(&input.location)?;
    // A local file that cannot be read is a bad input (exit 2). An object that
    // cannot be read is a store failure (exit 1), so its cause is named.
    let read_failed =
        |file: &RemoteFile, error: object_store::Error| match &input.location {
            Location::Local { .. } => Error::invalid(format!(
                "{context}: '{}' cannot be read: {error}",
                file.display
            )),
            Location::S3 { .. } => stores
                .error(
                    &input.location,
                    &format!("cannot read '{}'", file.display),
                    &error,
                )
                .context(&context),
        };
    match input.format {
        InputFormat::Csv => {
            check_csv_headers(&context, store.as_ref(), &files, &read_failed).await?
        }
        InputFormat::Parquet => {
            check_parquet_files(&context, store.as_ref(), &files, &read_failed).await?
        }
    }

    // A single file is read whatever its name ends with; folders keep only files
    // of the format's extension, which skips cra's own `_SUCCESS` and manifest.
    let extension = if single { "" } else { extension };
    let url = input.location.url(!single && !input.location.is_glob());
    // DataFusion expands globs in local paths only, and reads files that cra
    // skips by name, so those inputs become the list of files cra found.
    let table = match &input.location {
        Location::S3 { bucket, .. } if input.location.is_glob() || has_skipped => {
            let urls = files.iter().map(|file| object_url(bucket, file)).collect();
            file_table(ctx, urls, format).await
        }
        Location::Local { .. } if has_skipped => {
            let urls = files
                .iter()
                .filter_map(|file| file.local.as_ref())
                .map(|path| path.to_string_lossy().into_owned())
                .collect();
            file_table(ctx, urls, format).await
        }
        _ => listing_table(ctx, &url, format, extension).await,
    };
    let table = table.map_err(|error| {
        let described = super::sql::describe(&error);
        Error::invalid(format!(
            "{context}: cannot read the schema of '{}': {}",
            input.location.display(),
            described.message
        ))
        .with_source(error)
    })?;
    ctx.register_table(input.name.as_str(), Arc::new(table))
        .map_err(|error| Error::invalid(format!("{context}: {error}")))?;

    Ok(InputReport {
        name: input.name.clone(),
        path: input.location.display(),
        files: files.len(),
        bytes: files.iter().map(|file| file.size).sum(),
    })
}

/// Lists the files of an input. The first flag is true when the location names
/// one file rather than a folder, prefix or glob. The second is true when the
/// folder has files that cra skips by name, so DataFusion must get the list.
async fn list_input(
    stores: &Stores,
    context: &str,
    location: &Location,
    extension: &str,
) -> Result<(Vec<RemoteFile>, bool, bool), Error> {
    let Some(path) = location.local_path() else {
        let (files, skipped) = stores
            .list_s3_with_skipped(location, extension)
            .await
            .map_err(|error| error.context(context))?;
        reject_skipped_in_partitions(context, location, &files, &skipped)?;
        let single = !location.is_glob()
            && files.len() == 1
            && Some(files[0].path.as_ref()) == location_key(location);
        return Ok((files, single, !skipped.is_empty()));
    };
    let single = path.is_file();
    let extension = if single { "" } else { extension };
    let listed = location.list_files(extension).map_err(|error| {
        Error::invalid(format!(
            "{context}: cannot list '{}': {error}",
            location.display()
        ))
    })?;
    let (listed, skipped): (Vec<_>, Vec<String>) = if single {
        (listed, Vec::new())
    } else if location.is_glob() {
        // A glob matches hidden files too; they are skipped as in folders.
        let root = crate::storage::glob_root(path);
        let (hidden, kept): (Vec<_>, Vec<_>) =
            listed.into_iter().partition(|(file, _)| {
                file.strip_prefix(&root)
                    .unwrap_or(file)
                    .components()
                    .any(|part| {
                        let part = part.as_os_str().to_string_lossy();
                        part.starts_with('.') || part.starts_with('_')
                    })
            });
        (kept, hidden.iter().map(|(file, _)| shown(file)).collect())
    } else {
        let skipped = crate::storage::skipped_data_files(path, extension);
        (listed, skipped.iter().map(|file| shown(file)).collect())
    };
    let mut files = Vec::with_capacity(listed.len());
    for (path, size) in listed {
        let object = ObjectPath::from_filesystem_path(&path).map_err(|error| {
            Error::invalid(format!("{context}: '{}': {error}", shown(&path)))
        })?;
        files.push(RemoteFile {
            path: object,
            display: shown(&path),
            size,
            local: Some(path),
        });
    }
    reject_skipped_in_partitions(context, location, &files, &skipped)?;
    Ok((files, single, !skipped.is_empty()))
}

/// Rejects a partitioned folder with files that cra skips by name, because
/// DataFusion reads every file of the folder's partitions, whatever its name.
fn reject_skipped_in_partitions(
    context: &str,
    location: &Location,
    files: &[RemoteFile],
    skipped: &[String],
) -> Result<(), Error> {
    let root = location.display();
    let partitioned = files.iter().any(|file| {
        file.display
            .strip_prefix(root.as_str())
            .unwrap_or(&file.display)
            .trim_start_matches('/')
            .rsplit_once('/')
            .is_some_and(|(folders, _)| folders.contains('='))
    });
    match skipped.first() {
        Some(first) if partitioned => Err(Error::invalid(format!(
            "{context}: '{first}' starts with '_' or '.', so cra skips it, but DataFusion \
             would read it with the partitions of '{root}'"
        ))
        .with_hint("move the file out of the input folder, or rename it")),
        _ => Ok(()),
    }
}

fn location_key(location: &Location) -> Option<&str> {
    match location {
        Location::S3 { key, .. } => Some(key),
        Location::Local { .. } => None,
    }
}

/// Rejects CSV files whose header rows differ, because DataFusion maps CSV columns
/// by position: a file with the same columns in another order would be misread.
async fn check_csv_headers(
    context: &str,
    store: &dyn ObjectStore,
    files: &[RemoteFile],
    read_failed: &dyn Fn(&RemoteFile, object_store::Error) -> Error,
) -> Result<(), Error> {
    // A header row longer than this is compared by its first part only.
    const HEADER_BYTES: u64 = 1 << 20;
    let mut first: Option<(String, &str)> = None;
    for file in files {
        let bytes = store
            .get_range(&file.path, 0..file.size.min(HEADER_BYTES))
            .await
            .map_err(|error| read_failed(file, error))?;
        let text = String::from_utf8_lossy(&bytes);
        let header = text
            .split('\n')
            .next()
            .unwrap_or_default()
            .trim_end_matches('\r')
            .to_string();
        match &first {
            None => first = Some((header, &file.display)),
            Some((expected, first_path)) if *expected != header => {
                return Err(Error::invalid(format!(
                    "{context}: CSV files have different header rows: '{first_path}' has \
                     '{expected}', '{}' has '{header}'",
                    file.display
                ))
                .with_hint(
                    "columns are read by position, so every file needs the same header",
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Reads the footer of every Parquet file and checks that all files have the
/// same columns with the same types.
///
/// DataFusion would merge files with different columns into one table whose
/// missing values are NULL, and its statistics then disagree with the data. A
/// footer with a wrong length makes its reader panic. Both are an invalid input
/// here (exit 2), named by file.
async fn check_parquet_files(
    context: &str,
    store: &dyn ObjectStore,
    files: &[RemoteFile],
    read_failed: &dyn Fn(&RemoteFile, object_store::Error) -> Error,
) -> Result<(), Error> {
    let mut first: Option<(&str, Vec<(String, DataType)>)> = None;
    for file in files {
        let columns =
            parquet_columns(store, file)
                .await
                .map_err(|problem| match problem {
                    FooterError::Invalid(problem) => {
                        Error::invalid(format!("{context}: '{}' {problem}", file.display))
                    }
                    FooterError::Store(error) => read_failed(file, error),
                })?;
        let Some((first_path, expected)) = &first else {
            first = Some((&file.display, columns));
            continue;
        };
        if *expected != columns {
            let describe = |list: &[(String, DataType)], other: &[(String, DataType)]| {
                list.iter()
                    .filter(|column| !other.contains(column))
                    .map(|(name, data_type)| format!("{name} {data_type}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(Error::invalid(format!(
                "{context}: files have different columns: '{}' has [{}] where '{first_path}' \
                 has [{}]",
                file.display,
                describe(&columns, expected),
                describe(expected, &columns),
            ))
            .with_hint("every file of one input needs the same columns and types"));
        }
    }
    Ok(())
}

/// Returns a file's path relative to the working folder when it lies inside it,
/// as a user named it.
fn shown(path: &std::path::Path) -> String {
    let relative = std::env::current_dir().ok().and_then(|dir| {
        path.strip_prefix(dir)
            .ok()
            .map(std::path::Path::to_path_buf)
    });
    relative
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}

/// Returns the columns of a Parquet file, sorted by name, from its footer.
async fn parquet_columns(
    store: &dyn ObjectStore,
    file: &RemoteFile,
) -> Result<Vec<(String, DataType)>, FooterError> {
    let metadata = read_footer(store, &file.path, file.size).await?;
    let file_metadata = metadata.file_metadata();
    let schema = parquet::arrow::parquet_to_arrow_schema(
        file_metadata.schema_descr(),
        file_metadata.key_value_metadata(),
    )
    .map_err(|error| {
        FooterError::Invalid(format!("has a schema cra cannot read: {error}"))
    })?;
    let mut columns: Vec<(String, DataType)> = schema
        .fields()
        .iter()
        .map(|field| (field.name().clone(), field.data_type().clone()))
        .collect();
    columns.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(columns)
}

/// The reason a Parquet footer could not be read.
#[derive(Debug)]
pub(crate) enum FooterError {
    /// The store failed to return the bytes.
    Store(object_store::Error),
    /// The bytes are not a valid footer; worded to follow the file's name.
    Invalid(String),
}

impl std::fmt::Display for FooterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FooterError::Store(error) => write!(f, "cannot be read: {error}"),
            FooterError::Invalid(problem) => f.write_str(problem),
        }
    }
}

/// Reads and decodes the footer of the Parquet file at `path`, `size` bytes
/// long, with two range reads.
pub(crate) async fn read_footer(
    store: &dyn ObjectStore,
    path: &ObjectPath,
    size: u64,
) -> Result<parquet::file::metadata::ParquetMetaData, FooterError> {
    const TAIL: u64 = 8;
    if size < 12 {
        return Err(FooterError::Invalid(format!(
            "is not a Parquet file: it has {size} bytes, and the smallest has 12"
        )));
    }
    let read = |range: std::ops::Range<u64>| async move {
        store
            .get_range(path, range)
            .await
            .map_err(FooterError::Store)
    };
    let tail = read(size - TAIL..size).await?;
    if &tail[4..] != b"PAR1" {
        return Err(FooterError::Invalid(
            "is not a Parquet file: it does not end in 'PAR1'".to_string(),
        ));
    }
    let footer = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if footer + 12 > size {
        return Err(FooterError::Invalid(format!(
            "is not a valid Parquet file: its footer length {footer} exceeds the file's \
             {size} bytes"
        )));
    }
    let footer_bytes = read(size - TAIL - footer..size - TAIL).await?;
    parquet::file::metadata::ParquetMetaDataReader::decode_metadata(&footer_bytes)
        .map_err(|error| {
            FooterError::Invalid(format!("has an unreadable footer: {error}"))
        })
}

/// Returns the URL of an object that DataFusion reads back as the same key.
fn object_url(bucket: &str, file: &RemoteFile) -> String {
    let Ok(mut url) = url::Url::parse(&format!("s3://{bucket}")) else {
        return format!("s3://{bucket}/{}", file.path);
    };
    if let Ok(mut segments) = url.path_segments_mut() {
        // Each part is percent-encoded here and decoded again by DataFusion,
        // so keys with `%` or spaces keep their names.
        segments.extend(file.path.as_ref().split('/'));
    }
    url.to_string()
}

/// Returns a table of exactly the files at `urls`, without partition columns.
async fn file_table(
    ctx: &SessionContext,
    urls: Vec<String>,
    format: Arc<dyn FileFormat>,
) -> datafusion::error::Result<ListingTable> {
    let urls = urls
        .iter()
        .map(ListingTableUrl::parse)
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    let state = ctx.state();
    let options = ListingOptions::new(format).with_file_extension("");
    let schema = options.infer_schema(&state, &urls[0]).await?;
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(schema);
    ListingTable::try_new(config)
}

async fn listing_table(
    ctx: &SessionContext,
    url: &str,
    format: Arc<dyn FileFormat>,
    extension: &str,
) -> datafusion::error::Result<ListingTable> {
    let state = ctx.state();
    let url = ListingTableUrl::parse(url)?;
    let options = ListingOptions::new(format).with_file_extension(extension);
    let partitions = options.infer_partitions(&state, &url).await?;
    let options = options.with_table_partition_cols(
        partitions
            .into_iter()
            .map(|name| (name, DataType::Utf8))
            .collect(),
    );
    let schema = options.infer_schema(&state, &url).await?;
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(schema);
    ListingTable::try_new(config)
}

/// Finds the first Parquet input file whose data cannot be read, by reading every
/// file of every Parquet input in full. Returns the file and the problem.
///
/// DataFusion's decoding errors do not name the file, so a run that failed on
/// one calls this to say which file it was. It reads all input data again, which
/// is acceptable only after a failure.
pub async fn find_unreadable_file(
    stores: &Stores,
    job: &JobPlan,
) -> Option<(String, String)> {
    for input in &job.inputs {
        if input.format != InputFormat::Parquet {
            continue;
        }
        let Ok((files, _, _)) = list_input(stores, "", &input.location, ".parquet").await
        else {
            continue;
        };
        let Ok(store) = stores.store_for(&input.location) else {
            continue;
        };
        for file in files {
            if let Err(problem) = read_whole_parquet(Arc::clone(&store), &file).await {
                return Some((file.display, problem));
            }
        }
    }
    None
}

async fn read_whole_parquet(
    store: Arc<dyn ObjectStore>,
    file: &RemoteFile,
) -> Result<(), String> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    fn read_all<R: parquet::file::reader::ChunkReader + 'static>(
        reader: R,
    ) -> Result<(), String> {
        let batches = ParquetRecordBatchReaderBuilder::try_new(reader)
            .and_then(|builder| builder.build())
            .map_err(|error| error.to_string())?;
        for batch in batches {
            batch.map_err(|error| error.to_string())?;
        }
        Ok(())
    }
    // A local file is read as it streams; an object is fetched whole, which
    // happens only after a run has failed.
    if let Some(path) = &file.local {
        let file = std::fs::File::open(path).map_err(|error| error.to_string())?;
        return read_all(file);
    }
    let bytes = store
        .get(&file.path)
        .await
        .map_err(|error| error.to_string())?
        .bytes()
        .await
        .map_err(|error| error.to_string())?;
    read_all(bytes)
}
