//! The tower layers (feature `tower`): tower's own expectations of a
//! service (`poll_ready` before `call`, readiness given back on drop), the
//! bulkhead's back-pressure in `poll_ready`, the breaker tripping and
//! refusing, the retry (waiting for readiness before each attempt) and the
//! timeout, alone and stacked in a `ServiceBuilder`.
//!
//! Every test runs on paused time; none waits on the wall clock.
#![cfg(feature = "tower")]

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use steadfast::breaker::{BreakerError, CircuitBreaker, State};
use steadfast::pipeline::{Bulkhead, BulkheadError, BulkheadRejected};
use steadfast::retry::{GiveUp, Jitter, RetryPolicy, Transient};
use steadfast::tower::{
    BulkheadLayer, BulkheadService, CircuitBreakerLayer, RetryLayer, TimeoutError, TimeoutLayer,
};
use tokio::time::{advance, Instant};
use tokio_test::{assert_pending, assert_ready, task};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

const MS: Duration = Duration::from_millis(1);

/// What a [`Strict`] service saw.
#[derive(Default)]
struct Seen {
    ready: AtomicU32,
    calls: AtomicU32,
}

impl Seen {
    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
}

/// A service that holds its callers to tower's contract: `call` without a
/// `poll_ready` that said Ready since the last call fails the test. A clone
/// starts unready, as tower expects. Each call answers with the script's
/// next outcome (a `ConnectionReset`, which is transient, for `false`), or
/// `Ok` once the script is used up; `delay` makes each call take that long.
#[derive(Clone)]
struct Strict {
    seen: Arc<Seen>,
    script: Arc<std::sync::Mutex<std::collections::VecDeque<bool>>>,
    delay: Duration,
    ready: bool,
}

impl Strict {
    fn new(script: &[bool]) -> Self {
        Strict {
            seen: Arc::default(),
            script: Arc::new(std::sync::Mutex::new(script.iter().copied().collect())),
            delay: Duration::ZERO,
            ready: false,
        }
    }

    fn slow(delay: Duration) -> Self {
        Strict {
            delay,
            ..Strict::new(&[])
        }
    }
}

impl Service<u32> for Strict {
    type Response = u32;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<u32, io::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        self.seen.ready.fetch_add(1, Ordering::SeqCst);
        self.ready = true;
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u32) -> Self::Future {
        assert!(self.ready, "call without poll_ready");
        self.ready = false;
        self.seen.calls.fetch_add(1, Ordering::SeqCst);
        let ok = self.script.lock().unwrap().pop_front().unwrap_or(true);
        let delay = self.delay;
        Box::pin(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if ok {
                Ok(req)
            } else {
                Err(io::Error::from(io::ErrorKind::ConnectionReset))
            }
        })
    }
}

fn bulkhead(max_concurrent: u32) -> Bulkhead {
    Bulkhead::builder()
        .max_concurrent(max_concurrent)
        .build()
        .unwrap()
}

fn fast_policy(max_retries: u32) -> RetryPolicy {
    RetryPolicy::builder()
        .max_retries(max_retries)
        .initial_delay(10 * MS)
        .jitter(Jitter::None)
        .build()
        .unwrap()
}

// ---- tower's expectations ----------------------------------------------

#[tokio::test(start_paused = true)]
async fn every_layer_readies_its_inner_service_before_calling_it() {
    let inner = Strict::new(&[false, true]);
    let seen = inner.seen.clone();
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new(fast_policy(3)))
        .layer(CircuitBreakerLayer::new(CircuitBreaker::default()))
        .layer(TimeoutLayer::new(Duration::from_secs(1)))
        .layer(BulkheadLayer::new(bulkhead(2)))
        .service(inner);
    // One failure, one success; `Strict` fails the test on a call without
    // readiness, through every layer and the retry's clone of the stack.
    assert_eq!(service.oneshot(7).await.unwrap(), 7);
    assert_eq!(seen.calls(), 2);
    assert!(seen.ready.load(Ordering::SeqCst) >= 2);
}

