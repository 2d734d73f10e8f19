//! The `metrics` feature: after a scripted sequence of calls, saves,
//! failures and recoveries, every count a hand-written recorder captured
//! equals what happened. Each test installs its own recorder for its thread
//! (`set_default_local_recorder`), so the tests run side by side.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use steadfast::breaker::{CircuitBreaker, SlidingWindow, State};
use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint, SaveOptions, ShardData};
use steadfast::coordinator::InMemoryCoordinator;
use steadfast::health::{HealthConfig, HealthMonitor, HealthStatus};
use steadfast::metrics::{names, RetryMetrics};
use steadfast::pipeline::{Bulkhead, Pipeline, RetryStrategy, StoppedBy};
use steadfast::recovery::{ErrorRecoveryManager, RecoveryStrategy, Severity};
use steadfast::retry::RetryPolicy;
use steadfast::storage::testing::Operation;
use steadfast::storage::MemoryStorage;

// ---------------------------------------------------------------------
// A recorder that keeps every value, keyed by name and sorted labels.
// ---------------------------------------------------------------------

#[derive(Default)]
struct Cell {
    count: AtomicU64,
    gauge: Mutex<f64>,
    samples: Mutex<Vec<f64>>,
}

impl CounterFn for Cell {
    fn increment(&self, value: u64) {
        self.count.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.count.fetch_max(value, Ordering::Relaxed);
    }
}

impl GaugeFn for Cell {
    fn increment(&self, value: f64) {
        *self.gauge.lock().unwrap() += value;
    }
    fn decrement(&self, value: f64) {
        *self.gauge.lock().unwrap() -= value;
    }
    fn set(&self, value: f64) {
        *self.gauge.lock().unwrap() = value;
    }
}

impl HistogramFn for Cell {
    fn record(&self, value: f64) {
        self.samples.lock().unwrap().push(value);
    }
}

#[derive(Default)]
struct Capture {
    cells: Mutex<HashMap<String, Arc<Cell>>>,
}

/// `name{a="1",b="2"}`, labels sorted.
fn id(name: &str, labels: &[(&str, &str)]) -> String {
    let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{name}{{{}}}", inner.join(","))
}

impl Capture {
    fn cell(&self, key: &Key) -> Arc<Cell> {
        let labels: Vec<(&str, &str)> = key.labels().map(|l| (l.key(), l.value())).collect();
        let id = id(key.name(), &labels);
        Arc::clone(self.cells.lock().unwrap().entry(id).or_default())
    }

    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<Arc<Cell>> {
        self.cells
            .lock()
            .unwrap()
            .get(&id(name, labels))
            .map(Arc::clone)
    }

    fn count(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.get(name, labels)
            .map_or(0, |c| c.count.load(Ordering::Relaxed))
    }

    fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .map_or(f64::NAN, |c| *c.gauge.lock().unwrap())
    }

    fn samples(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        self.get(name, labels)
            .map_or_else(Vec::new, |c| c.samples.lock().unwrap().clone())
    }

    /// Every registered key with this name.
    fn keys_of(&self, name: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .cells
            .lock()
            .unwrap()
            .keys()
            .filter(|k| k.starts_with(&format!("{name}{{")))
            .cloned()
            .collect();
        keys.sort();
        keys
    }
}

impl Recorder for Capture {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.cell(key))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.cell(key))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.cell(key))
    }
}

fn timed_out() -> io::Error {
    io::Error::from(io::ErrorKind::TimedOut)
}

