//! Retry policy, backoff, jitter and the retry combinator.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use steadfast::breaker::{BreakerError, CircuitBreaker, State};
use steadfast::retry::{
    GiveUp, Jitter, RetryBudget, RetryError, RetryPolicy, Retryable, Transient, Verdict,
};
use tokio::time::Instant;

mod common;
use common::capture::Capture;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn policy(retries: u32, initial: u64, max: u64, jitter: Jitter) -> RetryPolicy {
    RetryPolicy::builder()
        .max_retries(retries)
        .initial_delay(ms(initial))
        .max_delay(ms(max))
        .jitter(jitter)
        .build()
        .unwrap()
}

fn transient() -> io::Error {
    io::Error::from(io::ErrorKind::ConnectionReset)
}

#[test]
fn defaults_are_documented_values() {
    let p = RetryPolicy::default();
    assert_eq!(p.max_retries(), 3);
    assert_eq!(p.initial_delay(), Duration::from_secs(1));
    assert_eq!(p.max_delay(), Duration::from_secs(30));
    assert_eq!(p.factor(), 2.0);
    assert_eq!(p.jitter(), Jitter::None);
    assert_eq!(p.max_elapsed(), None);
}

#[test]
fn backoff_grows_by_factor_and_is_capped() {
    let p = RetryPolicy::builder()
        .max_retries(7)
        .initial_delay(ms(100))
        .max_delay(ms(2_000))
        .factor(3.0)
        .build()
        .unwrap();
    let delays: Vec<_> = p.backoff().collect();
    assert_eq!(delays, [100, 300, 900, 2_000, 2_000, 2_000, 2_000].map(ms));
}

#[test]
fn config_validation_names_the_field() {
    let cases = [
        (RetryPolicy::builder().factor(0.99), "factor"),
        (RetryPolicy::builder().factor(f64::NAN), "factor"),
        (RetryPolicy::builder().factor(f64::INFINITY), "factor"),
        (
            RetryPolicy::builder()
                .initial_delay(ms(500))
                .max_delay(ms(499)),
            "max_delay",
        ),
        (
            RetryPolicy::builder().max_elapsed(Duration::ZERO),
            "max_elapsed",
        ),
    ];
    for (builder, field) in cases {
        let err = builder.build().unwrap_err();
        assert_eq!(err.field(), field, "{err}");
        assert!(err.to_string().contains(field));
    }
}

#[test]
fn serde_round_trip_with_readable_durations() {
    let p = RetryPolicy::builder()
        .max_retries(5)
        .initial_delay(ms(250))
        .max_delay(Duration::from_secs(90))
        .factor(1.5)
        .jitter(Jitter::Decorrelated)
        .max_elapsed(Duration::from_secs(600))
        .build()
        .unwrap();
    let json = serde_json::to_string(&p).unwrap();
    assert!(json.contains("\"250ms\""), "{json}");
    assert!(json.contains("\"1m30s\""), "{json}");
    assert!(json.contains("\"decorrelated\""), "{json}");
    let back: RetryPolicy = serde_json::from_str(&json).unwrap();
    assert_eq!(back, p);
}

