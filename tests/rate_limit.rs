//! The rate limiters: the burst, the exact `retry_after` of a refusal, wait
//! mode and its `max_wait`, keys that do not share a limit, cancellation,
//! `retry_after` honoured by a retry policy, and the count of calls let
//! through by many threads at once.
//!
//! Every test but the many-thread ones runs on paused time; none waits on
//! the wall clock (the many-thread ones check as fast as they can and
//! bound what they count by the time they took).

#![cfg(feature = "rate-limit")]

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use steadfast::pipeline::{
    KeyedRateLimiter, RateLimitError, RateLimitMode, RateLimited, RateLimiter, RateLimiterConfig,
    RateLimiterConfigBuilder, TokioClock,
};
use steadfast::retry::{Retryable, Transient};
use steadfast::RetryPolicy;
use tokio::time::{advance, Instant};

const MS: Duration = Duration::from_millis(1);

/// `permits` per `period`, a burst of `burst`, in reject mode.
fn rejecting(permits: u32, period: Duration, burst: u32) -> RateLimiter {
    RateLimiter::builder()
        .rate(permits, period)
        .burst(burst)
        .build()
        .unwrap()
}

/// `permits` per `period`, a burst of `burst`, waiting up to `max_wait`.
fn waiting(permits: u32, period: Duration, burst: u32, max_wait: Duration) -> RateLimiter {
    RateLimiter::builder()
        .rate(permits, period)
        .burst(burst)
        .mode(RateLimitMode::Wait)
        .max_wait(max_wait)
        .build()
        .unwrap()
}

/// Polls a future once with a waker that does nothing.
fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    Pin::new(fut).poll(&mut Context::from_waker(Waker::noop()))
}

/// Lets every spawned task run until it waits (the runtime is
/// current-thread, and yielding does not let paused time move).
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn the_burst_passes_the_next_is_refused_with_the_exact_wait_then_passes() {
    // A permit every 100 ms, three at once.
    let limiter = rejecting(10, Duration::from_secs(1), 3);
    for _ in 0..3 {
        limiter.check().unwrap();
    }
    let refused = limiter.check().unwrap_err();
    assert_eq!(refused.retry_after, 100 * MS);
    assert_eq!((refused.waited, refused.max_wait), (Duration::ZERO, None));

    // 30 ms later the wait is 70 ms; still nothing to take.
    advance(30 * MS).await;
    assert_eq!(limiter.check().unwrap_err().retry_after, 70 * MS);
    advance(69 * MS).await;
    assert_eq!(limiter.check().unwrap_err().retry_after, MS);

    // After exactly `retry_after`, one permit, and the next is 100 ms away.
    advance(MS).await;
    limiter.check().unwrap();
    assert_eq!(limiter.check().unwrap_err().retry_after, 100 * MS);

    // A quiet spell gives the whole burst back, and no more.
    advance(Duration::from_secs(60)).await;
    for _ in 0..3 {
        limiter.check().unwrap();
    }
    assert_eq!(limiter.check().unwrap_err().retry_after, 100 * MS);
}

#[tokio::test(start_paused = true)]
async fn a_sub_millisecond_interval_is_exact_too() {
    // 3 per second: one every 333_333_334 ns (rounded up, never faster).
    let limiter = rejecting(3, Duration::from_secs(1), 1);
    limiter.check().unwrap();
    assert_eq!(
        limiter.check().unwrap_err().retry_after,
        Duration::from_nanos(333_333_334)
    );
    advance(Duration::from_nanos(333_333_333)).await;
    assert_eq!(
        limiter.check().unwrap_err().retry_after,
        Duration::from_nanos(1)
    );
    advance(Duration::from_nanos(1)).await;
    limiter.check().unwrap();
}

#[tokio::test(start_paused = true)]
async fn reject_mode_acquire_and_call_refuse_at_once_without_running_the_operation() {
    let limiter = rejecting(1, Duration::from_secs(2), 1);
    limiter.acquire().await.unwrap();
    let start = Instant::now();
    assert_eq!(
        limiter.acquire().await.unwrap_err().retry_after,
        Duration::from_secs(2)
    );

    let ran = AtomicU32::new(0);
    let err = limiter
        .call(|| async {
            ran.fetch_add(1, Ordering::SeqCst);
            Ok::<_, io::Error>(())
        })
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(ran.load(Ordering::SeqCst), 0, "a refused call ran");
    assert!(err.is_rejected());
    assert_eq!(err.to_string(), "rate limited: the next permit frees in 2s");
}

