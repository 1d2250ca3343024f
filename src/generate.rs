//! `cra generate`: synthetic transactions drawn from the BG/NBD purchase process
//! with Gamma-Gamma spend, in the columns of the CDNOW transactions.
//!
//! Every customer makes a first purchase on a day of the cohort window. Repeat
//! purchases follow at exponential waiting times of rate λ ~ Gamma(r, alpha) per
//! week. After each repeat purchase the customer stops with probability
//! p ~ Beta(a, b), as the BG/NBD model assumes. Each order's amount is Gamma(p, ν) with ν ~
//! Gamma(q, v) per customer, as the Gamma-Gamma model assumes. Customers are
//! drawn in blocks, each from its own random stream of the seed, so the data does
//! not depend on the number of files or threads.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, Date32Builder, Decimal128Builder, Int32Builder, Int64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution, Exp, Gamma};
use serde::Serialize;

use crate::error::Error;

/// Customers drawn from one random stream.
const BLOCK: u64 = 8192;
/// Rows per Parquet row group, as in cra's outputs.
const ROW_GROUP: usize = 131_072;
/// Name of the file that records how the data was drawn.
pub const METADATA: &str = "_generator.json";

/// The maximum customers one run draws: ten billion, about 28 billion orders, far
/// more than a disk of this decade can store as Parquet.
const MAX_CUSTOMERS: u64 = 10_000_000_000;

/// Parameters of the generating process.
#[derive(Debug, Clone, Serialize)]
pub struct Process {
    /// BG/NBD shape of the purchase rate's Gamma distribution.
    pub r: f64,
    /// BG/NBD rate of the purchase rate's Gamma distribution, per week.
    pub alpha: f64,
    /// BG/NBD first shape of the dropout probability's Beta distribution.
    pub a: f64,
    /// BG/NBD second shape of the dropout probability's Beta distribution.
    pub b: f64,
    /// Gamma-Gamma shape of each order's amount.
    pub p: f64,
    /// Gamma-Gamma shape of the customer's spend rate ν.
    pub q: f64,
    /// Gamma-Gamma rate of ν.
    pub v: f64,
    /// First day of the cohort window.
    pub first_day: NaiveDate,
    /// Days in the cohort window, during which first purchases fall.
    pub cohort_days: u32,
    /// Last day of observation; no order falls after it.
    pub last_day: NaiveDate,
}

impl Default for Process {
    /// The BG/NBD and Gamma-Gamma fits of the CDNOW cohort, on its calendar:
    /// first purchases in the first 12 weeks of 1997, observation to 1998-06-30.
    fn default() -> Self {
        Self {
            r: 0.243,
            alpha: 4.414,
            a: 0.793,
            b: 2.426,
            p: 6.25,
            q: 3.74,
            v: 15.44,
            first_day: NaiveDate::from_ymd_opt(1997, 1, 1).unwrap_or_default(),
            cohort_days: 84,
            last_day: NaiveDate::from_ymd_opt(1998, 6, 30).unwrap_or_default(),
        }
    }
}

/// The contents of [`METADATA`], written by `cra generate`.
#[derive(Debug, Clone, Serialize)]
pub struct Metadata {
    /// cra version that drew the data.
    pub cra_version: String,
    /// Seed of the random streams.
    pub seed: u64,
    /// Customers drawn.
    pub customers: u64,
    /// Parquet files written.
    pub files: usize,
    /// Orders written.
    pub rows: u64,
    /// Time unit of the BG/NBD rates.
    pub time_unit: &'static str,
    /// The generating process.
    pub process: Process,
}

/// Returns the schema of the CDNOW transactions.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Int64, false),
        Field::new("order_date", DataType::Date32, false),
        Field::new("cds", DataType::Int32, false),
        Field::new("amount", DataType::Decimal128(10, 2), false),
    ]))
}

/// Random draws of one customer's process.
struct Draws {
    rate: Gamma<f64>,
    dropout: Beta<f64>,
    spend_rate: Gamma<f64>,
    p: f64,
}

