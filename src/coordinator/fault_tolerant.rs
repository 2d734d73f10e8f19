//! [`FaultTolerant`]: a [`Coordinator`] wrapper that bounds every operation
//! with a timeout and retries what is safe to retry, as an
//! [`ErrorRecoveryManager`] decides.
//!
//! What is retried and why is documented on [`FaultTolerant`].

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{Coordinator, CoordinatorError, Result, Signal};
use crate::recovery::{
    ErrorRecoveryManager, RecoveryAction, RecoveryStrategy, RetryDelay, Severity,
};
use crate::retry::{RetryPolicy, Transient};
use crate::ConfigError;

/// The error kinds [`FaultTolerant`] records, one per operation.
const KINDS: [&str; 4] = [
    "coordinator.barrier",
    "coordinator.all_gather",
    "coordinator.signal",
    "coordinator.wait_for_rank",
];

/// Configuration of a [`FaultTolerant`] coordinator.
///
/// # Default
///
/// - `op_timeout`: 10 s (bound of `signal`)
/// - `grace`: 1 s (how long past the caller's timeout a collective or
///   `wait_for_rank` attempt may run before the wrapper gives up on it)
/// - `retry`: [`RetryPolicy::default`] (3 retries, backoff 1 s, 2 s, 4 s, ...;
///   its `max_elapsed`, if set, bounds the time spent on one call)
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::coordinator::FaultTolerantConfig;
/// use steadfast::retry::RetryPolicy;
///
/// let config = FaultTolerantConfig::builder()
///     .op_timeout(Duration::from_secs(2))
///     .retry(RetryPolicy::builder().max_retries(5).build()?)
///     .build()?;
/// assert_eq!(config.retry().max_retries(), 5);
/// let json = serde_json::to_string(&config).unwrap();
/// assert_eq!(serde_json::from_str::<FaultTolerantConfig>(&json).unwrap(), config);
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "FaultTolerantRepr", into = "FaultTolerantRepr")]
pub struct FaultTolerantConfig {
    op_timeout: Duration,
    grace: Duration,
    retry: RetryPolicy,
}

impl Default for FaultTolerantConfig {
    fn default() -> Self {
        FaultTolerantConfig {
            op_timeout: Duration::from_secs(10),
            grace: Duration::from_secs(1),
            retry: RetryPolicy::default(),
        }
    }
}

impl FaultTolerantConfig {
    /// A builder starting from the defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = steadfast::coordinator::FaultTolerantConfig::builder().build()?;
    /// assert_eq!(config.op_timeout(), std::time::Duration::from_secs(10));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn builder() -> FaultTolerantConfigBuilder {
        FaultTolerantConfigBuilder {
            config: FaultTolerantConfig::default(),
        }
    }

    /// The bound of operations without a timeout of their own (`signal`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = steadfast::coordinator::FaultTolerantConfig::default();
    /// assert_eq!(config.op_timeout(), Duration::from_secs(10));
    /// ```
    pub fn op_timeout(&self) -> Duration {
        self.op_timeout
    }

    /// How long past the caller's timeout an attempt may run.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = steadfast::coordinator::FaultTolerantConfig::default();
    /// assert_eq!(config.grace(), Duration::from_secs(1));
    /// ```
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// The retry policy: how many retries, and the delays between them.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = steadfast::coordinator::FaultTolerantConfig::default();
    /// assert_eq!(config.retry().max_retries(), 3);
    /// ```
    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    fn validate(&self) -> std::result::Result<(), ConfigError> {
        if self.op_timeout.is_zero() {
            return Err(ConfigError::new("op_timeout", "must be greater than zero"));
        }
        Ok(())
    }
}

/// Builds a validated [`FaultTolerantConfig`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let err = steadfast::coordinator::FaultTolerantConfig::builder()
///     .op_timeout(Duration::ZERO)
///     .build()
///     .unwrap_err();
/// assert_eq!(err.field(), "op_timeout");
/// ```
#[derive(Debug, Clone)]
pub struct FaultTolerantConfigBuilder {
    config: FaultTolerantConfig,
}

