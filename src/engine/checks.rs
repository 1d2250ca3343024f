//! Data checks on staged outputs.
//!
//! A run writes every output to staging, then [`Engine::use_staged`] points each
//! output's table at its staged files, and [`Engine::run_checks`] queries them, so
//! a check reads exactly the rows that publishing would make visible. Each check is
//! two queries built with the DataFrame API: the number of failing rows, and a few
//! examples of them. [`Engine::plan_checks`] builds the same queries against the
//! stage's schema without running them, which is how `validate` and `run` find a
//! wrong column name or type before any data is read.

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type, SchemaRef, UInt64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::{Column, ParamValues};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::functions_aggregate::expr_fn::{count, sum};
use datafusion::logical_expr::{Expr, lit};
use datafusion::scalar::ScalarValue;
use serde::Serialize;

use super::Engine;
use super::sql::{self, Source};
use crate::error::{Error, ExitKind, closest};
use crate::job::spec::{ScalarSpec, Severity};
use crate::job::{CheckKind, CheckPlan, JobPlan, OutputPlan};

/// Examples of failing rows a check reports at most.
const EXAMPLES: usize = 5;

/// Column that contains a group's row count in the `unique` and `accepted_values`
/// queries; the leading underscores keep it apart from the table's columns.
const ROWS: &str = "__cra_rows";

/// The outcome of one check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// Table of the output checked.
    pub output: String,
    /// Check name.
    pub name: String,
    /// Kind key, such as `not_null`.
    pub kind: &'static str,
    /// Effect of a failure.
    pub severity: Severity,
    /// Whether the check passed.
    pub passed: bool,
    /// Rows that break the rule; for a failed `row_count`, the rows the table has.
    pub failing_rows: u64,
    /// Rows the table has, for `row_count` checks.
    pub rows: Option<u64>,
    /// The bounds of a `row_count` check, as text such as `min 1, max 10`.
    pub bounds: Option<String>,
    /// A few failing rows or values, as `column=value` text.
    pub examples: Vec<String>,
    /// Position of the check in the job file.
    pub position: String,
}

impl CheckResult {
    /// Describes a failure in one line.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "{}: output '{}': check '{}' failed",
            self.position, self.output, self.name
        );
        if let Some(rows) = self.rows {
            text.push_str(&format!(": the table has {rows} rows"));
            if let Some(bounds) = &self.bounds {
                text.push_str(&format!(", outside {bounds}"));
            }
        } else {
            let rows = if self.failing_rows == 1 {
                "row"
            } else {
                "rows"
            };
            text.push_str(&format!(": {} failing {rows}", self.failing_rows));
        }
        if !self.examples.is_empty() {
            text.push_str(&format!("; for example {}", self.examples.join("; ")));
        }
        text
    }
}

/// The two queries of a check.
struct CheckQueries {
    /// One row, one integer column: the failing rows.
    failing: DataFrame,
    /// Up to [`EXAMPLES`] failing rows or groups.
    examples: Option<DataFrame>,
}

impl Engine {
    /// Builds and plans every check of `output`, reading no data. Returns every
    /// problem found, each exit 2.
    pub async fn plan_checks(&self, job: &JobPlan, output: &OutputPlan) -> Vec<Error> {
        let mut problems = Vec::new();
        if output.checks.is_empty() {
            return problems;
        }
        // Checks are planned against an empty table of the output's schema: they
        // run on the staged files later, and planning each of them through every
        // stage view below the output would only repeat the optimiser's work.
        let name = output.table.as_str();
        let view = match self.ctx.table_provider(name).await {
            Ok(view) => view,
            Err(error) => {
                problems.push(Error::invalid(format!(
                    "{}: output '{}': {}",
                    job.file,
                    output.table,
                    sql::describe(&error).message
                )));
                return problems;
            }
        };
        let empty = datafusion::datasource::empty::EmptyTable::new(view.schema());
        self.ctx.deregister_table(name).ok();
        if let Err(error) = self.ctx.register_table(name, Arc::new(empty)) {
            problems.push(Error::run(format!(
                "internal error: cannot plan the checks of '{name}': {error}"
            )));
        }
        for check in &output.checks {
            let planned = match self.check_queries(job, output, check).await {
                Ok(queries) => self.plan_physical(job, output, check, &queries).await,
                Err(error) => Err(error),
            };
            if let Err(error) = planned {
                problems.push(error);
            }
        }
        self.ctx.deregister_table(name).ok();
        if let Err(error) = self.ctx.register_table(name, view) {
            problems.push(Error::run(format!(
                "internal error: cannot restore table '{name}': {error}"
            )));
        }
        problems
    }

