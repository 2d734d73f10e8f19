//! Integration tests of the health monitor: detection thresholds, the
//! phi-accrual detector against hand-computed values, events, membership
//! changes, the background task's lifetime, a 100,000-member sweep and the
//! coordinator heartbeat adapter.

mod common;
use common::drain;

use std::collections::HashMap;
use std::f64::consts::{LN_10, PI};
use std::time::Duration;

use steadfast::coordinator::InMemoryCoordinator;
use steadfast::health::{
    CoordinatorHeartbeat, DetectionPolicy, HealthConfig, HealthError, HealthMonitor, HealthStatus,
    HeartbeatConfig, MemberId, MonitorHandle, PhiAccrualConfig, StatusChange,
};
use tokio::time::{advance, sleep, Instant};

const NS: Duration = Duration::from_nanos(1);

fn rank(r: usize) -> MemberId {
    MemberId::Rank(r)
}

#[tokio::test(start_paused = true)]
async fn fixed_timeout_boundaries_with_check_now() {
    let monitor = HealthMonitor::default();
    let mut events = monitor.subscribe();
    monitor.add_member(0usize);
    let t0 = Instant::now();

    advance(Duration::from_secs(30)).await;
    let s = monitor.check_now();
    assert_eq!(
        (s.healthy, s.changes),
        (1, 0),
        "silent for exactly the timeout is healthy"
    );
    assert_eq!(monitor.status(rank(0)), Some(HealthStatus::Healthy));

    advance(NS).await;
    let s = monitor.check_now();
    assert_eq!((s.unresponsive, s.changes), (1, 1));
    assert_eq!(monitor.status(rank(0)), Some(HealthStatus::Unresponsive));

    advance(Duration::from_secs(30) - NS).await; // exactly 2 x timeout
    assert_eq!(monitor.check_now().unresponsive, 1);

    advance(NS).await;
    let s = monitor.check_now();
    assert_eq!((s.failed, s.changes), (1, 1));
    assert_eq!(monitor.failed(), vec![rank(0)]);

    let got = drain(&mut events);
    assert_eq!(got.len(), 2);
    assert_eq!(
        (got[0].old, got[0].new),
        (HealthStatus::Healthy, HealthStatus::Unresponsive)
    );
    assert_eq!(got[0].at, t0 + Duration::from_secs(30) + NS);
    assert_eq!(
        (got[1].old, got[1].new),
        (HealthStatus::Unresponsive, HealthStatus::Failed)
    );
    assert_eq!(got[1].at, t0 + Duration::from_secs(60) + NS);
}

#[tokio::test(start_paused = true)]
async fn background_task_detects_within_one_check_interval() {
    let monitor = HealthMonitor::default(); // 30 s timeout, 5 s sweeps
    let mut events = monitor.subscribe();
    let t0 = Instant::now();
    monitor.add_member("db");
    let handle = monitor.start().unwrap();

    let unresponsive = events.recv().await.unwrap();
    assert_eq!(unresponsive.member, MemberId::from("db"));
    assert_eq!(unresponsive.new, HealthStatus::Unresponsive);
    let detected = unresponsive.at - t0;
    assert!(detected > Duration::from_secs(30), "{detected:?}");
    assert!(detected <= Duration::from_secs(35), "{detected:?}");
    // sweeps at 0, 5, ..., 30 (still healthy), 35
    assert_eq!(detected, Duration::from_secs(35));

    let failed = events.recv().await.unwrap();
    assert_eq!(failed.new, HealthStatus::Failed);
    let detected = failed.at - t0;
    assert!(detected > Duration::from_secs(60) && detected <= Duration::from_secs(65));
    handle.stop().await;
}

