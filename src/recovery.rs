//! What to do about an error: the [`ErrorRecoveryManager`], its per-kind
//! [`RecoveryStrategy`], a bounded error history and statistics.
//!
//! Each error is recorded with the operation it happened in (an id the
//! caller chooses), a *kind* (a short name such as `"db.query"` or
//! `"coordinator.barrier"`) and a [`Severity`]. The manager looks up the
//! strategy registered for the kind (Abort when none is) and answers with a
//! [`RecoveryAction`]: retry after a delay, fall back, or abort. It counts
//! the errors of each operation, so that a Retry strategy stops after its
//! `max_retries`, until the operation is [`reset`](ErrorRecoveryManager::reset).
//!
//! Every error joins a history of the last `history_capacity` errors (a ring
//! buffer: the oldest is dropped), and all-time statistics by kind and by
//! severity. The manager is a handle (`Clone` shares it) that any task may
//! use: its state sits behind one mutex, held only for bookkeeping; a
//! [`RecoveryStrategy::Custom`] function runs after the lock is released.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use steadfast::recovery::{ErrorRecoveryManager, RecoveryAction, RecoveryStrategy, Severity};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let recovery = ErrorRecoveryManager::default();
//! recovery.set_strategy("db.query", RecoveryStrategy::retry(2, Duration::from_millis(100)));
//! recovery.set_strategy("cache.get", RecoveryStrategy::Fallback);
//!
//! let first = recovery.record("q-1", "db.query", Severity::Medium, "connection reset");
//! assert_eq!(first, RecoveryAction::Retry { attempt: 1, delay: Duration::from_millis(100) });
//! recovery.record("q-1", "db.query", Severity::Medium, "connection reset");
//! let third = recovery.record("q-1", "db.query", Severity::Medium, "connection reset");
//! assert_eq!(third, RecoveryAction::Abort); // two retries were allowed
//!
//! assert_eq!(recovery.record("c-1", "cache.get", Severity::Low, "miss"), RecoveryAction::Fallback);
//! assert_eq!(recovery.record("x-1", "disk.write", Severity::High, "full"), RecoveryAction::Abort);
//! assert_eq!(recovery.statistics().total, 5);
//! # }
//! ```

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::retry::RetryPolicy;
use crate::ConfigError;

/// How serious an error is, from least to most.
///
/// A [`RecoveryStrategy::Retry`] retries errors up to its `max_severity`
/// (High unless set otherwise); a Critical error is never retried by the
/// default Retry strategy.
///
/// # Examples
///
/// ```
/// use steadfast::recovery::Severity;
/// assert!(Severity::Low < Severity::Critical);
/// assert_eq!(Severity::High.to_string(), "high");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// A nuisance: a cache miss, a slow call.
    Low,
    /// A transient failure that a retry is likely to fix.
    Medium,
    /// A failure that may not go away by itself.
    High,
    /// A failure that must not be retried: bad input, lost data, a bug.
    Critical,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        })
    }
}

/// An error type that knows its kind and severity, for
/// [`ErrorRecoveryManager::record_error`].
///
/// # Examples
///
/// ```
/// use std::borrow::Cow;
/// use steadfast::recovery::{Classify, ErrorRecoveryManager, Severity};
///
/// #[derive(Debug)]
/// enum DbError { Timeout, Corrupt }
///
/// impl std::fmt::Display for DbError {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         write!(f, "{self:?}")
///     }
/// }
///
/// impl Classify for DbError {
///     fn kind(&self) -> Cow<'static, str> {
///         match self {
///             DbError::Timeout => "db.timeout".into(),
///             DbError::Corrupt => "db.corrupt".into(),
///         }
///     }
///     fn severity(&self) -> Severity {
///         match self {
///             DbError::Timeout => Severity::Medium,
///             DbError::Corrupt => Severity::Critical,
///         }
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let recovery = ErrorRecoveryManager::default();
/// recovery.record_error("op-1", &DbError::Corrupt);
/// assert_eq!(recovery.statistics().by_kind["db.corrupt"], 1);
/// # }
/// ```
pub trait Classify {
    /// The error's kind, the key of its [`RecoveryStrategy`].
    fn kind(&self) -> Cow<'static, str>;

