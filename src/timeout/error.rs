//! [`TimeoutError`]: a deadline passed, an operation was cancelled, or a
//! bounded coordinator operation failed.
//!
//! The three are kept apart because callers react to them differently: a
//! deadline that passed is worth another attempt, a cancellation is the
//! caller's own decision and is not, and a coordinator failure carries the
//! coordinator's facts (which ranks did not arrive) as its `source()`.

use std::time::Duration;

use crate::coordinator::CoordinatorError;
use crate::retry::Transient;

/// What went wrong while bounding an operation in time.
///
/// The `operation` of [`Elapsed`](TimeoutError::Elapsed) is an
/// `Option<String>`: `None` when the caller gave the operation no name
/// ([`TimeoutHandler::run`](crate::timeout::TimeoutHandler::run) allocates
/// nothing, not even on failure), and `Some` with the operation id as
/// written (its `Display` form: an id `"upload"` reads `upload`) for
/// operations of a [`TimeoutManager`](crate::timeout::TimeoutManager).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::retry::Transient;
/// use steadfast::timeout::TimeoutError;
///
/// let err = TimeoutError::Elapsed { operation: None, after: Duration::from_secs(5) };
/// assert_eq!(err.to_string(), "operation timed out after 5s");
/// assert!(err.is_elapsed());
/// assert!(err.is_transient());
///
/// let err = TimeoutError::Cancelled { operation: "upload".into() };
/// assert_eq!(err.to_string(), "operation upload was cancelled");
/// assert!(!err.is_transient());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TimeoutError {
    /// The deadline passed before the operation completed.
    #[error("operation {}timed out after {after:?}", name_prefix(operation))]
    Elapsed {
        /// The operation, when it has a name (see the type's documentation).
        operation: Option<String>,
        /// How long the operation was given: the timeout, or for a managed
        /// operation the time from its start to its last (possibly extended)
        /// deadline.
        after: Duration,
    },
    /// The operation was cancelled by its owner: through
    /// [`TimeoutManager::cancel`](crate::timeout::TimeoutManager::cancel) or
    /// [`cancel_all`](crate::timeout::TimeoutManager::cancel_all), or because
    /// another operation was started under the same id.
    #[error("operation {operation} was cancelled")]
    Cancelled {
        /// The operation id, as written (its `Display` form).
        operation: String,
    },
    /// No operation with this id is in progress (it was never started, has
    /// been cancelled, or its guard was dropped).
    #[error("no operation {operation} is in progress")]
    NotFound {
        /// The operation id that was asked for, as written.
        operation: String,
    },
    /// A coordinator operation bounded by a
    /// [`TimeoutHandler`](crate::timeout::TimeoutHandler) failed; the
    /// coordinator's error (with the ranks that did not arrive) is the
    /// source.
    #[error("coordinator {operation} failed")]
    Coordinator {
        /// The coordinator operation (`"barrier"`, `"wait_for_rank"`, ...).
        operation: &'static str,
        /// What the coordinator reported.
        #[source]
        source: CoordinatorError,
    },
}

/// Writes `"name "` for a named operation and nothing otherwise, without
/// allocating.
fn name_prefix(operation: &Option<String>) -> NamePrefix<'_> {
    NamePrefix(operation.as_deref())
}

struct NamePrefix<'a>(Option<&'a str>);

impl std::fmt::Display for NamePrefix<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(name) => write!(f, "{name} "),
            None => Ok(()),
        }
    }
}

