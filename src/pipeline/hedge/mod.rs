//! Hedging: when the attempts of a call in flight have not answered after a
//! delay, start another, and take the first success.
//!
//! A slow answer is often the bad luck of one replica, one connection or
//! one garbage-collection pause; a second attempt sent a little later often
//! answers first. [`Hedge`] runs the attempts of one call concurrently in
//! the caller's task, at most `max_attempts` of them, each started when the
//! ones before it have gone unanswered for the hedging delay (or at once
//! when one fails). The first success is the call's answer and the other
//! attempts are dropped; when every attempt fails, the call returns the last
//! error, the operation's own.
//!
//! The delay is fixed, or a percentile of the latencies of recent
//! successful attempts (for example p95 of the last 100), kept by the
//! latency record of this module, a sorted window behind one short lock.
//! Configure a hedge with [`Hedge::builder`] or a [`HedgeConfig`].

mod config;
mod latency;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

pub use config::{HedgeConfig, HedgeConfigBuilder};
use latency::LatencyRecord;

/// The `tracing` target of the hedge's events.
const TARGET: &str = "steadfast::hedge";

/// Runs the attempts of a call concurrently: another starts whenever the
/// ones in flight have not answered after a delay, up to `max_attempts`;
/// the first success wins and the others are dropped.
///
/// [`call`](Self::call) takes a closure that makes the operation's future
/// and calls it once per attempt:
///
/// 1. The first attempt starts at once. If it answers before the delay (or
///    at its first poll), that is the call's answer: one attempt, no timer
///    beyond the one it armed, no allocation.
/// 2. Each time the attempts in flight have gone unanswered for the delay
///    since the latest one started, another starts, until `max_attempts`
///    have started; all of them stay in flight together.
/// 3. When an attempt fails, it leaves the race and, with
///    `hedge_on_failure` (the default), the next attempt starts at once;
///    without it, the next starts when the delay runs out, as if the failed
///    attempt were still in flight.
/// 4. The first attempt to succeed is the answer; the others are dropped
///    before `call` returns. When every attempt has failed, the call
///    returns the error of the last one: hedging adds no error of its own.
///
/// The attempts run in the caller's task, polled by the call's future: no
/// task is spawned, so a panic in an attempt reaches the caller, and
/// nothing outlives the call.
///
/// # The delay
///
/// The delay is the configured [`delay`](HedgeConfig::delay), or, with a
/// [`percentile`](HedgeConfig::percentile), that percentile (nearest rank)
/// of the latencies of the last [`window`](HedgeConfig::window) successful
/// attempts once [`min_samples`](HedgeConfig::min_samples) of them are
/// recorded (the fixed delay until then, and never below 1 ms, tokio's
/// timer resolution). [`delay`](Self::delay) says what it is now. Each call
/// records one latency, that of the attempt that won, measured from the
/// attempt's start: an attempt that answers at its first poll is recorded
/// as zero (nothing was waited for, and the clock is not read), a pending
/// one from the instant it was first found pending. Failed and dropped
/// attempts are not recorded.
///
/// The latency record is shared by the clones of the hedge. It holds the
/// last `window` latencies twice, behind one mutex: in a ring in order of
/// arrival, and in a sorted array, both allocated when the hedge is built.
/// Recording a latency takes the lock, finds the oldest sample and the
/// place of the new one in the sorted array by binary search, and shifts
/// the entries between the two places by one (at most `window` entries,
/// none when the two samples are equal); with `min_samples` or more held,
/// it then reads the percentile off the sorted array (rank
/// `⌈p · n / 100⌉` of `n`) and stores it in an atomic. So a call takes the
/// lock once, briefly, and allocates nothing; reading the delay is one
/// atomic load.
///
/// # Costs
///
/// An answer at the first poll costs one relaxed atomic increment (its
/// count in [`snapshot`](Self::snapshot)) and, with a percentile, the
/// latency record's lock; no clock read and no allocation. A first attempt
/// that waits arms one tokio timer (one clock read). The first hedge
/// allocates the set of further attempts (a [`FuturesUnordered`]).
///
/// Time comes from [`tokio::time`]: the call needs a tokio runtime with
/// time enabled once an attempt waits, and runs on paused time in tests.
///
/// Every hedge started is a `tracing` event at debug level with target
/// `"steadfast::hedge"` and the fields `attempt` (its index, from 1) and
/// `reason` (`"delay"` or `"failure"`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::pipeline::Hedge;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), steadfast::ConfigError> {
/// let hedge = Hedge::builder()
///     .max_attempts(2)
///     .delay(Duration::from_millis(50))
///     .build()?;
///
/// let replicas = ["slow", "fast"];
/// let next = std::sync::atomic::AtomicUsize::new(0);
/// let answer = hedge
///     .call(|| {
///         let replica = replicas[next.fetch_add(1, std::sync::atomic::Ordering::SeqCst)];
///         async move {
///             let wait = if replica == "slow" { 1_000 } else { 10 };
///             tokio::time::sleep(Duration::from_millis(wait)).await;
///             Ok::<_, std::io::Error>(replica)
///         }
///     })
///     .await
///     .unwrap();
/// // The first attempt had not answered after 50 ms; the hedge answered at 60 ms.
/// assert_eq!(answer, "fast");
/// let snap = hedge.snapshot();
/// assert_eq!((snap.calls, snap.hedges), (1, 1));
/// assert_eq!(snap.wins, vec![0, 1]);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Hedge {
    shared: Arc<Shared>,
}

