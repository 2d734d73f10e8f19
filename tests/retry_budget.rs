//! The retry budget shared across calls: a retry storm against a dependency
//! that fails every call stays within the budget.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use steadfast::retry::{GiveUp, RetryBudget, RetryBudgetConfig, RetryPolicy};
use tokio::time::Instant;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The dependency's error: every call fails, transiently, and it is not
/// `Display`.
struct Down;

#[derive(Default)]
struct Counts {
    calls: AtomicU64,
    attempts: AtomicU64,
    refused_by_budget: AtomicU64,
    exhausted: AtomicU64,
}

/// 200 callers call a dependency that fails 100 % of the time, for 10 s of
/// paused time, each retrying up to 3 times behind one budget of 10 % with
/// the default floor of 10 retries a second: the retries sent stay within
/// 10 % of the calls plus the floor for the 10 s.
#[tokio::test(start_paused = true)]
async fn a_retry_storm_stays_within_the_budget() {
    const CALLERS: u64 = 200;
    let budget = RetryBudget::builder().ratio(0.1).build().unwrap();
    assert_eq!(budget.config().ttl(), Duration::from_secs(10));
    assert_eq!(budget.config().min_retries_per_second(), 10);
    let policy = RetryPolicy::builder()
        .max_retries(3)
        .initial_delay(ms(100))
        .build()
        .unwrap();
    let counts = Arc::new(Counts::default());
    let start = Instant::now();
    // Every call, its retries included (100 + 200 + 400 ms), ends before
    // the first slot of the budget's 10 s window expires.
    let last_call = start + Duration::from_millis(9_200);

    let mut tasks = Vec::new();
    for caller in 0..CALLERS {
        let (budget, policy, counts) = (budget.clone(), policy.clone(), counts.clone());
        tasks.push(tokio::spawn(async move {
            // spread the callers over the first 50 ms
            tokio::time::sleep(Duration::from_micros(caller * 250)).await;
            while Instant::now() < last_call {
                counts.calls.fetch_add(1, Ordering::SeqCst);
                let result = policy
                    .retry(|| {
                        counts.attempts.fetch_add(1, Ordering::SeqCst);
                        async { Err::<(), _>(Down) }
                    })
                    .when(|_| true)
                    .budget(&budget)
                    .await;
                let Err(err) = result else {
                    panic!("the dependency never answers")
                };
                match err.reason() {
                    GiveUp::BudgetExhausted => &counts.refused_by_budget,
                    GiveUp::Exhausted => &counts.exhausted,
                    other => panic!("unexpected reason {other}"),
                }
                .fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(ms(50)).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");

    let calls = counts.calls.load(Ordering::SeqCst);
    let retries = counts.attempts.load(Ordering::SeqCst) - calls;
    let refused = counts.refused_by_budget.load(Ordering::SeqCst);
    let exhausted = counts.exhausted.load(Ordering::SeqCst);
    assert_eq!(refused + exhausted, calls);
    // Without a budget the dependency would see 3 retries per call.
    assert!(calls > 20_000, "{calls} calls");
    let allowed = calls / 10 + 10 * 10;
    assert!(
        retries <= allowed,
        "{retries} retries for {calls} calls: more than {allowed}"
    );
    // The budget was spent, not left unused: most calls were refused a retry
    // and the retries come close to what it allows.
    assert!(refused > calls / 2, "{refused} of {calls} refused");
    assert!(retries >= calls / 10, "{retries} retries for {calls} calls");
}

/// Once the storm is over, the window forgets it: after `ttl` without
/// calls, the reserve is whole again.
#[tokio::test(start_paused = true)]
async fn the_budget_recovers_after_ttl() {
    let budget = RetryBudget::new(
        RetryBudgetConfig::builder()
            .ratio(0.1)
            .min_retries_per_second(1)
            .ttl(Duration::from_secs(5))
            .build()
            .unwrap(),
    );
    assert_eq!(budget.available(), 5);
    while budget.try_withdraw() {}
    assert_eq!(budget.available(), 0);
    for _ in 0..25 {
        budget.deposit();
    }
    assert_eq!(budget.available(), 2);
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(budget.available(), 5);
    // clones share one budget
    let clone = budget.clone();
    assert!(clone.try_withdraw());
    assert_eq!(budget.available(), 4);
}

#[test]
fn bad_input_names_the_field() {
    for (json, field) in [
        (r#"{"ratio": -1.0}"#, "ratio"),
        (r#"{"ratio": 10.5}"#, "ratio"),
        (r#"{"ttl": "0s"}"#, "ttl"),
    ] {
        let err = serde_json::from_str::<RetryBudgetConfig>(json).unwrap_err();
        assert!(err.to_string().contains(field), "{json}: {err}");
    }
    let err = RetryBudget::builder().ratio(f64::NAN).build().unwrap_err();
    assert_eq!(err.field(), "ratio");
    let err = RetryBudget::builder()
        .ttl(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "ttl");
    assert!(serde_json::from_str::<RetryBudgetConfig>(r#"{"ratios": 0.1}"#).is_err());
    let config: RetryBudgetConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(config, RetryBudgetConfig::default());
}

#[test]
fn a_budget_is_send_sync_and_a_retry_with_it_is_send() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<RetryBudget>();
    fn assert_send<T: Send>(_: &T) {}
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let _guard = rt.enter();
    let budget = RetryBudget::default();
    let fut = RetryPolicy::default()
        .retry(|| async { Ok::<_, std::io::Error>(()) })
        .budget(&budget);
    assert_send(&fut);
}
