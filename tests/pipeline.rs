//! The resilience pipeline on paused time: composition order, the error that
//! says which strategy stopped a call, retries on errors and on values,
//! fallbacks, cancel safety and counts under load.

use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use steadfast::breaker::{CircuitBreaker, State};
use steadfast::pipeline::{Bulkhead, Fallback, Pipeline, PipelineError, RetryStrategy, StoppedBy};
use steadfast::retry::{GiveUp, RetryPolicy, Transient, Verdict};
use tokio::time::{advance, sleep, Instant};

mod common;
use common::capture::Capture;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn reset() -> io::Error {
    io::Error::from(io::ErrorKind::ConnectionReset)
}

fn retries(n: u32) -> RetryPolicy {
    RetryPolicy::builder()
        .max_retries(n)
        .initial_delay(secs(1))
        .factor(2.0)
        .build()
        .unwrap()
}

// ------------------------------------------------------------ building

#[test]
fn bad_input_is_a_config_error_naming_the_field() {
    assert_eq!(
        Pipeline::builder().build().unwrap_err().field(),
        "strategies"
    );
    let err = Pipeline::builder()
        .retry(RetryPolicy::default())
        .timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "timeout");
    assert!(err.to_string().contains("timeout"), "{err}");
    let zero = Bulkhead::builder().max_concurrent(0).build().unwrap_err();
    assert_eq!(zero.field(), "max_concurrent");
}

#[test]
fn a_pipeline_is_clone_send_sync() {
    fn check<P: Clone + Send + Sync + 'static>(_: &P) {}
    let pipeline = Pipeline::builder()
        .name("all")
        .fallback(Fallback::value(1u32))
        .timeout(secs(10))
        .retry(RetryPolicy::default())
        .circuit_breaker(CircuitBreaker::default())
        .timeout(secs(1))
        .bulkhead(Bulkhead::default())
        .build()
        .unwrap();
    check(&pipeline);
    assert_eq!(pipeline.name(), Some("all"));
}

#[tokio::test(start_paused = true)]
async fn its_future_can_be_spawned() {
    let pipeline = Pipeline::builder()
        .timeout(secs(10))
        .retry(retries(2))
        .circuit_breaker(CircuitBreaker::default())
        .timeout(secs(1))
        .bulkhead(Bulkhead::default())
        .build()
        .unwrap();
    let task = tokio::spawn(async move {
        pipeline
            .execute(|| async {
                sleep(ms(10)).await;
                Ok::<_, io::Error>(5)
            })
            .await
    });
    assert_eq!(task.await.unwrap().unwrap(), 5);
}

// ------------------------------------------------------------ order

#[tokio::test(start_paused = true)]
async fn a_timeout_outside_the_retry_bounds_the_whole_call() {
    let calls = AtomicU32::new(0);
    let pipeline = Pipeline::builder()
        .timeout(secs(4))
        .retry(retries(10))
        .build()
        .unwrap();
    let start = Instant::now();
    let err = pipeline
        .execute(|| async {
            calls.fetch_add(1, Ordering::Relaxed);
            Err::<(), _>(reset())
        })
        .await
        .unwrap_err();
    // Attempts at 0 s, 1 s, 3 s; the next would be at 7 s.
    assert_eq!(err.stopped_by(), StoppedBy::Timeout);
    assert!(matches!(err, PipelineError::TimedOut { after } if after == secs(4)));
    assert_eq!(start.elapsed(), secs(4));
    assert_eq!(calls.load(Ordering::Relaxed), 3);
}

