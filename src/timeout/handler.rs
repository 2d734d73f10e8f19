//! [`TimeoutHandler`]: bounds a future, a barrier or a wait for a peer rank.
//!
//! [`TimeoutHandler::run`] bounds a future the way [`tokio::time::timeout`]
//! does, with one difference in cost: the returned [`Timed`] future reads
//! the clock once to fix its deadline, but creates its timer only when the
//! caller's future first returns `Pending`. A future that is ready at once
//! never touches the timer driver; one that waits pays what
//! `tokio::time::timeout` pays. Either way the timer lives inline, so
//! bounding a call allocates nothing and spawns nothing. The coordinator operations pass the timeout down to the
//! [`Coordinator`], whose own timeout names the ranks that did not arrive;
//! the handler keeps a backstop timer a grace period later in case a
//! coordinator does not honour its timeout.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use serde::{Deserialize, Serialize};
use tokio::task::coop;
use tokio::time::{Instant, Sleep};

use super::TimeoutError;
use crate::coordinator::{bound_call, Coordinator, CoordinatorError, Signal};
use crate::ConfigError;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
const DEFAULT_COORDINATOR_GRACE: Duration = Duration::from_secs(1);

/// Settings of a [`TimeoutHandler`].
///
/// Built with [`TimeoutConfig::builder`], which validates the values; read
/// from a file with serde, which validates them the same way. Durations are
/// written in a readable form (`"10m"`, `"1.5s"`, `"250ms"`) or as a number
/// of seconds.
///
/// # Default
///
/// - `default_timeout`: 10 minutes. Used by [`TimeoutHandler::run_default`]
///   and by the coordinator operations when no timeout is given. Must not be
///   zero.
/// - `coordinator_grace`: 1 second. How much longer than the timeout the
///   handler waits for a coordinator that does not return on its own before
///   it abandons the call with [`TimeoutError::Elapsed`]. May be zero, but
///   then the handler's backstop races the coordinator's own timeout, and the
///   report of which ranks did not arrive may be lost.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::timeout::TimeoutConfig;
///
/// let config = TimeoutConfig::builder()
///     .default_timeout(Duration::from_secs(30))
///     .build()?;
/// assert_eq!(config.default_timeout(), Duration::from_secs(30));
///
/// let from_file: TimeoutConfig = serde_json::from_str(r#"{ "default_timeout": "2m" }"#).unwrap();
/// assert_eq!(from_file.default_timeout(), Duration::from_secs(120));
/// assert_eq!(from_file.coordinator_grace(), Duration::from_secs(1));
///
/// assert!(serde_json::from_str::<TimeoutConfig>(r#"{ "default_timeout": "0s" }"#).is_err());
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "TimeoutConfigRepr", into = "TimeoutConfigRepr")]
pub struct TimeoutConfig {
    default_timeout: Duration,
    coordinator_grace: Duration,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        TimeoutConfig {
            default_timeout: DEFAULT_TIMEOUT,
            coordinator_grace: DEFAULT_COORDINATOR_GRACE,
        }
    }
}

impl TimeoutConfig {
    /// A builder starting from the defaults (see [`TimeoutConfig`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::timeout::TimeoutConfig;
    ///
    /// let config = TimeoutConfig::builder().build()?;
    /// assert_eq!(config, TimeoutConfig::default());
    /// assert_eq!(config.default_timeout(), Duration::from_secs(600));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn builder() -> TimeoutConfigBuilder {
        TimeoutConfigBuilder {
            config: TimeoutConfig::default(),
        }
    }

    /// The timeout used when none is given.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::timeout::TimeoutConfig;
    /// assert_eq!(TimeoutConfig::default().default_timeout(), Duration::from_secs(600));
    /// ```
    pub fn default_timeout(&self) -> Duration {
        self.default_timeout
    }

    /// How long past its timeout a coordinator operation may run before the
    /// handler abandons it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::timeout::TimeoutConfig;
    /// assert_eq!(TimeoutConfig::default().coordinator_grace(), Duration::from_secs(1));
    /// ```
    pub fn coordinator_grace(&self) -> Duration {
        self.coordinator_grace
    }

    /// The one check of the values, run by [`TimeoutConfigBuilder::build`]
    /// and by deserialization.
    fn validate(&self) -> Result<(), ConfigError> {
        if self.default_timeout.is_zero() {
            return Err(ConfigError::new(
                "default_timeout",
                "must be greater than zero",
            ));
        }
        Ok(())
    }
}