impl Draws {
    fn new(process: &Process) -> Result<Self, Error> {
        let invalid = |what: &str| Error::invalid(format!("generator: invalid {what}"));
        Ok(Self {
            rate: Gamma::new(process.r, 1.0 / process.alpha)
                .map_err(|_| invalid("r or alpha"))?,
            dropout: Beta::new(process.a, process.b).map_err(|_| invalid("a or b"))?,
            spend_rate: Gamma::new(process.q, 1.0 / process.v)
                .map_err(|_| invalid("q or v"))?,
            p: process.p,
        })
    }
}

/// Column builders of one batch.
struct Columns {
    customer_id: Int64Builder,
    order_date: Date32Builder,
    cds: Int32Builder,
    amount: Decimal128Builder,
}

impl Columns {
    fn new() -> Self {
        Self {
            customer_id: Int64Builder::new(),
            order_date: Date32Builder::new(),
            cds: Int32Builder::new(),
            amount: Decimal128Builder::new(),
        }
    }

    fn len(&self) -> usize {
        self.customer_id.len()
    }

    fn push(&mut self, customer: i64, day: i32, amount: f64) {
        // Cents, at least one, within DECIMAL(10, 2).
        let cents = (amount * 100.0).round().clamp(1.0, 9_999_999_999.0) as i128;
        self.customer_id.append_value(customer);
        self.order_date.append_value(day);
        // About one CD per 15 dollars, as in the CDNOW orders.
        self.cds
            .append_value((1 + cents / 1500).min(i32::MAX as i128) as i32);
        self.amount.append_value(cents);
    }

    fn finish(&mut self) -> Result<RecordBatch, Error> {
        let amount = self
            .amount
            .finish()
            .with_precision_and_scale(10, 2)
            .map_err(|error| Error::run(format!("internal error: {error}")))?;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.customer_id.finish()),
            Arc::new(self.order_date.finish()),
            Arc::new(self.cds.finish()),
            Arc::new(amount),
        ];
        RecordBatch::try_new(schema(), columns)
            .map_err(|error| Error::run(format!("internal error: {error}")))
    }
}

/// Draws the orders of customers `first..first + count` (ids from 1) of block
/// `block` into `columns`.
fn draw_block(
    process: &Process,
    draws: &Draws,
    seed: u64,
    block: u64,
    first: u64,
    count: u64,
    columns: &mut Columns,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(block);
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let first_day = (process.first_day - epoch).num_days();
    let last_day = (process.last_day - epoch).num_days();
    for offset in 0..count {
        let customer = (first + offset + 1) as i64;
        let rate = draws.rate.sample(&mut rng).max(f64::MIN_POSITIVE);
        let dropout = draws.dropout.sample(&mut rng);
        let spend_rate = draws.spend_rate.sample(&mut rng).max(f64::MIN_POSITIVE);
        let amount = Gamma::new(draws.p, 1.0 / spend_rate).ok();
        let start =
            first_day + rng.random_range(0..i64::from(process.cohort_days.max(1)));
        let horizon_weeks = (last_day - start) as f64 / 7.0;
        let spend = |rng: &mut ChaCha8Rng| amount.map_or(0.0, |gamma| gamma.sample(rng));

        columns.push(customer, start as i32, spend(&mut rng));
        let Ok(wait) = Exp::new(rate) else {
            continue;
        };
        let mut weeks = 0.0;
        let mut previous = start;
        loop {
            weeks += wait.sample(&mut rng);
            if weeks > horizon_weeks {
                break;
            }
            // Orders carry dates, and orders of one day count as one purchase,
            // so a purchase on the day of the one before moves to the next day.
            let day = (start + (weeks * 7.0).round() as i64).max(previous + 1);
            if day > last_day {
                break;
            }
            previous = day;
            columns.push(customer, day as i32, spend(&mut rng));
            if rng.random::<f64>() < dropout {
                break;
            }
        }
    }
}

