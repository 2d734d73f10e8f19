//! The global rate limiter, [`RateLimiter`], and what it shares with the
//! keyed one: refusing a call, and waiting for a permit on tokio's time.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::NotUntil;
use tokio::time::Instant;

use super::{
    RateLimitError, RateLimitMode, RateLimited, RateLimiterConfig, RateLimiterConfigBuilder,
    TokioClock,
};

/// The `tracing` target of the rate limiters' events.
const TARGET: &str = "steadfast::rate_limit";

/// governor's answer when a call does not conform: when it would.
pub(super) type Refusal = NotUntil<Nanos>;

/// What both limiters keep beside governor's state: the clock, the
/// configuration, and how to refuse or wait.
pub(super) struct Core {
    pub(super) clock: TokioClock,
    pub(super) config: RateLimiterConfig,
}

impl Core {
    pub(super) fn new(config: RateLimiterConfig) -> Self {
        Core {
            clock: TokioClock::new(),
            config,
        }
    }

    /// A refusal without waiting (`check`, reject mode).
    #[cold]
    #[inline(never)]
    pub(super) fn reject_now(&self, refusal: &Refusal) -> RateLimited {
        let retry_after = refusal.wait_time_from(self.clock.now());
        tracing::debug!(
            target: TARGET,
            retry_after = ?retry_after,
            permits = self.config.permits(),
            period = ?self.config.period(),
            burst = self.config.burst(),
            "rate limiter refused a call"
        );
        RateLimited::now(retry_after)
    }

    /// A refusal in wait mode: the next permit is past `max_wait`.
    #[cold]
    #[inline(never)]
    fn reject_past_max_wait(&self, refusal: &Refusal, waited: Duration) -> RateLimited {
        let retry_after = refusal.wait_time_from(self.clock.now());
        let max_wait = self.config.max_wait();
        tracing::debug!(
            target: TARGET,
            retry_after = ?retry_after,
            waited = ?waited,
            max_wait = ?max_wait,
            permits = self.config.permits(),
            period = ?self.config.period(),
            burst = self.config.burst(),
            "rate limiter refused a call: no permit within max_wait"
        );
        RateLimited::past_max_wait(retry_after, waited, max_wait)
    }

    /// After a first refusal, what `acquire` does: refuse at once in reject
    /// mode; in wait mode, sleep until the permit governor named and take
    /// it, as long as that stays within `max_wait` of the start.
    ///
    /// Nothing is reserved while sleeping: governor has no reservations, so
    /// the caller checks again when it wakes, and if another caller took
    /// the permit it sleeps until the next one (or is refused if that is
    /// past `max_wait`). Dropping the future at its one await point, the
    /// sleep, leaves the limiter as it was.
    pub(super) async fn after_refusal(
        &self,
        mut refusal: Refusal,
        check: impl Fn() -> Result<(), Refusal>,
    ) -> Result<(), RateLimited> {
        if self.config.mode() == RateLimitMode::Reject {
            return Err(self.reject_now(&refusal));
        }
        let start = Instant::now();
        // `None` past what an instant holds (a `max_wait` of `Duration::MAX`):
        // no limit.
        let deadline = start.checked_add(self.config.max_wait());
        loop {
            let ready_at = self.clock.instant_of(refusal.earliest_possible());
            let within = match (ready_at, deadline) {
                (Some(ready_at), Some(deadline)) => ready_at <= deadline,
                (Some(_), None) => true,
                (None, _) => false,
            };
            let Some(ready_at) = ready_at.filter(|_| within) else {
                return Err(self.reject_past_max_wait(&refusal, start.elapsed()));
            };
            tokio::time::sleep_until(ready_at).await;
            match check() {
                Ok(()) => return Ok(()),
                Err(next) => refusal = next,
            }
        }
    }
}

/// governor's direct (not keyed) limiter on tokio's clock.
type Direct = governor::RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Nanos>>;