/// The form a [`TimeoutConfig`] takes in a file: every field optional
/// (missing ones take their defaults), no unknown fields; validated on the
/// way in by [`TimeoutConfig::validate`].
#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct TimeoutConfigRepr {
    #[serde(with = "crate::serde_duration")]
    default_timeout: Duration,
    #[serde(with = "crate::serde_duration")]
    coordinator_grace: Duration,
}

impl Default for TimeoutConfigRepr {
    fn default() -> Self {
        TimeoutConfig::default().into()
    }
}

impl From<TimeoutConfig> for TimeoutConfigRepr {
    fn from(config: TimeoutConfig) -> Self {
        TimeoutConfigRepr {
            default_timeout: config.default_timeout,
            coordinator_grace: config.coordinator_grace,
        }
    }
}

impl TryFrom<TimeoutConfigRepr> for TimeoutConfig {
    type Error = ConfigError;

    fn try_from(repr: TimeoutConfigRepr) -> Result<Self, ConfigError> {
        let config = TimeoutConfig {
            default_timeout: repr.default_timeout,
            coordinator_grace: repr.coordinator_grace,
        };
        config.validate()?;
        Ok(config)
    }
}

/// Builds a validated [`TimeoutConfig`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::timeout::TimeoutConfig;
///
/// let err = TimeoutConfig::builder()
///     .default_timeout(Duration::ZERO)
///     .build()
///     .unwrap_err();
/// assert_eq!(err.field(), "default_timeout");
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build()` is called"]
pub struct TimeoutConfigBuilder {
    config: TimeoutConfig,
}

impl TimeoutConfigBuilder {
    /// Sets the timeout used when none is given (default 10 minutes; must not
    /// be zero).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::timeout::TimeoutConfig;
    ///
    /// let config = TimeoutConfig::builder()
    ///     .default_timeout(Duration::from_secs(5))
    ///     .build()?;
    /// assert_eq!(config.default_timeout(), Duration::from_secs(5));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn default_timeout(mut self, timeout: Duration) -> Self {
        self.config.default_timeout = timeout;
        self
    }

    /// Sets how long past its timeout a coordinator operation may run before
    /// the handler abandons it (default 1 second).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::timeout::TimeoutConfig;
    ///
    /// let config = TimeoutConfig::builder()
    ///     .coordinator_grace(Duration::from_millis(200))
    ///     .build()?;
    /// assert_eq!(config.coordinator_grace(), Duration::from_millis(200));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn coordinator_grace(mut self, grace: Duration) -> Self {
        self.config.coordinator_grace = grace;
        self
    }

    /// Checks the values and returns the config.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming `default_timeout` when it is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::timeout::TimeoutConfig;
    /// assert!(TimeoutConfig::builder().build().is_ok());
    /// ```
    pub fn build(self) -> Result<TimeoutConfig, ConfigError> {
        self.config.validate()?;
        Ok(self.config)
    }
}

/// Bounds futures and coordinator operations in time.
///
/// A handler is a small `Copy` value holding its [`TimeoutConfig`]; share it
/// by copying it into each task.
///
/// # Cancellation
///
/// Every method returns a future that does nothing until awaited. Dropping
/// that future (because a `select!` chose another branch, or its task was
/// aborted) drops the wrapped future or coordinator call with it, which
/// cancels it at its current `.await` point. For coordinator operations,
/// what a cancelled collective leaves behind is the coordinator's business:
/// the [`InMemoryCoordinator`](crate::coordinator::InMemoryCoordinator)
/// counts a rank whose barrier was dropped after it arrived as arrived.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::timeout::{TimeoutError, TimeoutHandler};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let timeouts = TimeoutHandler::default();
///
/// let fast = timeouts.run(Duration::from_secs(1), async { 42 }).await;
/// assert_eq!(fast.unwrap(), 42);
///
/// let slow = timeouts
///     .run(Duration::from_secs(1), tokio::time::sleep(Duration::from_secs(5)))
///     .await;
/// assert!(matches!(slow, Err(TimeoutError::Elapsed { after, .. }) if after == Duration::from_secs(1)));
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct TimeoutHandler {
    config: TimeoutConfig,
}

