//! The resolved job: paths made absolute, parameters typed, SQL text loaded.
//!
//! [`resolve`] checks everything that can be checked without a DataFusion session
//! and collects every problem it finds, so one `cra run` of a broken job lists them
//! all. Code downstream of this module uses only the resolved types.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde_saphyr::Spanned;

use super::params::ParamValue;
use super::spec::{
    CheckSpec, Columns, InputFormat, JobSpec, OutputSpec, ParamType, RangeSpec,
    RowCountSpec, ScalarSpec, Severity, StageSpec,
};
use crate::error::{Error, closest};
use crate::storage::Location;

/// A job ready to run.
#[derive(Debug, Clone)]
pub struct JobPlan {
    /// Job name from the file.
    pub name: String,
    /// Job description from the file.
    pub description: Option<String>,
    /// The job file as the user named it, for messages.
    pub file: String,
    /// Absolute folder of the job file; relative paths resolve against it.
    pub dir: PathBuf,
    /// Parameters in declaration order, with their final values.
    pub params: Vec<ParamPlan>,
    /// Inputs in declaration order.
    pub inputs: Vec<InputPlan>,
    /// Stages in run order.
    pub stages: Vec<StagePlan>,
    /// Outputs in declaration order.
    pub outputs: Vec<OutputPlan>,
    /// Settings of every bucket that an input or output is in.
    pub storage: crate::storage::StoragePlan,
    /// Execution settings.
    pub engine: EnginePlan,
}

/// Execution settings of the DataFusion session; `None` keeps DataFusion's
/// default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnginePlan {
    /// Bytes that sorts, aggregations and joins may hold before they spill.
    pub memory_limit: Option<u64>,
    /// Folder for spill files.
    pub spill_dir: Option<PathBuf>,
    /// Partitions of each plan.
    pub target_partitions: Option<usize>,
    /// Rows per record batch.
    pub batch_size: Option<usize>,
}

/// Parses a size such as `4G`, `512M`, `64KiB` or a number of bytes, with units
/// in powers of 1024.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a size such as 4G or 512M"))?;
    let unit = unit.trim().to_ascii_uppercase();
    let unit = unit.trim_end_matches("IB").trim_end_matches('B');
    let scale: u64 = match unit {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return Err(format!("'{text}' has an unknown unit; use K, M, G or T")),
    };
    let bytes = number * scale as f64;
    if !bytes.is_finite() || bytes < 1.0 {
        return Err(format!("'{text}' is not a size above zero"));
    }
    if bytes > MAX_SIZE as f64 {
        return Err(format!("'{text}' is more than the largest size, 1024T"));
    }
    Ok(bytes as u64)
}

/// The largest size `parse_size` accepts: 1024 TiB, far beyond any machine's
/// memory, so that a mistyped limit fails instead of turning into no limit.
const MAX_SIZE: u64 = 1 << 50;

/// The maximum number of partitions of a plan. DataFusion keeps buffers for
/// every partition, so a very large count exhausts memory under any limit.
pub const MAX_TARGET_PARTITIONS: usize = 1024;

/// The maximum rows per record batch. Each batch is allocated whole, so a huge
/// size fails on its first allocation.
pub const MAX_BATCH_SIZE: usize = 1 << 20;

/// Checks that a `target_partitions` or `batch_size` value named `name` is from
/// 1 to `max`.
pub fn check_engine_count(name: &str, value: usize, max: usize) -> Result<usize, String> {
    if (1..=max).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{name} must be a whole number from 1 to {max}"))
    }
}

/// A parameter with its value.
#[derive(Debug, Clone)]
pub struct ParamPlan {
    /// Name, used as `$name` in SQL.
    pub name: String,
    /// Declared type.
    pub param_type: ParamType,
    /// Value from `--param`, else the default.
    pub value: ParamValue,
    /// Whether the value came from the environment through `${env:NAME}`, so
    /// summaries and manifests show it masked.
    pub from_env: bool,
}

/// An input table.
#[derive(Debug, Clone)]
pub struct InputPlan {
    /// Table name.
    pub name: String,
    /// File, folder or glob to read.
    pub location: Location,
    /// File format.
    pub format: InputFormat,
}

/// A stage with its SQL text.
#[derive(Debug, Clone)]
pub struct StagePlan {
    /// Table name.
    pub name: String,
    /// The SQL text.
    pub sql: String,
    /// Source of the SQL text, to turn SQL positions into file positions.
    pub origin: SqlOrigin,
    /// Whether the stage is computed once into Parquet.
    pub materialize: bool,
}

