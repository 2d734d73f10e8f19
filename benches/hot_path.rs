//! The cost of steadfast when nothing goes wrong: a retry that succeeds at
//! once and a timeout that does not fire, each beside the bare operation.
//!
//! Futures that complete at once are polled a single time with a no-op waker,
//! so that the figures measure the combinators, not an executor.
//!
//! Run with `cargo bench --bench hot_path`.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use steadfast::retry::RetryPolicy;
use steadfast::timeout::TimeoutHandler;

fn poll_once<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("expected a future that is ready at once"),
    }
}

async fn operation(x: u64) -> Result<u64, std::io::Error> {
    Ok(black_box(x))
}

fn retry(c: &mut Criterion) {
    let mut group = c.benchmark_group("retry_first_try_success");
    let policy = RetryPolicy::default();
    group.bench_function("bare_call", |b| {
        b.iter(|| poll_once(operation(black_box(1))))
    });
    group.bench_function("steadfast", |b| {
        b.iter(|| poll_once(policy.retry(|| operation(black_box(1)))))
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
    let mut group = c.benchmark_group("timeout_not_fired");
    group.bench_function("bare_call", |b| {
        b.iter(|| poll_once(operation(black_box(1))))
    });
    group.bench_function("tokio_time_timeout", |b| {
        b.iter(|| poll_once(tokio::time::timeout(limit, operation(black_box(1)))))
    });
    group.bench_function("steadfast", |b| {
        b.iter(|| poll_once(handler.run(limit, operation(black_box(1)))))
    });
    group.finish();
}

criterion_group!(benches, retry, timeout);
criterion_main!(benches);