/// Lets at most `permits` calls through per `period`, with bursts of up to
/// `burst`; the others wait for a permit or are refused with the time until
/// one frees.
///
/// A rate limiter keeps a caller within a dependency's quota (an API that
/// allows 100 requests a second) or keeps a dependency from being flooded.
/// It is one limit shared by every caller; for a limit per user, tenant or
/// host, use [`KeyedRateLimiter`](super::KeyedRateLimiter).
///
/// - [`check`](Self::check) takes a permit if one is free and never waits;
/// - [`acquire`](Self::acquire) takes one, waiting for it in wait mode;
/// - [`call`](Self::call) runs an operation once it has a permit.
///
/// A permit is not given back: a call uses one whether it succeeds or
/// fails. A `RateLimiter` is cheap to clone; clones share the limit.
/// Configure it with [`RateLimiter::builder`] or a [`RateLimiterConfig`]
/// (the defaults are listed there).
///
/// # How it works
///
/// - The limit is the generic cell rate algorithm (GCRA) of the
///   [`governor`] crate: one atomic word holds the "theoretical arrival
///   time" of the next call, and a call is let through, with one
///   compare-and-swap that moves that time on by `period / permits`, when
///   it is at most `burst - 1` intervals ahead of now. There is no lock and
///   no background task; permits "come back" only in that arithmetic.
/// - Time is [`tokio::time`] through [`TokioClock`]: a rate limiter follows
///   paused and advanced time in tests.
/// - In wait mode, [`acquire`](Self::acquire) sleeps with
///   [`tokio::time::sleep_until`] until the instant governor says a permit
///   frees, then checks again; nothing is reserved while it sleeps, so
///   dropping it is harmless, and waiters are not served in order of
///   arrival (the first to check after the permit frees takes it). A call
///   whose permit would come after `max_wait` is refused at once instead of
///   waiting for nothing.
/// - Sleeps are on tokio's timer, which counts in milliseconds: a wait is
///   rounded up to the next millisecond.
///
/// Every refusal is a `tracing` event at debug level with target
/// `"steadfast::rate_limit"` and the fields `retry_after` and the limits
/// (and `waited`, `max_wait` in wait mode).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::pipeline::{RateLimitMode, RateLimiter};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), steadfast::ConfigError> {
/// // 10 calls a second, at most 2 at once after a quiet spell.
/// let limiter = RateLimiter::builder()
///     .rate(10, Duration::from_secs(1))
///     .burst(2)
///     .mode(RateLimitMode::Wait)
///     .max_wait(Duration::from_millis(500))
///     .build()?;
///
/// assert!(limiter.check().is_ok());
/// assert!(limiter.check().is_ok());
/// assert_eq!(limiter.check().unwrap_err().retry_after, Duration::from_millis(100));
///
/// // In wait mode, `call` waits for the next permit, 100 ms later.
/// let start = tokio::time::Instant::now();
/// let n = limiter.call(|| async { Ok::<_, std::io::Error>(7) }).await.unwrap();
/// assert_eq!((n, start.elapsed()), (7, Duration::from_millis(100)));
/// # Ok(())
/// # }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "rate-limit")))]
#[derive(Clone)]
pub struct RateLimiter {
    shared: Arc<Shared>,
}

/// What the clones of a rate limiter share.
struct Shared {
    limiter: Direct,
    core: Core,
    name: Option<Arc<str>>,
    /// The handles of a named rate limiter's metrics.
    #[cfg(feature = "metrics")]
    metrics: Option<crate::metrics::RateLimiterMetrics>,
}

impl Shared {
    /// Records whether a call got its permit, for a named limiter.
    #[inline]
    fn record(&self, result: Result<(), RateLimited>) -> Result<(), RateLimited> {
        #[cfg(feature = "metrics")]
        if let Some(metrics) = &self.metrics {
            metrics.record(result.is_ok());
        }
        result
    }
}

impl RateLimiter {
    /// A rate limiter with the given configuration, its full burst
    /// available; its clock starts now, by tokio's time.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::{RateLimiter, RateLimiterConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::ConfigError> {
    /// let config = RateLimiterConfig::builder().permits(3).build()?;
    /// let limiter = RateLimiter::new(config);
    /// assert_eq!(limiter.config().permits(), 3);
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(config: RateLimiterConfig) -> Self {
        RateLimiter::with_name(config, None)
    }