#[tokio::test(start_paused = true)]
async fn healthy_members_emit_no_events() {
    let monitor = HealthMonitor::default();
    let mut events = monitor.subscribe();
    for r in 0..10usize {
        monitor.add_member(r);
    }
    monitor.add_member("queue");
    let handle = monitor.start().unwrap();
    for _ in 0..30 {
        sleep(Duration::from_secs(10)).await;
        for r in 0..10usize {
            monitor.heartbeat(rank(r)).unwrap();
        }
        monitor.heartbeat("queue").unwrap();
    }
    assert!(drain(&mut events).is_empty());
    assert_eq!(monitor.healthy().len(), 11);
    assert_eq!(monitor.unresponsive_count(), 0);
    handle.stop().await;
}

#[tokio::test(start_paused = true)]
async fn failed_member_heartbeats_and_is_healthy_at_once() {
    let monitor = HealthMonitor::default();
    let mut events = monitor.subscribe();
    monitor.add_member(2usize);
    advance(Duration::from_secs(90)).await;
    monitor.check_now();
    assert_eq!(drain(&mut events).len(), 1); // Healthy -> Failed in one sweep

    let now = Instant::now();
    monitor.heartbeat(rank(2)).unwrap();
    // no sweep in between: the heartbeat itself restores the member
    assert_eq!(monitor.status(rank(2)), Some(HealthStatus::Healthy));
    let got = drain(&mut events);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].member, rank(2));
    assert_eq!(
        (got[0].old, got[0].new),
        (HealthStatus::Failed, HealthStatus::Healthy)
    );
    assert_eq!(got[0].at, now);
    // the next sweep finds nothing to change
    assert_eq!(monitor.check_now().changes, 0);
}

