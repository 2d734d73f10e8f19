//! The state one breaker's handles share, and its transitions: admission
//! on the state word, outcomes recorded into the window, the rules that
//! open the circuit, and the events that say so. [`CircuitBreaker`] is the
//! public handle on it.
//!
//! [`CircuitBreaker`]: super::CircuitBreaker

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;

use super::permit::Permit;

/// How many state changes a slow subscriber may fall behind before it
/// starts losing the oldest ones (it then sees `RecvError::Lagged`).
const EVENT_CAPACITY: usize = 64;
use super::window::Window;
use super::word::Word;
use super::{
    BreakerSnapshot, BreakerTotals, CircuitBreakerConfig, Rejected, State, StateChange,
    TransitionReason,
};

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
    /// The name given when the breaker was built.
    name: Option<Arc<str>>,
    /// The handles of a named breaker's metrics.
    #[cfg(feature = "metrics")]
    metrics: Option<crate::metrics::BreakerMetrics>,
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
    pub(super) fn to(to: State, reason: TransitionReason) -> Self {
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
    /// The configuration the breaker was built with.
    pub(super) fn config(&self) -> &CircuitBreakerConfig {
        &self.config
    }

    /// The name given when the breaker was built.
    pub(super) fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// A receiver of every state change from now on.
    pub(super) fn subscribe(&self) -> broadcast::Receiver<StateChange> {
        self.events.subscribe()
    }

    /// The breaker's state and counters at this moment.
    pub(super) fn snapshot(&self) -> BreakerSnapshot {
        let s = self;
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

    /// The state of a new breaker under `config`: Closed, counters at zero.
    pub(super) fn new(config: CircuitBreakerConfig, name: Option<Arc<str>>) -> Self {
        let window = config.sliding_window().map(Window::new);
        let slow_call = config.slow_call_rule();
        let needs_clock = slow_call.is_some() || window.as_ref().is_some_and(Window::needs_clock);
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        Shared {
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
            #[cfg(feature = "metrics")]
            metrics: name.as_deref().map(crate::metrics::BreakerMetrics::new),
            name,
        }
    }

    /// Opens the circuit and keeps it open until [`reset`](Self::reset).
    pub(super) fn force_open(&self) {
        self.transition(|w| {
            (!w.forced()).then(|| Change {
                forced: true,
                ..Change::to(State::Open, TransitionReason::ForcedOpen)
            })
        });
    }

    /// Closes the circuit and clears its counters; ends a forced open.
    pub(super) fn reset(&self) {
        self.transition(|w| {
            Some(Change {
                announce: w.state() != State::Closed,
                ..Change::to(State::Closed, TransitionReason::Reset)
            })
        });
    }

    #[inline]
    pub(super) fn load(&self) -> Word {
        Word::from_bits(self.state.load(Ordering::Acquire))
    }

    pub(super) fn cas(&self, current: Word, next: Word) -> Result<(), Word> {
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

    pub(super) fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    #[inline]
    pub(super) fn permit(&self, generation: u32, trial: bool) -> Permit<'_> {
        Permit::new(
            self,
            generation,
            trial,
            self.slow_call.map(|_| Instant::now()),
        )
    }

    pub(super) fn reject(&self, state: State, retry_after: Option<Duration>) -> Rejected {
        self.rejections_total.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        if let Some(metrics) = &self.metrics {
            metrics.rejection();
        }
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
    pub(super) fn try_acquire_slow(&self, mut current: Word) -> Result<Permit<'_>, Rejected> {
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
    pub(super) fn outcome_time(&self, started: Option<Instant>) -> (Option<Instant>, bool) {
        if !self.needs_clock {
            return (None, false);
        }
        let now = Instant::now();
        let slow = match (started, self.slow_call) {
            (Some(started), Some((limit, _))) => now.saturating_duration_since(started) > limit,
            _ => false,
        };
        #[cfg(feature = "metrics")]
        if slow && let Some(metrics) = &self.metrics {
            metrics.slow_call();
        }
        (Some(now), slow)
    }

    /// A success. The common case, a Closed circuit of the permit's
    /// generation with no failure to clear and no window to record in, is
    /// one load, inlined into the caller; everything else is out of line in
    /// [`Shared::on_success_slow`].
    #[inline]
    pub(super) fn on_success(&self, generation: u32, trial: bool, started: Option<Instant>) {
        #[cfg(feature = "metrics")]
        if let Some(metrics) = &self.metrics {
            metrics.success();
        }
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
    pub(super) fn on_success_slow(&self, generation: u32, trial: bool, started: Option<Instant>) {
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
        #[cfg(feature = "metrics")]
        if let Some(metrics) = &self.metrics {
            metrics.failure();
        }
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
    pub(super) fn record_in_window(
        &self,
        header: u32,
        now: Option<Instant>,
        failure: bool,
        slow: bool,
    ) {
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
    pub(super) fn trip(&self, header: u32, reason: TransitionReason) {
        self.transition(|w| (w.header() == header).then(|| Change::to(State::Open, reason)));
    }

    pub(super) fn trial_success(&self, generation: u32) {
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

    pub(super) fn trial_failure(&self, generation: u32) {
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
        #[cfg(feature = "metrics")]
        if let Some(metrics) = &self.metrics {
            metrics.state(change.to);
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
                    name = self.name.as_deref(),
                    from = %from,
                    to = %change.to,
                    reason = %change.reason,
                    generation = next.generation(),
                    "circuit breaker opened"
                );
            } else {
                tracing::info!(
                    target: "steadfast::breaker",
                    name = self.name.as_deref(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::CircuitBreaker;
    use std::collections::HashMap;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

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
