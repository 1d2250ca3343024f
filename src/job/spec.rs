//! Serde types that mirror the job file exactly.
//!
//! Every struct rejects unknown keys. Values whose position matters for error
//! messages are wrapped in [`Spanned`], so later checks can point at a line.

use indexmap::IndexMap;
use serde::Deserialize;
use serde_saphyr::Spanned;

/// A whole job file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Job name, used in logs, staging folder names and manifests.
    pub name: Spanned<String>,
    /// Free text shown by `cra explain` and recorded in manifests.
    #[serde(default)]
    pub description: Option<String>,
    /// Typed parameters, bound to `$name` placeholders in stage SQL.
    #[serde(default)]
    pub params: IndexMap<String, Spanned<ParamSpec>>,
    /// Tables read from files, by table name.
    pub inputs: IndexMap<String, Spanned<InputSpec>>,
    /// SQL stages, run in order.
    #[serde(default)]
    pub stages: Vec<Spanned<StageSpec>>,
    /// Tables written as Parquet.
    pub outputs: Vec<Spanned<OutputSpec>>,
    /// How to reach the object stores that inputs and outputs name.
    #[serde(default)]
    pub storage: Option<StorageSpec>,
    /// Execution settings of the DataFusion session.
    #[serde(default)]
    pub engine: Option<EngineSpec>,
}

/// The `engine:` section; command-line flags of the same names override it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSpec {
    /// Memory the run may use for sorts, aggregations and joins, such as `4G`.
    #[serde(default)]
    pub memory_limit: Option<Spanned<ScalarSpec>>,
    /// Folder for spill files, relative to the job file's folder.
    #[serde(default)]
    pub spill_dir: Option<Spanned<String>>,
    /// Partitions DataFusion splits each plan into.
    #[serde(default)]
    pub target_partitions: Option<Spanned<ScalarSpec>>,
    /// Rows per record batch.
    #[serde(default)]
    pub batch_size: Option<Spanned<ScalarSpec>>,
}

/// The `storage:` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSpec {
    /// Settings of every `s3://` bucket, with overrides per bucket.
    #[serde(default)]
    pub s3: Option<Spanned<S3Spec>>,
}

/// Settings of an S3-compatible store. Every value may be, or contain, a
/// `${env:NAME}` reference; credentials must be one.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Spec {
    /// Endpoint URL, such as `http://127.0.0.1:3900`.
    #[serde(default)]
    pub endpoint: Option<Spanned<String>>,
    /// Region the client signs requests for; must match the store's.
    #[serde(default)]
    pub region: Option<Spanned<String>>,
    /// Access key id.
    #[serde(default)]
    pub access_key_id: Option<Spanned<String>>,
    /// Secret access key.
    #[serde(default)]
    pub secret_access_key: Option<Spanned<String>>,
    /// Session token of temporary credentials.
    #[serde(default)]
    pub session_token: Option<Spanned<String>>,
    /// `true` for `bucket.endpoint` addresses, `false` (the default) for
    /// `endpoint/bucket`.
    #[serde(default)]
    pub virtual_hosted_style: Option<Spanned<ScalarSpec>>,
    /// `true` to allow an `http://` endpoint.
    #[serde(default)]
    pub allow_http: Option<Spanned<ScalarSpec>>,
    /// `true` to send unsigned requests, for public buckets.
    #[serde(default)]
    pub skip_signature: Option<Spanned<ScalarSpec>>,
    /// Retries of a failed request.
    #[serde(default)]
    pub retries: Option<Spanned<ScalarSpec>>,
    /// Time after which a failed request is no longer retried, such as `60s`.
    #[serde(default)]
    pub retry_timeout: Option<Spanned<ScalarSpec>>,
    /// Time allowed to open a connection, such as `5s`.
    #[serde(default)]
    pub connect_timeout: Option<Spanned<ScalarSpec>>,
    /// Time allowed for one request, such as `60s`.
    #[serde(default)]
    pub timeout: Option<Spanned<ScalarSpec>>,
    /// Settings for one bucket, by bucket name, over those above.
    #[serde(default)]
    pub buckets: IndexMap<String, Spanned<S3Spec>>,
}

/// One parameter: `{type: date, default: 1998-06-30}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    /// Declared type; `--param` values and the default are parsed by it.
    #[serde(rename = "type")]
    pub param_type: ParamType,
    /// Value used when no `--param` is given; without one the parameter is required.
    #[serde(default)]
    pub default: Option<Spanned<ScalarSpec>>,
    /// Free text shown in docs and `cra explain`.
    #[serde(default)]
    pub description: Option<String>,
}

/// Types a parameter may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    /// UTF-8 text, bound as `Utf8`.
    String,
    /// 64-bit signed integer, bound as `Int64`.
    Int,
    /// 64-bit float, bound as `Float64`.
    Float,
    /// Calendar date `YYYY-MM-DD`, bound as `Date32`.
    Date,
    /// `true` or `false`, bound as `Boolean`.
    Bool,
}

impl ParamType {
    /// Returns the name used in job files.
    pub fn name(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Int => "int",
            ParamType::Float => "float",
            ParamType::Date => "date",
            ParamType::Bool => "bool",
        }
    }
}

/// A YAML scalar as written, before it is checked against a declared type.
#[derive(Debug, Clone)]
pub enum ScalarSpec {
    /// `true` or `false`.
    Bool(bool),
    /// An integer literal.
    Int(i64),
    /// A float literal.
    Float(f64),
    /// Any other scalar, including unquoted dates.
    String(String),
}

impl<'de> Deserialize<'de> for ScalarSpec {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Self, D::Error> {
        struct Scalar;

