//! Timeouts on paused time: `TimeoutHandler::run`, the coordinator
//! operations, and the per-operation deadlines of `TimeoutManager`.

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::poll;
use steadfast::coordinator::{Coordinator, CoordinatorError, InMemoryCoordinator, Signal};
use steadfast::retry::Transient;
use steadfast::timeout::{
    OperationGuard, Timed, TimeoutConfig, TimeoutError, TimeoutHandler, TimeoutManager,
};
use tokio::time::{advance, Instant};

mod common;
use common::capture::Capture;

const SEC: Duration = Duration::from_secs(1);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn handler_with_default(timeout: Duration) -> TimeoutHandler {
    TimeoutHandler::new(
        TimeoutConfig::builder()
            .default_timeout(timeout)
            .build()
            .unwrap(),
    )
}

// ---------------------------------------------------------------- run()

#[tokio::test(start_paused = true)]
async fn run_returns_the_output_when_the_future_completes_first() {
    let start = Instant::now();
    let out = TimeoutHandler::default()
        .run(secs(2), async {
            tokio::time::sleep(SEC).await;
            "done"
        })
        .await;
    assert_eq!(out.unwrap(), "done");
    assert_eq!(start.elapsed(), SEC);
}

#[tokio::test(start_paused = true)]
async fn run_fires_exactly_at_the_deadline() {
    let timed = TimeoutHandler::default().run(secs(5), std::future::pending::<()>());
    tokio::pin!(timed);
    assert!(poll!(&mut timed).is_pending());
    advance(secs(5) - Duration::from_millis(1)).await;
    assert!(poll!(&mut timed).is_pending(), "fired before the deadline");
    advance(Duration::from_millis(1)).await;
    match poll!(&mut timed) {
        std::task::Poll::Ready(Err(TimeoutError::Elapsed { operation, after })) => {
            assert_eq!(after, secs(5));
            assert_eq!(operation, None);
        }
        other => panic!("expected Elapsed at the deadline, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn run_default_uses_ten_minutes() {
    let timeouts = TimeoutHandler::default();
    assert_eq!(timeouts.default_timeout(), Duration::from_secs(600));
    let start = Instant::now();
    let just_in_time = timeouts.run_default(tokio::time::sleep(secs(599))).await;
    assert!(just_in_time.is_ok());
    let start_late = Instant::now();
    let err = timeouts
        .run_default(std::future::pending::<()>())
        .await
        .unwrap_err();
    assert!(
        matches!(err, TimeoutError::Elapsed { after, .. } if after == secs(600)),
        "{err:?}"
    );
    assert_eq!(start_late.elapsed(), secs(600));
    assert_eq!(start.elapsed(), secs(1199));
}

#[tokio::test(start_paused = true)]
async fn run_default_follows_the_configured_timeout() {
    let start = Instant::now();
    let err = handler_with_default(secs(3))
        .run_default(std::future::pending::<()>())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "operation timed out after 3s");
    assert_eq!(start.elapsed(), secs(3));
}

#[tokio::test(start_paused = true)]
async fn a_zero_duration_still_polls_the_future_once() {
    let timeouts = TimeoutHandler::default();
    assert_eq!(timeouts.run(Duration::ZERO, async { 5 }).await.unwrap(), 5);
    let err = timeouts
        .run(Duration::ZERO, std::future::pending::<()>())
        .await
        .unwrap_err();
    assert!(matches!(err, TimeoutError::Elapsed { after, .. } if after.is_zero()));
}

#[tokio::test(start_paused = true)]
async fn timed_futures_can_be_spawned() {
    let timed: Timed<_> = {
        let timeouts = TimeoutHandler::default();
        timeouts.run(secs(1), async { 1 + 1 })
    }; // the handler is gone: the future borrows nothing from it
    assert_eq!(tokio::spawn(timed).await.unwrap().unwrap(), 2);
}

// ------------------------------------------------------------ tracing

#[tokio::test(start_paused = true)]
async fn a_timeout_that_fires_is_logged_as_a_warning() {
    let timeouts = TimeoutHandler::default();
    let manager = TimeoutManager::new();
    let logs = Capture::start();

    timeouts.run(secs(1), async {}).await.unwrap();
    assert!(logs.events().is_empty(), "no event on success");

    timeouts
        .run(secs(1), std::future::pending::<()>())
        .await
        .unwrap_err();
    manager
        .start("op".to_string(), secs(1))
        .run(std::future::pending::<()>())
        .await
        .unwrap_err();

    let warnings = logs.at("steadfast::timeout", tracing::Level::WARN);
    assert_eq!(warnings.len(), 2, "{:?}", logs.events());
    assert!(warnings
        .iter()
        .all(|event| event.message().contains("timed out")));
}

// ------------------------------------------------------------ config

#[test]
fn config_defaults_and_validation() {
    let config = TimeoutConfig::default();
    assert_eq!(config.default_timeout(), secs(600));
    assert_eq!(config.coordinator_grace(), SEC);
    assert_eq!(TimeoutConfig::builder().build().unwrap(), config);

    let err = TimeoutConfig::builder()
        .default_timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "default_timeout");

    let no_grace = TimeoutConfig::builder()
        .coordinator_grace(Duration::ZERO)
        .build()
        .unwrap();
    assert_eq!(no_grace.coordinator_grace(), Duration::ZERO);
}

