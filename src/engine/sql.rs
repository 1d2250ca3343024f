//! Stage SQL: the single-query rule and DataFusion errors turned into positioned
//! messages.

use datafusion::error::DataFusionError;
use datafusion::sql::parser::{DFParserBuilder, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::Statement;

use crate::error::{Error, ExitKind, closest};
use crate::job::{JobPlan, SqlOrigin, StagePlan};

/// Parses stage SQL and checks that it is exactly one query.
///
/// DDL, DML, `COPY`, `EXPLAIN` and several statements are rejected, so a stage can
/// only read: it never changes a table, a file or the session.
pub fn parse_query(job: &JobPlan, stage: &StagePlan) -> Result<DfStatement, Error> {
    let source = Source::stage(job, stage);
    parse_source(job, &source)
}

/// SQL text with the context that names it in messages.
#[derive(Debug, Clone)]
pub struct Source<'a> {
    /// Owner of the SQL in messages, such as `stage 'scores'`.
    pub context: String,
    /// The kind of owner: `stage` or `check`.
    pub owner: &'static str,
    /// The SQL text.
    pub sql: &'a str,
    /// Source of the text.
    pub origin: &'a SqlOrigin,
}

impl<'a> Source<'a> {
    /// Returns the source of a stage's SQL.
    pub fn stage(_job: &JobPlan, stage: &'a StagePlan) -> Self {
        Self {
            context: format!("stage '{}'", stage.name),
            owner: "stage",
            sql: &stage.sql,
            origin: &stage.origin,
        }
    }
}

/// Parses SQL text and checks that it is exactly one query.
pub fn parse_source(job: &JobPlan, source: &Source<'_>) -> Result<DfStatement, Error> {
    let mut statements = DFParserBuilder::new(source.sql)
        .build()
        .and_then(|mut parser| parser.parse_statements())
        .map_err(|error| source_error(job, source, &error, ExitKind::Invalid))?;
    let context = format!("{}: {}", job.file, source.context);
    let where_ = source.origin.position(1, 1);
    match statements.len() {
        0 => {
            return Err(Error::invalid(format!(
                "{context}: {where_}: SQL contains no statement"
            )));
        }
        1 => {}
        n => {
            let owner = source.owner;
            return Err(Error::invalid(format!(
                "{context}: {where_}: SQL contains {n} statements, but a {owner} is one query"
            ))
            .with_hint(format!("split the statements into {owner}s of their own")));
        }
    }
    let statement = statements.pop_front().expect("one statement was counted");
    let kind = match &statement {
        DfStatement::Statement(inner) if matches!(**inner, Statement::Query(_)) => {
            return Ok(statement);
        }
        DfStatement::Statement(inner) => statement_kind(inner),
        DfStatement::CreateExternalTable(_) => "CREATE EXTERNAL TABLE".to_string(),
        DfStatement::CopyTo(_) => "COPY".to_string(),
        DfStatement::Explain(_) => "EXPLAIN".to_string(),
        other => format!("{other}")
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string(),
    };
    let owner = source.owner;
    Err(Error::invalid(format!(
        "{context}: {where_}: {kind} is not allowed in a {owner}; a {owner} is one query"
    ))
    .with_hint(if owner == "check" {
        "write a SELECT (or WITH ... SELECT) whose rows are the violations"
    } else {
        "write a SELECT (or WITH ... SELECT); outputs are declared under 'outputs:'"
    }))
}

fn statement_kind(statement: &Statement) -> String {
    let text = statement.to_string();
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    match words.as_slice() {
        [first, second]
            if ["CREATE", "DROP", "ALTER", "TRUNCATE"]
                .contains(&first.to_uppercase().as_str()) =>
        {
            format!("{} {}", first.to_uppercase(), second.to_uppercase())
        }
        [first, ..] => first.to_uppercase(),
        [] => "this statement".to_string(),
    }
}