// ---------------------------------------------------------------------
// Breakers
// ---------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn breaker_calls_rejections_and_state_are_counted_per_name() {
    let capture = Capture::default();
    let _guard = metrics::set_default_local_recorder(&capture);

    let breaker = CircuitBreaker::builder()
        .name("payments")
        .failure_threshold(2)
        .recovery_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let unnamed = CircuitBreaker::default();
    let state = |c: &Capture| c.gauge(names::BREAKER_STATE, &[("name", "payments")]);
    assert_eq!(state(&capture), 0.0, "registered Closed when built");

    for _ in 0..3 {
        breaker
            .call(|| async { Ok::<_, io::Error>(()) })
            .await
            .unwrap();
        unnamed
            .call(|| async { Ok::<_, io::Error>(()) })
            .await
            .unwrap();
    }
    for _ in 0..2 {
        let _ = breaker.call(|| async { Err::<(), _>(timed_out()) }).await;
    }
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(state(&capture), 1.0);
    for _ in 0..2 {
        assert!(breaker
            .call(|| async { Ok::<_, io::Error>(()) })
            .await
            .is_err());
    }
    tokio::time::advance(Duration::from_secs(10)).await;
    breaker
        .call(|| async { Ok::<_, io::Error>(()) })
        .await
        .unwrap();
    assert_eq!(breaker.state(), State::Closed);

    let calls = |outcome| {
        capture.count(
            names::BREAKER_CALLS,
            &[("name", "payments"), ("outcome", outcome)],
        )
    };
    assert_eq!(calls("success"), 4, "3 in Closed, 1 trial");
    assert_eq!(calls("failure"), 2);
    assert_eq!(
        capture.count(names::BREAKER_REJECTIONS, &[("name", "payments")]),
        2
    );
    assert_eq!(state(&capture), 0.0);
    assert_eq!(
        capture.keys_of(names::BREAKER_CALLS),
        [
            id(
                names::BREAKER_CALLS,
                &[("name", "payments"), ("outcome", "failure")]
            ),
            id(
                names::BREAKER_CALLS,
                &[("name", "payments"), ("outcome", "success")]
            ),
        ],
        "a breaker without a name records nothing"
    );
}

#[tokio::test(start_paused = true)]
async fn slow_calls_are_counted() {
    let capture = Capture::default();
    let _guard = metrics::set_default_local_recorder(&capture);
    let breaker = CircuitBreaker::builder()
        .name("search")
        .sliding_window(SlidingWindow::count(20))
        .minimum_calls(20)
        .slow_call_duration(Duration::from_millis(100))
        .slow_call_rate_threshold(1.0)
        .build()
        .unwrap();
    for delay in [200, 10, 300, 50] {
        breaker
            .call(|| async move {
                tokio::time::sleep(Duration::from_millis(delay)).await;
                Ok::<_, io::Error>(())
            })
            .await
            .unwrap();
    }
    assert_eq!(
        capture.count(names::BREAKER_SLOW_CALLS, &[("name", "search")]),
        2
    );
    assert_eq!(
        capture.count(
            names::BREAKER_CALLS,
            &[("name", "search"), ("outcome", "success")]
        ),
        4
    );
}

// ---------------------------------------------------------------------
// Retries and pipelines
// ---------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn retry_attempts_and_give_ups_are_counted() {
    let capture = Capture::default();
    let _guard = metrics::set_default_local_recorder(&capture);
    let policy = RetryPolicy::builder()
        .max_retries(2)
        .initial_delay(Duration::from_millis(10))
        .build()
        .unwrap();
    let metrics = RetryMetrics::new("rpc");

    // Two failures, then a success: 3 attempts, no give-up.
    let mut n = 0;
    let value = metrics
        .retry(&policy, || {
            n += 1;
            let attempt = n;
            async move {
                if attempt < 3 {
                    Err(timed_out())
                } else {
                    Ok(attempt)
                }
            }
        })
        .await
        .unwrap();
    assert_eq!(value, 3);
    // Always failing: 3 attempts, a give-up.
    let err = metrics
        .retry(&policy, || async { Err::<(), _>(timed_out()) })
        .await
        .unwrap_err();
    assert_eq!(err.attempts(), 3);
    // Not transient: 1 attempt, not a give-up.
    let err = metrics
        .retry(&policy, || async {
            Err::<(), _>(io::Error::from(io::ErrorKind::NotFound))
        })
        .await
        .unwrap_err();
    assert_eq!(err.attempts(), 1);

    assert_eq!(capture.count(names::RETRY_ATTEMPTS, &[("name", "rpc")]), 7);
    assert_eq!(capture.count(names::RETRY_GIVE_UPS, &[("name", "rpc")]), 1);
}