impl TimeoutHandler {
    /// A handler with the given settings.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::timeout::{TimeoutConfig, TimeoutHandler};
    ///
    /// let config = TimeoutConfig::builder()
    ///     .default_timeout(Duration::from_secs(30))
    ///     .build()?;
    /// let timeouts = TimeoutHandler::new(config);
    /// assert_eq!(timeouts.default_timeout(), Duration::from_secs(30));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn new(config: TimeoutConfig) -> Self {
        TimeoutHandler { config }
    }

    /// The handler's settings.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::timeout::{TimeoutConfig, TimeoutHandler};
    /// assert_eq!(TimeoutHandler::default().config(), &TimeoutConfig::default());
    /// ```
    pub fn config(&self) -> &TimeoutConfig {
        &self.config
    }

    /// The timeout used when none is given.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::timeout::TimeoutHandler;
    /// assert_eq!(TimeoutHandler::default().default_timeout(), Duration::from_secs(600));
    /// ```
    pub fn default_timeout(&self) -> Duration {
        self.config.default_timeout
    }

    /// Runs `future` until it completes or `duration` has passed, whichever
    /// comes first.
    ///
    /// The deadline is fixed now, as `tokio::time::timeout` fixes it; the
    /// returned [`Timed`] future holds the caller's future and a timer
    /// inline, allocates nothing and spawns nothing, and creates the timer
    /// only if the future does not complete on its first poll, so a future
    /// that is ready at once costs less than under `tokio::time::timeout`.
    /// It does not borrow the handler, so it can be spawned. As with
    /// `tokio::time::timeout`, the future is polled before the deadline is
    /// checked: a future that is ready at once completes even with a zero
    /// duration. A duration so long that the deadline overflows the clock
    /// never fires.
    ///
    /// When the deadline passes the result is
    /// [`TimeoutError::Elapsed`] with `after == duration` and no operation
    /// name, and a `warn` event is emitted with target
    /// `"steadfast::timeout"`.
    ///
    /// # Cancellation
    ///
    /// Dropping the returned future drops (and so cancels) `future`;
    /// `.await` drops it as soon as the result, or the timeout, is in.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::timeout::TimeoutHandler;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let timeouts = TimeoutHandler::default();
    /// let answer = timeouts
    ///     .run(Duration::from_secs(2), async {
    ///         tokio::time::sleep(Duration::from_secs(1)).await;
    ///         "done"
    ///     })
    ///     .await;
    /// assert_eq!(answer.unwrap(), "done");
    /// # }
    /// ```
    pub fn run<F: IntoFuture>(&self, duration: Duration, future: F) -> Timed<F::IntoFuture> {
        Timed {
            future: future.into_future(),
            deadline: Instant::now().checked_add(duration),
            after: duration,
            timer: None,
        }
    }

    /// Runs `future` bounded by the
    /// [default timeout](TimeoutConfig::default_timeout) (10 minutes unless
    /// configured otherwise). See [`run`](TimeoutHandler::run).
    ///
    /// # Cancellation
    ///
    /// Dropping the returned future drops (and so cancels) `future`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::timeout::TimeoutHandler;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let err = TimeoutHandler::default()
    ///     .run_default(std::future::pending::<()>())
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.to_string(), "operation timed out after 600s");
    /// # }
    /// ```
    pub fn run_default<F: IntoFuture>(&self, future: F) -> Timed<F::IntoFuture> {
        self.run(self.config.default_timeout, future)
    }

    /// Waits until every rank has reached the barrier, for at most `timeout`
    /// (`None`: the default timeout).
    ///
    /// The timeout is handed to [`Coordinator::barrier`], so that a timeout
    /// names the ranks that did not arrive. Errors of the coordinator come
    /// back as [`TimeoutError::Coordinator`] with the coordinator's error as
    /// the source; [`TimeoutError::missing_ranks`] lists the ranks. If the
    /// coordinator has not returned a
    /// [grace period](TimeoutConfig::coordinator_grace) after the timeout,
    /// the call is abandoned with [`TimeoutError::Elapsed`] whose `after` is
    /// the timeout plus the grace period.
    ///
    /// The call is bounded with [`bound_call`], as the
    /// [`FaultTolerant`](crate::coordinator::FaultTolerant) wrapper bounds
    /// each of its attempts: pick this method for a call with a default
    /// timeout and no retries, the wrapper when transient failures should be
    /// retried (and do not stack the two).
    ///
    /// # Cancellation
    ///
    /// Dropping the returned future drops the coordinator's barrier call.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::coordinator::InMemoryCoordinator;
    /// use steadfast::timeout::TimeoutHandler;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let ranks = InMemoryCoordinator::new(2);
    /// ranks[0].faults().set_absent(1, true);
    /// let timeouts = TimeoutHandler::default();
    /// let err = timeouts
    ///     .barrier(&ranks[0], Some(Duration::from_secs(5)))
    ///     .await
    ///     .unwrap_err();
    /// assert!(err.is_elapsed());
    /// assert_eq!(err.missing_ranks(), &[1]);
    /// # }
    /// ```
    pub async fn barrier(
        &self,
        coordinator: &dyn Coordinator,
        timeout: Option<Duration>,
    ) -> Result<(), TimeoutError> {
        let timeout = timeout.unwrap_or(self.config.default_timeout);
        self.bounded(
            coordinator,
            "barrier",
            timeout,
            coordinator.barrier(timeout),
        )
        .await
    }

    /// Sends `data` to every rank and returns what every rank sent, in rank
    /// order, waiting at most `timeout` (`None`: the default timeout).
    ///
    /// Errors are reported as for [`barrier`](TimeoutHandler::barrier).
    ///
    /// # Cancellation
    ///
    /// Dropping the returned future drops the coordinator's gather call.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::coordinator::InMemoryCoordinator;
    /// use steadfast::timeout::TimeoutHandler;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let ranks = InMemoryCoordinator::new(1);
    /// let all = TimeoutHandler::default()
    ///     .all_gather(&ranks[0], b"digest".to_vec(), None)
    ///     .await
    ///     .unwrap();
    /// assert_eq!(all, vec![b"digest".to_vec()]);
    /// # }
    /// ```
    pub async fn all_gather(
        &self,
        coordinator: &dyn Coordinator,
        data: Vec<u8>,
        timeout: Option<Duration>,
    ) -> Result<Vec<Vec<u8>>, TimeoutError> {
        let timeout = timeout.unwrap_or(self.config.default_timeout);
        self.bounded(
            coordinator,
            "all_gather",
            timeout,
            coordinator.all_gather(data, timeout),
        )
        .await
    }

    /// Waits until `rank` has raised its signal `key`, for at most `timeout`
    /// (`None`: the default timeout), and returns that signal.
    ///
    /// It waits through [`Coordinator::wait_for_rank`] for a signal with a
    /// sequence number of at least 1, so it returns as soon as the rank has
    /// signalled (at once if it already had). A timeout comes back as
    /// [`TimeoutError::Coordinator`] naming the rank in
    /// [`missing_ranks`](TimeoutError::missing_ranks); other errors are
    /// reported as for [`barrier`](TimeoutHandler::barrier).
    ///
    /// # Cancellation
    ///
    /// Dropping the returned future stops waiting; the signal is not
    /// consumed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::coordinator::{Coordinator, InMemoryCoordinator};
    /// use steadfast::timeout::TimeoutHandler;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let ranks = InMemoryCoordinator::new(2);
    /// let writer = ranks[1].clone();
    /// tokio::spawn(async move {
    ///     tokio::time::sleep(Duration::from_secs(2)).await;
    ///     writer.signal("shard-written", b"ok".to_vec()).await.unwrap();
    /// });
    /// let signal = TimeoutHandler::default()
    ///     .wait_for_rank(&ranks[0], 1, "shard-written", Some(Duration::from_secs(10)))
    ///     .await
    ///     .unwrap();
    /// assert_eq!(signal.payload, b"ok");
    /// # }
    /// ```
    pub async fn wait_for_rank(
        &self,
        coordinator: &dyn Coordinator,
        rank: usize,
        key: &str,
        timeout: Option<Duration>,
    ) -> Result<Signal, TimeoutError> {
        let timeout = timeout.unwrap_or(self.config.default_timeout);
        self.bounded(
            coordinator,
            "wait_for_rank",
            timeout,
            coordinator.wait_for_rank(rank, key, 1, timeout),
        )
        .await
    }

    /// Awaits a coordinator call that was given `timeout`, with a backstop a
    /// grace period later, and reports its errors.
    async fn bounded<T>(
        &self,
        coordinator: &dyn Coordinator,
        operation: &'static str,
        timeout: Duration,
        call: impl Future<Output = Result<T, CoordinatorError>>,
    ) -> Result<T, TimeoutError> {
        match bound_call(operation, timeout, self.config.coordinator_grace, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(source)) => {
                let err = TimeoutError::Coordinator { operation, source };
                if err.is_elapsed() {
                    tracing::warn!(
                        target: "steadfast::timeout",
                        coordinator = coordinator.name(),
                        rank = coordinator.rank(),
                        operation,
                        ?timeout,
                        missing = ?err.missing_ranks(),
                        "coordinator operation timed out"
                    );
                } else {
                    tracing::debug!(
                        target: "steadfast::timeout",
                        coordinator = coordinator.name(),
                        rank = coordinator.rank(),
                        operation,
                        error = %err,
                        "coordinator operation failed"
                    );
                }
                Err(err)
            }
            Err(abandoned) => {
                tracing::warn!(
                    target: "steadfast::timeout",
                    coordinator = coordinator.name(),
                    rank = coordinator.rank(),
                    operation,
                    ?timeout,
                    waited = ?abandoned.after,
                    "coordinator did not return after its timeout; abandoned"
                );
                Err(TimeoutError::Elapsed {
                    operation: Some(operation.to_string()),
                    after: abandoned.after,
                })
            }
        }
    }
}

