//! [`CircuitBreaker`] itself: admission ([`CircuitBreaker::try_acquire`]),
//! recording outcomes (through a [`Permit`], in `permit.rs`), transitions,
//! events and snapshots.
//!
//! Every decision on the hot path reads or compare-and-swaps the state word
//! described in the `word` module. Transitions (a change of the word's
//! header) are serialised by a mutex so that they, and the events they send,
//! happen in one order; the payload (consecutive failures, trial counts) is
//! changed by callers without any lock.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::broadcast;

use super::permit::{CallOutput, CallWith, OwnedPermit, Permit};
use super::shared::Shared;
use super::{
    BreakerError, BreakerSnapshot, CircuitBreakerBuilder, CircuitBreakerConfig, Rejected, State,
    StateChange,
};

/// A circuit breaker: stops calling a dependency that keeps failing, probes
/// it with a few trial calls after a while, and closes again once it has
/// recovered.
///
/// See the [module documentation](super) for the state machine and how the
/// hot path stays lock-free. A `CircuitBreaker` is a handle: clones share
/// one breaker, and it is `Send + Sync`, so give each task its own clone.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::breaker::{BreakerError, CircuitBreaker, State};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), steadfast::ConfigError> {
/// let breaker = CircuitBreaker::builder()
///     .failure_threshold(2)
///     .recovery_timeout(Duration::from_secs(30))
///     .build()?;
///
/// for _ in 0..2 {
///     let r = breaker.call(|| async { Err::<(), _>("connection refused") }).await;
///     assert!(matches!(r, Err(BreakerError::Inner("connection refused"))));
/// }
/// assert_eq!(breaker.state(), State::Open);
///
/// // While Open, calls are refused without running the operation.
/// let r = breaker.call(|| async { Ok::<_, &str>("never runs") }).await;
/// assert!(matches!(r, Err(BreakerError::Rejected { state: State::Open, .. })));
///
/// // After the recovery timeout one trial call goes through and closes it.
/// tokio::time::advance(Duration::from_secs(30)).await;
/// assert_eq!(breaker.call(|| async { Ok::<_, &str>(42) }).await.unwrap(), 42);
/// assert_eq!(breaker.state(), State::Closed);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct CircuitBreaker {
    pub(super) shared: Arc<Shared>,
}