    /// A rate limiter named `name`: with the `metrics` feature, the calls
    /// it permits and refuses are recorded under the name (label `name`;
    /// see `steadfast::metrics`). A limiter without a name records no
    /// metrics.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::pipeline::{RateLimiter, RateLimiterConfig};
    ///
    /// let config = RateLimiterConfig::builder().permits(10).period(Duration::from_secs(1)).build()?;
    /// let limiter = RateLimiter::named("api", config);
    /// assert_eq!(limiter.name(), Some("api"));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn named(name: impl Into<Arc<str>>, config: RateLimiterConfig) -> Self {
        RateLimiter::with_name(config, Some(name.into()))
    }

    fn with_name(config: RateLimiterConfig, name: Option<Arc<str>>) -> Self {
        let core = Core::new(config);
        let limiter = governor::RateLimiter::direct_with_clock(core.config.quota(), core.clock);
        RateLimiter {
            shared: Arc::new(Shared {
                limiter,
                core,
                #[cfg(feature = "metrics")]
                metrics: name.as_deref().map(crate::metrics::RateLimiterMetrics::new),
                name,
            }),
        }
    }

    /// The name given with [`named`](Self::named), if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::{RateLimiter, RateLimiterConfig};
    /// assert_eq!(RateLimiter::new(RateLimiterConfig::default()).name(), None);
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.shared.name.as_deref()
    }

    /// A builder for a rate limiter, starting from the defaults listed on
    /// [`RateLimiterConfig`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::pipeline::RateLimiter;
    ///
    /// let limiter = RateLimiter::builder().rate(5, Duration::from_secs(1)).build()?;
    /// assert_eq!(limiter.config().replenish_interval(), Duration::from_millis(200));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn builder() -> RateLimiterConfigBuilder<RateLimiter> {
        RateLimiterConfigBuilder::default()
    }

    /// The configuration this rate limiter was built with.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = steadfast::pipeline::RateLimiter::default();
    /// assert_eq!(limiter.config().permits(), 100);
    /// # }
    /// ```
    pub fn config(&self) -> &RateLimiterConfig {
        &self.shared.core.config
    }

    /// Takes a permit if one is free; never waits, whatever the mode.
    ///
    /// With a free permit this is one read of tokio's clock and one
    /// compare-and-swap.
    ///
    /// # Errors
    ///
    /// [`RateLimited`] when no permit is free, with the time until the next
    /// one frees in `retry_after`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::pipeline::RateLimiter;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::ConfigError> {
    /// let limiter = RateLimiter::builder().rate(1, Duration::from_secs(1)).build()?;
    /// assert!(limiter.check().is_ok());
    /// assert_eq!(limiter.check().unwrap_err().retry_after, Duration::from_secs(1));
    /// tokio::time::advance(Duration::from_secs(1)).await;
    /// assert!(limiter.check().is_ok());
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn check(&self) -> Result<(), RateLimited> {
        let shared = &*self.shared;
        shared.record(match shared.limiter.check() {
            Ok(()) => Ok(()),
            Err(refusal) => Err(shared.core.reject_now(&refusal)),
        })
    }

    /// Takes a permit: at once if one is free; otherwise, in reject mode,
    /// refuses at once, and in wait mode waits for the next permit if it
    /// frees within `max_wait`.
    ///
    /// # Cancellation
    ///
    /// Nothing is reserved while the future waits: dropping it takes no
    /// permit and leaves the limiter as it was.
    ///
    /// # Errors
    ///
    /// [`RateLimited`] when no permit is free (reject mode), or none frees
    /// within `max_wait` (wait mode; the refusal comes as soon as that is
    /// known, without waiting for nothing).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::pipeline::{RateLimitMode, RateLimiter};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::ConfigError> {
    /// let limiter = RateLimiter::builder()
    ///     .rate(2, Duration::from_secs(1))
    ///     .burst(1)
    ///     .mode(RateLimitMode::Wait)
    ///     .max_wait(Duration::from_millis(600))
    ///     .build()?;
    /// limiter.acquire().await.unwrap();
    ///
    /// let start = tokio::time::Instant::now();
    /// limiter.acquire().await.unwrap();
    /// assert_eq!(start.elapsed(), Duration::from_millis(500));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn acquire(&self) -> Result<(), RateLimited> {
        let shared = &*self.shared;
        shared.record(match shared.limiter.check() {
            Ok(()) => Ok(()),
            Err(refusal) => {
                shared
                    .core
                    .after_refusal(refusal, || shared.limiter.check())
                    .await
            }
        })
    }

    /// Runs `f` once it has a permit, taken as [`acquire`](Self::acquire)
    /// does (waiting in wait mode).
    ///
    /// A refused call never invokes `f`. The permit is used whether the
    /// operation succeeds or fails.
    ///
    /// # Cancellation
    ///
    /// Dropping the returned future while it waits takes no permit;
    /// dropping it while the operation runs drops the operation (the permit
    /// stays used).
    ///
    /// # Errors
    ///
    /// [`RateLimitError::Rejected`] with the [`RateLimited`] when refused,
    /// [`RateLimitError::Inner`] with the operation's own error.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::RateLimiter;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = RateLimiter::default();
    /// let body = limiter.call(|| async { Ok::<_, std::io::Error>("hello") }).await.unwrap();
    /// assert_eq!(body, "hello");
    /// # }
    /// ```
    pub async fn call<F, Fut, T, E>(&self, f: F) -> Result<T, RateLimitError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.acquire().await?;
        f().await.map_err(RateLimitError::Inner)
    }
}

