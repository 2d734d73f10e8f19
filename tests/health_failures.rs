//! Integration tests of failure detection in the terms users configure:
//! the missed-heartbeat policy at the edges of its threshold and window,
//! members of kinds node, agent and service, the stream of typed failures
//! with their evidence (once per failure, again after a recovery),
//! suspected partitions, and the config keys `heartbeat_interval`,
//! `failure_threshold`, `detection_window` and `partition_fraction`.
//! Everything runs in paused time.

use std::time::Duration;

use steadfast::health::{
    DetectionPolicy, Failure, FailureKind, FailureStream, HealthConfig, HealthMonitor,
    HealthStatus, MemberId, MemberKind, MemberRef, PhiAccrualConfig,
};
use tokio::time::{advance, Instant};

const NS: Duration = Duration::from_nanos(1);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// The missed-heartbeat policy with interval `i` s, threshold `n`, window
/// `w`, swept on demand.
fn missed(i: u64, n: u32, w: Duration) -> HealthMonitor {
    HealthMonitor::new(
        HealthConfig::builder()
            .detection(DetectionPolicy::MissedHeartbeats)
            .heartbeat_interval(secs(i))
            .failure_threshold(n)
            .detection_window(w)
            .check_interval(secs(1))
            .build()
            .unwrap(),
    )
}

/// Advances the paused clock to `start + at`.
async fn at(start: Instant, at: Duration) {
    let target = start + at;
    let now = Instant::now();
    assert!(target >= now, "the clock cannot go back");
    advance(target - now).await;
}

fn drain(failures: &mut FailureStream) -> Vec<Failure> {
    std::iter::from_fn(|| failures.try_recv()).collect()
}

/// Silent from its registration: Healthy up to 1.5 intervals, Unresponsive
/// past that, Failed once `failure_threshold` beats are missed in a row
/// (past 3.5 intervals), reported once with its evidence.
#[tokio::test(start_paused = true)]
async fn missed_heartbeats_in_a_row_at_the_edges() {
    let monitor = missed(10, 3, secs(60));
    let mut failures = monitor.failure_stream();
    let start = Instant::now();
    monitor.add_member(0usize);

    at(start, secs(15)).await;
    monitor.check_now();
    assert_eq!(monitor.status(0usize), Some(HealthStatus::Healthy));
    advance(NS).await;
    monitor.check_now();
    assert_eq!(monitor.status(0usize), Some(HealthStatus::Unresponsive));
    at(start, secs(35)).await;
    monitor.check_now();
    assert_eq!(
        monitor.status(0usize),
        Some(HealthStatus::Unresponsive),
        "two missed"
    );
    assert!(drain(&mut failures).is_empty());
    advance(NS).await;
    monitor.check_now();
    assert_eq!(monitor.status(0usize), Some(HealthStatus::Failed));

    let reported = drain(&mut failures);
    assert_eq!(reported.len(), 1, "{reported:?}");
    let Failure::RankFailure { rank, evidence } = &reported[0] else {
        panic!("{:?}", reported[0]);
    };
    assert_eq!(*rank, 0);
    assert_eq!(evidence.last_heartbeat, start);
    assert_eq!(evidence.silent_for, secs(35) + NS);
    assert_eq!(evidence.at, start + secs(35) + NS);
    assert_eq!(evidence.missed_heartbeats, 3);
    assert_eq!(evidence.missed_in_window, Some(3));
    assert_eq!(evidence.phi, None);
    assert!(!evidence.declared);

    // Still Failed at later sweeps: not reported again.
    for _ in 0..5 {
        advance(secs(10)).await;
        monitor.check_now();
    }
    assert_eq!(monitor.status(0usize), Some(HealthStatus::Failed));
    assert!(drain(&mut failures).is_empty());
}

