//! What the tower layers return besides the errors of the strategies they
//! apply: [`TimeoutError`], the error of a call through the
//! [`TimeoutLayer`](super::TimeoutLayer).
//!
//! The other layers return the error types of their strategy, each
//! wrapping the inner service's error: [`BulkheadError`](crate::pipeline::BulkheadError),
//! [`BreakerError`](crate::breaker::BreakerError) and
//! [`RetryError`](crate::retry::RetryError).

use std::error::Error;
use std::fmt;
use std::time::Duration;

use crate::retry::Transient;

/// The error of a call through a [`TimeoutService`](super::TimeoutService):
/// the deadline passed, or the inner service failed.
///
/// (Not to be confused with [`crate::timeout::TimeoutError`], the error of
/// the timeout handler and manager, which does not wrap a caller's error.)
///
/// `Display` says which; [`Error::source`] is the inner service's error for
/// [`Inner`](Self::Inner). [`Transient`] is implemented when `E` implements
/// it: a timeout is transient, an inner error is classified by `E`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::retry::Transient;
/// use steadfast::tower::TimeoutError;
///
/// let err: TimeoutError<std::io::Error> = TimeoutError::Elapsed { after: Duration::from_secs(2) };
/// assert!(err.is_elapsed());
/// assert!(err.is_transient());
/// assert_eq!(err.to_string(), "call timed out after 2s");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum TimeoutError<E> {
    /// The call did not complete within the layer's timeout; it was
    /// dropped (cancelled).
    Elapsed {
        /// The timeout.
        after: Duration,
    },
    /// The inner service returned this error.
    Inner(E),
}

impl<E> TimeoutError<E> {
    /// Whether the deadline passed.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::tower::TimeoutError;
    /// assert!(!TimeoutError::Inner("refused").is_elapsed());
    /// ```
    pub fn is_elapsed(&self) -> bool {
        matches!(self, TimeoutError::Elapsed { .. })
    }

    /// The inner service's error, if it failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::tower::TimeoutError;
    /// assert_eq!(TimeoutError::Inner("refused").inner(), Some(&"refused"));
    /// ```
    pub fn inner(&self) -> Option<&E> {
        match self {
            TimeoutError::Inner(error) => Some(error),
            TimeoutError::Elapsed { .. } => None,
        }
    }

    /// The inner service's error, if it failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::tower::TimeoutError;
    /// assert_eq!(TimeoutError::Inner("refused").into_inner(), Some("refused"));
    /// ```
    pub fn into_inner(self) -> Option<E> {
        match self {
            TimeoutError::Inner(error) => Some(error),
            TimeoutError::Elapsed { .. } => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for TimeoutError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeoutError::Elapsed { after } => write!(f, "call timed out after {after:?}"),
            TimeoutError::Inner(error) => write!(f, "call failed: {error}"),
        }
    }
}

impl<E: Error + 'static> Error for TimeoutError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            TimeoutError::Inner(error) => Some(error),
            TimeoutError::Elapsed { .. } => None,
        }
    }
}

/// A timeout is transient and asks for no specific delay; an inner error
/// is classified by `E`.
///
/// # Examples
///
/// ```
/// use std::io;
/// use steadfast::retry::Transient;
/// use steadfast::tower::TimeoutError;
///
/// let err = TimeoutError::Inner(io::Error::from(io::ErrorKind::PermissionDenied));
/// assert!(!err.is_transient());
/// ```
impl<E: Transient> Transient for TimeoutError<E> {
    fn is_transient(&self) -> bool {
        match self {
            TimeoutError::Elapsed { .. } => true,
            TimeoutError::Inner(error) => error.is_transient(),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            TimeoutError::Elapsed { .. } => None,
            TimeoutError::Inner(error) => error.retry_after(),
        }
    }
}
