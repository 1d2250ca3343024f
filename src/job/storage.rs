//! Resolving the `storage:` section and the `AWS_*` variables into the settings
//! of every bucket a job names.
//!
//! Everything here is checked before any store is contacted, so a malformed
//! endpoint, a credential written into the job file or a missing key exits with
//! code 2 and a position.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_saphyr::Spanned;

use super::plan::{InputPlan, OutputPlan, Resolver};
use super::spec::{S3Spec, ScalarSpec, StorageSpec};
use crate::error::closest;
use crate::storage::{S3Settings, Secret, StoragePlan};

/// Environment variables read for each setting, first match wins.
const ENV_ENDPOINT: [&str; 3] =
    ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"];
const ENV_REGION: [&str; 2] = ["AWS_REGION", "AWS_DEFAULT_REGION"];

/// Reads one scalar setting of a layer.
type Getter = fn(&S3Spec) -> Option<&Spanned<ScalarSpec>>;

/// A setting as found, with where it came from.
struct Found {
    value: String,
    source: String,
    /// The environment variable the value came from, for credentials.
    variable: Option<String>,
    /// The job file position, for settings the job file gave.
    position: Option<(u64, u64)>,
}

impl Resolver<'_> {
    /// Returns the settings of every bucket that an input or output is in.
    pub(super) fn storage(
        &mut self,
        spec: Option<&StorageSpec>,
        inputs: &[InputPlan],
        outputs: &[OutputPlan],
    ) -> StoragePlan {
        let section = spec.and_then(|storage| storage.s3.as_ref());
        let used: Vec<&str> = inputs
            .iter()
            .map(|input| &input.location)
            .chain(outputs.iter().map(|output| &output.location))
            .filter_map(|location| location.bucket())
            .collect();

        if let Some(section) = section {
            for (bucket, settings) in &section.value.buckets {
                if !settings.value.buckets.is_empty() {
                    self.problem(
                        settings,
                        format!("storage.s3.buckets.{bucket}: 'buckets' cannot nest"),
                        None,
                    );
                }
                if !used.contains(&bucket.as_str()) {
                    let hint = match closest(bucket, used.iter().copied()) {
                        Some(near) => format!("did you mean '{near}'?"),
                        None => {
                            "remove it, or name the bucket in an s3:// path".to_string()
                        }
                    };
                    self.problem(
                        settings,
                        format!(
                            "storage.s3.buckets names bucket '{bucket}', which no input \
                             or output is in"
                        ),
                        Some(hint),
                    );
                }
            }
        }

        let mut buckets = BTreeMap::new();
        for bucket in used {
            if buckets.contains_key(bucket) {
                continue;
            }
            let per_bucket = section
                .and_then(|section| section.value.buckets.get(bucket))
                .map(|settings| &settings.value);
            let layers = [per_bucket, section.map(|section| &section.value)];
            let settings = self.bucket_settings(bucket, &layers);
            buckets.insert(bucket.to_string(), settings);
        }
        StoragePlan { buckets }
    }

    fn bucket_settings(
        &mut self,
        bucket: &str,
        layers: &[Option<&S3Spec>],
    ) -> S3Settings {
        let mut settings = S3Settings::default();
        let prefix = if layers[0].is_some() {
            format!("storage.s3.buckets.{bucket}")
        } else {
            "storage.s3".to_string()
        };
        macro_rules! find {
            ($field:ident, $env:expr, $secret:expr) => {
                self.find(
                    layers
                        .iter()
                        .map(|layer| layer.and_then(|s| s.$field.as_ref())),
                    stringify!($field),
                    &$env,
                    $secret,
                )
            };
        }

        let flags: [(&'static str, &str, Getter); 3] = [
            (
                "virtual_hosted_style",
                "AWS_VIRTUAL_HOSTED_STYLE_REQUEST",
                |s| s.virtual_hosted_style.as_ref(),
            ),
            ("allow_http", "AWS_ALLOW_HTTP", |s| s.allow_http.as_ref()),
            ("skip_signature", "AWS_SKIP_SIGNATURE", |s| {
                s.skip_signature.as_ref()
            }),
        ];
        for (key, env, get) in flags {
            let value = self.find_flag(layers, key, get).or_else(|| {
                std::env::var(env).ok().map(|value| {
                    ["true", "1", "yes"]
                        .iter()
                        .any(|yes| value.trim().eq_ignore_ascii_case(yes))
                })
            });
            if let Some(value) = value {
                match key {
                    "virtual_hosted_style" => settings.virtual_hosted_style = value,
                    "allow_http" => settings.allow_http = value,
                    _ => settings.skip_signature = value,
                }
            }
        }

        if let Some(found) = find!(endpoint, ENV_ENDPOINT, false) {
            if let Err((message, hint)) =
                check_endpoint(&found.value, settings.allow_http)
            {
                self.setting_problem(&found, &prefix, "endpoint", message, hint);
            }
            settings.sources.insert("endpoint", found.source.clone());
            settings.endpoint = Some(found.value);
        }
        if let Some(found) = find!(region, ENV_REGION, false) {
            if found.value.trim().is_empty() {
                self.setting_problem(&found, &prefix, "region", "is empty".into(), None);
            }
            settings.sources.insert("region", found.source.clone());
            settings.region = found.value;
        }
        let problems_before = self.problems.len();
        let key_id = find!(access_key_id, ["AWS_ACCESS_KEY_ID"], true);
        let secret = find!(secret_access_key, ["AWS_SECRET_ACCESS_KEY"], true);
        let token = find!(session_token, ["AWS_SESSION_TOKEN"], true);
        for (key, found) in [
            ("access_key_id", &key_id),
            ("secret_access_key", &secret),
            ("session_token", &token),
        ] {
            if let Some(found) = found {
                settings.sources.insert(key, found.source.clone());
                if let Some(variable) = &found.variable {
                    settings.credential_variables.insert(key, variable.clone());
                }
            }
        }
        for (key, found) in [("access_key_id", &key_id), ("secret_access_key", &secret)] {
            if let Some(found) = found.as_ref().filter(|found| found.value.is_empty()) {
                self.setting_problem(found, &prefix, key, "is empty".into(), None);
            }
        }
        // A credential already rejected above would be reported again as missing.
        let credentials_rejected = self.problems.len() > problems_before;
        match (&key_id, &secret) {
            _ if credentials_rejected => {}
            (Some(_), Some(_)) => {}
            (None, None) if settings.skip_signature => {}
            (None, None) => self.problem_without_position(
                format!("bucket '{bucket}': no credentials"),
                Some(
                    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or access_key_id and \
                     secret_access_key under storage.s3 as ${env:NAME} references; set \
                     skip_signature: true for a public bucket. cra reads no instance or \
                     container credentials"
                        .to_string(),
                ),
            ),
            (Some(found), None) | (None, Some(found)) => {
                let missing = if key_id.is_none() {
                    "access_key_id"
                } else {
                    "secret_access_key"
                };
                self.problem_without_position(
                    format!(
                        "bucket '{bucket}': {missing} is missing, while the other key \
                         comes from {}",
                        found.source
                    ),
                    Some("give both the access key id and the secret access key".into()),
                );
            }
        }
        settings.access_key_id = key_id.map(|found| Secret(found.value));
        settings.secret_access_key = secret.map(|found| Secret(found.value));
        settings.session_token = token.map(|found| Secret(found.value));

        if let Some((value, source)) =
            self.find_number(layers, "retries", |s| s.retries.as_ref())
        {
            settings.retries = value as usize;
            settings.sources.insert("retries", source);
        }
        let durations: [(&'static str, Getter); 3] = [
            ("retry_timeout", |s| s.retry_timeout.as_ref()),
            ("connect_timeout", |s| s.connect_timeout.as_ref()),
            ("timeout", |s| s.timeout.as_ref()),
        ];
        for (key, get) in durations {
            if let Some((value, source)) = self.find_duration(layers, key, get) {
                match key {
                    "retry_timeout" => settings.retry_timeout = value,
                    "connect_timeout" => settings.connect_timeout = value,
                    _ => settings.timeout = value,
                }
                settings.sources.insert(key, source);
            }
        }
        settings
    }

    /// Finds a text setting in the first layer that has it, else in the first
    /// environment variable that is set.
    fn find<'s>(
        &mut self,
        layers: impl Iterator<Item = Option<&'s Spanned<String>>>,
        key: &str,
        env: &[&str],
        secret: bool,
    ) -> Option<Found> {
        if let Some(value) = layers.flatten().next() {
            let position = (value.referenced.line(), value.referenced.column());
            let source = format!("{}:{}:{}", self.file, position.0, position.1);
            if secret && !is_env_reference(&value.value) {
                self.problem(
                    value,
                    format!("storage.s3.{key}: a credential must not be written in the job file"),
                    Some(format!(
                        "write {key}: ${{env:NAME}} and set NAME in the environment"
                    )),
                );
                return None;
            }
            let expanded = if secret {
                crate::redact::expand_env(&value.value)
            } else {
                crate::redact::expand_env_public(&value.value)
            };
            // A credential is one whole `${env:NAME}` reference, checked above.
            let variable = secret
                .then(|| value.value["${env:".len()..value.value.len() - 1].to_string());
            return match expanded {
                Ok(text) => Some(Found {
                    value: text,
                    source,
                    variable,
                    position: Some(position),
                }),
                Err(message) => {
                    self.problem(value, format!("storage.s3.{key}: {message}"), None);
                    None
                }
            };
        }
        for name in env {
            if let Ok(text) = std::env::var(name) {
                if secret {
                    crate::redact::register(&text);
                }
                return Some(Found {
                    value: text,
                    source: (*name).to_string(),
                    variable: secret.then(|| (*name).to_string()),
                    position: None,
                });
            }
        }
        None
    }

    fn setting_problem(
        &mut self,
        found: &Found,
        prefix: &str,
        key: &str,
        message: String,
        hint: Option<String>,
    ) {
        let message = match found.position {
            Some((line, column)) => {
                format!("{}:{line}:{column}: {prefix}.{key} {message}", self.file)
            }
            None => format!("{}: {} {message}", self.file, found.source),
        };
        // Several buckets share the section's settings, so report each once.
        if self
            .problems
            .iter()
            .any(|problem| problem.message() == message)
        {
            return;
        }
        let mut error = crate::error::Error::invalid(message);
        if let Some(hint) = hint {
            error = error.with_hint(hint);
        }
        self.problems.push(error);
    }

    /// Finds a scalar setting, expanded, in the first layer that has it.
    fn find_scalar(
        &mut self,
        layers: &[Option<&S3Spec>],
        get: impl Fn(&S3Spec) -> Option<&Spanned<ScalarSpec>>,
    ) -> Option<(ScalarSpec, String, (u64, u64))> {
        let value = layers.iter().flatten().find_map(|layer| get(layer))?;
        let position = (value.referenced.line(), value.referenced.column());
        let source = format!("{}:{}:{}", self.file, position.0, position.1);
        let scalar = match &value.value {
            ScalarSpec::String(text) if text.contains("${env:") => {
                match crate::redact::expand_env_public(text) {
                    Ok(text) => ScalarSpec::String(text),
                    Err(message) => {
                        self.problem(value, message, None);
                        return None;
                    }
                }
            }
            other => other.clone(),
        };
        Some((scalar, source, position))
    }

    fn find_flag(
        &mut self,
        layers: &[Option<&S3Spec>],
        key: &str,
        get: impl Fn(&S3Spec) -> Option<&Spanned<ScalarSpec>>,
    ) -> Option<bool> {
        let (scalar, _, position) = self.find_scalar(layers, get)?;
        match scalar {
            ScalarSpec::Bool(value) => Some(value),
            ScalarSpec::String(text) if text.eq_ignore_ascii_case("true") => Some(true),
            ScalarSpec::String(text) if text.eq_ignore_ascii_case("false") => Some(false),
            _ => {
                self.problem_at(
                    position,
                    format!("storage.s3.{key} must be true or false"),
                );
                None
            }
        }
    }

    fn find_number(
        &mut self,
        layers: &[Option<&S3Spec>],
        key: &str,
        get: impl Fn(&S3Spec) -> Option<&Spanned<ScalarSpec>>,
    ) -> Option<(u64, String)> {
        let (scalar, source, position) = self.find_scalar(layers, get)?;
        let value = match scalar {
            ScalarSpec::Int(value) => u64::try_from(value).ok(),
            ScalarSpec::String(text) => text.trim().parse().ok(),
            _ => None,
        };
        match value {
            Some(value) if value <= 100 => Some((value, source)),
            _ => {
                self.problem_at(
                    position,
                    format!("storage.s3.{key} must be a whole number from 0 to 100"),
                );
                None
            }
        }
    }

    fn find_duration(
        &mut self,
        layers: &[Option<&S3Spec>],
        key: &str,
        get: impl Fn(&S3Spec) -> Option<&Spanned<ScalarSpec>>,
    ) -> Option<(Duration, String)> {
        let (scalar, source, position) = self.find_scalar(layers, get)?;
        let value = match scalar {
            ScalarSpec::Int(seconds) => {
                u64::try_from(seconds).ok().map(Duration::from_secs)
            }
            ScalarSpec::Float(seconds) if seconds.is_finite() && seconds >= 0.0 => {
                Some(Duration::from_secs_f64(seconds))
            }
            ScalarSpec::String(text) => parse_duration(&text),
            _ => None,
        };
        match value {
            Some(value) if !value.is_zero() && value <= Duration::from_secs(3600) => {
                Some((value, source))
            }
            _ => {
                self.problem_at(
                    position,
                    format!(
                        "storage.s3.{key} must be a time above zero and at most an hour, \
                         such as 500ms, 30s or 2m"
                    ),
                );
                None
            }
        }
    }

    fn problem_at(&mut self, (line, column): (u64, u64), message: String) {
        self.problems.push(crate::error::Error::invalid(format!(
            "{}:{line}:{column}: {message}",
            self.file
        )));
    }
}