    /// How serious it is.
    fn severity(&self) -> Severity;
}

/// One recorded error.
///
/// # Examples
///
/// ```
/// use steadfast::recovery::{ErrorRecoveryManager, Severity};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let recovery = ErrorRecoveryManager::default();
/// recovery.record("upload-7", "s3.put", Severity::High, "503 slow down");
/// let record = &recovery.history()[0];
/// assert_eq!(record.operation_id, "upload-7");
/// assert_eq!(record.kind, "s3.put");
/// assert_eq!(record.occurrence, 1);
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorRecord {
    /// The operation it happened in.
    pub operation_id: String,
    /// Its kind.
    pub kind: Cow<'static, str>,
    /// Its severity.
    pub severity: Severity,
    /// What went wrong.
    pub message: String,
    /// When it was recorded.
    pub at: Instant,
    /// How many errors this operation has recorded since its last reset,
    /// this one included (1 for the first).
    pub occurrence: u32,
}

/// What the caller should do about an error.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::recovery::RecoveryAction;
///
/// let action = RecoveryAction::Retry { attempt: 1, delay: Duration::from_secs(1) };
/// assert!(action.is_retry());
/// assert!(!RecoveryAction::Abort.is_retry());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecoveryAction {
    /// Wait `delay`, then run the operation again; this is retry number
    /// `attempt` (1 for the first retry).
    Retry {
        /// Which retry this is, from 1.
        attempt: u32,
        /// How long to wait first.
        delay: Duration,
    },
    /// Give up on the operation and use a fallback (a cached value, a
    /// default, a degraded path).
    Fallback,
    /// Give up and report the error.
    Abort,
}

impl RecoveryAction {
    /// Whether the action is a retry.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::recovery::RecoveryAction::Fallback.is_retry() == false);
    /// ```
    pub fn is_retry(&self) -> bool {
        matches!(self, RecoveryAction::Retry { .. })
    }
}

impl fmt::Display for RecoveryAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecoveryAction::Retry { attempt, delay } => {
                write!(f, "retry #{attempt} after {delay:?}")
            }
            RecoveryAction::Fallback => f.write_str("fallback"),
            RecoveryAction::Abort => f.write_str("abort"),
        }
    }
}

/// How long a [`RecoveryStrategy::Retry`] waits before each retry.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::recovery::RetryDelay;
/// use steadfast::retry::RetryPolicy;
///
/// let fixed = RetryDelay::Fixed(Duration::from_millis(250));
/// assert_eq!(fixed.delay_for(3), Duration::from_millis(250));
/// let backoff = RetryDelay::Policy(RetryPolicy::default()); // 1 s, 2 s, 4 s, ...
/// assert_eq!(backoff.delay_for(3), Duration::from_secs(4));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum RetryDelay {
    /// The same delay before every retry.
    Fixed(Duration),
    /// The delays of a [`RetryPolicy`]'s backoff (with its jitter): the
    /// n-th retry waits the n-th delay; past the policy's own retries, its
    /// `max_delay`.
    Policy(RetryPolicy),
}

impl RetryDelay {
    /// The delay before retry number `attempt` (from 1).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::recovery::RetryDelay;
    /// use steadfast::retry::RetryPolicy;
    ///
    /// let policy = RetryPolicy::builder().max_retries(2).build()?;
    /// let delay = RetryDelay::Policy(policy);
    /// assert_eq!(delay.delay_for(1), Duration::from_secs(1));
    /// assert_eq!(delay.delay_for(9), Duration::from_secs(30)); // the policy's max_delay
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn delay_for(&self, attempt: u32) -> Duration {
        match self {
            RetryDelay::Fixed(delay) => *delay,
            RetryDelay::Policy(policy) => {
                let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
                policy
                    .backoff()
                    .nth(index)
                    .unwrap_or_else(|| policy.max_delay())
            }
        }
    }
}

/// A function that decides what to do about an error.
pub type CustomStrategy = Arc<dyn Fn(&ErrorRecord) -> RecoveryAction + Send + Sync>;

