//! The circuit breaker when nothing goes wrong: the cost of one call
//! through a Closed breaker, beside a bare call and the peer crates, and the
//! throughput of one breaker shared by several threads.
//!
//! - `breaker_closed_call`: a synchronous call that succeeds. steadfast is
//!   `try_acquire` then `Permit::success`; recloser 1.x is `Recloser::call`
//!   with its default configuration; failsafe 1.x is `CircuitBreaker::call`
//!   with its consecutive-failures policy and with its default policy
//!   (success rate over a time window, or else consecutive failures).
//! - `breaker_closed_call_async`: the same through each crate's future-aware
//!   call (steadfast's `CircuitBreaker::call`, recloser's `AsyncRecloser`,
//!   failsafe's `futures::CircuitBreaker`), polled once with a no-op waker.
//! - `breaker_throughput/<crate>/<n>_threads`: `n` threads make calls
//!   through one shared breaker at once; each sample times every thread
//!   making `iters` calls, so the time per iteration is the time for `n`
//!   calls and criterion's throughput is in calls per second. The counts are
//!   1, 2 and 16, keeping those the machine has cores for. `bare_call` makes
//!   the same calls with no breaker and shares nothing between threads: how
//!   far it scales is the most any breaker can scale on the machine.
//!
//! Run with `cargo bench --bench breaker`; add
//! `-- --warm-up-time 1 --measurement-time 3` for a quick run.

mod common;

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use steadfast::breaker::CircuitBreaker;

use common::{operation, operation_sync, poll_once, thread_counts};

/// failsafe with its consecutive-failures policy: 5 failures in a row open
/// it for 30 s, as steadfast's default breaker.
fn failsafe_consecutive(
) -> impl failsafe::CircuitBreaker + failsafe::futures::CircuitBreaker + Clone + Send + Sync + 'static
{
    let policy = failsafe::failure_policy::consecutive_failures(
        5,
        failsafe::backoff::constant(Duration::from_secs(30)),
    );
    failsafe::Config::new().failure_policy(policy).build()
}

/// steadfast's call through a Closed breaker, as a caller writes it.
#[inline(always)]
fn steadfast_sync(breaker: &CircuitBreaker, x: u64) -> u64 {
    match breaker.try_acquire() {
        Ok(permit) => match operation_sync(x) {
            Ok(v) => {
                permit.success();
                v
            }
            Err(_) => {
                permit.failure();
                0
            }
        },
        Err(_) => 0,
    }
}

fn closed_call(c: &mut Criterion) {
    let steadfast = CircuitBreaker::default();
    let recloser = recloser::Recloser::default();
    let failsafe_consecutive = failsafe_consecutive();
    let failsafe_default = failsafe::Config::new().build();

    let mut group = c.benchmark_group("breaker_closed_call");
    group.bench_function("bare_call", |b| {
        b.iter(|| operation_sync(black_box(1)).unwrap_or(0))
    });
    group.bench_function("steadfast", |b| {
        b.iter(|| steadfast_sync(&steadfast, black_box(1)))
    });
    group.bench_function("recloser", |b| {
        b.iter(|| recloser.call(|| operation_sync(black_box(1))).unwrap_or(0))
    });
    group.bench_function("failsafe_consecutive_failures", |b| {
        b.iter(|| {
            failsafe::CircuitBreaker::call(&failsafe_consecutive, || operation_sync(black_box(1)))
                .unwrap_or(0)
        })
    });
    group.bench_function("failsafe_default_policy", |b| {
        b.iter(|| {
            failsafe::CircuitBreaker::call(&failsafe_default, || operation_sync(black_box(1)))
                .unwrap_or(0)
        })
    });
    group.finish();

    let recloser = recloser::AsyncRecloser::from(recloser::Recloser::default());
    let mut group = c.benchmark_group("breaker_closed_call_async");
    group.bench_function("bare_call", |b| {
        b.iter(|| poll_once(operation(black_box(1))).unwrap_or(0))
    });
    group.bench_function("steadfast", |b| {
        b.iter(|| poll_once(steadfast.call(|| operation(black_box(1)))).unwrap_or(0))
    });
    group.bench_function("recloser", |b| {
        b.iter(|| poll_once(recloser.call(operation(black_box(1)))).unwrap_or(0))
    });
    group.bench_function("failsafe_consecutive_failures", |b| {
        b.iter(|| {
            poll_once(failsafe::futures::CircuitBreaker::call(
                &failsafe_consecutive,
                operation(black_box(1)),
            ))
            .unwrap_or(0)
        })
    });
    group.bench_function("failsafe_default_policy", |b| {
        b.iter(|| {
            poll_once(failsafe::futures::CircuitBreaker::call(
                &failsafe_default,
                operation(black_box(1)),
            ))
            .unwrap_or(0)
        })
    });
    group.finish();
}

/// Runs `call` `iters` times on each of `threads` threads at once and
/// returns the time from the first thread's start to the last one's end.
fn concurrent<F>(threads: usize, iters: u64, call: F) -> Duration
where
    F: Fn(u64) -> u64 + Sync,
{
    let start = Barrier::new(threads);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    let began = Instant::now();
                    let mut sum = 0u64;
                    for i in 0..iters {
                        sum = sum.wrapping_add(call(black_box(i)));
                    }
                    black_box(sum);
                    (began, Instant::now())
                })
            })
            .collect();
        let spans: Vec<(Instant, Instant)> = workers
            .into_iter()
            .map(|w| w.join().expect("a bench thread panicked"))
            .collect();
        let began = spans.iter().map(|s| s.0).min();
        let ended = spans.iter().map(|s| s.1).max();
        match (began, ended) {
            (Some(began), Some(ended)) => ended.saturating_duration_since(began),
            _ => Duration::ZERO,
        }
    })
}

fn throughput(c: &mut Criterion) {
    let steadfast = CircuitBreaker::default();
    let recloser = Arc::new(recloser::Recloser::default());
    let failsafe = failsafe_consecutive();

    let mut group = c.benchmark_group("breaker_throughput");
    for threads in thread_counts() {
        group.throughput(Throughput::Elements(threads as u64));
        group.bench_with_input(
            BenchmarkId::new("bare_call", format!("{threads}_threads")),
            &threads,
            |b, &threads| {
                b.iter_custom(|iters| {
                    concurrent(threads, iters, |x| operation_sync(x).unwrap_or(0))
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("steadfast", format!("{threads}_threads")),
            &threads,
            |b, &threads| {
                b.iter_custom(|iters| concurrent(threads, iters, |x| steadfast_sync(&steadfast, x)))
            },
        );
        group.bench_with_input(
            BenchmarkId::new("recloser", format!("{threads}_threads")),
            &threads,
            |b, &threads| {
                b.iter_custom(|iters| {
                    concurrent(threads, iters, |x| {
                        recloser.call(|| operation_sync(x)).unwrap_or(0)
                    })
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new(
                "failsafe_consecutive_failures",
                format!("{threads}_threads"),
            ),
            &threads,
            |b, &threads| {
                b.iter_custom(|iters| {
                    concurrent(threads, iters, |x| {
                        failsafe::CircuitBreaker::call(&failsafe, || operation_sync(x)).unwrap_or(0)
                    })
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, closed_call, throughput);
criterion_main!(benches);
