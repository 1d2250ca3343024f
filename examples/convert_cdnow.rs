//! Converts the CDNOW text files in `data/cdnow/raw/` to the Parquet files that
//! cra's jobs and tests read.
//!
//! Run from the repository root: `cargo run --example convert_cdnow`. The output is
//! deterministic, so rerunning it leaves the committed files' data unchanged.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Decimal128Array, Int32Array, Int64Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

/// One transaction line of either file.
struct Row {
    customer_id: i64,
    sample_id: Option<i32>,
    order_date: i32,
    cds: i32,
    cents: i128,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let raw = Path::new("data/cdnow/raw");
    let master = read_rows(&raw.join("CDNOW_master.txt"), true, false)?;
    let sample = read_rows(&raw.join("CDNOW_sample.txt"), false, true)?;
    write(&master, false, Path::new("data/cdnow/transactions.parquet"))?;
    write(
        &sample,
        true,
        Path::new("data/cdnow/sample_transactions.parquet"),
    )?;
    println!(
        "wrote {} master and {} sample transactions",
        master.len(),
        sample.len()
    );
    Ok(())
}

/// Reads a whitespace-separated file with CRLF line ends.
///
/// Master columns: customer id, date (YYYYMMDD), number of CDs, dollar value.
/// Sample columns: master customer id, sample id, then the same three.
fn read_rows(
    path: &Path,
    has_header: bool,
    has_sample_id: bool,
) -> Result<Vec<Row>, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path)?;
    let mut rows = Vec::new();
    for (index, line) in text.lines().enumerate().skip(usize::from(has_header)) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        let expected = if has_sample_id { 5 } else { 4 };
        if fields.len() != expected {
            return Err(format!(
                "{}:{}: expected {expected} fields",
                path.display(),
                index + 1
            )
            .into());
        }
        let offset = usize::from(has_sample_id);
        rows.push(Row {
            customer_id: fields[0].parse()?,
            sample_id: if has_sample_id {
                Some(fields[1].parse()?)
            } else {
                None
            },
            order_date: days_since_epoch(fields[1 + offset])?,
            cds: fields[2 + offset].parse()?,
            cents: parse_cents(fields[3 + offset])?,
        });
    }
    Ok(rows)
}

fn days_since_epoch(text: &str) -> Result<i32, Box<dyn std::error::Error>> {
    let date = NaiveDate::parse_from_str(text, "%Y%m%d")?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).ok_or("invalid epoch")?;
    Ok((date - epoch).num_days() as i32)
}

/// Parses a dollar value with at most two decimals into whole cents, exactly.
fn parse_cents(text: &str) -> Result<i128, Box<dyn std::error::Error>> {
    let (dollars, cents) = text.split_once('.').unwrap_or((text, "0"));
    if cents.len() > 2 {
        return Err(format!("'{text}' has more than two decimals").into());
    }
    let cents = format!("{cents:0<2}");
    Ok(dollars.parse::<i128>()? * 100 + cents.parse::<i128>()?)
}

fn write(
    rows: &[Row],
    with_sample_id: bool,
    path: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut fields = vec![Field::new("customer_id", DataType::Int64, false)];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from_iter_values(
        rows.iter().map(|r| r.customer_id),
    ))];
    if with_sample_id {
        fields.push(Field::new("sample_id", DataType::Int32, false));
        let ids = rows.iter().map(|r| r.sample_id.unwrap_or_default());
        columns.push(Arc::new(Int32Array::from_iter_values(ids)));
    }
    fields.push(Field::new("order_date", DataType::Date32, false));
    columns.push(Arc::new(Date32Array::from_iter_values(
        rows.iter().map(|r| r.order_date),
    )));
    fields.push(Field::new("cds", DataType::Int32, false));
    columns.push(Arc::new(Int32Array::from_iter_values(
        rows.iter().map(|r| r.cds),
    )));
    fields.push(Field::new("amount", DataType::Decimal128(10, 2), false));
    let amounts = Decimal128Array::from_iter_values(rows.iter().map(|r| r.cents))
        .with_precision_and_scale(10, 2)?;
    columns.push(Arc::new(amounts));

    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(9)?))
        .set_created_by("cra convert_cdnow".to_string())
        .build();
    let mut writer = ArrowWriter::try_new(File::create(path)?, schema, Some(properties))?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(())
}