/// A threshold of one: the first missed beat fails the member.
#[tokio::test(start_paused = true)]
async fn a_threshold_of_one_fails_at_the_first_miss() {
    let monitor = missed(2, 1, secs(2));
    let start = Instant::now();
    monitor.monitor_agent("a");
    at(start, secs(3)).await;
    monitor.check_now();
    assert_eq!(
        monitor.status(MemberRef::Agent("a")),
        Some(HealthStatus::Healthy)
    );
    advance(NS).await;
    monitor.check_now();
    assert_eq!(
        monitor.status(MemberRef::Agent("a")),
        Some(HealthStatus::Failed)
    );
}

/// Heartbeats at 20 s and 40 s each close a gap with one miss (at 15 s and
/// 35 s); the next miss, at 55 s, is the third within the window.
async fn one_miss_at_a_time(monitor: &HealthMonitor) -> Instant {
    one_miss_at_a_time_of(monitor, MemberId::from("db")).await
}

async fn one_miss_at_a_time_of(monitor: &HealthMonitor, member: MemberId) -> Instant {
    let start = Instant::now();
    monitor.add_member(&member);
    at(start, secs(20)).await;
    monitor.heartbeat(&member).unwrap();
    monitor.check_now();
    assert_eq!(monitor.status(&member), Some(HealthStatus::Healthy));
    at(start, secs(40)).await;
    monitor.heartbeat(&member).unwrap();
    at(start, secs(55)).await;
    monitor.check_now();
    assert_eq!(
        monitor.status(&member),
        Some(HealthStatus::Healthy),
        "no beat missing yet"
    );
    advance(NS).await;
    monitor.check_now();
    start
}

#[tokio::test(start_paused = true)]
async fn intermittent_misses_within_the_window_fail_the_member() {
    let monitor = missed(10, 3, secs(60));
    let mut failures = monitor.failure_stream();
    one_miss_at_a_time(&monitor).await;
    assert_eq!(monitor.status("db"), Some(HealthStatus::Failed));
    let reported = drain(&mut failures);
    assert_eq!(reported.len(), 1);
    let Failure::ComponentFailure {
        component,
        evidence,
    } = &reported[0]
    else {
        panic!("{:?}", reported[0]);
    };
    assert_eq!(component, "db");
    assert_eq!(evidence.missed_heartbeats, 1, "one in a row");
    assert_eq!(
        evidence.missed_in_window,
        Some(3),
        "three within the window"
    );
    assert_eq!(evidence.silent_for, secs(15) + NS);
}

/// A rank's heartbeat takes no lock unless it closes a gap with misses: the
/// gaps are recorded all the same.
#[tokio::test(start_paused = true)]
async fn intermittent_misses_of_a_rank_fail_it() {
    let monitor = missed(10, 3, secs(60));
    one_miss_at_a_time_of(&monitor, MemberId::Rank(5)).await;
    assert_eq!(monitor.status(5usize), Some(HealthStatus::Failed));
    let monitor = missed(10, 4, secs(60));
    one_miss_at_a_time_of(&monitor, MemberId::Rank(5)).await;
    assert_eq!(monitor.status(5usize), Some(HealthStatus::Unresponsive));
}

#[tokio::test(start_paused = true)]
async fn intermittent_misses_outside_the_window_do_not() {
    // The miss at 15 s is 40 s + 1 ns old at 55 s + 1 ns: outside a 40 s
    // window, the old end of a window 1 ns longer.
    let monitor = missed(10, 3, secs(40));
    one_miss_at_a_time(&monitor).await;
    assert_eq!(monitor.status("db"), Some(HealthStatus::Unresponsive));

    let monitor = missed(10, 3, secs(40) + NS);
    one_miss_at_a_time(&monitor).await;
    assert_eq!(monitor.status("db"), Some(HealthStatus::Failed));

    // Failed stays Failed while silent, even as the miss at 15 s leaves the
    // window a nanosecond later.
    let mut changes = monitor.subscribe();
    advance(secs(1)).await;
    monitor.check_now();
    assert_eq!(monitor.status("db"), Some(HealthStatus::Failed));
    assert!(changes.try_recv().is_err(), "no change");
}

