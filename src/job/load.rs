//! Reading a job file and turning YAML errors into positioned messages.

use std::path::Path;

use super::plan::{JobPlan, resolve};
use super::spec::JobSpec;
use crate::error::{Error, closest};

/// Largest job file cra reads. Job files are hand-written text; anything larger is
/// almost surely the wrong file, and a limit keeps the YAML parser's work bounded.
pub const MAX_JOB_FILE_BYTES: u64 = 1 << 20;

/// Loads, parses and resolves the job file at `file`.
///
/// `overrides` are the `--param name=value` pairs in command-line order.
pub fn load(file: &str, overrides: &[(String, String)]) -> Result<JobPlan, Error> {
    let bytes = read_bytes(file)?;
    load_bytes(file, bytes, overrides)
}

/// Parses and resolves the bytes of a job file named `file`, with the checks
/// that [`load`] makes on the file's contents: size, UTF-8, and not empty.
pub fn load_bytes(
    file: &str,
    bytes: Vec<u8>,
    overrides: &[(String, String)],
) -> Result<JobPlan, Error> {
    let text = check_text(file, bytes)?;
    let spec = parse(file, &text)?;
    resolve(spec, file, &text, overrides)
}

fn read_bytes(file: &str) -> Result<Vec<u8>, Error> {
    let path = Path::new(file);
    let metadata = std::fs::metadata(path).map_err(|error| {
        let message = if error.kind() == std::io::ErrorKind::NotFound {
            format!("{file}: job file not found")
        } else {
            format!("{file}: cannot read job file: {error}")
        };
        Error::invalid(message)
    })?;
    if metadata.is_dir() {
        return Err(Error::invalid(format!(
            "{file}: is a folder, not a job file"
        )));
    }
    if metadata.len() > MAX_JOB_FILE_BYTES {
        return Err(Error::invalid(format!(
            "{file}: job file is {} bytes, more than the limit of {MAX_JOB_FILE_BYTES}",
            metadata.len()
        ))
        .with_hint("keep long SQL in files named by 'sql:'"));
    }
    std::fs::read(path)
        .map_err(|error| Error::invalid(format!("{file}: cannot read job file: {error}")))
}

fn check_text(file: &str, bytes: Vec<u8>) -> Result<String, Error> {
    if bytes.len() as u64 > MAX_JOB_FILE_BYTES {
        return Err(Error::invalid(format!(
            "{file}: job file is {} bytes, more than the limit of {MAX_JOB_FILE_BYTES}",
            bytes.len()
        ))
        .with_hint("keep long SQL in files named by 'sql:'"));
    }
    let text = String::from_utf8(bytes).map_err(|error| {
        let (line, column) =
            position_of_byte(error.as_bytes(), error.utf8_error().valid_up_to());
        Error::invalid(format!(
            "{file}:{line}:{column}: job file is not valid UTF-8"
        ))
    })?;
    if text.trim().is_empty() {
        return Err(Error::invalid(format!("{file}: job file is empty"))
            .with_hint("a job needs at least 'name', 'inputs' and 'outputs'"));
    }
    Ok(text)
}

/// Parses YAML text into a [`JobSpec`], mapping errors to `file:line:column`.
pub fn parse(file: &str, text: &str) -> Result<JobSpec, Error> {
    serde_saphyr::from_str::<JobSpec>(text).map_err(|error| yaml_error(file, &error))
}

fn yaml_error(file: &str, error: &serde_saphyr::Error) -> Error {
    let bare = error.without_snippet();
    let message = reword(&strip_location_suffix(&bare.to_string()));
    let position = bare
        .location()
        .filter(|location| location.line() > 0)
        .map(|location| format!(":{}:{}", location.line(), location.column()))
        .unwrap_or_default();
    // The job-level hint fits only where the document itself is not a mapping.
    let at_start = bare
        .location()
        .is_none_or(|location| location.line() <= 1 && location.column() <= 1);
    let hint = unknown_key_hint(&message)
        .or_else(|| at_start.then(|| reworded_hint(&message)).flatten());
    let mut error = Error::invalid(format!("{file}{position}: {message}"));
    if let Some(hint) = hint {
        error = error.with_hint(hint);
    }
    error
}

/// Removes a trailing ` at line X column Y`, since the position leads the message.
fn strip_location_suffix(message: &str) -> String {
    let first = message.lines().next().unwrap_or(message).trim();
    match first.rfind(" at line ") {
        Some(index) => first[..index].trim_end_matches(',').to_string(),
        None => first.to_string(),
    }
}