pin_project! {
    /// The future returned by [`TimeoutHandler::run`] and
    /// [`TimeoutHandler::run_default`]: the caller's future with a deadline.
    ///
    /// It resolves to the future's output, or to
    /// [`TimeoutError::Elapsed`] when the deadline passes first.
    ///
    /// # Cancellation
    ///
    /// Dropping it drops the wrapped future.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::timeout::{Timed, TimeoutHandler};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let timeouts = TimeoutHandler::default();
    /// let timed: Timed<_> = timeouts.run(Duration::from_secs(1), async { 7 });
    /// // It borrows nothing from the handler, so it can be spawned.
    /// let task = tokio::spawn(timed);
    /// assert_eq!(task.await.unwrap().unwrap(), 7);
    /// # }
    /// ```
    #[derive(Debug)]
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct Timed<F> {
        // The caller's future, polled first on every poll.
        #[pin]
        future: F,
        // Fixed when the `Timed` is made; `None` when it would overflow the
        // clock, and then the future is never timed out.
        deadline: Option<Instant>,
        // The duration asked for, reported in `TimeoutError::Elapsed`.
        after: Duration,
        // Created at the first poll at which `future` is not ready, and
        // reused for every later one.
        #[pin]
        timer: Option<Sleep>,
    }
}

