//! What a rate limiter returns when it does not let a call through, or when
//! the call fails: [`RateLimited`] and [`RateLimitError`].

use std::error::Error;
use std::fmt;
use std::time::Duration;

use crate::retry::Transient;

/// A rate limiter refused a call: no permit was free (or, in wait mode,
/// none would be within `max_wait`); the operation was not run.
///
/// - `retry_after`: how long from the refusal until the next permit frees,
///   as the limiter's clock ([`tokio::time`]) reads it. A call made that
///   much later finds a permit unless another caller takes it first.
/// - `waited`: how long the caller waited before it was refused: zero for
///   [`check`](super::RateLimiter::check) and in reject mode, and in wait
///   mode zero too unless other callers took the permits it waited for.
/// - `max_wait`: the limiter's `max_wait` when it is in wait mode (the
///   refused call would have waited past it), `None` otherwise.
///
/// A rejection is transient, and [`Transient::retry_after`] gives
/// `retry_after`: a retry policy waits until the permit frees rather than
/// at its own backoff.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::pipeline::RateLimiter;
/// use steadfast::retry::Transient;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), steadfast::ConfigError> {
/// let limiter = RateLimiter::builder().rate(10, Duration::from_secs(1)).burst(1).build()?;
/// limiter.check().unwrap();
/// let rejected = limiter.check().unwrap_err();
/// assert_eq!(rejected.retry_after, Duration::from_millis(100));
/// assert_eq!(rejected.waited, Duration::ZERO);
/// assert_eq!(rejected.max_wait, None);
/// assert_eq!(Transient::retry_after(&rejected), Some(Duration::from_millis(100)));
/// assert_eq!(rejected.to_string(), "rate limited: the next permit frees in 100ms");
/// # Ok(())
/// # }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "rate-limit")))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimited {
    /// How long from the refusal until the next permit frees.
    pub retry_after: Duration,
    /// How long the caller waited before it was refused.
    pub waited: Duration,
    /// The limiter's `max_wait` in wait mode; `None` for a refusal that
    /// did not wait ([`check`](super::RateLimiter::check), reject mode).
    pub max_wait: Option<Duration>,
}

impl RateLimited {
    /// A refusal without waiting: `check`, or reject mode.
    pub(super) fn now(retry_after: Duration) -> Self {
        RateLimited {
            retry_after,
            waited: Duration::ZERO,
            max_wait: None,
        }
    }

    /// A refusal in wait mode: the next permit is past `max_wait`.
    pub(super) fn past_max_wait(
        retry_after: Duration,
        waited: Duration,
        max_wait: Duration,
    ) -> Self {
        RateLimited {
            retry_after,
            waited,
            max_wait: Some(max_wait),
        }
    }
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rate limited: the next permit frees in {:?}",
            self.retry_after
        )?;
        if let Some(max_wait) = self.max_wait {
            write!(
                f,
                ", past the max_wait of {max_wait:?} (waited {:?})",
                self.waited
            )?;
        }
        Ok(())
    }
}

impl Error for RateLimited {}

/// A rejection is transient and asks to wait `retry_after`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::pipeline::RateLimiter;
/// use steadfast::retry::Transient;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), steadfast::ConfigError> {
/// let limiter = RateLimiter::builder().rate(1, Duration::from_secs(2)).build()?;
/// limiter.check().unwrap();
/// let rejected = limiter.check().unwrap_err();
/// assert!(rejected.is_transient());
/// assert_eq!(rejected.retry_after(), Some(Duration::from_secs(2)));
/// # Ok(())
/// # }
/// ```
impl Transient for RateLimited {
    fn is_transient(&self) -> bool {
        true
    }

    fn retry_after(&self) -> Option<Duration> {
        Some(self.retry_after)
    }
}

/// The error of a call made through a rate limiter
/// ([`RateLimiter::call`](super::RateLimiter::call),
/// [`KeyedRateLimiter::call`](super::KeyedRateLimiter::call)): the limiter
/// refused it, or the call ran and failed.
///
/// `Display` says which; [`Error::source`] is the caller's own error for
/// [`Inner`](RateLimitError::Inner) (a rejection says everything in its
/// `Display` and has no source). [`Transient`] is implemented when `E`
/// implements it: a rejection is transient with its `retry_after`, an inner
/// error is classified by `E`.
///
/// # Examples
///
/// ```
/// use std::error::Error;
/// use std::io;
/// use std::time::Duration;
/// use steadfast::pipeline::{RateLimitError, RateLimiter};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), steadfast::ConfigError> {
/// let limiter = RateLimiter::builder().rate(1, Duration::from_secs(1)).build()?;
/// let err = limiter
///     .call(|| async { Err::<(), _>(io::Error::from(io::ErrorKind::ConnectionReset)) })
///     .await
///     .unwrap_err();
/// assert!(matches!(err, RateLimitError::Inner(_)));
/// assert!(err.source().is_some());
///
/// let err = limiter.call(|| async { Ok::<_, io::Error>(1) }).await.unwrap_err();
/// assert_eq!(err.rejection().unwrap().retry_after, Duration::from_secs(1));
/// # Ok(())
/// # }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "rate-limit")))]
#[derive(Debug)]
#[non_exhaustive]
pub enum RateLimitError<E> {
    /// The rate limiter refused the call; the operation was not run.
    Rejected(RateLimited),
    /// The operation ran and returned this error.
    Inner(E),
}