#[test]
fn config_round_trips_through_serde_with_readable_durations() {
    let config = TimeoutConfig::builder()
        .default_timeout(Duration::from_secs(90))
        .coordinator_grace(Duration::from_millis(250))
        .build()
        .unwrap();
    let json = serde_json::to_string(&config).unwrap();
    assert_eq!(
        json,
        r#"{"default_timeout":"1m30s","coordinator_grace":"250ms"}"#
    );
    let back: TimeoutConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, config);

    let defaults: TimeoutConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(defaults, TimeoutConfig::default());
    let seconds: TimeoutConfig = serde_json::from_str(r#"{"default_timeout": 45}"#).unwrap();
    assert_eq!(seconds.default_timeout(), secs(45));
}

#[test]
fn config_from_a_file_is_validated() {
    let zero = serde_json::from_str::<TimeoutConfig>(r#"{"default_timeout": "0s"}"#);
    assert!(zero.unwrap_err().to_string().contains("default_timeout"));
    let unknown =
        serde_json::from_str::<TimeoutConfig>(r#"{"default_timeout": "1s", "retries": 3}"#);
    assert!(unknown.is_err());
    let garbage = serde_json::from_str::<TimeoutConfig>(r#"{"default_timeout": "soon"}"#);
    assert!(garbage.is_err());
}

// ------------------------------------------------------- coordinator

#[tokio::test(start_paused = true)]
async fn barrier_timeout_names_the_missing_rank() {
    let ranks = InMemoryCoordinator::new(4);
    let timeouts = TimeoutHandler::default();
    let start = Instant::now();
    // Rank 3 never calls the barrier.
    let waits: Vec<_> = ranks[..3]
        .iter()
        .cloned()
        .map(|rank| tokio::spawn(async move { timeouts.barrier(&rank, Some(secs(5))).await }))
        .collect();
    for wait in waits {
        let err = wait.await.unwrap().unwrap_err();
        assert_eq!(err.missing_ranks(), &[3], "{err}");
        assert!(err.is_elapsed());
        assert!(err.is_transient());
        assert!(matches!(
            err,
            TimeoutError::Coordinator {
                operation: "barrier",
                ..
            }
        ));
        let source = err
            .source()
            .unwrap()
            .downcast_ref::<CoordinatorError>()
            .unwrap();
        assert_eq!(source.missing_ranks(), &[3]);
        assert!(source.to_string().contains("[3]"), "{source}");
    }
    assert_eq!(start.elapsed(), secs(5));
}

#[tokio::test(start_paused = true)]
async fn barrier_without_a_timeout_uses_the_default() {
    let ranks = InMemoryCoordinator::new(2);
    let timeouts = handler_with_default(secs(30));
    let start = Instant::now();
    let err = timeouts.barrier(&ranks[0], None).await.unwrap_err();
    assert_eq!(err.missing_ranks(), &[1]);
    assert_eq!(start.elapsed(), secs(30));
}

#[tokio::test(start_paused = true)]
async fn a_delayed_rank_within_the_timeout_succeeds() {
    let ranks = InMemoryCoordinator::new(4);
    ranks[0].faults().set_delay(3, secs(3));
    let timeouts = TimeoutHandler::default();
    let start = Instant::now();
    let waits: Vec<_> = ranks
        .iter()
        .cloned()
        .map(|rank| tokio::spawn(async move { timeouts.barrier(&rank, Some(secs(5))).await }))
        .collect();
    for wait in waits {
        wait.await.unwrap().unwrap();
    }
    assert_eq!(start.elapsed(), secs(3));
}

#[tokio::test(start_paused = true)]
async fn all_gather_is_bounded_and_ordered() {
    let ranks = InMemoryCoordinator::new(3);
    let timeouts = TimeoutHandler::default();
    let waits: Vec<_> = ranks
        .iter()
        .cloned()
        .map(|rank| {
            tokio::spawn(async move {
                let data = vec![rank.rank() as u8 * 10];
                timeouts.all_gather(&rank, data, Some(secs(5))).await
            })
        })
        .collect();
    for wait in waits {
        assert_eq!(
            wait.await.unwrap().unwrap(),
            vec![vec![0], vec![10], vec![20]]
        );
    }
}

#[tokio::test(start_paused = true)]
async fn wait_for_rank_returns_when_the_rank_signals_and_not_before() {
    let ranks = InMemoryCoordinator::new(2);
    let start = Instant::now();
    let signaller = ranks[1].clone();
    tokio::spawn(async move {
        tokio::time::sleep(secs(2)).await;
        signaller
            .signal("written", b"shard-1".to_vec())
            .await
            .unwrap();
    });
    tokio::task::yield_now().await; // the signaller starts its sleep at t = 0
    let timeouts = TimeoutHandler::default();
    let waiting = timeouts.wait_for_rank(&ranks[0], 1, "written", Some(secs(10)));
    tokio::pin!(waiting);
    assert!(poll!(&mut waiting).is_pending());
    advance(secs(2) - Duration::from_millis(1)).await;
    assert!(
        poll!(&mut waiting).is_pending(),
        "returned before the signal"
    );
    let signal: Signal = waiting.await.unwrap();
    assert_eq!(start.elapsed(), secs(2));
    assert_eq!(signal.seq, 1);
    assert_eq!(signal.payload, b"shard-1");
}

#[tokio::test(start_paused = true)]
async fn wait_for_rank_returns_at_once_when_the_rank_already_signalled() {
    let ranks = InMemoryCoordinator::new(2);
    ranks[1].signal("ready", b"1".to_vec()).await.unwrap();
    ranks[1].signal("ready", b"2".to_vec()).await.unwrap();
    let start = Instant::now();
    let signal = TimeoutHandler::default()
        .wait_for_rank(&ranks[0], 1, "ready", Some(secs(10)))
        .await
        .unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!((signal.seq, signal.payload), (2, b"2".to_vec()));
}

#[tokio::test(start_paused = true)]
async fn wait_for_rank_times_out_naming_the_rank() {
    let ranks = InMemoryCoordinator::new(3);
    let start = Instant::now();
    let err = TimeoutHandler::default()
        .wait_for_rank(&ranks[0], 2, "ready", Some(secs(4)))
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), secs(4));
    assert_eq!(err.missing_ranks(), &[2]);
    assert!(err.is_elapsed());
    assert!(matches!(
        err,
        TimeoutError::Coordinator {
            operation: "wait_for_rank",
            source: CoordinatorError::Timeout { .. },
        }
    ));
}

#[tokio::test(start_paused = true)]
async fn coordinator_errors_pass_through_with_their_facts() {
    let ranks = InMemoryCoordinator::new(2);
    let timeouts = TimeoutHandler::default();

    let err = timeouts
        .wait_for_rank(&ranks[0], 9, "k", Some(SEC))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        TimeoutError::Coordinator {
            source: CoordinatorError::InvalidRank {
                rank: 9,
                world_size: 2
            },
            ..
        }
    ));
    assert!(!err.is_transient());
    assert!(!err.is_elapsed());

    ranks[0].faults().fail_next(0, 1);
    let err = timeouts.barrier(&ranks[0], Some(SEC)).await.unwrap_err();
    assert!(matches!(
        err,
        TimeoutError::Coordinator {
            source: CoordinatorError::Unavailable { .. },
            ..
        }
    ));
    assert!(err.is_transient());
    assert!(!err.is_elapsed());
}