        impl serde::de::Visitor<'_> for Scalar {
            type Value = ScalarSpec;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string, a number or true or false")
            }

            fn visit_bool<E: serde::de::Error>(
                self,
                value: bool,
            ) -> Result<ScalarSpec, E> {
                Ok(ScalarSpec::Bool(value))
            }

            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<ScalarSpec, E> {
                Ok(ScalarSpec::Int(value))
            }

            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<ScalarSpec, E> {
                Ok(match i64::try_from(value) {
                    Ok(value) => ScalarSpec::Int(value),
                    Err(_) => ScalarSpec::Float(value as f64),
                })
            }

            fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<ScalarSpec, E> {
                Ok(ScalarSpec::Float(value))
            }

            fn visit_str<E: serde::de::Error>(
                self,
                value: &str,
            ) -> Result<ScalarSpec, E> {
                Ok(ScalarSpec::String(value.to_string()))
            }
        }

        deserializer.deserialize_any(Scalar)
    }
}

/// One input table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// A file, a folder or a glob, relative to the job file's folder.
    pub path: Spanned<String>,
    /// File format; `parquet` when absent.
    #[serde(default)]
    pub format: InputFormat,
}

/// File formats an input may have.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    /// Apache Parquet.
    #[default]
    Parquet,
    /// Comma-separated values with a header row.
    Csv,
}

/// One SQL stage.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    /// Table name later stages and outputs use.
    pub name: Spanned<String>,
    /// Path of a SQL file, relative to the job file's folder.
    #[serde(default)]
    pub sql: Option<Spanned<String>>,
    /// Inline SQL.
    #[serde(default)]
    pub query: Option<Spanned<String>>,
    /// Computes the stage once into Parquet in the run's staging folder.
    #[serde(default)]
    pub materialize: bool,
    /// Free text shown by `cra explain`.
    #[serde(default)]
    pub description: Option<String>,
}

/// One output table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Input or stage to write.
    pub table: Spanned<String>,
    /// Destination folder, relative to the job file's folder.
    pub path: Spanned<String>,
    /// Columns that become Hive-style `column=value` folders.
    #[serde(default)]
    pub partition_by: Vec<Spanned<String>>,
    /// Sort keys, each `column` or `column desc`.
    #[serde(default)]
    pub sort_by: Vec<Spanned<String>>,
    /// Data checks, run on the staged output before anything is published.
    #[serde(default)]
    pub checks: Vec<Spanned<CheckSpec>>,
}

/// One data check: exactly one of the kind keys, with an optional name and
/// severity.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    /// Name in messages, summaries and manifests; made from the kind and columns
    /// when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// `error` (the default) stops publishing; `warn` logs and records.
    #[serde(default)]
    pub severity: Severity,
    /// Columns that must hold no NULL.
    #[serde(default)]
    pub not_null: Option<Spanned<Columns>>,
    /// Columns whose combined values must not repeat.
    #[serde(default)]
    pub unique: Option<Spanned<Columns>>,
    /// A column whose values must be among a list; NULL passes.
    #[serde(default)]
    pub accepted_values: Option<Spanned<AcceptedValuesSpec>>,
    /// Bounds on the number of rows.
    #[serde(default)]
    pub row_count: Option<Spanned<RowCountSpec>>,
    /// Bounds on a numeric column; NULL passes, NaN fails.
    #[serde(default)]
    pub range: Option<Spanned<RangeSpec>>,
    /// Inline SQL whose result rows are the violations.
    #[serde(default)]
    pub query: Option<Spanned<String>>,
    /// Path of a SQL file whose result rows are the violations.
    #[serde(default)]
    pub sql: Option<Spanned<String>>,
}

/// Effect of a failing check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Exit 3 and publish nothing.
    #[default]
    Error,
    /// Log a warning, record the result, and publish.
    Warn,
}

/// One column name or a list of them.
#[derive(Debug, Clone)]
pub enum Columns {
    /// `not_null: customer_id`.
    One(String),
    /// `unique: [customer_id, as_of]`.
    Many(Vec<String>),
}

impl<'de> Deserialize<'de> for Columns {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Self, D::Error> {
        struct Names;

        impl<'de> serde::de::Visitor<'de> for Names {
            type Value = Columns;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a column name or a list of column names (quote names such as n or \
                     yes, which YAML reads as booleans)",
                )
            }

            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Columns, E> {
                Ok(Columns::One(name.to_string()))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Columns, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    names.push(name);
                }
                Ok(Columns::Many(names))
            }
        }

        deserializer.deserialize_any(Names)
    }
}

impl Columns {
    /// Returns the names in order.
    pub fn names(&self) -> Vec<String> {
        match self {
            Columns::One(name) => vec![name.clone()],
            Columns::Many(names) => names.clone(),
        }
    }
}

/// `accepted_values: {column: segment, values: [a, b]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptedValuesSpec {
    /// Column to check.
    pub column: String,
    /// Values the column may hold.
    pub values: Vec<ScalarSpec>,
}

/// `row_count: {min: 1, max: 1000000}`; either bound may be left out.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowCountSpec {
    /// Minimum number of rows.
    #[serde(default)]
    pub min: Option<u64>,
    /// Maximum number of rows.
    #[serde(default)]
    pub max: Option<u64>,
}

/// `range: {column: p_alive, min: 0, max: 1}`; either bound may be left out.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeSpec {
    /// Numeric column to check.
    pub column: String,
    /// Smallest value allowed.
    #[serde(default)]
    pub min: Option<f64>,
    /// Largest value allowed.
    #[serde(default)]
    pub max: Option<f64>,
}
