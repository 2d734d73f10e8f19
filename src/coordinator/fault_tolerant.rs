//! [`FaultTolerant`]: a [`Coordinator`] wrapper that bounds every operation
//! with a timeout and retries what is safe to retry, as an
//! [`ErrorRecoveryManager`] decides.
//!
//! The retries run in the crate's retry future ([`Retry`](crate::retry::Retry)),
//! asked by a classifier that records each error in the recovery manager and
//! retries when the manager says so; each attempt is bounded with
//! [`bound_call`](super::bound_call), as the coordinator operations of
//! [`TimeoutHandler`](crate::timeout::TimeoutHandler) are. What is retried
//! and why is documented on [`FaultTolerant`].

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{
    bound_call, CasOutcome, Coordinator, CoordinatorError, EpochOutcome, EpochRecord, Leadership,
    LiveMember, Membership, MembershipWatch, Result, Role, Signal, Versioned,
};
use crate::recovery::{
    ErrorRecoveryManager, RecoveryAction, RecoveryStrategy, RetryDelay, Severity,
};
use crate::retry::{Classifier, GiveUp, RetryPolicy, Transient};
use crate::ConfigError;

/// The number of the next wrapper made in this process: with the rank and
/// the wrapper's own call counter, it makes operation ids unique, so that
/// wrappers sharing one [`ErrorRecoveryManager`] never count each other's
/// errors.
static NEXT_WRAPPER: AtomicU64 = AtomicU64::new(0);

/// The error kinds [`FaultTolerant`] records, one per operation.
const KINDS: [&str; 4] = [
    "coordinator.barrier",
    "coordinator.all_gather",
    "coordinator.signal",
    "coordinator.wait_for_rank",
];