/// What to do about errors of one kind.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::recovery::{RecoveryAction, RecoveryStrategy, Severity};
/// use steadfast::retry::RetryPolicy;
///
/// let fixed = RecoveryStrategy::retry(3, Duration::from_millis(100));
/// let backoff = RecoveryStrategy::retry_with_policy(RetryPolicy::default());
/// let by_severity = RecoveryStrategy::custom(|record| {
///     if record.severity >= Severity::High {
///         RecoveryAction::Abort
///     } else {
///         RecoveryAction::Fallback
///     }
/// });
/// assert!(matches!(backoff, RecoveryStrategy::Retry { max_retries: 3, .. }));
/// # let _ = (fixed, by_severity);
/// ```
#[derive(Clone, Default)]
pub enum RecoveryStrategy {
    /// Retry up to `max_retries` times, waiting `delay` before each retry,
    /// errors of at most `max_severity`; more severe errors, and errors past
    /// the last retry, abort.
    Retry {
        /// How many retries an operation gets (errors past this many abort).
        max_retries: u32,
        /// How long to wait before each retry.
        delay: RetryDelay,
        /// The most severe error that is retried.
        max_severity: Severity,
    },
    /// Use a fallback.
    Fallback,
    /// Give up (the default for kinds without a strategy).
    #[default]
    Abort,
    /// Ask a function, which sees the error's record (its
    /// [`occurrence`](ErrorRecord::occurrence) counts the operation's
    /// errors). It runs outside the manager's lock.
    Custom(CustomStrategy),
}

impl fmt::Debug for RecoveryStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecoveryStrategy::Retry {
                max_retries,
                delay,
                max_severity,
            } => f
                .debug_struct("Retry")
                .field("max_retries", max_retries)
                .field("delay", delay)
                .field("max_severity", max_severity)
                .finish(),
            RecoveryStrategy::Fallback => f.write_str("Fallback"),
            RecoveryStrategy::Abort => f.write_str("Abort"),
            RecoveryStrategy::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl RecoveryStrategy {
    /// Retry up to `max_retries` times with a fixed `delay`, errors up to
    /// [`Severity::High`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::recovery::RecoveryStrategy;
    /// let s = RecoveryStrategy::retry(2, Duration::from_secs(1));
    /// assert!(matches!(s, RecoveryStrategy::Retry { max_retries: 2, .. }));
    /// ```
    pub fn retry(max_retries: u32, delay: Duration) -> Self {
        RecoveryStrategy::Retry {
            max_retries,
            delay: RetryDelay::Fixed(delay),
            max_severity: Severity::High,
        }
    }

    /// Retry as `policy` says: its `max_retries`, and its backoff for the
    /// delays; errors up to [`Severity::High`].
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::RecoveryStrategy;
    /// use steadfast::retry::RetryPolicy;
    /// let s = RecoveryStrategy::retry_with_policy(RetryPolicy::builder().max_retries(5).build()?);
    /// assert!(matches!(s, RecoveryStrategy::Retry { max_retries: 5, .. }));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn retry_with_policy(policy: RetryPolicy) -> Self {
        RecoveryStrategy::Retry {
            max_retries: policy.max_retries(),
            delay: RetryDelay::Policy(policy),
            max_severity: Severity::High,
        }
    }

    /// A strategy decided by `f`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::{RecoveryAction, RecoveryStrategy};
    /// let s = RecoveryStrategy::custom(|_| RecoveryAction::Fallback);
    /// assert!(matches!(s, RecoveryStrategy::Custom(_)));
    /// ```
    pub fn custom(f: impl Fn(&ErrorRecord) -> RecoveryAction + Send + Sync + 'static) -> Self {
        RecoveryStrategy::Custom(Arc::new(f))
    }
}

/// Configuration of an [`ErrorRecoveryManager`].
///
/// # Default
///
/// - `history_capacity`: 1000 (errors kept in the history; the oldest is
///   dropped)
/// - `max_tracked_operations`: 10 000 (operations whose error counts are
///   kept; past this, the one whose last error is oldest is forgotten)
///
/// # Examples
///
/// ```
/// use steadfast::recovery::RecoveryConfig;
///
/// let config = RecoveryConfig::builder().history_capacity(50).build()?;
/// assert_eq!(config.history_capacity(), 50);
/// let json = serde_json::to_string(&config).unwrap();
/// assert_eq!(serde_json::from_str::<RecoveryConfig>(&json).unwrap(), config);
/// assert!(RecoveryConfig::builder().history_capacity(0).build().is_err());
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RecoveryConfigRepr", into = "RecoveryConfigRepr")]
pub struct RecoveryConfig {
    history_capacity: usize,
    max_tracked_operations: usize,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        RecoveryConfig {
            history_capacity: 1000,
            max_tracked_operations: 10_000,
        }
    }
}

