//! Which errors are worth retrying: the [`Transient`] classification trait.

use std::io;
use std::time::Duration;

/// Classifies an error as transient (worth retrying) or permanent.
///
/// [`RetryPolicy`](crate::retry::RetryPolicy) uses this trait to decide whether
/// to retry when no predicate is given. It is implemented for
/// [`std::io::Error`] by [`io::ErrorKind`] and for every error type of this
/// crate; implement it for your own error types, or pass a predicate with
/// [`Retry::when`](crate::retry::Retry::when).
///
/// An error may also ask for a specific delay before the next attempt, as an
/// HTTP `Retry-After` header does, through [`Transient::retry_after`]; the
/// retry loop then waits that long instead of the computed backoff. The wait
/// is not capped by the policy's `max_delay` (retrying sooner than asked would
/// only be refused again), but a wait that would overrun the policy's
/// `max_elapsed` budget ends the loop.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::retry::Transient;
///
/// #[derive(Debug)]
/// enum ApiError {
///     RateLimited { retry_after: Duration },
///     BadRequest,
/// }
///
/// impl Transient for ApiError {
///     fn is_transient(&self) -> bool {
///         matches!(self, ApiError::RateLimited { .. })
///     }
///     fn retry_after(&self) -> Option<Duration> {
///         match self {
///             ApiError::RateLimited { retry_after } => Some(*retry_after),
///             ApiError::BadRequest => None,
///         }
///     }
/// }
///
/// assert!(ApiError::RateLimited { retry_after: Duration::from_secs(2) }.is_transient());
/// assert!(!ApiError::BadRequest.is_transient());
/// ```
pub trait Transient {
    /// Whether another attempt may succeed.
    fn is_transient(&self) -> bool;

    /// A delay the error asks for before the next attempt (`Retry-After`).
    ///
    /// The default is `None`: use the policy's backoff.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

/// I/O errors are transient when the kind says the operation may succeed if
/// repeated: `TimedOut`, `Interrupted`, `ConnectionReset`, `ConnectionAborted`,
/// `ConnectionRefused`, `WouldBlock`, `BrokenPipe`, `UnexpectedEof`,
/// `NotConnected` and `ResourceBusy`. `NotFound`,
/// `PermissionDenied`, `InvalidInput`, `InvalidData`, `AlreadyExists`,
/// `Unsupported` and every other kind are permanent.
///
/// # Examples
///
/// ```
/// use std::io;
/// use steadfast::retry::Transient;
///
/// assert!(io::Error::from(io::ErrorKind::ConnectionReset).is_transient());
/// assert!(!io::Error::from(io::ErrorKind::NotFound).is_transient());
/// ```
impl Transient for io::Error {
    fn is_transient(&self) -> bool {
        is_transient_io_kind(self.kind())
    }
}

/// Whether an [`io::ErrorKind`] names a condition that may clear up on retry.
///
/// This is the rule behind the [`Transient`] implementation for
/// [`io::Error`], available for error types that wrap an I/O error.
///
/// # Examples
///
/// ```
/// use std::io::ErrorKind;
/// use steadfast::retry::is_transient_io_kind;
///
/// assert!(is_transient_io_kind(ErrorKind::TimedOut));
/// assert!(!is_transient_io_kind(ErrorKind::PermissionDenied));
/// ```
pub fn is_transient_io_kind(kind: io::ErrorKind) -> bool {
    use io::ErrorKind::*;
    matches!(
        kind,
        TimedOut
            | Interrupted
            | ConnectionReset
            | ConnectionAborted
            | ConnectionRefused
            | NotConnected
            | WouldBlock
            | BrokenPipe
            | UnexpectedEof
            | ResourceBusy
    )
}

impl<T: Transient + ?Sized> Transient for Box<T> {
    fn is_transient(&self) -> bool {
        (**self).is_transient()
    }
    fn retry_after(&self) -> Option<Duration> {
        (**self).retry_after()
    }
}

impl<T: Transient + ?Sized> Transient for std::sync::Arc<T> {
    fn is_transient(&self) -> bool {
        (**self).is_transient()
    }
    fn retry_after(&self) -> Option<Duration> {
        (**self).retry_after()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_kinds_are_classified() {
        use io::ErrorKind::*;
        for kind in [
            TimedOut,
            Interrupted,
            ConnectionReset,
            ConnectionAborted,
            ConnectionRefused,
            WouldBlock,
            BrokenPipe,
            UnexpectedEof,
        ] {
            assert!(io::Error::from(kind).is_transient(), "{kind:?}");
        }
        for kind in [
            NotFound,
            PermissionDenied,
            InvalidInput,
            InvalidData,
            AlreadyExists,
            Unsupported,
        ] {
            assert!(!io::Error::from(kind).is_transient(), "{kind:?}");
        }
    }
}
