//! A circuit breaker: stop calling a dependency that keeps failing, probe it
//! with a few trial calls after a while, and close again once it recovers.
//!
//! # The state machine
//!
//! ```text
//!            failure_threshold failures in a row, or the failure
//!            rate or slow-call rate over the window at its threshold
//! +--------+ ----------------------------------------------> +------+
//! | Closed |                                                 | Open |
//! +--------+                                                 +------+
//!      ^                                 recovery_timeout      |   ^
//!      |                                 elapsed: the next     |   | any trial
//!      |                                 caller moves it       |   | call fails
//!      |                                                       v   |
//!      |  success_threshold trial successes                 +----------+
//!      +--------------------------------------------------- | HalfOpen |
//!                                                           +----------+
//!
//! force_open(): to Open from any state, held there until reset()
//! reset():      to Closed from any state, every counter cleared
//! ```
//!
//! - **Closed**: every call is admitted. A failure adds one to the
//!   consecutive-failure count, a success clears it; `failure_threshold`
//!   failures in a row open the circuit. With a [`SlidingWindow`]
//!   configured, a failure rate or slow-call rate at or above its threshold
//!   (once the window holds `minimum_calls` calls) opens it too.
//! - **Open**: every call is refused at once with
//!   [`BreakerError::Rejected`], whose `retry_after` is the time left until
//!   trial calls. The operation is never run. Once `recovery_timeout` has
//!   passed, the next caller moves the circuit to HalfOpen and makes the
//!   first trial call.
//! - **HalfOpen**: at most `half_open_permits` trial calls run at once;
//!   callers beyond that are refused at once. `success_threshold` trial
//!   successes close the circuit (counters cleared); any trial failure opens
//!   it again for a fresh `recovery_timeout`. A trial call that is
//!   abandoned (its future dropped) frees its place and counts as nothing.
//! - [`CircuitBreaker::force_open`] holds the circuit Open, refusing with
//!   `retry_after: None`, until [`CircuitBreaker::reset`], which closes it
//!   from any state and clears every counter.
//!
//! Each change is sent, after the new state is in place and in the order the
//! changes happened, to every [`CircuitBreaker::subscribe`] receiver as a
//! [`StateChange`], and logged as a `tracing` event with target
//! `"steadfast::breaker"` and fields `from`, `to` and `reason` (and `name`,
//! for a breaker named with [`CircuitBreakerBuilder::name`] or
//! [`CircuitBreaker::named`]). With the `metrics` feature a named breaker
//! records its state, calls, rejections and slow calls under its name
//! (see `steadfast::metrics`); the Closed path of a named breaker adds one
//! relaxed increment of a counter it holds, that of an unnamed one a check
//! of an `Option`.
//!
//! # How the hot path stays lock-free
//!
//! All the state a call needs lives in one `AtomicU64`, changed only by
//! compare-and-swap:
//!
//! ```text
//!  63            48 47            32 31                     3   2   1 0
//! +----------------+----------------+-------------------------+---+-----+
//! |            payload (32)         |   generation (29 bits)  | F | st  |
//! +----------------+----------------+-------------------------+---+-----+
//!
//! st (bits 0-1)   state: 00 Closed, 01 Open, 10 HalfOpen
//! F  (bit 2)      forced open
//! generation      +1 on every transition; a permit remembers its generation
//!                 and what it records is ignored once the generation moved on
//! payload         Closed:   consecutive failures (32 bits, saturating)
//!                 HalfOpen: trial calls in flight (bits 32-47) and trial
//!                           successes (bits 48-63)
//!                 Open:     zero
//! ```
//!
//! - In Closed, with only the consecutive-failure rule, admission is one
//!   atomic load; a success is one load, plus a compare-and-swap only when
//!   the failure count is not already zero; a failure is one
//!   compare-and-swap. No mutex, no allocation, no clock.
//! - In HalfOpen, taking and returning a trial place is a compare-and-swap
//!   on the payload, so no more than `half_open_permits` are ever out.
//! - Transitions change the generation (the low 32 bits); they are
//!   serialised by a mutex so that they and their events happen in one
//!   order. They are the slow path: a few per failure episode.
//! - The time the circuit opened is kept as nanoseconds since the breaker
//!   was built in a second `AtomicU64`, from [`tokio::time::Instant`]; the
//!   clock is read on the Closed path only when a time-based window or the
//!   slow-call rule needs it.
//! - Sliding windows are atomics too: a ring of one-byte slots with atomic
//!   aggregates (count-based), or per-bucket counters tagged with their
//!   epoch (time-based). Every outcome recorded in Closed can trip a rate
//!   rule, a success too, once the window holds `minimum_calls` calls. A
//!   failed or slow call reads the window's totals; a fast success does
//!   only when the window was below its minimum at the last evaluation or
//!   a time bucket has passed since (calls may have aged out), and is
//!   otherwise one more load.
//!
//! Everything a breaker needs is allocated when it is built; cycling through
//! the states allocates nothing.
//!
//! [`BreakerSnapshot::total`] counts failures and rejections with relaxed
//! atomic counters; successes are not counted, because a counter written by
//! every successful call would turn the Closed success path, now a plain
//! load, into a write that concurrent callers contend for.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use steadfast::breaker::{BreakerError, CircuitBreaker, SlidingWindow, State};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), steadfast::ConfigError> {
//! let breaker = CircuitBreaker::builder()
//!     .failure_threshold(5)
//!     .sliding_window(SlidingWindow::count(20))
//!     .minimum_calls(10)
//!     .failure_rate_threshold(0.5)
//!     .recovery_timeout(Duration::from_secs(10))
//!     .build()?;
//!
//! // Alternate successes and failures: never 5 failures in a row, but the
//! // tenth call, a failure, makes the rate 50% over 10 calls.
//! for i in 0..10 {
//!     let _ = breaker
//!         .call(|| async move { if i % 2 == 1 { Err("boom") } else { Ok(()) } })
//!         .await;
//! }
//! assert_eq!(breaker.state(), State::Open);
//!
//! match breaker.call(|| async { Ok::<_, &str>(()) }).await {
//!     Err(BreakerError::Rejected { retry_after, .. }) => {
//!         assert_eq!(retry_after, Some(Duration::from_secs(10)))
//!     }
//!     other => panic!("expected a rejection, got {other:?}"),
//! }
//! # Ok(())
//! # }
//! ```

