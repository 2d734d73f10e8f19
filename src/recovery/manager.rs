//! The [`ErrorRecoveryManager`]: per-kind strategies, per-operation error
//! counts, a bounded history and all-time statistics, behind one mutex.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::time::Instant;

use super::strategy::decide;
use super::{Classify, ErrorRecord, RecoveryAction, RecoveryConfig, RecoveryStrategy, Severity};

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
    /// Errors by the action decided, for the metrics.
    #[cfg(feature = "metrics")]
    metrics: Arc<crate::metrics::ErrorActionMetrics>,
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
                history: VecDeque::with_capacity(config.history_capacity()),
                operations: HashMap::new(),
                order: BTreeMap::new(),
                clock: 0,
                total: 0,
                by_kind: HashMap::new(),
                by_severity: BTreeMap::new(),
            })),
            #[cfg(feature = "metrics")]
            metrics: Arc::new(crate::metrics::ErrorActionMetrics::new()),
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
        #[cfg(feature = "metrics")]
        self.metrics.decided(&action);
        // One span per recorded error and the action decided for it; the
        // event below is inside it.
        let span = tracing::info_span!(
            target: "steadfast::recovery",
            "steadfast.recovery.error",
            operation = %record.operation_id,
            kind = %record.kind,
            severity = %record.severity,
            occurrence = record.occurrence,
            strategy = strategy_name(&strategy),
            action = %action,
        )
        .entered();
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
        drop(span);
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
        while self.operations.len() > self.config.max_tracked_operations() {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.operations.remove(&oldest);
        }

        if self.history.len() >= self.config.history_capacity() {
            self.history.pop_front();
        }
        self.history.push_back(record.clone());
        self.total += 1;
        *self.by_kind.entry(record.kind.clone()).or_default() += 1;
        *self.by_severity.entry(severity).or_default() += 1;
        record
    }
}

/// The `strategy` field of a `steadfast.recovery.error` span.
fn strategy_name(strategy: &RecoveryStrategy) -> &'static str {
    match strategy {
        RecoveryStrategy::Retry { .. } => "retry",
        RecoveryStrategy::Fallback => "fallback",
        RecoveryStrategy::Abort => "abort",
        RecoveryStrategy::Custom(_) => "custom",
    }
}