/// A member that recovered is reported again when it fails again; with the
/// missed-heartbeat policy, a heartbeat makes it Healthy at once, and its
/// misses still in the window make the next miss fail it again.
#[tokio::test(start_paused = true)]
async fn recovery_then_a_second_failure_is_reported_again() {
    let monitor = missed(10, 3, secs(60));
    let mut failures = monitor.failure_stream();
    let start = Instant::now();
    monitor.monitor_service("billing");
    let billing = MemberId::service("billing");

    at(start, secs(40)).await;
    monitor.check_now();
    assert_eq!(monitor.status(&billing), Some(HealthStatus::Failed));
    assert_eq!(drain(&mut failures).len(), 1);

    monitor.heartbeat(&billing).unwrap();
    assert_eq!(monitor.status(&billing), Some(HealthStatus::Healthy));
    monitor.check_now();
    assert_eq!(
        monitor.status(&billing),
        Some(HealthStatus::Healthy),
        "beating: Healthy whatever the window holds"
    );
    assert!(drain(&mut failures).is_empty());

    // Three misses (at 15, 25, 35 s) are still in the window: the next one
    // (at 55 s) fails it again.
    at(start, secs(55) + NS).await;
    monitor.check_now();
    assert_eq!(monitor.status(&billing), Some(HealthStatus::Failed));
    let reported = drain(&mut failures);
    assert_eq!(reported.len(), 1);
    assert_eq!(reported[0].kind(), FailureKind::ServiceFailure);
    let evidence = reported[0].evidence().unwrap();
    assert_eq!(
        (evidence.missed_heartbeats, evidence.missed_in_window),
        (1, Some(4))
    );
    assert_eq!(evidence.last_heartbeat, start + secs(40));

    // Beating regularly, the old misses slide out of the window: a single
    // miss later only makes it Unresponsive.
    monitor.heartbeat(&billing).unwrap();
    for step in 1..=8u64 {
        at(start, secs(56 + step * 10)).await;
        monitor.heartbeat(&billing).unwrap();
    }
    at(start, secs(136 + 15) + NS).await;
    monitor.check_now();
    assert_eq!(monitor.status(&billing), Some(HealthStatus::Unresponsive));
    assert!(drain(&mut failures).is_empty());
}

/// With the fixed timeout, the same: once per failure, again after a
/// recovery; the evidence counts missed beats at `heartbeat_interval`.
#[tokio::test(start_paused = true)]
async fn fixed_timeout_failures_are_reported_once_per_failure() {
    let monitor = HealthMonitor::default();
    let mut failures = monitor.failure_stream();
    monitor.add_member(1usize);
    for round in 0..2 {
        advance(secs(31)).await;
        monitor.check_now();
        assert!(drain(&mut failures).is_empty(), "Unresponsive only");
        advance(secs(30)).await;
        monitor.check_now();
        advance(secs(30)).await;
        monitor.check_now();
        let reported = drain(&mut failures);
        assert_eq!(reported.len(), 1, "round {round}: {reported:?}");
        assert_eq!(reported[0].rank(), Some(1));
        let evidence = reported[0].evidence().unwrap();
        assert_eq!(evidence.silent_for, secs(61));
        assert_eq!(evidence.missed_heartbeats, 11); // (61 - 2.5) / 5
        assert_eq!(evidence.missed_in_window, None);
        monitor.heartbeat(1usize).unwrap();
    }
}