#[tokio::test(start_paused = true)]
async fn a_timeout_inside_the_retry_bounds_each_attempt() {
    let calls = AtomicU32::new(0);
    let pipeline = Pipeline::builder()
        .retry(retries(2))
        .timeout(secs(5))
        .build()
        .unwrap();
    let start = Instant::now();
    let err = pipeline
        .execute(|| async {
            calls.fetch_add(1, Ordering::Relaxed);
            std::future::pending::<Result<(), io::Error>>().await
        })
        .await
        .unwrap_err();
    assert_eq!(calls.load(Ordering::Relaxed), 3);
    // Three attempts of 5 s, waits of 1 s and 2 s.
    assert_eq!(start.elapsed(), secs(18));
    match &err {
        PipelineError::RetriesExhausted {
            attempts,
            reason,
            last,
        } => {
            assert_eq!(*attempts, 3);
            assert_eq!(*reason, GiveUp::Exhausted);
            assert!(matches!(**last, PipelineError::TimedOut { after } if after == secs(5)));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.stopped_by(), StoppedBy::Retry);
    assert!(err.operation_error().is_none());
}

#[tokio::test(start_paused = true)]
async fn a_breaker_inside_the_retry_counts_every_attempt_and_stops_the_retries() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(2)
        .recovery_timeout(secs(60))
        .build()
        .unwrap();
    let calls = AtomicU32::new(0);
    let pipeline = Pipeline::builder()
        .retry(retries(5))
        .circuit_breaker(breaker.clone())
        .build()
        .unwrap();
    let err = pipeline
        .execute(|| async {
            calls.fetch_add(1, Ordering::Relaxed);
            Err::<(), _>(reset())
        })
        .await
        .unwrap_err();
    assert_eq!(breaker.state(), State::Open);
    // Two failures opened the circuit; the third attempt was refused and
    // asked for the recovery timeout, which the retry waits, then the trial
    // fails and the circuit opens again... until the retries run out.
    assert!(calls.load(Ordering::Relaxed) >= 2);
    assert_eq!(err.stopped_by(), StoppedBy::Retry);
    assert_eq!(err.attempts(), 6);
}

#[tokio::test(start_paused = true)]
async fn a_breaker_outside_the_retry_counts_the_call_once() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(2)
        .build()
        .unwrap();
    let pipeline = Pipeline::builder()
        .circuit_breaker(breaker.clone())
        .retry(retries(3))
        .build()
        .unwrap();
    let _ = pipeline
        .execute(|| async { Err::<(), _>(reset()) })
        .await
        .unwrap_err();
    assert_eq!(breaker.state(), State::Closed, "one failed call, not four");
    assert_eq!(breaker.snapshot().consecutive_failures, 1);
}

#[tokio::test(start_paused = true)]
async fn a_forced_open_breaker_refuses_without_calling_and_is_not_counted_by_the_one_outside() {
    let outer = CircuitBreaker::builder()
        .failure_threshold(1)
        .build()
        .unwrap();
    let inner = CircuitBreaker::default();
    inner.force_open();
    let calls = AtomicU32::new(0);
    let pipeline = Pipeline::builder()
        .circuit_breaker(outer.clone())
        .circuit_breaker(inner)
        .build()
        .unwrap();
    let err = pipeline
        .execute(|| async {
            calls.fetch_add(1, Ordering::Relaxed);
            Ok::<_, io::Error>(())
        })
        .await
        .unwrap_err();
    assert_eq!(calls.load(Ordering::Relaxed), 0);
    assert_eq!(err.stopped_by(), StoppedBy::CircuitBreaker);
    assert!(err.is_rejection());
    assert_eq!(outer.state(), State::Closed, "a refusal is not a failure");
}

#[tokio::test(start_paused = true)]
async fn a_full_bulkhead_is_not_a_failure_for_the_breaker_and_is_retried() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(1)
        .build()
        .unwrap();
    let bulkhead = Bulkhead::builder().max_concurrent(1).build().unwrap();
    let pipeline = Pipeline::builder()
        .retry(retries(3))
        .circuit_breaker(breaker.clone())
        .bulkhead(bulkhead.clone())
        .build()
        .unwrap();
    let held = bulkhead.try_acquire().unwrap();
    let call = pipeline.execute(|| async { Ok::<_, io::Error>(9) });
    let release = async {
        sleep(ms(1500)).await;
        drop(held);
    };
    let (answer, ()) = tokio::join!(call, release);
    assert_eq!(answer.unwrap(), 9);
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(bulkhead.in_use(), 0);
}

// ------------------------------------------------------------ errors

#[tokio::test(start_paused = true)]
async fn an_error_that_is_not_transient_comes_through_as_it_is() {
    let calls = AtomicU32::new(0);
    let pipeline = Pipeline::builder().retry(retries(3)).build().unwrap();
    let err = pipeline
        .execute(|| async {
            calls.fetch_add(1, Ordering::Relaxed);
            Err::<(), _>(io::Error::from(io::ErrorKind::NotFound))
        })
        .await
        .unwrap_err();
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    assert_eq!(err.stopped_by(), StoppedBy::Operation);
    assert_eq!(err.attempts(), 1);
    assert_eq!(
        err.into_operation_error().unwrap().kind(),
        io::ErrorKind::NotFound
    );
}