#[tokio::test(start_paused = true)]
async fn a_member_marked_failed_stays_failed_until_it_heartbeats() {
    let monitor = HealthMonitor::default();
    let mut events = monitor.subscribe();
    monitor.add_member(0usize);
    monitor.add_member(1usize);
    advance(Duration::from_secs(1)).await;

    monitor.mark_failed(rank(1)).unwrap();
    let changes = drain(&mut events);
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (changes[0].member.clone(), changes[0].old, changes[0].new),
        (rank(1), HealthStatus::Healthy, HealthStatus::Failed)
    );
    // Its last heartbeat is recent, yet sweeps keep it Failed.
    for _ in 0..3 {
        advance(Duration::from_secs(1)).await;
        monitor.check_now();
    }
    assert_eq!(monitor.status(rank(1)), Some(HealthStatus::Failed));
    assert_eq!(monitor.status(rank(0)), Some(HealthStatus::Healthy));
    assert!(drain(&mut events).is_empty());
    // Marking it again changes nothing.
    monitor.mark_failed(rank(1)).unwrap();
    assert!(drain(&mut events).is_empty());

    monitor.heartbeat(rank(1)).unwrap();
    assert_eq!(monitor.status(rank(1)), Some(HealthStatus::Healthy));
    let changes = drain(&mut events);
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (changes[0].old, changes[0].new),
        (HealthStatus::Failed, HealthStatus::Healthy)
    );
    monitor.check_now();
    assert_eq!(monitor.status(rank(1)), Some(HealthStatus::Healthy));

    assert!(matches!(
        monitor.mark_failed(rank(9)),
        Err(HealthError::UnknownMember { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn unresponsive_member_heartbeats_and_recovers() {
    let monitor = HealthMonitor::default();
    monitor.add_member(0usize);
    advance(Duration::from_secs(40)).await;
    monitor.check_now();
    let mut events = monitor.subscribe();
    monitor.heartbeat(rank(0)).unwrap();
    let got = drain(&mut events);
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].old, got[0].new),
        (HealthStatus::Unresponsive, HealthStatus::Healthy)
    );
}

#[tokio::test(start_paused = true)]
async fn unknown_members_are_refused_and_never_healthy() {
    let monitor = HealthMonitor::default();
    let err = monitor.heartbeat("ghost").unwrap_err();
    assert!(
        matches!(err, HealthError::UnknownMember { ref member } if member == &MemberId::from("ghost"))
    );
    assert!(!monitor.contains("ghost"), "a heartbeat must not register");
    assert_eq!(monitor.status("ghost"), None);
    assert_eq!(monitor.phi("ghost"), None);
    assert!(monitor.healthy().is_empty());
}

#[tokio::test(start_paused = true)]
async fn members_added_and_removed_while_running() {
    let monitor = HealthMonitor::default();
    let mut events = monitor.subscribe();
    monitor.add_member(0usize);
    monitor.add_member(1usize);
    let handle = monitor.start().unwrap();

    sleep(Duration::from_secs(20)).await;
    assert!(monitor.remove_member(rank(1)));
    assert!(!monitor.remove_member(rank(1)));
    assert!(monitor.add_member("late")); // reuses rank 1's slot
    assert!(!monitor.add_member("late"));
    assert_eq!(monitor.len(), 2);
    assert!(monitor.heartbeat(rank(1)).is_err());

    // rank 0 (added at 0 s) goes unresponsive at the 35 s sweep; "late"
    // (added at 20 s) at the 55 s sweep; rank 1 never, it is gone.
    sleep(Duration::from_secs(16)).await; // t = 36 s
    assert_eq!(monitor.status(rank(0)), Some(HealthStatus::Unresponsive));
    assert_eq!(monitor.status("late"), Some(HealthStatus::Healthy));
    sleep(Duration::from_secs(20)).await; // t = 56 s
    assert_eq!(monitor.status("late"), Some(HealthStatus::Unresponsive));
    assert_eq!(monitor.status(rank(1)), None);

    let got = drain(&mut events);
    assert!(got.iter().all(|c| c.member != rank(1)), "{got:?}");
    assert_eq!(got.len(), 2);

    // re-adding a removed member starts it afresh
    assert!(monitor.add_member(1usize));
    assert_eq!(monitor.status(rank(1)), Some(HealthStatus::Healthy));
    monitor.heartbeat(rank(1)).unwrap();
    handle.stop().await;
}

#[tokio::test(start_paused = true)]
async fn monitor_task_ends_when_stopped() {
    let monitor = HealthMonitor::default();
    let handle = monitor.start().unwrap();
    let task = handle.abort_handle();
    sleep(Duration::from_secs(12)).await;
    assert!(!task.is_finished());
    assert!(!handle.is_finished());
    handle.stop().await;
    assert!(task.is_finished());
}

#[tokio::test(start_paused = true)]
async fn monitor_task_ends_when_handle_dropped() {
    let monitor = HealthMonitor::default();
    let handle = monitor.start().unwrap();
    let task = handle.abort_handle();
    sleep(Duration::from_secs(7)).await;
    drop(handle);
    tokio::task::yield_now().await;
    assert!(task.is_finished());
    // nothing sweeps any more: a silent member stays as it was
    monitor.add_member(0usize);
    sleep(Duration::from_secs(100)).await;
    assert_eq!(monitor.status(rank(0)), Some(HealthStatus::Healthy));
}

#[tokio::test(start_paused = true)]
async fn monitor_task_ends_when_monitor_dropped() {
    let monitor = HealthMonitor::default();
    let handle = monitor.start().unwrap();
    drop(monitor);
    sleep(Duration::from_secs(6)).await; // the next tick finds the monitor gone
    assert!(handle.is_finished());
}

#[test]
fn start_outside_a_runtime_is_an_error() {
    let monitor = HealthMonitor::default();
    let err = monitor.start().unwrap_err();
    assert!(matches!(err, HealthError::NoRuntime { .. }), "{err}");
    assert!(std::error::Error::source(&err).is_some());
}

#[tokio::test(start_paused = true)]
async fn sweep_of_100_000_members() {
    const N: usize = 100_000;
    let config = HealthConfig::builder()
        .event_capacity(N + 1)
        .build()
        .unwrap();
    let monitor = HealthMonitor::new(config);
    let mut events = monitor.subscribe();
    for r in 0..N {
        monitor.add_member(r);
    }
    assert_eq!(monitor.len(), N);
    let s = monitor.check_now();
    assert_eq!((s.members, s.healthy, s.changes), (N, N, 0));

    advance(Duration::from_secs(61)).await;
    let s = monitor.check_now();
    assert_eq!((s.members, s.failed, s.changes), (N, N, N));
    let got = drain(&mut events);
    assert_eq!(got.len(), N);
    assert!(got
        .iter()
        .all(|c| c.new == HealthStatus::Failed && c.old == HealthStatus::Healthy));

    // half of them come back, one heartbeat each, one event each
    for r in (0..N).step_by(2) {
        monitor.heartbeat(rank(r)).unwrap();
    }
    assert_eq!(drain(&mut events).len(), N / 2);
    let s = monitor.check_now();
    assert_eq!((s.healthy, s.failed, s.changes), (N / 2, N / 2, 0));
    assert_eq!(monitor.failed().len(), N / 2);
    assert_eq!(monitor.snapshot().count(HealthStatus::Healthy), N / 2);
}

/// `P(Z > z)` for a standard normal `Z`, by Simpson's rule over the density
/// (independent of the library's own evaluation).
fn normal_tail(z: f64) -> f64 {
    let steps = 400_000;
    let (a, b) = (z, z + 40.0);
    let h = (b - a) / steps as f64;
    let pdf = |u: f64| (-u * u / 2.0).exp() / (2.0 * PI).sqrt();
    let mut sum = pdf(a) + pdf(b);
    for i in 1..steps {
        let weight = if i % 2 == 1 { 4.0 } else { 2.0 };
        sum += weight * pdf(a + i as f64 * h);
    }
    sum * h / 3.0
}

/// phi = -log10(1 - CDF(t)) for a silence `t`, mean `mu`, deviation `sigma`.
fn expected_phi(t: f64, mu: f64, sigma: f64) -> f64 {
    let z = (t - mu) / sigma;
    if z < 0.0 {
        -(1.0 - normal_tail(-z)).log10()
    } else if z <= 8.0 {
        -normal_tail(z).log10()
    } else {
        // the asymptotic series of the tail, exact to far below 1e-6 here
        let ln_q = -z * z / 2.0 - (z * (2.0 * PI).sqrt()).ln()
            + (1.0 - 1.0 / (z * z) + 3.0 / z.powi(4) - 15.0 / z.powi(6)).ln();
        -ln_q / LN_10
    }
}

fn phi_monitor(phi: PhiAccrualConfig) -> HealthMonitor {
    HealthMonitor::new(
        HealthConfig::builder()
            .detection(DetectionPolicy::PhiAccrual(phi))
            .build()
            .unwrap(),
    )
}

fn assert_close(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() < 1e-6,
        "{what}: phi {actual} but expected {expected}"
    );
}

