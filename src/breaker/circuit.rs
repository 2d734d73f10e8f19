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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;

use super::permit::{CallOutput, CallWith, OwnedPermit, Permit};
use super::window::Window;
use super::word::Word;
use super::{
    BreakerError, BreakerSnapshot, BreakerTotals, CircuitBreakerBuilder, CircuitBreakerConfig,
    Rejected, State, StateChange, TransitionReason,
};

/// How many state changes a slow subscriber may fall behind before it
/// starts losing the oldest ones (it then sees `RecvError::Lagged`).
const EVENT_CAPACITY: usize = 64;

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
    shared: Arc<Shared>,
}

/// The state one breaker's handles share.
pub(super) struct Shared {
    /// The state word; its bit layout is documented in the `word` module.
    state: AtomicU64,
    /// Nanoseconds from `base` to the start of the current state. While
    /// Open, this is when the circuit opened: it is written before the word
    /// that enters Open is published, and after the word that leaves Open.
    since: AtomicU64,
    /// The origin of every time stored in an atomic.
    base: Instant,
    config: CircuitBreakerConfig,
    window: Option<Window>,
    /// Copies of the configuration the hot path reads, in its own types.
    failure_threshold: u32,
    half_open_permits: u32,
    success_threshold: u32,
    recovery_nanos: u64,
    minimum_calls: u64,
    failure_rate_threshold: Option<f64>,
    slow_call: Option<(Duration, f64)>,
    /// Whether recording an outcome needs the time: a time-based window or
    /// the slow-call rule is configured.
    needs_clock: bool,
    /// Where the rate rules were last evaluated, as [`evaluation_mark`]
    /// packs it: the Closed header, the time bucket, and whether the window
    /// held `minimum_calls` calls. A fast success whose mark equals the
    /// last one, with the window at its minimum, skips the evaluation (see
    /// [`Shared::record_in_window`]). `u64::MAX`, the initial value, matches
    /// no mark (its state bits are `11`, which no header holds).
    evaluated: AtomicU64,
    /// Serialises transitions, so that events go out in transition order.
    transitions: Mutex<()>,
    events: broadcast::Sender<StateChange>,
    failures_total: AtomicU64,
    rejections_total: AtomicU64,
}

/// A transition a caller asks for, decided against the current word.
struct Change {
    to: State,
    forced: bool,
    payload: u32,
    reason: TransitionReason,
    /// Whether to send an event: not for a reset of an already-closed
    /// circuit, which only clears its counters.
    announce: bool,
}

impl Change {
    fn to(to: State, reason: TransitionReason) -> Self {
        Change {
            to,
            forced: false,
            payload: 0,
            reason,
            announce: true,
        }
    }
}

/// Packs where the rate rules were evaluated: the Closed header (bits
/// 32-63), the low 31 bits of the time bucket (bits 1-31) and whether the
/// window held `minimum_calls` calls (bit 0). Bucket numbers that differ by
/// a multiple of 2^31 share a mark; a fast success skipped on such a match
/// finds a window in which every call has aged out, which cannot trip.
fn evaluation_mark(header: u32, bucket: u64, at_minimum: bool) -> u64 {
    (u64::from(header) << 32) | ((bucket & 0x7FFF_FFFF) << 1) | u64::from(at_minimum)
}

impl Shared {
    #[inline]
    fn load(&self) -> Word {
        Word::from_bits(self.state.load(Ordering::Acquire))
    }

    fn cas(&self, current: Word, next: Word) -> Result<(), Word> {
        self.state
            .compare_exchange_weak(
                current.bits(),
                next.bits(),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .map(|_| ())
            .map_err(Word::from_bits)
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    #[inline]
    fn permit(&self, generation: u32, trial: bool) -> Permit<'_> {
        Permit::new(
            self,
            generation,
            trial,
            self.slow_call.map(|_| Instant::now()),
        )
    }

    fn reject(&self, state: State, retry_after: Option<Duration>) -> Rejected {
        self.rejections_total.fetch_add(1, Ordering::Relaxed);
        Rejected::new(state, retry_after)
    }

    /// Admission: see [`CircuitBreaker::try_acquire`].
    ///
    /// The Closed case, one load and a permit, is inlined into the caller;
    /// the others are out of line in [`Shared::try_acquire_slow`].
    #[inline]
    pub(super) fn try_acquire(&self) -> Result<Permit<'_>, Rejected> {
        let current = self.load();
        if current.state() == State::Closed {
            return Ok(self.permit(current.generation(), false));
        }
        self.try_acquire_slow(current)
    }