/// Writes customers of blocks `blocks` into one Parquet file; returns its rows.
fn write_file(
    path: &Path,
    process: &Process,
    draws: &Draws,
    seed: u64,
    customers: u64,
    blocks: std::ops::Range<u64>,
) -> Result<u64, Error> {
    let failed = |error: &dyn std::fmt::Display| {
        Error::run(format!("cannot write '{}': {error}", path.display()))
    };
    let file = std::fs::File::create(path).map_err(|error| failed(&error))?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
        .set_max_row_group_row_count(Some(ROW_GROUP))
        .build();
    let mut writer = ArrowWriter::try_new(file, schema(), Some(properties))
        .map_err(|error| failed(&error))?;
    let mut columns = Columns::new();
    let mut rows = 0;
    for block in blocks {
        let first = block * BLOCK;
        let count = BLOCK.min(customers - first);
        draw_block(process, draws, seed, block, first, count, &mut columns);
        if columns.len() >= ROW_GROUP {
            let batch = columns.finish()?;
            rows += batch.num_rows() as u64;
            writer.write(&batch).map_err(|error| failed(&error))?;
        }
    }
    let batch = columns.finish()?;
    rows += batch.num_rows() as u64;
    writer.write(&batch).map_err(|error| failed(&error))?;
    writer.close().map_err(|error| failed(&error))?;
    Ok(rows)
}

/// Draws `customers` customers with `seed` and writes them as `files` Parquet
/// files and [`METADATA`] into `out`, which must not exist yet or must hold an
/// earlier `cra generate` output (or `force` is set).
///
/// The files go to a staging folder beside `out` first, and replace `out` only
/// when all are complete, so a failed run leaves `out` as it was.
pub fn generate(
    out: &Path,
    customers: u64,
    files: usize,
    seed: u64,
    force: bool,
) -> Result<Metadata, Error> {
    if !(1..=MAX_CUSTOMERS).contains(&customers) {
        return Err(Error::invalid(format!(
            "--customers must be from 1 to {MAX_CUSTOMERS}"
        )));
    }
    let blocks = customers.div_ceil(BLOCK);
    if files == 0 || files as u64 > blocks {
        return Err(Error::invalid(format!(
            "--files must be from 1 to {blocks} for {customers} customers"
        ))
        .with_hint(format!("each file holds whole blocks of {BLOCK} customers")));
    }
    check_replaceable(out, force)?;
    let process = Process::default();
    let draws = Draws::new(&process)?;

    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|error| {
        Error::run(format!(
            "cannot create folder '{}': {error}",
            parent.display()
        ))
    })?;
    let name = out
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .ok_or_else(|| {
            Error::invalid(format!("--out '{}' names no folder", out.display()))
        })?;
    remove_abandoned_staging(parent, &name);
    let staging = parent.join(format!(".cra-generate.{name}.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|error| {
        Error::run(format!(
            "cannot create folder '{}': {error}",
            staging.display()
        ))
    })?;
    let result = write_all(&staging, &process, &draws, seed, customers, files, blocks)
        .and_then(|rows| {
            let metadata = Metadata {
                cra_version: crate::VERSION.to_string(),
                seed,
                customers,
                files,
                rows,
                time_unit: "week",
                process,
            };
            let mut json = serde_json::to_vec_pretty(&metadata)
                .map_err(|error| Error::run(format!("internal error: {error}")))?;
            json.push(b'\n');
            std::fs::write(staging.join(METADATA), json).map_err(|error| {
                Error::run(format!("cannot write '{}': {error}", staging.display()))
            })?;
            swap_in(&staging, out)?;
            Ok(metadata)
        });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

fn write_all(
    dir: &Path,
    process: &Process,
    draws: &Draws,
    seed: u64,
    customers: u64,
    files: usize,
    blocks: u64,
) -> Result<u64, Error> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Result<u64, Error>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut rows = 0;
                    loop {
                        let file = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        if file >= files {
                            return Ok(rows);
                        }
                        let range = (file as u64 * blocks / files as u64)
                            ..((file as u64 + 1) * blocks / files as u64);
                        let path = dir.join(format!("part-{file:05}.parquet"));
                        rows +=
                            write_file(&path, process, draws, seed, customers, range)?;
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| {
                worker.join().unwrap_or_else(|_| {
                    Err(Error::run("internal error: a writer thread panicked"))
                })
            })
            .collect()
    });
    let mut rows = 0;
    for result in results {
        rows += result?;
    }
    Ok(rows)
}