#[tokio::test(start_paused = true)]
async fn wait_mode_waits_exactly_until_the_next_permit() {
    // A permit every 250 ms, one at once, waiting up to a second.
    let limiter = waiting(4, Duration::from_secs(1), 1, Duration::from_secs(1));
    limiter.acquire().await.unwrap();

    let waiter = {
        let limiter = limiter.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let n = limiter
                .call(|| async { Ok::<_, io::Error>(5) })
                .await
                .unwrap();
            (n, start.elapsed())
        })
    };
    settle().await;
    advance(249 * MS).await;
    settle().await;
    assert!(!waiter.is_finished(), "let through before its permit freed");
    advance(MS).await;
    settle().await;
    assert!(waiter.is_finished(), "still waiting after its permit freed");
    assert_eq!(waiter.await.unwrap(), (5, 250 * MS));

    // Calls one after another are spaced by the interval.
    let start = Instant::now();
    for i in 1..=3_u32 {
        limiter.acquire().await.unwrap();
        assert_eq!(start.elapsed(), 250 * MS * i);
    }
}

#[tokio::test(start_paused = true)]
async fn a_permit_exactly_at_max_wait_is_waited_for_and_one_past_it_is_refused_at_once() {
    let limiter = waiting(1, Duration::from_secs(1), 1, Duration::from_secs(1));
    limiter.acquire().await.unwrap();
    let start = Instant::now();
    limiter.acquire().await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(1));

    let limiter = waiting(1, Duration::from_secs(1), 1, 500 * MS);
    limiter.acquire().await.unwrap();
    let start = Instant::now();
    let refused = limiter.acquire().await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::ZERO, "waited for nothing");
    assert_eq!(refused.retry_after, Duration::from_secs(1));
    assert_eq!(refused.waited, Duration::ZERO);
    assert_eq!(refused.max_wait, Some(500 * MS));
    assert_eq!(
        refused.to_string(),
        "rate limited: the next permit frees in 1s, past the max_wait of 500ms (waited 0ns)"
    );

    // The refusal took nothing: 600 ms later the wait is 400 ms, within
    // max_wait, and the call gets the permit at 1 s.
    advance(600 * MS).await;
    let err = limiter
        .call(|| async { Err::<(), _>(io::Error::other("boom")) })
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert_eq!(err.into_inner().unwrap().to_string(), "boom");
}

#[tokio::test(start_paused = true)]
async fn waiters_beyond_what_frees_within_max_wait_are_refused() {
    // A permit every 100 ms, waiting up to 250 ms: of five waiters, the
    // ones whose permit comes by 250 ms get one (at 100 and 200 ms); the
    // others are refused, none later than 250 ms.
    let limiter = waiting(10, Duration::from_secs(1), 1, 250 * MS);
    limiter.check().unwrap();
    let waiters: Vec<_> = (0..5)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                let start = Instant::now();
                (limiter.acquire().await, start.elapsed())
            })
        })
        .collect();
    let mut passed = Vec::new();
    let mut refused = 0;
    for w in waiters {
        let (result, elapsed) = w.await.unwrap();
        assert!(elapsed <= 250 * MS, "waited {elapsed:?}");
        match result {
            Ok(()) => passed.push(elapsed),
            Err(r) => {
                assert_eq!(r.max_wait, Some(250 * MS));
                assert!(r.waited <= 250 * MS);
                refused += 1;
            }
        }
    }
    passed.sort();
    assert_eq!(passed, vec![100 * MS, 200 * MS]);
    assert_eq!(refused, 3);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_acquire_holds_nothing() {
    let limiter = waiting(10, Duration::from_secs(1), 1, Duration::from_secs(1));
    limiter.check().unwrap();

    // A waiter polled once (sleeping until 100 ms), then dropped.
    let mut dropped = Box::pin(limiter.acquire());
    assert!(poll_once(&mut dropped).is_pending());
    drop(dropped);
    // A waiter dropped after its permit came due but before it ran.
    let mut late = Box::pin(limiter.acquire());
    assert!(poll_once(&mut late).is_pending());
    advance(100 * MS).await;
    drop(late);

    // The permit at 100 ms is still there, and only it.
    limiter.check().unwrap();
    assert_eq!(limiter.check().unwrap_err().retry_after, 100 * MS);

    // Same through `call`, aborted while it waits: the operation never
    // runs, and the next permit is still free when it comes.
    let ran = Arc::new(AtomicU32::new(0));
    let task = {
        let limiter = limiter.clone();
        let ran = ran.clone();
        tokio::spawn(async move {
            limiter
                .call(|| async move {
                    ran.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, io::Error>(())
                })
                .await
        })
    };
    settle().await;
    task.abort();
    settle().await;
    advance(100 * MS).await;
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    limiter.check().unwrap();
    assert!(limiter.check().is_err());
}