impl<F: Future> Future for Timed<F> {
    type Output = Result<F::Output, TimeoutError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let had_budget = coop::has_budget_remaining();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        let Some(deadline) = *this.deadline else {
            return Poll::Pending;
        };
        ready!(poll_timer(this.timer.as_mut(), deadline, had_budget, cx));
        Poll::Ready(Err(elapsed(*this.after)))
    }
}

/// Polls the timer of a [`Timed`] whose future is not ready, creating it on
/// the first call.
///
/// As `tokio::time::timeout` does, when the future used up the task's
/// cooperative budget in this very poll, the timer is polled outside the
/// budget: otherwise a future that always exhausts the budget would never
/// see its deadline pass.
#[inline(never)]
pub(crate) fn poll_timer(
    mut timer: Pin<&mut Option<Sleep>>,
    deadline: Instant,
    had_budget: bool,
    cx: &mut Context<'_>,
) -> Poll<()> {
    if timer.is_none() {
        timer.set(Some(tokio::time::sleep_until(deadline)));
    }
    let Some(timer) = timer.as_pin_mut() else {
        return Poll::Pending;
    };
    if had_budget && !coop::has_budget_remaining() {
        Pin::new(&mut tokio::task::unconstrained(timer)).poll(cx)
    } else {
        timer.poll(cx)
    }
}