#[tokio::test(start_paused = true)]
async fn phi_after_regular_heartbeats_with_defaults() {
    let monitor = phi_monitor(PhiAccrualConfig::default());
    let m = rank(0);
    monitor.add_member(m.clone());
    for _ in 0..20 {
        advance(Duration::from_secs(1)).await;
        monitor.heartbeat(&m).unwrap();
    }
    // every interval is 1 s: mean 1 s + pause 3 s, deviation 0 -> floor 0.1 s
    let (mu, sigma) = (4.0, 0.1);
    let mut last = 0.0;
    for (t, label) in [(1.0, "1 s"), (3.0, "3 s"), (10.0, "10 s")] {
        advance(Duration::from_secs_f64(t - last)).await;
        last = t;
        let phi = monitor.phi(&m).unwrap();
        assert_close(phi, expected_phi(t, mu, sigma), label);
    }
    // 10 s of silence is 60 deviations past the mean: phi is about 786
    assert!(monitor.phi(&m).unwrap() > 700.0);
    monitor.check_now();
    assert_eq!(monitor.status(&m), Some(HealthStatus::Unresponsive));
}

#[tokio::test(start_paused = true)]
async fn phi_after_irregular_heartbeats() {
    let phi = PhiAccrualConfig::builder()
        .acceptable_heartbeat_pause(Duration::ZERO)
        .min_std_deviation(Duration::from_millis(100))
        .build()
        .unwrap();
    let monitor = phi_monitor(phi);
    let m = MemberId::from("worker");
    monitor.add_member(m.clone());
    advance(Duration::from_secs(1)).await;
    monitor.heartbeat(&m).unwrap(); // the first heartbeat: no interval yet
    for ms in [800, 1200, 1000, 900, 1100] {
        advance(Duration::from_millis(ms)).await;
        monitor.heartbeat(&m).unwrap();
    }
    // mean 1.0 s; population variance (0.04 + 0.04 + 0 + 0.01 + 0.01) / 5
    let mu = 1.0;
    let sigma = (0.1f64 / 5.0).sqrt();
    assert_close(
        monitor.phi(&m).unwrap(),
        expected_phi(0.0, mu, sigma),
        "0 s",
    );
    let mut last = 0;
    for ms in [500u64, 1000, 1200, 1500, 2000] {
        advance(Duration::from_millis(ms - last)).await;
        last = ms;
        let t = ms as f64 / 1000.0;
        assert_close(
            monitor.phi(&m).unwrap(),
            expected_phi(t, mu, sigma),
            &format!("{t} s"),
        );
    }
    // at exactly the mean, phi is -log10(1/2)
    assert!((expected_phi(1.0, mu, sigma) - 2f64.log10()).abs() < 1e-9);
}

