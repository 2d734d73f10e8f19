//! What to do about an error: the [`RecoveryAction`] the manager answers
//! with, and the per-kind [`RecoveryStrategy`] (with its [`RetryDelay`])
//! that decides it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::retry::RetryPolicy;

use super::{ErrorRecord, Severity};

/// What the caller should do about an error.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::recovery::RecoveryAction;
///
/// let action = RecoveryAction::Retry { attempt: 1, delay: Duration::from_secs(1) };
/// assert!(action.is_retry());
/// assert!(!RecoveryAction::Abort.is_retry());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecoveryAction {
    /// Wait `delay`, then run the operation again; this is retry number
    /// `attempt` (1 for the first retry).
    Retry {
        /// Which retry this is, from 1.
        attempt: u32,
        /// How long to wait first.
        delay: Duration,
    },
    /// Give up on the operation and use a fallback (a cached value, a
    /// default, a degraded path).
    Fallback,
    /// Give up and report the error.
    Abort,
}

impl RecoveryAction {
    /// Whether the action is a retry.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::recovery::RecoveryAction::Fallback.is_retry() == false);
    /// ```
    pub fn is_retry(&self) -> bool {
        matches!(self, RecoveryAction::Retry { .. })
    }
}

impl fmt::Display for RecoveryAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecoveryAction::Retry { attempt, delay } => {
                write!(f, "retry #{attempt} after {delay:?}")
            }
            RecoveryAction::Fallback => f.write_str("fallback"),
            RecoveryAction::Abort => f.write_str("abort"),
        }
    }
}

/// How long a [`RecoveryStrategy::Retry`] waits before each retry.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::recovery::RetryDelay;
/// use steadfast::retry::RetryPolicy;
///
/// let fixed = RetryDelay::Fixed(Duration::from_millis(250));
/// assert_eq!(fixed.delay_for(3), Duration::from_millis(250));
/// let backoff = RetryDelay::Policy(RetryPolicy::default()); // 1 s, 2 s, 4 s, ...
/// assert_eq!(backoff.delay_for(3), Duration::from_secs(4));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum RetryDelay {
    /// The same delay before every retry.
    Fixed(Duration),
    /// The delays of a [`RetryPolicy`]'s backoff (with its jitter): the
    /// n-th retry waits the n-th delay; past the policy's own retries, its
    /// `max_delay`.
    Policy(RetryPolicy),
}

impl RetryDelay {
    /// The delay before retry number `attempt` (from 1).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::recovery::RetryDelay;
    /// use steadfast::retry::RetryPolicy;
    ///
    /// let policy = RetryPolicy::builder().max_retries(2).build()?;
    /// let delay = RetryDelay::Policy(policy);
    /// assert_eq!(delay.delay_for(1), Duration::from_secs(1));
    /// assert_eq!(delay.delay_for(9), Duration::from_secs(30)); // the policy's max_delay
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn delay_for(&self, attempt: u32) -> Duration {
        match self {
            RetryDelay::Fixed(delay) => *delay,
            RetryDelay::Policy(policy) => {
                let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
                policy
                    .backoff()
                    .nth(index)
                    .unwrap_or_else(|| policy.max_delay())
            }
        }
    }
}

/// A function that decides what to do about an error.
pub type CustomStrategy = Arc<dyn Fn(&ErrorRecord) -> RecoveryAction + Send + Sync>;

