//! The strategies of a pipeline when nothing is refused: the cost of
//! admission, beside the primitive each is built on.
//!
//! - `bulkhead_admission`: taking a slot of a bulkhead with free slots and
//!   freeing it again. `tokio_semaphore` is `Semaphore::try_acquire` and the
//!   drop of its permit (the floor: the bulkhead's slots are such a
//!   semaphore); `steadfast_try_acquire` is `Bulkhead::try_acquire` and the
//!   drop of its permit (the target: at most 1.5× the semaphore);
//!   `steadfast_call` is `Bulkhead::call` around an operation that is ready
//!   at once, polled once with a no-op waker, beside `bare_call`, the same
//!   operation with no bulkhead.
//!
//! - `pipeline_retry_breaker_timeout`: retry (default policy) around a
//!   closed circuit breaker around an attempt timeout of 1 s, around an
//!   operation that is ready at once: `by_hand` nests `RetryPolicy::retry`,
//!   `CircuitBreaker::call` and `TimeoutHandler::run` as a user would;
//!   `pipeline` is the same three in a `Pipeline` (the target: at most 1.2×
//!   by hand); `bare_call` is the operation alone.
//! - `pipeline_one_strategy`: each of the three alone, by hand and as a
//!   pipeline of one strategy, to see what the pipeline adds to each.
//!
//! Run with `cargo bench --bench pipeline`; add
//! `-- --warm-up-time 1 --measurement-time 3` for a quick run.

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use std::time::Duration;

use steadfast::breaker::CircuitBreaker;
use steadfast::pipeline::{Bulkhead, Pipeline};
use steadfast::retry::RetryPolicy;
use steadfast::timeout::TimeoutHandler;
use tokio::sync::Semaphore;

use common::{operation, poll_once};

fn bulkhead_admission(c: &mut Criterion) {
    let semaphore = Semaphore::new(10);
    let bulkhead = Bulkhead::builder()
        .max_concurrent(10)
        .max_queued(10)
        .build()
        .expect("a valid bulkhead");

    let mut group = c.benchmark_group("bulkhead_admission");
    group.bench_function("tokio_semaphore", |b| {
        b.iter(|| {
            let permit = black_box(&semaphore).try_acquire();
            black_box(permit.is_ok())
        })
    });
    group.bench_function("steadfast_try_acquire", |b| {
        b.iter(|| {
            let permit = black_box(&bulkhead).try_acquire();
            black_box(permit.is_ok())
        })
    });
    group.bench_function("bare_call", |b| {
        b.iter(|| poll_once(operation(black_box(1))).unwrap_or(0))
    });
    group.bench_function("steadfast_call", |b| {
        b.iter(|| poll_once(black_box(&bulkhead).call(|| operation(black_box(1)))).unwrap_or(0))
    });
    group.finish();
}

fn pipeline_retry_breaker_timeout(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime");
    let _guard = rt.enter();
    let attempt_timeout = Duration::from_secs(1);
    let policy = RetryPolicy::default();
    let breaker = CircuitBreaker::default();
    let timeouts = TimeoutHandler::default();
    let pipeline = Pipeline::builder()
        .retry(policy.clone())
        .circuit_breaker(breaker.clone())
        .timeout(attempt_timeout)
        .build()
        .expect("a valid pipeline");

    let mut group = c.benchmark_group("pipeline_retry_breaker_timeout");
    group.bench_function("bare_call", |b| {
        b.iter(|| poll_once(operation(black_box(1))).unwrap_or(0))
    });
    group.bench_function("by_hand", |b| {
        b.iter(|| {
            let call = black_box(&policy).retry(|| {
                black_box(&breaker).call(|| async {
                    match timeouts.run(attempt_timeout, operation(black_box(1))).await {
                        Ok(result) => result,
                        Err(elapsed) => Err(std::io::Error::other(elapsed)),
                    }
                })
            });
            poll_once(call).unwrap_or(0)
        })
    });
    group.bench_function("pipeline", |b| {
        b.iter(|| poll_once(black_box(&pipeline).execute(|| operation(black_box(1)))).unwrap_or(0))
    });
    group.finish();
}

fn pipeline_one_strategy(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime");
    let _guard = rt.enter();
    let limit = Duration::from_secs(1);
    let policy = RetryPolicy::default();
    let breaker = CircuitBreaker::default();
    let timeouts = TimeoutHandler::default();
    let timeout_only = Pipeline::builder()
        .timeout(limit)
        .build()
        .expect("a pipeline");
    let breaker_only = Pipeline::builder()
        .circuit_breaker(breaker.clone())
        .build()
        .expect("a pipeline");
    let retry_only = Pipeline::builder()
        .retry(policy.clone())
        .build()
        .expect("a pipeline");

    let mut group = c.benchmark_group("pipeline_one_strategy");
    group.bench_function("timeout_by_hand", |b| {
        b.iter(|| {
            poll_once(timeouts.run(limit, operation(black_box(1))))
                .map(|r| r.unwrap_or(0))
                .unwrap_or(0)
        })
    });
    group.bench_function("timeout_pipeline", |b| {
        b.iter(|| {
            poll_once(black_box(&timeout_only).execute(|| operation(black_box(1)))).unwrap_or(0)
        })
    });
    group.bench_function("breaker_by_hand", |b| {
        b.iter(|| poll_once(black_box(&breaker).call(|| operation(black_box(1)))).unwrap_or(0))
    });
    group.bench_function("breaker_pipeline", |b| {
        b.iter(|| {
            poll_once(black_box(&breaker_only).execute(|| operation(black_box(1)))).unwrap_or(0)
        })
    });
    group.bench_function("retry_by_hand", |b| {
        b.iter(|| poll_once(black_box(&policy).retry(|| operation(black_box(1)))).unwrap_or(0))
    });
    group.bench_function("retry_pipeline", |b| {
        b.iter(|| {
            poll_once(black_box(&retry_only).execute(|| operation(black_box(1)))).unwrap_or(0)
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    bulkhead_admission,
    pipeline_retry_breaker_timeout,
    pipeline_one_strategy
);
criterion_main!(benches);