#[tokio::test(start_paused = true)]
async fn phi_uses_first_estimate_then_a_bounded_window() {
    let phi = PhiAccrualConfig::builder()
        .acceptable_heartbeat_pause(Duration::from_millis(500))
        .first_heartbeat_estimate(Duration::from_secs(2))
        .max_samples(3)
        .build()
        .unwrap();
    let monitor = phi_monitor(phi);
    let m = rank(7);
    monitor.add_member(m.clone());
    // no interval measured: mean = estimate 2 s (+ 0.5 s pause), sigma = 2 s / 4
    advance(Duration::from_secs(1)).await;
    assert_close(
        monitor.phi(&m).unwrap(),
        expected_phi(1.0, 2.5, 0.5),
        "estimate",
    );

    monitor.heartbeat(&m).unwrap();
    // intervals 5 s, then 1 s, 2 s, 3 s: a window of 3 forgets the 5 s
    for s in [5, 1, 2, 3] {
        advance(Duration::from_secs(s)).await;
        monitor.heartbeat(&m).unwrap();
    }
    advance(Duration::from_millis(2500)).await;
    let mu = 2.0 + 0.5;
    let sigma = (2.0f64 / 3.0).sqrt();
    assert_close(
        monitor.phi(&m).unwrap(),
        expected_phi(2.5, mu, sigma),
        "window",
    );
}

#[tokio::test(start_paused = true)]
async fn phi_policy_marks_unresponsive_at_threshold_and_failed_after_twice_the_timeout() {
    let phi = PhiAccrualConfig::builder()
        .threshold(8.0)
        .acceptable_heartbeat_pause(Duration::ZERO)
        .min_std_deviation(Duration::from_millis(200))
        .build()
        .unwrap();
    let config = HealthConfig::builder()
        .heartbeat_timeout(Duration::from_secs(10))
        .check_interval(Duration::from_millis(100))
        .detection(DetectionPolicy::PhiAccrual(phi))
        .build()
        .unwrap();
    let monitor = HealthMonitor::new(config);
    let mut events = monitor.subscribe();
    let m = rank(0);
    monitor.add_member(m.clone());
    for _ in 0..10 {
        advance(Duration::from_secs(1)).await;
        monitor.heartbeat(&m).unwrap();
    }
    let last = Instant::now();
    let handle = monitor.start().unwrap();
    let change = events.recv().await.unwrap();
    assert_eq!(change.new, HealthStatus::Unresponsive);
    let silent = (change.at - last).as_secs_f64();
    // phi reached 8 between the previous sweep and this one
    assert!(expected_phi(silent, 1.0, 0.2) >= 8.0 - 1e-9, "{silent}");
    assert!(expected_phi(silent - 0.1, 1.0, 0.2) < 8.0, "{silent}");
    // long before the 10 s timeout: the detector adapted to 1 s heartbeats
    assert!(silent < 3.0);

    let change = events.recv().await.unwrap();
    assert_eq!(change.new, HealthStatus::Failed);
    let silent = change.at - last;
    assert!(silent > Duration::from_secs(20) && silent <= Duration::from_millis(20_100));
    handle.stop().await;
}

