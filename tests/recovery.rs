//! Integration tests of the ErrorRecoveryManager: strategies, retry
//! counting, the bounded history, statistics, thread safety.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use steadfast::recovery::{
    Classify, ErrorRecord, ErrorRecoveryManager, ErrorStatistics, RecoveryAction, RecoveryConfig,
    RecoveryStrategy, RetryDelay, Severity,
};
use steadfast::retry::RetryPolicy;
use tokio::time::Instant;

fn manager(capacity: usize) -> ErrorRecoveryManager {
    ErrorRecoveryManager::new(
        RecoveryConfig::builder()
            .history_capacity(capacity)
            .build()
            .unwrap(),
    )
}

#[tokio::test(start_paused = true)]
async fn unknown_kinds_abort_by_default() {
    let recovery = ErrorRecoveryManager::default();
    assert_eq!(
        recovery.record("op", "never.registered", Severity::Low, "x"),
        RecoveryAction::Abort
    );
    assert!(!recovery.should_retry("op"));
}

#[tokio::test(start_paused = true)]
async fn retry_counts_per_operation_until_max_retries() {
    let recovery = ErrorRecoveryManager::default();
    recovery.set_strategy(
        "net",
        RecoveryStrategy::retry(3, Duration::from_millis(50)),
    );
    for attempt in 1..=3 {
        assert_eq!(
            recovery.record("a", "net", Severity::Medium, "reset"),
            RecoveryAction::Retry {
                attempt,
                delay: Duration::from_millis(50)
            }
        );
        assert!(recovery.should_retry("a"), "after error {attempt}");
    }
    // another operation has its own count
    assert!(recovery
        .record("b", "net", Severity::Medium, "reset")
        .is_retry());
    assert_eq!(recovery.errors_of("b"), 1);

    assert_eq!(
        recovery.record("a", "net", Severity::Medium, "reset"),
        RecoveryAction::Abort
    );
    assert!(!recovery.should_retry("a"));
    assert_eq!(recovery.errors_of("a"), 4);

    assert!(recovery.reset("a"));
    assert_eq!(recovery.errors_of("a"), 0);
    assert!(!recovery.should_retry("a"));
    assert_eq!(
        recovery.record("a", "net", Severity::Medium, "reset"),
        RecoveryAction::Retry {
            attempt: 1,
            delay: Duration::from_millis(50)
        }
    );
}

#[tokio::test(start_paused = true)]
async fn retry_delays_follow_the_policy_backoff() {
    let policy = RetryPolicy::builder()
        .max_retries(4)
        .initial_delay(Duration::from_millis(100))
        .max_delay(Duration::from_millis(500))
        .build()
        .unwrap();
    let recovery = ErrorRecoveryManager::default();
    recovery.set_strategy("io", RecoveryStrategy::retry_with_policy(policy.clone()));
    let expected: Vec<Duration> = policy.backoff().collect();
    assert_eq!(expected, [100, 200, 400, 500].map(Duration::from_millis));
    for (i, delay) in expected.iter().enumerate() {
        assert_eq!(
            recovery.record("op", "io", Severity::High, "eio"),
            RecoveryAction::Retry {
                attempt: i as u32 + 1,
                delay: *delay
            }
        );
    }
    assert_eq!(
        recovery.record("op", "io", Severity::High, "eio"),
        RecoveryAction::Abort
    );
}

#[tokio::test(start_paused = true)]
async fn severity_above_the_strategy_limit_aborts() {
    let recovery = ErrorRecoveryManager::default();
    recovery.set_strategy(
        "net",
        RecoveryStrategy::Retry {
            max_retries: 5,
            delay: RetryDelay::Fixed(Duration::ZERO),
            max_severity: Severity::Medium,
        },
    );
    assert!(recovery.record("a", "net", Severity::Low, "").is_retry());
    assert!(recovery.record("a", "net", Severity::Medium, "").is_retry());
    assert_eq!(
        recovery.record("a", "net", Severity::High, ""),
        RecoveryAction::Abort
    );
    assert!(!recovery.should_retry("a"));
    // the default Retry strategies never retry a critical error
    recovery.set_strategy("disk", RecoveryStrategy::retry(5, Duration::ZERO));
    assert_eq!(
        recovery.record("b", "disk", Severity::Critical, ""),
        RecoveryAction::Abort
    );
}