/// What the clones of a hedge share.
struct Shared {
    config: HedgeConfig,
    max_attempts: u32,
    delay: Duration,
    hedge_on_failure: bool,
    /// With a percentile delay, the recent latencies.
    latency: Option<LatencyRecord>,
    hedges: AtomicU64,
    failed: AtomicU64,
    cancelled: AtomicU64,
    /// Wins by attempt index; `max_attempts` entries.
    wins: Box<[AtomicU64]>,
}

impl Shared {
    /// The delay before the next hedge.
    #[inline]
    fn delay(&self) -> Duration {
        match &self.latency {
            Some(record) => record.delay(),
            None => self.delay,
        }
    }

    /// Counts a win of attempt `index` and records its latency.
    #[inline]
    fn won(&self, index: u32, started: Option<Instant>) {
        if let Some(win) = usize::try_from(index).ok().and_then(|i| self.wins.get(i)) {
            win.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(record) = &self.latency {
            record.record(started.map_or(Duration::ZERO, |s| s.elapsed()));
        }
    }
}

impl Hedge {
    /// A hedge with the given configuration and no latency recorded.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::{Hedge, HedgeConfig};
    ///
    /// let config = HedgeConfig::builder().max_attempts(3).build()?;
    /// let hedge = Hedge::new(config);
    /// assert_eq!(hedge.config().max_attempts(), 3);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn new(config: HedgeConfig) -> Self {
        let latency = config.percentile().map(|p| {
            LatencyRecord::new(
                p,
                usize::try_from(config.window()).unwrap_or(1),
                usize::try_from(config.min_samples()).unwrap_or(1),
                config.delay(),
            )
        });
        let shared = Shared {
            max_attempts: config.max_attempts(),
            delay: config.delay(),
            hedge_on_failure: config.hedge_on_failure(),
            latency,
            hedges: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            wins: (0..config.max_attempts())
                .map(|_| AtomicU64::new(0))
                .collect(),
            config,
        };
        Hedge {
            shared: Arc::new(shared),
        }
    }

