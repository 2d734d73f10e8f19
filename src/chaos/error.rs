//! The errors a caller sees from chaos: [`ChaosError`], the error of an
//! operation run through [`Chaos`](super::Chaos), and [`Dropped`], the
//! typed error of a cancelled call.

use std::error::Error;
use std::fmt;
use std::time::Duration;

use crate::retry::Transient;

/// A call that chaos cancelled: its future was polled for `after` (zero:
/// never polled) and dropped, and its outcome, if it had one, was thrown
/// away.
///
/// A cancelled call is transient: trying again may succeed.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::chaos::Dropped;
/// use steadfast::retry::Transient;
///
/// let dropped = Dropped { operation: "put", after: Duration::from_millis(5) };
/// assert!(dropped.is_transient());
/// assert_eq!(dropped.to_string(), "chaos dropped put after 5ms");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("chaos dropped {operation} after {after:?}")]
pub struct Dropped {
    /// The operation (`"call"`, `"put"`, `"get"`, ...).
    pub operation: &'static str,
    /// How long its future was polled before it was dropped.
    pub after: Duration,
}

impl Transient for Dropped {
    fn is_transient(&self) -> bool {
        true
    }
}

/// The error of an operation run through [`Chaos::run`](super::Chaos::run):
/// the operation's error (its own, or one chaos injected through the error
/// factory: they look alike on purpose), or the call was cancelled.
///
/// `Display` and [`Error::source`] follow the operation's error;
/// [`Transient`] is implemented when `E` implements it (a cancelled call is
/// transient).
///
/// # Examples
///
/// ```
/// use std::io;
/// use std::time::Duration;
/// use steadfast::chaos::{ChaosError, Dropped};
/// use steadfast::retry::Transient;
///
/// let err: ChaosError<io::Error> =
///     ChaosError::Dropped(Dropped { operation: "call", after: Duration::ZERO });
/// assert!(err.is_dropped());
/// assert!(err.is_transient());
///
/// let err = ChaosError::Operation(io::Error::from(io::ErrorKind::NotFound));
/// assert!(!err.is_transient());
/// assert_eq!(err.into_operation_error().unwrap().kind(), io::ErrorKind::NotFound);
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ChaosError<E> {
    /// The operation failed, or chaos failed it with an injected error.
    Operation(E),
    /// Chaos cancelled the call.
    Dropped(Dropped),
}

impl<E> ChaosError<E> {
    /// Whether chaos cancelled the call.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::chaos::ChaosError;
    /// assert!(!ChaosError::Operation("boom").is_dropped());
    /// ```
    pub fn is_dropped(&self) -> bool {
        matches!(self, ChaosError::Dropped(_))
    }

    /// The operation's error, if the call was not cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::chaos::ChaosError;
    /// assert_eq!(ChaosError::Operation(7).into_operation_error(), Some(7));
    /// ```
    pub fn into_operation_error(self) -> Option<E> {
        match self {
            ChaosError::Operation(e) => Some(e),
            ChaosError::Dropped(_) => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for ChaosError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChaosError::Operation(e) => e.fmt(f),
            ChaosError::Dropped(d) => d.fmt(f),
        }
    }
}

impl<E: Error + 'static> Error for ChaosError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            ChaosError::Operation(e) => e.source(),
            ChaosError::Dropped(_) => None,
        }
    }
}

/// A cancelled call is transient; an operation error is classified by `E`.
///
/// # Examples
///
/// ```
/// use std::io;
/// use steadfast::chaos::ChaosError;
/// use steadfast::retry::Transient;
///
/// let err = ChaosError::Operation(io::Error::from(io::ErrorKind::TimedOut));
/// assert!(err.is_transient());
/// ```
impl<E: Transient> Transient for ChaosError<E> {
    fn is_transient(&self) -> bool {
        match self {
            ChaosError::Operation(e) => e.is_transient(),
            ChaosError::Dropped(_) => true,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            ChaosError::Operation(e) => e.retry_after(),
            ChaosError::Dropped(_) => None,
        }
    }
}