impl CircuitBreaker {
    /// A breaker with the given configuration, Closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::{CircuitBreaker, CircuitBreakerConfig, State};
    ///
    /// let config = CircuitBreakerConfig::builder().failure_threshold(3).build()?;
    /// let breaker = CircuitBreaker::new(config);
    /// assert_eq!(breaker.state(), State::Closed);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn new(config: CircuitBreakerConfig) -> Self {
        CircuitBreaker::with_name(config, None)
    }

    /// A breaker named `name`, with the given configuration, Closed: the
    /// shorthand of [`CircuitBreakerBuilder::name`] for a configuration
    /// read from a file.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::{CircuitBreaker, CircuitBreakerConfig};
    ///
    /// let config = CircuitBreakerConfig::builder().failure_threshold(3).build()?;
    /// let breaker = CircuitBreaker::named("payments", config);
    /// assert_eq!(breaker.name(), Some("payments"));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn named(name: impl Into<Arc<str>>, config: CircuitBreakerConfig) -> Self {
        CircuitBreaker::with_name(config, Some(name.into()))
    }

    pub(super) fn with_name(config: CircuitBreakerConfig, name: Option<Arc<str>>) -> Self {
        CircuitBreaker {
            shared: Arc::new(Shared::new(config, name)),
        }
    }

    /// The name given when the breaker was built, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::CircuitBreaker;
    /// assert_eq!(CircuitBreaker::default().name(), None);
    /// let named = CircuitBreaker::builder().name("search").build()?;
    /// assert_eq!(named.name(), Some("search"));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.shared.name()
    }

    /// A builder for a breaker, starting from the defaults listed on
    /// [`CircuitBreakerConfig`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::breaker::CircuitBreaker;
    ///
    /// let breaker = CircuitBreaker::builder()
    ///     .failure_threshold(10)
    ///     .recovery_timeout(Duration::from_secs(5))
    ///     .half_open_permits(3)
    ///     .success_threshold(2)
    ///     .build()?;
    /// assert_eq!(breaker.config().half_open_permits(), 3);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn builder() -> CircuitBreakerBuilder<CircuitBreaker> {
        CircuitBreakerBuilder::default()
    }

    /// The configuration this breaker was built with.
    ///
    /// # Examples
    ///
    /// ```
    /// let breaker = steadfast::breaker::CircuitBreaker::default();
    /// assert_eq!(breaker.config().failure_threshold(), 5);
    /// ```
    pub fn config(&self) -> &CircuitBreakerConfig {
        self.shared.config()
    }

    /// The current state.
    ///
    /// An Open circuit whose recovery timeout has elapsed still reads Open:
    /// the next caller of [`try_acquire`](Self::try_acquire) (or of a call
    /// method) moves it to HalfOpen.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::{CircuitBreaker, State};
    /// let breaker = CircuitBreaker::default();
    /// assert_eq!(breaker.state(), State::Closed);
    /// breaker.force_open();
    /// assert_eq!(breaker.state(), State::Open);
    /// ```
    pub fn state(&self) -> State {
        self.shared.load().state()
    }

    /// Asks for permission to make one call.
    ///
    /// - Closed: always granted. With only the consecutive-failures rule this
    ///   is one atomic load; the slow-call rule adds a read of the clock.
    /// - Open: refused with the time left until trial calls, unless the
    ///   recovery timeout has elapsed: then this caller moves the circuit to
    ///   HalfOpen and gets the first trial permit.
    /// - HalfOpen: granted while fewer than `half_open_permits` trial calls
    ///   are in flight, refused at once otherwise.
    ///
    /// Record the outcome with [`Permit::success`] or [`Permit::failure`].
    /// Dropping the permit without recording frees a trial place and counts
    /// as nothing.
    ///
    /// # Errors
    ///
    /// [`Rejected`], with the state that refused and, when known, how long
    /// until trial calls are admitted.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::CircuitBreaker;
    ///
    /// let breaker = CircuitBreaker::default();
    /// match breaker.try_acquire() {
    ///     Ok(permit) => {
    ///         let ok = true; // ... make the call ...
    ///         if ok { permit.success() } else { permit.failure() }
    ///     }
    ///     Err(rejected) => println!("not now: {rejected}"),
    /// };
    /// ```
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_>, Rejected> {
        self.shared.try_acquire()
    }

    /// [`try_acquire`](Self::try_acquire), for a call that outlives the
    /// borrow of the breaker: the permit holds a handle on it (one reference
    /// count more, no allocation).
    ///
    /// # Errors
    ///
    /// [`Rejected`], as for [`try_acquire`](Self::try_acquire).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::CircuitBreaker;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let breaker = CircuitBreaker::default();
    /// let permit = breaker.try_acquire_owned().unwrap();
    /// tokio::spawn(async move {
    ///     // ... make the call ...
    ///     permit.success();
    /// })
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    #[inline]
    pub fn try_acquire_owned(&self) -> Result<OwnedPermit, Rejected> {
        let permit = self.shared.try_acquire()?;
        Ok(OwnedPermit::from_permit(permit, Arc::clone(&self.shared)))
    }

    /// Runs `f` if the breaker admits it, and records its outcome: `Ok` is a
    /// success, every `Err` a failure.
    ///
    /// A rejected call never invokes `f`.
    ///
    /// # Cancellation
    ///
    /// Dropping the returned future before `f`'s future completes records
    /// nothing; a half-open trial place it held is freed at once.
    ///
    /// # Errors
    ///
    /// [`BreakerError::Rejected`] when refused, [`BreakerError::Inner`] with
    /// the operation's own error.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::CircuitBreaker;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let breaker = CircuitBreaker::default();
    /// let body = breaker.call(|| async { Ok::<_, std::io::Error>("hello") }).await.unwrap();
    /// assert_eq!(body, "hello");
    /// # }
    /// ```
    pub fn call<F, Fut, T, E>(
        &self,
        f: F,
    ) -> impl Future<Output = Result<T, BreakerError<E>>> + use<'_, F, Fut, T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.call_with(|_: &E| true, f)
    }

    /// Like [`call`](Self::call), with a predicate that says which errors
    /// count as failures; the others count as successes (a "not found" is
    /// not a sign of a broken dependency).
    ///
    /// # Cancellation
    ///
    /// As for [`call`](Self::call): dropping the future records nothing.
    ///
    /// # Errors
    ///
    /// [`BreakerError::Rejected`] when refused, [`BreakerError::Inner`] with
    /// the operation's own error, whether or not it counted as a failure.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Error, ErrorKind};
    /// use steadfast::breaker::{CircuitBreaker, State};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::ConfigError> {
    /// let breaker = CircuitBreaker::builder().failure_threshold(1).build()?;
    /// let only_timeouts = |e: &Error| e.kind() == ErrorKind::TimedOut;
    ///
    /// let r = breaker
    ///     .call_with(only_timeouts, || async { Err::<(), _>(Error::from(ErrorKind::NotFound)) })
    ///     .await;
    /// assert!(r.is_err());
    /// assert_eq!(breaker.state(), State::Closed); // not a failure
    ///
    /// let _ = breaker
    ///     .call_with(only_timeouts, || async { Err::<(), _>(Error::from(ErrorKind::TimedOut)) })
    ///     .await;
    /// assert_eq!(breaker.state(), State::Open);
    /// # Ok(())
    /// # }
    /// ```
    pub fn call_with<P, F, Fut, T, E>(
        &self,
        is_failure: P,
        f: F,
    ) -> impl Future<Output = Result<T, BreakerError<E>>> + use<'_, P, F, Fut, T, E>
    where
        P: FnOnce(&E) -> bool,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        CallWith::<P, F, Fut>::new(&self.shared, is_failure, f)
    }

    /// [`call_with`](Self::call_with), answering in the shape `O` (a
    /// pipeline's error) instead of `Result<T, BreakerError<E>>`.
    pub(crate) fn call_shaped<O, P, F, Fut, T, E>(
        &self,
        is_failure: P,
        f: F,
    ) -> impl Future<Output = O::Output> + use<'_, O, P, F, Fut, T, E>
    where
        O: CallOutput<T, E>,
        P: FnOnce(&E) -> bool,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        CallWith::<P, F, Fut, O>::new(&self.shared, is_failure, f)
    }

    /// Like [`call`](Self::call), but when the call is refused or fails,
    /// runs `fallback` with the [`BreakerError`] and returns its result.
    ///
    /// # Cancellation
    ///
    /// As for [`call`](Self::call): dropping the future records nothing.
    ///
    /// # Errors
    ///
    /// Whatever `fallback` returns.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::CircuitBreaker;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let breaker = CircuitBreaker::default();
    /// breaker.force_open();
    /// let price = breaker
    ///     .call_with_fallback(
    ///         || async { Ok::<u32, String>(fetch_live_price()) },
    ///         |_rejected| async { Ok(100) }, // the cached price
    ///     )
    ///     .await;
    /// assert_eq!(price, Ok(100));
    /// # }
    /// # fn fetch_live_price() -> u32 { unreachable!() }
    /// ```
    pub async fn call_with_fallback<F, Fut, G, Fut2, T, E>(&self, f: F, fallback: G) -> Result<T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        G: FnOnce(BreakerError<E>) -> Fut2,
        Fut2: Future<Output = Result<T, E>>,
    {
        match self.call(f).await {
            Ok(value) => Ok(value),
            Err(error) => fallback(error).await,
        }
    }

    /// Opens the circuit and keeps it open, refusing every call with
    /// `retry_after: None`, until [`reset`](Self::reset).
    ///
    /// Outcomes of calls admitted before are ignored. Sends a
    /// [`StateChange`] with [`TransitionReason::ForcedOpen`](super::TransitionReason::ForcedOpen), unless the
    /// circuit was already forced open.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::{CircuitBreaker, State};
    ///
    /// let breaker = CircuitBreaker::default();
    /// breaker.force_open();
    /// assert!(breaker.try_acquire().is_err());
    /// assert!(breaker.snapshot().forced);
    /// breaker.reset();
    /// assert_eq!(breaker.state(), State::Closed);
    /// ```
    pub fn force_open(&self) {
        self.shared.force_open();
    }

    /// Closes the circuit and clears its counters (consecutive failures,
    /// window, trial counts); also ends a forced open.
    ///
    /// Outcomes of calls admitted before are ignored. Sends a
    /// [`StateChange`] with [`TransitionReason::Reset`](super::TransitionReason::Reset) unless the circuit
    /// was already Closed (its counters are cleared all the same).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::CircuitBreaker;
    ///
    /// let breaker = CircuitBreaker::default();
    /// breaker.try_acquire().unwrap().failure();
    /// assert_eq!(breaker.snapshot().consecutive_failures, 1);
    /// breaker.reset();
    /// assert_eq!(breaker.snapshot().consecutive_failures, 0);
    /// ```
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// A receiver of every state change from now on, in transition order.
    ///
    /// Each [`StateChange`] is sent after the new state is in place. The
    /// channel holds the last 64 changes; a receiver that falls further
    /// behind gets `RecvError::Lagged` and then the newest ones.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::{CircuitBreaker, State, TransitionReason};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let breaker = CircuitBreaker::default();
    /// let mut events = breaker.subscribe();
    /// breaker.force_open();
    /// let change = events.recv().await.unwrap();
    /// assert_eq!((change.from, change.to), (State::Closed, State::Open));
    /// assert_eq!(change.reason, TransitionReason::ForcedOpen);
    /// # }
    /// ```
    pub fn subscribe(&self) -> broadcast::Receiver<StateChange> {
        self.shared.subscribe()
    }

    /// What the breaker holds now.
    ///
    /// The fields are read one after another, not as one atomic picture;
    /// under concurrent calls they may be a call apart.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::{CircuitBreaker, State};
    ///
    /// let breaker = CircuitBreaker::default();
    /// breaker.try_acquire().unwrap().failure();
    /// let snap = breaker.snapshot();
    /// assert_eq!(snap.state, State::Closed);
    /// assert_eq!(snap.consecutive_failures, 1);
    /// assert_eq!(snap.total.failures, 1);
    /// ```
    pub fn snapshot(&self) -> BreakerSnapshot {
        self.shared.snapshot()
    }
}

impl Default for CircuitBreaker {
    /// A breaker with the default configuration (see
    /// [`CircuitBreakerConfig`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::{CircuitBreaker, CircuitBreakerConfig};
    /// assert_eq!(CircuitBreaker::default().config(), &CircuitBreakerConfig::default());
    /// ```
    fn default() -> Self {
        CircuitBreaker::new(CircuitBreakerConfig::default())
    }
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.shared.name())
            .field("word", &self.shared.load())
            .field("config", self.shared.config())
            .finish_non_exhaustive()
    }
}