/// Turns a DataFusion error raised while planning a stage into an invalid-job error
/// (exit 2) that points into the SQL.
pub fn planning_error(
    job: &JobPlan,
    stage: &StagePlan,
    error: &DataFusionError,
) -> Error {
    stage_error(job, stage, error, ExitKind::Invalid)
}

/// Turns a DataFusion error raised while running a stage into a run error (exit 1).
pub fn execution_error(
    job: &JobPlan,
    stage: &StagePlan,
    error: DataFusionError,
) -> Error {
    stage_error(job, stage, &error, ExitKind::Run).with_source(error)
}

fn stage_error(
    job: &JobPlan,
    stage: &StagePlan,
    error: &DataFusionError,
    kind: ExitKind,
) -> Error {
    source_error(job, &Source::stage(job, stage), error, kind)
}

/// Turns a DataFusion error about SQL text into an error of `kind` that points
/// into the text.
pub fn source_error(
    job: &JobPlan,
    source: &Source<'_>,
    error: &DataFusionError,
    kind: ExitKind,
) -> Error {
    let described = describe(error);
    let position = described.position.or_else(|| {
        described
            .placeholder
            .as_ref()
            .or(described.token.as_ref())
            .and_then(|token| find_token(source.sql, token))
            .or_else(|| {
                described
                    .message
                    .ends_with("found: EOF")
                    .then(|| end_of_text(source.sql))
            })
    });
    let location = match position {
        Some((line, column)) => source.origin.position(line, column),
        None => source.origin.file().to_string(),
    };
    let message = if described.outside_sql {
        format!("{}: {}: {}", job.file, source.context, described.message)
    } else {
        format!(
            "{}: {}: {location}: {}",
            job.file, source.context, described.message
        )
    };
    let mut out = match kind {
        ExitKind::Invalid => Error::invalid(message),
        ExitKind::Check => Error::check(message),
        ExitKind::Run => Error::run(message),
    };
    let hint = match &described.placeholder {
        Some(placeholder) => {
            let name = placeholder.trim_start_matches('$');
            let declared = job.params.iter().map(|p| p.name.as_str());
            Some(match closest(name, declared) {
                Some(near) => format!("did you mean '${near}'?"),
                None => format!("declare '{name}' under 'params:' in {}", job.file),
            })
        }
        None => described.hint,
    };
    if let Some(hint) = hint {
        out = out.with_hint(hint);
    }
    out
}

/// A DataFusion error reduced to what a user needs.
#[derive(Debug, Default, PartialEq)]
pub struct Described {
    /// One line, lower case first, without DataFusion's category prefix.
    pub message: String,
    /// Line and column in the SQL text, from 1.
    pub position: Option<(u64, u64)>,
    /// A likely fix.
    pub hint: Option<String>,
    /// A placeholder without a value, such as `$as_of`.
    pub placeholder: Option<String>,
    /// A word of the SQL the error is about, such as a function name, to find its
    /// position when DataFusion gives none.
    pub token: Option<String>,
    /// True when the SQL text is not to blame, such as when the scheduler of a
    /// cluster failed.
    pub outside_sql: bool,
}

