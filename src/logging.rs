//! Logs on stderr: human-readable lines, or one JSON object per line.
//!
//! The JSON form has the keys `timestamp` (RFC 3339, UTC), `level`, `job` and
//! `stage` (from the enclosing spans, when there are any), `message`, and `fields`
//! with the event's other fields. Both forms pass through [`crate::redact`], so a
//! value taken from the environment never reaches the log.

use std::io::{IsTerminal, Write};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// Format of the logs on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per event.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

static JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Returns whether logs are JSON, so errors are written as JSON events too.
pub fn is_json() -> bool {
    JSON.load(std::sync::atomic::Ordering::Relaxed)
}

/// Installs the global subscriber. `verbose` counts `-v` flags; `quiet` keeps
/// errors only; `RUST_LOG` overrides both. With `progress` shown, the default
/// level leaves out the info lines that the progress display replaces.
pub fn init(verbose: u8, quiet: bool, format: LogFormat, progress: bool) {
    init_for(verbose, quiet, format, progress, false);
}

/// The module of Ballista's client that logs each cluster job's status.
const BALLISTA_CLIENT: &str = "ballista_core::execution_plans::distributed_query";

/// Installs the global subscriber like [`init`]; with `cluster_process`, for
/// `cra scheduler` and `cra executor`, the default level also keeps Ballista's
/// info lines, such as an executor's registration and its tasks.
pub fn init_for(
    verbose: u8,
    quiet: bool,
    format: LogFormat,
    progress: bool,
    cluster_process: bool,
) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) if cluster_process => {
            "warn,cra=info,ballista_scheduler=info,ballista_executor=info"
        }
        (false, 0) if progress => "warn",
        (false, 0) => "warn,cra=info",
        (false, 1) => "warn,cra=debug",
        (false, _) => "info,cra=trace,datafusion=debug",
    };
    // Ballista's client logs a failed job as an error of its own, in the debug
    // form of the error. cra reports the failure once, in its own words.
    let default = if quiet || verbose > 1 {
        default.to_string()
    } else {
        format!("{default},{BALLISTA_CLIENT}=off")
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    JSON.store(
        format == LogFormat::Json,
        std::sync::atomic::Ordering::Relaxed,
    );
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(RedactingStderr)
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_target(false),
            )
            .try_init(),
        LogFormat::Json => registry.with(JsonLayer).try_init(),
    };
}

/// Writes one error as a JSON line on stderr, with the keys of the JSON log, so a
/// failed run's errors keep that format whatever the log filter allows.
pub fn write_json_error(message: &str, hint: Option<&str>) {
    let mut fields = Map::new();
    if let Some(hint) = hint {
        fields.insert("hint".to_string(), Value::String(hint.to_string()));
    }
    write_json_line("ERROR", Value::Null, Value::Null, message.into(), fields);
}

/// Writes one log line in the JSON form, masked, on stderr.
fn write_json_line(
    level: &str,
    job: Value,
    stage: Value,
    message: Value,
    fields: Map<String, Value>,
) {
    let timestamp =
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut line = Map::new();
    line.insert("timestamp".to_string(), Value::String(timestamp));
    line.insert("level".to_string(), Value::String(level.to_string()));
    line.insert("job".to_string(), job);
    line.insert("stage".to_string(), stage);
    line.insert("message".to_string(), message);
    line.insert("fields".to_string(), Value::Object(fields));
    let mut value = Value::Object(line);
    crate::redact::json(&mut value);
    let mut text = value.to_string();
    text.push('\n');
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Stderr through [`crate::redact::text`]. The fmt layer writes each event with
/// one call, so a value is never split between two writes.
struct RedactingStderr;

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingWriter;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter
    }
}

struct RedactingWriter;

impl Write for RedactingWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(bytes);
        let redacted = crate::redact::text(&text);
        // Errors on stderr cannot be reported anywhere else.
        let _ = std::io::stderr().lock().write_all(redacted.as_bytes());
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Fields of a span, kept in its extensions for the events inside it.
struct SpanFields(Map<String, Value>);

/// Collects fields as JSON values.
struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_string(),
            Value::String(format!("{value:?}")),
        );
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().to_string(), Value::String(value.to_string()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
}

/// Writes each event as one JSON line on stderr.
struct JsonLayer;

impl<S> Layer<S> for JsonLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Map::new();
        attrs.record(&mut JsonVisitor(&mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<SpanFields>()
        {
            values.record(&mut JsonVisitor(&mut fields.0));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Map::new();
        event.record(&mut JsonVisitor(&mut fields));
        let message = fields
            .remove("message")
            .unwrap_or(Value::String(String::new()));

        // The innermost span that carries a field wins.
        let mut context = Map::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(span_fields) = span.extensions().get::<SpanFields>() {
                    for (key, value) in &span_fields.0 {
                        context.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        let mut take = |key: &str| {
            fields
                .remove(key)
                .or_else(|| context.remove(key))
                .unwrap_or(Value::Null)
        };
        let (job, stage) = (take("job"), take("stage"));
        for (key, value) in context {
            fields.entry(key).or_insert(value);
        }

        let level = event.metadata().level().to_string();
        write_json_line(&level, job, stage, message, fields);
    }
}