fn run_ranks(
    ranks: &[InMemoryCoordinator],
    monitors: &[HealthMonitor],
    which: impl Fn(usize) -> bool,
) -> HashMap<usize, MonitorHandle> {
    let config = HeartbeatConfig::default();
    let mut handles = HashMap::new();
    for (r, coordinator) in ranks.iter().enumerate() {
        if which(r) {
            let beat =
                CoordinatorHeartbeat::new(coordinator.clone(), monitors[r].clone(), config.clone());
            handles.insert(r, beat.start().unwrap());
        }
    }
    handles
}

#[tokio::test(start_paused = true)]
async fn coordinator_heartbeat_with_four_ranks_one_stops() {
    let ranks = InMemoryCoordinator::new(4);
    let monitors: Vec<HealthMonitor> = (0..4).map(|_| HealthMonitor::default()).collect();
    let mut receivers: Vec<_> = monitors.iter().map(HealthMonitor::subscribe).collect();
    let sweeps: Vec<_> = monitors.iter().map(|m| m.start().unwrap()).collect();
    let mut beats = run_ranks(&ranks, &monitors, |_| true);

    sleep(Duration::from_secs(20)).await;
    for monitor in &monitors {
        assert_eq!(monitor.len(), 4);
        assert_eq!(monitor.healthy().len(), 4);
    }
    let stopped_at = Instant::now();
    beats.remove(&3).unwrap().stop().await;

    sleep(Duration::from_secs(70)).await;
    for (r, monitor) in monitors.iter().enumerate().take(3) {
        assert_eq!(monitor.failed(), vec![rank(3)], "monitor of rank {r}");
        assert_eq!(monitor.healthy().len(), 3);
        let got = drain(&mut receivers[r]);
        let news: Vec<_> = got.iter().map(|c| (c.member.clone(), c.new)).collect();
        assert_eq!(
            news,
            vec![
                (rank(3), HealthStatus::Unresponsive),
                (rank(3), HealthStatus::Failed)
            ]
        );
        // its last heartbeat was seen within 1 s before the stop, and the
        // silence was found within one sweep
        let silent = got[0].at - stopped_at;
        assert!(
            silent > Duration::from_secs(29) && silent <= Duration::from_secs(35),
            "{silent:?}"
        );
    }

    // rank 3 comes back
    beats.extend(run_ranks(&ranks, &monitors, |r| r == 3));
    sleep(Duration::from_secs(2)).await;
    for (r, monitor) in monitors.iter().enumerate().take(3) {
        assert_eq!(monitor.healthy().len(), 4, "monitor of rank {r}");
        let got = drain(&mut receivers[r]);
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].old, got[0].new),
            (HealthStatus::Failed, HealthStatus::Healthy)
        );
    }
    for (_, handle) in beats {
        handle.stop().await;
    }
    for handle in sweeps {
        handle.stop().await;
    }
}

#[tokio::test(start_paused = true)]
async fn coordinator_heartbeat_sees_an_absent_rank_as_silent() {
    let ranks = InMemoryCoordinator::new(3);
    ranks[0].faults().set_absent(2, true); // rank 2 runs, but nobody hears it
    let monitors: Vec<HealthMonitor> = (0..3).map(|_| HealthMonitor::default()).collect();
    let sweeps: Vec<_> = monitors.iter().map(|m| m.start().unwrap()).collect();
    let beats = run_ranks(&ranks, &monitors, |_| true);
    sleep(Duration::from_secs(40)).await;
    assert_eq!(monitors[0].unresponsive(), vec![rank(2)]);
    assert_eq!(monitors[1].unresponsive(), vec![rank(2)]);
    ranks[0].faults().set_absent(2, false);
    sleep(Duration::from_secs(2)).await;
    assert_eq!(monitors[0].healthy().len(), 3);
    assert_eq!(monitors[1].healthy().len(), 3);
    drop(beats);
    drop(sweeps);
}