/// Rewrites parser messages that speak to developers rather than job authors.
fn reword(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("duplicate mapping key: ") {
        let key = rest
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or(rest);
        return format!("key '{key}' is given twice");
    }
    if message == "expected mapping start" {
        return "expected a mapping of keys here".to_string();
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let key = rest.split('`').next().unwrap_or(rest);
        return format!("required key '{key}' is missing");
    }
    if let Some(expected) = message.strip_prefix("invalid ") {
        // serde-saphyr names the scalar type it could not parse.
        let description = match expected {
            "boolean" => Some("true or false"),
            "integer" => Some("a whole number"),
            "floating point number" | "float" => Some("a number"),
            _ => None,
        };
        if let Some(description) = description {
            return format!("invalid value: expected {description}");
        }
    }
    message.to_string()
}

/// Returns a hint for parser messages that have a usual cause.
fn reworded_hint(message: &str) -> Option<String> {
    if message == "expected a mapping of keys here" {
        return Some(
            "a job file is a mapping with the keys name, inputs, stages and outputs"
                .to_string(),
        );
    }
    None
}

/// Builds "did you mean" from "unknown field `x`, expected one of a, b" (or the same
/// with "unknown variant").
fn unknown_key_hint(message: &str) -> Option<String> {
    let (rest, what) = if let Some(rest) = message.split("unknown field `").nth(1) {
        (rest, "keys")
    } else {
        (message.split("unknown variant `").nth(1)?, "values")
    };
    let (unknown, rest) = rest.split_once('`')?;
    let expected: Vec<&str> = rest
        .split_once("expected one of ")
        .or_else(|| rest.split_once("expected "))
        .map(|(_, list)| list.split(", ").map(|s| s.trim_matches('`')).collect())
        .unwrap_or_default();
    match closest(unknown, expected.iter().copied()) {
        Some(near) => Some(format!("did you mean '{near}'?")),
        None if !expected.is_empty() => {
            Some(format!("valid {what}: {}", expected.join(", ")))
        }
        None => None,
    }
}

fn position_of_byte(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_error(text: &str) -> Error {
        parse("job.yaml", text).unwrap_err()
    }

    const MINIMAL: &str = "name: x\ninputs:\n  t: {path: t.parquet}\n\
                           outputs:\n  - {table: t, path: out}\n";

    #[test]
    fn minimal_job_parses() {
        let spec = parse("job.yaml", MINIMAL).unwrap();
        assert_eq!(spec.name.value, "x");
        assert_eq!(spec.inputs["t"].value.path.value, "t.parquet");
    }

    #[test]
    fn unknown_key_names_closest() {
        let error = parse_error(&format!("{MINIMAL}stagse: []\n"));
        assert!(error.message().contains("stagse"), "{}", error.message());
        assert!(
            error.message().starts_with("job.yaml:6:"),
            "{}",
            error.message()
        );
        assert_eq!(error.hint(), Some("did you mean 'stages'?"));
    }

    #[test]
    fn duplicate_key_rejected() {
        let error = parse_error(&format!("{MINIMAL}name: y\n"));
        assert!(
            error.message().contains("job.yaml:6:"),
            "{}",
            error.message()
        );
        assert!(
            error.message().contains("key 'name' is given twice"),
            "{}",
            error.message()
        );
    }

    #[test]
    fn unknown_type_names_closest() {
        let text = MINIMAL.replace("outputs:", "params:\n  a: {type: integer}\noutputs:");
        let error = parse_error(&text);
        assert!(
            error.message().starts_with("job.yaml:5:13:"),
            "{}",
            error.message()
        );
        assert_eq!(error.hint(), Some("did you mean 'int'?"));
    }

    #[test]
    fn syntax_error_has_position() {
        let error = parse_error("name: [x\n");
        assert!(
            error.message().starts_with("job.yaml:"),
            "{}",
            error.message()
        );
    }

    #[test]
    fn list_document_rejected() {
        let error = parse_error("- a\n- b\n");
        assert!(
            error.message().starts_with("job.yaml"),
            "{}",
            error.message()
        );
    }

    #[test]
    fn missing_key_reported() {
        let error = parse_error("name: x\ninputs: {}\n");
        assert!(error.message().contains("outputs"), "{}", error.message());
    }

    #[test]
    fn utf8_position_counts_lines() {
        assert_eq!(position_of_byte(b"ab\ncd", 4), (2, 2));
    }
}