/// Each kind of member fails as its own variant; a failure declared with
/// `mark_failed` says so; the phi-accrual policy adds phi.
#[tokio::test(start_paused = true)]
async fn every_kind_of_failure_with_its_evidence() {
    let monitor = missed(5, 3, secs(30));
    let mut failures = monitor.failure_stream();
    monitor.monitor_node("n");
    monitor.monitor_agent("n"); // another member: same name, another kind
    monitor.monitor_service("n");
    monitor.add_member(7usize);
    monitor.add_member("n");
    assert_eq!(monitor.len(), 5);
    advance(secs(2)).await;
    monitor.mark_failed(MemberRef::Node("n")).unwrap();
    let reported = drain(&mut failures);
    assert_eq!(reported.len(), 1);
    let Failure::NodeCrash { node, evidence } = &reported[0] else {
        panic!("{:?}", reported[0]);
    };
    assert_eq!(node, "n");
    assert!(evidence.declared);
    assert_eq!(evidence.silent_for, secs(2));
    assert_eq!(evidence.missed_heartbeats, 0);
    assert_eq!(
        monitor.status(MemberRef::Agent("n")),
        Some(HealthStatus::Healthy)
    );

    monitor.heartbeat(MemberRef::Node("n")).unwrap();
    advance(secs(20)).await; // 3 beats missed by everyone
    monitor.check_now();
    let mut kinds: Vec<(FailureKind, MemberId)> = drain(&mut failures)
        .into_iter()
        .filter(|f| f.kind() != FailureKind::SuspectedPartition)
        .map(|f| (f.kind(), f.member().unwrap().to_member_id()))
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            (FailureKind::NodeCrash, MemberId::node("n")),
            (FailureKind::AgentFailure, MemberId::agent("n")),
            (FailureKind::ServiceFailure, MemberId::service("n")),
            (FailureKind::RankFailure, MemberId::Rank(7)),
            (FailureKind::ComponentFailure, MemberId::from("n")),
        ]
    );

    let phi = HealthMonitor::new(
        HealthConfig::builder()
            .detection(DetectionPolicy::PhiAccrual(PhiAccrualConfig::default()))
            .build()
            .unwrap(),
    );
    let mut failures = phi.failure_stream();
    phi.monitor_node("p");
    for _ in 0..10 {
        advance(secs(1)).await;
        phi.heartbeat(MemberRef::Node("p")).unwrap();
    }
    advance(secs(61)).await;
    phi.check_now();
    let reported = drain(&mut failures);
    assert_eq!(reported.len(), 1);
    let evidence = reported[0].evidence().unwrap();
    let expected_phi = phi.phi(MemberRef::Node("p")).unwrap();
    assert_eq!(evidence.phi, Some(expected_phi));
    assert!(expected_phi > 8.0);
    assert_eq!(evidence.missed_heartbeats, 11);
    assert_eq!(
        reported[0].to_string(),
        format!(
            "node p crashed: silent for 61s, 11 heartbeats missed in a row, phi {expected_phi:.2}"
        )
    );
}

/// Six nodes, fraction one half: three lost within one detection window
/// are a suspected partition, reported once beside their own failures; it
/// closes once fewer than three are lost, and can then be reported again.
#[tokio::test(start_paused = true)]
async fn a_suspected_partition_is_reported_once_per_suspicion() {
    let monitor = missed(10, 3, secs(30));
    let mut failures = monitor.failure_stream();
    let start = Instant::now();
    let nodes: Vec<String> = (0..6).map(|n| format!("n{n}")).collect();
    for node in &nodes {
        monitor.monitor_node(node.as_str());
    }
    // n0 stops beating after 10 s, n1 after 20 s, n2 after 30 s, n3 after 50 s.
    let last_beat = [10u64, 20, 30, 50, 1000, 1000];
    let mut partitions = Vec::new();
    let mut crashes = Vec::new();
    for t in (10..=70).step_by(10) {
        at(start, secs(t)).await;
        for (node, &last) in nodes.iter().zip(&last_beat) {
            if t <= last {
                monitor.heartbeat(MemberRef::Node(node)).unwrap();
            }
        }
        monitor.check_now();
        for failure in drain(&mut failures) {
            match failure {
                Failure::SuspectedPartition { .. } => partitions.push((t, failure)),
                Failure::NodeCrash { node, .. } => crashes.push((t, node)),
                other => panic!("{other:?}"),
            }
        }
    }
    // Lost (Unresponsive) at 30, 40 and 50 s: the third makes the quorum.
    assert_eq!(partitions.len(), 1, "{partitions:?}");
    let (t, partition) = &partitions[0];
    assert_eq!(*t, 50);
    let Failure::SuspectedPartition {
        members,
        monitored,
        first_lost,
        at: found,
    } = partition
    else {
        unreachable!()
    };
    assert_eq!(
        members,
        &vec![
            MemberId::node("n0"),
            MemberId::node("n1"),
            MemberId::node("n2")
        ]
    );
    assert_eq!(*monitored, 6);
    assert_eq!(*first_lost, start + secs(30));
    assert_eq!(*found, start + secs(50));
    assert_eq!(partition.kind(), FailureKind::SuspectedPartition);
    assert_eq!(partition.members().len(), 3);
    assert!(partition
        .to_string()
        .starts_with("suspected partition: 3 of 6 members"));
    // Their own failures are reported besides (n3's, lost at 70 s while the
    // suspicion is open, adds no partition).
    assert_eq!(
        crashes,
        vec![
            (50, "n0".to_string()),
            (60, "n1".to_string()),
            (70, "n2".to_string())
        ]
    );

    // The three come back: n3 alone is left lost, fewer than three, so the
    // suspicion closes; three lost again make a new one.
    for node in ["n0", "n1", "n2"] {
        monitor.heartbeat(MemberRef::Node(node)).unwrap();
    }
    assert_eq!(monitor.unresponsive(), vec![MemberId::node("n3")]);
    for node in ["n0", "n1"] {
        monitor.mark_failed(MemberRef::Node(node)).unwrap();
    }
    let reported = drain(&mut failures);
    assert_eq!(reported.len(), 3, "{reported:?}");
    assert_eq!(reported[0].kind(), FailureKind::NodeCrash);
    assert_eq!(reported[1].kind(), FailureKind::NodeCrash);
    assert_eq!(
        reported[2].members(),
        vec![
            MemberId::node("n0"),
            MemberId::node("n1"),
            MemberId::node("n3")
        ]
    );
}

