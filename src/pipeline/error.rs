//! What the strategies of a pipeline return when they do not run a call, or
//! when the call fails: for the bulkhead, [`BulkheadRejected`] and
//! [`BulkheadError`]; for a whole [`Pipeline`](super::Pipeline),
//! [`PipelineError`], which says which strategy stopped the call.

use std::error::Error;
use std::fmt;
use std::time::Duration;

use crate::breaker::Rejected;
use crate::retry::{GiveUp, Transient};

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

/// Which strategy of a pipeline stopped a call, from
/// [`PipelineError::stopped_by`].
///
/// # Examples
///
/// ```
/// use steadfast::pipeline::{PipelineError, StoppedBy};
///
/// let err: PipelineError<std::io::Error> =
///     PipelineError::TimedOut { after: std::time::Duration::from_secs(1) };
/// assert_eq!(err.stopped_by(), StoppedBy::Timeout);
/// assert_eq!(StoppedBy::Timeout.to_string(), "timeout");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoppedBy {
    /// No strategy: the operation itself failed, and no strategy retried it
    /// or replaced its error.
    Operation,
    /// A timeout passed.
    Timeout,
    /// A circuit breaker refused the call.
    CircuitBreaker,
    /// A bulkhead refused the call.
    Bulkhead,
    /// A rate limiter refused the call.
    RateLimiter,
    /// A retry gave up.
    Retry,
    /// A fallback ran and failed too.
    Fallback,
}

impl fmt::Display for StoppedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoppedBy::Operation => "operation",
            StoppedBy::Timeout => "timeout",
            StoppedBy::CircuitBreaker => "circuit breaker",
            StoppedBy::Bulkhead => "bulkhead",
            StoppedBy::RateLimiter => "rate limiter",
            StoppedBy::Retry => "retry",
            StoppedBy::Fallback => "fallback",
        })
    }
}

/// The error of a call run through a [`Pipeline`](super::Pipeline): the
/// operation's own error, or the strategy that stopped the call and why.
///
/// [`stopped_by`](Self::stopped_by) names the strategy;
/// [`operation_error`](Self::operation_error) finds the operation's own
/// error wherever it is (behind a retry that gave up, or a fallback that
/// failed too). `Display` says what happened; [`Error::source`] is the
/// operation's error, or the rejection of the strategy that refused.
///
/// [`Transient`] is implemented when `E` implements it, so that a retry
/// outside the pipeline (or in another pipeline) classifies the same way a
/// retry inside does: a timeout, a bulkhead's or a rate limiter's refusal and
/// an open circuit are transient (an open circuit and a rate limiter say how
/// long to wait), a circuit forced open is not, a retry that gave up is not
/// (it already retried), and the operation's error is classified by `E`.
///
/// # Examples
///
/// ```
/// use std::io;
/// use std::time::Duration;
/// use steadfast::pipeline::{Pipeline, PipelineError, StoppedBy};
/// use steadfast::retry::RetryPolicy;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), steadfast::ConfigError> {
/// let pipeline = Pipeline::builder()
///     .retry(RetryPolicy::builder().max_retries(2).build()?)
///     .timeout(Duration::from_secs(1))
///     .build()?;
///
/// let err = pipeline
///     .execute(|| async { Err::<(), _>(io::Error::from(io::ErrorKind::ConnectionReset)) })
///     .await
///     .unwrap_err();
/// assert_eq!(err.stopped_by(), StoppedBy::Retry);
/// assert_eq!(err.attempts(), 3);
/// assert_eq!(err.operation_error().unwrap().kind(), io::ErrorKind::ConnectionReset);
/// assert_eq!(
///     err.to_string(),
///     "retry gave up after 3 attempts (retries exhausted): connection reset"
/// );
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
// A tag of a full word before the fields: with the default layout the
// compiler packs the tag and small fields at odd offsets, and moving an
// `Ok` through the strategies then stalls on partial stores (measured: a
// third of a pipeline's cost around a ready call).
#[repr(usize)]
pub enum PipelineError<E> {
    /// The operation ran and returned this error; no strategy retried it or
    /// replaced it.
    Operation(E),
    /// A [`Timeout`](super::Timeout) passed before the rest of the pipeline
    /// answered.
    TimedOut {
        /// The timeout that passed.
        after: Duration,
    },
    /// A circuit breaker refused the call; nothing further in ran.
    CircuitOpen(Rejected),
    /// A [`Bulkhead`](super::Bulkhead) refused the call; nothing further in
    /// ran.
    BulkheadRejected(BulkheadRejected),
    /// A [`RateLimiter`](super::RateLimiter) refused the call (it says when
    /// to come back); nothing further in ran.
    #[cfg(feature = "rate-limit")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rate-limit")))]
    RateLimited(super::RateLimited),
    /// A retry gave up: `last` is the error of the last attempt.
    RetriesExhausted {
        /// How many attempts ran.
        attempts: u32,
        /// Why the retry stopped.
        reason: GiveUp,
        /// What the last attempt failed with.
        last: Box<PipelineError<E>>,
    },
    /// A [`Fallback`](super::Fallback) ran, because `cause` stopped the
    /// call after `attempts` attempts, and failed too, with `error`.
    FallbackFailed {
        /// The fallback's own error.
        error: E,
        /// Which strategy stopped the call before the fallback ran.
        cause: StoppedBy,
        /// How many attempts ran before the fallback.
        attempts: u32,
    },
}