#[test]
fn serde_fills_defaults_and_validates() {
    let p: RetryPolicy =
        serde_json::from_str(r#"{"max_retries": 9, "initial_delay": "2s"}"#).unwrap();
    assert_eq!(p.max_retries(), 9);
    assert_eq!(p.initial_delay(), Duration::from_secs(2));
    assert_eq!(p.max_delay(), Duration::from_secs(30));

    let err = serde_json::from_str::<RetryPolicy>(r#"{"factor": 0.5}"#).unwrap_err();
    assert!(err.to_string().contains("factor"), "{err}");
    let err = serde_json::from_str::<RetryPolicy>(r#"{"max_delay": "10ms"}"#).unwrap_err();
    assert!(err.to_string().contains("max_delay"), "{err}");
    assert!(serde_json::from_str::<RetryPolicy>(r#"{"initial_delay": "soon"}"#).is_err());
    assert!(serde_json::from_str::<RetryPolicy>(r#"{"retries": 3}"#).is_err());
}

/// The serialized field names and defaults stay as they were, and a
/// misspelt field is refused.
#[test]
fn serialized_form_is_stable_and_refuses_unknown_fields() {
    let json = serde_json::to_string(&RetryPolicy::default()).unwrap();
    assert_eq!(
        json,
        r#"{"max_retries":3,"initial_delay":"1s","max_delay":"30s","factor":2.0,"jitter":"none"}"#
    );
    assert_eq!(
        serde_json::from_str::<RetryPolicy>(&json).unwrap(),
        RetryPolicy::default()
    );
    let err = serde_json::from_str::<RetryPolicy>(r#"{"max_retry":3}"#).unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
}

proptest! {
    #[test]
    fn full_jitter_within_zero_and_base(seed: u64, initial in 1u64..5_000, extra in 0u64..100_000, retries in 1u32..20) {
        let p = policy(retries, initial, initial + extra, Jitter::Full);
        let bases: Vec<_> = policy(retries, initial, initial + extra, Jitter::None).backoff().collect();
        for (d, base) in p.backoff().seeded(seed).zip(bases) {
            prop_assert!(d <= base, "{d:?} > {base:?}");
        }
    }

    #[test]
    fn equal_jitter_within_half_and_base(seed: u64, initial in 1u64..5_000, extra in 0u64..100_000, retries in 1u32..20) {
        let p = policy(retries, initial, initial + extra, Jitter::Equal);
        let bases: Vec<_> = policy(retries, initial, initial + extra, Jitter::None).backoff().collect();
        for (d, base) in p.backoff().seeded(seed).zip(bases) {
            prop_assert!(d >= base / 2 && d <= base, "{d:?} not in [{:?}, {base:?}]", base / 2);
        }
    }

    #[test]
    fn decorrelated_jitter_within_base_and_cap(seed: u64, initial in 1u64..5_000, extra in 0u64..100_000, retries in 1u32..30) {
        let p = policy(retries, initial, initial + extra, Jitter::Decorrelated);
        let mut previous = ms(initial);
        let mut count = 0;
        for d in p.backoff().seeded(seed) {
            prop_assert!(d >= ms(initial) && d <= ms(initial + extra), "{d:?}");
            prop_assert!(d <= (previous * 3).max(ms(initial)), "{d:?} > 3 x {previous:?}");
            previous = d;
            count += 1;
        }
        prop_assert_eq!(count, retries);
    }

    #[test]
    fn no_jitter_is_capped_exponential(initial in 1u64..5_000, extra in 0u64..100_000, factor in 1.0f64..10.0, retries in 0u32..40) {
        let p = RetryPolicy::builder()
            .max_retries(retries)
            .initial_delay(ms(initial))
            .max_delay(ms(initial + extra))
            .factor(factor)
            .build()
            .unwrap();
        let delays: Vec<_> = p.backoff().collect();
        prop_assert_eq!(delays.len(), retries as usize);
        for pair in delays.windows(2) {
            prop_assert!(pair[0] <= pair[1]);
        }
        prop_assert!(delays.iter().all(|d| *d >= ms(initial) && *d <= ms(initial + extra)));
    }
}

/// Every kind the docs list as transient is, `ResourceBusy` included; the
/// permanent ones are not.
#[test]
fn io_kinds_listed_as_transient_are_transient() {
    use io::ErrorKind::*;
    for kind in [
        TimedOut,
        Interrupted,
        ConnectionReset,
        ConnectionAborted,
        ConnectionRefused,
        WouldBlock,
        BrokenPipe,
        UnexpectedEof,
        NotConnected,
        ResourceBusy,
    ] {
        assert!(steadfast::retry::is_transient_io_kind(kind), "{kind:?}");
        assert!(io::Error::from(kind).is_transient(), "{kind:?}");
    }
    for kind in [
        NotFound,
        PermissionDenied,
        InvalidInput,
        InvalidData,
        AlreadyExists,
        Unsupported,
    ] {
        assert!(!steadfast::retry::is_transient_io_kind(kind), "{kind:?}");
    }
}

#[test]
fn seeded_jitter_is_reproducible() {
    let p = policy(10, 10, 10_000, Jitter::Full);
    let a: Vec<_> = p.backoff().seeded(42).collect();
    let b: Vec<_> = p.backoff().seeded(42).collect();
    let c: Vec<_> = p.backoff().seeded(43).collect();
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[tokio::test(start_paused = true)]
async fn succeeds_after_transient_failures_waiting_the_backoff() {
    let p = policy(5, 100, 10_000, Jitter::None);
    let calls = AtomicU32::new(0);
    let start = Instant::now();
    let value = p
        .retry(|| async {
            if calls.fetch_add(1, Ordering::SeqCst) < 3 {
                Err(transient())
            } else {
                Ok("ok")
            }
        })
        .await
        .unwrap();
    assert_eq!(value, "ok");
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(start.elapsed(), ms(100 + 200 + 400));
}

#[tokio::test(start_paused = true)]
async fn exhausted_returns_own_error_and_attempts() {
    let p = policy(3, 10, 1_000, Jitter::None);
    let err: RetryError<io::Error> = p
        .retry(|| async { Err::<(), _>(transient()) })
        .await
        .unwrap_err();
    assert_eq!(err.attempts(), 4);
    assert_eq!(err.reason(), GiveUp::Exhausted);
    assert_eq!(err.inner().kind(), io::ErrorKind::ConnectionReset);
    assert!(err.to_string().contains("4 attempts"), "{err}");
    let source = std::error::Error::source(&err).unwrap();
    assert_eq!(source.to_string(), transient().to_string());
    assert!(!err.is_transient());
}

#[tokio::test(start_paused = true)]
async fn non_transient_errors_are_not_retried() {
    for kind in [
        io::ErrorKind::NotFound,
        io::ErrorKind::PermissionDenied,
        io::ErrorKind::InvalidInput,
        io::ErrorKind::InvalidData,
    ] {
        let calls = AtomicU32::new(0);
        let start = Instant::now();
        let err = RetryPolicy::default()
            .retry(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(io::Error::from(kind))
            })
            .await
            .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 1, "{kind:?}");
        assert_eq!(err.reason(), GiveUp::NotTransient);
        assert_eq!(err.attempts(), 1);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}

#[tokio::test(start_paused = true)]
async fn predicate_overrides_classification() {
    let calls = AtomicU32::new(0);
    let err = policy(5, 1, 10, Jitter::None)
        .retry(|| async {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(if n < 2 { "busy" } else { "fatal" })
        })
        .when(|e| *e == "busy")
        .await
        .unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(*err.inner(), "fatal");
    assert_eq!(err.reason(), GiveUp::NotTransient);
}

#[tokio::test(start_paused = true)]
async fn max_elapsed_stops_retries() {
    // Delays 1s, 2s, 4s, 8s...; attempts take 500 ms each. With a 5 s budget:
    // t=0.5 fail, wait 1 s; t=2.0 fail, wait 2 s; t=4.5 fail, next wait 4 s
    // would end at 8.5 s > 5 s: give up.
    let p = RetryPolicy::builder()
        .max_retries(10)
        .max_elapsed(Duration::from_secs(5))
        .build()
        .unwrap();
    let calls = AtomicU32::new(0);
    let start = Instant::now();
    let err = p
        .retry(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(ms(500)).await;
            Err::<(), _>(transient())
        })
        .await
        .unwrap_err();
    assert_eq!(err.reason(), GiveUp::ElapsedBudget);
    assert_eq!(err.attempts(), 3);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(start.elapsed(), ms(4_500));
}

#[derive(Debug)]
struct RateLimited(Duration);

impl std::fmt::Display for RateLimited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rate limited, retry after {:?}", self.0)
    }
}

impl Transient for RateLimited {
    fn is_transient(&self) -> bool {
        true
    }
    fn retry_after(&self) -> Option<Duration> {
        Some(self.0)
    }
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured() {
    let calls = AtomicU32::new(0);
    let start = Instant::now();
    let mut delays = Vec::new();
    let value = policy(3, 10, 100, Jitter::None)
        .retry(|| async {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(RateLimited(Duration::from_secs(7)))
            } else {
                Ok(5)
            }
        })
        .notify(|_, _: &RateLimited, d| delays.push(d))
        .await
        .unwrap();
    assert_eq!(value, 5);
    assert_eq!(delays, [Duration::from_secs(7)]);
    assert_eq!(start.elapsed(), Duration::from_secs(7));
}

#[tokio::test(start_paused = true)]
async fn retry_after_beyond_budget_gives_up() {
    let p = RetryPolicy::builder()
        .max_elapsed(Duration::from_secs(5))
        .build()
        .unwrap();
    let err = p
        .retry(|| async { Err::<(), _>(RateLimited(Duration::from_secs(60))) })
        .await
        .unwrap_err();
    assert_eq!(err.reason(), GiveUp::ElapsedBudget);
    assert_eq!(err.attempts(), 1);
}

#[tokio::test(start_paused = true)]
async fn hook_sees_attempt_error_and_delay() {
    let mut seen = Vec::new();
    let _ = policy(3, 100, 1_000, Jitter::None)
        .retry(|| async { Err::<(), _>(transient()) })
        .notify(|attempt, e: &io::Error, delay| seen.push((attempt, e.kind(), delay)))
        .await;
    assert_eq!(
        seen,
        [
            (1, io::ErrorKind::ConnectionReset, ms(100)),
            (2, io::ErrorKind::ConnectionReset, ms(200)),
            (3, io::ErrorKind::ConnectionReset, ms(400)),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn jittered_waits_stay_within_bounds() {
    let p = policy(6, 100, 1_000, Jitter::Full);
    let mut delays = Vec::new();
    let start = Instant::now();
    let _ = p
        .retry(|| async { Err::<(), _>(transient()) })
        .seeded(9)
        .notify(|_, _: &io::Error, d| delays.push(d))
        .await;
    assert_eq!(delays, p.backoff().seeded(9).collect::<Vec<_>>());
    // The timer has millisecond resolution: each sleep may end up to 1 ms late.
    let total: Duration = delays.iter().sum();
    assert!(start.elapsed() >= total && start.elapsed() <= total + ms(delays.len() as u64));
}

#[tokio::test(start_paused = true)]
async fn extension_trait_and_zero_retries() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let op = move || {
        let c = c.clone();
        async move {
            c.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(transient())
        }
    };
    let err = op.retry(&RetryPolicy::no_retry()).await.unwrap_err();
    assert_eq!(err.attempts(), 1);
    assert_eq!(err.reason(), GiveUp::Exhausted);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_retry_stops_further_attempts() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let task = tokio::spawn(async move {
        policy(10, 1_000, 1_000, Jitter::None)
            .retry(|| {
                c.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), _>(transient()) }
            })
            .await
    });
    tokio::time::sleep(ms(1_500)).await;
    task.abort();
    let _ = task.await;
    let seen = calls.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(seen, 2);
    assert_eq!(calls.load(Ordering::SeqCst), seen);
}

#[test]
fn public_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<RetryPolicy>();
    assert_send_sync::<steadfast::retry::Backoff>();
    assert_send_sync::<RetryError<io::Error>>();
    fn assert_send<T: Send>(_: &T) {}
    let p = RetryPolicy::default();
    let fut = p.retry(|| async { Ok::<_, io::Error>(()) });
    assert_send(&fut);
}

// ------------------------------------------------------- errors without Display

/// An error that implements neither `Display` nor `Debug`.
struct Opaque(u32);

#[tokio::test(start_paused = true)]
async fn an_error_without_display_or_debug_is_retried_and_logged() {
    let capture = Capture::start();
    let calls = AtomicU32::new(0);
    let mut hooked = Vec::new();
    let err = policy(2, 100, 1_000, Jitter::None)
        .retry(|| async { Err::<(), _>(Opaque(calls.fetch_add(1, Ordering::SeqCst))) })
        .when(|_| true)
        .notify(|attempt, e: &Opaque, delay| hooked.push((attempt, e.0, delay)))
        .await
        .map_err(|e| (e.attempts(), e.reason(), e.into_inner().0))
        .err();
    assert_eq!(err, Some((3, GiveUp::Exhausted, 2)));
    assert_eq!(hooked, [(1, 0, ms(100)), (2, 1, ms(200))]);

    let warns = capture.at("steadfast::retry", tracing::Level::WARN);
    assert_eq!(warns.len(), 2);
    assert_eq!(warns[0].fields["attempt"], "1");
    assert_eq!(warns[0].fields["max_retries"], "2");
    assert_eq!(warns[0].fields["delay"], "100ms");
    assert!(!warns[0].fields.contains_key("error"));
    let errors = capture.at("steadfast::retry", tracing::Level::ERROR);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].fields["attempts"], "3");
    assert_eq!(errors[0].fields["reason"], "retries exhausted");
}

// --------------------------------------------------- Retry-After through .when

#[tokio::test(start_paused = true)]
async fn when_with_verdict_of_keeps_the_errors_retry_after() {
    let calls = AtomicU32::new(0);
    let start = Instant::now();
    let value = policy(3, 10, 100, Jitter::None)
        .retry(|| async {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(RateLimited(Duration::from_secs(7)))
            } else {
                Ok(5)
            }
        })
        .when(Verdict::of)
        .await
        .unwrap();
    assert_eq!(value, 5);
    // 7 s twice, not the 10 ms and 20 ms of the backoff
    assert_eq!(start.elapsed(), Duration::from_secs(14));
}

#[tokio::test(start_paused = true)]
async fn when_returning_retry_after_waits_the_hint() {
    let calls = AtomicU32::new(0);
    let start = Instant::now();
    let mut delays = Vec::new();
    let value = policy(3, 10, 100, Jitter::None)
        .retry(|| async {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                Err("slow down")
            } else {
                Ok(1)
            }
        })
        .when(|e| match *e {
            "slow down" => Verdict::RetryAfter(Duration::from_secs(3)),
            _ => Verdict::Stop,
        })
        .notify(|_, _: &&str, d| delays.push(d))
        .await
        .unwrap();
    assert_eq!(value, 1);
    assert_eq!(delays, [Duration::from_secs(3)]);
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

// ------------------------------------------------------- breaker rejections

#[tokio::test(start_paused = true)]
async fn a_rejection_by_a_forced_open_breaker_is_not_retried() {
    let breaker = CircuitBreaker::default();
    breaker.force_open();
    let calls = AtomicU32::new(0);
    let err = policy(3, 100, 1_000, Jitter::None)
        .retry(|| {
            breaker.call(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok::<_, io::Error>(1)
            })
        })
        .await
        .unwrap_err();
    assert_eq!(err.attempts(), 1);
    assert_eq!(err.reason(), GiveUp::NotTransient);
    assert!(err.inner().is_forced_open());
    assert!(!err.inner().is_transient());
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    let rejected = breaker.try_acquire().unwrap_err();
    assert!(rejected.is_forced_open());
    assert!(!rejected.is_transient());
}

