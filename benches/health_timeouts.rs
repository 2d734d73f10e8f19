//! Bookkeeping that runs all the time in a healthy system: heartbeats and
//! sweeps of a [`HealthMonitor`], and the deadlines of a [`TimeoutManager`]
//! that holds many live operations.
//!
//! - `health_heartbeat`: one heartbeat, with 100,000 members registered.
//!   `*_one_member` sends every heartbeat for the same member (its entry
//!   stays in the CPU's cache, as with a few members); `*_rotating` sends
//!   each for the next member in turn, so that nearly every lookup misses
//!   the cache, as when 100,000 members beat at their own pace. Default
//!   configuration (fixed timeout), and the phi-accrual detector, which also
//!   records the interval.
//! - `health_sweep_100k`: one `check_now` over 100,000 healthy members
//!   (criterion's throughput is in members per second).
//! - `timeout_manager_10k_live`: with 10,000 operations in progress,
//!   starting one more and dropping its guard; extending one of the 10,000;
//!   starting one more and cancelling it.
//!
//! Run with `cargo bench --bench health_timeouts`; add
//! `-- --warm-up-time 1 --measurement-time 3` for a quick run.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use steadfast::health::{DetectionPolicy, HealthConfig, HealthMonitor, MemberId, PhiAccrualConfig};
use steadfast::timeout::TimeoutManager;

const MEMBERS: usize = 100_000;
const LIVE_OPERATIONS: u64 = 10_000;

fn monitor_with_members(config: HealthConfig) -> (HealthMonitor, Vec<MemberId>) {
    let monitor = HealthMonitor::new(config);
    let members: Vec<MemberId> = (0..MEMBERS).map(MemberId::Rank).collect();
    for member in &members {
        monitor.add_member(member);
    }
    (monitor, members)
}

fn health(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime");
    let _guard = rt.enter();

    let mut group = c.benchmark_group("health_heartbeat");
    let (monitor, members) = monitor_with_members(HealthConfig::default());
    group.bench_function("fixed_timeout_one_member", |b| {
        b.iter(|| monitor.heartbeat(black_box(&members[MEMBERS / 2])))
    });
    group.bench_function("fixed_timeout_rotating", |b| {
        let mut next = 0;
        b.iter(|| {
            next = (next + 1) % MEMBERS;
            monitor.heartbeat(black_box(&members[next]))
        })
    });
    let phi = HealthConfig::builder()
        .detection(DetectionPolicy::PhiAccrual(PhiAccrualConfig::default()))
        .build()
        .expect("a valid health configuration");
    let (phi_monitor, members) = monitor_with_members(phi);
    group.bench_function("phi_accrual_one_member", |b| {
        b.iter(|| phi_monitor.heartbeat(black_box(&members[MEMBERS / 2])))
    });
    group.bench_function("phi_accrual_rotating", |b| {
        let mut next = 0;
        b.iter(|| {
            next = (next + 1) % MEMBERS;
            phi_monitor.heartbeat(black_box(&members[next]))
        })
    });
    group.finish();

    let mut group = c.benchmark_group("health_sweep_100k");
    group.throughput(Throughput::Elements(MEMBERS as u64));
    group.bench_function("fixed_timeout", |b| b.iter(|| monitor.check_now()));
    group.bench_function("phi_accrual", |b| b.iter(|| phi_monitor.check_now()));
    group.finish();
}

fn timeout_manager(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime");
    let _guard = rt.enter();

    let manager: TimeoutManager<u64> = TimeoutManager::new();
    let live: Vec<_> = (0..LIVE_OPERATIONS)
        .map(|id| manager.start(id, Duration::from_secs(3_600)))
        .collect();

    let mut group = c.benchmark_group("timeout_manager_10k_live");
    let mut next = LIVE_OPERATIONS;
    group.bench_function("start_and_drop", |b| {
        b.iter(|| {
            next += 1;
            drop(manager.start(black_box(next), Duration::from_secs(30)));
        })
    });
    let mut which = 0;
    group.bench_function("extend", |b| {
        b.iter(|| {
            which = (which + 1) % LIVE_OPERATIONS;
            manager.extend(black_box(&which), Duration::from_nanos(1))
        })
    });
    group.bench_function("start_and_cancel", |b| {
        b.iter(|| {
            next += 1;
            let guard = manager.start(black_box(next), Duration::from_secs(30));
            let cancelled = manager.cancel(&next);
            drop(guard);
            cancelled
        })
    });
    group.finish();
    assert_eq!(manager.len(), live.len());
}

criterion_group!(benches, health, timeout_manager);
criterion_main!(benches);