#[tokio::test(start_paused = true)]
async fn errors_display_and_chain() {
    use std::error::Error as _;
    let pipeline = Pipeline::builder().retry(retries(1)).build().unwrap();
    let err = pipeline
        .execute(|| async { Err::<(), _>(reset()) })
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "retry gave up after 2 attempts (retries exhausted): connection reset"
    );
    let last = err.source().unwrap();
    assert_eq!(last.to_string(), "connection reset");
    assert!(
        !err.is_transient(),
        "a retry that gave up is not retried again"
    );
}

#[tokio::test(start_paused = true)]
async fn an_error_type_without_display_works() {
    struct Opaque;
    let pipeline = Pipeline::builder()
        .strategy(RetryStrategy::new(retries(2)).when(|_: &Opaque| true))
        .timeout(secs(1))
        .build()
        .unwrap();
    let err = pipeline
        .execute(|| async { Err::<(), _>(Opaque) })
        .await
        .unwrap_err();
    assert_eq!(err.attempts(), 3);
}

// ------------------------------------------------------------ results

#[tokio::test(start_paused = true)]
async fn rejected_values_are_retried_and_the_last_is_returned_when_retries_run_out() {
    let calls = AtomicU32::new(0);
    let pipeline = Pipeline::builder()
        .strategy(RetryStrategy::new(retries(2)).when_ok(|status: &u16| *status == 503))
        .build()
        .unwrap();
    let start = Instant::now();
    let status = pipeline
        .execute(|| async {
            calls.fetch_add(1, Ordering::Relaxed);
            Ok::<u16, io::Error>(503)
        })
        .await
        .unwrap();
    assert_eq!(status, 503);
    assert_eq!(calls.load(Ordering::Relaxed), 3);
    assert_eq!(start.elapsed(), secs(3));
}

#[tokio::test(start_paused = true)]
async fn a_value_can_ask_for_its_delay() {
    let calls = AtomicU32::new(0);
    let pipeline = Pipeline::builder()
        .strategy(
            RetryStrategy::new(retries(3)).when_ok(|answer: &(u16, u64)| match answer {
                (503, after) => Verdict::RetryAfter(secs(*after)),
                _ => Verdict::Stop,
            }),
        )
        .build()
        .unwrap();
    let start = Instant::now();
    let answer = pipeline
        .execute(|| async {
            match calls.fetch_add(1, Ordering::Relaxed) {
                0 => Ok::<_, io::Error>((503, 7)),
                _ => Ok((200, 0)),
            }
        })
        .await
        .unwrap();
    assert_eq!(answer, (200, 0));
    assert_eq!(start.elapsed(), secs(7));
}

#[tokio::test(start_paused = true)]
async fn an_error_can_ask_for_its_delay() {
    #[derive(Debug)]
    struct Busy(u64);
    impl Transient for Busy {
        fn is_transient(&self) -> bool {
            true
        }
        fn retry_after(&self) -> Option<Duration> {
            Some(secs(self.0))
        }
    }
    let calls = AtomicU32::new(0);
    let pipeline = Pipeline::builder().retry(retries(3)).build().unwrap();
    let start = Instant::now();
    pipeline
        .execute(|| async {
            match calls.fetch_add(1, Ordering::Relaxed) {
                0 => Err(Busy(30)),
                _ => Ok(()),
            }
        })
        .await
        .unwrap();
    assert_eq!(start.elapsed(), secs(30));
}

// ------------------------------------------------------------ fallback