    /// A builder for a hedge, starting from the defaults listed on
    /// [`HedgeConfig`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::pipeline::Hedge;
    ///
    /// let hedge = Hedge::builder()
    ///     .max_attempts(3)
    ///     .delay(Duration::from_millis(40))
    ///     .percentile(95.0)
    ///     .build()?;
    /// assert_eq!(hedge.config().percentile(), Some(95.0));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn builder() -> HedgeConfigBuilder<Hedge> {
        HedgeConfigBuilder::default()
    }

    /// The configuration this hedge was built with.
    ///
    /// # Examples
    ///
    /// ```
    /// let hedge = steadfast::pipeline::Hedge::default();
    /// assert_eq!(hedge.config().max_attempts(), 2);
    /// ```
    pub fn config(&self) -> &HedgeConfig {
        &self.shared.config
    }

    /// The delay a hedge would wait now: the fixed delay, or the percentile
    /// of recent latencies once enough are recorded.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::pipeline::Hedge;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::ConfigError> {
    /// let hedge = Hedge::builder()
    ///     .delay(Duration::from_secs(1))
    ///     .percentile(50.0)
    ///     .min_samples(1)
    ///     .build()?;
    /// assert_eq!(hedge.delay(), Duration::from_secs(1));
    ///
    /// hedge
    ///     .call(|| async {
    ///         tokio::time::sleep(Duration::from_millis(30)).await;
    ///         Ok::<_, std::io::Error>(())
    ///     })
    ///     .await
    ///     .unwrap();
    /// assert_eq!(hedge.delay(), Duration::from_millis(30));
    /// # Ok(())
    /// # }
    /// ```
    pub fn delay(&self) -> Duration {
        self.shared.delay()
    }

    /// Runs `op` with hedging and returns the first success, or the last
    /// error when every attempt failed.
    ///
    /// `op` is called once per attempt, and the attempts run concurrently in
    /// the caller's task (see [`Hedge`] for when each starts). The future
    /// of the winning attempt completes; every other attempt is dropped
    /// before `call` returns.
    ///
    /// # Cancellation
    ///
    /// Dropping the returned future drops every attempt in flight and the
    /// timer: nothing outlives it. The call counts as
    /// [`cancelled`](HedgeSnapshot::cancelled) in the snapshot.
    ///
    /// # Errors
    ///
    /// The operation's own error: that of the attempt that failed last,
    /// once `max_attempts` have started and all have failed.
    ///
    /// # Panics
    ///
    /// A panic of `op` or of an attempt reaches the caller (the attempts are
    /// polled in its task). Like every tokio timer, the call panics if an
    /// attempt waits outside a tokio runtime with time enabled.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io;
    /// use steadfast::pipeline::Hedge;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let hedge = Hedge::builder().max_attempts(3).build().unwrap();
    /// let err = hedge
    ///     .call(|| async { Err::<(), _>(io::Error::other("no replica answers")) })
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.to_string(), "no replica answers");
    /// // Each failure started the next attempt at once.
    /// assert_eq!(hedge.snapshot().hedges, 2);
    /// assert_eq!(hedge.snapshot().failed, 1);
    /// # }
    /// ```
    pub async fn call<F, Fut, T, E>(&self, op: F) -> Result<T, E>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let shared = &*self.shared;
        let first = op();
        Race {
            count: Count {
                shared,
                done: false,
            },
            op,
            first: Some(first),
            first_started: None,
            timer: None,
            armed: false,
            hedges: None,
            started: 1,
            in_flight: 1,
            start_next: 0,
        }
        .await
    }

    /// What the hedge has done since it was built: calls, hedges started,
    /// wins by attempt, failures and cancellations.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::Hedge;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let hedge = Hedge::default();
    /// hedge.call(|| async { Ok::<_, std::io::Error>(1) }).await.unwrap();
    /// let snap = hedge.snapshot();
    /// assert_eq!(snap.calls, 1);
    /// assert_eq!(snap.wins, vec![1, 0]);
    /// # }
    /// ```
    pub fn snapshot(&self) -> HedgeSnapshot {
        let shared = &*self.shared;
        let wins: Vec<u64> = shared
            .wins
            .iter()
            .map(|w| w.load(Ordering::Relaxed))
            .collect();
        let failed = shared.failed.load(Ordering::Relaxed);
        let cancelled = shared.cancelled.load(Ordering::Relaxed);
        HedgeSnapshot {
            calls: wins.iter().sum::<u64>() + failed + cancelled,
            hedges: shared.hedges.load(Ordering::Relaxed),
            wins,
            failed,
            cancelled,
        }
    }
}

impl Default for Hedge {
    /// A hedge with the defaults listed on [`HedgeConfig`].
    ///
    /// # Examples
    ///
    /// ```
    /// let hedge = steadfast::pipeline::Hedge::default();
    /// assert_eq!(hedge.config().max_attempts(), 2);
    /// ```
    fn default() -> Self {
        Hedge::new(HedgeConfig::default())
    }
}

