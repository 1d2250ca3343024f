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

use crate::error::Error;
use crate::job::spec::InputFormat;
use crate::job::{InputPlan, JobPlan};

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

    let path = input.location.local_path();
    // A single file is read whatever its name ends with; folders keep only files
    // of the format's extension, which skips cra's own `_SUCCESS` and manifest.
    let extension = if path.is_file() { "" } else { extension };
    let files = input.location.list_files(extension).map_err(|error| {
        Error::invalid(format!(
            "{context}: cannot list '{}': {error}",
            input.location.display()
        ))
    })?;
    if files.is_empty() {
        let what = if input.location.is_glob() {
            "matches no file"
        } else {
            "contains no data file"
        };
        return Err(Error::invalid(format!(
            "{context}: '{}' {what}",
            input.location.display()
        ))
        .with_hint(format!("expected files ending in '{extension}'")));
    }

    match input.format {
        InputFormat::Csv => check_csv_headers(&context, &files)?,
        InputFormat::Parquet => check_parquet_files(&context, &files)?,
    }

    let table = listing_table(ctx, input, format, extension)
        .await
        .map_err(|error| {
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
        path: input.location.display().to_string(),
        files: files.len(),
        bytes: files.iter().map(|(_, size)| size).sum(),
    })
}

/// Rejects CSV files whose header rows differ, because DataFusion maps CSV columns
/// by position: a file with the same columns in another order would be misread.
fn check_csv_headers(
    context: &str,
    files: &[(std::path::PathBuf, u64)],
) -> Result<(), Error> {
    use std::io::BufRead;
    let mut first: Option<(String, &std::path::Path)> = None;
    for (path, _) in files {
        let mut header = String::new();
        let file = std::fs::File::open(path).map_err(|error| {
            Error::invalid(format!(
                "{context}: cannot read '{}': {error}",
                path.display()
            ))
        })?;
        std::io::BufReader::new(file)
            .read_line(&mut header)
            .map_err(|error| {
                Error::invalid(format!(
                    "{context}: cannot read '{}': {error}",
                    path.display()
                ))
            })?;
        let header = header.trim_end_matches(['\r', '\n']).to_string();
        match &first {
            None => first = Some((header, path)),
            Some((expected, first_path)) if *expected != header => {
                return Err(Error::invalid(format!(
                    "{context}: CSV files have different header rows: '{}' has '{expected}', \
                     '{}' has '{header}'",
                    first_path.display(),
                    path.display()
                ))
                .with_hint("columns are read by position, so every file needs the same header"));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Returns the URL DataFusion lists a location by; a folder ends in `/`.
fn listing_url(
    location: &crate::storage::Location,
) -> datafusion::error::Result<ListingTableUrl> {
    let path = location.local_path();
    let mut text = path.to_string_lossy().into_owned();
    if path.is_dir() && !text.ends_with('/') {
        text.push('/');
    }
    ListingTableUrl::parse(text)
}

/// Reads the footer of every Parquet file and checks that all files have the
/// same columns with the same types.
///
/// DataFusion would merge files with different columns into one table whose
/// missing values are NULL, and its statistics then disagree with the data. A
/// footer with a wrong length makes its reader panic. Both are an invalid input
/// here (exit 2), named by file.
fn check_parquet_files(
    context: &str,
    files: &[(std::path::PathBuf, u64)],
) -> Result<(), Error> {
    let mut first: Option<(&std::path::Path, Vec<(String, DataType)>)> = None;
    for (path, size) in files {
        let columns = parquet_columns(path, *size).map_err(|problem| {
            Error::invalid(format!("{context}: '{}' {problem}", shown(path)))
        })?;
        let Some((first_path, expected)) = &first else {
            first = Some((path.as_path(), columns));
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
                "{context}: files have different columns: '{}' has [{}] where '{}' has [{}]",
                shown(path),
                describe(&columns, expected),
                shown(first_path),
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
fn parquet_columns(
    path: &std::path::Path,
    size: u64,
) -> Result<Vec<(String, DataType)>, String> {
    use std::io::{Read, Seek, SeekFrom};
    const TAIL: u64 = 8;
    if size < 12 {
        return Err(format!(
            "is not a Parquet file: it has {size} bytes, and the smallest has 12"
        ));
    }
    let mut file =
        std::fs::File::open(path).map_err(|error| format!("cannot be read: {error}"))?;
    let mut tail = [0u8; TAIL as usize];
    file.seek(SeekFrom::End(-(TAIL as i64)))
        .and_then(|_| file.read_exact(&mut tail))
        .map_err(|error| format!("cannot be read: {error}"))?;
    if &tail[4..] != b"PAR1" {
        return Err("is not a Parquet file: it does not end in 'PAR1'".to_string());
    }
    let footer = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if footer + 12 > size {
        return Err(format!(
            "is not a valid Parquet file: its footer length {footer} exceeds the file's \
             {size} bytes"
        ));
    }
    let metadata = parquet::file::metadata::ParquetMetaDataReader::new()
        .parse_and_finish(&file)
        .map_err(|error| format!("has an unreadable footer: {error}"))?;
    let file_metadata = metadata.file_metadata();
    let schema = parquet::arrow::parquet_to_arrow_schema(
        file_metadata.schema_descr(),
        file_metadata.key_value_metadata(),
    )
    .map_err(|error| format!("has a schema cra cannot read: {error}"))?;
    let mut columns: Vec<(String, DataType)> = schema
        .fields()
        .iter()
        .map(|field| (field.name().clone(), field.data_type().clone()))
        .collect();
    columns.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(columns)
}

async fn listing_table(
    ctx: &SessionContext,
    input: &InputPlan,
    format: Arc<dyn FileFormat>,
    extension: &str,
) -> datafusion::error::Result<ListingTable> {
    let state = ctx.state();
    let url = listing_url(&input.location)?;
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
pub fn find_unreadable_file(job: &JobPlan) -> Option<(String, String)> {
    for input in &job.inputs {
        if input.format != InputFormat::Parquet {
            continue;
        }
        let extension = if input.location.local_path().is_file() {
            ""
        } else {
            ".parquet"
        };
        let Ok(files) = input.location.list_files(extension) else {
            continue;
        };
        for (path, _) in files {
            if let Err(problem) = read_whole_parquet(&path) {
                return Some((shown(&path), problem));
            }
        }
    }
    None
}

fn read_whole_parquet(path: &std::path::Path) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|error| error.to_string())?;
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|builder| builder.build())
            .map_err(|error| error.to_string())?;
    for batch in reader {
        batch.map_err(|error| error.to_string())?;
    }
    Ok(())
}
