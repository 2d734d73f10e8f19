//! The cost of steadfast when nothing goes wrong: a retry that succeeds at
//! once and a timeout that does not fire, each beside the bare operation and
//! the peer crates, in the same run.
//!
//! - `retry_first_try_success`: the bare `async fn`; steadfast's
//!   `RetryPolicy::retry` (default policy: 3 retries, exponential backoff);
//!   backon's `Retryable::retry` with its default `ExponentialBuilder`;
//!   tokio-retry2's `Retry::spawn` with an exponential strategy of 3 retries
//!   (its operation returns tokio-retry2's own error type, as it must).
//! - `timeout_ready_at_once`: the bare `async fn`, `tokio::time::timeout`
//!   and steadfast's `TimeoutHandler::run`, around a future that is ready at
//!   its first poll.
//! - `timeout_waits_once`: the same around a future that is pending once
//!   (so that the timer is registered with tokio's driver) and ready at the
//!   second poll, then dropped (so that the timer is deregistered).
//!
//! Every future is polled with the same inlined helper and a no-op waker
//! (see `common`), so that the figures measure the combinators, not an
//! executor. Each result is reduced to its `u64` the same way.
//!
//! Run with `cargo bench --bench hot_path`; add
//! `-- --warm-up-time 1 --measurement-time 3` for a quick run.

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use steadfast::retry::RetryPolicy;
use steadfast::timeout::TimeoutHandler;

use common::{operation, poll_once, poll_twice, WaitOnce};

async fn operation_tokio_retry2(x: u64) -> Result<u64, tokio_retry2::RetryError<std::io::Error>> {
    Ok(black_box(x))
}

fn retry(c: &mut Criterion) {
    let mut group = c.benchmark_group("retry_first_try_success");
    group.bench_function("bare_call", |b| {
        b.iter(|| poll_once(operation(black_box(1))).unwrap_or(0))
    });

    let policy = RetryPolicy::default();
    group.bench_function("steadfast", |b| {
        b.iter(|| poll_once(policy.retry(|| operation(black_box(1)))).unwrap_or(0))
    });

    let builder = backon::ExponentialBuilder::default();
    group.bench_function("backon", |b| {
        use backon::Retryable;
        b.iter(|| poll_once((|| operation(black_box(1))).retry(builder)).unwrap_or(0))
    });

    let strategy = tokio_retry2::strategy::ExponentialBackoff::from_millis(1_000)
        .factor(2)
        .take(3);
    group.bench_function("tokio_retry2", |b| {
        b.iter(|| {
            poll_once(tokio_retry2::Retry::spawn(strategy.clone(), || {
                operation_tokio_retry2(black_box(1))
            }))
            .unwrap_or(0)
        })
    });
    group.finish();
}

fn timeout(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime");
    let _guard = rt.enter();
    let handler = TimeoutHandler::default();
    let limit = Duration::from_secs(10);

    let mut group = c.benchmark_group("timeout_ready_at_once");
    group.bench_function("bare_call", |b| {
        b.iter(|| poll_once(operation(black_box(1))).unwrap_or(0))
    });
    group.bench_function("tokio_time_timeout", |b| {
        b.iter(|| {
            poll_once(tokio::time::timeout(limit, operation(black_box(1))))
                .map_or(0, |r| r.unwrap_or(0))
        })
    });
    group.bench_function("steadfast", |b| {
        b.iter(|| {
            poll_once(handler.run(limit, operation(black_box(1)))).map_or(0, |r| r.unwrap_or(0))
        })
    });
    group.finish();

    let mut group = c.benchmark_group("timeout_waits_once");
    group.bench_function("bare_call", |b| {
        b.iter(|| poll_twice(WaitOnce::new(black_box(1))).unwrap_or(0))
    });
    group.bench_function("tokio_time_timeout", |b| {
        b.iter(|| {
            poll_twice(tokio::time::timeout(limit, WaitOnce::new(black_box(1))))
                .map_or(0, |r| r.unwrap_or(0))
        })
    });
    group.bench_function("steadfast", |b| {
        b.iter(|| {
            poll_twice(handler.run(limit, WaitOnce::new(black_box(1))))
                .map_or(0, |r| r.unwrap_or(0))
        })
    });
    group.finish();
}

criterion_group!(benches, retry, timeout);
criterion_main!(benches);