#[test]
fn concurrent_heartbeats_and_sweeps_keep_event_chains_consistent() {
    // Real threads and the real clock, a timeout of 1 us: sweeps keep
    // marking members silent while heartbeats keep restoring them. The
    // events of each member must form a chain (each change starts where the
    // previous one ended) that ends in the member's final status.
    let config = HealthConfig::builder()
        .heartbeat_timeout(Duration::from_micros(1))
        .check_interval(Duration::from_micros(1))
        .event_capacity(1 << 17)
        .build()
        .unwrap();
    let monitor = HealthMonitor::new(config);
    let mut events = monitor.subscribe();
    const MEMBERS: usize = 4;
    for r in 0..MEMBERS {
        monitor.add_member(r);
    }
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let sweeper = s.spawn(|| {
            let mut sweeps = 0u32;
            // At least 1000 sweeps, even if the heartbeats are all done by
            // the time this thread runs: those find silent members for sure.
            while sweeps < 1_000
                || (!stop.load(std::sync::atomic::Ordering::Relaxed) && sweeps < 20_000)
            {
                monitor.check_now();
                sweeps += 1;
            }
        });
        let beaters: Vec<_> = (0..MEMBERS)
            .map(|r| {
                let monitor = &monitor;
                s.spawn(move || {
                    for _ in 0..4_000 {
                        monitor.heartbeat(MemberId::Rank(r)).unwrap();
                    }
                })
            })
            .collect();
        for b in beaters {
            b.join().unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        sweeper.join().unwrap();
    });
    let mut state: HashMap<MemberId, HealthStatus> = HashMap::new();
    let mut count = 0;
    for change in drain(&mut events) {
        let previous = state
            .entry(change.member.clone())
            .or_insert(HealthStatus::Healthy);
        assert_eq!(*previous, change.old, "broken chain for {}", change.member);
        assert_ne!(change.old, change.new);
        *previous = change.new;
        count += 1;
    }
    for r in 0..MEMBERS {
        let last = state
            .get(&rank(r))
            .copied()
            .unwrap_or(HealthStatus::Healthy);
        assert_eq!(monitor.status(rank(r)), Some(last));
    }
    assert!(count > 0, "the sweeps never found a silent member");
}