/// Removes the staging folders of earlier runs for `name` whose process is gone,
/// such as a run killed by a signal.
fn remove_abandoned_staging(parent: &Path, name: &str) {
    let prefix = format!(".cra-generate.{name}.");
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file_name.strip_prefix(&prefix) else {
            continue;
        };
        let pid = rest.strip_suffix(".previous").unwrap_or(rest);
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let running = Path::new("/proc").join(pid.to_string()).exists();
        if pid != std::process::id() && !running {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Returns whether every entry of `dir` is a file that `cra generate` writes.
fn holds_only_generated_files(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().all(|entry| {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_file = entry.file_type().is_ok_and(|kind| kind.is_file());
        let part = name
            .strip_prefix("part-")
            .and_then(|rest| rest.strip_suffix(".parquet"))
            .is_some_and(|digits| digits.chars().all(|c| c.is_ascii_digit()));
        is_file && (name == METADATA || part)
    })
}

/// Accepts a missing or empty `out`, or one that contains only what an earlier
/// `cra generate` wrote; anything else needs `force`.
fn check_replaceable(out: &Path, force: bool) -> Result<(), Error> {
    let Ok(metadata) = std::fs::symlink_metadata(out) else {
        return Ok(());
    };
    if !metadata.is_dir() {
        return Err(Error::invalid(format!(
            "--out '{}' exists and is not a folder",
            out.display()
        )));
    }
    let empty = std::fs::read_dir(out).is_ok_and(|mut entries| entries.next().is_none());
    if empty || force || (out.join(METADATA).is_file() && holds_only_generated_files(out))
    {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "--out '{}' exists and contains files that cra generate did not write",
        out.display()
    ))
    .with_hint("pass --force to replace its contents, or choose another folder"))
}

