//! What a circuit breaker returns when it does not run a call, or when the
//! call fails: [`Rejected`] and [`BreakerError`].

use std::error::Error;
use std::fmt;
use std::time::Duration;

use super::State;
use crate::retry::Transient;

/// The breaker refused a call: it is Open, or HalfOpen with every trial
/// permit taken.
///
/// Returned by [`CircuitBreaker::try_acquire`](super::CircuitBreaker::try_acquire);
/// the async call methods turn it into [`BreakerError::Rejected`] with the
/// same facts.
///
/// `retry_after` is the time left until the breaker admits trial calls. It
/// is `None` when that time is not known: the circuit was forced open (it
/// stays open until [`reset`](super::CircuitBreaker::reset)), or it is
/// HalfOpen and every trial permit is taken.
///
/// A rejection by a breaker that opened on its own is transient:
/// [`Transient::retry_after`] gives `retry_after`, so a retry policy waits
/// for the breaker rather than hammering it. A rejection by a breaker that
/// was *forced* open ([`is_forced_open`](Self::is_forced_open)) is
/// permanent: an operator or the program opened it on purpose (to take a
/// dependency out of service), and it stays open until someone calls
/// [`reset`](super::CircuitBreaker::reset), however long a caller waits;
/// retrying it at the policy's backoff would only spend the retries (and
/// a shared retry budget) on calls that cannot run.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::breaker::{CircuitBreaker, State};
/// use steadfast::retry::Transient;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let breaker = CircuitBreaker::builder()
///     .failure_threshold(1)
///     .recovery_timeout(Duration::from_secs(10))
///     .build()?;
/// breaker.try_acquire()?.failure();
///
/// let rejected = breaker.try_acquire().unwrap_err();
/// assert_eq!(rejected.state, State::Open);
/// assert_eq!(rejected.retry_after, Some(Duration::from_secs(10)));
/// assert!(rejected.is_transient());
/// assert!(!rejected.is_forced_open());
/// assert_eq!(rejected.to_string(), "circuit breaker is open; trial calls in 10s");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rejected {
    /// Time left until trial calls are admitted, when known.
    pub retry_after: Option<Duration>,
    /// The state that refused the call: Open or HalfOpen.
    pub state: State,
}

impl Rejected {
    pub(crate) fn new(state: State, retry_after: Option<Duration>) -> Self {
        Rejected { retry_after, state }
    }

    /// Whether the breaker refused because it was forced open
    /// ([`force_open`](super::CircuitBreaker::force_open)): Open with no
    /// `retry_after`. Such a rejection is not transient; it lasts until
    /// [`reset`](super::CircuitBreaker::reset).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::CircuitBreaker;
    ///
    /// let breaker = CircuitBreaker::default();
    /// breaker.force_open();
    /// assert!(breaker.try_acquire().unwrap_err().is_forced_open());
    /// breaker.reset();
    /// assert!(breaker.try_acquire().is_ok());
    /// ```
    pub fn is_forced_open(&self) -> bool {
        forced_open(self.state, self.retry_after)
    }
}

/// The only rejection without a known wait in the Open state is the one of
/// a circuit forced open: an Open circuit that opened on its own always
/// knows when it admits trial calls.
fn forced_open(state: State, retry_after: Option<Duration>) -> bool {
    state == State::Open && retry_after.is_none()
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.state, self.retry_after) {
            (State::HalfOpen, _) => {
                f.write_str("circuit breaker is half-open and every trial permit is taken")
            }
            (_, Some(after)) => write!(f, "circuit breaker is open; trial calls in {after:?}"),
            (_, None) => f.write_str("circuit breaker is forced open"),
        }
    }
}

impl Error for Rejected {}

/// A rejection is transient and asks to wait `retry_after`, except the
/// rejection of a circuit forced open, which is permanent (it lasts until
/// [`reset`](super::CircuitBreaker::reset)); a HalfOpen rejection (every
/// trial permit taken) is transient with no wait of its own, so the
/// policy's backoff applies.
///
/// # Examples
///
/// ```
/// use steadfast::breaker::CircuitBreaker;
/// use steadfast::retry::Transient;
///
/// let breaker = CircuitBreaker::default();
/// breaker.force_open();
/// let rejected = breaker.try_acquire().unwrap_err();
/// assert!(!rejected.is_transient());
/// assert_eq!(rejected.retry_after(), None);
/// ```
impl Transient for Rejected {
    fn is_transient(&self) -> bool {
        !self.is_forced_open()
    }

    fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

/// The error of a call made through a [`CircuitBreaker`](super::CircuitBreaker):
/// the breaker refused it, or the call ran and failed.
///
/// `Display` says which; [`Error::source`] is the caller's own error for
/// [`Inner`](BreakerError::Inner). [`Transient`] is implemented when `E`
/// implements it: a rejection is classified as a [`Rejected`] is
/// (transient, asking to wait `retry_after`, unless the circuit was forced
/// open), an inner error is classified by `E`.
///
/// # Examples
///
/// ```
/// use std::error::Error;
/// use std::io;
/// use steadfast::breaker::{BreakerError, CircuitBreaker};
/// use steadfast::retry::Transient;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let breaker = CircuitBreaker::default();
/// let err = breaker
///     .call(|| async { Err::<(), _>(io::Error::from(io::ErrorKind::ConnectionReset)) })
///     .await
///     .unwrap_err();
/// assert!(matches!(err, BreakerError::Inner(_)));
/// assert!(err.is_transient());
/// assert!(err.source().is_some());
///
/// breaker.force_open();
/// let err = breaker.call(|| async { Ok::<_, io::Error>(1) }).await.unwrap_err();
/// assert!(err.is_rejected());
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum BreakerError<E> {
    /// The breaker refused the call; the operation was not run.
    Rejected {
        /// Time left until trial calls are admitted; `None` when the circuit
        /// was forced open or every half-open trial permit is taken.
        retry_after: Option<Duration>,
        /// The state that refused the call: Open or HalfOpen.
        state: State,
    },
    /// The operation ran and returned this error.
    Inner(E),
}

impl<E> BreakerError<E> {
    /// Whether the breaker refused the call.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::{BreakerError, State};
    /// let err: BreakerError<std::io::Error> =
    ///     BreakerError::Rejected { retry_after: None, state: State::Open };
    /// assert!(err.is_rejected());
    /// ```
    pub fn is_rejected(&self) -> bool {
        matches!(self, BreakerError::Rejected { .. })
    }

