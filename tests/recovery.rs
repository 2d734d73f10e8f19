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
    recovery.set_strategy("net", RecoveryStrategy::retry(3, Duration::from_millis(50)));
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

/// The serialized field names and defaults stay as they were (a config file
/// that worked keeps working), and a misspelt field is refused.
#[test]
fn config_serialized_form_is_stable_and_refuses_unknown_fields() {
    let json = serde_json::to_string(&RecoveryConfig::default()).unwrap();
    assert_eq!(
        json,
        r#"{"history_capacity":1000,"max_tracked_operations":10000}"#
    );
    assert_eq!(
        serde_json::from_str::<RecoveryConfig>(&json).unwrap(),
        RecoveryConfig::default()
    );
    let err = serde_json::from_str::<RecoveryConfig>(r#"{"history_size":10}"#).unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
    assert!(err.to_string().contains("history_size"), "{err}");
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

// ---------------------------------------------------------------------------
// The FaultTolerant coordinator, whose retries the recovery manager decides.

mod fault_tolerant {
    use std::sync::Arc;
    use std::time::Duration;

    use steadfast::coordinator::{
        Coordinator, CoordinatorError, FaultTolerant, FaultTolerantConfig, InMemoryCoordinator,
    };
    use steadfast::recovery::{ErrorRecoveryManager, RecoveryStrategy, Severity};
    use steadfast::retry::RetryPolicy;
    use tokio::time::Instant;

    fn wrap(rank: InMemoryCoordinator) -> FaultTolerant<InMemoryCoordinator> {
        FaultTolerant::new(rank, FaultTolerantConfig::default())
    }

    #[tokio::test(start_paused = true)]
    async fn retries_a_flaky_coordinator_with_backoff() {
        let ranks = InMemoryCoordinator::new(2);
        ranks[0].faults().fail_next(0, 2);
        let start = Instant::now();
        let other = tokio::spawn({
            let r = wrap(ranks[1].clone());
            async move { r.barrier(Duration::from_secs(30)).await }
        });
        let ft = wrap(ranks[0].clone());
        ft.barrier(Duration::from_secs(30)).await.unwrap();
        other.await.unwrap().unwrap();
        // default policy: 1 s, then 2 s
        assert_eq!(start.elapsed(), Duration::from_secs(3));

        let stats = ft.recovery().statistics();
        assert_eq!(stats.total, 2);
        assert_eq!(stats.by_kind["coordinator.barrier"], 2);
        assert_eq!(stats.by_severity[&Severity::Medium], 2);
        let history = ft.recovery().history();
        assert!(
            history[0].message.contains("injected failure"),
            "{history:?}"
        );
        assert_eq!((history[0].occurrence, history[1].occurrence), (1, 2));
        // the operation's count was reset when it succeeded
        assert!(!ft.recovery().should_retry(&history[0].operation_id));
        assert_eq!(ft.recovery().errors_of(&history[0].operation_id), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_retries() {
        let ranks = InMemoryCoordinator::new(1);
        ranks[0].faults().fail_next(0, 10);
        let ft = wrap(ranks[0].clone());
        let start = Instant::now();
        let err = ft.signal("ready", vec![1]).await.unwrap_err();
        assert!(matches!(err, CoordinatorError::Unavailable { .. }), "{err}");
        assert_eq!(start.elapsed(), Duration::from_secs(1 + 2 + 4));
        let stats = ft.recovery().statistics();
        assert_eq!(stats.total, 4); // the first attempt and 3 retries
        assert_eq!(stats.by_kind["coordinator.signal"], 4);
        // 6 injected failures are left: the wrapper made exactly 4 attempts
        for _ in 0..6 {
            assert!(ranks[0].signal("ready", vec![1]).await.is_err());
        }
        assert_eq!(ranks[0].signal("ready", vec![1]).await.unwrap(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_at_once_on_a_fatal_error() {
        let ranks = InMemoryCoordinator::new(2);
        let ft = wrap(ranks[0].clone());
        let start = Instant::now();
        let err = ft
            .wait_for_rank(9, "ready", 1, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                CoordinatorError::InvalidRank {
                    rank: 9,
                    world_size: 2
                }
            ),
            "{err}"
        );
        assert_eq!(start.elapsed(), Duration::ZERO);
        let history = ft.recovery().history();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].kind, "coordinator.wait_for_rank");
        assert_eq!(history[0].severity, Severity::Critical);
        assert!(history[0].message.contains("out of range"));
    }

    #[tokio::test(start_paused = true)]
    async fn does_not_retry_a_collective_that_timed_out() {
        let ranks = InMemoryCoordinator::new(2);
        ranks[0].faults().set_absent(1, true);
        let ft = wrap(ranks[0].clone());
        let start = Instant::now();
        let err = ft.barrier(Duration::from_secs(5)).await.unwrap_err();
        // the inner coordinator's own timeout, naming the missing rank
        assert!(matches!(err, CoordinatorError::Timeout { .. }), "{err}");
        assert_eq!(err.missing_ranks(), &[1]);
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        let history = ft.recovery().history();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].severity, Severity::High);
    }

    #[tokio::test(start_paused = true)]
    async fn bounds_signal_with_op_timeout() {
        let ranks = InMemoryCoordinator::new(1);
        ranks[0].faults().set_delay(0, Duration::from_secs(60)); // a hanging backend
        let config = FaultTolerantConfig::builder()
            .op_timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let ft = FaultTolerant::new(ranks[0].clone(), config);
        let start = Instant::now();
        let err = ft.signal("ready", vec![]).await.unwrap_err();
        assert!(
            matches!(err, CoordinatorError::Timeout { operation: "signal", after, .. } if after == Duration::from_secs(2)),
            "{err}"
        );
        assert_eq!(start.elapsed(), Duration::from_secs(2), "not retried");
        assert_eq!(ft.recovery().statistics().total, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn bounds_a_hanging_collective_at_its_timeout_plus_grace() {
        /// A coordinator whose barrier never returns, whatever its timeout
        /// (an injected delay counts against the call's timeout, so it
        /// cannot make one hang).
        #[derive(Debug)]
        struct Hangs;
        #[async_trait::async_trait]
        impl Coordinator for Hangs {
            fn rank(&self) -> usize {
                0
            }
            fn world_size(&self) -> usize {
                1
            }
            fn name(&self) -> &str {
                "hangs"
            }
            async fn barrier(&self, _: Duration) -> Result<(), CoordinatorError> {
                std::future::pending().await
            }
            async fn all_gather(
                &self,
                _: Vec<u8>,
                _: Duration,
            ) -> Result<Vec<Vec<u8>>, CoordinatorError> {
                std::future::pending().await
            }
            async fn signal(&self, _: &str, _: Vec<u8>) -> Result<u64, CoordinatorError> {
                std::future::pending().await
            }
            async fn wait_for_rank(
                &self,
                _: usize,
                _: &str,
                _: u64,
                _: Duration,
            ) -> Result<steadfast::coordinator::Signal, CoordinatorError> {
                std::future::pending().await
            }
        }
        let config = FaultTolerantConfig::builder()
            .grace(Duration::from_millis(500))
            .build()
            .unwrap();
        let ft = FaultTolerant::new(Hangs, config);
        let start = Instant::now();
        let err = ft.barrier(Duration::from_secs(3)).await.unwrap_err();
        assert!(matches!(err, CoordinatorError::Timeout { .. }), "{err}");
        assert_eq!(start.elapsed(), Duration::from_millis(3_500));
    }

    #[tokio::test(start_paused = true)]
    async fn retried_all_gather_keeps_rounds_aligned() {
        let ranks = InMemoryCoordinator::new(3);
        ranks[0].faults().fail_next(2, 1);
        let tasks: Vec<_> = ranks
            .iter()
            .cloned()
            .map(|r| {
                tokio::spawn(async move {
                    let ft = wrap(r);
                    let me = ft.rank() as u8;
                    let all = ft.all_gather(vec![me, me], Duration::from_secs(10)).await?;
                    ft.barrier(Duration::from_secs(10)).await?;
                    let again = ft
                        .all_gather(vec![me * 10], Duration::from_secs(10))
                        .await?;
                    Ok::<_, CoordinatorError>((all, again, ft.recovery().statistics().total))
                })
            })
            .collect();
        for (r, task) in tasks.into_iter().enumerate() {
            let (all, again, errors) = task.await.unwrap().unwrap();
            assert_eq!(all, vec![vec![0, 0], vec![1, 1], vec![2, 2]]);
            assert_eq!(again, vec![vec![0], vec![10], vec![20]]);
            assert_eq!(errors, u64::from(r == 2));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn honours_the_retry_budget() {
        let ranks = InMemoryCoordinator::new(1);
        ranks[0].faults().fail_next(0, 10);
        let policy = RetryPolicy::builder()
            .max_retries(10)
            .max_elapsed(Duration::from_secs(5))
            .build()
            .unwrap();
        let config = FaultTolerantConfig::builder()
            .retry(policy)
            .build()
            .unwrap();
        let ft = FaultTolerant::new(ranks[0].clone(), config);
        let start = Instant::now();
        assert!(ft.barrier(Duration::from_secs(1)).await.is_err());
        // waits 1 s and 2 s; the next 4 s would pass the 5 s budget
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        assert_eq!(ft.recovery().statistics().total, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_strategy_set_by_the_caller_wins() {
        let recovery = ErrorRecoveryManager::default();
        recovery.set_strategy("coordinator.barrier", RecoveryStrategy::Abort);
        let ranks = InMemoryCoordinator::new(1);
        ranks[0].faults().fail_next(0, 1);
        let ft = FaultTolerant::with_recovery(
            ranks[0].clone(),
            FaultTolerantConfig::default(),
            recovery.clone(),
        );
        assert!(ft.barrier(Duration::from_secs(1)).await.is_err());
        assert_eq!(recovery.statistics().total, 1);
        // other kinds got the wrapper's retry strategy
        assert!(matches!(
            recovery.strategy("coordinator.all_gather"),
            RecoveryStrategy::Retry {
                max_retries: 3,
                max_severity: Severity::Medium,
                ..
            }
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn wraps_trait_objects_and_is_one() {
        let ranks = InMemoryCoordinator::new(1);
        let inner: Arc<dyn Coordinator> = Arc::new(ranks[0].clone());
        let ft = FaultTolerant::new(inner, FaultTolerantConfig::default());
        assert!(ft.name().contains("in-memory"));
        assert_eq!(ft.name(), "fault-tolerant(in-memory)");
        let outer: Arc<dyn Coordinator> = Arc::new(ft);
        assert_eq!(outer.signal("k", vec![7]).await.unwrap(), 1);
        let signal = outer
            .wait_for_rank(0, "k", 1, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(signal.payload, vec![7]);
        assert_eq!(outer.world_size(), 1);
    }

    #[test]
    fn is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<FaultTolerant<InMemoryCoordinator>>();
        assert_send_sync::<FaultTolerant<Arc<dyn Coordinator>>>();
        assert_send_sync::<FaultTolerantConfig>();
    }

    #[test]
    fn config_serde_round_trip() {
        let config = FaultTolerantConfig::builder()
            .op_timeout(Duration::from_millis(1500))
            .grace(Duration::from_secs(2))
            .build()
            .unwrap();
        let json = serde_json::to_string(&config).unwrap();
        assert!(json.contains("\"1s500ms\""), "{json}");
        assert_eq!(
            serde_json::from_str::<FaultTolerantConfig>(&json).unwrap(),
            config
        );
        assert!(serde_json::from_str::<FaultTolerantConfig>(r#"{"op_timeout":"0s"}"#).is_err());
    }
}