/// A coordinator whose waiting operations never return, whatever their
/// timeout.
#[derive(Debug)]
struct Unresponsive;

#[async_trait]
impl Coordinator for Unresponsive {
    fn rank(&self) -> usize {
        0
    }
    fn world_size(&self) -> usize {
        2
    }
    fn name(&self) -> &str {
        "unresponsive"
    }
    async fn barrier(&self, _timeout: Duration) -> Result<(), CoordinatorError> {
        std::future::pending().await
    }
    async fn all_gather(
        &self,
        _data: Vec<u8>,
        _timeout: Duration,
    ) -> Result<Vec<Vec<u8>>, CoordinatorError> {
        std::future::pending().await
    }
    async fn signal(&self, _key: &str, _payload: Vec<u8>) -> Result<u64, CoordinatorError> {
        Ok(1)
    }
    async fn wait_for_rank(
        &self,
        _rank: usize,
        _key: &str,
        _min_seq: u64,
        _timeout: Duration,
    ) -> Result<Signal, CoordinatorError> {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_coordinator_that_ignores_its_timeout_is_abandoned_after_the_grace() {
    let timeouts = TimeoutHandler::new(
        TimeoutConfig::builder()
            .coordinator_grace(secs(2))
            .build()
            .unwrap(),
    );
    let start = Instant::now();
    let err = timeouts
        .barrier(&Unresponsive, Some(secs(5)))
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), secs(7));
    match err {
        TimeoutError::Elapsed { operation, after } => {
            assert_eq!(operation.as_deref(), Some("barrier"));
            assert_eq!(after, secs(7));
        }
        other => panic!("expected Elapsed, got {other:?}"),
    }
    let shared: Arc<dyn Coordinator> = Arc::new(Unresponsive);
    let err = timeouts
        .wait_for_rank(&shared, 1, "k", Some(SEC))
        .await
        .unwrap_err();
    assert!(err.is_elapsed());
    assert!(err.is_transient());
}