/// The serialized field names and defaults stay as they were, both
/// configs round-trip on their own, and a misspelt field is refused (also
/// inside the phi-accrual parameters).
#[test]
fn configs_serialized_forms_are_stable_and_refuse_unknown_fields() {
    let phi = PhiAccrualConfig::default();
    let json = serde_json::to_string(&phi).unwrap();
    assert_eq!(
        json,
        r#"{"threshold":8.0,"max_samples":1000,"min_std_deviation":"100ms","acceptable_heartbeat_pause":"3s","first_heartbeat_estimate":"1s"}"#
    );
    assert_eq!(
        serde_json::from_str::<PhiAccrualConfig>(&json).unwrap(),
        phi
    );
    let tuned = PhiAccrualConfig::builder()
        .threshold(12.0)
        .max_samples(50)
        .acceptable_heartbeat_pause(Duration::from_millis(750))
        .build()
        .unwrap();
    let json = serde_json::to_string(&tuned).unwrap();
    assert!(
        json.contains(r#""acceptable_heartbeat_pause":"750ms""#),
        "{json}"
    );
    assert_eq!(
        serde_json::from_str::<PhiAccrualConfig>(&json).unwrap(),
        tuned
    );
    let err = serde_json::from_str::<PhiAccrualConfig>(r#"{"treshold":9.0}"#).unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");

    let json = serde_json::to_string(&HealthConfig::default()).unwrap();
    assert_eq!(
        json,
        r#"{"heartbeat_timeout":"30s","check_interval":"5s","detection":"fixed_timeout","event_capacity":1024}"#
    );
    assert_eq!(
        serde_json::from_str::<HealthConfig>(&json).unwrap(),
        HealthConfig::default()
    );
    let err = serde_json::from_str::<HealthConfig>(r#"{"timeout":"5s"}"#).unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
    let err =
        serde_json::from_str::<HealthConfig>(r#"{"detection":{"phi_accrual":{"samples":10}}}"#)
            .unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
}

#[test]
fn public_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<HealthMonitor>();
    assert_send_sync::<MonitorHandle>();
    assert_send_sync::<StatusChange>();
    assert_send_sync::<HealthError>();
    assert_send_sync::<MemberId>();
    assert_send_sync::<HealthConfig>();
    assert_send_sync::<HeartbeatConfig>();
    assert_send_sync::<CoordinatorHeartbeat<InMemoryCoordinator>>();
    assert_send_sync::<steadfast::health::HealthSnapshot>();
}

#[test]
fn member_ids_convert_and_display() {
    assert_eq!(MemberId::from(5usize), MemberId::Rank(5));
    assert_eq!(
        MemberId::from("db".to_string()),
        MemberId::Component("db".into())
    );
    assert_eq!(MemberId::Rank(5).to_string(), "rank 5");
    assert_eq!(MemberId::from("db").to_string(), "db");
    let json = serde_json::to_string(&MemberId::Rank(5)).unwrap();
    assert_eq!(
        serde_json::from_str::<MemberId>(&json).unwrap(),
        MemberId::Rank(5)
    );
}

/// Every method that takes a member takes it the same way: a rank as a
/// `usize`, a component as a `&str` or a `String`, a `MemberId` or a
/// `MemberRef`, by value or by reference.
#[tokio::test(start_paused = true)]
async fn every_method_takes_a_member_the_same_way() {
    use steadfast::health::MemberRef;
    let monitor = HealthMonitor::default();
    assert!(monitor.add_member(0usize));
    assert!(monitor.add_member("db"));
    assert!(monitor.add_member(String::from("cache")));
    assert!(monitor.add_member(MemberId::from("queue")));
    assert!(monitor.add_member(MemberId::Rank(1)));
    assert!(monitor.add_member(MemberRef::Component("log")));
    assert!(!monitor.add_member(MemberRef::Rank(0)));
    let db_name = String::from("db");
    assert!(!monitor.add_member(&db_name));
    assert_eq!(monitor.len(), 6);

    let db = MemberId::from("db");
    let cache = String::from("cache");
    monitor.heartbeat(0usize).unwrap();
    monitor.heartbeat("db").unwrap();
    monitor.heartbeat(&db).unwrap();
    monitor.heartbeat(db.clone()).unwrap();
    monitor.heartbeat(&cache).unwrap();
    monitor.heartbeat(MemberRef::Component("queue")).unwrap();
    monitor.heartbeat(rank(1)).unwrap();
    assert!(monitor.heartbeat("ghost").is_err());

    monitor.mark_failed("log").unwrap();
    monitor.check_now();
    assert_eq!(monitor.status("log"), Some(HealthStatus::Failed));
    assert_eq!(
        monitor.status(MemberRef::Rank(1)),
        Some(HealthStatus::Healthy)
    );
    assert_eq!(monitor.status(cache.clone()), Some(HealthStatus::Healthy));
    assert!(monitor.contains(&db));
    assert!(monitor.contains(1usize));
    assert_eq!(monitor.phi("db"), None); // fixed-timeout policy: no phi
    assert!(monitor.remove_member("log"));
    assert!(monitor.remove_member(cache));
    assert!(monitor.remove_member(1usize));
    assert!(!monitor.contains("log"));
    assert_eq!(monitor.len(), 3);
    let err = monitor
        .mark_failed(MemberRef::Component("log"))
        .unwrap_err();
    assert!(
        matches!(err, HealthError::UnknownMember { ref member } if *member == MemberId::from("log"))
    );
}