#[tokio::test(start_paused = true)]
async fn a_named_pipeline_counts_its_calls_timeouts_and_its_retry() {
    let capture = Capture::default();
    let _guard = metrics::set_default_local_recorder(&capture);
    let policy = RetryPolicy::builder()
        .max_retries(1)
        .initial_delay(Duration::from_millis(10))
        .build()
        .unwrap();
    let pipeline = Pipeline::builder()
        .name("orders")
        .strategy(RetryStrategy::new(policy).name("orders-retry"))
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let bounded = Pipeline::builder()
        .name("bounded")
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();

    pipeline
        .execute(|| async { Ok::<_, io::Error>(()) })
        .await
        .unwrap();
    // Every attempt times out: 2 attempts, a give-up; stopped by the retry.
    let err = pipeline
        .execute(|| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, io::Error>(())
        })
        .await
        .unwrap_err();
    assert_eq!(err.stopped_by(), StoppedBy::Retry);
    let err = bounded
        .execute(|| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, io::Error>(())
        })
        .await
        .unwrap_err();
    assert_eq!(err.stopped_by(), StoppedBy::Timeout);

    let calls = |name, outcome| {
        capture.count(
            names::PIPELINE_CALLS,
            &[("name", name), ("outcome", outcome)],
        )
    };
    assert_eq!(calls("orders", "success"), 1);
    assert_eq!(calls("orders", "retry"), 1);
    assert_eq!(calls("bounded", "timeout"), 1);
    assert_eq!(capture.count(names::TIMEOUTS, &[("name", "bounded")]), 1);
    assert_eq!(capture.count(names::TIMEOUTS, &[("name", "orders")]), 0);
    assert_eq!(
        capture.count(names::RETRY_ATTEMPTS, &[("name", "orders-retry")]),
        3
    );
    assert_eq!(
        capture.count(names::RETRY_GIVE_UPS, &[("name", "orders-retry")]),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn bulkhead_slots_in_use_and_rejections() {
    let capture = Capture::default();
    let _guard = metrics::set_default_local_recorder(&capture);
    let bulkhead = Bulkhead::builder()
        .name("db")
        .max_concurrent(2)
        .max_queued(0)
        .build()
        .unwrap();
    let in_use = |c: &Capture| c.gauge(names::BULKHEAD_IN_USE, &[("name", "db")]);
    let a = bulkhead.try_acquire().unwrap();
    let b = bulkhead.try_acquire_owned().unwrap();
    assert_eq!(in_use(&capture), 2.0);
    assert!(bulkhead.try_acquire().is_err());
    assert!(bulkhead.acquire().await.is_err());
    drop(a);
    assert_eq!(in_use(&capture), 1.0);
    drop(b);
    assert_eq!(in_use(&capture), 0.0);
    assert_eq!(
        capture.count(
            names::BULKHEAD_REJECTIONS,
            &[("name", "db"), ("reason", "full")]
        ),
        2
    );
}

#[cfg(feature = "rate-limit")]
#[tokio::test(start_paused = true)]
async fn rate_limiter_permits_and_refusals() {
    use steadfast::pipeline::{RateLimiter, RateLimiterConfig};
    let capture = Capture::default();
    let _guard = metrics::set_default_local_recorder(&capture);
    let config = RateLimiterConfig::builder()
        .permits(2)
        .period(Duration::from_secs(1))
        .build()
        .unwrap();
    let limiter = RateLimiter::named("api", config);
    let results: Vec<bool> = (0..3).map(|_| limiter.check().is_ok()).collect();
    assert_eq!(results, [true, true, false]);
    let calls = |outcome| {
        capture.count(
            names::RATE_LIMITER_CALLS,
            &[("name", "api"), ("outcome", outcome)],
        )
    };
    assert_eq!((calls("permitted"), calls("rejected")), (2, 1));
}

// ---------------------------------------------------------------------
// Checkpoints
// ---------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_save_that_commits_and_one_that_fails_by_outcome() {
    let capture = Capture::default();
    let _guard = metrics::set_default_local_recorder(&capture);
    let storage = MemoryStorage::new();
    let rank = InMemoryCoordinator::new(1).remove(0);
    let policy = RetryPolicy::builder().max_retries(1).build().unwrap();
    let ckpt =
        DistributedCheckpoint::new(storage.clone(), rank, policy, CheckpointOptions::default());
    let shard = ShardData::new().with_entry("weights", vec![7u8; 64]);
    ckpt.save("good", &shard, SaveOptions::new().step(1))
        .await
        .unwrap();
    storage.faults().fail_next(Operation::Put, 100);
    storage.faults().fail_next(Operation::PutStream, 100);
    assert!(ckpt
        .save("bad", &shard, SaveOptions::new().step(2))
        .await
        .is_err());
    storage.faults().clear();

    let saves = |outcome| capture.count(names::CHECKPOINTS, &[("outcome", outcome)]);
    assert_eq!((saves("success"), saves("failure")), (1, 1));
    let durations = |outcome| capture.samples(names::CHECKPOINT_DURATION, &[("outcome", outcome)]);
    assert_eq!(durations("success").len(), 1);
    assert_eq!(durations("failure").len(), 1);
    assert!(
        durations("failure")[0] > 0.0,
        "the failed save waited between its retries"
    );
}