    /// Whether the breaker refused the call because it was forced open; see
    /// [`Rejected::is_forced_open`].
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::{BreakerError, State};
    /// let err: BreakerError<std::io::Error> =
    ///     BreakerError::Rejected { retry_after: None, state: State::Open };
    /// assert!(err.is_forced_open());
    /// ```
    pub fn is_forced_open(&self) -> bool {
        match self {
            BreakerError::Rejected { retry_after, state } => forced_open(*state, *retry_after),
            BreakerError::Inner(_) => false,
        }
    }

    /// The caller's error, if the operation ran and failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::BreakerError;
    /// let err = BreakerError::Inner("boom");
    /// assert_eq!(err.into_inner(), Some("boom"));
    /// ```
    pub fn into_inner(self) -> Option<E> {
        match self {
            BreakerError::Inner(e) => Some(e),
            BreakerError::Rejected { .. } => None,
        }
    }

    /// A reference to the caller's error, if the operation ran and failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::BreakerError;
    /// let err = BreakerError::Inner(7);
    /// assert_eq!(err.inner(), Some(&7));
    /// ```
    pub fn inner(&self) -> Option<&E> {
        match self {
            BreakerError::Inner(e) => Some(e),
            BreakerError::Rejected { .. } => None,
        }
    }
}

impl<E> From<Rejected> for BreakerError<E> {
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::{BreakerError, CircuitBreaker, State};
    ///
    /// let breaker = CircuitBreaker::default();
    /// breaker.force_open();
    /// let err: BreakerError<()> = breaker.try_acquire().unwrap_err().into();
    /// assert!(matches!(err, BreakerError::Rejected { state: State::Open, retry_after: None }));
    /// ```
    fn from(r: Rejected) -> Self {
        BreakerError::Rejected {
            retry_after: r.retry_after,
            state: r.state,
        }
    }
}

impl<E: fmt::Display> fmt::Display for BreakerError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BreakerError::Rejected { retry_after, state } => {
                fmt::Display::fmt(&Rejected::new(*state, *retry_after), f)
            }
            BreakerError::Inner(e) => write!(f, "call failed: {e}"),
        }
    }
}

impl<E: Error + 'static> Error for BreakerError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            BreakerError::Rejected { .. } => None,
            BreakerError::Inner(e) => Some(e),
        }
    }
}

/// A rejection is transient with its `retry_after`, except one of a circuit
/// forced open, which is permanent; an inner error is classified by `E`.
///
/// # Examples
///
/// ```
/// use std::io;
/// use steadfast::breaker::BreakerError;
/// use steadfast::retry::Transient;
///
/// let err = BreakerError::Inner(io::Error::from(io::ErrorKind::NotFound));
/// assert!(!err.is_transient());
///
/// let forced: BreakerError<io::Error> =
///     BreakerError::Rejected { retry_after: None, state: steadfast::breaker::State::Open };
/// assert!(!forced.is_transient());
/// ```
impl<E: Transient> Transient for BreakerError<E> {
    fn is_transient(&self) -> bool {
        match self {
            BreakerError::Rejected { .. } => !self.is_forced_open(),
            BreakerError::Inner(e) => e.is_transient(),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            BreakerError::Rejected { retry_after, .. } => *retry_after,
            BreakerError::Inner(e) => e.retry_after(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn display_and_source() {
        let r = Rejected::new(State::Open, Some(Duration::from_millis(1_500)));
        assert_eq!(
            r.to_string(),
            "circuit breaker is open; trial calls in 1.5s"
        );
        assert_eq!(
            Rejected::new(State::Open, None).to_string(),
            "circuit breaker is forced open"
        );
        assert_eq!(
            Rejected::new(State::HalfOpen, None).to_string(),
            "circuit breaker is half-open and every trial permit is taken"
        );

        let err = BreakerError::Inner(io::Error::other("disk on fire"));
        assert_eq!(err.to_string(), "call failed: disk on fire");
        assert_eq!(err.source().unwrap().to_string(), "disk on fire");
        let err: BreakerError<io::Error> = r.into();
        assert!(err.source().is_none());
        assert_eq!(err.retry_after(), Some(Duration::from_millis(1_500)));
    }

    #[test]
    fn inner_classification_is_delegated() {
        let transient = BreakerError::Inner(io::Error::from(io::ErrorKind::TimedOut));
        assert!(transient.is_transient());
        let permanent = BreakerError::Inner(io::Error::from(io::ErrorKind::InvalidData));
        assert!(!permanent.is_transient());
        assert_eq!(permanent.retry_after(), None);
    }
}
