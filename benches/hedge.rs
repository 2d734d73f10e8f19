//! Hedging when no hedge is needed: the cost of `Hedge::call` around an
//! operation that answers before the delay, beside the bare operation.
//!
//! - `hedge_call/bare_call`: the operation alone, ready at once, polled once
//!   with a no-op waker; `steadfast_call`: the same through `Hedge::call`
//!   with a fixed delay (two relaxed counter increments, no timer, no
//!   clock read); `steadfast_call_percentile`: with a percentile delay (the
//!   latency record's lock as well).
//! - `hedge_wait_once/bare_wait_once`: an operation pending at its first
//!   poll and ready at the second, polled twice; `steadfast_wait_once`: the
//!   same through `Hedge::call`, which arms (and drops) a tokio timer for
//!   the hedge that is not needed.
//!
//! Run with `cargo bench --bench hedge`; add
//! `-- --warm-up-time 1 --measurement-time 2` for a quick run.

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use steadfast::pipeline::Hedge;

use common::{operation, poll_once, poll_twice, WaitOnce};

fn hedges() -> (Hedge, Hedge) {
    let fixed = Hedge::builder()
        .max_attempts(2)
        .delay(Duration::from_millis(50))
        .build()
        .expect("a valid hedge");
    let percentile = Hedge::builder()
        .max_attempts(2)
        .delay(Duration::from_millis(50))
        .percentile(95.0)
        .build()
        .expect("a valid hedge");
    (fixed, percentile)
}

fn hedge_call(c: &mut Criterion) {
    let (fixed, percentile) = hedges();
    let mut group = c.benchmark_group("hedge_call");
    group.bench_function("bare_call", |b| {
        b.iter(|| poll_once(operation(black_box(1))).unwrap_or(0))
    });
    group.bench_function("steadfast_call", |b| {
        b.iter(|| poll_once(black_box(&fixed).call(|| operation(black_box(1)))).unwrap_or(0))
    });
    group.bench_function("steadfast_call_percentile", |b| {
        b.iter(|| poll_once(black_box(&percentile).call(|| operation(black_box(1)))).unwrap_or(0))
    });
    group.finish();
}

fn hedge_wait_once(c: &mut Criterion) {
    let (fixed, _) = hedges();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    // The timer of a waiting attempt needs the runtime's context.
    let _enter = rt.enter();
    let mut group = c.benchmark_group("hedge_wait_once");
    group.bench_function("bare_wait_once", |b| {
        b.iter(|| poll_twice(WaitOnce::new(black_box(1))).unwrap_or(0))
    });
    group.bench_function("steadfast_wait_once", |b| {
        b.iter(|| poll_twice(black_box(&fixed).call(|| WaitOnce::new(black_box(1)))).unwrap_or(0))
    });
    group.finish();
}

criterion_group!(benches, hedge_call, hedge_wait_once);
criterion_main!(benches);