/// The source of a stage's SQL text.
#[derive(Debug, Clone)]
pub enum SqlOrigin {
    /// A `sql:` file.
    File {
        /// The file as the user reads it.
        display: String,
    },
    /// An inline `query:` in the job file.
    Inline {
        /// The job file as the user named it.
        file: String,
        /// Line of the job file with the first line of the SQL text.
        first_line: usize,
        /// Column of the job file where each SQL line starts, counted from 1.
        first_column: usize,
    },
}

impl SqlOrigin {
    /// Formats a SQL position (line and column from 1) as `file:line:column`.
    pub fn position(&self, line: u64, column: u64) -> String {
        match self {
            SqlOrigin::File { display } => format!("{display}:{line}:{column}"),
            SqlOrigin::Inline {
                file,
                first_line,
                first_column,
            } => {
                let line = *first_line as u64 + line.saturating_sub(1);
                let column = *first_column as u64 + column.saturating_sub(1);
                format!("{file}:{line}:{column}")
            }
        }
    }

    /// Returns the file that contains the SQL text.
    pub fn file(&self) -> &str {
        match self {
            SqlOrigin::File { display } => display,
            SqlOrigin::Inline { file, .. } => file,
        }
    }
}

/// An output table.
#[derive(Debug, Clone)]
pub struct OutputPlan {
    /// Input or stage to write.
    pub table: String,
    /// Destination folder.
    pub location: Location,
    /// Hive partition columns.
    pub partition_by: Vec<String>,
    /// Sort keys.
    pub sort_by: Vec<SortKey>,
    /// Data checks, run on the staged output.
    pub checks: Vec<CheckPlan>,
}

/// A data check of an output.
#[derive(Debug, Clone)]
pub struct CheckPlan {
    /// Name, unique within the output.
    pub name: String,
    /// Effect of a failure.
    pub severity: Severity,
    /// Rule the check tests.
    pub kind: CheckKind,
    /// `file:line:column` of the check in the job file.
    pub position: String,
}

/// Rule a check tests.
#[derive(Debug, Clone)]
pub enum CheckKind {
    /// No NULL in any of the columns.
    NotNull(Vec<String>),
    /// No two rows share the values of the columns.
    Unique(Vec<String>),
    /// Every value of the column is NULL or in the list.
    AcceptedValues {
        /// Column checked.
        column: String,
        /// Values allowed.
        values: Vec<ScalarSpec>,
    },
    /// The row count lies within the bounds.
    RowCount {
        /// Minimum number of rows.
        min: Option<u64>,
        /// Maximum number of rows.
        max: Option<u64>,
    },
    /// Every value of the column is NULL or within the bounds.
    Range {
        /// Column checked.
        column: String,
        /// Smallest value allowed.
        min: Option<f64>,
        /// Largest value allowed.
        max: Option<f64>,
    },
    /// SQL whose result rows are the violations.
    Sql {
        /// The SQL text.
        sql: String,
        /// Source of the text.
        origin: SqlOrigin,
    },
}

impl CheckKind {
    /// Returns the kind's key in job files.
    pub fn key(&self) -> &'static str {
        match self {
            CheckKind::NotNull(_) => "not_null",
            CheckKind::Unique(_) => "unique",
            CheckKind::AcceptedValues { .. } => "accepted_values",
            CheckKind::RowCount { .. } => "row_count",
            CheckKind::Range { .. } => "range",
            CheckKind::Sql { origin, .. } => match origin {
                SqlOrigin::File { .. } => "sql",
                SqlOrigin::Inline { .. } => "query",
            },
        }
    }

    /// Returns the name of a check that has none: the kind and its columns.
    fn default_name(&self) -> String {
        match self {
            CheckKind::NotNull(columns) | CheckKind::Unique(columns) => {
                format!("{} {}", self.key(), columns.join(", "))
            }
            CheckKind::AcceptedValues { column, .. }
            | CheckKind::Range { column, .. } => {
                format!("{} {column}", self.key())
            }
            CheckKind::RowCount { .. } => "row_count".to_string(),
            CheckKind::Sql { origin, .. } => match origin {
                SqlOrigin::File { display } => format!("sql {display}"),
                SqlOrigin::Inline { first_line, .. } => {
                    format!("query at line {first_line}")
                }
            },
        }
    }
}