#[tokio::test(start_paused = true)]
async fn keys_have_limits_of_their_own() {
    let limiter = KeyedRateLimiter::<String>::builder()
        .rate(2, Duration::from_secs(1))
        .burst(2)
        .mode(RateLimitMode::Wait)
        .max_wait(Duration::from_secs(1))
        .build()
        .unwrap();
    let (alice, bob) = ("alice".to_string(), "bob".to_string());

    limiter.check(&alice).unwrap();
    limiter.check(&alice).unwrap();
    assert_eq!(limiter.check(&alice).unwrap_err().retry_after, 500 * MS);
    // Alice's spent burst leaves Bob's whole.
    limiter.check(&bob).unwrap();
    limiter.check(&bob).unwrap();
    assert_eq!(limiter.check(&bob).unwrap_err().retry_after, 500 * MS);

    // 200 ms later, Alice waits for her permit; Bob's wait is his own.
    advance(200 * MS).await;
    let start = Instant::now();
    limiter.acquire(&alice).await.unwrap();
    assert_eq!(start.elapsed(), 300 * MS);
    assert_eq!(limiter.check(&alice).unwrap_err().retry_after, 500 * MS);
    limiter.check(&bob).unwrap();
    assert_eq!(limiter.check(&bob).unwrap_err().retry_after, 500 * MS);

    let carol = "carol".to_string();
    let n = limiter
        .call(&carol, || async { Ok::<_, io::Error>(1) })
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(limiter.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_keyed_limiter_forgets_only_keys_whose_burst_is_back() {
    let limiter = KeyedRateLimiter::<u32>::builder()
        .rate(1, Duration::from_secs(1))
        .burst(3)
        .build()
        .unwrap();
    for key in 0..100 {
        limiter.check(&key).unwrap();
    }
    // Key 0 spends its whole burst: its last permit comes back 3 s on.
    limiter.check(&0).unwrap();
    limiter.check(&0).unwrap();
    assert!(limiter.check(&0).is_err());
    assert_eq!(limiter.len(), 100);

    advance(Duration::from_secs(2)).await;
    limiter.retain_recent();
    limiter.shrink_to_fit();
    // The others have their burst back and are forgotten; key 0 is not.
    assert_eq!(limiter.len(), 1);
    limiter.check(&0).unwrap();
    limiter.check(&0).unwrap();
    assert_eq!(
        limiter.check(&0).unwrap_err().retry_after,
        Duration::from_secs(1)
    );
    // A forgotten key starts again with its full burst, as before.
    for _ in 0..3 {
        limiter.check(&7).unwrap();
    }
    assert!(limiter.check(&7).is_err());

    advance(Duration::from_secs(4)).await;
    limiter.retain_recent();
    assert!(limiter.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_retry_policy_waits_the_refusals_retry_after() {
    let limiter = rejecting(1, Duration::from_secs(3), 1);
    limiter.check().unwrap();
    let policy = RetryPolicy::builder()
        .max_retries(2)
        .initial_delay(10 * MS)
        .build()
        .unwrap();
    let attempts = AtomicU32::new(0);
    let start = Instant::now();
    let n = (|| {
        attempts.fetch_add(1, Ordering::SeqCst);
        limiter.call(|| async { Ok::<_, io::Error>(9) })
    })
    .retry(&policy)
    .await
    .unwrap();
    assert_eq!(n, 9);
    // Refused once, then retried after the 3 s the refusal asked for, not
    // after the policy's 10 ms.
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert_eq!(start.elapsed(), Duration::from_secs(3));

    let err: RateLimitError<io::Error> = limiter.check().unwrap_err().into();
    assert!(err.is_transient());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
}

/// 8 worker threads, each running `calls` checks as fast as they can on
/// `limiter`, then the number let through and the time it all took.
fn hammer(check: impl Fn() -> bool + Send + Sync + 'static, calls: u32) -> (u64, Duration) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(8)
        .enable_time()
        .build()
        .unwrap();
    let check = Arc::new(check);
    let admitted = Arc::new(AtomicU64::new(0));
    let start = std::time::Instant::now();
    runtime.block_on(async {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let check = check.clone();
                let admitted = admitted.clone();
                tokio::spawn(async move {
                    for i in 0..calls {
                        if check() {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                        if i % 1_000 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    (admitted.load(Ordering::Relaxed), start.elapsed())
}

#[test]
fn eight_threads_never_get_more_than_the_burst_of_a_slow_rate() {
    // One permit an hour, a burst of 1_000: 8 × 25_000 checks get exactly
    // the burst (the test ends long before an hour).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let limiter = {
        let _guard = runtime.enter();
        rejecting(1, Duration::from_secs(3_600), 1_000)
    };
    let l = limiter.clone();
    let (admitted, elapsed) = hammer(move || l.check().is_ok(), 25_000);
    assert!(elapsed < Duration::from_secs(3_600));
    assert_eq!(admitted, 1_000);

    let keyed = {
        let _guard = runtime.enter();
        KeyedRateLimiter::<u32>::builder()
            .rate(1, Duration::from_secs(3_600))
            .burst(500)
            .build()
            .unwrap()
    };
    let per_key: Arc<Vec<AtomicU64>> = Arc::new((0..4).map(|_| AtomicU64::new(0)).collect());
    let next = Arc::new(AtomicU32::new(0));
    let (k, counts) = (keyed.clone(), per_key.clone());
    let (admitted, _) = hammer(
        move || {
            let key = next.fetch_add(1, Ordering::Relaxed) % 4;
            let ok = k.check(&key).is_ok();
            if ok {
                counts[key as usize].fetch_add(1, Ordering::Relaxed);
            }
            ok
        },
        25_000,
    );
    assert_eq!(admitted, 4 * 500);
    for count in per_key.iter() {
        assert_eq!(count.load(Ordering::Relaxed), 500);
    }
}

#[test]
fn eight_threads_never_get_more_than_the_rate_allows_while_it_refills() {
    // A permit every 20 µs, a burst of 10: however the threads interleave,
    // what they get is at most the burst plus one permit per 20 µs of the
    // time the test took (counted from before the limiter was built).
    let interval = Duration::from_micros(20);
    let start = std::time::Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let limiter = {
        let _guard = runtime.enter();
        RateLimiter::new(
            RateLimiterConfig::builder()
                .rate(50_000, Duration::from_secs(1))
                .burst(10)
                .build()
                .unwrap(),
        )
    };
    assert_eq!(limiter.config().replenish_interval(), interval);
    let l = limiter.clone();
    let (admitted, _) = hammer(move || l.check().is_ok(), 50_000);
    let elapsed = start.elapsed();
    let allowed = 10 + (elapsed.as_nanos() / interval.as_nanos()) as u64;
    assert!(
        admitted <= allowed,
        "{admitted} let through in {elapsed:?}, at most {allowed} allowed"
    );
    assert!(admitted >= 10, "the burst was not let through: {admitted}");
}

#[test]
fn public_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<RateLimiter>();
    send_sync::<KeyedRateLimiter<String>>();
    send_sync::<RateLimiterConfig>();
    send_sync::<RateLimiterConfigBuilder<RateLimiter>>();
    send_sync::<RateLimited>();
    send_sync::<RateLimitError<io::Error>>();
    send_sync::<TokioClock>();

    // The futures of a limiter can be spawned.
    fn send<T: Send>(_: &T) {}
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let limiter = RateLimiter::default();
    send(&limiter.acquire());
    send(&limiter.call(|| async { Ok::<_, io::Error>(()) }));
    let keyed = KeyedRateLimiter::<String>::builder().build().unwrap();
    let key = String::new();
    send(&keyed.acquire(&key));
}

#[test]
fn a_config_round_trips_through_serde_and_builds_either_limiter() {
    let config: RateLimiterConfig = serde_json::from_str(
        r#"{"permits": 50, "period": "1s", "burst": 10, "mode": "wait", "max_wait": "200ms"}"#,
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let global = RateLimiter::new(config.clone());
    let keyed = KeyedRateLimiter::<u8>::new(config.clone());
    assert_eq!(global.config(), &config);
    assert_eq!(keyed.config(), &config);
    let from_builder = RateLimiterConfigBuilder::<RateLimiter>::from_config(&config)
        .build()
        .unwrap();
    assert_eq!(from_builder.config(), &config);
    assert_eq!(
        serde_json::to_string(&config).unwrap(),
        r#"{"permits":50,"period":"1s","burst":10,"mode":"wait","max_wait":"200ms"}"#
    );
}