impl<E> PipelineError<E> {
    /// Which strategy stopped the call, or [`StoppedBy::Operation`] when the
    /// operation's own error came through.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::{PipelineError, StoppedBy};
    /// let err = PipelineError::Operation("refused");
    /// assert_eq!(err.stopped_by(), StoppedBy::Operation);
    /// ```
    pub fn stopped_by(&self) -> StoppedBy {
        match self {
            PipelineError::Operation(_) => StoppedBy::Operation,
            PipelineError::TimedOut { .. } => StoppedBy::Timeout,
            PipelineError::CircuitOpen(_) => StoppedBy::CircuitBreaker,
            PipelineError::BulkheadRejected(_) => StoppedBy::Bulkhead,
            #[cfg(feature = "rate-limit")]
            PipelineError::RateLimited(_) => StoppedBy::RateLimiter,
            PipelineError::RetriesExhausted { .. } => StoppedBy::Retry,
            PipelineError::FallbackFailed { .. } => StoppedBy::Fallback,
        }
    }

    /// The operation's own error: the last one, behind a retry that gave up;
    /// the fallback's, when a fallback failed. `None` when a strategy
    /// refused the call or a timeout passed (the operation returned no
    /// error).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::PipelineError;
    /// use steadfast::retry::GiveUp;
    ///
    /// let err = PipelineError::RetriesExhausted {
    ///     attempts: 3,
    ///     reason: GiveUp::Exhausted,
    ///     last: Box::new(PipelineError::Operation("busy")),
    /// };
    /// assert_eq!(err.operation_error(), Some(&"busy"));
    /// ```
    pub fn operation_error(&self) -> Option<&E> {
        match self {
            PipelineError::Operation(error) | PipelineError::FallbackFailed { error, .. } => {
                Some(error)
            }
            PipelineError::RetriesExhausted { last, .. } => last.operation_error(),
            _ => None,
        }
    }

    /// The operation's own error, by value; see
    /// [`operation_error`](Self::operation_error).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::PipelineError;
    /// assert_eq!(PipelineError::Operation(7).into_operation_error(), Some(7));
    /// ```
    pub fn into_operation_error(self) -> Option<E> {
        match self {
            PipelineError::Operation(error) | PipelineError::FallbackFailed { error, .. } => {
                Some(error)
            }
            PipelineError::RetriesExhausted { last, .. } => last.into_operation_error(),
            _ => None,
        }
    }