/// One sort key of an output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// Column name.
    pub column: String,
    /// Whether the order is descending.
    pub descending: bool,
}

/// Resolves a parsed job file.
///
/// `file` is the job file as the user named it, `text` its contents (for positions
/// of inline SQL) and `overrides` the `--param` pairs in command-line order.
pub fn resolve(
    spec: JobSpec,
    file: &str,
    text: &str,
    overrides: &[(String, String)],
) -> Result<JobPlan, Error> {
    let display_dir = Path::new(file)
        .parent()
        .unwrap_or(Path::new(""))
        .to_path_buf();
    let dir = std::path::absolute(if display_dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        &display_dir
    })
    .map(|dir| crate::storage::normalize(&dir))
    .map_err(|error| {
        Error::invalid(format!(
            "{file}: cannot resolve the job file's folder: {error}"
        ))
    })?;
    let mut resolver = Resolver {
        file,
        text,
        dir: &dir,
        display_dir: &display_dir,
        problems: Vec::new(),
    };

    resolver.check_job_name(&spec.name);
    let params = resolver.params(&spec, overrides);
    let inputs = resolver.inputs(&spec);
    let stages = resolver.stages(&spec, &inputs);
    // Outputs may name every declared stage, also one whose SQL failed to load, so
    // that one mistake is reported once.
    let stage_names: Vec<&str> = spec
        .stages
        .iter()
        .map(|s| s.value.name.value.as_str())
        .collect();
    let outputs = resolver.outputs(&spec, &inputs, &stage_names);
    let storage = resolver.storage(spec.storage.as_ref(), &inputs, &outputs);
    let engine = resolver.engine(spec.engine.as_ref());

    if !resolver.problems.is_empty() {
        return Err(Error::many(resolver.problems));
    }
    Ok(JobPlan {
        name: spec.name.value,
        description: spec.description,
        file: file.to_string(),
        dir,
        params,
        inputs,
        stages,
        outputs,
        storage,
        engine,
    })
}

pub(super) struct Resolver<'a> {
    pub(super) file: &'a str,
    text: &'a str,
    dir: &'a Path,
    display_dir: &'a Path,
    pub(super) problems: Vec<Error>,
}

