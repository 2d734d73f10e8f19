//! What the strategies of a pipeline return when they do not run a call, or
//! when the call fails: for the bulkhead, [`BulkheadRejected`] and
//! [`BulkheadError`].

use std::error::Error;
use std::fmt;
use std::time::Duration;

use crate::retry::Transient;

/// A [`Bulkhead`](super::Bulkhead) refused a call; the operation was not
/// run.
///
/// - [`Full`](Self::Full): every slot was taken and the queue was full (or
///   there is no queue, or the caller asked with
///   [`try_acquire`](super::Bulkhead::try_acquire), which never waits).
/// - [`QueueTimeout`](Self::QueueTimeout): the caller waited in the queue
///   for the configured queue timeout and no slot freed.
///
/// A rejection is transient ([`Transient::is_transient`] is `true`): the
/// bulkhead refuses because of load, which passes. It asks for no specific
/// delay ([`Transient::retry_after`] is `None`).
///
/// # Examples
///
/// ```
/// use steadfast::pipeline::{Bulkhead, BulkheadRejected};
///
/// let bulkhead = Bulkhead::builder().max_concurrent(1).build()?;
/// let _held = bulkhead.try_acquire().unwrap();
/// let rejected = bulkhead.try_acquire().unwrap_err();
/// assert_eq!(rejected, BulkheadRejected::Full { max_concurrent: 1, max_queued: 0 });
/// assert_eq!(
///     rejected.to_string(),
///     "bulkhead is full: every slot and queue place is taken (max_concurrent 1, max_queued 0)"
/// );
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BulkheadRejected {
    /// Every slot was taken and no queue place was free.
    Full {
        /// The bulkhead's limit on calls at once.
        max_concurrent: u32,
        /// The bulkhead's limit on waiters.
        max_queued: u32,
    },
    /// The caller waited for a slot as long as the queue timeout allows.
    QueueTimeout {
        /// How long it waited: the configured queue timeout.
        waited: Duration,
    },
}

impl BulkheadRejected {
    /// Whether the rejection is [`Full`](Self::Full).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::BulkheadRejected;
    /// let r = BulkheadRejected::Full { max_concurrent: 2, max_queued: 0 };
    /// assert!(r.is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        matches!(self, BulkheadRejected::Full { .. })
    }

    /// Whether the rejection is [`QueueTimeout`](Self::QueueTimeout).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::pipeline::BulkheadRejected;
    /// let r = BulkheadRejected::QueueTimeout { waited: Duration::from_secs(1) };
    /// assert!(r.is_queue_timeout());
    /// ```
    pub fn is_queue_timeout(&self) -> bool {
        matches!(self, BulkheadRejected::QueueTimeout { .. })
    }
}

impl fmt::Display for BulkheadRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BulkheadRejected::Full {
                max_concurrent,
                max_queued,
            } => write!(
                f,
                "bulkhead is full: every slot and queue place is taken \
                 (max_concurrent {max_concurrent}, max_queued {max_queued})"
            ),
            BulkheadRejected::QueueTimeout { waited } => {
                write!(f, "bulkhead queue timeout: no slot freed in {waited:?}")
            }
        }
    }
}

impl Error for BulkheadRejected {}

/// A rejection is transient and asks for no specific delay.
///
/// # Examples
///
/// ```
/// use steadfast::pipeline::BulkheadRejected;
/// use steadfast::retry::Transient;
///
/// let r = BulkheadRejected::Full { max_concurrent: 1, max_queued: 0 };
/// assert!(r.is_transient());
/// assert_eq!(r.retry_after(), None);
/// ```
impl Transient for BulkheadRejected {
    fn is_transient(&self) -> bool {
        true
    }
}

/// The error of a call made through a [`Bulkhead`](super::Bulkhead): the
/// bulkhead refused it, or the call ran and failed.
///
/// `Display` says which; [`Error::source`] is the caller's own error for
/// [`Inner`](BulkheadError::Inner) (a rejection says everything in its
/// `Display` and has no source). [`Transient`] is implemented when `E`
/// implements it: a rejection is transient, an inner error is classified by
/// `E`.
///
/// # Examples
///
/// ```
/// use std::error::Error;
/// use std::io;
/// use steadfast::pipeline::{Bulkhead, BulkheadError, BulkheadRejected};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), steadfast::ConfigError> {
/// let bulkhead = Bulkhead::builder().max_concurrent(1).build()?;
/// let err = bulkhead
///     .call(|| async { Err::<(), _>(io::Error::from(io::ErrorKind::ConnectionReset)) })
///     .await
///     .unwrap_err();
/// assert!(matches!(err, BulkheadError::Inner(_)));
/// assert!(err.source().is_some());
///
/// let _held = bulkhead.try_acquire().unwrap();
/// let err = bulkhead.call(|| async { Ok::<_, io::Error>(1) }).await.unwrap_err();
/// assert!(matches!(err, BulkheadError::Rejected(BulkheadRejected::Full { .. })));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum BulkheadError<E> {
    /// The bulkhead refused the call; the operation was not run.
    Rejected(BulkheadRejected),
    /// The operation ran and returned this error.
    Inner(E),
}