/// Members lost more than one detection window apart are no partition,
/// and neither is one member of two (at least two must be lost).
#[tokio::test(start_paused = true)]
async fn losses_spread_over_more_than_a_window_are_no_partition() {
    let monitor = missed(10, 3, secs(30));
    let mut failures = monitor.failure_stream();
    for rank in 0..4usize {
        monitor.add_member(rank);
    }
    // Rank r beats until 40·r s: lost 20 s later, 40 s apart.
    for t in (10..=200).step_by(10) {
        advance(secs(10)).await;
        for rank in 0..4usize {
            if t <= 40 * (rank as u64 + 1) {
                monitor.heartbeat(rank).unwrap();
            }
        }
        monitor.check_now();
    }
    assert_eq!(monitor.failed().len(), 4);
    let reported = drain(&mut failures);
    assert_eq!(reported.len(), 4, "{reported:?}");
    assert!(reported
        .iter()
        .all(|f| f.kind() == FailureKind::RankFailure));

    let pair = missed(10, 3, secs(30));
    let mut failures = pair.failure_stream();
    pair.add_member(0usize);
    pair.add_member(1usize);
    pair.mark_failed(0usize).unwrap();
    assert_eq!(drain(&mut failures).len(), 1);
    pair.mark_failed(1usize).unwrap();
    let reported = drain(&mut failures);
    assert_eq!(reported.len(), 2, "two of two are a partition");
    assert_eq!(
        reported[1].members(),
        vec![MemberId::Rank(0), MemberId::Rank(1)]
    );

    let single = HealthMonitor::default();
    let mut failures = single.failure_stream();
    single.add_member(0usize);
    single.mark_failed(0usize).unwrap();
    assert_eq!(
        drain(&mut failures).len(),
        1,
        "one member is never a partition"
    );
}

/// A removed member leaves the lost members: the suspicion closes.
#[tokio::test(start_paused = true)]
async fn removing_lost_members_closes_the_suspicion() {
    let monitor = HealthMonitor::default();
    let mut failures = monitor.failure_stream();
    for rank in 0..4usize {
        monitor.add_member(rank);
    }
    monitor.mark_failed(0usize).unwrap();
    monitor.mark_failed(1usize).unwrap();
    assert_eq!(drain(&mut failures).len(), 3);
    monitor.mark_failed(2usize).unwrap();
    assert_eq!(drain(&mut failures).len(), 1, "still open");
    monitor.remove_member(0usize);
    monitor.remove_member(1usize);
    // One lost of two monitored: closed. Two of two lost again: reported.
    monitor.mark_failed(3usize).unwrap();
    let reported = drain(&mut failures);
    assert_eq!(reported.len(), 2, "{reported:?}");
    assert_eq!(
        reported[1].members(),
        vec![MemberId::Rank(2), MemberId::Rank(3)]
    );
}