impl Resolver<'_> {
    /// Records a problem at the YAML position of `at`.
    pub(super) fn problem<T>(
        &mut self,
        at: &Spanned<T>,
        message: String,
        hint: Option<String>,
    ) {
        let line = at.referenced.line();
        let column = at.referenced.column();
        let mut error =
            Error::invalid(format!("{}:{line}:{column}: {message}", self.file));
        if let Some(hint) = hint {
            error = error.with_hint(hint);
        }
        self.problems.push(error);
    }

    pub(super) fn problem_without_position(
        &mut self,
        message: String,
        hint: Option<String>,
    ) {
        let mut error = Error::invalid(format!("{}: {message}", self.file));
        if let Some(hint) = hint {
            error = error.with_hint(hint);
        }
        self.problems.push(error);
    }

    /// Resolves the `engine:` section.
    fn engine(&mut self, spec: Option<&super::spec::EngineSpec>) -> EnginePlan {
        let mut plan = EnginePlan::default();
        let Some(spec) = spec else {
            return plan;
        };
        let text = |value: &ScalarSpec| match value {
            ScalarSpec::String(text) => text.clone(),
            ScalarSpec::Int(number) => number.to_string(),
            ScalarSpec::Float(number) => number.to_string(),
            ScalarSpec::Bool(flag) => flag.to_string(),
        };
        if let Some(limit) = &spec.memory_limit {
            match parse_size(&text(&limit.value)) {
                Ok(bytes) => plan.memory_limit = Some(bytes),
                Err(message) => {
                    self.problem(limit, format!("engine.memory_limit: {message}"), None)
                }
            }
        }
        if let Some(dir) = &spec.spill_dir {
            match self.location(dir) {
                Ok(Location::Local { path, .. }) => plan.spill_dir = Some(path),
                Ok(_) => self.problem(
                    dir,
                    "engine.spill_dir must be a local folder".into(),
                    None,
                ),
                Err(message) => {
                    self.problem(dir, format!("engine.spill_dir: {message}"), None)
                }
            }
        }
        for (key, value, slot, max) in [
            (
                "target_partitions",
                &spec.target_partitions,
                &mut plan.target_partitions,
                MAX_TARGET_PARTITIONS,
            ),
            (
                "batch_size",
                &spec.batch_size,
                &mut plan.batch_size,
                MAX_BATCH_SIZE,
            ),
        ] {
            if let Some(value) = value {
                let name = format!("engine.{key}");
                let checked = text(&value.value)
                    .trim()
                    .parse::<u128>()
                    .ok()
                    .and_then(|number| usize::try_from(number).ok())
                    .map_or_else(
                        || check_engine_count(&name, 0, max),
                        |number| check_engine_count(&name, number, max),
                    );
                match checked {
                    Ok(number) => *slot = Some(number),
                    Err(message) => self.problem(value, message, None),
                }
            }
        }
        plan
    }

    /// Resolves a path from the job file, with `${env:NAME}` references expanded.
    fn location(&self, path: &Spanned<String>) -> Result<Location, String> {
        let text = if path.value.contains("${env:") {
            crate::redact::expand_env(&path.value)?
        } else {
            path.value.clone()
        };
        Location::resolve(self.dir, self.display_dir, &text)
    }

    fn check_job_name(&mut self, name: &Spanned<String>) {
        let valid = !name.value.is_empty()
            && name
                .value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            self.problem(
                name,
                format!("job name '{}' is invalid", name.value),
                Some("use letters, digits, '_' and '-' only".to_string()),
            );
        }
    }

    fn params(
        &mut self,
        spec: &JobSpec,
        overrides: &[(String, String)],
    ) -> Vec<ParamPlan> {
        let mut values: HashMap<&str, ParamValue> = HashMap::new();
        for (name, param) in &spec.params {
            if !is_identifier(name) {
                self.problem(
                    param,
                    format!("parameter name '{name}' is not a valid identifier"),
                    Some(
                        "use lower-case letters, digits and '_', starting with a letter"
                            .to_string(),
                    ),
                );
            }
            if let Some(default) = &param.value.default {
                let parsed = match &default.value {
                    ScalarSpec::String(text) if text.contains("${env:") => {
                        crate::redact::expand_env(text).and_then(|expanded| {
                            if param.value.param_type == ParamType::Bool {
                                // "true" and "false" cannot be masked in free text
                                // without masking every such word; the summary and
                                // manifests still mask the parameter.
                                crate::redact::forget(&expanded);
                            }
                            ParamValue::parse(param.value.param_type, &expanded)
                        })
                    }
                    other => ParamValue::from_spec(param.value.param_type, other),
                };
                match parsed {
                    Ok(value) => {
                        values.insert(name.as_str(), value);
                    }
                    Err(message) => {
                        let hint = (param.value.param_type == ParamType::String
                            && !matches!(&default.value, ScalarSpec::String(_)))
                        .then(|| "quote the default to make it a string".to_string());
                        self.problem(
                            default,
                            format!("parameter '{name}': {message}"),
                            hint,
                        );
                    }
                }
            }
        }

        for (name, text) in overrides {
            let Some(param) = spec.params.get(name) else {
                let declared = spec.params.keys().map(String::as_str);
                let hint = match closest(name, declared) {
                    Some(near) => format!("did you mean '{near}'?"),
                    None if spec.params.is_empty() => {
                        "this job declares no parameters".to_string()
                    }
                    None => format!(
                        "declared parameters: {}",
                        spec.params.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                };
                self.problem_without_position(
                    format!("--param {name}: no parameter '{name}' is declared"),
                    Some(hint),
                );
                continue;
            };
            match ParamValue::parse(param.value.param_type, text) {
                Ok(value) => {
                    values.insert(name.as_str(), value);
                }
                Err(message) => self.problem_without_position(
                    format!("--param {name}: {message}"),
                    Some(format!(
                        "parameter '{name}' is declared as {}",
                        param.value.param_type.name()
                    )),
                ),
            }
        }

        let mut params = Vec::new();
        for (name, param) in &spec.params {
            match values.remove(name.as_str()) {
                Some(value) => params.push(ParamPlan {
                    name: name.clone(),
                    param_type: param.value.param_type,
                    value,
                    from_env: !overrides.iter().any(|(n, _)| n == name)
                        && param.value.default.as_ref().is_some_and(|d| {
                            matches!(&d.value, ScalarSpec::String(t) if t.contains("${env:"))
                        }),
                }),
                None if param.value.default.is_none() => self.problem(
                    param,
                    format!("parameter '{name}' has no default and no value"),
                    Some(format!("pass --param {name}=VALUE or add a default")),
                ),
                // A default of the wrong type was reported above.
                None => {}
            }
        }
        params
    }

    fn inputs(&mut self, spec: &JobSpec) -> Vec<InputPlan> {
        let mut inputs = Vec::new();
        for (name, input) in &spec.inputs {
            if !is_identifier(name) {
                self.problem(
                    input,
                    format!("input name '{name}' is not a valid table name"),
                    Some(
                        "use lower-case letters, digits and '_', starting with a letter, \
                         so SQL can name it without quotes"
                            .to_string(),
                    ),
                );
            }
            let path = &input.value.path;
            let location = match self.location(path) {
                Ok(location) => location,
                Err(message) => {
                    self.problem(path, format!("input '{name}': {message}"), None);
                    continue;
                }
            };
            let missing = match location.local_path() {
                Some(path) => !location.is_glob() && !path.exists(),
                // Objects are listed when the run starts.
                None => false,
            };
            if missing {
                self.problem(
                    path,
                    format!("input '{name}': path '{}' not found", location.display()),
                    Some(format!(
                        "relative paths resolve against the job file's folder '{}'",
                        display_folder(self.display_dir)
                    )),
                );
            }
            inputs.push(InputPlan {
                name: name.clone(),
                location,
                format: input.value.format,
            });
        }
        inputs
    }

    fn stages(&mut self, spec: &JobSpec, inputs: &[InputPlan]) -> Vec<StagePlan> {
        let input_names: HashSet<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
        let mut seen: HashSet<String> = HashSet::new();
        let mut stages = Vec::new();
        for stage in &spec.stages {
            let name = &stage.value.name;
            if !is_identifier(&name.value) {
                self.problem(
                    name,
                    format!("stage name '{}' is not a valid table name", name.value),
                    Some(
                        "use lower-case letters, digits and '_', starting with a letter"
                            .to_string(),
                    ),
                );
            }
            if input_names.contains(name.value.as_str()) {
                self.problem(
                    name,
                    format!("stage '{}' has the name of an input", name.value),
                    Some("give the stage a name of its own".to_string()),
                );
            } else if !seen.insert(name.value.clone()) {
                self.problem(
                    name,
                    format!("stage name '{}' is used twice", name.value),
                    Some("every stage needs a unique name".to_string()),
                );
            }
            if let Some(plan) = self.stage_sql(stage) {
                stages.push(plan);
            }
        }
        stages
    }

    fn stage_sql(&mut self, stage: &Spanned<StageSpec>) -> Option<StagePlan> {
        let name = &stage.value.name.value;
        let (sql, origin) = self.sql_text(
            stage,
            &format!("stage '{name}'"),
            stage.value.sql.as_ref(),
            stage.value.query.as_ref(),
        )?;
        if sql.trim().is_empty() {
            self.problem(stage, format!("stage '{name}': SQL is empty"), None);
            return None;
        }
        Some(StagePlan {
            name: name.clone(),
            sql,
            origin,
            materialize: stage.value.materialize,
        })
    }

    /// Loads the SQL of a stage or check from its `sql:` file or inline `query:`;
    /// `what` names the owner in messages.
    fn sql_text<T>(
        &mut self,
        owner: &Spanned<T>,
        what: &str,
        sql: Option<&Spanned<String>>,
        query: Option<&Spanned<String>>,
    ) -> Option<(String, SqlOrigin)> {
        match (sql, query) {
            (Some(_), Some(query)) => {
                self.problem(
                    query,
                    format!("{what} has both 'sql' and 'query'"),
                    Some(
                        "keep one: 'sql' names a file, 'query' holds inline SQL"
                            .to_string(),
                    ),
                );
                None
            }
            (None, None) => {
                self.problem(
                    owner,
                    format!("{what} has neither 'sql' nor 'query'"),
                    Some("add 'sql: path/to/file.sql' or an inline 'query:'".to_string()),
                );
                None
            }
            (Some(path), None) => {
                let location =
                    match Location::resolve(self.dir, self.display_dir, &path.value) {
                        Ok(location) => location,
                        Err(message) => {
                            self.problem(path, format!("{what}: {message}"), None);
                            return None;
                        }
                    };
                let Some(local) = location.local_path() else {
                    self.problem(
                        path,
                        format!("{what}: SQL files are read from local paths only"),
                        Some("keep SQL files beside the job file".to_string()),
                    );
                    return None;
                };
                let text = match std::fs::read(local) {
                    Ok(bytes) => bytes,
                    Err(error) => {
                        let message = if error.kind() == std::io::ErrorKind::NotFound {
                            format!("{what}: SQL file '{}' not found", location.display())
                        } else {
                            format!(
                                "{what}: cannot read SQL file '{}': {error}",
                                location.display()
                            )
                        };
                        self.problem(
                            path,
                            message,
                            Some(format!(
                                "relative paths resolve against the job file's folder '{}'",
                                display_folder(self.display_dir)
                            )),
                        );
                        return None;
                    }
                };
                let Ok(text) = String::from_utf8(text) else {
                    self.problem(
                        path,
                        format!(
                            "{what}: SQL file '{}' is not valid UTF-8",
                            location.display()
                        ),
                        None,
                    );
                    return None;
                };
                let origin = SqlOrigin::File {
                    display: location.display().to_string(),
                };
                Some((text, origin))
            }
            (None, Some(query)) => {
                let (first_line, first_column) = inline_start(self.text, query);
                let origin = SqlOrigin::Inline {
                    file: self.file.to_string(),
                    first_line,
                    first_column,
                };
                Some((query.value.clone(), origin))
            }
        }
    }

    /// Resolves the checks of output `table`.
    fn checks(&mut self, table: &str, checks: &[Spanned<CheckSpec>]) -> Vec<CheckPlan> {
        let mut plans: Vec<CheckPlan> = Vec::new();
        for check in checks {
            let spec = &check.value;
            let what = format!("output '{table}': check");
            let kinds = [
                spec.not_null.is_some(),
                spec.unique.is_some(),
                spec.accepted_values.is_some(),
                spec.row_count.is_some(),
                spec.range.is_some(),
                spec.query.is_some() || spec.sql.is_some(),
            ];
            let count = kinds.iter().filter(|k| **k).count();
            if count != 1 {
                let message = if count == 0 {
                    format!("{what} names no kind")
                } else {
                    format!("{what} names {count} kinds; a check has one")
                };
                self.problem(
                    check,
                    message,
                    Some(
                        "use one of not_null, unique, accepted_values, row_count, range, \
                         query or sql per entry"
                            .to_string(),
                    ),
                );
                continue;
            }
            let columns = |this: &mut Self, at: &Spanned<Columns>, kind: &str| {
                let names = at.value.names();
                if names.is_empty() || names.iter().any(|n| n.trim().is_empty()) {
                    this.problem(
                        at,
                        format!("{what} {kind}: needs one or more column names"),
                        None,
                    );
                    return None;
                }
                let repeated = names
                    .iter()
                    .enumerate()
                    .find(|(i, name)| names[..*i].contains(name))
                    .map(|(_, name)| name.clone());
                if let Some(repeated) = repeated {
                    this.problem(
                        at,
                        format!("{what} {kind}: column '{repeated}' is named twice"),
                        None,
                    );
                    return None;
                }
                Some(names)
            };
            let kind = if let Some(at) = &spec.not_null {
                columns(self, at, "not_null").map(CheckKind::NotNull)
            } else if let Some(at) = &spec.unique {
                columns(self, at, "unique").map(CheckKind::Unique)
            } else if let Some(at) = &spec.accepted_values {
                if at.value.values.is_empty() {
                    self.problem(
                        at,
                        format!("{what} accepted_values: the list of values is empty"),
                        None,
                    );
                    None
                } else {
                    Some(CheckKind::AcceptedValues {
                        column: at.value.column.clone(),
                        values: at.value.values.clone(),
                    })
                }
            } else if let Some(at) = &spec.row_count {
                let RowCountSpec { min, max } = at.value;
                if min.is_none() && max.is_none() {
                    self.problem(at, format!("{what} row_count: needs min or max"), None);
                    None
                } else if let (Some(low), Some(high)) = (min, max)
                    && low > high
                {
                    self.problem(
                        at,
                        format!("{what} row_count: min {low} is above max {high}"),
                        None,
                    );
                    None
                } else {
                    Some(CheckKind::RowCount { min, max })
                }
            } else if let Some(at) = &spec.range {
                let RangeSpec { min, max, .. } = at.value;
                let bad_bound = [min, max].iter().flatten().any(|v| !v.is_finite());
                if min.is_none() && max.is_none() {
                    self.problem(at, format!("{what} range: needs min or max"), None);
                    None
                } else if bad_bound {
                    self.problem(
                        at,
                        format!("{what} range: bounds must be finite"),
                        None,
                    );
                    None
                } else if let (Some(low), Some(high)) = (min, max)
                    && low > high
                {
                    self.problem(
                        at,
                        format!("{what} range: min {low} is above max {high}"),
                        None,
                    );
                    None
                } else {
                    Some(CheckKind::Range {
                        column: at.value.column.clone(),
                        min,
                        max,
                    })
                }
            } else {
                self.sql_text(check, &what, spec.sql.as_ref(), spec.query.as_ref())
                    .and_then(|(sql, origin)| {
                        if sql.trim().is_empty() {
                            self.problem(check, format!("{what}: SQL is empty"), None);
                            None
                        } else {
                            Some(CheckKind::Sql { sql, origin })
                        }
                    })
            };
            let Some(kind) = kind else {
                continue;
            };
            let name = spec.name.clone().unwrap_or_else(|| kind.default_name());
            if plans.iter().any(|p| p.name == name) {
                self.problem(
                    check,
                    format!("output '{table}': two checks are named '{name}'"),
                    Some("give each check of an output its own 'name'".to_string()),
                );
                continue;
            }
            plans.push(CheckPlan {
                name,
                severity: spec.severity,
                kind,
                position: format!(
                    "{}:{}:{}",
                    self.file,
                    check.referenced.line(),
                    check.referenced.column()
                ),
            });
        }
        plans
    }

    fn outputs(
        &mut self,
        spec: &JobSpec,
        inputs: &[InputPlan],
        stages: &[&str],
    ) -> Vec<OutputPlan> {
        if spec.outputs.is_empty() {
            self.problem_without_position(
                "the job has no outputs".to_string(),
                Some("add an entry under 'outputs:' with 'table' and 'path'".to_string()),
            );
        }
        let tables: Vec<&str> = inputs
            .iter()
            .map(|i| i.name.as_str())
            .chain(stages.iter().copied())
            .collect();
        let mut outputs: Vec<OutputPlan> = Vec::new();
        for output in &spec.outputs {
            if let Some(plan) = self.output(output, &tables, inputs, &outputs) {
                outputs.push(plan);
            }
        }
        outputs
    }

    fn output(
        &mut self,
        output: &Spanned<OutputSpec>,
        tables: &[&str],
        inputs: &[InputPlan],
        earlier: &[OutputPlan],
    ) -> Option<OutputPlan> {
        let spec = &output.value;
        let table = &spec.table.value;
        if !tables.contains(&table.as_str()) {
            let hint = closest(table, tables.iter().copied())
                .map(|near| format!("did you mean '{near}'?"));
            self.problem(
                &spec.table,
                format!("output names table '{table}', which is no input or stage"),
                hint,
            );
        }
        let location = match self.location(&spec.path) {
            Ok(location) if location.is_glob() => {
                self.problem(
                    &spec.path,
                    format!("output '{table}': path '{}' is a glob", spec.path.value),
                    Some("an output path names one folder".to_string()),
                );
                return None;
            }
            Ok(location) if location.parent().is_none() => {
                self.problem(
                    &spec.path,
                    format!(
                        "output '{table}': path '{}' is a bucket or file system root",
                        location.display()
                    ),
                    Some(
                        "name a folder or prefix inside it: staging goes beside the output"
                            .to_string(),
                    ),
                );
                return None;
            }
            Ok(location)
                if location
                    .display()
                    .split('/')
                    .any(|part| part.starts_with(".cra-")) =>
            {
                self.problem(
                    &spec.path,
                    format!(
                        "output '{table}': path '{}' has a part that starts with '.cra-', \
                         which cra keeps for staging and locks",
                        location.display()
                    ),
                    Some("give the output another name".to_string()),
                );
                return None;
            }
            Ok(location) => location,
            Err(message) => {
                self.problem(&spec.path, format!("output '{table}': {message}"), None);
                return None;
            }
        };
        // Publishing replaces the whole folder, so it must not hold the job itself.
        let job_dir = Location::Local {
            path: self.dir.to_path_buf(),
            display: display_folder(self.display_dir),
        };
        if location.contains(&job_dir) {
            self.problem(
                &spec.path,
                format!(
                    "output '{table}': path '{}' contains the job file's folder, which \
                     publishing would replace",
                    location.display()
                ),
                Some(
                    "write outputs to a folder of their own, such as '../out/NAME'"
                        .to_string(),
                ),
            );
            return None;
        }
        for input in inputs {
            if input.location.contains(&location) || location.contains(&input.location) {
                self.problem(
                    &spec.path,
                    format!(
                        "output '{table}': path '{}' overlaps input '{}' at '{}'",
                        location.display(),
                        input.name,
                        input.location.display()
                    ),
                    Some("write outputs to a folder apart from every input".to_string()),
                );
            }
        }
        for other in earlier {
            if other.location.contains(&location) || location.contains(&other.location) {
                self.problem(
                    &spec.path,
                    format!(
                        "output '{table}': path '{}' overlaps the output of '{}'",
                        location.display(),
                        other.table
                    ),
                    Some("give every output a folder of its own".to_string()),
                );
            }
        }

        let mut partition_by = Vec::new();
        for column in &spec.partition_by {
            if column.value.trim().is_empty() {
                self.problem(
                    column,
                    format!("output '{table}': empty partition column"),
                    None,
                );
            } else if column.value.trim().starts_with(['_', '.']) {
                self.problem(
                    column,
                    format!(
                        "output '{table}': partition column '{}' starts with '_' or '.', so \
                         its folders would be hidden from readers, cra included",
                        column.value.trim()
                    ),
                    Some("rename the column in the stage, such as with AS".to_string()),
                );
            } else {
                partition_by.push(column.value.trim().to_string());
            }
        }
        let mut sort_by = Vec::new();
        for key in &spec.sort_by {
            match parse_sort_key(&key.value) {
                Ok(parsed) => sort_by.push(parsed),
                Err(message) => self.problem(
                    key,
                    format!("output '{table}': {message}"),
                    Some(
                        "write a column name, optionally followed by 'asc' or 'desc'"
                            .to_string(),
                    ),
                ),
            }
        }
        let checks = self.checks(table, &spec.checks);
        Some(OutputPlan {
            table: table.clone(),
            location,
            partition_by,
            sort_by,
            checks,
        })
    }
}