    async fn plan_physical(
        &self,
        job: &JobPlan,
        output: &OutputPlan,
        check: &CheckPlan,
        queries: &CheckQueries,
    ) -> Result<(), Error> {
        for frame in std::iter::once(&queries.failing).chain(&queries.examples) {
            frame
                .clone()
                .create_physical_plan()
                .await
                .map_err(|error| {
                    check_error(job, output, check, &error, ExitKind::Invalid)
                })?;
        }
        Ok(())
    }

    /// Registers the files staged in `dir` under the output's table name, in place
    /// of the stage or input, so checks read what would be published.
    pub async fn use_staged(
        &self,
        output: &OutputPlan,
        schema: SchemaRef,
        dir: &crate::storage::Location,
    ) -> Result<(), Error> {
        let failed = |error: datafusion::error::DataFusionError| {
            Error::run(format!(
                "output '{}': cannot read the staged files in '{}': {}",
                output.table,
                dir.display(),
                sql::describe(&error).message
            ))
            .with_source(error)
        };
        let partition_cols: Vec<(String, DataType)> = output
            .partition_by
            .iter()
            .filter_map(|name| {
                schema
                    .field_with_name(name)
                    .ok()
                    .map(|field| (name.clone(), field.data_type().clone()))
            })
            .collect();
        let file_fields: Vec<_> = schema
            .fields()
            .iter()
            .filter(|field| !output.partition_by.contains(field.name()))
            .cloned()
            .collect();
        let file_schema = Arc::new(arrow::datatypes::Schema::new(file_fields));
        let url = ListingTableUrl::parse(dir.url(true)).map_err(failed)?;
        let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension(".parquet")
            .with_table_partition_cols(partition_cols);
        let config = ListingTableConfig::new(url)
            .with_listing_options(options)
            .with_schema(file_schema);
        let table = ListingTable::try_new(config).map_err(failed)?;
        self.ctx.deregister_table(output.table.as_str()).ok();
        self.ctx
            .register_table(output.table.as_str(), Arc::new(table))
            .map_err(failed)?;
        Ok(())
    }

    /// Runs the checks of `output` on its table. A failed check is a result, not an
    /// error; an error means a check could not be run.
    pub async fn run_checks(
        &self,
        job: &JobPlan,
        output: &OutputPlan,
    ) -> Result<Vec<CheckResult>, Error> {
        let mut results = Vec::new();
        for check in &output.checks {
            let failed = |error: datafusion::error::DataFusionError| {
                check_error(job, output, check, &error, ExitKind::Run).with_source(error)
            };
            let queries = self.check_queries(job, output, check).await?;
            let batches = super::collect_frame(queries.failing.clone())
                .await
                .map_err(failed)?;
            let counted = first_integer(&batches);
            let (passed, failing, rows) = match &check.kind {
                CheckKind::RowCount { min, max } => {
                    let passed = min.is_none_or(|min| counted >= min)
                        && max.is_none_or(|max| counted <= max);
                    (passed, if passed { 0 } else { counted }, Some(counted))
                }
                _ => (counted == 0, counted, None),
            };
            let examples = match (&queries.examples, passed) {
                (Some(frame), false) => {
                    let batches =
                        super::collect_frame(frame.clone()).await.map_err(failed)?;
                    format_rows(&batches)
                }
                _ => Vec::new(),
            };
            let result = CheckResult {
                output: output.table.clone(),
                name: check.name.clone(),
                kind: check.kind.key(),
                severity: check.severity,
                passed,
                failing_rows: failing,
                rows,
                bounds: match &check.kind {
                    CheckKind::RowCount { min, max } => Some(
                        [
                            min.map(|v| format!("min {v}")),
                            max.map(|v| format!("max {v}")),
                        ]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(", "),
                    ),
                    _ => None,
                },
                examples,
                position: check.position.clone(),
            };
            if result.passed {
                tracing::info!(output = %output.table, check = %check.name, "check passed");
            } else if check.severity == Severity::Warn {
                tracing::warn!(output = %output.table, check = %check.name,
                    failing_rows = failing, "{}", result.describe());
            }
            results.push(result);
        }
        Ok(results)
    }

