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

    if input.format == InputFormat::Csv {
        check_csv_headers(&context, &files)?;
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