/// Moves `staging` into the place of `out`, keeping the old `out` until then.
fn swap_in(staging: &Path, out: &Path) -> Result<(), Error> {
    let previous: PathBuf = staging.with_extension("previous");
    let had_out = out.exists();
    if had_out {
        std::fs::rename(out, &previous).map_err(|error| {
            Error::run(format!("cannot move '{}' aside: {error}", out.display()))
        })?;
    }
    if let Err(error) = std::fs::rename(staging, out) {
        if had_out {
            let _ = std::fs::rename(&previous, out);
        }
        return Err(Error::run(format!(
            "cannot move the new data to '{}': {error}",
            out.display()
        )));
    }
    if had_out {
        let _ = std::fs::remove_dir_all(&previous);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow::array::{AsArray, Date32Array, Decimal128Array, Int64Array};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;
    use crate::functions::fit::{fit_gamma_gamma, fit_purchase};
    use crate::functions::models::{Customer, PurchaseKind};

    /// Per customer: distinct purchase days with each day's total in dollars.
    fn purchase_days(dir: &Path) -> BTreeMap<i64, BTreeMap<i32, f64>> {
        let mut customers: BTreeMap<i64, BTreeMap<i32, f64>> = BTreeMap::new();
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "parquet"))
            .collect();
        files.sort();
        for path in files {
            let file = std::fs::File::open(path).unwrap();
            let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .build()
                .unwrap();
            for batch in reader {
                let batch = batch.unwrap();
                let ids: &Int64Array = batch.column(0).as_primitive();
                let days: &Date32Array = batch.column(1).as_primitive();
                let amounts: &Decimal128Array = batch.column(3).as_primitive();
                for row in 0..batch.num_rows() {
                    let total = customers
                        .entry(ids.value(row))
                        .or_default()
                        .entry(days.value(row))
                        .or_default();
                    *total += amounts.value(row) as f64 / 100.0;
                }
            }
        }
        customers
    }

    /// Returns the standard errors of the log-parameters at `theta`, from a
    /// central-difference Hessian of the total negative log-likelihood `nll`.
    // Matrix code reads best with indices.
    #[allow(clippy::needless_range_loop)]
    fn log_standard_errors(nll: impl Fn(&[f64]) -> f64, theta: &[f64]) -> Vec<f64> {
        let n = theta.len();
        let h = 1e-4;
        let at = |steps: &[(usize, f64)]| {
            let mut point = theta.to_vec();
            for &(index, step) in steps {
                point[index] += step;
            }
            nll(&point)
        };
        let mut hessian = vec![vec![0.0; n]; n];
        for i in 0..n {
            for j in 0..n {
                hessian[i][j] = (at(&[(i, h), (j, h)])
                    - at(&[(i, h), (j, -h)])
                    - at(&[(i, -h), (j, h)])
                    + at(&[(i, -h), (j, -h)]))
                    / (4.0 * h * h);
            }
        }
        // Invert by Gauss-Jordan elimination; the Hessian is small and positive
        // definite at a maximum of the likelihood.
        let mut inverse: Vec<Vec<f64>> = (0..n)
            .map(|i| (0..n).map(|j| f64::from(u8::from(i == j))).collect())
            .collect();
        for column in 0..n {
            let pivot = hessian[column][column];
            for k in 0..n {
                hessian[column][k] /= pivot;
                inverse[column][k] /= pivot;
            }
            for row in 0..n {
                if row != column {
                    let factor = hessian[row][column];
                    for k in 0..n {
                        hessian[row][k] -= factor * hessian[column][k];
                        inverse[row][k] -= factor * inverse[column][k];
                    }
                }
            }
        }
        (0..n).map(|i| inverse[i][i].sqrt()).collect()
    }

    /// A distinct row of a fit's arguments and the customers it stands for.
    type WeightedRow = ([f64; 3], f64);

    /// Returns the distinct (frequency, recency, t) rows and the repeat buyers'
    /// distinct (frequency, mean repeat spend) rows of generated data, with counts.
    fn fit_rows(out: &Path, as_of: i32) -> (Vec<WeightedRow>, Vec<WeightedRow>) {
        let customers = purchase_days(out);
        let mut purchase_rows: BTreeMap<[u64; 3], f64> = BTreeMap::new();
        let mut spend_rows: BTreeMap<[u64; 2], f64> = BTreeMap::new();
        for days in customers.values() {
            let first = *days.keys().next().unwrap();
            let last = *days.keys().next_back().unwrap();
            let frequency = (days.len() - 1) as f64;
            let recency = f64::from(last - first) / 7.0;
            let t = f64::from(as_of - first) / 7.0;
            *purchase_rows
                .entry([frequency.to_bits(), recency.to_bits(), t.to_bits()])
                .or_default() += 1.0;
            if days.len() > 1 {
                let repeat: f64 = days.values().skip(1).sum::<f64>() / frequency;
                *spend_rows
                    .entry([frequency.to_bits(), repeat.to_bits()])
                    .or_default() += 1.0;
            }
        }
        let purchase = purchase_rows
            .iter()
            .map(|(key, weight)| (key.map(f64::from_bits), *weight))
            .collect();
        let spend = spend_rows
            .iter()
            .map(|([x, m], weight)| {
                ([f64::from_bits(*x), f64::from_bits(*m), 0.0], *weight)
            })
            .collect();
        (purchase, spend)
    }

    #[test]
    fn gamma_gamma_converges_on_many_customers() {
        // About 40,000 distinct repeat buyers. A likelihood that summed large
        // terms over all rows before subtracting them stalled here short of the
        // gradient tolerance.
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("generated");
        generate(&out, 100_000, 1, 1, false).unwrap();
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        let as_of = (Process::default().last_day - epoch).num_days() as i32;
        let (_, spend) = fit_rows(&out, as_of);
        let fitted = fit_gamma_gamma(&spend);
        assert!(fitted.is_ok(), "{:?}", fitted.err());

        // Near the maximum, the fast likelihood must agree with the per-customer
        // formula to the digits that the line search compares. Summing the large
        // terms over all rows first was off by 1.3e-14 here.
        let rows = crate::functions::likelihood::SpendRows::new(&spend);
        let (p, q, v): (f64, f64, f64) = (6.0, 3.8, 16.0);
        let theta = [p.ln(), q.ln(), v.ln()];
        let model = crate::functions::models::gamma_gamma::GammaGamma::new(p, q, v);
        let total: f64 = spend.iter().map(|row| row.1).sum();
        let exact = -spend
            .iter()
            .map(|([x, m, _], weight)| weight * model.ln_likelihood(*x, *m).unwrap())
            .sum::<f64>()
            / total;
        let fast = crate::functions::likelihood::gamma_gamma(&rows, &theta).0;
        assert!(
            (fast - exact).abs() <= 5e-15 * exact.abs(),
            "{fast} against {exact}"
        );
    }

    #[test]
    fn fits_recover_generating_parameters() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("generated");
        let metadata = generate(&out, 20_000, 3, 7, false).unwrap();
        assert_eq!(metadata.customers, 20_000);
        assert!(out.join(METADATA).is_file());
        let process = Process::default();
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        let as_of = (process.last_day - epoch).num_days() as i32;

        let (purchase, spend) = fit_rows(&out, as_of);
        assert_eq!(purchase.iter().map(|row| row.1).sum::<f64>(), 20_000.0);
        let fitted = fit_purchase(PurchaseKind::BgNbd, &purchase).unwrap();
        let truth = [process.r, process.alpha, process.a, process.b];
        let customers_rows: Vec<(Customer, f64)> = purchase
            .iter()
            .map(|([x, tx, t], weight)| {
                (Customer::checked(*x, *tx, *t).unwrap(), *weight)
            })
            .collect();
        let grouped = crate::functions::likelihood::GroupedRows::new(&customers_rows);
        let total: f64 = purchase.iter().map(|row| row.1).sum();
        let log_fitted: Vec<f64> = fitted.params.iter().map(|p| p.ln()).collect();
        let errors = log_standard_errors(
            |theta| crate::functions::likelihood::bgnbd(&grouped, theta).0 * total,
            &log_fitted,
        );
        for ((name, value), (fit, error)) in ["r", "alpha", "a", "b"]
            .iter()
            .zip(truth)
            .zip(log_fitted.iter().zip(&errors))
        {
            let z = (fit - value.ln()) / error;
            eprintln!(
                "BG/NBD {name}: fit {:.4}, true {value}, log error {error:.4}, z {z:.2}",
                fit.exp()
            );
            assert!(
                z.abs() < 4.0,
                "BG/NBD {name}: fit {} against {value}, {z:.2} standard errors",
                fit.exp()
            );
        }

        let fitted = fit_gamma_gamma(&spend).unwrap();
        let log_fitted: Vec<f64> = fitted.params.iter().map(|p| p.ln()).collect();
        let errors = log_standard_errors(
            |theta| {
                let model = crate::functions::models::gamma_gamma::GammaGamma::new(
                    theta[0].exp(),
                    theta[1].exp(),
                    theta[2].exp(),
                );
                -spend
                    .iter()
                    .map(|([x, m, _], weight)| {
                        weight * model.ln_likelihood(*x, *m).unwrap()
                    })
                    .sum::<f64>()
            },
            &log_fitted,
        );
        for ((name, value), (fit, error)) in ["p", "q", "v"]
            .iter()
            .zip([process.p, process.q, process.v])
            .zip(log_fitted.iter().zip(&errors))
        {
            let z = (fit - value.ln()) / error;
            eprintln!(
                "Gamma-Gamma {name}: fit {:.4}, true {value}, log error {error:.4}, z {z:.2}",
                fit.exp()
            );
            assert!(
                z.abs() < 4.0,
                "Gamma-Gamma {name}: fit {} against {value}, {z:.2} standard errors",
                fit.exp()
            );
        }
    }

    #[test]
    fn same_seed_gives_same_data_whatever_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let one = dir.path().join("one");
        let three = dir.path().join("three");
        generate(&one, 20_000, 1, 11, false).unwrap();
        generate(&three, 20_000, 3, 11, false).unwrap();
        assert_eq!(purchase_days(&one), purchase_days(&three));
        let other = dir.path().join("other");
        generate(&other, 20_000, 1, 12, false).unwrap();
        assert_ne!(purchase_days(&one), purchase_days(&other));
    }
}