mod builder;
mod circuit;
mod config;
mod error;
mod permit;
mod shared;
mod window;
mod word;

use std::fmt;
use std::time::Duration;

pub use builder::CircuitBreakerBuilder;
pub use circuit::CircuitBreaker;
pub use config::{CircuitBreakerConfig, SlidingWindow};
pub use error::{BreakerError, Rejected};
pub(crate) use permit::CallOutput;
pub use permit::{OwnedPermit, Permit};

/// The state of a circuit breaker.
///
/// # Examples
///
/// ```
/// use steadfast::breaker::{CircuitBreaker, State};
///
/// let breaker = CircuitBreaker::default();
/// assert_eq!(breaker.state(), State::Closed);
/// assert_eq!(State::HalfOpen.to_string(), "half-open");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Calls go through; failures are counted.
    Closed,
    /// Calls are refused until the recovery timeout has passed (or, when
    /// forced open, until a reset).
    Open,
    /// A limited number of trial calls go through to probe the dependency.
    HalfOpen,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half-open",
        })
    }
}

/// Why a circuit breaker changed state.
///
/// # Examples
///
/// ```
/// use steadfast::breaker::TransitionReason;
/// assert_eq!(TransitionReason::TrialFailure.to_string(), "trial_failure");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransitionReason {
    /// Closed to Open: `failure_threshold` failures in a row.
    ConsecutiveFailures,
    /// Closed to Open: the failure rate over the window reached its threshold.
    FailureRate,
    /// Closed to Open: the slow-call rate over the window reached its threshold.
    SlowCallRate,
    /// HalfOpen to Open: a trial call failed.
    TrialFailure,
    /// HalfOpen to Closed: `success_threshold` trial calls succeeded.
    TrialsSucceeded,
    /// Open to HalfOpen: the recovery timeout elapsed and a caller arrived.
    RecoveryTimeoutElapsed,
    /// To Open: [`CircuitBreaker::force_open`].
    ForcedOpen,
    /// To Closed: [`CircuitBreaker::reset`].
    Reset,
}