impl<E> RateLimitError<E> {
    /// Whether the rate limiter refused the call.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::RateLimitError;
    /// let err: RateLimitError<&str> = RateLimitError::Inner("boom");
    /// assert!(!err.is_rejected());
    /// ```
    pub fn is_rejected(&self) -> bool {
        matches!(self, RateLimitError::Rejected(_))
    }

    /// The rejection, if the rate limiter refused the call.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::pipeline::{RateLimitError, RateLimiter};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::ConfigError> {
    /// let limiter = RateLimiter::builder().rate(1, Duration::from_secs(1)).build()?;
    /// limiter.check().unwrap();
    /// let err: RateLimitError<()> = limiter.check().unwrap_err().into();
    /// assert_eq!(err.rejection().unwrap().retry_after, Duration::from_secs(1));
    /// # Ok(())
    /// # }
    /// ```
    pub fn rejection(&self) -> Option<RateLimited> {
        match self {
            RateLimitError::Rejected(r) => Some(*r),
            RateLimitError::Inner(_) => None,
        }
    }

    /// The caller's error, if the operation ran and failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::RateLimitError;
    /// let err = RateLimitError::Inner("boom");
    /// assert_eq!(err.into_inner(), Some("boom"));
    /// ```
    pub fn into_inner(self) -> Option<E> {
        match self {
            RateLimitError::Inner(e) => Some(e),
            RateLimitError::Rejected(_) => None,
        }
    }

    /// A reference to the caller's error, if the operation ran and failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::RateLimitError;
    /// let err = RateLimitError::Inner(7);
    /// assert_eq!(err.inner(), Some(&7));
    /// ```
    pub fn inner(&self) -> Option<&E> {
        match self {
            RateLimitError::Inner(e) => Some(e),
            RateLimitError::Rejected(_) => None,
        }
    }
}

impl<E> From<RateLimited> for RateLimitError<E> {
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::pipeline::{RateLimitError, RateLimiter};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::ConfigError> {
    /// let limiter = RateLimiter::builder().rate(1, Duration::from_secs(1)).build()?;
    /// limiter.check().unwrap();
    /// let err: RateLimitError<()> = limiter.check().unwrap_err().into();
    /// assert!(err.is_rejected());
    /// # Ok(())
    /// # }
    /// ```
    fn from(r: RateLimited) -> Self {
        RateLimitError::Rejected(r)
    }
}

impl<E: fmt::Display> fmt::Display for RateLimitError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateLimitError::Rejected(r) => fmt::Display::fmt(r, f),
            RateLimitError::Inner(e) => write!(f, "call failed: {e}"),
        }
    }
}

impl<E: Error + 'static> Error for RateLimitError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            RateLimitError::Rejected(_) => None,
            RateLimitError::Inner(e) => Some(e),
        }
    }
}

/// A rejection is transient with its `retry_after`; an inner error is
/// classified by `E`.
///
/// # Examples
///
/// ```
/// use std::io;
/// use steadfast::pipeline::RateLimitError;
/// use steadfast::retry::Transient;
///
/// let err = RateLimitError::Inner(io::Error::from(io::ErrorKind::NotFound));
/// assert!(!err.is_transient());
/// assert_eq!(err.retry_after(), None);
/// ```
impl<E: Transient> Transient for RateLimitError<E> {
    fn is_transient(&self) -> bool {
        match self {
            RateLimitError::Rejected(_) => true,
            RateLimitError::Inner(e) => e.is_transient(),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            RateLimitError::Rejected(r) => Transient::retry_after(r),
            RateLimitError::Inner(e) => e.retry_after(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn display_source_and_transient() {
        let now = RateLimited::now(Duration::from_millis(250));
        assert_eq!(
            now.to_string(),
            "rate limited: the next permit frees in 250ms"
        );
        let waited = RateLimited::past_max_wait(
            Duration::from_secs(3),
            Duration::from_millis(20),
            Duration::from_secs(1),
        );
        assert_eq!(
            waited.to_string(),
            "rate limited: the next permit frees in 3s, past the max_wait of 1s (waited 20ms)"
        );
        assert_eq!(
            Transient::retry_after(&waited),
            Some(Duration::from_secs(3))
        );

        let err = RateLimitError::Inner(io::Error::other("disk on fire"));
        assert_eq!(err.to_string(), "call failed: disk on fire");
        assert_eq!(err.source().unwrap().to_string(), "disk on fire");
        assert!(!err.is_transient());
        let err: RateLimitError<io::Error> = now.into();
        assert!(err.source().is_none());
        assert!(err.is_transient());
        assert_eq!(err.retry_after(), Some(Duration::from_millis(250)));
        assert_eq!(err.to_string(), now.to_string());
        assert_eq!(err.rejection(), Some(now));
        assert!(err.into_inner().is_none());
    }
}
