//! What the recovery manager knows about an error: its [`Severity`], the
//! [`Classify`] trait through which an error type names its kind and
//! severity, and the [`ErrorRecord`] kept in the history.
//!
//! The recovery module has no failure of its own to report (a bad
//! [`RecoveryConfig`](super::RecoveryConfig) is a
//! [`ConfigError`](crate::ConfigError), like every config's): the errors
//! here are the caller's, described for the manager.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// How serious an error is, from least to most.
///
/// A [`RecoveryStrategy::Retry`](super::RecoveryStrategy::Retry) retries errors up to its `max_severity`
/// (High unless set otherwise); a Critical error is never retried by the
/// default Retry strategy.
///
/// # Examples
///
/// ```
/// use steadfast::recovery::Severity;
/// assert!(Severity::Low < Severity::Critical);
/// assert_eq!(Severity::High.to_string(), "high");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// A nuisance: a cache miss, a slow call.
    Low,
    /// A transient failure that a retry is likely to fix.
    Medium,
    /// A failure that may not go away by itself.
    High,
    /// A failure that must not be retried: bad input, lost data, a bug.
    Critical,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        })
    }
}

/// An error type that knows its kind and severity, for
/// [`ErrorRecoveryManager::record_error`](super::ErrorRecoveryManager::record_error).
///
/// # Examples
///
/// ```
/// use std::borrow::Cow;
/// use steadfast::recovery::{Classify, ErrorRecoveryManager, Severity};
///
/// #[derive(Debug)]
/// enum DbError { Timeout, Corrupt }
///
/// impl std::fmt::Display for DbError {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         write!(f, "{self:?}")
///     }
/// }
///
/// impl Classify for DbError {
///     fn kind(&self) -> Cow<'static, str> {
///         match self {
///             DbError::Timeout => "db.timeout".into(),
///             DbError::Corrupt => "db.corrupt".into(),
///         }
///     }
///     fn severity(&self) -> Severity {
///         match self {
///             DbError::Timeout => Severity::Medium,
///             DbError::Corrupt => Severity::Critical,
///         }
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let recovery = ErrorRecoveryManager::default();
/// recovery.record_error("op-1", &DbError::Corrupt);
/// assert_eq!(recovery.statistics().by_kind["db.corrupt"], 1);
/// # }
/// ```
pub trait Classify {
    /// The error's kind, the key of its [`RecoveryStrategy`](super::RecoveryStrategy).
    fn kind(&self) -> Cow<'static, str>;

    /// How serious it is.
    fn severity(&self) -> Severity;
}

/// One recorded error.
///
/// # Examples
///
/// ```
/// use steadfast::recovery::{ErrorRecoveryManager, Severity};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let recovery = ErrorRecoveryManager::default();
/// recovery.record("upload-7", "s3.put", Severity::High, "503 slow down");
/// let record = &recovery.history()[0];
/// assert_eq!(record.operation_id, "upload-7");
/// assert_eq!(record.kind, "s3.put");
/// assert_eq!(record.occurrence, 1);
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorRecord {
    /// The operation it happened in.
    pub operation_id: String,
    /// Its kind.
    pub kind: Cow<'static, str>,
    /// Its severity.
    pub severity: Severity,
    /// What went wrong.
    pub message: String,
    /// When it was recorded.
    pub at: Instant,
    /// How many errors this operation has recorded since its last reset,
    /// this one included (1 for the first).
    pub occurrence: u32,
}