impl fmt::Debug for Hedge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hedge")
            .field("config", &self.shared.config)
            .field("delay", &self.delay())
            .finish()
    }
}

/// What a [`Hedge`] has done since it was built, from [`Hedge::snapshot`].
///
/// A call is counted once it has ended, however many attempts it made: in
/// one of `wins` (by the index of the attempt that answered), in `failed`,
/// or in `cancelled`; `calls` is their sum (a call in progress is not
/// counted yet: counting calls as they start would cost every call a
/// second atomic increment). Hedges are counted as they start. The counts
/// are read one after the other without a lock, so under load they may not
/// be from the same instant.
///
/// # Examples
///
/// ```
/// use steadfast::pipeline::Hedge;
///
/// let hedge = Hedge::builder().max_attempts(3).build()?;
/// let snap = hedge.snapshot();
/// assert_eq!((snap.calls, snap.hedges, snap.failed, snap.cancelled), (0, 0, 0, 0));
/// assert_eq!(snap.wins, vec![0, 0, 0]);
/// assert_eq!(snap.succeeded(), 0);
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HedgeSnapshot {
    /// Calls that have ended: answered, failed or dropped (the sum of
    /// `wins`, `failed` and `cancelled`).
    pub calls: u64,
    /// Attempts started after the first of their call.
    pub hedges: u64,
    /// Calls answered, by the index of the attempt that answered (0 for the
    /// first attempt); `max_attempts` entries.
    pub wins: Vec<u64>,
    /// Calls whose every attempt failed.
    pub failed: u64,
    /// Calls dropped before they returned.
    pub cancelled: u64,
}

impl HedgeSnapshot {
    /// Calls answered by one of their attempts: the sum of `wins`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let hedge = steadfast::pipeline::Hedge::default();
    /// hedge.call(|| async { Ok::<_, ()>(()) }).await.unwrap();
    /// assert_eq!(hedge.snapshot().succeeded(), 1);
    /// # }
    /// ```
    pub fn succeeded(&self) -> u64 {
        self.wins.iter().sum()
    }
}

/// Counts a call that ends without an answer as cancelled: set `done` when
/// the call returns.
struct Count<'a> {
    shared: &'a Shared,
    done: bool,
}

impl Drop for Count<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.shared.cancelled.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pin_project! {
    /// A hedge started after the first attempt, with its index and start.
    struct Attempt<Fut> {
        index: u32,
        started: Instant,
        #[pin]
        fut: Fut,
    }
}

impl<Fut: Future> Future for Attempt<Fut> {
    type Output = (u32, Instant, Fut::Output);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let (index, started) = (*this.index, *this.started);
        this.fut.poll(cx).map(|out| (index, started, out))
    }
}

pin_project! {
    /// The attempts of one call: the first inline (no allocation while it
    /// is alone), the hedges in a set allocated when the first starts.
    struct Race<'a, F, Fut> {
        count: Count<'a>,
        op: F,
        #[pin]
        first: Option<Fut>,
        // When the first attempt was found pending (for its latency).
        first_started: Option<Instant>,
        // The hedge timer: the latest attempt's start plus the delay.
        #[pin]
        timer: Option<Sleep>,
        // Whether the timer was ever armed (or needed no arming).
        armed: bool,
        hedges: Option<FuturesUnordered<Attempt<Fut>>>,
        // Attempts started, at most `max_attempts`.
        started: u32,
        // Attempts started that have not answered.
        in_flight: u32,
        // Failures that ask for the next attempt at once.
        start_next: u32,
    }
}

/// The instant `delay` after `now`, or about thirty years later (tokio's
/// "far future") when that does not fit in an `Instant`.
fn deadline(now: Instant, delay: Duration) -> Instant {
    now.checked_add(delay)
        .or_else(|| now.checked_add(Duration::from_secs(86_400 * 365 * 30)))
        .unwrap_or(now)
}