// ------------------------------------------------------ TimeoutManager

#[tokio::test(start_paused = true)]
async fn remaining_and_deadline_follow_paused_time() {
    let manager: TimeoutManager = TimeoutManager::new();
    let start = Instant::now();
    let guard = manager.start("op".to_string(), secs(5));
    assert_eq!(manager.deadline("op"), Some(start + secs(5)));
    assert_eq!(manager.remaining("op"), Some(secs(5)));
    advance(secs(2)).await;
    assert_eq!(manager.remaining("op"), Some(secs(3)));
    assert_eq!(guard.remaining(), secs(3));
    advance(secs(4)).await;
    // Expired, but its guard is alive: still there, with no time left.
    assert_eq!(manager.remaining("op"), Some(Duration::ZERO));
    assert_eq!(manager.len(), 1);
    assert_eq!(manager.remaining("other"), None);
    assert_eq!(manager.deadline("other"), None);
}

#[tokio::test(start_paused = true)]
async fn a_guard_runs_its_future_to_completion_before_the_deadline() {
    let manager = TimeoutManager::new();
    let guard = manager.start(1u32, secs(5));
    let out = guard
        .run(async {
            tokio::time::sleep(secs(4)).await;
            "ok"
        })
        .await;
    assert_eq!(out.unwrap(), "ok");
    assert!(manager.contains(&1));
    drop(guard);
    assert!(manager.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_guard_times_out_at_its_deadline() {
    let manager = TimeoutManager::new();
    let guard = manager.start("slow".to_string(), secs(5));
    let start = Instant::now();
    let err = guard.run(std::future::pending::<()>()).await.unwrap_err();
    assert_eq!(start.elapsed(), secs(5));
    match &err {
        TimeoutError::Elapsed { operation, after } => {
            assert_eq!(operation.as_deref(), Some("slow"));
            assert_eq!(*after, secs(5));
        }
        other => panic!("expected Elapsed, got {other:?}"),
    }
    assert!(err.is_transient());
    assert_eq!(err.to_string(), "operation slow timed out after 5s");
}

/// Errors show an operation id as written (its `Display` form), not in its
/// `Debug` form with quotes and escapes.
#[tokio::test(start_paused = true)]
async fn manager_errors_show_ids_as_written() {
    let manager: TimeoutManager = TimeoutManager::new();
    let err = manager.extend("a \"quoted\" upload", SEC).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no operation a \"quoted\" upload is in progress"
    );

    let guard = manager.start("upload".to_string(), secs(5));
    assert!(manager.cancel("upload"));
    let err = guard.run(std::future::pending::<()>()).await.unwrap_err();
    assert_eq!(err.to_string(), "operation upload was cancelled");

    let guard = manager.start("upload".to_string(), secs(5));
    let err = guard.run(std::future::pending::<()>()).await.unwrap_err();
    assert_eq!(err.to_string(), "operation upload timed out after 5s");
    let err = manager.extend("upload", SEC).unwrap_err();
    assert_eq!(err.to_string(), "operation upload timed out after 5s");
    let err = guard.extend(SEC).unwrap_err();
    assert_eq!(err.to_string(), "operation upload timed out after 5s");
}

#[tokio::test(start_paused = true)]
async fn extend_moves_the_deadline() {
    let manager: TimeoutManager = TimeoutManager::new();
    let start = Instant::now();
    let guard = manager.start("job".to_string(), secs(5));
    let extender = manager.clone();
    tokio::spawn(async move {
        tokio::time::sleep(secs(2)).await;
        let deadline = extender.extend("job", secs(3)).unwrap();
        assert_eq!(deadline, start + secs(8));
    });
    // Without the extension this would time out at 5 s; it runs to 8 s.
    let err = guard.run(std::future::pending::<()>()).await.unwrap_err();
    assert_eq!(start.elapsed(), secs(8));
    assert!(matches!(err, TimeoutError::Elapsed { after, .. } if after == secs(8)));
}

#[tokio::test(start_paused = true)]
async fn an_extended_operation_completes_past_its_first_deadline() {
    let manager: TimeoutManager = TimeoutManager::new();
    let start = Instant::now();
    let guard = manager.start("job".to_string(), secs(5));
    let extender = manager.clone();
    tokio::spawn(async move {
        tokio::time::sleep(secs(2)).await;
        extender.extend("job", secs(3)).unwrap();
    });
    let out = guard.run(tokio::time::sleep(secs(7))).await;
    assert!(out.is_ok(), "{out:?}");
    assert_eq!(start.elapsed(), secs(7));
}

#[tokio::test(start_paused = true)]
async fn expired_follows_extensions() {
    let manager = TimeoutManager::new();
    let start = Instant::now();
    let guard = manager.start(5u8, secs(3));
    guard.extend(secs(1)).unwrap();
    manager.extend(&5, secs(1)).unwrap();
    guard.expired().await.unwrap();
    assert_eq!(start.elapsed(), secs(5));
    // Expired for good: no more extensions, and waiting returns at once.
    let err = manager.extend(&5, secs(1)).unwrap_err();
    assert!(matches!(err, TimeoutError::Elapsed { after, .. } if after == secs(5)));
    let err = guard.extend(secs(1)).unwrap_err();
    assert!(err.is_elapsed());
    guard.expired().await.unwrap();
    assert_eq!(start.elapsed(), secs(5));
}

#[tokio::test(start_paused = true)]
async fn extending_an_unknown_operation_is_not_found() {
    let manager: TimeoutManager = TimeoutManager::new();
    let err = manager.extend("ghost", SEC).unwrap_err();
    assert!(matches!(&err, TimeoutError::NotFound { operation } if operation == "ghost"));
    assert!(!err.is_transient());
}

#[tokio::test(start_paused = true)]
async fn cancel_yields_cancelled_not_elapsed() {
    let manager: TimeoutManager = TimeoutManager::new();
    let guard = manager.start("op".to_string(), secs(5));
    let canceller = manager.clone();
    tokio::spawn(async move {
        tokio::time::sleep(SEC).await;
        assert!(canceller.cancel("op"));
        assert!(!canceller.cancel("op"));
    });
    let start = Instant::now();
    let err = guard.run(std::future::pending::<()>()).await.unwrap_err();
    assert_eq!(start.elapsed(), SEC);
    assert!(matches!(&err, TimeoutError::Cancelled { operation } if operation == "op"));
    assert!(err.is_cancelled());
    assert!(!err.is_elapsed());
    assert!(!err.is_transient());
    assert!(manager.is_empty());
    // A cancelled operation stays cancelled.
    assert!(guard.is_cancelled());
    assert!(guard.expired().await.unwrap_err().is_cancelled());
    assert!(guard.extend(SEC).unwrap_err().is_cancelled());
    assert!(matches!(
        manager.extend("op", SEC),
        Err(TimeoutError::NotFound { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_completed_future_wins_over_a_cancellation_it_did_not_see() {
    let manager = TimeoutManager::new();
    let guard = manager.start(1u8, secs(5));
    assert!(manager.cancel(&1));
    // The future is polled first: a ready future still completes.
    assert_eq!(guard.run(async { 3 }).await.unwrap(), 3);
    assert!(guard
        .run(std::future::pending::<()>())
        .await
        .unwrap_err()
        .is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn cancel_all_cancels_every_operation() {
    let manager = TimeoutManager::new();
    let tasks: Vec<_> = (0..5u32)
        .map(|i| {
            let guard = manager.start(i, secs(10 + u64::from(i)));
            tokio::spawn(async move { guard.run(std::future::pending::<()>()).await })
        })
        .collect();
    tokio::task::yield_now().await;
    advance(SEC).await;
    assert_eq!(manager.len(), 5);
    assert_eq!(manager.cancel_all(), 5);
    assert!(manager.is_empty());
    for task in tasks {
        assert!(task.await.unwrap().unwrap_err().is_cancelled());
    }
    assert_eq!(manager.cancel_all(), 0);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_guard_removes_the_operation() {
    let manager = TimeoutManager::new();
    let a = manager.start("a".to_string(), secs(5));
    let b = manager.start("b".to_string(), secs(5));
    assert_eq!(manager.len(), 2);
    drop(a);
    assert_eq!(manager.len(), 1);
    assert!(!manager.contains("a"));
    assert!(manager.contains("b"));
    drop(b);
    assert!(manager.is_empty());
    // A guard used for one statement is dropped at its end.
    manager
        .start("c".to_string(), secs(5))
        .run(async {})
        .await
        .unwrap();
    assert!(manager.is_empty());
}

#[tokio::test(start_paused = true)]
async fn starting_an_id_again_replaces_and_cancels_the_old_operation() {
    let manager: TimeoutManager = TimeoutManager::new();
    let start = Instant::now();
    let old = manager.start("sync".to_string(), secs(5));
    let old_run = tokio::spawn(async move {
        let result = old.run(std::future::pending::<()>()).await;
        (result, old)
    });
    tokio::task::yield_now().await;
    advance(SEC).await;
    let new = manager.start("sync".to_string(), secs(3));
    assert_eq!(manager.len(), 1);
    assert_eq!(manager.deadline("sync"), Some(start + secs(4)));

    let (result, old) = old_run.await.unwrap();
    assert!(result.unwrap_err().is_cancelled());
    assert_eq!(start.elapsed(), SEC);
    // Dropping the replaced guard leaves the new operation alone.
    drop(old);
    assert_eq!(manager.len(), 1);
    assert!(!new.is_cancelled());

    let err = new.run(std::future::pending::<()>()).await.unwrap_err();
    assert!(matches!(err, TimeoutError::Elapsed { after, .. } if after == secs(3)));
    assert_eq!(start.elapsed(), secs(4));
    drop(new);
    assert!(manager.is_empty());
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_live_operations() {
    const N: u64 = 10_000;
    let manager = TimeoutManager::new();
    let start = Instant::now();
    let tasks: Vec<_> = (0..N)
        .map(|id| {
            let guard = manager.start(id, secs(10));
            tokio::spawn(async move {
                let result = guard.run(std::future::pending::<()>()).await;
                (id, result, start.elapsed())
            })
        })
        .collect();
    tokio::task::yield_now().await;
    assert_eq!(manager.len(), N as usize);

    advance(SEC).await;
    // Even ids get five more seconds; every third id is cancelled.
    let mut extended = 0;
    for id in (0..N).filter(|id| id % 2 == 0) {
        assert_eq!(manager.extend(&id, secs(5)).unwrap(), start + secs(15));
        extended += 1;
    }
    let mut cancelled = 0;
    for id in (0..N).filter(|id| id % 3 == 0) {
        assert!(manager.cancel(&id));
        cancelled += 1;
    }
    assert_eq!(extended, 5_000);
    assert_eq!(cancelled, 3_334);
    assert_eq!(manager.len(), (N - cancelled) as usize);
    assert_eq!(manager.remaining(&2), Some(secs(14)));
    assert_eq!(manager.remaining(&1), Some(secs(9)));
    assert_eq!(manager.remaining(&3), None);

    let (mut seen_cancelled, mut at_ten, mut at_fifteen) = (0, 0, 0);
    for task in tasks {
        let (id, result, when) = task.await.unwrap();
        match result.unwrap_err() {
            TimeoutError::Cancelled { .. } => {
                assert_eq!(id % 3, 0);
                assert_eq!(when, SEC);
                seen_cancelled += 1;
            }
            TimeoutError::Elapsed { after, .. } if id % 2 == 0 => {
                assert_eq!((after, when), (secs(15), secs(15)), "id {id}");
                at_fifteen += 1;
            }
            TimeoutError::Elapsed { after, .. } => {
                assert_eq!((after, when), (secs(10), secs(10)), "id {id}");
                at_ten += 1;
            }
            other => panic!("id {id}: unexpected {other:?}"),
        }
    }
    assert_eq!(seen_cancelled, 3_334);
    assert_eq!(at_fifteen, 3_333); // even, not a multiple of 3
    assert_eq!(at_ten, 3_333); // odd, not a multiple of 3
                               // Every guard was dropped with its task.
    assert!(manager.is_empty());
    assert_eq!(manager.cancel_all(), 0);
}

#[tokio::test(start_paused = true)]
async fn cancel_all_with_ten_thousand_operations() {
    let manager = TimeoutManager::new();
    let guards: Vec<OperationGuard<u32>> =
        (0..10_000).map(|id| manager.start(id, secs(60))).collect();
    assert_eq!(manager.len(), 10_000);
    assert_eq!(manager.cancel_all(), 10_000);
    assert!(manager.is_empty());
    assert!(guards.iter().all(OperationGuard::is_cancelled));
    drop(guards);
    assert!(manager.is_empty());
}

#[test]
fn manager_and_guard_print_usefully() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let manager = TimeoutManager::new();
        let guard = manager.start("x".to_string(), SEC);
        assert_eq!(format!("{manager:?}"), "TimeoutManager { operations: 1 }");
        let printed = format!("{guard:?}");
        assert!(
            printed.contains("\"x\"") && printed.contains("cancelled: false"),
            "{printed}"
        );
    });
}

// ------------------------------------------------------------ threads

#[test]
fn timeout_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<TimeoutHandler>();
    assert_send_sync::<TimeoutConfig>();
    assert_send_sync::<TimeoutError>();
    assert_send_sync::<TimeoutManager>();
    assert_send_sync::<TimeoutManager<u64>>();
    assert_send_sync::<OperationGuard>();
    assert_send_sync::<OperationGuard<u64>>();
    assert_send_sync::<Timed<std::future::Ready<u8>>>();
}

#[test]
fn futures_of_the_timeout_api_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let timeouts = TimeoutHandler::default();
        let ranks = InMemoryCoordinator::new(1);
        assert_send(&timeouts.barrier(&ranks[0], None));
        assert_send(&timeouts.wait_for_rank(&ranks[0], 0, "k", None));
        assert_send(&timeouts.all_gather(&ranks[0], vec![], None));
        let manager = TimeoutManager::new();
        let guard = manager.start(1u8, SEC);
        assert_send(&guard.run(async {}));
        assert_send(&guard.expired());
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manager_is_shared_across_threads() {
    let manager: TimeoutManager<u64> = TimeoutManager::new();
    let tasks: Vec<_> = (0..8u64)
        .map(|t| {
            let manager = manager.clone();
            tokio::spawn(async move {
                for i in 0..500 {
                    let id = t * 1_000 + i;
                    let guard = manager.start(id, Duration::from_secs(3_600));
                    manager.extend(&id, SEC).unwrap();
                    if i % 2 == 0 {
                        assert!(manager.cancel(&id));
                        assert!(guard.is_cancelled());
                    }
                    guard.run(async {}).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert!(manager.is_empty());
}