#[tokio::test(start_paused = true)]
async fn poll_ready_holds_a_slot_for_the_next_call_and_the_call_frees_it() {
    let bh = bulkhead(2);
    let mut service = BulkheadLayer::new(bh.clone()).layer(Strict::new(&[]));
    assert_eq!(bh.in_use(), 0);
    poll_fn(|cx| service.poll_ready(cx)).await.unwrap();
    assert_eq!(bh.in_use(), 1);
    // Asking again does not take a second slot.
    poll_fn(|cx| service.poll_ready(cx)).await.unwrap();
    assert_eq!(bh.in_use(), 1);
    let call = service.call(1);
    assert_eq!(bh.in_use(), 1, "the slot moves into the response future");
    assert_eq!(call.await.unwrap(), 1);
    assert_eq!(bh.in_use(), 0);
}

#[tokio::test(start_paused = true)]
async fn readiness_is_given_back_when_the_service_is_dropped() {
    let bh = bulkhead(1);
    let mut service = BulkheadLayer::new(bh.clone()).layer(Strict::new(&[]));
    poll_fn(|cx| service.poll_ready(cx)).await.unwrap();
    assert_eq!(bh.in_use(), 1);
    // A clone does not carry the readiness.
    let clone = service.clone();
    assert_eq!(bh.in_use(), 1);
    drop(service);
    assert_eq!(bh.in_use(), 0);
    drop(clone);
    assert_eq!(bh.in_use(), 0);
}