/// The stream is owned, Send and 'static: it is read from another task,
/// and ends when the monitor is gone.
#[tokio::test(start_paused = true)]
async fn the_failure_stream_is_read_from_another_task() {
    fn assert_send_static<T: Send + 'static>(_: &T) {}
    let monitor = missed(1, 2, secs(10));
    let failures = monitor.failure_stream();
    assert_send_static(&failures);
    let reader = tokio::spawn(async move {
        use futures::StreamExt;
        failures.collect::<Vec<Failure>>().await
    });
    let sweeper = monitor.start().unwrap();
    monitor.monitor_agent("worker");
    tokio::time::sleep(secs(5)).await;
    sweeper.stop().await;
    drop(monitor);
    let failures = reader.await.unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].member(), Some(MemberRef::Agent("worker")));
    // Failed once silent for longer than 2.5 s; the sweep at 3 s finds it.
    assert_eq!(failures[0].evidence().unwrap().silent_for, secs(3));
}

#[test]
fn member_kinds_are_distinct_members_and_serialize() {
    let kinds = [
        MemberId::from("x"),
        MemberId::node("x"),
        MemberId::agent("x"),
        MemberId::service("x"),
    ];
    for (i, a) in kinds.iter().enumerate() {
        for (j, b) in kinds.iter().enumerate() {
            assert_eq!(a == b, i == j);
        }
        let json = serde_json::to_string(a).unwrap();
        assert_eq!(&serde_json::from_str::<MemberId>(&json).unwrap(), a);
    }
    assert_eq!(
        serde_json::to_string(&MemberId::node("web-1")).unwrap(),
        r#"{"node":"web-1"}"#
    );
    assert_eq!(
        kinds.iter().map(MemberId::kind).collect::<Vec<_>>(),
        vec![
            MemberKind::Component,
            MemberKind::Node,
            MemberKind::Agent,
            MemberKind::Service
        ]
    );
    assert_eq!(
        kinds.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec!["x", "node x", "agent x", "service x"]
    );
    assert_eq!(MemberId::Rank(1).name(), None);
    assert_eq!(MemberId::agent("a").as_component(), None);
}

#[test]
fn missed_heartbeat_keys_round_trip_and_defaults_stay() {
    let config: HealthConfig = serde_json::from_str(
        r#"{"detection":"missed_heartbeats","heartbeat_interval":"2s","failure_threshold":4,
            "detection_window":"1m","partition_fraction":0.75}"#,
    )
    .unwrap();
    assert_eq!(config.detection(), &DetectionPolicy::MissedHeartbeats);
    assert_eq!(config.heartbeat_interval(), secs(2));
    assert_eq!(config.failure_threshold(), 4);
    assert_eq!(config.detection_window(), secs(60));
    assert_eq!(config.partition_fraction(), 0.75);
    let json = serde_json::to_string(&config).unwrap();
    assert_eq!(
        json,
        r#"{"heartbeat_timeout":"30s","check_interval":"5s","detection":"missed_heartbeats","event_capacity":1024,"heartbeat_interval":"2s","failure_threshold":4,"detection_window":"1m","partition_fraction":0.75}"#
    );
    assert_eq!(serde_json::from_str::<HealthConfig>(&json).unwrap(), config);
    let built = HealthConfig::builder()
        .detection(DetectionPolicy::MissedHeartbeats)
        .heartbeat_interval(secs(2))
        .failure_threshold(4)
        .detection_window(secs(60))
        .partition_fraction(0.75)
        .build()
        .unwrap();
    assert_eq!(built, config);

    // The item-9 keys, as an operator writes them.
    let config: HealthConfig = serde_json::from_str(
        r#"{"heartbeat_interval":"5s","failure_threshold":3,"detection_window":"30s"}"#,
    )
    .unwrap();
    assert_eq!(config, HealthConfig::default(), "those are the defaults");
    let defaults = HealthConfig::default();
    assert_eq!(
        (
            defaults.heartbeat_interval(),
            defaults.failure_threshold(),
            defaults.detection_window(),
            defaults.partition_fraction()
        ),
        (secs(5), 3, secs(30), 0.5)
    );
    // A window of exactly one interval is accepted.
    assert!(HealthConfig::builder()
        .heartbeat_interval(secs(30))
        .detection_window(secs(30))
        .build()
        .is_ok());
}