impl FaultTolerantConfigBuilder {
    /// Sets the bound of `signal` (greater than zero).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = steadfast::coordinator::FaultTolerantConfig::builder().op_timeout(Duration::from_secs(1));
    /// assert!(b.build().is_ok());
    /// ```
    pub fn op_timeout(mut self, timeout: Duration) -> Self {
        self.config.op_timeout = timeout;
        self
    }

    /// Sets the grace past the caller's timeout (may be zero).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = steadfast::coordinator::FaultTolerantConfig::builder().grace(Duration::ZERO);
    /// assert!(b.build().is_ok());
    /// ```
    pub fn grace(mut self, grace: Duration) -> Self {
        self.config.grace = grace;
        self
    }

    /// Sets the retry policy.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::retry::RetryPolicy;
    /// let b = steadfast::coordinator::FaultTolerantConfig::builder().retry(RetryPolicy::no_retry());
    /// assert_eq!(b.build()?.retry().max_retries(), 0);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.config.retry = policy;
        self
    }

    /// Validates and returns the config.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::coordinator::FaultTolerantConfig::builder().build().is_ok());
    /// ```
    pub fn build(self) -> std::result::Result<FaultTolerantConfig, ConfigError> {
        self.config.validate()?;
        Ok(self.config)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FaultTolerantRepr {
    #[serde(with = "crate::serde_duration")]
    op_timeout: Duration,
    #[serde(with = "crate::serde_duration")]
    grace: Duration,
    retry: RetryPolicy,
}

impl Default for FaultTolerantRepr {
    fn default() -> Self {
        FaultTolerantConfig::default().into()
    }
}

impl From<FaultTolerantConfig> for FaultTolerantRepr {
    fn from(c: FaultTolerantConfig) -> Self {
        FaultTolerantRepr {
            op_timeout: c.op_timeout,
            grace: c.grace,
            retry: c.retry,
        }
    }
}

impl TryFrom<FaultTolerantRepr> for FaultTolerantConfig {
    type Error = ConfigError;

    fn try_from(r: FaultTolerantRepr) -> std::result::Result<Self, ConfigError> {
        let config = FaultTolerantConfig {
            op_timeout: r.op_timeout,
            grace: r.grace,
            retry: r.retry,
        };
        config.validate()?;
        Ok(config)
    }
}

/// The severity under which an error is recorded; only Medium errors
/// (Unavailable) are retried by the strategies this wrapper installs.
fn severity_of(error: &CoordinatorError) -> Severity {
    match error {
        CoordinatorError::Unavailable { .. } => Severity::Medium,
        e if e.is_transient() => Severity::High,
        _ => Severity::Critical,
    }
}

/// A [`Coordinator`] that bounds every operation with a timeout and retries
/// transient failures that are safe to retry.
///
/// Each error is recorded with kind `coordinator.<operation>` and a severity
/// that says whether a retry is safe:
///
/// | error | severity | retried |
/// |---|---|---|
/// | `Unavailable` | Medium | yes, up to the policy's `max_retries` |
/// | `Timeout`, `Broken` (transient) | High | no |
/// | `InvalidRank`, `InvalidArgument`, `Backend` (fatal) | Critical | no |
///
/// A timeout or a broken round is transient, yet not retried: once a
/// collective (`barrier`, `all_gather`) has reached the other ranks, its
/// round has advanced for them, and running it again would start the next
/// round alone and pair this rank with the wrong round of the others; for
/// `wait_for_rank` the caller's time budget is spent; a `signal` may already
/// have been raised. `Unavailable` means the operation did not reach the
/// coordination service (an implementation must only report it then), so a
/// retry is safe.
///
/// Timeouts: `signal` runs under `op_timeout`; `barrier`, `all_gather` and
/// `wait_for_rank` pass the caller's timeout to the inner coordinator, which
/// reports a timeout itself (naming the missing ranks) and marks the round
/// broken for every rank; the wrapper bounds each attempt at that timeout
/// plus `grace`, only to catch an inner coordinator that hangs. `rank`,
/// `world_size` and `name` are answered at once.
///
/// Every error is recorded in its [`ErrorRecoveryManager`] (kind
/// `coordinator.<operation>`, e.g. `coordinator.barrier`), which decides
/// whether to retry. The wrapper installs, for each of these kinds that has
/// no strategy yet, a Retry strategy with the config's policy that retries
/// Medium errors only; a strategy set before, by the caller, wins (Fallback
/// is treated as Abort: a coordinator has no fallback value). Retries wait
/// with `tokio::time::sleep`.
///
/// Its [`name`](Coordinator::name) is `fault-tolerant(<inner name>)`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::coordinator::{Coordinator, FaultTolerant, FaultTolerantConfig, InMemoryCoordinator};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), steadfast::coordinator::CoordinatorError> {
/// let rank = InMemoryCoordinator::new(1).remove(0);
/// rank.faults().fail_next(0, 2); // two transient failures
/// let coordinator = FaultTolerant::new(rank, FaultTolerantConfig::default());
/// coordinator.barrier(Duration::from_secs(5)).await?; // retried twice, then passes
/// assert_eq!(coordinator.name(), "fault-tolerant(in-memory)");
/// assert_eq!(coordinator.recovery().statistics().by_kind["coordinator.barrier"], 2);
/// # Ok(())
/// # }
/// ```
pub struct FaultTolerant<C: Coordinator> {
    inner: C,
    config: FaultTolerantConfig,
    recovery: ErrorRecoveryManager,
    name: String,
    calls: AtomicU64,
}

impl<C: Coordinator> fmt::Debug for FaultTolerant<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultTolerant")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

impl<C: Coordinator> FaultTolerant<C> {
    /// Wraps `inner`, with a recovery manager of its own.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::{Coordinator, FaultTolerant, FaultTolerantConfig, InMemoryCoordinator};
    /// let rank = InMemoryCoordinator::new(2).remove(1);
    /// let coordinator = FaultTolerant::new(rank, FaultTolerantConfig::default());
    /// assert_eq!((coordinator.rank(), coordinator.world_size()), (1, 2));
    /// ```
    pub fn new(inner: C, config: FaultTolerantConfig) -> Self {
        FaultTolerant::with_recovery(inner, config, ErrorRecoveryManager::default())
    }

    /// Wraps `inner`, recording errors in `recovery` (shared with the rest
    /// of the application, say). Strategies already set in it for the
    /// `coordinator.*` kinds are kept.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::{FaultTolerant, FaultTolerantConfig, InMemoryCoordinator};
    /// use steadfast::recovery::{ErrorRecoveryManager, RecoveryStrategy};
    ///
    /// let recovery = ErrorRecoveryManager::default();
    /// recovery.set_strategy("coordinator.signal", RecoveryStrategy::Abort); // never retry signals
    /// let rank = InMemoryCoordinator::new(1).remove(0);
    /// let coordinator = FaultTolerant::with_recovery(rank, FaultTolerantConfig::default(), recovery.clone());
    /// assert!(matches!(recovery.strategy("coordinator.signal"), RecoveryStrategy::Abort));
    /// assert!(matches!(recovery.strategy("coordinator.barrier"), RecoveryStrategy::Retry { .. }));
    /// # drop(coordinator);
    /// ```
    pub fn with_recovery(
        inner: C,
        config: FaultTolerantConfig,
        recovery: ErrorRecoveryManager,
    ) -> Self {
        for kind in KINDS {
            recovery.set_strategy_if_absent(
                kind,
                RecoveryStrategy::Retry {
                    max_retries: config.retry().max_retries(),
                    delay: RetryDelay::Policy(config.retry().clone()),
                    max_severity: Severity::Medium,
                },
            );
        }
        let name = format!("fault-tolerant({})", inner.name());
        FaultTolerant {
            inner,
            config,
            recovery,
            name,
            calls: AtomicU64::new(0),
        }
    }

    /// The wrapped coordinator.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::{Coordinator, FaultTolerant, FaultTolerantConfig, InMemoryCoordinator};
    /// let rank = InMemoryCoordinator::new(1).remove(0);
    /// let coordinator = FaultTolerant::new(rank, FaultTolerantConfig::default());
    /// assert_eq!(coordinator.inner().name(), "in-memory");
    /// ```
    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// The recovery manager that records this coordinator's errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::{FaultTolerant, FaultTolerantConfig, InMemoryCoordinator};
    /// let rank = InMemoryCoordinator::new(1).remove(0);
    /// let coordinator = FaultTolerant::new(rank, FaultTolerantConfig::default());
    /// assert_eq!(coordinator.recovery().statistics().total, 0);
    /// ```
    pub fn recovery(&self) -> &ErrorRecoveryManager {
        &self.recovery
    }

    /// The configuration.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::{FaultTolerant, FaultTolerantConfig, InMemoryCoordinator};
    /// let rank = InMemoryCoordinator::new(1).remove(0);
    /// let coordinator = FaultTolerant::new(rank, FaultTolerantConfig::default());
    /// assert_eq!(coordinator.config(), &FaultTolerantConfig::default());
    /// ```
    pub fn config(&self) -> &FaultTolerantConfig {
        &self.config
    }

    /// Runs `attempt` under `bound`, recording each error and retrying as
    /// the recovery manager says.
    async fn run<T, F, Fut>(
        &self,
        operation: &'static str,
        kind: &'static str,
        bound: Duration,
        mut attempt: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let started = Instant::now();
        // The operation id is made on the first error only: the happy path
        // allocates nothing.
        let mut operation_id: Option<String> = None;
        loop {
            let outcome = match tokio::time::timeout(bound, attempt()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(CoordinatorError::Timeout {
                    operation,
                    after: bound,
                    missing: Vec::new(),
                }),
            };
            let error = match outcome {
                Ok(value) => {
                    if let Some(id) = &operation_id {
                        self.recovery.reset(id);
                    }
                    return Ok(value);
                }
                Err(error) => error,
            };
            let id = operation_id.get_or_insert_with(|| {
                let n = self.calls.fetch_add(1, Ordering::Relaxed);
                format!("{kind}#{n}")
            });
            let action = self.recovery.record(
                id,
                Cow::Borrowed(kind),
                severity_of(&error),
                error.to_string(),
            );
            let delay = match action {
                RecoveryAction::Retry { delay, .. } => delay,
                _ => {
                    self.recovery.reset(id);
                    return Err(error);
                }
            };
            if let Some(budget) = self.config.retry().max_elapsed() {
                if started.elapsed().saturating_add(delay) > budget {
                    tracing::warn!(
                        target: "steadfast::coordinator",
                        coordinator = %self.name,
                        rank = self.inner.rank(),
                        operation,
                        ?budget,
                        "retry budget spent, giving up"
                    );
                    self.recovery.reset(id);
                    return Err(error);
                }
            }
            tracing::info!(
                target: "steadfast::coordinator",
                coordinator = %self.name,
                rank = self.inner.rank(),
                operation,
                %error,
                ?delay,
                "retrying after a transient failure"
            );
            tokio::time::sleep(delay).await;
        }
    }

    fn waiting_bound(&self, timeout: Duration) -> Duration {
        timeout.saturating_add(self.config.grace)
    }
}

#[async_trait]
impl<C: Coordinator> Coordinator for FaultTolerant<C> {
    fn rank(&self) -> usize {
        self.inner.rank()
    }

    fn world_size(&self) -> usize {
        self.inner.world_size()
    }

    fn name(&self) -> &str {
        &self.name
    }

    async fn barrier(&self, timeout: Duration) -> Result<()> {
        self.run("barrier", KINDS[0], self.waiting_bound(timeout), || {
            self.inner.barrier(timeout)
        })
        .await
    }

    async fn all_gather(&self, data: Vec<u8>, timeout: Duration) -> Result<Vec<Vec<u8>>> {
        self.run("all_gather", KINDS[1], self.waiting_bound(timeout), || {
            self.inner.all_gather(data.clone(), timeout)
        })
        .await
    }

    async fn signal(&self, key: &str, payload: Vec<u8>) -> Result<u64> {
        self.run("signal", KINDS[2], self.config.op_timeout, || {
            self.inner.signal(key, payload.clone())
        })
        .await
    }

    async fn wait_for_rank(
        &self,
        rank: usize,
        key: &str,
        min_seq: u64,
        timeout: Duration,
    ) -> Result<Signal> {
        self.run(
            "wait_for_rank",
            KINDS[3],
            self.waiting_bound(timeout),
            || self.inner.wait_for_rank(rank, key, min_seq, timeout),
        )
        .await
    }
}