#[tokio::test(start_paused = true)]
async fn fallback_and_custom_strategies() {
    let recovery = ErrorRecoveryManager::default();
    recovery.set_strategy("cache", RecoveryStrategy::Fallback);
    assert_eq!(
        recovery.record("c", "cache", Severity::Low, "miss"),
        RecoveryAction::Fallback
    );
    assert!(!recovery.should_retry("c"));

    let calls = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&calls);
    let probe = recovery.clone();
    recovery.set_strategy(
        "custom",
        RecoveryStrategy::custom(move |record: &ErrorRecord| {
            seen.fetch_add(1, Ordering::SeqCst);
            // runs outside the manager's lock: calling back in must not deadlock
            let _ = probe.statistics();
            if record.occurrence < 3 && record.message.contains("retry") {
                RecoveryAction::Retry {
                    attempt: record.occurrence,
                    delay: Duration::from_secs(u64::from(record.occurrence)),
                }
            } else {
                RecoveryAction::Fallback
            }
        }),
    );
    assert_eq!(
        recovery.record("x", "custom", Severity::Medium, "please retry"),
        RecoveryAction::Retry {
            attempt: 1,
            delay: Duration::from_secs(1)
        }
    );
    assert!(recovery.should_retry("x")); // asks the function about the last error
    assert_eq!(
        recovery.record("x", "custom", Severity::Medium, "give up"),
        RecoveryAction::Fallback
    );
    assert!(!recovery.should_retry("x"));
    assert_eq!(calls.load(Ordering::SeqCst), 4);

    recovery.set_default_strategy(RecoveryStrategy::Fallback);
    assert_eq!(
        recovery.record("y", "other", Severity::High, ""),
        RecoveryAction::Fallback
    );
}

#[tokio::test(start_paused = true)]
async fn history_is_bounded_and_drops_the_oldest() {
    let recovery = manager(5);
    let start = Instant::now();
    for i in 0..12 {
        tokio::time::advance(Duration::from_secs(1)).await;
        recovery.record(&format!("op-{i}"), "k", Severity::Low, format!("error {i}"));
    }
    let history = recovery.history();
    assert_eq!(history.len(), 5);
    let messages: Vec<_> = history.iter().map(|r| r.message.as_str()).collect();
    assert_eq!(
        messages,
        ["error 7", "error 8", "error 9", "error 10", "error 11"]
    );
    assert_eq!(history[0].at, start + Duration::from_secs(8));
    let stats = recovery.statistics();
    assert_eq!(stats.total, 12);
    assert_eq!(stats.retained, 5);
    assert_eq!(stats.by_operation.len(), 5);
    assert!(!stats.by_operation.contains_key("op-0"));
}

#[tokio::test(start_paused = true)]
async fn statistics_by_kind_severity_and_operation() {
    let recovery = ErrorRecoveryManager::default();
    recovery.record("load-1", "db", Severity::Medium, "timeout");
    recovery.record("load-1", "db", Severity::High, "refused");
    recovery.record("load-2", "db", Severity::Medium, "timeout");
    recovery.record("load-2", "cache", Severity::Low, "miss");
    recovery.record("save-1", "disk", Severity::Critical, "checksum");
    let stats: ErrorStatistics = recovery.statistics();
    assert_eq!(stats.total, 5);
    assert_eq!(stats.by_kind.len(), 3);
    assert_eq!(stats.by_kind["db"], 3);
    assert_eq!(stats.by_kind["cache"], 1);
    assert_eq!(stats.by_kind["disk"], 1);
    let severities: Vec<_> = stats.by_severity.into_iter().collect();
    assert_eq!(
        severities,
        [
            (Severity::Low, 1),
            (Severity::Medium, 2),
            (Severity::High, 1),
            (Severity::Critical, 1)
        ]
    );
    assert_eq!(stats.by_operation["load-1"], 2);
    assert_eq!(stats.by_operation["load-2"], 2);
    assert_eq!(stats.by_operation["save-1"], 1);
    // reset forgets the count, not the statistics
    recovery.reset("load-1");
    assert_eq!(recovery.statistics().by_operation["load-1"], 2);
}