#[test]
fn missed_heartbeat_keys_refuse_what_cannot_work() {
    let field = |json: &str| {
        serde_json::from_str::<HealthConfig>(json)
            .unwrap_err()
            .to_string()
    };
    let err = field(r#"{"failure_threshold":0}"#);
    assert!(err.contains("failure_threshold"), "{err}");
    let err = field(r#"{"heartbeat_interval":"0s"}"#);
    assert!(err.contains("heartbeat_interval"), "{err}");
    let err = field(r#"{"detection_window":"4s"}"#);
    assert!(err.contains("detection_window"), "{err}");
    let err = field(r#"{"partition_fraction":0.0}"#);
    assert!(err.contains("partition_fraction"), "{err}");
    let err = field(r#"{"failure_treshold":3}"#);
    assert!(err.contains("unknown field"), "{err}");
    assert!(serde_json::from_str::<HealthConfig>(r#"{"failure_threshold":-1}"#).is_err());

    let b = HealthConfig::builder;
    assert_eq!(
        b().failure_threshold(0).build().unwrap_err().field(),
        "failure_threshold"
    );
    assert_eq!(
        b().heartbeat_interval(Duration::ZERO)
            .build()
            .unwrap_err()
            .field(),
        "heartbeat_interval"
    );
    assert_eq!(
        b().heartbeat_interval(secs(10))
            .detection_window(secs(10) - NS)
            .build()
            .unwrap_err()
            .field(),
        "detection_window"
    );
    assert_eq!(
        b().heartbeat_interval(Duration::MAX)
            .detection_window(Duration::MAX)
            .build()
            .unwrap_err()
            .field(),
        "heartbeat_interval"
    );
    for fraction in [0.0, -0.5, 1.0 + f64::EPSILON, f64::NAN, f64::INFINITY] {
        assert_eq!(
            b().partition_fraction(fraction)
                .build()
                .unwrap_err()
                .field(),
            "partition_fraction",
            "{fraction}"
        );
    }
    assert!(b().partition_fraction(1.0).build().is_ok());
}

#[test]
fn failure_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Failure>();
    assert_send_sync::<FailureKind>();
    assert_send_sync::<steadfast::health::FailureEvidence>();
    assert_send_sync::<FailureStream>();
    assert_send_sync::<MemberKind>();
}

/// `partition_fraction` sets the quorum: with 1.0, every monitored member
/// must be lost.
#[tokio::test(start_paused = true)]
async fn the_partition_fraction_sets_the_quorum() {
    let monitor = HealthMonitor::new(
        HealthConfig::builder()
            .partition_fraction(1.0)
            .build()
            .unwrap(),
    );
    let mut failures = monitor.failure_stream();
    for node in ["a", "b", "c"] {
        monitor.monitor_node(node);
    }
    monitor.mark_failed(MemberRef::Node("a")).unwrap();
    monitor.mark_failed(MemberRef::Node("b")).unwrap();
    assert_eq!(drain(&mut failures).len(), 2, "two of three: no partition");
    monitor.mark_failed(MemberRef::Node("c")).unwrap();
    let reported = drain(&mut failures);
    assert_eq!(reported.len(), 2);
    assert_eq!(reported[1].kind(), FailureKind::SuspectedPartition);
}