/// Finds where the text of an inline `query:` starts in the job file.
///
/// For a block scalar (`query: |`) serde-saphyr reports the first content line, so
/// its position is used as it is. For a quoted scalar the text starts one column
/// after the quote.
fn inline_start(text: &str, query: &Spanned<String>) -> (usize, usize) {
    let line = query.referenced.line() as usize;
    let column = query.referenced.column() as usize;
    let starts_quoted = text
        .lines()
        .nth(line.saturating_sub(1))
        .and_then(|source| source.chars().nth(column.saturating_sub(1)))
        .is_some_and(|c| c == '"' || c == '\'');
    if starts_quoted {
        (line, column + 1)
    } else {
        (line, column)
    }
}

fn parse_sort_key(text: &str) -> Result<SortKey, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let (column, descending) = match words.as_slice() {
        [column] => (*column, false),
        [column, order] if order.eq_ignore_ascii_case("asc") => (*column, false),
        [column, order] if order.eq_ignore_ascii_case("desc") => (*column, true),
        _ => return Err(format!("sort key '{text}' is invalid")),
    };
    Ok(SortKey {
        column: column.to_string(),
        descending,
    })
}

/// Returns true for names SQL can use without quotes: DataFusion folds unquoted
/// identifiers to lower case, so upper-case names would need quotes everywhere.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn display_folder(dir: &Path) -> String {
    if dir.as_os_str().is_empty() {
        ".".to_string()
    } else {
        dir.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_key_parses_direction() {
        assert_eq!(
            parse_sort_key("clv desc").unwrap(),
            SortKey {
                column: "clv".into(),
                descending: true
            }
        );
        assert!(!parse_sort_key("id").unwrap().descending);
        assert!(parse_sort_key("a b c").is_err());
        assert!(parse_sort_key("a sideways").is_err());
    }

    #[test]
    fn identifier_rules() {
        assert!(is_identifier("customer_summary"));
        assert!(is_identifier("_x1"));
        assert!(!is_identifier("Customer"));
        assert!(!is_identifier("1x"));
        assert!(!is_identifier("a-b"));
        assert!(!is_identifier(""));
    }
}