impl fmt::Display for TransitionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransitionReason::ConsecutiveFailures => "consecutive_failures",
            TransitionReason::FailureRate => "failure_rate",
            TransitionReason::SlowCallRate => "slow_call_rate",
            TransitionReason::TrialFailure => "trial_failure",
            TransitionReason::TrialsSucceeded => "trials_succeeded",
            TransitionReason::RecoveryTimeoutElapsed => "recovery_timeout_elapsed",
            TransitionReason::ForcedOpen => "forced_open",
            TransitionReason::Reset => "reset",
        })
    }
}

/// One change of state, as sent to [`CircuitBreaker::subscribe`] receivers.
///
/// # Examples
///
/// ```
/// use steadfast::breaker::{CircuitBreaker, State, TransitionReason};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let breaker = CircuitBreaker::builder().failure_threshold(1).build()?;
/// let mut events = breaker.subscribe();
/// breaker.try_acquire()?.failure();
/// let change = events.recv().await?;
/// assert_eq!(change.from, State::Closed);
/// assert_eq!(change.to, State::Open);
/// assert_eq!(change.reason, TransitionReason::ConsecutiveFailures);
/// assert!(change.at <= tokio::time::Instant::now());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateChange {
    /// The state before.
    pub from: State,
    /// The state after.
    pub to: State,
    /// When it changed.
    pub at: tokio::time::Instant,
    /// Why.
    pub reason: TransitionReason,
}

/// What a circuit breaker holds at one moment, from
/// [`CircuitBreaker::snapshot`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::breaker::{CircuitBreaker, SlidingWindow};
///
/// let breaker = CircuitBreaker::builder()
///     .sliding_window(SlidingWindow::count(10))
///     .failure_rate_threshold(0.9)
///     .build()?;
/// breaker.try_acquire().unwrap().success();
/// breaker.try_acquire().unwrap().failure();
/// let snap = breaker.snapshot();
/// assert_eq!(snap.calls_in_window, 2);
/// assert_eq!(snap.failure_rate, Some(0.5));
/// assert_eq!(snap.slow_call_rate, None); // the slow-call rule is off
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BreakerSnapshot {
    /// The current state.
    pub state: State,
    /// Whether the circuit was forced open.
    pub forced: bool,
    /// Consecutive failures (Closed; 0 otherwise).
    pub consecutive_failures: u32,
    /// Calls in the sliding window (0 without a window).
    pub calls_in_window: u64,
    /// Failures over calls in the window; `None` without a window or before
    /// the first call in it.
    pub failure_rate: Option<f64>,
    /// Slow calls over calls in the window; `None` without the slow-call rule
    /// or before the first call in the window.
    pub slow_call_rate: Option<f64>,
    /// Trial calls in flight (HalfOpen; 0 otherwise).
    pub half_open_in_flight: u32,
    /// Trial calls that succeeded so far (HalfOpen; 0 otherwise).
    pub half_open_successes: u32,
    /// Time since the last transition (or reset).
    pub time_in_state: Duration,
    /// Counts since the breaker was built.
    pub total: BreakerTotals,
}

/// Counts since a breaker was built, in a [`BreakerSnapshot`].
///
/// Successes are not counted: that would put a shared write on the Closed
/// success path, which is otherwise a single load. Failures include those of
/// stale permits (recorded after a transition made them irrelevant).
///
/// # Examples
///
/// ```
/// use steadfast::breaker::CircuitBreaker;
///
/// let breaker = CircuitBreaker::default();
/// breaker.force_open();
/// let _ = breaker.try_acquire();
/// assert_eq!(breaker.snapshot().total.rejections, 1);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BreakerTotals {
    /// Failures recorded.
    pub failures: u64,
    /// Calls refused.
    pub rejections: u64,
}