/// The error of a [`Timed`] whose deadline passed, and the event that says
/// so.
#[cold]
fn elapsed(after: Duration) -> TimeoutError {
    report_elapsed(after);
    TimeoutError::Elapsed {
        operation: None,
        after,
    }
}

/// The event of a deadline that passed after `after`: one `WARN` for every
/// bounded future of the crate (a [`Timed`], a pipeline's timeout).
#[cold]
pub(crate) fn report_elapsed(after: Duration) {
    tracing::warn!(
        target: "steadfast::timeout",
        after = ?after,
        "operation timed out"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn the_config_serializes_as_it_always_did_and_refuses_unknown_fields() {
        let config = TimeoutConfig::builder()
            .default_timeout(secs(90))
            .coordinator_grace(Duration::from_millis(250))
            .build()
            .unwrap();
        let json = serde_json::to_value(config).unwrap();
        assert_eq!(
            json,
            serde_json::json!({ "default_timeout": "1m30s", "coordinator_grace": "250ms" })
        );
        assert_eq!(
            serde_json::from_value::<TimeoutConfig>(json).unwrap(),
            config
        );
        let unknown = serde_json::from_str::<TimeoutConfig>(r#"{ "default_timout": "1s" }"#);
        assert!(unknown.unwrap_err().to_string().contains("unknown field"));
        let zero = serde_json::from_str::<TimeoutConfig>(r#"{ "default_timeout": "0s" }"#);
        assert!(zero.unwrap_err().to_string().contains("default_timeout"));
    }

    /// A future that, on every poll, spends the task's whole cooperative
    /// budget and then waits; it gives up after thousands of polls, so that
    /// a deadline that never fires fails the test instead of hanging it.
    async fn budget_hog() {
        for _ in 0..1_000_000 {
            tokio::task::consume_budget().await;
        }
        panic!("the deadline never fired");
    }

    #[tokio::test(start_paused = true)]
    async fn a_future_that_exhausts_the_budget_still_times_out() {
        let err = TimeoutHandler::default()
            .run(Duration::ZERO, budget_hog())
            .await
            .unwrap_err();
        assert!(matches!(err, TimeoutError::Elapsed { after, .. } if after == Duration::ZERO));
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_is_fixed_when_the_future_is_made() {
        let timed = TimeoutHandler::default().run(secs(5), std::future::pending::<()>());
        tokio::time::advance(secs(3)).await;
        let polled = Instant::now();
        assert!(timed.await.is_err());
        assert_eq!(polled.elapsed(), secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn the_timer_is_made_only_when_the_future_waits() {
        let mut ready = std::pin::pin!(TimeoutHandler::default().run(secs(1), async { 7 }));
        assert_eq!(ready.as_mut().await.unwrap(), 7);
        assert!(ready.timer.is_none());

        let mut waiting = std::pin::pin!(TimeoutHandler::default().run(secs(1), async {
            tokio::task::yield_now().await;
            8
        }));
        assert_eq!(waiting.as_mut().await.unwrap(), 8);
        assert!(waiting.timer.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_past_the_clock_never_fires() {
        let timeouts = TimeoutHandler::default();
        assert_eq!(timeouts.run(Duration::MAX, async { 3 }).await.unwrap(), 3);
        let never = timeouts.run(Duration::MAX, std::future::pending::<()>());
        tokio::select! {
            _ = never => panic!("an overflowing deadline fired"),
            () = tokio::time::sleep(secs(100 * 365 * 86_400)) => {}
        }
    }
}
