//! The crate error and its exit codes.
//!
//! Each module reports its own failures; this module gathers them in one [`Error`]
//! so that the command line maps every failure to exactly one exit code and prints
//! it once, with an optional hint.

use std::fmt;

/// Exit kind of a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// The run failed while reading, computing or writing data (exit 1).
    Run,
    /// Bad usage or an invalid job, found before any data row is read (exit 2).
    Invalid,
    /// A data check failed and nothing was published (exit 3).
    Check,
}

impl ExitKind {
    /// Returns the process exit code of this kind.
    pub fn code(self) -> u8 {
        match self {
            ExitKind::Run => 1,
            ExitKind::Invalid => 2,
            ExitKind::Check => 3,
        }
    }
}

/// A failure with its context, from the outside in, and an optional hint.
///
/// The message already carries the context (`jobs/x.yaml: stage 'scored': ...`),
/// so it is printed as it is, prefixed by `error: `.
#[derive(Debug)]
pub struct Error {
    kind: ExitKind,
    message: String,
    hint: Option<String>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
    /// Further problems found in the same pass, printed after this one.
    others: Vec<Error>,
}

/// The crate result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Creates an error of an invalid job or bad usage (exit 2).
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ExitKind::Invalid, message)
    }

    /// Creates an error of a failed run (exit 1).
    pub fn run(message: impl Into<String>) -> Self {
        Self::new(ExitKind::Run, message)
    }

    /// Creates an error of a failed data check (exit 3).
    pub fn check(message: impl Into<String>) -> Self {
        Self::new(ExitKind::Check, message)
    }

    fn new(kind: ExitKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            hint: None,
            source: None,
            others: Vec::new(),
        }
    }

    /// Joins several problems found in one pass into one error, first one leading.
    ///
    /// The exit kind is the first problem's. An empty list is a bug in the caller.
    pub fn many(mut problems: Vec<Error>) -> Self {
        if problems.is_empty() {
            return Error::run(
                "internal error: an empty list of problems was reported; \
                               this is a bug in cra",
            );
        }
        let mut first = problems.remove(0);
        first.others.extend(problems);
        first
    }

    /// Returns this problem followed by the others found with it.
    pub fn problems(&self) -> impl Iterator<Item = &Error> {
        std::iter::once(self).chain(self.others.iter())
    }

    /// Adds a hint, printed on its own `hint:` line.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Keeps the underlying error as the source, for `-v` logs and callers.
    pub fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Prefixes the message with one more level of context, such as the job file.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// Returns how this failure ends the process.
    pub fn kind(&self) -> ExitKind {
        self.kind
    }

    /// Returns the message with its context, without the hint.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Returns the hint, if a fix is likely.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|source| source.as_ref() as &(dyn std::error::Error + 'static))
    }
}

/// Returns the candidate closest to `name`, when one is close enough to be a
/// likely typo.
pub fn closest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(name, candidate), candidate))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}