// ---------------------------------------------------------------------
// Health and detected failures
// ---------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn health_members_by_status_and_detected_failures() {
    let capture = Capture::default();
    let _guard = metrics::set_default_local_recorder(&capture);
    let monitor = HealthMonitor::new(
        HealthConfig::builder()
            .heartbeat_timeout(Duration::from_secs(1))
            .check_interval(Duration::from_millis(500))
            .build()
            .unwrap(),
    );
    for member in ["a", "b", "c"] {
        monitor.add_member(member);
    }
    let members = |c: &Capture, status| c.gauge(names::HEALTH_MEMBERS, &[("status", status)]);
    assert_eq!(members(&capture, "healthy"), 3.0);

    // "c" stays silent past twice the timeout; the others heartbeat.
    for _ in 0..5 {
        tokio::time::advance(Duration::from_millis(500)).await;
        monitor.heartbeat("a").unwrap();
        monitor.heartbeat("b").unwrap();
        monitor.check_now();
    }
    assert_eq!(monitor.status("c"), Some(HealthStatus::Failed));
    assert_eq!(members(&capture, "healthy"), 2.0);
    assert_eq!(members(&capture, "unresponsive"), 0.0);
    assert_eq!(members(&capture, "failed"), 1.0);
    let detected = capture.count(
        names::FAILURES_DETECTED,
        &[("source", "health"), ("kind", "member_failed")],
    );
    assert_eq!(detected, 1);

    // Back again, then removed.
    monitor.heartbeat("c").unwrap();
    assert_eq!(members(&capture, "healthy"), 3.0);
    assert_eq!(members(&capture, "failed"), 0.0);
    monitor.remove_member("c");
    assert_eq!(members(&capture, "healthy"), 2.0);
    drop(monitor);
    assert_eq!(
        members(&capture, "healthy"),
        0.0,
        "a monitor dropped takes its members out"
    );
}

// ---------------------------------------------------------------------
// Error recovery and prediction
// ---------------------------------------------------------------------