#[tokio::test(start_paused = true)]
async fn tracked_operations_are_bounded() {
    let recovery = ErrorRecoveryManager::new(
        RecoveryConfig::builder()
            .max_tracked_operations(3)
            .build()
            .unwrap(),
    );
    for op in ["a", "b", "c"] {
        recovery.record(op, "k", Severity::Low, "");
    }
    recovery.record("a", "k", Severity::Low, ""); // "a" is now the most recent
    recovery.record("d", "k", Severity::Low, ""); // forgets "b", the oldest
    assert_eq!(recovery.errors_of("a"), 2);
    assert_eq!(recovery.errors_of("b"), 0);
    assert_eq!(recovery.errors_of("c"), 1);
    assert_eq!(recovery.errors_of("d"), 1);
}

#[derive(Debug)]
enum AppError {
    Busy,
    Corrupt { file: String },
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppError::Busy => f.write_str("busy"),
            AppError::Corrupt { file } => write!(f, "{file} is corrupt"),
        }
    }
}

impl Classify for AppError {
    fn kind(&self) -> Cow<'static, str> {
        match self {
            AppError::Busy => "app.busy".into(),
            AppError::Corrupt { file } => format!("app.corrupt.{file}").into(),
        }
    }
    fn severity(&self) -> Severity {
        match self {
            AppError::Busy => Severity::Medium,
            AppError::Corrupt { .. } => Severity::Critical,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn classified_errors() {
    let recovery = ErrorRecoveryManager::default();
    recovery.set_strategy("app.busy", RecoveryStrategy::retry(1, Duration::ZERO));
    assert!(recovery.record_error("op", &AppError::Busy).is_retry());
    let corrupt = AppError::Corrupt {
        file: "index".into(),
    };
    assert_eq!(recovery.record_error("op", &corrupt), RecoveryAction::Abort);
    let last = recovery.history().pop().unwrap();
    assert_eq!(last.kind, "app.corrupt.index");
    assert_eq!(last.severity, Severity::Critical);
    assert_eq!(last.message, "index is corrupt");
    assert_eq!(last.occurrence, 2);
}

#[test]
fn concurrent_recording_from_many_threads() {
    let recovery = manager(100);
    recovery.set_strategy("k", RecoveryStrategy::retry(1_000_000, Duration::ZERO));
    std::thread::scope(|s| {
        for t in 0..4 {
            let recovery = recovery.clone();
            s.spawn(move || {
                for _ in 0..1_000 {
                    recovery.record(&format!("op-{t}"), "k", Severity::Low, "x");
                }
            });
        }
    });
    let stats = recovery.statistics();
    assert_eq!(stats.total, 4_000);
    assert_eq!(stats.retained, 100);
    for t in 0..4 {
        assert_eq!(recovery.errors_of(&format!("op-{t}")), 1_000);
    }
}

#[test]
fn config_serde_round_trip_and_validation() {
    let config = RecoveryConfig::builder()
        .history_capacity(64)
        .max_tracked_operations(128)
        .build()
        .unwrap();
    let json = serde_json::to_string(&config).unwrap();
    assert_eq!(
        serde_json::from_str::<RecoveryConfig>(&json).unwrap(),
        config
    );
    assert_eq!(
        serde_json::from_str::<RecoveryConfig>("{}").unwrap(),
        RecoveryConfig::default()
    );
    let err = serde_json::from_str::<RecoveryConfig>(r#"{"history_capacity":0}"#).unwrap_err();
    assert!(err.to_string().contains("history_capacity"), "{err}");
}

#[test]
fn public_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ErrorRecoveryManager>();
    assert_send_sync::<RecoveryStrategy>();
    assert_send_sync::<RecoveryAction>();
    assert_send_sync::<ErrorRecord>();
    assert_send_sync::<ErrorStatistics>();
    assert_send_sync::<RecoveryConfig>();
}