/// Reduces a DataFusion error to a message, a position and a hint.
pub fn describe(error: &DataFusionError) -> Described {
    let mut described = Described::default();
    if let DataFusionError::External(external) = error.find_root()
        && let Some(failure) = external.downcast_ref::<crate::cluster::ClusterFailure>()
    {
        described.message = failure.message.clone();
        described.hint = failure.hint.clone();
        described.outside_sql = failure.outside_sql;
        return described;
    }
    if let DataFusionError::ResourcesExhausted(message) = error.find_root() {
        described.message =
            format!("resources exhausted: {}", exhausted_summary(message));
        described.hint = Some(if message.contains("ParquetSink") {
            "raise --memory-limit (or engine.memory_limit): Parquet writers get a quarter \
             of it and cannot spill, and each file open at once needs its share, so an \
             output partitioned into many folders needs more; partition by fewer values"
                .to_string()
        } else {
            "raise --memory-limit (or engine.memory_limit), or lower --target-partitions: \
             sorts and aggregations spill to disk, but each partition of each still needs \
             some memory"
                .to_string()
        });
        return described;
    }
    if let Some(store_error) = crate::storage::find_store_error(error) {
        let (message, hint) = crate::storage::describe_store_error_in_text(store_error);
        described.message = message;
        described.hint = hint;
        return described;
    }
    if let Some(diagnostic) = error.diagnostic() {
        if let Some(span) = diagnostic.span
            && span.start.line > 0
        {
            described.position = Some((span.start.line, span.start.column));
        }
        if let Some(help) = diagnostic.helps.first() {
            described.hint = Some(lower_first(&help.message));
        }
    }

    let root = error.find_root();
    let text = match root {
        DataFusionError::SQL(parser_error, _) => {
            let text = parser_error.to_string();
            let text = text
                .strip_prefix("sql parser error: ")
                .unwrap_or(&text)
                .to_string();
            if let Some((message, position)) = split_parser_position(&text) {
                described.position = described.position.or(Some(position));
                message
            } else {
                text
            }
        }
        DataFusionError::SchemaError(schema_error, _) => {
            if let datafusion::common::SchemaError::FieldNotFound {
                field,
                valid_fields,
            } = schema_error.as_ref()
            {
                let names = valid_fields.iter().map(|c| c.name.as_str());
                if described.hint.is_none()
                    && let Some(near) = closest(&field.name, names)
                {
                    described.hint = Some(format!("did you mean '{near}'?"));
                }
                format!("column '{}' not found", field.flat_name())
            } else {
                schema_error.to_string()
            }
        }
        other => strip_category(&other.to_string()),
    };
    let first_line = text.lines().next().unwrap_or("").trim();
    let first_line = &first_line.replace("'datafusion.public.", "'");
    if let Some(rest) =
        first_line.strip_prefix("No value found for placeholder with name ")
    {
        described.placeholder = Some(rest.trim().to_string());
        described.message = format!("parameter '{}' is not declared", rest.trim());
    } else if let Some(name) = quoted_after(first_line, "Invalid function '") {
        described.message = format!("unknown function '{name}'");
        described.token = Some(name.to_string());
        let suggested = text
            .split("Did you mean '")
            .nth(1)
            .and_then(|rest| rest.split('\'').next());
        described.hint = Some(match suggested.and_then(|s| closest(name, [s])) {
            Some(near) => format!("did you mean '{near}'?"),
            None => "'cra functions' lists the functions cra adds".to_string(),
        });
    } else if let Some(name) = quoted_after(
        first_line,
        "Failed to coerce arguments to satisfy a call to '",
    ) {
        let types = first_line
            .split("coercion from ")
            .nth(1)
            .and_then(|rest| rest.split(" to the signature").next())
            .unwrap_or("these types");
        described.message =
            format!("function '{name}' cannot take arguments of type ({types})");
        described.token = Some(name.to_string());
        described.hint = Some(
            match crate::functions::catalogue()
                .iter()
                .find(|doc| doc.name == name)
            {
                Some(doc) => format!("the signature is {}", doc.signature),
                None => "cast the arguments, for example CAST(x AS DOUBLE)".to_string(),
            },
        );
    } else {
        described.message = lower_first(strip_did_you_mean(first_line));
    }
    described
}

/// Returns the text between `prefix` (which ends with a quote) and the next quote.
fn quoted_after<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = text.split(prefix).nth(1)?;
    rest.split('\'').next().filter(|name| !name.is_empty())
}

/// Returns the table a "table 'x' not found" message names.
pub fn missing_table(message: &str) -> Option<&str> {
    let rest = message.split("table '").nth(1)?;
    let (name, rest) = rest.split_once('\'')?;
    rest.starts_with(" not found").then_some(name)
}