/// The largest history accepted (it is allocated up front).
const MAX_HISTORY: usize = 1 << 24;

impl RecoveryConfig {
    /// A builder starting from the defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = steadfast::recovery::RecoveryConfig::builder().build()?;
    /// assert_eq!(config.history_capacity(), 1000);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn builder() -> RecoveryConfigBuilder {
        RecoveryConfigBuilder {
            config: RecoveryConfig::default(),
        }
    }

    /// How many errors the history keeps.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::recovery::RecoveryConfig::default().history_capacity(), 1000);
    /// ```
    pub fn history_capacity(&self) -> usize {
        self.history_capacity
    }

    /// How many operations' error counts are kept.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::recovery::RecoveryConfig::default().max_tracked_operations(), 10_000);
    /// ```
    pub fn max_tracked_operations(&self) -> usize {
        self.max_tracked_operations
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.history_capacity == 0 || self.history_capacity > MAX_HISTORY {
            return Err(ConfigError::new(
                "history_capacity",
                format!(
                    "must be in 1..={MAX_HISTORY}, got {}",
                    self.history_capacity
                ),
            ));
        }
        if self.max_tracked_operations == 0 {
            return Err(ConfigError::new(
                "max_tracked_operations",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Builds a validated [`RecoveryConfig`].
///
/// # Examples
///
/// ```
/// let config = steadfast::recovery::RecoveryConfig::builder()
///     .history_capacity(10)
///     .max_tracked_operations(100)
///     .build()?;
/// assert_eq!(config.max_tracked_operations(), 100);
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RecoveryConfigBuilder {
    config: RecoveryConfig,
}

impl RecoveryConfigBuilder {
    /// Sets how many errors the history keeps (at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// let b = steadfast::recovery::RecoveryConfig::builder().history_capacity(0);
    /// assert_eq!(b.build().unwrap_err().field(), "history_capacity");
    /// ```
    pub fn history_capacity(mut self, capacity: usize) -> Self {
        self.config.history_capacity = capacity;
        self
    }

    /// Sets how many operations' error counts are kept (at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// let b = steadfast::recovery::RecoveryConfig::builder().max_tracked_operations(0);
    /// assert_eq!(b.build().unwrap_err().field(), "max_tracked_operations");
    /// ```
    pub fn max_tracked_operations(mut self, max: usize) -> Self {
        self.config.max_tracked_operations = max;
        self
    }

    /// Validates and returns the config.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::recovery::RecoveryConfig::builder().build().is_ok());
    /// ```
    pub fn build(self) -> Result<RecoveryConfig, ConfigError> {
        self.config.validate()?;
        Ok(self.config)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RecoveryConfigRepr {
    history_capacity: usize,
    max_tracked_operations: usize,
}

impl Default for RecoveryConfigRepr {
    fn default() -> Self {
        RecoveryConfig::default().into()
    }
}

impl From<RecoveryConfig> for RecoveryConfigRepr {
    fn from(c: RecoveryConfig) -> Self {
        RecoveryConfigRepr {
            history_capacity: c.history_capacity,
            max_tracked_operations: c.max_tracked_operations,
        }
    }
}

impl TryFrom<RecoveryConfigRepr> for RecoveryConfig {
    type Error = ConfigError;

    fn try_from(r: RecoveryConfigRepr) -> Result<Self, ConfigError> {
        let config = RecoveryConfig {
            history_capacity: r.history_capacity,
            max_tracked_operations: r.max_tracked_operations,
        };
        config.validate()?;
        Ok(config)
    }
}

/// Error statistics; see [`ErrorRecoveryManager::statistics`].
///
/// `total`, `by_kind` and `by_severity` count every error ever recorded.
/// `by_operation` counts the errors still in the history (the last
/// `history_capacity`), so that an unbounded set of operation ids cannot
/// grow memory.
///
/// # Examples
///
/// ```
/// use steadfast::recovery::{ErrorRecoveryManager, Severity};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let recovery = ErrorRecoveryManager::default();
/// recovery.record("a", "net", Severity::Medium, "reset");
/// recovery.record("a", "net", Severity::High, "refused");
/// let stats = recovery.statistics();
/// assert_eq!(stats.by_kind["net"], 2);
/// assert_eq!(stats.by_severity[&Severity::High], 1);
/// assert_eq!(stats.by_operation["a"], 2);
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorStatistics {
    /// Errors recorded, all time.
    pub total: u64,
    /// Errors by kind, all time.
    pub by_kind: HashMap<String, u64>,
    /// Errors by severity, all time (severities never seen are absent).
    pub by_severity: BTreeMap<Severity, u64>,
    /// Errors by operation, among those in the history.
    pub by_operation: HashMap<String, u64>,
    /// How many errors the history holds.
    pub retained: usize,
}

#[derive(Debug)]
struct OperationState {
    errors: u32,
    /// The operation's position in the eviction order.
    touched: u64,
    last: ErrorRecord,
}

#[derive(Debug)]
struct State {
    config: RecoveryConfig,
    default_strategy: RecoveryStrategy,
    strategies: HashMap<Cow<'static, str>, RecoveryStrategy>,
    history: VecDeque<ErrorRecord>,
    operations: HashMap<String, OperationState>,
    /// Operations by the time of their last error (a counter), oldest first.
    order: BTreeMap<u64, String>,
    clock: u64,
    total: u64,
    by_kind: HashMap<Cow<'static, str>, u64>,
    by_severity: BTreeMap<Severity, u64>,
}

/// Decides what to do about errors, per kind, and keeps their history and
/// statistics.
///
/// See the [module documentation](crate::recovery). The manager is `Clone`
/// (clones share everything), `Send` and `Sync`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::recovery::{ErrorRecoveryManager, RecoveryAction, RecoveryStrategy, Severity};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let recovery = ErrorRecoveryManager::default();
/// recovery.set_strategy("net", RecoveryStrategy::retry(3, Duration::from_millis(10)));
/// loop {
///     // ... the operation failed:
///     match recovery.record("fetch-1", "net", Severity::Medium, "connection reset") {
///         RecoveryAction::Retry { delay, .. } => tokio::time::sleep(delay).await,
///         _ => break,
///     }
/// }
/// assert_eq!(recovery.errors_of("fetch-1"), 4);
/// assert!(!recovery.should_retry("fetch-1"));
/// recovery.reset("fetch-1");
/// assert_eq!(recovery.errors_of("fetch-1"), 0);
/// # }
/// ```
#[derive(Clone)]
pub struct ErrorRecoveryManager {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for ErrorRecoveryManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("ErrorRecoveryManager")
            .field("config", &state.config)
            .field("strategies", &state.strategies)
            .field("default_strategy", &state.default_strategy)
            .field("retained", &state.history.len())
            .field("total", &state.total)
            .finish()
    }
}

impl Default for ErrorRecoveryManager {
    /// A manager with [`RecoveryConfig::default`] and no strategies (every
    /// kind aborts).
    fn default() -> Self {
        ErrorRecoveryManager::new(RecoveryConfig::default())
    }
}

impl ErrorRecoveryManager {
    /// A manager with `config`, no strategies, and Abort as the default.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::{ErrorRecoveryManager, RecoveryConfig};
    /// let config = RecoveryConfig::builder().history_capacity(100).build()?;
    /// let recovery = ErrorRecoveryManager::new(config);
    /// assert_eq!(recovery.config().history_capacity(), 100);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn new(config: RecoveryConfig) -> Self {
        ErrorRecoveryManager {
            state: Arc::new(Mutex::new(State {
                config,
                default_strategy: RecoveryStrategy::Abort,
                strategies: HashMap::new(),
                history: VecDeque::with_capacity(config.history_capacity),
                operations: HashMap::new(),
                order: BTreeMap::new(),
                clock: 0,
                total: 0,
                by_kind: HashMap::new(),
                by_severity: BTreeMap::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent before anything
        // that could panic, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The configuration.
    ///
    /// # Examples
    ///
    /// ```
    /// let recovery = steadfast::recovery::ErrorRecoveryManager::default();
    /// assert_eq!(recovery.config().history_capacity(), 1000);
    /// ```
    pub fn config(&self) -> RecoveryConfig {
        self.lock().config
    }

    /// Sets the strategy for errors of `kind`, returning the one it replaces.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::{ErrorRecoveryManager, RecoveryStrategy};
    /// let recovery = ErrorRecoveryManager::default();
    /// assert!(recovery.set_strategy("cache", RecoveryStrategy::Fallback).is_none());
    /// assert!(recovery.set_strategy("cache", RecoveryStrategy::Abort).is_some());
    /// ```
    pub fn set_strategy(
        &self,
        kind: impl Into<Cow<'static, str>>,
        strategy: RecoveryStrategy,
    ) -> Option<RecoveryStrategy> {
        self.lock().strategies.insert(kind.into(), strategy)
    }

    /// Sets the strategy for `kind` unless one is set; returns whether it
    /// was set.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::{ErrorRecoveryManager, RecoveryStrategy};
    /// let recovery = ErrorRecoveryManager::default();
    /// assert!(recovery.set_strategy_if_absent("cache", RecoveryStrategy::Fallback));
    /// assert!(!recovery.set_strategy_if_absent("cache", RecoveryStrategy::Abort));
    /// assert!(matches!(recovery.strategy("cache"), RecoveryStrategy::Fallback));
    /// ```
    pub fn set_strategy_if_absent(
        &self,
        kind: impl Into<Cow<'static, str>>,
        strategy: RecoveryStrategy,
    ) -> bool {
        let mut state = self.lock();
        let kind = kind.into();
        if state.strategies.contains_key(&kind) {
            return false;
        }
        state.strategies.insert(kind, strategy);
        true
    }

    /// Sets the strategy for kinds that have none (Abort unless set).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::{ErrorRecoveryManager, RecoveryAction, RecoveryStrategy, Severity};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let recovery = ErrorRecoveryManager::default();
    /// recovery.set_default_strategy(RecoveryStrategy::Fallback);
    /// assert_eq!(recovery.record("op", "anything", Severity::Low, "x"), RecoveryAction::Fallback);
    /// # }
    /// ```
    pub fn set_default_strategy(&self, strategy: RecoveryStrategy) {
        self.lock().default_strategy = strategy;
    }

    /// The strategy that applies to `kind`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::{ErrorRecoveryManager, RecoveryStrategy};
    /// let recovery = ErrorRecoveryManager::default();
    /// assert!(matches!(recovery.strategy("unknown"), RecoveryStrategy::Abort));
    /// ```
    pub fn strategy(&self, kind: &str) -> RecoveryStrategy {
        let state = self.lock();
        state
            .strategies
            .get(kind)
            .unwrap_or(&state.default_strategy)
            .clone()
    }

    /// Records an error of `operation_id` and returns what to do about it.
    ///
    /// The operation's error count grows by one; the strategy of `kind`
    /// decides: Retry answers [`RecoveryAction::Retry`] while the count is at
    /// most `max_retries` and the severity at most `max_severity`, and
    /// [`RecoveryAction::Abort`] after; Fallback and Abort answer
    /// themselves; Custom asks its function.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::recovery::{ErrorRecoveryManager, RecoveryAction, RecoveryStrategy, Severity};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let recovery = ErrorRecoveryManager::default();
    /// recovery.set_strategy("net", RecoveryStrategy::retry(1, Duration::from_secs(1)));
    /// assert!(recovery.record("op", "net", Severity::Medium, "reset").is_retry());
    /// // a critical error is not retried by a Retry strategy
    /// assert_eq!(recovery.record("op2", "net", Severity::Critical, "bad"), RecoveryAction::Abort);
    /// # }
    /// ```
    pub fn record(
        &self,
        operation_id: &str,
        kind: impl Into<Cow<'static, str>>,
        severity: Severity,
        message: impl Into<String>,
    ) -> RecoveryAction {
        let kind = kind.into();
        let message = message.into();
        let (record, strategy) = {
            let mut state = self.lock();
            let record = state.add(operation_id, kind, severity, message);
            let strategy = state
                .strategies
                .get(record.kind.as_ref())
                .unwrap_or(&state.default_strategy)
                .clone();
            (record, strategy)
        };
        let action = decide(&strategy, &record);
        let level_warn = matches!(action, RecoveryAction::Abort);
        if level_warn {
            tracing::warn!(
                target: "steadfast::recovery",
                operation = %record.operation_id,
                kind = %record.kind,
                severity = %record.severity,
                occurrence = record.occurrence,
                %action,
                message = %record.message,
                "error recorded"
            );
        } else {
            tracing::info!(
                target: "steadfast::recovery",
                operation = %record.operation_id,
                kind = %record.kind,
                severity = %record.severity,
                occurrence = record.occurrence,
                %action,
                message = %record.message,
                "error recorded"
            );
        }
        action
    }

    /// Records `error`, with the kind and severity it gives, and its
    /// `Display` text as the message.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::borrow::Cow;
    /// use steadfast::recovery::{Classify, ErrorRecoveryManager, RecoveryAction, Severity};
    ///
    /// struct Oops;
    /// impl std::fmt::Display for Oops {
    ///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("oops") }
    /// }
    /// impl Classify for Oops {
    ///     fn kind(&self) -> Cow<'static, str> { "oops".into() }
    ///     fn severity(&self) -> Severity { Severity::Low }
    /// }
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let recovery = ErrorRecoveryManager::default();
    /// assert_eq!(recovery.record_error("op", &Oops), RecoveryAction::Abort);
    /// assert_eq!(recovery.history()[0].message, "oops");
    /// # }
    /// ```
    pub fn record_error<E: Classify + fmt::Display + ?Sized>(
        &self,
        operation_id: &str,
        error: &E,
    ) -> RecoveryAction {
        self.record(
            operation_id,
            error.kind(),
            error.severity(),
            error.to_string(),
        )
    }

    /// Whether `operation_id` may be retried: its error count is within the
    /// max retries of its latest error's strategy (and that error's severity
    /// within the strategy's `max_severity`; a Custom strategy is asked
    /// about the latest error). `false` for an operation with no error
    /// recorded since its last reset.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::recovery::{ErrorRecoveryManager, RecoveryStrategy, Severity};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let recovery = ErrorRecoveryManager::default();
    /// recovery.set_strategy("net", RecoveryStrategy::retry(2, Duration::ZERO));
    /// assert!(!recovery.should_retry("op"));
    /// recovery.record("op", "net", Severity::Medium, "reset");
    /// assert!(recovery.should_retry("op"));
    /// recovery.record("op", "net", Severity::Medium, "reset");
    /// assert!(recovery.should_retry("op"));
    /// recovery.record("op", "net", Severity::Medium, "reset");
    /// assert!(!recovery.should_retry("op"));
    /// # }
    /// ```
    pub fn should_retry(&self, operation_id: &str) -> bool {
        let (record, strategy) = {
            let state = self.lock();
            let Some(op) = state.operations.get(operation_id) else {
                return false;
            };
            let strategy = state
                .strategies
                .get(op.last.kind.as_ref())
                .unwrap_or(&state.default_strategy)
                .clone();
            (op.last.clone(), strategy)
        };
        decide(&strategy, &record).is_retry()
    }

    /// How many errors `operation_id` has recorded since its last reset.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::{ErrorRecoveryManager, Severity};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let recovery = ErrorRecoveryManager::default();
    /// recovery.record("op", "net", Severity::Low, "x");
    /// assert_eq!(recovery.errors_of("op"), 1);
    /// assert_eq!(recovery.errors_of("other"), 0);
    /// # }
    /// ```
    pub fn errors_of(&self, operation_id: &str) -> u32 {
        self.lock()
            .operations
            .get(operation_id)
            .map_or(0, |op| op.errors)
    }

    /// Forgets the error count of `operation_id` (call it when the
    /// operation succeeds or is given up); the history and statistics keep
    /// its errors. Returns whether it had any.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::{ErrorRecoveryManager, Severity};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let recovery = ErrorRecoveryManager::default();
    /// recovery.record("op", "net", Severity::Low, "x");
    /// assert!(recovery.reset("op"));
    /// assert!(!recovery.reset("op"));
    /// assert_eq!(recovery.history().len(), 1);
    /// # }
    /// ```
    pub fn reset(&self, operation_id: &str) -> bool {
        let mut state = self.lock();
        match state.operations.remove(operation_id) {
            Some(op) => {
                state.order.remove(&op.touched);
                true
            }
            None => false,
        }
    }

    /// The errors in the history, oldest first.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::{ErrorRecoveryManager, Severity};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let recovery = ErrorRecoveryManager::default();
    /// recovery.record("a", "net", Severity::Low, "first");
    /// recovery.record("b", "net", Severity::Low, "second");
    /// let messages: Vec<_> = recovery.history().into_iter().map(|r| r.message).collect();
    /// assert_eq!(messages, ["first", "second"]);
    /// # }
    /// ```
    pub fn history(&self) -> Vec<ErrorRecord> {
        self.lock().history.iter().cloned().collect()
    }

    /// Empties the history (the all-time statistics stay).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::{ErrorRecoveryManager, Severity};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let recovery = ErrorRecoveryManager::default();
    /// recovery.record("a", "net", Severity::Low, "x");
    /// recovery.clear_history();
    /// assert!(recovery.history().is_empty());
    /// assert_eq!(recovery.statistics().total, 1);
    /// # }
    /// ```
    pub fn clear_history(&self) {
        self.lock().history.clear();
    }

    /// The statistics: totals by kind and by severity (all time), by
    /// operation (over the history).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::{ErrorRecoveryManager, Severity};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let recovery = ErrorRecoveryManager::default();
    /// recovery.record("a", "net", Severity::Low, "x");
    /// let stats = recovery.statistics();
    /// assert_eq!((stats.total, stats.retained), (1, 1));
    /// # }
    /// ```
    pub fn statistics(&self) -> ErrorStatistics {
        let state = self.lock();
        let mut by_operation: HashMap<String, u64> = HashMap::new();
        for record in &state.history {
            *by_operation.entry(record.operation_id.clone()).or_default() += 1;
        }
        ErrorStatistics {
            total: state.total,
            by_kind: state
                .by_kind
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            by_severity: state.by_severity.clone(),
            by_operation,
            retained: state.history.len(),
        }
    }
}

impl State {
    /// Counts the error and returns its record (also pushed to the history).
    fn add(
        &mut self,
        operation_id: &str,
        kind: Cow<'static, str>,
        severity: Severity,
        message: String,
    ) -> ErrorRecord {
        self.clock += 1;
        let touched = self.clock;
        let errors = match self.operations.get_mut(operation_id) {
            Some(op) => {
                self.order.remove(&op.touched);
                op.touched = touched;
                op.errors = op.errors.saturating_add(1);
                op.errors
            }
            None => 1,
        };
        let record = ErrorRecord {
            operation_id: operation_id.to_string(),
            kind,
            severity,
            message,
            at: Instant::now(),
            occurrence: errors,
        };
        match self.operations.get_mut(operation_id) {
            Some(op) => op.last = record.clone(),
            None => {
                self.operations.insert(
                    operation_id.to_string(),
                    OperationState {
                        errors,
                        touched,
                        last: record.clone(),
                    },
                );
            }
        }
        self.order.insert(touched, operation_id.to_string());
        while self.operations.len() > self.config.max_tracked_operations {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.operations.remove(&oldest);
        }

        if self.history.len() >= self.config.history_capacity {
            self.history.pop_front();
        }
        self.history.push_back(record.clone());
        self.total += 1;
        *self.by_kind.entry(record.kind.clone()).or_default() += 1;
        *self.by_severity.entry(severity).or_default() += 1;
        record
    }
}

/// What `strategy` says about `record`.
fn decide(strategy: &RecoveryStrategy, record: &ErrorRecord) -> RecoveryAction {
    match strategy {
        RecoveryStrategy::Retry {
            max_retries,
            delay,
            max_severity,
        } => {
            if record.severity <= *max_severity && record.occurrence <= *max_retries {
                RecoveryAction::Retry {
                    attempt: record.occurrence,
                    delay: delay.delay_for(record.occurrence),
                }
            } else {
                RecoveryAction::Abort
            }
        }
        RecoveryStrategy::Fallback => RecoveryAction::Fallback,
        RecoveryStrategy::Abort => RecoveryAction::Abort,
        RecoveryStrategy::Custom(f) => f(record),
    }
}