    /// Admission when the word read was not Closed (or changed since).
    #[inline(never)]
    fn try_acquire_slow(&self, mut current: Word) -> Result<Permit<'_>, Rejected> {
        loop {
            match current.state() {
                State::Closed => return Ok(self.permit(current.generation(), false)),
                State::HalfOpen => {
                    let in_flight = current.trials_in_flight();
                    let successes = current.trial_successes();
                    if in_flight >= self.half_open_permits || successes >= self.success_threshold {
                        return Err(self.reject(State::HalfOpen, None));
                    }
                    let next = current.with_payload(Word::trials_payload(in_flight + 1, successes));
                    match self.cas(current, next) {
                        Ok(()) => return Ok(self.permit(current.generation(), true)),
                        Err(actual) => current = actual,
                    }
                }
                State::Open => {
                    if current.forced() {
                        return Err(self.reject(State::Open, None));
                    }
                    let opened = self.since.load(Ordering::Acquire);
                    let again = self.load();
                    if again != current {
                        // A transition raced with reading the opening time.
                        current = again;
                        continue;
                    }
                    let elapsed = self.nanos(Instant::now()).saturating_sub(opened);
                    if elapsed < self.recovery_nanos {
                        let left = Duration::from_nanos(self.recovery_nanos - elapsed);
                        return Err(self.reject(State::Open, Some(left)));
                    }
                    let header = current.header();
                    let moved = self.transition(|w| {
                        (w.header() == header).then(|| Change {
                            payload: Word::trials_payload(1, 0),
                            ..Change::to(State::HalfOpen, TransitionReason::RecoveryTimeoutElapsed)
                        })
                    });
                    match moved {
                        Some(next) => return Ok(self.permit(next.generation(), true)),
                        None => current = self.load(),
                    }
                }
            }
        }
    }

    /// The time for recording an outcome, read only when a rule needs it,
    /// and whether the call was slow.
    fn outcome_time(&self, started: Option<Instant>) -> (Option<Instant>, bool) {
        if !self.needs_clock {
            return (None, false);
        }
        let now = Instant::now();
        let slow = match (started, self.slow_call) {
            (Some(started), Some((limit, _))) => now.saturating_duration_since(started) > limit,
            _ => false,
        };
        (Some(now), slow)
    }

    /// A success. The common case, a Closed circuit of the permit's
    /// generation with no failure to clear and no window to record in, is
    /// one load, inlined into the caller; everything else is out of line in
    /// [`Shared::on_success_slow`].
    #[inline]
    pub(super) fn on_success(&self, generation: u32, trial: bool, started: Option<Instant>) {
        if !trial && self.window.is_none() {
            let current = self.load();
            if current.state() == State::Closed
                && current.generation() == generation
                && current.consecutive_failures() == 0
            {
                return;
            }
        }
        self.on_success_slow(generation, trial, started);
    }

    #[inline(never)]
    fn on_success_slow(&self, generation: u32, trial: bool, started: Option<Instant>) {
        if trial {
            self.trial_success(generation);
            return;
        }
        let mut current = self.load();
        loop {
            if current.state() != State::Closed || current.generation() != generation {
                return;
            }
            if current.consecutive_failures() == 0 {
                break;
            }
            match self.cas(current, current.with_payload(0)) {
                Ok(()) => break,
                Err(actual) => current = actual,
            }
        }
        if self.window.is_some() {
            let (now, slow) = self.outcome_time(started);
            self.record_in_window(current.header(), now, false, slow);
        }
    }

    #[inline(never)]
    pub(super) fn on_failure(&self, generation: u32, trial: bool, started: Option<Instant>) {
        self.failures_total.fetch_add(1, Ordering::Relaxed);
        if trial {
            self.trial_failure(generation);
            return;
        }
        let mut current = self.load();
        let failures = loop {
            if current.state() != State::Closed || current.generation() != generation {
                return;
            }
            let failures = current.consecutive_failures().saturating_add(1);
            match self.cas(current, current.with_payload(failures)) {
                Ok(()) => break failures,
                Err(actual) => current = actual,
            }
        };
        if failures >= self.failure_threshold {
            self.trip(current.header(), TransitionReason::ConsecutiveFailures);
            return;
        }
        if self.window.is_some() {
            let (now, slow) = self.outcome_time(started);
            self.record_in_window(current.header(), now, true, slow);
        }
    }

    /// Records a Closed-state outcome in the window and evaluates the rate
    /// rules on the window it leaves.
    ///
    /// Every outcome may trip a rule, a success too: the success that
    /// brings the window to `minimum_calls` may find a rate already at its
    /// threshold, and in a time window a success may come after the
    /// successes that kept the rate low have left the window. A failed or
    /// slow call is always evaluated. A fast success is not when the last
    /// evaluation was in the same Closed generation and the same time
    /// bucket and found the window at its minimum: since then no call has
    /// left the window by age (same bucket), every failed or slow call was
    /// evaluated by its own caller, and a fast success can only lower both
    /// rates (it adds a call, or in a full count window takes the place of
    /// the oldest). In the steady state of a busy breaker that is one load.
    fn record_in_window(&self, header: u32, now: Option<Instant>, failure: bool, slow: bool) {
        let Some(window) = &self.window else {
            return;
        };
        let now_nanos = now.map_or(0, |now| self.nanos(now));
        window.record(now_nanos, failure, slow);
        let bucket = window.bucket_of(now_nanos);
        if !(failure || slow)
            && self.evaluated.load(Ordering::Acquire) == evaluation_mark(header, bucket, true)
        {
            return;
        }
        let totals = window.totals(now_nanos);
        let at_minimum = totals.calls > 0 && totals.calls >= self.minimum_calls;
        let mark = evaluation_mark(header, bucket, at_minimum);
        if self.evaluated.load(Ordering::Relaxed) != mark {
            self.evaluated.store(mark, Ordering::Release);
        }
        if !at_minimum {
            return;
        }
        let calls = totals.calls as f64;
        if let Some(threshold) = self.failure_rate_threshold
            && totals.failures as f64 / calls >= threshold
        {
            self.trip(header, TransitionReason::FailureRate);
            return;
        }
        if let Some((_, threshold)) = self.slow_call
            && totals.slow as f64 / calls >= threshold
        {
            self.trip(header, TransitionReason::SlowCallRate);
        }
    }

    /// Closed to Open, if the circuit is still in the Closed generation
    /// whose header is given.
    fn trip(&self, header: u32, reason: TransitionReason) {
        self.transition(|w| (w.header() == header).then(|| Change::to(State::Open, reason)));
    }

    fn trial_success(&self, generation: u32) {
        let mut current = self.load();
        loop {
            if current.state() != State::HalfOpen || current.generation() != generation {
                return;
            }
            let successes = current.trial_successes();
            if successes >= self.success_threshold {
                // Already closing: enough trials succeeded before this one.
                return;
            }
            let in_flight = current.trials_in_flight().saturating_sub(1);
            let next = current.with_payload(Word::trials_payload(in_flight, successes + 1));
            match self.cas(current, next) {
                Ok(()) => {
                    if successes + 1 >= self.success_threshold {
                        let header = current.header();
                        self.transition(|w| {
                            (w.header() == header).then(|| {
                                Change::to(State::Closed, TransitionReason::TrialsSucceeded)
                            })
                        });
                    }
                    return;
                }
                Err(actual) => current = actual,
            }
        }
    }

    fn trial_failure(&self, generation: u32) {
        let current = self.load();
        if current.state() != State::HalfOpen || current.generation() != generation {
            return;
        }
        let header = current.header();
        let threshold = self.success_threshold;
        self.transition(|w| {
            (w.header() == header && w.trial_successes() < threshold)
                .then(|| Change::to(State::Open, TransitionReason::TrialFailure))
        });
    }

    /// A trial permit dropped without a result: frees its place, counts
    /// nothing.
    #[inline(never)]
    pub(super) fn release_trial(&self, generation: u32) {
        let mut current = self.load();
        loop {
            if current.state() != State::HalfOpen || current.generation() != generation {
                return;
            }
            let in_flight = current.trials_in_flight().saturating_sub(1);
            let next =
                current.with_payload(Word::trials_payload(in_flight, current.trial_successes()));
            match self.cas(current, next) {
                Ok(()) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// Performs a transition if `decide` asks for one, returning the new
    /// word, or `None` when `decide` declined.
    ///
    /// Under the mutex only this function changes the header, so `decide`
    /// sees a stable header; callers may still change the payload, which is
    /// why the swap is a compare-and-swap loop that asks `decide` again.
    /// The event goes out after the new word is published and before the
    /// mutex is released: sending on a broadcast channel never blocks and
    /// runs no user code, and holding the mutex keeps events in order.
    fn transition(&self, decide: impl Fn(Word) -> Option<Change>) -> Option<Word> {
        let _serial = self
            .transitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut current = self.load();
        let change = decide(current)?;
        let from = current.state();
        let now = Instant::now();
        let now_nanos = self.nanos(now);
        let previous_since = self.since.load(Ordering::Acquire);
        if change.to == State::Closed {
            // Only Closed uses the window; empty it before any call of the
            // new generation can record in it.
            if let Some(window) = &self.window {
                window.clear();
            }
        }
        if from != State::Open {
            // Entering Open: the opening time must be visible with the word.
            self.since.store(now_nanos, Ordering::Release);
        }
        let (next, change) = loop {
            let Some(change) = decide(current) else {
                self.since.store(previous_since, Ordering::Release);
                return None;
            };
            let next = Word::new(
                change.to,
                change.forced,
                current.next_generation(),
                change.payload,
            );
            match self.cas(current, next) {
                Ok(()) => break (next, change),
                Err(actual) => current = actual,
            }
        };
        if from == State::Open {
            // Leaving Open: callers still reading the old word keep seeing
            // the opening time until the new word is published.
            self.since.store(now_nanos, Ordering::Release);
        }
        if change.announce {
            let event = StateChange {
                from,
                to: change.to,
                at: now,
                reason: change.reason,
            };
            if change.to == State::Open && change.reason != TransitionReason::ForcedOpen {
                tracing::warn!(
                    target: "steadfast::breaker",
                    from = %from,
                    to = %change.to,
                    reason = %change.reason,
                    generation = next.generation(),
                    "circuit breaker opened"
                );
            } else {
                tracing::info!(
                    target: "steadfast::breaker",
                    from = %from,
                    to = %change.to,
                    reason = %change.reason,
                    generation = next.generation(),
                    "circuit breaker state changed"
                );
            }
            // An error only means nobody is subscribed.
            let _ = self.events.send(event);
        }
        Some(next)
    }
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
        let window = config.sliding_window().map(Window::new);
        let slow_call = config.slow_call_rule();
        let needs_clock = slow_call.is_some() || window.as_ref().is_some_and(Window::needs_clock);
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let shared = Shared {
            state: AtomicU64::new(Word::initial().bits()),
            since: AtomicU64::new(0),
            base: Instant::now(),
            failure_threshold: config.failure_threshold(),
            half_open_permits: config.half_open_permits(),
            success_threshold: config.success_threshold(),
            recovery_nanos: u64::try_from(config.recovery_timeout().as_nanos()).unwrap_or(u64::MAX),
            minimum_calls: u64::from(config.effective_minimum_calls()),
            failure_rate_threshold: config.failure_rate_threshold(),
            slow_call,
            needs_clock,
            evaluated: AtomicU64::new(u64::MAX),
            window,
            config,
            transitions: Mutex::new(()),
            events,
            failures_total: AtomicU64::new(0),
            rejections_total: AtomicU64::new(0),
        };
        CircuitBreaker {
            shared: Arc::new(shared),
        }
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
        &self.shared.config
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
    /// [`StateChange`] with [`TransitionReason::ForcedOpen`], unless the
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
        self.shared.transition(|w| {
            (!w.forced()).then(|| Change {
                forced: true,
                ..Change::to(State::Open, TransitionReason::ForcedOpen)
            })
        });
    }

    /// Closes the circuit and clears its counters (consecutive failures,
    /// window, trial counts); also ends a forced open.
    ///
    /// Outcomes of calls admitted before are ignored. Sends a
    /// [`StateChange`] with [`TransitionReason::Reset`] unless the circuit
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
        self.shared.transition(|w| {
            Some(Change {
                announce: w.state() != State::Closed,
                ..Change::to(State::Closed, TransitionReason::Reset)
            })
        });
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
        self.shared.events.subscribe()
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
        let s = &*self.shared;
        let word = s.load();
        let now = Instant::now();
        let now_nanos = s.nanos(now);
        let since = s.since.load(Ordering::Acquire);
        let totals = s
            .window
            .as_ref()
            .map(|w| w.totals(now_nanos))
            .unwrap_or_default();
        let rate = |count: u64| (totals.calls > 0).then(|| count as f64 / totals.calls as f64);
        let (consecutive_failures, half_open_in_flight, half_open_successes) = match word.state() {
            State::Closed => (word.consecutive_failures(), 0, 0),
            State::HalfOpen => (0, word.trials_in_flight(), word.trial_successes()),
            State::Open => (0, 0, 0),
        };
        BreakerSnapshot {
            state: word.state(),
            forced: word.forced(),
            consecutive_failures,
            calls_in_window: totals.calls,
            failure_rate: if s.window.is_some() {
                rate(totals.failures)
            } else {
                None
            },
            slow_call_rate: if s.slow_call.is_some() {
                rate(totals.slow)
            } else {
                None
            },
            half_open_in_flight,
            half_open_successes,
            time_in_state: Duration::from_nanos(now_nanos.saturating_sub(since)),
            total: BreakerTotals {
                failures: s.failures_total.load(Ordering::Relaxed),
                rejections: s.rejections_total.load(Ordering::Relaxed),
            },
        }
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
            .field("word", &self.shared.load())
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn stale_permits_are_ignored() {
        let breaker = CircuitBreaker::builder()
            .failure_threshold(2)
            .build()
            .unwrap();
        let old = breaker.try_acquire().unwrap();
        breaker.try_acquire().unwrap().failure();
        breaker.reset();
        old.failure(); // from before the reset
        assert_eq!(breaker.snapshot().consecutive_failures, 0);
        assert_eq!(breaker.state(), State::Closed);
    }

    #[test]
    fn closed_success_does_not_write_when_nothing_to_clear() {
        let breaker = CircuitBreaker::default();
        let before = breaker.shared.state.load(Ordering::Relaxed);
        breaker.try_acquire().unwrap().success();
        assert_eq!(breaker.shared.state.load(Ordering::Relaxed), before);
        breaker.try_acquire().unwrap().failure();
        let after_failure = Word::from_bits(breaker.shared.state.load(Ordering::Relaxed));
        assert_eq!(after_failure.consecutive_failures(), 1);
        assert_eq!(
            after_failure.generation(),
            Word::from_bits(before).generation()
        );
        breaker.try_acquire().unwrap().success();
        assert_eq!(breaker.shared.state.load(Ordering::Relaxed), before);
    }

    #[test]
    fn generation_moves_on_every_transition() {
        let breaker = CircuitBreaker::default();
        let g0 = breaker.shared.load().generation();
        breaker.force_open();
        let g1 = breaker.shared.load().generation();
        breaker.force_open(); // already forced: nothing happens
        assert_eq!(breaker.shared.load().generation(), g1);
        breaker.reset();
        let g2 = breaker.shared.load().generation();
        assert_eq!((g1, g2), (g0 + 1, g0 + 2));
    }

    /// Many threads hammer a breaker that cycles through every state as fast
    /// as it can; per generation, the trial permits held at once never
    /// exceed `half_open_permits`.
    #[test]
    fn trial_permits_per_generation_never_exceed_the_limit() {
        const PERMITS: u32 = 3;
        let breaker = CircuitBreaker::builder()
            .failure_threshold(2)
            .recovery_timeout(Duration::from_nanos(1))
            .half_open_permits(PERMITS)
            .success_threshold(2)
            .build()
            .unwrap();
        let held: Arc<Mutex<HashMap<u32, usize>>> = Arc::default();
        let worst = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8u32)
            .map(|t| {
                let breaker = breaker.clone();
                let held = held.clone();
                let worst = worst.clone();
                std::thread::spawn(move || {
                    for i in 0..5_000u32 {
                        let Ok(permit) = breaker.try_acquire() else {
                            continue;
                        };
                        if permit.trial {
                            let g = permit.generation;
                            {
                                let mut held = held.lock().unwrap();
                                let n = held.entry(g).or_default();
                                *n += 1;
                                worst.fetch_max(*n, Ordering::Relaxed);
                            }
                            std::thread::yield_now();
                            *held.lock().unwrap().get_mut(&g).unwrap() -= 1;
                        }
                        // Two failures in a row trip the breaker even when
                        // the threads happen to run one after another.
                        match (i + t) % 4 {
                            0 | 1 => permit.failure(),
                            2 => drop(permit),
                            _ => permit.success(),
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let worst = worst.load(Ordering::Relaxed);
        assert!(worst >= 1, "no trial call was ever admitted");
        assert!(worst <= PERMITS as usize, "{worst} trials held at once");
    }
}