    /// Builds the queries of one check on the output's current table.
    async fn check_queries(
        &self,
        job: &JobPlan,
        output: &OutputPlan,
        check: &CheckPlan,
    ) -> Result<CheckQueries, Error> {
        let planning = |error: datafusion::error::DataFusionError| {
            check_error(job, output, check, &error, ExitKind::Invalid)
        };
        if let CheckKind::Sql { sql, origin } = &check.kind {
            let source = Source {
                context: format!("output '{}': check '{}'", output.table, check.name),
                owner: "check",
                sql,
                origin,
            };
            let statement = sql::parse_source(job, &source)?;
            let plan = self
                .ctx
                .state()
                .statement_to_plan(statement)
                .await
                .and_then(|plan| {
                    plan.with_param_values(ParamValues::from(self.params.clone()))
                })
                .map_err(|error| {
                    sql::source_error(job, &source, &error, ExitKind::Invalid)
                })?;
            let violations = DataFrame::new(self.ctx.state(), plan);
            return Ok(CheckQueries {
                failing: violations
                    .clone()
                    .aggregate(vec![], vec![count(lit(1)).alias(ROWS)])
                    .map_err(planning)?,
                examples: Some(violations.limit(0, Some(EXAMPLES)).map_err(planning)?),
            });
        }

        let table = self
            .ctx
            .table(output.table.as_str())
            .await
            .map_err(planning)?;
        let names: Vec<String> = table
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let column = |name: &str| -> Result<Expr, Error> {
            if names.iter().any(|n| n == name) {
                return Ok(Expr::Column(Column::new_unqualified(name)));
            }
            let hint = match closest(name, names.iter().map(String::as_str)) {
                Some(near) => format!("did you mean '{near}'?"),
                None => format!("columns of '{}': {}", output.table, names.join(", ")),
            };
            Err(Error::invalid(format!(
                "{}: output '{}': check '{}': column '{name}' not found",
                check.position, output.table, check.name
            ))
            .with_hint(hint))
        };
        // Examples name the table's first column, usually its key, before the
        // checked ones.
        let shown = |checked: &[String]| -> Result<Vec<Expr>, Error> {
            let mut shown: Vec<String> = names.first().cloned().into_iter().collect();
            for name in checked {
                if !shown.contains(name) {
                    shown.push(name.clone());
                }
            }
            shown.iter().map(|name| column(name)).collect()
        };
        let column_type = |name: &str| -> Result<DataType, Error> {
            table
                .schema()
                .field_with_unqualified_name(name)
                .map(|f| f.data_type().clone())
                .map_err(planning)
        };
        let count_rows = |frame: DataFrame| {
            frame
                .aggregate(vec![], vec![count(lit(1)).alias(ROWS)])
                .map_err(planning)
        };

        let queries = match &check.kind {
            CheckKind::NotNull(columns) => {
                let mut predicate: Option<Expr> = None;
                for name in columns {
                    let is_null = column(name)?.is_null();
                    predicate = Some(match predicate {
                        Some(p) => p.or(is_null),
                        None => is_null,
                    });
                }
                let violations = table
                    .filter(predicate.unwrap_or_else(|| lit(false)))
                    .map_err(planning)?;
                CheckQueries {
                    failing: count_rows(violations.clone())?,
                    examples: Some(
                        violations
                            .select(shown(columns)?)
                            .and_then(|f| f.limit(0, Some(EXAMPLES)))
                            .map_err(planning)?,
                    ),
                }
            }
            CheckKind::Unique(columns) => {
                let keys: Vec<Expr> = columns
                    .iter()
                    .map(|name| column(name))
                    .collect::<Result<_, _>>()?;
                let repeated = table
                    .aggregate(keys.clone(), vec![count(lit(1)).alias(ROWS)])
                    .and_then(|f| {
                        f.filter(Expr::Column(Column::new_unqualified(ROWS)).gt(lit(1)))
                    })
                    .map_err(planning)?;
                let rows_column = Expr::Column(Column::new_unqualified(ROWS));
                let mut order = vec![rows_column.clone().sort(false, false)];
                order.extend(keys.iter().map(|key| key.clone().sort(true, false)));
                CheckQueries {
                    failing: repeated
                        .clone()
                        .aggregate(vec![], vec![sum(rows_column).alias(ROWS)])
                        .map_err(planning)?,
                    examples: Some(
                        repeated
                            .sort(order)
                            .and_then(|f| f.limit(0, Some(EXAMPLES)))
                            .map_err(planning)?,
                    ),
                }
            }
            CheckKind::AcceptedValues {
                column: name,
                values,
            } => {
                let target = column(name)?;
                let data_type = column_type(name)?;
                if let Some(problem) = value_type_problem(&data_type, values) {
                    return Err(Error::invalid(format!(
                        "{}: output '{}': check '{}': {problem}",
                        check.position, output.table, check.name
                    ))
                    .with_hint(
                        "quote values of a text column; YAML reads y, n, yes, no, on and \
                         off as booleans",
                    ));
                }
                let list: Vec<Expr> = values.iter().map(|v| lit(scalar(v))).collect();
                let violations = table
                    .filter(
                        target
                            .clone()
                            .is_not_null()
                            .and(target.clone().in_list(list, true)),
                    )
                    .map_err(planning)?;
                let rows_column = Expr::Column(Column::new_unqualified(ROWS));
                CheckQueries {
                    failing: count_rows(violations.clone())?,
                    examples: Some(
                        violations
                            .aggregate(
                                vec![target.clone()],
                                vec![count(lit(1)).alias(ROWS)],
                            )
                            .and_then(|f| {
                                f.sort(vec![
                                    rows_column.sort(false, false),
                                    target.sort(true, false),
                                ])
                            })
                            .and_then(|f| f.limit(0, Some(EXAMPLES)))
                            .map_err(planning)?,
                    ),
                }
            }
            CheckKind::RowCount { .. } => CheckQueries {
                failing: count_rows(table)?,
                examples: None,
            },
            CheckKind::Range {
                column: name,
                min,
                max,
            } => {
                let target = column(name)?;
                let data_type = column_type(name)?;
                if !data_type.is_numeric() {
                    return Err(Error::invalid(format!(
                        "{}: output '{}': check '{}': range needs a numeric column, and \
                         '{name}' is {data_type}",
                        check.position, output.table, check.name
                    )));
                }
                let mut outside: Vec<Expr> = Vec::new();
                if let Some(min) = min {
                    outside.push(target.clone().lt(lit(*min)));
                }
                if let Some(max) = max {
                    outside.push(target.clone().gt(lit(*max)));
                }
                if matches!(
                    data_type,
                    DataType::Float16 | DataType::Float32 | DataType::Float64
                ) {
                    outside.push(datafusion::functions::expr_fn::isnan(target.clone()));
                }
                let predicate = outside
                    .into_iter()
                    .reduce(Expr::or)
                    .unwrap_or_else(|| lit(false));
                let violations = table.filter(predicate).map_err(planning)?;
                CheckQueries {
                    failing: count_rows(violations.clone())?,
                    examples: Some(
                        violations
                            .select(shown(std::slice::from_ref(name))?)
                            .and_then(|f| f.limit(0, Some(EXAMPLES)))
                            .map_err(planning)?,
                    ),
                }
            }
            CheckKind::Sql { .. } => unreachable!("SQL checks returned above"),
        };
        Ok(queries)
    }
}