#[tokio::test(start_paused = true)]
async fn a_fallback_sees_the_error_and_its_failure_says_why_it_ran() {
    let pipeline = Pipeline::builder()
        .fallback(Fallback::with(
            |error: PipelineError<io::Error>| async move {
                assert_eq!(error.stopped_by(), StoppedBy::Timeout);
                Err::<u8, _>(io::Error::other("no cache either"))
            },
        ))
        .timeout(secs(1))
        .build()
        .unwrap();
    let err = pipeline.execute(std::future::pending).await.unwrap_err();
    match &err {
        PipelineError::FallbackFailed {
            error,
            cause,
            attempts,
        } => {
            assert_eq!(error.to_string(), "no cache either");
            assert_eq!(*cause, StoppedBy::Timeout);
            assert_eq!(*attempts, 1);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.stopped_by(), StoppedBy::Fallback);
}

#[tokio::test(start_paused = true)]
async fn a_fallback_limited_to_some_errors_lets_the_others_through() {
    let pipeline = Pipeline::builder()
        .fallback(Fallback::value(0u8).when(|e: &PipelineError<io::Error>| e.is_rejection()))
        .bulkhead(Bulkhead::builder().max_concurrent(1).build().unwrap())
        .build()
        .unwrap();
    let err = pipeline.execute(|| async { Err(reset()) }).await;
    assert_eq!(err.unwrap_err().stopped_by(), StoppedBy::Operation);
}

#[tokio::test(start_paused = true)]
async fn a_fallback_never_hides_a_panic() {
    let pipeline = Pipeline::builder()
        .fallback(Fallback::value(1u8))
        .retry(retries(3))
        .build()
        .unwrap();
    let call = pipeline.execute(|| async {
        panic!("bug in the operation");
        #[allow(unreachable_code)]
        Ok::<u8, io::Error>(0)
    });
    let unwound = std::panic::AssertUnwindSafe(call).catch_unwind().await;
    assert!(unwound.is_err(), "the panic reached the caller");
}

// ------------------------------------------------------------ cancellation

#[tokio::test(start_paused = true)]
async fn dropping_the_call_at_each_await_gives_everything_back() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(1)
        .recovery_timeout(secs(1))
        .half_open_permits(1)
        .build()
        .unwrap();
    let bulkhead = Bulkhead::builder()
        .max_concurrent(1)
        .max_queued(1)
        .queue_timeout(secs(60))
        .build()
        .unwrap();
    let pipeline = Pipeline::builder()
        .timeout(secs(100))
        .retry(retries(5))
        .circuit_breaker(breaker.clone())
        .bulkhead(bulkhead.clone())
        .timeout(secs(3))
        .build()
        .unwrap();
    // Drop the call after 0, 0.5, 1, …, 20 s: inside an attempt, inside a
    // wait between attempts, while queued for the bulkhead.
    for step in 0..40u64 {
        breaker.reset();
        let blocker = (step % 3 == 0).then(|| bulkhead.try_acquire().unwrap());
        let started = AtomicU32::new(0);
        {
            let call = pipeline.execute(|| async {
                started.fetch_add(1, Ordering::Relaxed);
                sleep(secs(2)).await;
                Err::<(), _>(reset())
            });
            let _ = tokio::time::timeout(ms(500 * step), call).await;
        }
        drop(blocker);
        assert_eq!(bulkhead.in_use(), 0, "step {step}");
        assert_eq!(bulkhead.queued(), 0, "step {step}");
        if breaker.state() == State::HalfOpen {
            // A trial place held by the dropped call is free again.
            advance(secs(1)).await;
            assert!(breaker.try_acquire().is_ok(), "step {step}");
        }
    }
}

// ------------------------------------------------------------ load

/// Retries every error, without waiting.
#[derive(Clone, Copy)]
struct AtOnce;

impl steadfast::retry::Classifier<u64> for AtOnce {
    fn is_transient(&mut self, _: &u64) -> bool {
        true
    }
    fn retry_after(&mut self, _: &u64) -> Option<Duration> {
        Some(Duration::ZERO)
    }
}

