//! What the `metrics` feature costs on the hot paths, with the Prometheus
//! recorder of `metrics-exporter-prometheus` installed.
//!
//! - `metrics_breaker_closed_call/{unnamed,named}`: one call through a
//!   Closed breaker (`CircuitBreaker::call`, a future ready at once, polled
//!   once with a no-op waker). `unnamed` has no name, so no handles: the
//!   feature costs it one check of an `Option`. `named` records every call
//!   into `fault_tolerance_breaker_calls_total{outcome="success"}`.
//! - `metrics_breaker_permit/{unnamed,named}`: the same through
//!   `try_acquire` and `Permit::success`, without a future.
//! - `metrics_breaker_two_threads/{unnamed,named}`: two threads call one
//!   shared breaker at once; the time is per call on each thread (both
//!   threads write the named breaker's one success counter).
//! - `metrics_retry_first_try_success/{unnamed,named}`: a retry whose first
//!   attempt succeeds: `RetryPolicy::retry` beside `RetryMetrics::retry`
//!   (one attempt counted).
//!
//! - `metrics_floor/{fetch_add,fetch_add_two_threads}`: a relaxed
//!   `fetch_add` on one `AtomicU64`, from one thread and from two at once:
//!   the least that counting a call in a shared counter can cost, which is
//!   what the Prometheus recorder's counter does beneath the facade.
//!
//! The same paths without the feature are the main crate's
//! `breaker_closed_call_async/steadfast` (benches/breaker.rs) and
//! `retry_first_try_success/steadfast` (benches/hot_path.rs).
//!
//! Run with `cargo bench -p steadfast-prometheus-example --bench overhead`;
//! add `-- --warm-up-time 1 --measurement-time 3` for a quick run.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use metrics_exporter_prometheus::PrometheusBuilder;
use steadfast::breaker::CircuitBreaker;
use steadfast::metrics::RetryMetrics;
use steadfast::retry::RetryPolicy;

/// Polls a future that must be ready at once, and returns its output.
#[inline(always)]
fn poll_once<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("expected a future that is ready at once"),
    }
}

/// The bare operation: an `async fn` that succeeds at once.
async fn operation(x: u64) -> Result<u64, std::io::Error> {
    Ok(black_box(x))
}

fn install() {
    // Once per process; the benches below share it.
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let handle = PrometheusBuilder::new()
            .install_recorder()
            .expect("no other recorder is installed");
        // The exporter's upkeep (draining histograms) is not on the call path.
        std::mem::forget(handle);
    });
}

fn breakers() -> [(&'static str, CircuitBreaker); 2] {
    install();
    [
        ("unnamed", CircuitBreaker::default()),
        (
            "named",
            CircuitBreaker::builder()
                .name("bench")
                .build()
                .expect("the default configuration is valid"),
        ),
    ]
}

fn breaker(c: &mut Criterion) {
    let breakers = breakers();
    let mut group = c.benchmark_group("metrics_breaker_closed_call");
    for (name, breaker) in &breakers {
        group.bench_function(*name, |b| {
            b.iter(|| poll_once(breaker.call(|| operation(black_box(1)))).unwrap_or(0))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("metrics_breaker_permit");
    for (name, breaker) in &breakers {
        group.bench_function(*name, |b| {
            b.iter(|| match breaker.try_acquire() {
                Ok(permit) => {
                    permit.success();
                    black_box(1)
                }
                Err(_) => 0,
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("metrics_breaker_two_threads");
    for (name, breaker) in &breakers {
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| two_threads(breaker, iters));
        });
    }
    group.finish();
}

/// Two threads each make `iters` calls through `breaker` at once; the
/// longer of the two times.
fn two_threads(breaker: &CircuitBreaker, iters: u64) -> Duration {
    let start = Arc::new(Barrier::new(2));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (breaker, start) = (breaker.clone(), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                let began = Instant::now();
                for _ in 0..iters {
                    black_box(poll_once(breaker.call(|| operation(black_box(1)))).unwrap_or(0));
                }
                began.elapsed()
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("a bench thread panicked"))
        .max()
        .unwrap_or_default()
}

fn retry(c: &mut Criterion) {
    install();
    let policy = RetryPolicy::default();
    let metrics = RetryMetrics::new("bench");
    let mut group = c.benchmark_group("metrics_retry_first_try_success");
    group.bench_function("unnamed", |b| {
        b.iter(|| poll_once(policy.retry(|| operation(black_box(1)))).unwrap_or(0))
    });
    group.bench_function("named", |b| {
        b.iter(|| poll_once(metrics.retry(&policy, || operation(black_box(1)))).unwrap_or(0))
    });
    group.finish();
}

/// One relaxed `fetch_add` on a shared counter, from one thread and two.
fn floor(c: &mut Criterion) {
    let counter = Arc::new(AtomicU64::new(0));
    let mut group = c.benchmark_group("metrics_floor");
    group.bench_function("fetch_add", |b| {
        b.iter(|| counter.fetch_add(black_box(1), Ordering::Relaxed))
    });
    group.bench_function("fetch_add_two_threads", |b| {
        b.iter_custom(|iters| {
            let start = Arc::new(Barrier::new(2));
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let (counter, start) = (Arc::clone(&counter), Arc::clone(&start));
                    std::thread::spawn(move || {
                        start.wait();
                        let began = Instant::now();
                        for _ in 0..iters {
                            counter.fetch_add(black_box(1), Ordering::Relaxed);
                        }
                        began.elapsed()
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().expect("a bench thread panicked"))
                .max()
                .unwrap_or_default()
        })
    });
    group.finish();
}

criterion_group!(benches, breaker, retry, floor);
criterion_main!(benches);