#[test]
fn error_actions_are_counted_by_action() {
    let capture = Capture::default();
    let _guard = metrics::set_default_local_recorder(&capture);
    let manager = ErrorRecoveryManager::default();
    manager.set_strategy("io", RecoveryStrategy::retry(2, Duration::from_millis(10)));
    for _ in 0..3 {
        manager.record("op", "io", Severity::Medium, "timed out");
    }
    manager.record("op", "disk", Severity::High, "full");
    let actions = |action| capture.count(names::ERROR_ACTIONS, &[("action", action)]);
    assert_eq!(actions("retry") + actions("abort") + actions("fallback"), 4);
    assert_eq!(
        actions("retry"),
        2,
        "two retries allowed, then the third aborts"
    );
    assert_eq!(actions("abort"), 2);
}

#[test]
fn prediction_accuracy_is_the_last_evaluation() {
    use steadfast::recovery::prediction::{evaluate, LogisticModel, TraceGenerator};
    let capture = Capture::default();
    let _guard = metrics::set_default_local_recorder(&capture);
    let mut model = LogisticModel::new(Duration::from_secs(10)).unwrap();
    model.train(&TraceGenerator::new(1).batch(12)).unwrap();
    let report = evaluate(&model, &TraceGenerator::new(2).batch(6), 0.5).unwrap();
    let accuracy = |measure| capture.gauge(names::PREDICTION_ACCURACY, &[("measure", measure)]);
    assert_eq!(accuracy("precision"), report.precision);
    assert_eq!(accuracy("recall"), report.recall);
}