#[test]
fn eight_threads_fifty_thousand_calls_every_count_adds_up() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(8)
        .enable_all()
        .build()
        .unwrap();
    let breaker = CircuitBreaker::builder()
        .failure_threshold(1_000_000)
        .build()
        .unwrap();
    let bulkhead = Bulkhead::builder()
        .max_concurrent(4)
        .max_queued(1000)
        .build()
        .unwrap();
    let pipeline = Pipeline::builder()
        .fallback(
            Fallback::value(u64::MAX)
                .when(|e: &PipelineError<u64>| e.stopped_by() == StoppedBy::Retry),
        )
        .strategy(
            // Retries at once: the waits are not what this test counts.
            RetryStrategy::new(RetryPolicy::builder().max_retries(1).build().unwrap())
                .classify(AtOnce),
        )
        .circuit_breaker(breaker.clone())
        .bulkhead(bulkhead.clone())
        .build()
        .unwrap();
    let attempts = Arc::new(AtomicU64::new(0));
    let (ok, fallen_back) = runtime.block_on(async {
        let mut tasks = Vec::new();
        for thread in 0..8u64 {
            let pipeline = pipeline.clone();
            let attempts = attempts.clone();
            tasks.push(tokio::spawn(async move {
                let (mut ok, mut fallen_back) = (0u64, 0u64);
                for i in 0..50_000u64 {
                    let n = thread * 50_000 + i;
                    let attempts = &attempts;
                    // Every 10th call fails on both attempts, every 7th on
                    // its first only.
                    let first = AtomicU32::new(0);
                    let answer = pipeline
                        .execute(|| async {
                            attempts.fetch_add(1, Ordering::Relaxed);
                            let k = first.fetch_add(1, Ordering::Relaxed);
                            if n % 10 == 0 || (n % 7 == 0 && k == 0) {
                                Err(n)
                            } else {
                                Ok(n)
                            }
                        })
                        .await
                        .unwrap();
                    if answer == u64::MAX {
                        fallen_back += 1;
                    } else {
                        assert_eq!(answer, n);
                        ok += 1;
                    }
                }
                (ok, fallen_back)
            }));
        }
        let mut totals = (0u64, 0u64);
        for task in tasks {
            let (ok, fallen_back) = task.await.unwrap();
            totals.0 += ok;
            totals.1 += fallen_back;
        }
        totals
    });
    let calls = 8 * 50_000u64;
    let failing = (0..calls).filter(|n| n % 10 == 0).count() as u64;
    let flaky = (0..calls).filter(|n| n % 10 != 0 && n % 7 == 0).count() as u64;
    assert_eq!(ok + fallen_back, calls);
    assert_eq!(fallen_back, failing);
    // Two attempts for failing and flaky calls, one for the rest.
    assert_eq!(attempts.load(Ordering::Relaxed), calls + failing + flaky);
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(bulkhead.in_use(), 0);
    assert_eq!(bulkhead.queued(), 0);
}

// ------------------------------------------------------------ events

#[tokio::test(start_paused = true)]
async fn a_named_pipeline_names_itself_in_its_failure_event() {
    let logs = Capture::start();
    let pipeline = Pipeline::builder()
        .name("inventory")
        .retry(retries(1))
        .build()
        .unwrap();
    let _ = pipeline.execute(|| async { Err::<(), _>(reset()) }).await;
    let events = logs.at("steadfast::pipeline", tracing::Level::DEBUG);
    let failure = events
        .iter()
        .find(|event| event.message() == "call failed")
        .expect("a failure event");
    assert_eq!(failure.fields["pipeline"], "\"inventory\"");
    assert_eq!(failure.fields["stopped_by"], "retry");
    assert_eq!(failure.fields["attempts"], "2");
}

// ------------------------------------------------------------ retry budget

