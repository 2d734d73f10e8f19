//! [`ConfigFileError`]: why a configuration file, string or environment
//! could not be read, naming the key, and where it was written ([`Origin`]).

use std::fmt;
use std::path::PathBuf;

/// Where a value of the configuration was written: a line and column of a
/// file or string, an environment variable, or nowhere (a default, or a value
/// set in code).
///
/// # Examples
///
/// ```
/// use steadfast::config::Origin;
///
/// let origin = Origin::Text { line: 12, column: 26 };
/// assert_eq!(origin.to_string(), "line 12, column 26");
/// assert_eq!(origin.line(), Some(12));
/// let env = Origin::Env { variable: "STEADFAST_HEALTH__HEARTBEAT_INTERVAL".into() };
/// assert_eq!(env.to_string(), "environment variable STEADFAST_HEALTH__HEARTBEAT_INTERVAL");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Origin {
    /// A position in a TOML or JSON text (1-based line and column, in
    /// characters).
    Text {
        /// The line, counted from 1.
        line: usize,
        /// The column, counted from 1.
        column: usize,
    },
    /// An environment variable.
    Env {
        /// The variable's name.
        variable: String,
    },
    /// Not written anywhere: a default, or a value set in code.
    Unknown,
}

impl Origin {
    /// The line, for a position in a text.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::Origin;
    /// assert_eq!(Origin::Text { line: 3, column: 1 }.line(), Some(3));
    /// assert_eq!(Origin::Unknown.line(), None);
    /// ```
    pub fn line(&self) -> Option<usize> {
        match self {
            Origin::Text { line, .. } => Some(*line),
            _ => None,
        }
    }

    /// The environment variable, for a value read from one.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::Origin;
    /// let env = Origin::Env { variable: "STEADFAST_X".into() };
    /// assert_eq!(env.variable(), Some("STEADFAST_X"));
    /// ```
    pub fn variable(&self) -> Option<&str> {
        match self {
            Origin::Env { variable } => Some(variable),
            _ => None,
        }
    }

    /// The position of byte `offset` in `text`.
    pub(crate) fn at_offset(text: &str, offset: usize) -> Origin {
        let offset = offset.min(text.len());
        let before = text.get(..offset).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        Origin::Text { line, column }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Text { line, column } => write!(f, "line {line}, column {column}"),
            Origin::Env { variable } => write!(f, "environment variable {variable}"),
            Origin::Unknown => f.write_str("set in code or by default"),
        }
    }
}

/// Why a [`FaultToleranceConfig`](super::FaultToleranceConfig) could not be
/// read, written or used.
///
/// Every variant about a value names its full key
/// (`fault_tolerance.breakers.payments.failure_rate_threshold`) and where it
/// was written ([`Origin`]: the line and column of a file, or the
/// environment variable). The file's path, when there is one, is in `file`.
///
/// # Examples
///
/// ```
/// use steadfast::config::{ConfigFileError, FaultToleranceConfig};
///
/// let err = FaultToleranceConfig::from_toml_str(
///     "[fault_tolerance.health]\nheartbeat_interval = \"soon\"\n",
/// )
/// .unwrap_err();
/// assert_eq!(err.key(), Some("fault_tolerance.health.heartbeat_interval"));
/// assert_eq!(err.line(), Some(2));
/// assert!(matches!(err, ConfigFileError::Invalid { .. }));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigFileError {
    /// The file could not be read or written.
    #[error("cannot {operation} config file {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// `"read"` or `"write"`.
        operation: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file's extension says neither TOML nor JSON.
    #[error(
        "cannot tell the format of config file {}: name it *.toml or *.json",
        .path.display()
    )]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// The text is not valid TOML or JSON.
    #[error("{}{format} syntax error at {origin}: {message}", file_prefix(.file))]
    Syntax {
        /// The file, when the text came from one.
        file: Option<PathBuf>,
        /// `"TOML"` or `"JSON"`.
        format: &'static str,
        /// Where the parser stopped.
        origin: Origin,
        /// The parser's message.
        message: String,
    },
    /// A key that no section knows.
    #[error("{}unknown key {key} ({origin}): {expected}", file_prefix(.file))]
    UnknownKey {
        /// The file, when the value came from one.
        file: Option<PathBuf>,
        /// The full key.
        key: String,
        /// Where it was written.
        origin: Origin,
        /// The keys that are known there.
        expected: String,
    },
    /// A key that belongs to a cargo feature this build does not include.
    #[error(
        "{}{key} ({origin}) needs steadfast's `{feature}` cargo feature, which this build \
         does not include: enable the feature or remove the key",
        file_prefix(.file)
    )]
    FeatureMissing {
        /// The file, when the value came from one.
        file: Option<PathBuf>,
        /// The full key.
        key: String,
        /// Where it was written.
        origin: Origin,
        /// The cargo feature it needs.
        feature: &'static str,
    },
    /// A value of the wrong type, or one that does not validate.
    #[error("{}invalid {key} ({origin}): {message}", file_prefix(.file))]
    Invalid {
        /// The file, when the value came from one.
        file: Option<PathBuf>,
        /// The full key.
        key: String,
        /// Where it was written.
        origin: Origin,
        /// What is wrong.
        message: String,
    },
    /// The same setting written twice (a flat key and its section's key).
    #[error(
        "{}{key} ({origin}) is also set as {other} ({other_origin}): set it once",
        file_prefix(.file)
    )]
    Duplicate {
        /// The file, when the value came from one.
        file: Option<PathBuf>,
        /// The full key of the second occurrence.
        key: String,
        /// Where it was written.
        origin: Origin,
        /// The full key of the first occurrence.
        other: String,
        /// Where that was written.
        other_origin: Origin,
    },
    /// An instance was asked for by a name the configuration does not hold.
    #[error("no {kind} named {name:?} in the configuration (known: {known:?})")]
    UnknownInstance {
        /// `"breaker"`, `"retry"`, `"timeout"`, `"bulkhead"`, `"hedge"` or
        /// `"rate_limiter"`.
        kind: &'static str,
        /// The name asked for.
        name: String,
        /// The names the configuration holds for that kind.
        known: Vec<String>,
    },
    /// The configuration could not be written as TOML or JSON.
    #[error("cannot write the configuration as {format}: {message}")]
    Serialize {
        /// `"TOML"` or `"JSON"`.
        format: &'static str,
        /// The serializer's message.
        message: String,
    },
}