/// Removes DataFusion's "Error during planning: " style prefixes.
fn strip_category(text: &str) -> String {
    const PREFIXES: [&str; 7] = [
        "Error during planning: ",
        "Execution error: ",
        "This feature is not implemented: ",
        "Schema error: ",
        "Invalid argument error: ",
        "Arrow error: ",
        "Optimizer rule ",
    ];
    let mut text = text.trim().to_string();
    loop {
        let before = text.len();
        for prefix in PREFIXES {
            if let Some(rest) = text.strip_prefix(prefix) {
                text = rest.to_string();
            }
        }
        if text.len() == before {
            return text;
        }
    }
}

fn strip_did_you_mean(text: &str) -> &str {
    match text.find(". Did you mean") {
        Some(index) => &text[..index],
        None => text,
    }
}

/// Splits "Expected: ..., found: x at Line: 3, Column: 8" into message and position.
fn split_parser_position(text: &str) -> Option<(String, (u64, u64))> {
    let index = text.rfind(" at Line: ")?;
    let rest = &text[index + " at Line: ".len()..];
    let (line, rest) = rest.split_once(", Column: ")?;
    let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((
        text[..index].to_string(),
        (line.parse().ok()?, column.parse().ok()?),
    ))
}

/// Returns the line and column just after the last character of `sql` that is not
/// white space, where a parser that ran out of text points.
fn end_of_text(sql: &str) -> (u64, u64) {
    let trimmed = sql.trim_end();
    let line = trimmed.lines().count().max(1) as u64;
    let column = trimmed.lines().last().map_or(0, |l| l.chars().count()) as u64 + 1;
    (line, column)
}

/// Finds the first whole-word occurrence of `token` in `sql`, as line and column.
fn find_token(sql: &str, token: &str) -> Option<(u64, u64)> {
    for (line_index, line) in sql.lines().enumerate() {
        let mut start = 0;
        while let Some(found) = line[start..].find(token) {
            let at = start + found;
            let next = line[at + token.len()..].chars().next();
            if !next.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                let column = line[..at].chars().count() as u64 + 1;
                return Some((line_index as u64 + 1, column));
            }
            start = at + token.len();
        }
    }
    None
}

fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) if chars.clone().next().is_some_and(|c| c.is_lowercase()) => {
            first.to_lowercase().chain(chars).collect()
        }
        _ => text.to_string(),
    }
}

/// Shortens DataFusion's out-of-memory message to the failed request and the
/// largest consumers, on one line.
fn exhausted_summary(message: &str) -> String {
    let mut consumers = Vec::new();
    let mut request = None;
    for line in message.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Error: ") {
            request = Some(rest.to_string());
        } else if line.contains(" consumed ") {
            consumers.push(line.trim_end_matches(',').to_string());
        }
    }
    let Some(request) = request else {
        return message.lines().next().unwrap_or_default().to_string();
    };
    if consumers.is_empty() {
        request
    } else {
        format!("{request}; largest users: {}", consumers.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_position_split() {
        let (message, position) = split_parser_position(
            "Expected: end of statement, found: x at Line: 3, Column: 8",
        )
        .unwrap();
        assert_eq!(message, "Expected: end of statement, found: x");
        assert_eq!(position, (3, 8));
    }

    #[test]
    fn end_of_text_skips_trailing_space() {
        assert_eq!(end_of_text("SELECT\n  x AND\n\n"), (2, 8));
        assert_eq!(end_of_text(""), (1, 1));
    }

    #[test]
    fn token_found_as_whole_word() {
        assert_eq!(find_token("select $a_b,\n  $a", "$a"), Some((2, 3)));
        assert_eq!(find_token("select 1", "$a"), None);
    }

    #[test]
    fn category_prefix_removed() {
        assert_eq!(
            strip_category("Error during planning: bad thing"),
            "bad thing"
        );
    }
}