/// Returns true when `text` is one `${env:NAME}` reference and nothing else.
fn is_env_reference(text: &str) -> bool {
    text.starts_with("${env:") && text.ends_with('}') && text.matches("${").count() == 1
}

/// Parses `500ms`, `30s`, `2m`, `1h` or a bare number of seconds.
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let number: f64 = number.trim().parse().ok()?;
    if !number.is_finite() || number < 0.0 {
        return None;
    }
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(seconds))
}

/// Checks an endpoint URL: `http` or `https`, a host, and no path.
fn check_endpoint(text: &str, allow_http: bool) -> Result<(), (String, Option<String>)> {
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err((
            format!("'{text}' is not a URL"),
            Some("write the scheme and host, such as http://127.0.0.1:3900".into()),
        ));
    };
    if scheme != "http" && scheme != "https" {
        return Err((
            format!("'{text}' uses '{scheme}://'; an endpoint is http:// or https://"),
            None,
        ));
    }
    if rest.is_empty() || rest.starts_with('/') {
        return Err((format!("'{text}' names no host"), None));
    }
    if let Some(bad) = rest
        .chars()
        .find(|c| ['?', '#', '@'].contains(c) || c.is_whitespace())
    {
        // A user part may hold a password, so the endpoint is not shown.
        return Err((
            format!(
                "{scheme}://... has {bad:?}; an endpoint has no query, fragment, user or \
                 spaces"
            ),
            Some("write the scheme, the host and the port only".into()),
        ));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if let Some((_, port)) = authority.rsplit_once(':')
        && !authority.ends_with(']')
        && !port.parse::<u16>().is_ok_and(|port| port > 0)
    {
        return Err((
            format!("'{text}' has the port '{port}', which is not from 1 to 65535"),
            None,
        ));
    }
    if let Some(path) = rest.find('/').map(|at| &rest[at..]) {
        let trimmed = text.trim_end_matches('/');
        return Err(if path.chars().all(|c| c == '/') {
            (
                format!("'{text}' ends with '/'"),
                Some(format!(
                    "write '{trimmed}': the client adds the bucket and key after the \
                     endpoint, and a trailing '/' makes every signature wrong"
                )),
            )
        } else {
            (
                format!("'{text}' has a path after the host"),
                Some("an endpoint is a scheme, a host and a port only".into()),
            )
        });
    }
    if scheme == "http" && !allow_http {
        return Err((
            format!("'{text}' is plain HTTP, which is off by default"),
            Some(
                "set allow_http: true (or AWS_ALLOW_HTTP=true) for a loopback or trusted \
                 network, or use https://"
                    .into(),
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2d"), None);
        assert_eq!(parse_duration("-1s"), None);
    }

    #[test]
    fn endpoints_are_checked() {
        assert!(check_endpoint("http://127.0.0.1:3900", true).is_ok());
        assert!(check_endpoint("https://s3.example.com", false).is_ok());
        let (message, hint) = check_endpoint("http://127.0.0.1:3900/", true).unwrap_err();
        assert!(message.contains("ends with '/'"), "{message}");
        assert!(hint.unwrap().contains("'http://127.0.0.1:3900'"));
        assert!(check_endpoint("http://127.0.0.1:3900", false).is_err());
        assert!(check_endpoint("127.0.0.1:3900", true).is_err());
        assert!(check_endpoint("http://h/bucket", true).is_err());
        assert!(check_endpoint("ftp://h", true).is_err());
    }

    #[test]
    fn only_whole_env_references_are_credentials() {
        assert!(is_env_reference("${env:KEY}"));
        assert!(!is_env_reference("abc${env:KEY}"));
        assert!(!is_env_reference("AKIA0000"));
    }
}