/// Turns a DataFusion error of a built-in check into a message at the check.
fn check_error(
    _job: &JobPlan,
    output: &OutputPlan,
    check: &CheckPlan,
    error: &datafusion::error::DataFusionError,
    kind: ExitKind,
) -> Error {
    let described = sql::describe(error);
    let message = format!(
        "{}: output '{}': check '{}': {}",
        check.position, output.table, check.name, described.message
    );
    let error = match kind {
        ExitKind::Invalid => Error::invalid(message),
        ExitKind::Check => Error::check(message),
        ExitKind::Run => Error::run(message),
    };
    match described.hint {
        Some(hint) => error.with_hint(hint),
        None => error,
    }
}

/// Returns why `values` cannot be compared with a column of `data_type`: text
/// columns take strings, numeric columns numbers, boolean columns booleans.
fn value_type_problem(data_type: &DataType, values: &[ScalarSpec]) -> Option<String> {
    let text = matches!(
        data_type,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Dictionary(_, _)
    );
    let (wanted, fits): (&str, fn(&ScalarSpec) -> bool) = if text {
        ("strings", |v| matches!(v, ScalarSpec::String(_)))
    } else if data_type.is_numeric() {
        ("numbers", |v| {
            matches!(v, ScalarSpec::Int(_) | ScalarSpec::Float(_))
        })
    } else if *data_type == DataType::Boolean {
        ("true or false", |v| matches!(v, ScalarSpec::Bool(_)))
    } else {
        return None;
    };
    let wrong: Vec<String> = values
        .iter()
        .filter(|v| !fits(v))
        .map(|v| match v {
            ScalarSpec::Bool(b) => b.to_string(),
            ScalarSpec::Int(i) => i.to_string(),
            ScalarSpec::Float(f) => f.to_string(),
            ScalarSpec::String(s) => format!("'{s}'"),
        })
        .collect();
    (!wrong.is_empty()).then(|| {
        format!(
            "the column is {data_type}, so its values must be {wanted}, not {}",
            wrong.join(", ")
        )
    })
}