/// The error kinds [`FaultTolerant`] records for the reads of
/// [`Membership`], the only membership calls it retries.
const READ_KINDS: [&str; 5] = [
    "coordinator.current_epoch",
    "coordinator.live_members",
    "coordinator.read_record",
    "coordinator.list_records",
    "coordinator.leader",
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
#[serde(try_from = "FaultTolerantConfigRepr", into = "FaultTolerantConfigRepr")]
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
struct FaultTolerantConfigRepr {
    #[serde(with = "crate::serde_duration")]
    op_timeout: Duration,
    #[serde(with = "crate::serde_duration")]
    grace: Duration,
    retry: RetryPolicy,
}

impl Default for FaultTolerantConfigRepr {
    fn default() -> Self {
        FaultTolerantConfig::default().into()
    }
}

impl From<FaultTolerantConfig> for FaultTolerantConfigRepr {
    fn from(c: FaultTolerantConfig) -> Self {
        FaultTolerantConfigRepr {
            op_timeout: c.op_timeout,
            grace: c.grace,
            retry: c.retry,
        }
    }
}

impl TryFrom<FaultTolerantConfigRepr> for FaultTolerantConfig {
    type Error = ConfigError;

    fn try_from(r: FaultTolerantConfigRepr) -> std::result::Result<Self, ConfigError> {
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
/// plus `grace` with [`bound_call`](super::bound_call), only to catch an
/// inner coordinator that hangs. `rank`, `world_size` and `name` are
/// answered at once.
///
/// **Membership.** When the inner coordinator implements [`Membership`],
/// so does the wrapper, and it treats the calls by what a retry could do:
///
/// | call | bound | retried on `Unavailable` |
/// |---|---|---|
/// | `current_epoch`, `live_members`, `read_record`, `list_records`, `leader` (reads) | `op_timeout` per attempt | yes, recorded as `coordinator.<call>` |
/// | `compare_and_set`, `propose_epoch`, `put_fenced` (conditional writes) | `op_timeout` | **never** |
/// | `enter_epoch`, `declare_failed`, `resign` | `op_timeout` | no |
/// | `campaign(timeout)` | `timeout + grace` | no |
/// | `member_id`, `epoch`, `role`, `watch_membership` | answered at once | - |
///
/// A conditional write is never retried blindly: when its answer is lost
/// (a connection that drops after the request left, a bound that expires
/// while the server commits), the write **may have landed**. Run again, a
/// compare-and-set that did land would now conflict with its own write, a
/// proposal would be reported `Superseded` by itself, and a fenced write
/// would be written twice under different versions. After a `Timeout` or
/// an `Unavailable` from one of them, read back (`read_record`,
/// `current_epoch`) and decide. Only the errors of the reads are recorded
/// in the recovery manager.
///
/// ```
/// use std::time::Duration;
/// use steadfast::coordinator::{
///     CoordinatorError, FaultTolerant, FaultTolerantConfig, InMemoryCoordinator, Membership,
/// };
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), CoordinatorError> {
/// let rank = InMemoryCoordinator::new(1).remove(0);
/// let faults = rank.faults();
/// faults.partition(&["rank-0"]); // cut off from the coordinator for a while
/// let coordinator = FaultTolerant::new(rank, FaultTolerantConfig::default());
///
/// // A compare-and-set is not retried: the caller reads back and decides.
/// let err = coordinator.compare_and_set("plan", 0, b"x".to_vec()).await.unwrap_err();
/// assert!(matches!(err, CoordinatorError::Unavailable { .. }));
///
/// let heal = tokio::spawn(async move {
///     tokio::time::sleep(Duration::from_millis(1500)).await;
///     faults.heal();
/// });
/// // A read is retried until the partition heals.
/// assert_eq!(coordinator.current_epoch().await?.epoch, 0);
/// assert!(coordinator.read_record("plan").await?.is_none());
/// # heal.await.unwrap();
/// # Ok(())
/// # }
/// ```
///
/// Every error is recorded in its [`ErrorRecoveryManager`] (kind
/// `coordinator.<operation>`, e.g. `coordinator.barrier`), which decides
/// whether to retry. The wrapper installs, for each of these kinds that has
/// no strategy yet, a Retry strategy with the config's policy that retries
/// Medium errors only; a strategy set before, by the caller, wins (Fallback
/// is treated as Abort: a coordinator has no fallback value). The retries
/// run in the crate's [`Retry`](crate::retry::Retry) future, which waits
/// the delay the manager names and stops when the policy's `max_elapsed`
/// budget would be passed.
///
/// Each failed call is recorded under an operation id of its own, unique
/// in the process (`coordinator.barrier/wrapper-3/rank-1/call-0`), so that
/// wrappers sharing one manager (the ranks of a job in one process, say)
/// never count each other's errors; the id's count is reset when the call
/// succeeds or gives up.
///
/// **Which to pick.** Use this wrapper when transient failures of the
/// coordination service should be retried and recorded; use
/// [`TimeoutHandler::barrier`](crate::timeout::TimeoutHandler::barrier) and
/// its siblings for a call with a default timeout and no retries. Both bound
/// a call the same way ([`bound_call`](super::bound_call)); do not stack
/// them.
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
    /// The policy the retry future runs under: the config's time budget,
    /// and no retry limit of its own (the recovery manager's strategy
    /// decides when to stop, a strategy set by the caller included).
    retry: RetryPolicy,
    /// This wrapper's number in the process (see [`NEXT_WRAPPER`]).
    wrapper: u64,
    /// The calls that failed at least once, numbered for their ids.
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
        for kind in KINDS.into_iter().chain(READ_KINDS) {
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
        let mut retry = RetryPolicy::builder().max_retries(u32::MAX);
        if let Some(budget) = config.retry().max_elapsed() {
            retry = retry.max_elapsed(budget);
        }
        // Built from a policy that was valid, so it is valid too.
        let retry = retry.build().unwrap_or_else(|_| config.retry().clone());
        FaultTolerant {
            inner,
            config,
            recovery,
            name,
            retry,
            wrapper: NEXT_WRAPPER.fetch_add(1, Ordering::Relaxed),
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

    /// Runs `attempt` (bounded at `timeout + grace`) in a retry future,
    /// recording each error in the recovery manager and retrying as it
    /// says.
    async fn run<T, F, Fut>(
        &self,
        operation: &'static str,
        kind: &'static str,
        timeout: Duration,
        grace: Duration,
        mut attempt: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        // The operation id is made on the first error only: the happy path
        // allocates nothing.
        let mut operation_id: Option<String> = None;
        let outcome = self
            .retry
            .retry(|| {
                let call = attempt();
                async move {
                    match bound_call(operation, timeout, grace, call).await {
                        Ok(outcome) => outcome,
                        Err(abandoned) => Err(CoordinatorError::Timeout {
                            operation,
                            after: abandoned.after,
                            missing: Vec::new(),
                        }),
                    }
                }
            })
            .classify(Recorder {
                wrapper: self,
                kind,
                operation_id: &mut operation_id,
                delay: None,
            })
            .notify(|_attempt, error: &CoordinatorError, delay: Duration| {
                tracing::info!(
                    target: "steadfast::coordinator",
                    coordinator = %self.name,
                    rank = self.inner.rank(),
                    operation,
                    %error,
                    ?delay,
                    "retrying after a transient failure"
                );
            })
            .await;
        // Whether it succeeded or was given up, the operation is over: its
        // error count goes.
        if let Some(id) = &operation_id {
            self.recovery.reset(id);
        }
        outcome.map_err(|given_up| {
            if given_up.reason() == GiveUp::ElapsedBudget {
                tracing::warn!(
                    target: "steadfast::coordinator",
                    coordinator = %self.name,
                    rank = self.inner.rank(),
                    operation,
                    budget = ?self.retry.max_elapsed(),
                    "retry budget spent, giving up"
                );
            }
            given_up.into_inner()
        })
    }

    /// The id of a call that failed: unique in the process, per wrapper
    /// and per call (`coordinator.barrier/wrapper-3/rank-1/call-0`).
    fn next_operation_id(&self, kind: &str) -> String {
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        format!(
            "{kind}/wrapper-{}/rank-{}/call-{call}",
            self.wrapper,
            self.inner.rank()
        )
    }
}

/// The [`Classifier`] of a [`FaultTolerant`] call: records each error in
/// the recovery manager (under the call's operation id, made at its first
/// error) and retries, after the delay it names, when the manager's action
/// is a retry.
struct Recorder<'a, C: Coordinator> {
    wrapper: &'a FaultTolerant<C>,
    kind: &'static str,
    operation_id: &'a mut Option<String>,
    /// The delay of the retry the manager asked for last.
    delay: Option<Duration>,
}

impl<C: Coordinator> Classifier<CoordinatorError> for Recorder<'_, C> {
    fn is_transient(&mut self, error: &CoordinatorError) -> bool {
        let id = match self.operation_id {
            Some(id) => id,
            None => self
                .operation_id
                .insert(self.wrapper.next_operation_id(self.kind)),
        };
        let action = self.wrapper.recovery.record(
            id,
            Cow::Borrowed(self.kind),
            severity_of(error),
            error.to_string(),
        );
        self.delay = match action {
            RecoveryAction::Retry { delay, .. } => Some(delay),
            _ => None,
        };
        self.delay.is_some()
    }

    fn retry_after(&mut self, _: &CoordinatorError) -> Option<Duration> {
        self.delay
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
        self.run("barrier", KINDS[0], timeout, self.config.grace, || {
            self.inner.barrier(timeout)
        })
        .await
    }

    async fn all_gather(&self, data: Vec<u8>, timeout: Duration) -> Result<Vec<Vec<u8>>> {
        self.run("all_gather", KINDS[1], timeout, self.config.grace, || {
            self.inner.all_gather(data.clone(), timeout)
        })
        .await
    }

    async fn signal(&self, key: &str, payload: Vec<u8>) -> Result<u64> {
        self.run(
            "signal",
            KINDS[2],
            self.config.op_timeout,
            Duration::ZERO,
            || self.inner.signal(key, payload.clone()),
        )
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
            timeout,
            self.config.grace,
            || self.inner.wait_for_rank(rank, key, min_seq, timeout),
        )
        .await
    }
}

impl<C: Membership> FaultTolerant<C> {
    /// Runs a membership call that is not retried, bounded at `timeout`
    /// (an abandoned call is a [`CoordinatorError::Timeout`] naming no
    /// rank: it may have landed).
    async fn once<T>(
        &self,
        operation: &'static str,
        timeout: Duration,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        match bound_call(operation, timeout, Duration::ZERO, call).await {
            Ok(outcome) => outcome,
            Err(abandoned) => Err(CoordinatorError::Timeout {
                operation,
                after: abandoned.after,
                missing: Vec::new(),
            }),
        }
    }

    /// Runs a read, bounded at `op_timeout` per attempt and retried on
    /// transient failures as the recovery manager decides.
    async fn read<T, F, Fut>(
        &self,
        operation: &'static str,
        kind: &'static str,
        attempt: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.run(
            operation,
            kind,
            self.config.op_timeout,
            Duration::ZERO,
            attempt,
        )
        .await
    }
}

/// Forwards to the inner coordinator: reads are bounded and retried,
/// writes bounded and never retried (see [`FaultTolerant`]).
#[async_trait]
impl<C: Membership> Membership for FaultTolerant<C> {
    fn member_id(&self) -> &str {
        self.inner.member_id()
    }

    fn epoch(&self) -> u64 {
        self.inner.epoch()
    }

    fn role(&self) -> Role {
        self.inner.role()
    }

    async fn current_epoch(&self) -> Result<EpochRecord> {
        self.read("current_epoch", READ_KINDS[0], || {
            self.inner.current_epoch()
        })
        .await
    }

    async fn propose_epoch(&self, expected: u64, next: &EpochRecord) -> Result<EpochOutcome> {
        self.once(
            "propose_epoch",
            self.config.op_timeout,
            self.inner.propose_epoch(expected, next),
        )
        .await
    }

    async fn enter_epoch(&self, record: &EpochRecord) -> Result<()> {
        self.once(
            "enter_epoch",
            self.config.op_timeout,
            self.inner.enter_epoch(record),
        )
        .await
    }

    async fn live_members(&self) -> Result<Vec<LiveMember>> {
        self.read("live_members", READ_KINDS[1], || self.inner.live_members())
            .await
    }

    fn watch_membership(&self) -> MembershipWatch {
        self.inner.watch_membership()
    }

    async fn declare_failed(&self, rank: usize, reason: &str) -> Result<()> {
        self.once(
            "declare_failed",
            self.config.op_timeout,
            self.inner.declare_failed(rank, reason),
        )
        .await
    }

    async fn read_record(&self, key: &str) -> Result<Option<Versioned>> {
        self.read("read_record", READ_KINDS[2], || self.inner.read_record(key))
            .await
    }

    async fn list_records(&self, prefix: &str) -> Result<Vec<(String, Versioned)>> {
        self.read("list_records", READ_KINDS[3], || {
            self.inner.list_records(prefix)
        })
        .await
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: u64,
        value: Vec<u8>,
    ) -> Result<CasOutcome> {
        self.once(
            "compare_and_set",
            self.config.op_timeout,
            self.inner.compare_and_set(key, expected, value),
        )
        .await
    }

    async fn put_fenced(
        &self,
        key: &str,
        value: Vec<u8>,
        leadership: Option<&Leadership>,
    ) -> Result<u64> {
        self.once(
            "put_fenced",
            self.config.op_timeout,
            self.inner.put_fenced(key, value, leadership),
        )
        .await
    }

    async fn campaign(&self, timeout: Duration) -> Result<Leadership> {
        self.once(
            "campaign",
            timeout.saturating_add(self.config.grace),
            self.inner.campaign(timeout),
        )
        .await
    }

    async fn leader(&self) -> Result<Option<Leadership>> {
        self.read("leader", READ_KINDS[4], || self.inner.leader())
            .await
    }

    async fn resign(&self, leadership: &Leadership) -> Result<()> {
        self.once(
            "resign",
            self.config.op_timeout,
            self.inner.resign(leadership),
        )
        .await
    }
}