#[tokio::test(start_paused = true)]
async fn readiness_is_given_back_when_the_response_future_is_dropped() {
    let bh = bulkhead(1);
    let mut service = BulkheadLayer::new(bh.clone()).layer(Strict::slow(Duration::from_secs(5)));
    // Dropped before its first poll.
    poll_fn(|cx| service.poll_ready(cx)).await.unwrap();
    drop(service.call(1));
    assert_eq!(bh.in_use(), 0);
    // Dropped while the inner call runs.
    poll_fn(|cx| service.poll_ready(cx)).await.unwrap();
    let mut call = task::spawn(service.call(2));
    assert_pending!(call.poll());
    assert_eq!(bh.in_use(), 1);
    drop(call);
    assert_eq!(bh.in_use(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_call_without_poll_ready_is_refused_without_calling_the_inner_service() {
    let bh = bulkhead(1);
    let inner = Strict::new(&[]);
    let seen = inner.seen.clone();
    let mut service = BulkheadService::new(inner, bh.clone());
    let err = service.call(1).await.unwrap_err();
    assert!(matches!(
        err,
        BulkheadError::Rejected(BulkheadRejected::Full {
            max_concurrent: 1,
            ..
        })
    ));
    assert_eq!(seen.calls(), 0);
    assert_eq!(bh.snapshot().rejected_full, 1);
    assert_eq!(bh.in_use(), 0);
}

// ---- bulkhead back-pressure --------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_full_bulkhead_is_pending_in_poll_ready_and_wakes_the_task_when_a_slot_frees() {
    let bh = bulkhead(1);
    let layer = BulkheadLayer::new(bh.clone());
    let mut first = layer.layer(Strict::new(&[]));
    let mut second = layer.layer(Strict::new(&[]));
    poll_fn(|cx| first.poll_ready(cx)).await.unwrap();

    // A layer whose `poll_ready` always said Ready would fail here.
    let mut waiter = task::spawn(());
    assert_pending!(waiter.enter(|cx, _| second.poll_ready(cx)));
    assert_pending!(waiter.enter(|cx, _| second.poll_ready(cx)));
    assert!(!waiter.is_woken());
    assert_eq!(bh.in_use(), 1);
    assert_eq!(bh.queued(), 0, "a poll_ready wait takes no queue place");

    // The first service's call completes: its slot frees and goes to the
    // waiting service, whose task is woken.
    assert_eq!(first.call(1).await.unwrap(), 1);
    assert!(waiter.is_woken());
    assert_ready!(waiter.enter(|cx, _| second.poll_ready(cx))).unwrap();
    assert_eq!(bh.in_use(), 1);
    assert_eq!(second.call(2).await.unwrap(), 2);
    assert_eq!(bh.in_use(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_service_dropped_while_it_waits_for_a_slot_leaves_nothing_behind() {
    let bh = bulkhead(1);
    let layer = BulkheadLayer::new(bh.clone());
    let mut holder = layer.layer(Strict::new(&[]));
    let mut waiting = layer.layer(Strict::new(&[]));
    poll_fn(|cx| holder.poll_ready(cx)).await.unwrap();
    let mut waiter = task::spawn(());
    assert_pending!(waiter.enter(|cx, _| waiting.poll_ready(cx)));
    drop(waiting);
    drop(holder);
    assert_eq!(bh.in_use(), 0);
    // Both slots' worth of state is back: a fresh service is ready at once.
    let mut fresh = layer.layer(Strict::new(&[]));
    assert_ready!(task::spawn(()).enter(|cx, _| fresh.poll_ready(cx))).unwrap();
}

#[tokio::test(start_paused = true)]
async fn waiting_services_get_the_slots_in_the_order_they_asked() {
    let bh = bulkhead(1);
    let layer = BulkheadLayer::new(bh.clone());
    let mut holder = layer.layer(Strict::new(&[]));
    poll_fn(|cx| holder.poll_ready(cx)).await.unwrap();
    let mut a = layer.layer(Strict::new(&[]));
    let mut b = layer.layer(Strict::new(&[]));
    let (mut ta, mut tb) = (task::spawn(()), task::spawn(()));
    assert_pending!(ta.enter(|cx, _| a.poll_ready(cx)));
    assert_pending!(tb.enter(|cx, _| b.poll_ready(cx)));
    drop(holder);
    assert!(ta.is_woken());
    assert!(!tb.is_woken());
    assert_pending!(tb.enter(|cx, _| b.poll_ready(cx)));
    assert_ready!(ta.enter(|cx, _| a.poll_ready(cx))).unwrap();
    drop(a);
    assert!(tb.is_woken());
    assert_ready!(tb.enter(|cx, _| b.poll_ready(cx))).unwrap();
}

// ---- circuit breaker ---------------------------------------------------

#[tokio::test(start_paused = true)]
async fn the_breaker_layer_opens_after_failures_and_refuses_without_calling() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(2)
        .recovery_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let inner = Strict::new(&[false, false]);
    let seen = inner.seen.clone();
    let service = CircuitBreakerLayer::new(breaker.clone()).layer(inner);

    for _ in 0..2 {
        let err = service.clone().oneshot(1).await.unwrap_err();
        assert!(matches!(err, BreakerError::Inner(_)));
    }
    assert_eq!(breaker.state(), State::Open);

    let err = service.clone().oneshot(1).await.unwrap_err();
    assert!(matches!(
        err,
        BreakerError::Rejected { state: State::Open, retry_after: Some(after) }
            if after == Duration::from_secs(10)
    ));
    assert_eq!(err.retry_after(), Some(Duration::from_secs(10)));
    assert_eq!(seen.calls(), 2, "an open breaker does not call the service");

    // After the recovery timeout a trial call goes through and closes it.
    advance(Duration::from_secs(10)).await;
    assert_eq!(service.oneshot(5).await.unwrap(), 5);
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(seen.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn the_breaker_layer_counts_only_the_errors_its_predicate_names() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(1)
        .build()
        .unwrap();
    let layer = CircuitBreakerLayer::new(breaker.clone())
        .failure_when(|e: &io::Error| e.kind() == io::ErrorKind::TimedOut);
    let not_found = layer.layer(tower::service_fn(|()| async {
        Err::<(), _>(io::Error::from(io::ErrorKind::NotFound))
    }));
    for _ in 0..3 {
        assert!(not_found.clone().oneshot(()).await.is_err());
    }
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_breaker_call_frees_its_half_open_trial_place() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(1)
        .recovery_timeout(Duration::from_secs(1))
        .half_open_permits(1)
        .build()
        .unwrap();
    breaker.try_acquire().unwrap().failure();
    advance(Duration::from_secs(1)).await;
    let mut service =
        CircuitBreakerLayer::new(breaker.clone()).layer(Strict::slow(Duration::from_secs(5)));
    poll_fn(|cx| service.poll_ready(cx)).await.unwrap();
    let mut trial = task::spawn(service.call(1));
    assert_pending!(trial.poll());
    assert_eq!(breaker.state(), State::HalfOpen);
    assert!(
        breaker.try_acquire().is_err(),
        "the only trial place is taken"
    );
    drop(trial);
    assert!(breaker.try_acquire().is_ok(), "the place is free again");
}

// ---- retry ---------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn the_retry_layer_retries_transient_errors_after_the_backoff() {
    let inner = Strict::new(&[false, false]);
    let seen = inner.seen.clone();
    let service = RetryLayer::new(fast_policy(3)).layer(inner);
    let start = Instant::now();
    assert_eq!(service.oneshot(9).await.unwrap(), 9);
    assert_eq!(seen.calls(), 3);
    // 10 ms, then 20 ms.
    assert_eq!(start.elapsed(), 30 * MS);
}

#[tokio::test(start_paused = true)]
async fn the_retry_layer_gives_up_when_the_policy_is_spent() {
    let inner = Strict::new(&[false; 10]);
    let seen = inner.seen.clone();
    let service = RetryLayer::new(fast_policy(2)).layer(inner);
    let err = service.oneshot(1).await.unwrap_err();
    assert_eq!(err.attempts(), 3);
    assert_eq!(err.reason(), GiveUp::Exhausted);
    assert_eq!(err.inner().kind(), io::ErrorKind::ConnectionReset);
    assert_eq!(seen.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn the_retry_layer_does_not_retry_what_its_predicate_refuses() {
    let inner = Strict::new(&[false; 10]);
    let seen = inner.seen.clone();
    let service = RetryLayer::new(fast_policy(5))
        .when(|e: &io::Error| e.kind() == io::ErrorKind::TimedOut)
        .layer(inner);
    let err = service.oneshot(1).await.unwrap_err();
    assert_eq!((err.attempts(), err.reason()), (1, GiveUp::NotTransient));
    assert_eq!(seen.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_retry_waits_for_the_inner_services_readiness_before_each_attempt() {
    let bh = bulkhead(1);
    let inner = Strict::new(&[false]);
    let seen = inner.seen.clone();
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new(fast_policy(3)))
        .layer(BulkheadLayer::new(bh.clone()))
        .service(inner);
    let mut call = task::spawn(service.oneshot(4));
    // The first attempt fails at once; the retry sleeps 10 ms.
    assert_pending!(call.poll());
    assert_eq!(seen.calls(), 1);
    assert_eq!(bh.in_use(), 0);
    // Someone else takes the only slot: after the backoff, the retry waits
    // for readiness instead of calling.
    let held = bh.try_acquire_owned().unwrap();
    advance(20 * MS).await;
    assert_pending!(call.poll());
    assert_eq!(seen.calls(), 1);
    drop(held);
    assert!(call.is_woken());
    assert_eq!(assert_ready!(call.poll()).unwrap(), 4);
    assert_eq!(seen.calls(), 2);
    assert_eq!(bh.in_use(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_retry_waits_as_long_as_an_open_breaker_asks() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(1)
        .recovery_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let inner = Strict::new(&[false]);
    let seen = inner.seen.clone();
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new(fast_policy(3)))
        .layer(CircuitBreakerLayer::new(breaker.clone()))
        .service(inner);
    let start = Instant::now();
    // Fails, opens the breaker; the retry after 10 ms is refused with a
    // `retry_after` of 2.99 s, waited, and the trial call succeeds.
    assert_eq!(service.oneshot(8).await.unwrap(), 8);
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    assert_eq!(seen.calls(), 2);
    assert_eq!(breaker.state(), State::Closed);
}

// ---- timeout -------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn the_timeout_layer_cancels_a_slow_call_at_its_deadline() {
    let service =
        TimeoutLayer::new(Duration::from_secs(1)).layer(Strict::slow(Duration::from_secs(5)));
    let start = Instant::now();
    let err = service.oneshot(1).await.unwrap_err();
    assert!(matches!(err, TimeoutError::Elapsed { after } if after == Duration::from_secs(1)));
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert!(err.is_transient());
}

#[tokio::test(start_paused = true)]
async fn the_timeout_layer_passes_a_timely_answer_and_the_inner_error() {
    let service = TimeoutLayer::new(Duration::from_secs(1)).layer(Strict::slow(500 * MS));
    assert_eq!(service.oneshot(3).await.unwrap(), 3);
    let failing = TimeoutLayer::new(Duration::from_secs(1)).layer(Strict::new(&[false]));
    let err = failing.oneshot(3).await.unwrap_err();
    assert_eq!(
        err.inner().map(io::Error::kind),
        Some(io::ErrorKind::ConnectionReset)
    );
}

#[tokio::test(start_paused = true)]
async fn a_retry_above_a_timeout_retries_the_calls_that_timed_out() {
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new(fast_policy(3)))
        .layer(TimeoutLayer::new(100 * MS))
        .service_fn(move |()| {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                // The first call hangs, the second answers.
                if n == 0 {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                Ok::<_, io::Error>(n)
            }
        });
    let start = Instant::now();
    assert_eq!(service.oneshot(()).await.unwrap(), 1);
    assert_eq!(start.elapsed(), 110 * MS);
}

// ---- types -----------------------------------------------------------------

#[test]
fn layers_and_services_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<BulkheadLayer>();
    send_sync::<BulkheadService<Strict>>();
    send_sync::<CircuitBreakerLayer>();
    send_sync::<RetryLayer>();
    send_sync::<TimeoutLayer>();
}

// ---- a whole pipeline ----------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_pipeline_layer_retries_with_a_clone_of_the_request_after_poll_ready_and_times_out() {
    use steadfast::pipeline::{Pipeline, PipelineError, StoppedBy};
    use steadfast::tower::PipelineLayer;

    let pipeline = Pipeline::builder()
        .retry(
            RetryPolicy::builder()
                .max_retries(3)
                .initial_delay(10 * MS)
                .jitter(Jitter::None)
                .build()
                .unwrap(),
        )
        .timeout(100 * MS)
        .build()
        .unwrap();
    // Fails once, then answers; `Strict` fails the test on a call made
    // without `poll_ready` first.
    let inner = Strict::new(&[false, true]);
    let seen = inner.seen.clone();
    let service = PipelineLayer::new(pipeline.clone()).layer(inner);
    assert_eq!(service.oneshot(7).await.unwrap(), 7);
    assert_eq!(seen.calls(), 2);

    // A service that never answers: every attempt is cut at 100 ms.
    let start = Instant::now();
    let hanging = PipelineLayer::new(pipeline).layer(tower::service_fn(|()| {
        std::future::pending::<Result<(), io::Error>>()
    }));
    let err = hanging.oneshot(()).await.unwrap_err();
    assert_eq!(err.stopped_by(), StoppedBy::Retry);
    assert!(matches!(
        err,
        PipelineError::RetriesExhausted { attempts: 4, .. }
    ));
    assert_eq!(start.elapsed(), 4 * 100 * MS + (10 + 20 + 40) * MS);
}

#[tokio::test(start_paused = true)]
async fn a_pipeline_service_future_is_send() {
    use steadfast::pipeline::Pipeline;
    use steadfast::tower::PipelineLayer;
    let service = PipelineLayer::new(
        Pipeline::builder()
            .retry(RetryPolicy::default())
            .circuit_breaker(CircuitBreaker::default())
            .timeout(100 * MS)
            .build()
            .unwrap(),
    )
    .layer(tower::service_fn(
        |n: u32| async move { Ok::<_, io::Error>(n) },
    ));
    let answer = tokio::spawn(service.oneshot(3)).await.unwrap().unwrap();
    assert_eq!(answer, 3);
}

// ---- rate limit back-pressure ------------------------------------------

#[cfg(feature = "rate-limit")]
#[tokio::test(start_paused = true)]
async fn a_spent_rate_is_pending_in_poll_ready_and_wakes_the_task_at_the_next_permit() {
    use steadfast::pipeline::RateLimiter;
    use steadfast::tower::RateLimitLayer;

    let limiter = RateLimiter::builder()
        .permits(1)
        .period(Duration::from_secs(1))
        .build()
        .unwrap();
    let layer = RateLimitLayer::new(limiter);
    let mut service = layer.layer(Strict::new(&[]));
    poll_fn(|cx| service.poll_ready(cx)).await.unwrap();
    assert_eq!(service.call(1).await.unwrap(), 1);

    // A layer whose `poll_ready` always said Ready would fail here.
    let mut waiter = task::spawn(());
    assert_pending!(waiter.enter(|cx, _| service.poll_ready(cx)));
    advance(999 * MS).await;
    assert!(!waiter.is_woken());
    advance(MS).await;
    assert!(waiter.is_woken());
    assert_ready!(waiter.enter(|cx, _| service.poll_ready(cx))).unwrap();
    assert_eq!(service.call(2).await.unwrap(), 2);

    // A call without readiness asks the limiter, which refuses.
    let err = service.call(3).await.unwrap_err();
    assert!(matches!(
        err,
        steadfast::pipeline::RateLimitError::Rejected(_)
    ));
}