/// Returns a check value as a literal.
fn scalar(value: &ScalarSpec) -> ScalarValue {
    match value {
        ScalarSpec::Bool(v) => ScalarValue::Boolean(Some(*v)),
        ScalarSpec::Int(v) => ScalarValue::Int64(Some(*v)),
        ScalarSpec::Float(v) => ScalarValue::Float64(Some(*v)),
        ScalarSpec::String(v) => ScalarValue::Utf8(Some(v.clone())),
    }
}

/// Returns the integer in the first column of the first row, 0 when there is none
/// (a sum over no groups is NULL).
fn first_integer(batches: &[RecordBatch]) -> u64 {
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
        return 0;
    };
    let column = batch.column(0);
    if column.is_null(0) {
        return 0;
    }
    if let Some(values) = column.as_primitive_opt::<Int64Type>() {
        return values.value(0).max(0) as u64;
    }
    if let Some(values) = column.as_primitive_opt::<UInt64Type>() {
        return values.value(0);
    }
    arrow::compute::cast(column, &DataType::Int64)
        .ok()
        .and_then(|cast| cast.as_primitive_opt::<Int64Type>().map(|v| v.value(0)))
        .map_or(0, |v| v.max(0) as u64)
}

/// Maximum characters of a value in an example.
const EXAMPLE_CHARS: usize = 60;

/// Returns a value fit for a one-line message: control characters escaped, so
/// data cannot start a new line or colour the terminal, and long values cut.
fn printable(value: &str) -> String {
    let mut out = String::new();
    for (index, c) in value.chars().enumerate() {
        if index == EXAMPLE_CHARS {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Formats rows as `column=value, ...`, the row-count column as `(N rows)`.
fn format_rows(batches: &[RecordBatch]) -> Vec<String> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let schema = batch.schema();
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|column| ArrayFormatter::try_new(column.as_ref(), &options))
            .collect();
        for row in 0..batch.num_rows() {
            let mut parts = Vec::new();
            let mut count = None;
            for (field, formatter) in schema.fields().iter().zip(&formatters) {
                let value = match formatter {
                    Ok(formatter) => printable(&formatter.value(row).to_string()),
                    Err(_) => "?".to_string(),
                };
                if field.name() == ROWS {
                    count = Some(value);
                } else {
                    parts.push(format!("{}={value}", field.name()));
                }
            }
            let mut text = parts.join(", ");
            if let Some(count) = count {
                let rows = if count == "1" { "row" } else { "rows" };
                text.push_str(&format!(" ({count} {rows})"));
            }
            rows.push(text);
            if rows.len() >= EXAMPLES {
                return rows;
            }
        }
    }
    rows
}