// ---------------------------------------------------------------------
// Coordinated recovery
// ---------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_recovery_and_the_failure_it_detected() {
    use futures::future::join_all;
    use steadfast::checkpoint::MembershipFence;
    use steadfast::coordinator::{Membership, Role};
    use steadfast::recovery::{
        RecoveryCoordinator, RecoveryCoordinatorConfig, RecoveryEvent, RecoveryStrategyKind,
    };

    let capture = Capture::default();
    let _guard = metrics::set_default_local_recorder(&capture);
    let config = RecoveryCoordinatorConfig::builder()
        .recovery_strategy(RecoveryStrategyKind::RestartFromCheckpoint)
        .quorum_size(2)
        .recovery_timeout(Duration::from_secs(120))
        .answer_window(Duration::from_millis(500))
        .build()
        .unwrap();
    let storage = MemoryStorage::new();
    let handles = InMemoryCoordinator::new(3);
    let spare = handles[0].add_standby("spare-0").unwrap();
    let mut members = Vec::new();
    for handle in handles.into_iter().chain([spare]) {
        let fence = MembershipFence::new(handle.clone());
        let ckpt = Arc::new(
            DistributedCheckpoint::new(
                storage.clone(),
                handle.clone(),
                RetryPolicy::default(),
                CheckpointOptions::default(),
            )
            .with_fence(fence.clone()),
        );
        let recovery = RecoveryCoordinator::builder(handle.clone())
            .config(config)
            .checkpoints(Arc::clone(&ckpt))
            .fence(fence)
            .on_failure(|_ctx| async { Ok(()) })
            .build();
        let events = recovery.subscribe();
        members.push((handle, ckpt, recovery, events));
    }
    let leaders = join_all(
        members
            .iter()
            .filter(|m| m.0.role() != Role::Standby)
            .map(|m| m.2.establish_leader(Duration::from_secs(10))),
    )
    .await;
    assert!(leaders.iter().all(Result::is_ok));
    let _tasks: Vec<_> = members.iter().map(|m| m.2.start()).collect();
    let saves = members[..3].iter().enumerate().map(|(rank, m)| {
        let ckpt = Arc::clone(&m.1);
        async move {
            let shard = ShardData::new().with_entry(format!("state.{rank}"), vec![1u8; 8]);
            ckpt.save("step-1", &shard, SaveOptions::new().step(1))
                .await
        }
    });
    for saved in join_all(saves).await {
        saved.unwrap();
    }
    members[0].0.faults().kill(2);

    // Every survivor and the standby recover; count what their events say.
    let (mut recovered, mut detected) = (0u64, 0u64);
    for (handle, _, _, events) in members.iter_mut() {
        if handle.member_id() == "rank-2" {
            continue;
        }
        let wait = async {
            loop {
                match events.recv().await.unwrap() {
                    RecoveryEvent::FailureDetected { .. } => detected += 1,
                    RecoveryEvent::Recovered { .. } => {
                        recovered += 1;
                        break;
                    }
                    _ => {}
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(300), wait)
            .await
            .expect("no recovery within 300 s");
    }
    assert_eq!(recovered, 3);
    // And whatever else the members said by now, the dead one's too.
    for (_, _, _, events) in members.iter_mut() {
        while let Ok(event) = events.try_recv() {
            match event {
                RecoveryEvent::FailureDetected { .. } => detected += 1,
                RecoveryEvent::Recovered { .. } => recovered += 1,
                _ => {}
            }
        }
    }
    assert!(detected >= 1, "the failure was detected");

    let recoveries = |outcome| capture.count(names::RECOVERIES, &[("outcome", outcome)]);
    assert_eq!(
        (recoveries("success"), recoveries("failure")),
        (recovered, 0)
    );
    assert_eq!(
        capture.samples(names::RECOVERY_DURATION, &[]).len() as u64,
        recovered
    );
    assert_eq!(
        capture.count(
            names::FAILURES_DETECTED,
            &[("source", "recovery"), ("kind", "rank_failed")]
        ),
        detected
    );
    assert_eq!(
        capture.count(names::CHECKPOINTS, &[("outcome", "success")]),
        3,
        "one save per rank"
    );
}

// ---------------------------------------------------------------------
// Instances built from the configuration file carry their names
// ---------------------------------------------------------------------

#[cfg(feature = "config")]
#[tokio::test(start_paused = true)]
async fn instances_built_from_the_config_file_are_measured_under_their_names() {
    use steadfast::config::FaultToleranceConfig;

    let capture = Capture::default();
    let _guard = metrics::set_default_local_recorder(&capture);
    let config = FaultToleranceConfig::from_toml_str(
        "[fault_tolerance.breakers.payments]\n\
         failure_threshold = 2\n\
         [fault_tolerance.retries.rpc]\n\
         max_retries = 2\n\
         initial_delay = \"10ms\"\n\
         [fault_tolerance.bulkheads.db]\n\
         max_concurrent = 1\n",
    )
    .unwrap();

    let breaker = config.build_breaker("payments").unwrap();
    breaker
        .call(|| async { Ok::<_, io::Error>(()) })
        .await
        .unwrap();
    let _ = breaker.call(|| async { Err::<(), _>(timed_out()) }).await;
    assert_eq!(
        capture.count(
            names::BREAKER_CALLS,
            &[("name", "payments"), ("outcome", "success")]
        ),
        1
    );
    assert_eq!(
        capture.count(
            names::BREAKER_CALLS,
            &[("name", "payments"), ("outcome", "failure")]
        ),
        1
    );

    let pipeline = Pipeline::builder()
        .strategy(config.build_retry_strategy("rpc").unwrap())
        .build()
        .unwrap();
    let result: Result<(), _> = pipeline.execute(|| async { Err(timed_out()) }).await;
    assert!(result.is_err());
    assert_eq!(
        capture.count(names::RETRY_ATTEMPTS, &[("name", "rpc")]),
        3,
        "the first call and two retries"
    );
    assert_eq!(capture.count(names::RETRY_GIVE_UPS, &[("name", "rpc")]), 1);

    let bulkhead = config.build_bulkhead("db").unwrap();
    let held = bulkhead.try_acquire().unwrap();
    assert_eq!(
        capture.gauge(names::BULKHEAD_IN_USE, &[("name", "db")]),
        1.0
    );
    drop(held);
    assert_eq!(
        capture.gauge(names::BULKHEAD_IN_USE, &[("name", "db")]),
        0.0
    );
}
