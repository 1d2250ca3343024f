//! Redaction of values that a job takes from the environment.
//!
//! A job names environment variables as `${env:NAME}`, and their values may be
//! credentials. Each value is registered here when the job is loaded. Every text
//! cra prints or writes about a run (logs, errors, summaries, manifests and plans)
//! passes through [`text`] or [`json`] first, which replace each registered value
//! with [`MASK`].

use std::borrow::Cow;
use std::sync::{OnceLock, RwLock};

/// Replacement of a redacted value.
pub const MASK: &str = "***";

fn secrets() -> &'static RwLock<Vec<String>> {
    static SECRETS: OnceLock<RwLock<Vec<String>>> = OnceLock::new();
    SECRETS.get_or_init(|| RwLock::new(Vec::new()))
}

/// Values shorter than this are not masked, because they cannot be distinguished
/// from ordinary text and masking them would garble every message.
pub const MIN_CHARS: usize = 4;

/// Registers a value to be redacted from now on; values shorter than
/// [`MIN_CHARS`] are ignored.
pub fn register(value: &str) {
    if value.chars().count() < MIN_CHARS {
        return;
    }
    let mut secrets = secrets().write().unwrap_or_else(|e| e.into_inner());
    if !secrets.iter().any(|s| s == value) {
        secrets.push(value.to_string());
        // Longer values first, so a value that contains another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// Stops masking `value`, for values that are not secret in free text.
pub fn forget(value: &str) {
    let mut secrets = secrets().write().unwrap_or_else(|e| e.into_inner());
    secrets.retain(|s| s != value);
}

/// Returns `text` with every registered value replaced by [`MASK`].
pub fn text(text: &str) -> Cow<'_, str> {
    let secrets = secrets().read().unwrap_or_else(|e| e.into_inner());
    if !secrets.iter().any(|s| text.contains(s.as_str())) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for secret in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), MASK);
        }
    }
    Cow::Owned(out)
}

/// Serializes `value` as pretty JSON with every registered value masked in its
/// strings. Without registered values the fields keep their declared order;
/// with some, the JSON passes through [`json`], which sorts object keys.
pub fn to_json_pretty<T: serde::Serialize>(value: &T) -> serde_json::Result<Vec<u8>> {
    let any = !secrets()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .is_empty();
    if !any {
        return serde_json::to_vec_pretty(value);
    }
    let mut tree = serde_json::to_value(value)?;
    json(&mut tree);
    serde_json::to_vec_pretty(&tree)
}

/// Redacts every string value in a JSON value. Keys are cra's own names and
/// stay as they are, so the document keeps its schema.
pub fn json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) => {
            if let Cow::Owned(redacted) = text(s) {
                *s = redacted;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(json),
        serde_json::Value::Object(map) => map.values_mut().for_each(json),
        _ => {}
    }
}

/// Replaces each `${env:NAME}` in `value` with the variable's value and registers
/// that value for redaction. Returns the name of a variable that is not set, or
/// a description of a malformed reference.
pub fn expand_env(value: &str) -> Result<String, String> {
    expand(value, true)
}

/// Replaces each `${env:NAME}` like [`expand_env`] but registers nothing, for
/// settings that are not secret and appear in messages, such as a region.
pub fn expand_env_public(value: &str) -> Result<String, String> {
    expand(value, false)
}

fn expand(value: &str, secret: bool) -> Result<String, String> {
    const OPEN: &str = "${env:";
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        let Some(end) = after.find('}') else {
            return Err(format!("'{OPEN}' has no closing '}}'"));
        };
        let name = &after[..end];
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!("'${{env:{name}}}' does not name a variable"));
        }
        match std::env::var(name) {
            Ok(found) => {
                if secret {
                    register(&found);
                }
                out.push_str(&found);
            }
            Err(std::env::VarError::NotPresent) => {
                return Err(format!("environment variable {name} is not set"));
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(format!("environment variable {name} is not valid UTF-8"));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_values_are_masked_in_text_and_json() {
        register("s3cr3t-value-for-redact-test");
        assert_eq!(
            text("key=s3cr3t-value-for-redact-test!"),
            format!("key={MASK}!")
        );
        let mut value = serde_json::json!({
            "a": ["x s3cr3t-value-for-redact-test"],
            "b": {"c": "s3cr3t-value-for-redact-test"}
        });
        json(&mut value);
        let expected = serde_json::json!({"a": [format!("x {MASK}")], "b": {"c": MASK}});
        assert_eq!(value, expected);
        // Too short to tell apart from ordinary text.
        register("abc");
        assert_eq!(text("abc"), "abc");
        assert!(matches!(text("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn env_references_expand_and_register() {
        // SAFETY: only this test sets or reads this variable.
        unsafe { std::env::set_var("CRA_REDACT_TEST_VALUE", "expanded-secret-42") };
        let expanded = expand_env("a/${env:CRA_REDACT_TEST_VALUE}/b").unwrap();
        assert_eq!(expanded, "a/expanded-secret-42/b");
        assert_eq!(text("expanded-secret-42"), MASK);
        assert!(
            expand_env("${env:CRA_REDACT_TEST_UNSET}")
                .unwrap_err()
                .contains("not set")
        );
        assert!(expand_env("${env:bad name}").is_err());
        assert!(expand_env("${env:OPEN").is_err());
        assert_eq!(expand_env("plain").unwrap(), "plain");
    }
}