fn file_prefix(file: &Option<PathBuf>) -> String {
    file.as_ref()
        .map(|p| format!("{}: ", p.display()))
        .unwrap_or_default()
}

impl ConfigFileError {
    /// The full key the error is about, if it is about one.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::FaultToleranceConfig;
    /// let err = FaultToleranceConfig::from_json_str(r#"{"fault_tolerance": {"helth": {}}}"#).unwrap_err();
    /// assert_eq!(err.key(), Some("fault_tolerance.helth"));
    /// ```
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigFileError::UnknownKey { key, .. }
            | ConfigFileError::FeatureMissing { key, .. }
            | ConfigFileError::Invalid { key, .. }
            | ConfigFileError::Duplicate { key, .. } => Some(key),
            _ => None,
        }
    }

    /// Where the value the error is about was written.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::{FaultToleranceConfig, Origin};
    /// let err = FaultToleranceConfig::from_env_vars([("STEADFAST_HEALTH__FAILURE_THRESHOLD", "many")])
    ///     .unwrap_err();
    /// assert_eq!(err.origin().and_then(Origin::variable), Some("STEADFAST_HEALTH__FAILURE_THRESHOLD"));
    /// ```
    pub fn origin(&self) -> Option<&Origin> {
        match self {
            ConfigFileError::Syntax { origin, .. }
            | ConfigFileError::UnknownKey { origin, .. }
            | ConfigFileError::FeatureMissing { origin, .. }
            | ConfigFileError::Invalid { origin, .. }
            | ConfigFileError::Duplicate { origin, .. } => Some(origin),
            _ => None,
        }
    }

    /// The line of the file or string the error is about, when it is about
    /// a position in one.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::FaultToleranceConfig;
    /// let err = FaultToleranceConfig::from_toml_str("[fault_tolerance]\n\nheartbeat_interval = 5.5.5\n")
    ///     .unwrap_err();
    /// assert_eq!(err.line(), Some(3));
    /// ```
    pub fn line(&self) -> Option<usize> {
        self.origin().and_then(Origin::line)
    }

    /// The cargo feature a key needs, for [`FeatureMissing`](Self::FeatureMissing).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::FaultToleranceConfig;
    /// let result = FaultToleranceConfig::from_toml_str("[fault_tolerance.rate_limiters.api]\npermits = 10\n");
    /// if !cfg!(feature = "rate-limit") {
    ///     assert_eq!(result.unwrap_err().feature(), Some("rate-limit"));
    /// }
    /// ```
    pub fn feature(&self) -> Option<&'static str> {
        match self {
            ConfigFileError::FeatureMissing { feature, .. } => Some(feature),
            _ => None,
        }
    }

    /// Sets the file the error's origin is in (for errors of a text read
    /// from a file).
    pub(crate) fn in_file(mut self, path: &std::path::Path) -> Self {
        match &mut self {
            ConfigFileError::Syntax { file, origin, .. }
            | ConfigFileError::UnknownKey { file, origin, .. }
            | ConfigFileError::FeatureMissing { file, origin, .. }
            | ConfigFileError::Invalid { file, origin, .. }
            | ConfigFileError::Duplicate { file, origin, .. } => {
                if matches!(origin, Origin::Text { .. }) {
                    *file = Some(path.to_path_buf());
                }
            }
            _ => {}
        }
        self
    }
}