#[tokio::test(start_paused = true)]
async fn a_rejection_by_a_breaker_open_on_its_own_waits_its_retry_after() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(1)
        .recovery_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let _ = breaker.call(|| async { Err::<(), _>(transient()) }).await;
    let rejected = breaker.try_acquire().unwrap_err();
    assert!(!rejected.is_forced_open());
    assert!(rejected.is_transient());

    let start = Instant::now();
    let value = policy(3, 100, 1_000, Jitter::None)
        .retry(|| breaker.call(|| async { Ok::<_, io::Error>(7) }))
        .await
        .unwrap();
    assert_eq!(value, 7);
    // one wait of the breaker's 10 s, not the policy's 100 ms
    assert_eq!(start.elapsed(), Duration::from_secs(10));
    assert_eq!(breaker.snapshot().state, State::Closed);
    let half_open: BreakerError<io::Error> = BreakerError::Rejected {
        retry_after: None,
        state: State::HalfOpen,
    };
    assert!(half_open.is_transient());
}

// ------------------------------------------------------------ retry on values

#[tokio::test(start_paused = true)]
async fn values_refused_by_when_ok_are_retried_at_the_backoff() {
    let calls = AtomicU32::new(0);
    let start = Instant::now();
    let status = policy(3, 100, 1_000, Jitter::None)
        .retry(|| async {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            Ok::<u16, io::Error>(if n < 2 { 503 } else { 200 })
        })
        .when_ok(|status| *status == 503)
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(start.elapsed(), ms(300));
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_from_a_value_is_honoured() {
    #[derive(Debug, PartialEq)]
    struct Response {
        status: u16,
        retry_after: Option<Duration>,
    }
    let calls = AtomicU32::new(0);
    let start = Instant::now();
    let response = policy(3, 100, 1_000, Jitter::None)
        .retry(|| async {
            Ok::<_, io::Error>(if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                Response {
                    status: 503,
                    retry_after: Some(Duration::from_secs(4)),
                }
            } else {
                Response {
                    status: 200,
                    retry_after: None,
                }
            })
        })
        .when_ok(|r: &Response| match (r.status, r.retry_after) {
            (503, Some(after)) => Verdict::RetryAfter(after),
            (503, None) => Verdict::Retry,
            _ => Verdict::Stop,
        })
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(start.elapsed(), Duration::from_secs(4));
}