impl Default for RateLimiter {
    /// A rate limiter with the defaults listed on [`RateLimiterConfig`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = steadfast::pipeline::RateLimiter::default();
    /// assert_eq!(limiter.config().burst(), 100);
    /// # }
    /// ```
    fn default() -> Self {
        RateLimiter::new(RateLimiterConfig::default())
    }
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("config", &self.shared.core.config)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(mode: RateLimitMode) -> RateLimiter {
        RateLimiter::builder()
            .rate(10, Duration::from_secs(1))
            .burst(1)
            .mode(mode)
            .max_wait(Duration::from_millis(250))
            .build()
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn reject_mode_refuses_at_once() {
        let l = limiter(RateLimitMode::Reject);
        l.acquire().await.unwrap();
        let start = Instant::now();
        let err = l.acquire().await.unwrap_err();
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(err, RateLimited::now(Duration::from_millis(100)));
    }

    /// Polls a future once with a waker that does nothing.
    fn poll_once<F: Future + Unpin>(fut: &mut F) -> std::task::Poll<F::Output> {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        std::pin::Pin::new(fut).poll(&mut cx)
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_that_loses_its_permit_waits_for_the_next_within_max_wait() {
        let l = limiter(RateLimitMode::Wait);
        l.check().unwrap();
        let mut waiter = Box::pin(l.acquire());
        // It sleeps until the permit at 100 ms.
        assert!(poll_once(&mut waiter).is_pending());

        // Another caller takes that permit before the waiter runs: the
        // waiter sleeps again, until the permit at 200 ms (within its
        // max_wait of 250 ms).
        tokio::time::advance(Duration::from_millis(100)).await;
        l.check().unwrap();
        assert!(poll_once(&mut waiter).is_pending());

        // And again: the next permit, at 300 ms, is past max_wait, so the
        // waiter is refused at once, at 200 ms.
        tokio::time::advance(Duration::from_millis(100)).await;
        l.check().unwrap();
        let std::task::Poll::Ready(result) = poll_once(&mut waiter) else {
            panic!("the waiter waits past its max_wait");
        };
        assert_eq!(
            result.unwrap_err(),
            RateLimited::past_max_wait(
                Duration::from_millis(100),
                Duration::from_millis(200),
                Duration::from_millis(250)
            )
        );
    }

    #[test]
    fn debug_shows_the_config() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let l = RateLimiter::default();
        assert!(format!("{l:?}").contains("permits: 100"));
    }
}