impl TimeoutError {
    /// Whether a deadline passed: [`Elapsed`](TimeoutError::Elapsed), or a
    /// coordinator operation that timed out or whose round another rank's
    /// timeout broke.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::coordinator::CoordinatorError;
    /// use steadfast::timeout::TimeoutError;
    ///
    /// let err = TimeoutError::Coordinator {
    ///     operation: "barrier",
    ///     source: CoordinatorError::Timeout {
    ///         operation: "barrier",
    ///         after: Duration::from_secs(1),
    ///         missing: vec![3],
    ///     },
    /// };
    /// assert!(err.is_elapsed());
    /// assert!(!TimeoutError::NotFound { operation: "7".into() }.is_elapsed());
    /// ```
    pub fn is_elapsed(&self) -> bool {
        match self {
            TimeoutError::Elapsed { .. } => true,
            TimeoutError::Coordinator { source, .. } => matches!(
                source,
                CoordinatorError::Timeout { .. } | CoordinatorError::Broken { .. }
            ),
            _ => false,
        }
    }

    /// Whether the operation was cancelled by its owner.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::timeout::TimeoutError;
    /// assert!(TimeoutError::Cancelled { operation: "1".into() }.is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        matches!(self, TimeoutError::Cancelled { .. })
    }

    /// The ranks that did not arrive, for a coordinator timeout or broken
    /// round; empty otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::coordinator::CoordinatorError;
    /// use steadfast::timeout::TimeoutError;
    ///
    /// let err = TimeoutError::Coordinator {
    ///     operation: "wait_for_rank",
    ///     source: CoordinatorError::Timeout {
    ///         operation: "wait_for_rank",
    ///         after: Duration::from_secs(1),
    ///         missing: vec![2],
    ///     },
    /// };
    /// assert_eq!(err.missing_ranks(), &[2]);
    /// ```
    pub fn missing_ranks(&self) -> &[usize] {
        match self {
            TimeoutError::Coordinator { source, .. } => source.missing_ranks(),
            _ => &[],
        }
    }
}

/// [`Elapsed`](TimeoutError::Elapsed) is transient (a new attempt gets a new
/// deadline); [`Cancelled`](TimeoutError::Cancelled) and
/// [`NotFound`](TimeoutError::NotFound) are not; coordinator errors are
/// classified by the coordinator error itself.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::CoordinatorError;
/// use steadfast::retry::Transient;
/// use steadfast::timeout::TimeoutError;
///
/// let unavailable = TimeoutError::Coordinator {
///     operation: "barrier",
///     source: CoordinatorError::unavailable("connection reset"),
/// };
/// assert!(unavailable.is_transient());
/// let bad_rank = TimeoutError::Coordinator {
///     operation: "wait_for_rank",
///     source: CoordinatorError::InvalidRank { rank: 9, world_size: 4 },
/// };
/// assert!(!bad_rank.is_transient());
/// ```
impl Transient for TimeoutError {
    fn is_transient(&self) -> bool {
        match self {
            TimeoutError::Elapsed { .. } => true,
            TimeoutError::Cancelled { .. } | TimeoutError::NotFound { .. } => false,
            TimeoutError::Coordinator { source, .. } => source.is_transient(),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            TimeoutError::Coordinator { source, .. } => source.retry_after(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn displays_name_the_operation_and_the_duration() {
        let named = TimeoutError::Elapsed {
            operation: Some("\"upload\"".into()),
            after: Duration::from_millis(1_500),
        };
        assert_eq!(
            named.to_string(),
            "operation \"upload\" timed out after 1.5s"
        );
        let missing = TimeoutError::NotFound {
            operation: "42".into(),
        };
        assert_eq!(missing.to_string(), "no operation 42 is in progress");
    }

    #[test]
    fn coordinator_errors_are_the_source() {
        let err = TimeoutError::Coordinator {
            operation: "barrier",
            source: CoordinatorError::Timeout {
                operation: "barrier",
                after: Duration::from_secs(2),
                missing: vec![1, 3],
            },
        };
        assert_eq!(err.to_string(), "coordinator barrier failed");
        let source = err.source().expect("a source");
        assert!(source.to_string().contains("[1, 3]"));
        assert!(err.is_transient());
        assert_eq!(err.missing_ranks(), &[1, 3]);
        assert!(TimeoutError::Elapsed {
            operation: None,
            after: Duration::ZERO
        }
        .source()
        .is_none());
    }
}
