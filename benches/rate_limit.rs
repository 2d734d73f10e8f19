//! The rate limiters when a permit is free: the cost of a check, beside
//! governor used directly on the same clock.
//!
//! - `rate_limit_check`: one permit taken from a limiter with plenty of
//!   capacity (a permit every nanosecond, a burst of `u32::MAX`), so that
//!   every check is let through. `governor_direct` is governor's
//!   `RateLimiter::check` on a direct limiter (the floor: steadfast's
//!   limiter is such a limiter) and `steadfast_check` is
//!   `RateLimiter::check` (the target: at most 1.2× governor).
//!   `governor_keyed` and `steadfast_keyed_check` are the same for a keyed
//!   limiter and one key already stored. Every limiter runs on
//!   `TokioClock`, tokio's clock, as steadfast's do.
//!
//! Run with `cargo bench --features rate-limit --bench rate_limit`; add
//! `-- --warm-up-time 1 --measurement-time 3` for a quick run.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use governor::Quota;
use steadfast::pipeline::{KeyedRateLimiter, RateLimiter, TokioClock};

fn rate_limit_check(c: &mut Criterion) {
    // A permit every nanosecond and a burst of u32::MAX: a check never
    // finds the limiter empty.
    let quota = Quota::with_period(Duration::from_nanos(1))
        .expect("a non-zero period")
        .allow_burst(NonZeroU32::MAX);
    let governor_direct = governor::RateLimiter::direct_with_clock(quota, TokioClock::new());
    let governor_keyed = governor::RateLimiter::dashmap_with_clock(quota, TokioClock::new());
    let steadfast = RateLimiter::builder()
        .rate(u32::MAX, Duration::from_secs(1))
        .burst(u32::MAX)
        .build()
        .expect("a valid rate limiter");
    let steadfast_keyed = KeyedRateLimiter::<u64>::builder()
        .rate(u32::MAX, Duration::from_secs(1))
        .burst(u32::MAX)
        .build()
        .expect("a valid rate limiter");
    assert_eq!(
        steadfast.config().replenish_interval(),
        quota.replenish_interval()
    );

    let mut group = c.benchmark_group("rate_limit_check");
    group.bench_function("governor_direct", |b| {
        b.iter(|| black_box(&governor_direct).check().is_ok())
    });
    group.bench_function("steadfast_check", |b| {
        b.iter(|| black_box(&steadfast).check().is_ok())
    });
    let key = 42_u64;
    group.bench_function("governor_keyed", |b| {
        b.iter(|| {
            black_box(&governor_keyed)
                .check_key(black_box(&key))
                .is_ok()
        })
    });
    group.bench_function("steadfast_keyed_check", |b| {
        b.iter(|| black_box(&steadfast_keyed).check(black_box(&key)).is_ok())
    });
    group.finish();
}

criterion_group!(benches, rate_limit_check);
criterion_main!(benches);