impl<E> BulkheadError<E> {
    /// Whether the bulkhead refused the call.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::{BulkheadError, BulkheadRejected};
    /// let err: BulkheadError<std::io::Error> =
    ///     BulkheadError::Rejected(BulkheadRejected::Full { max_concurrent: 1, max_queued: 0 });
    /// assert!(err.is_rejected());
    /// ```
    pub fn is_rejected(&self) -> bool {
        matches!(self, BulkheadError::Rejected(_))
    }

    /// The rejection, if the bulkhead refused the call.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::pipeline::{BulkheadError, BulkheadRejected};
    /// let timeout = BulkheadRejected::QueueTimeout { waited: Duration::from_secs(2) };
    /// let err: BulkheadError<()> = BulkheadError::Rejected(timeout);
    /// assert_eq!(err.rejection(), Some(timeout));
    /// ```
    pub fn rejection(&self) -> Option<BulkheadRejected> {
        match self {
            BulkheadError::Rejected(r) => Some(*r),
            BulkheadError::Inner(_) => None,
        }
    }

    /// The caller's error, if the operation ran and failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::BulkheadError;
    /// let err = BulkheadError::Inner("boom");
    /// assert_eq!(err.into_inner(), Some("boom"));
    /// ```
    pub fn into_inner(self) -> Option<E> {
        match self {
            BulkheadError::Inner(e) => Some(e),
            BulkheadError::Rejected(_) => None,
        }
    }

    /// A reference to the caller's error, if the operation ran and failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::BulkheadError;
    /// let err = BulkheadError::Inner(7);
    /// assert_eq!(err.inner(), Some(&7));
    /// ```
    pub fn inner(&self) -> Option<&E> {
        match self {
            BulkheadError::Inner(e) => Some(e),
            BulkheadError::Rejected(_) => None,
        }
    }
}

impl<E> From<BulkheadRejected> for BulkheadError<E> {
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::{Bulkhead, BulkheadError};
    ///
    /// let bulkhead = Bulkhead::builder().max_concurrent(1).build()?;
    /// let _held = bulkhead.try_acquire().unwrap();
    /// let err: BulkheadError<()> = bulkhead.try_acquire().unwrap_err().into();
    /// assert!(err.is_rejected());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    fn from(r: BulkheadRejected) -> Self {
        BulkheadError::Rejected(r)
    }
}

impl<E: fmt::Display> fmt::Display for BulkheadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BulkheadError::Rejected(r) => fmt::Display::fmt(r, f),
            BulkheadError::Inner(e) => write!(f, "call failed: {e}"),
        }
    }
}

impl<E: Error + 'static> Error for BulkheadError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            BulkheadError::Rejected(_) => None,
            BulkheadError::Inner(e) => Some(e),
        }
    }
}

/// A rejection is transient; an inner error is classified by `E`.
///
/// # Examples
///
/// ```
/// use std::io;
/// use steadfast::pipeline::BulkheadError;
/// use steadfast::retry::Transient;
///
/// let err = BulkheadError::Inner(io::Error::from(io::ErrorKind::NotFound));
/// assert!(!err.is_transient());
/// ```
impl<E: Transient> Transient for BulkheadError<E> {
    fn is_transient(&self) -> bool {
        match self {
            BulkheadError::Rejected(_) => true,
            BulkheadError::Inner(e) => e.is_transient(),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            BulkheadError::Rejected(r) => r.retry_after(),
            BulkheadError::Inner(e) => e.retry_after(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn display_and_source() {
        let full = BulkheadRejected::Full {
            max_concurrent: 4,
            max_queued: 2,
        };
        assert_eq!(
            full.to_string(),
            "bulkhead is full: every slot and queue place is taken (max_concurrent 4, max_queued 2)"
        );
        let timeout = BulkheadRejected::QueueTimeout {
            waited: Duration::from_millis(1_500),
        };
        assert_eq!(
            timeout.to_string(),
            "bulkhead queue timeout: no slot freed in 1.5s"
        );

        let err = BulkheadError::Inner(io::Error::other("disk on fire"));
        assert_eq!(err.to_string(), "call failed: disk on fire");
        assert_eq!(err.source().unwrap().to_string(), "disk on fire");
        assert!(err.is_transient() == io::Error::other("x").is_transient());
        let err: BulkheadError<io::Error> = timeout.into();
        assert!(err.source().is_none());
        assert!(err.is_transient());
        assert_eq!(err.retry_after(), None);
        assert_eq!(err.to_string(), timeout.to_string());
    }
}