    /// How many attempts ran: the retry's count when a retry gave up, else
    /// 1 when the operation ran and 0 when a strategy refused the call first.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::PipelineError;
    /// assert_eq!(PipelineError::Operation(()).attempts(), 1);
    /// ```
    pub fn attempts(&self) -> u32 {
        match self {
            PipelineError::RetriesExhausted { attempts, .. } => *attempts,
            PipelineError::Operation(_) | PipelineError::TimedOut { .. } => 1,
            PipelineError::FallbackFailed { attempts, .. } => *attempts,
            _ => 0,
        }
    }

    /// Whether a strategy refused to run the call (a breaker, a bulkhead, a
    /// rate limiter): the dependency was not reached, so it says nothing
    /// about the dependency's health.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::{BulkheadRejected, PipelineError};
    /// let err: PipelineError<()> = PipelineError::BulkheadRejected(
    ///     BulkheadRejected::Full { max_concurrent: 1, max_queued: 0 },
    /// );
    /// assert!(err.is_rejection());
    /// ```
    pub fn is_rejection(&self) -> bool {
        match self {
            PipelineError::CircuitOpen(_) | PipelineError::BulkheadRejected(_) => true,
            #[cfg(feature = "rate-limit")]
            PipelineError::RateLimited(_) => true,
            _ => false,
        }
    }
}

impl<E: fmt::Display> fmt::Display for PipelineError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PipelineError::Operation(error) => error.fmt(f),
            PipelineError::TimedOut { after } => write!(f, "timed out after {after:?}"),
            PipelineError::CircuitOpen(rejected) => rejected.fmt(f),
            PipelineError::BulkheadRejected(rejected) => rejected.fmt(f),
            #[cfg(feature = "rate-limit")]
            PipelineError::RateLimited(limited) => limited.fmt(f),
            PipelineError::RetriesExhausted {
                attempts,
                reason,
                last,
            } => write!(
                f,
                "retry gave up after {attempts} attempts ({reason}): {last}"
            ),
            PipelineError::FallbackFailed { error, cause, .. } => {
                write!(
                    f,
                    "fallback failed: {error} (it ran because the {cause} stopped the call)"
                )
            }
        }
    }
}

impl<E: Error + 'static> Error for PipelineError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            PipelineError::Operation(error) => error.source(),
            PipelineError::TimedOut { .. } => None,
            PipelineError::CircuitOpen(rejected) => Some(rejected),
            PipelineError::BulkheadRejected(rejected) => Some(rejected),
            #[cfg(feature = "rate-limit")]
            PipelineError::RateLimited(limited) => Some(limited),
            PipelineError::RetriesExhausted { last, .. } => Some(&**last),
            PipelineError::FallbackFailed { error, .. } => Some(error),
        }
    }
}

/// Classified as the module's documentation of [`PipelineError`] says.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::pipeline::PipelineError;
/// use steadfast::retry::Transient;
///
/// let timed_out: PipelineError<std::io::Error> =
///     PipelineError::TimedOut { after: Duration::from_secs(1) };
/// assert!(timed_out.is_transient());
/// ```
impl<E: Transient> Transient for PipelineError<E> {
    fn is_transient(&self) -> bool {
        match self {
            PipelineError::Operation(error) => error.is_transient(),
            PipelineError::TimedOut { .. } => true,
            PipelineError::CircuitOpen(rejected) => rejected.is_transient(),
            PipelineError::BulkheadRejected(rejected) => rejected.is_transient(),
            #[cfg(feature = "rate-limit")]
            PipelineError::RateLimited(limited) => limited.is_transient(),
            PipelineError::RetriesExhausted { .. } => false,
            PipelineError::FallbackFailed { error, .. } => error.is_transient(),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            PipelineError::Operation(error) | PipelineError::FallbackFailed { error, .. } => {
                error.retry_after()
            }
            PipelineError::CircuitOpen(rejected) => rejected.retry_after(),
            #[cfg(feature = "rate-limit")]
            PipelineError::RateLimited(limited) => limited.retry_after(),
            _ => None,
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