/// What to do about errors of one kind.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::recovery::{RecoveryAction, RecoveryStrategy, Severity};
/// use steadfast::retry::RetryPolicy;
///
/// let fixed = RecoveryStrategy::retry(3, Duration::from_millis(100));
/// let backoff = RecoveryStrategy::retry_with_policy(RetryPolicy::default());
/// let by_severity = RecoveryStrategy::custom(|record| {
///     if record.severity >= Severity::High {
///         RecoveryAction::Abort
///     } else {
///         RecoveryAction::Fallback
///     }
/// });
/// assert!(matches!(backoff, RecoveryStrategy::Retry { max_retries: 3, .. }));
/// # let _ = (fixed, by_severity);
/// ```
#[derive(Clone, Default)]
pub enum RecoveryStrategy {
    /// Retry up to `max_retries` times, waiting `delay` before each retry,
    /// errors of at most `max_severity`; more severe errors, and errors past
    /// the last retry, abort.
    Retry {
        /// How many retries an operation gets (errors past this many abort).
        max_retries: u32,
        /// How long to wait before each retry.
        delay: RetryDelay,
        /// The most severe error that is retried.
        max_severity: Severity,
    },
    /// Use a fallback.
    Fallback,
    /// Give up (the default for kinds without a strategy).
    #[default]
    Abort,
    /// Ask a function, which sees the error's record (its
    /// [`occurrence`](ErrorRecord::occurrence) counts the operation's
    /// errors). It runs outside the manager's lock.
    Custom(CustomStrategy),
}

impl fmt::Debug for RecoveryStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecoveryStrategy::Retry {
                max_retries,
                delay,
                max_severity,
            } => f
                .debug_struct("Retry")
                .field("max_retries", max_retries)
                .field("delay", delay)
                .field("max_severity", max_severity)
                .finish(),
            RecoveryStrategy::Fallback => f.write_str("Fallback"),
            RecoveryStrategy::Abort => f.write_str("Abort"),
            RecoveryStrategy::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl RecoveryStrategy {
    /// Retry up to `max_retries` times with a fixed `delay`, errors up to
    /// [`Severity::High`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::recovery::RecoveryStrategy;
    /// let s = RecoveryStrategy::retry(2, Duration::from_secs(1));
    /// assert!(matches!(s, RecoveryStrategy::Retry { max_retries: 2, .. }));
    /// ```
    pub fn retry(max_retries: u32, delay: Duration) -> Self {
        RecoveryStrategy::Retry {
            max_retries,
            delay: RetryDelay::Fixed(delay),
            max_severity: Severity::High,
        }
    }

    /// Retry as `policy` says: its `max_retries`, and its backoff for the
    /// delays; errors up to [`Severity::High`].
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::RecoveryStrategy;
    /// use steadfast::retry::RetryPolicy;
    /// let s = RecoveryStrategy::retry_with_policy(RetryPolicy::builder().max_retries(5).build()?);
    /// assert!(matches!(s, RecoveryStrategy::Retry { max_retries: 5, .. }));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn retry_with_policy(policy: RetryPolicy) -> Self {
        RecoveryStrategy::Retry {
            max_retries: policy.max_retries(),
            delay: RetryDelay::Policy(policy),
            max_severity: Severity::High,
        }
    }

    /// A strategy decided by `f`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::{RecoveryAction, RecoveryStrategy};
    /// let s = RecoveryStrategy::custom(|_| RecoveryAction::Fallback);
    /// assert!(matches!(s, RecoveryStrategy::Custom(_)));
    /// ```
    pub fn custom(f: impl Fn(&ErrorRecord) -> RecoveryAction + Send + Sync + 'static) -> Self {
        RecoveryStrategy::Custom(Arc::new(f))
    }
}

/// What `strategy` says about `record`.
pub(super) fn decide(strategy: &RecoveryStrategy, record: &ErrorRecord) -> RecoveryAction {
    match strategy {
        RecoveryStrategy::Retry {
            max_retries,
            delay,
            max_severity,
        } => {
            if record.severity <= *max_severity && record.occurrence <= *max_retries {
                RecoveryAction::Retry {
                    attempt: record.occurrence,
                    delay: delay.delay_for(record.occurrence),
                }
            } else {
                RecoveryAction::Abort
            }
        }
        RecoveryStrategy::Fallback => RecoveryAction::Fallback,
        RecoveryStrategy::Abort => RecoveryAction::Abort,
        RecoveryStrategy::Custom(f) => f(record),
    }
}