impl<F, Fut, T, E> Future for Race<'_, F, Fut>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let shared = this.count.shared;
        let max = shared.max_attempts;
        loop {
            // 1. The first attempt, while it is in flight.
            if let Some(fut) = this.first.as_mut().as_pin_mut()
                && let Poll::Ready(result) = fut.poll(cx)
            {
                this.first.set(None);
                *this.in_flight -= 1;
                match result {
                    Ok(value) => {
                        shared.won(0, *this.first_started);
                        this.count.done = true;
                        return Poll::Ready(Ok(value));
                    }
                    Err(err) => {
                        if *this.in_flight == 0 && *this.started >= max {
                            shared.failed.fetch_add(1, Ordering::Relaxed);
                            this.count.done = true;
                            return Poll::Ready(Err(err));
                        }
                        // A later attempt's error will be the answer.
                        drop(err);
                        *this.start_next += u32::from(shared.hedge_on_failure);
                    }
                }
            }

            // 2. The hedges: every one that has answered.
            if let Some(hedges) = this.hedges.as_mut() {
                while let Poll::Ready(Some((index, started, result))) = hedges.poll_next_unpin(cx) {
                    *this.in_flight -= 1;
                    match result {
                        Ok(value) => {
                            shared.won(index, Some(started));
                            this.count.done = true;
                            return Poll::Ready(Ok(value));
                        }
                        Err(err) => {
                            if *this.in_flight == 0 && *this.started >= max {
                                shared.failed.fetch_add(1, Ordering::Relaxed);
                                this.count.done = true;
                                return Poll::Ready(Err(err));
                            }
                            drop(err);
                            *this.start_next += u32::from(shared.hedge_on_failure);
                        }
                    }
                }
            }

            // 3. Start the next attempt if a failure or the timer asks.
            if *this.started >= max {
                // Every attempt has started; only the ones in flight are
                // left to answer. With a percentile, a first attempt that
                // waits still needs its start for its latency.
                if !*this.armed {
                    *this.armed = true;
                    if shared.latency.is_some() && this.first.is_some() {
                        *this.first_started = Some(Instant::now());
                    }
                }
                return Poll::Pending;
            }
            let reason = if *this.start_next > 0 {
                *this.start_next -= 1;
                "failure"
            } else {
                if !*this.armed {
                    // The first attempt is pending (or failed at once
                    // without `hedge_on_failure`): the clock starts now.
                    *this.armed = true;
                    let now = Instant::now();
                    if this.first.is_some() {
                        *this.first_started = Some(now);
                    }
                    this.timer.set(Some(tokio::time::sleep_until(deadline(
                        now,
                        shared.delay(),
                    ))));
                }
                let fired = match this.timer.as_mut().as_pin_mut() {
                    Some(timer) => timer.poll(cx).is_ready(),
                    None => false,
                };
                if !fired {
                    return Poll::Pending;
                }
                "delay"
            };

            // A hedge: started now, the timer re-armed from now.
            let index = *this.started;
            *this.started += 1;
            *this.in_flight += 1;
            shared.hedges.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(target: TARGET, attempt = index, reason, "hedge started");
            let now = Instant::now();
            if *this.started < max {
                let at = deadline(now, shared.delay());
                match this.timer.as_mut().as_pin_mut() {
                    Some(timer) => timer.reset(at),
                    None => this.timer.set(Some(tokio::time::sleep_until(at))),
                }
            } else {
                this.timer.set(None);
            }
            *this.armed = true;
            let attempt = Attempt {
                index,
                started: now,
                fut: (this.op)(),
            };
            this.hedges
                .get_or_insert_with(FuturesUnordered::new)
                .push(attempt);
            // Loop: the new attempt is polled at once.
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_never_overflows() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let now = Instant::now();
            assert_eq!(
                deadline(now, Duration::from_millis(5)),
                now + Duration::from_millis(5)
            );
            assert!(deadline(now, Duration::MAX) > now + Duration::from_secs(86_400 * 365));
        });
    }

    #[test]
    fn wins_has_one_entry_per_attempt() {
        let hedge = Hedge::builder().max_attempts(5).build().unwrap();
        assert_eq!(hedge.snapshot().wins.len(), 5);
        assert!(format!("{hedge:?}").contains("max_attempts: 5"));
    }
}