/// 100 callers call, through one pipeline, a dependency down for 10 s of
/// paused time, each call retrying up to 3 times behind a budget of 10 %
/// (floor: 10 retries a second): the retries sent stay within 10 % of the
/// calls plus the floor for the 10 s.
#[tokio::test(start_paused = true)]
async fn a_retry_storm_through_a_pipeline_stays_within_its_budget() {
    let budget = steadfast::retry::RetryBudget::builder()
        .ratio(0.1)
        .build()
        .unwrap();
    let pipeline = Pipeline::builder()
        .strategy(
            RetryStrategy::new(
                RetryPolicy::builder()
                    .max_retries(3)
                    .initial_delay(ms(100))
                    .build()
                    .unwrap(),
            )
            .budget(&budget),
        )
        .timeout(secs(1))
        .build()
        .unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    let attempts = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    // Every call, retries included (100 + 200 + 400 ms), ends inside the
    // budget's 10 s window.
    let last_call = start + ms(9_200);
    let mut tasks = Vec::new();
    for caller in 0..100u64 {
        let pipeline = pipeline.clone();
        let (calls, attempts, refused) = (calls.clone(), attempts.clone(), refused.clone());
        tasks.push(tokio::spawn(async move {
            sleep(Duration::from_micros(caller * 500)).await;
            while Instant::now() < last_call {
                calls.fetch_add(1, Ordering::Relaxed);
                let err = pipeline
                    .execute(|| {
                        attempts.fetch_add(1, Ordering::Relaxed);
                        async { Err::<(), _>(reset()) }
                    })
                    .await
                    .unwrap_err();
                if let PipelineError::RetriesExhausted {
                    reason: GiveUp::BudgetExhausted,
                    ..
                } = err
                {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
                sleep(ms(50)).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let calls = calls.load(Ordering::Relaxed);
    let retries = attempts.load(Ordering::Relaxed) - calls;
    assert!(calls > 10_000, "{calls} calls");
    let allowed = calls / 10 + 10 * 10;
    assert!(
        retries <= allowed,
        "{retries} retries for {calls} calls: more than {allowed}"
    );
    assert!(
        retries >= calls / 10,
        "the budget was used: {retries} for {calls}"
    );
    assert!(refused.load(Ordering::Relaxed) > calls / 2);
}

// ------------------------------------------------------------ rate limiter

#[cfg(feature = "rate-limit")]
#[tokio::test(start_paused = true)]
async fn a_retry_outside_a_rate_limiter_waits_the_time_it_asks_for_and_the_breaker_counts_nothing()
{
    use steadfast::pipeline::RateLimiter;
    let limiter = RateLimiter::builder()
        .permits(1)
        .period(secs(10))
        .build()
        .unwrap();
    let breaker = CircuitBreaker::builder()
        .failure_threshold(1)
        .build()
        .unwrap();
    let pipeline = Pipeline::builder()
        .retry(retries(3))
        .circuit_breaker(breaker.clone())
        .rate_limiter(limiter)
        .build()
        .unwrap();
    let start = Instant::now();
    assert_eq!(
        pipeline
            .execute(|| async { Ok::<_, io::Error>(1) })
            .await
            .unwrap(),
        1
    );
    assert_eq!(start.elapsed(), Duration::ZERO);
    // The second call is refused, told to come back in 10 s, and is.
    assert_eq!(
        pipeline
            .execute(|| async { Ok::<_, io::Error>(2) })
            .await
            .unwrap(),
        2
    );
    assert_eq!(start.elapsed(), secs(10));
    assert_eq!(breaker.state(), State::Closed, "a refusal is not a failure");

    let bare = Pipeline::builder()
        .rate_limiter(
            RateLimiter::builder()
                .permits(1)
                .period(secs(10))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    bare.execute(|| async { Ok::<_, io::Error>(()) })
        .await
        .unwrap();
    let err = bare
        .execute(|| async { Ok::<_, io::Error>(()) })
        .await
        .unwrap_err();
    assert_eq!(err.stopped_by(), StoppedBy::RateLimiter);
    assert!(err.is_rejection());
    assert_eq!(err.retry_after(), Some(secs(10)));
}

// ------------------------------------------------------------ hedging

#[tokio::test(start_paused = true)]
async fn a_hedged_call_wins_with_the_faster_attempt_and_counts_once_in_the_breaker_outside() {
    use steadfast::pipeline::Hedge;
    let breaker = CircuitBreaker::builder()
        .failure_threshold(5)
        .build()
        .unwrap();
    let hedge = Hedge::builder()
        .max_attempts(3)
        .delay(ms(100))
        .build()
        .unwrap();
    let pipeline = Pipeline::builder()
        .circuit_breaker(breaker.clone())
        .hedge(hedge.clone())
        .timeout(secs(5))
        .build()
        .unwrap();
    let started = AtomicU32::new(0);
    let start = Instant::now();
    // The first attempt takes 10 s (cut at 5 s by the timeout), the second
    // 50 ms: it answers at 150 ms.
    let answer = pipeline
        .execute(|| {
            let n = started.fetch_add(1, Ordering::Relaxed);
            async move {
                sleep(if n == 0 { secs(10) } else { ms(50) }).await;
                Ok::<_, io::Error>(n)
            }
        })
        .await
        .unwrap();
    assert_eq!(answer, 1);
    assert_eq!(start.elapsed(), ms(150));
    assert_eq!(started.load(Ordering::Relaxed), 2);
    let snapshot = hedge.snapshot();
    assert_eq!(snapshot.calls, 1);
    assert_eq!(snapshot.hedges, 1);

    // Every attempt (three of them) fails: one failure for the breaker
    // outside.
    let failed = pipeline
        .execute(|| async {
            sleep(ms(150)).await;
            Err::<u32, _>(reset())
        })
        .await
        .unwrap_err();
    assert_eq!(failed.stopped_by(), StoppedBy::Operation);
    assert_eq!(breaker.snapshot().consecutive_failures, 1);
    assert_eq!(hedge.snapshot().calls, 2);
    assert_eq!(hedge.snapshot().hedges, 1 + 2);
}