#[tokio::test(start_paused = true)]
async fn out_of_retries_on_a_value_returns_the_last_value() {
    let capture = Capture::start();
    let calls = AtomicU32::new(0);
    let status = policy(2, 100, 1_000, Jitter::None)
        .retry(|| async { Ok::<u32, io::Error>(calls.fetch_add(1, Ordering::SeqCst)) })
        .when_ok(|_| true)
        .await
        .unwrap();
    assert_eq!(status, 2); // the third attempt's value
    let errors = capture.at("steadfast::retry", tracing::Level::ERROR);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].message(), "giving up; returning the last value");
    assert_eq!(errors[0].fields["reason"], "retries exhausted");
    assert_eq!(errors[0].fields["attempts"], "3");
    // errors and values count against the same retries
    let calls = AtomicU32::new(0);
    let err = policy(2, 100, 1_000, Jitter::None)
        .retry(|| async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Ok(0),
                _ => Err(transient()),
            }
        })
        .when_ok(|v: &u32| *v == 0)
        .await
        .unwrap_err();
    assert_eq!(err.attempts(), 3);
    assert_eq!(err.reason(), GiveUp::Exhausted);
}

// --------------------------------------------------------------- retry budget

#[tokio::test(start_paused = true)]
async fn a_retry_refused_by_the_budget_returns_the_last_error() {
    let budget = RetryBudget::builder()
        .ratio(0.0)
        .min_retries_per_second(1)
        .ttl(Duration::from_secs(2))
        .build()
        .unwrap();
    let calls = AtomicU32::new(0);
    let err = policy(5, 100, 1_000, Jitter::None)
        .retry(|| async { Err::<(), _>(Opaque(calls.fetch_add(1, Ordering::SeqCst))) })
        .when(|_| true)
        .budget(&budget)
        .await
        .unwrap_err();
    // the reserve of 2 retries, then the budget says no
    assert_eq!(err.attempts(), 3);
    assert_eq!(err.reason(), GiveUp::BudgetExhausted);
    assert_eq!(err.inner().0, 2);
    assert_eq!(err.reason().to_string(), "retry budget exhausted");
}
