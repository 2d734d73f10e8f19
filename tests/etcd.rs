//! The etcd coordinator against a real etcd server.
//!
//! The tests read the server's address from `STEADFAST_ETCD_ENDPOINTS`
//! (`.ci/services.sh` starts one and sets it); without it each test fails
//! in CI (`CI=true`) and, elsewhere, says it skipped. The restart test
//! starts its own etcd from
//! `STEADFAST_ETCD_BIN`.
//!
//! These tests talk to a real server, so they run on the real clock: they
//! wait for events with generous timeouts (never sleeping to pass) and
//! assert only what happened, not how fast.
#![cfg(feature = "etcd")]

mod common;
use common::{init_tracing, server_var, unique};

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use futures::StreamExt;
use steadfast::coordinator::{
    conformance, Coordinator, CoordinatorError, EtcdConfig, EtcdCoordinator, MemberEvent,
    Membership, MembershipEvent, Role, Signal,
};
use steadfast::health::{HealthConfig, HealthMonitor, HealthStatus, MemberId};
use steadfast::retry::{RetryPolicy, Transient};
use tokio::process::{Child, Command};

/// A generous bound for things that should happen within seconds.
const PATIENCE: Duration = Duration::from_secs(60);

/// Logs of the crate, shown with `RUST_LOG=steadfast=debug` and
/// `--nocapture`.
fn endpoints(test: &str) -> Option<String> {
    init_tracing();
    server_var(test, "STEADFAST_ETCD_ENDPOINTS")
}

/// A prefix no other test (or earlier run) uses.
fn unique_prefix(test: &str) -> String {
    unique(test)
}

fn config(endpoints: &str, prefix: &str, rank: usize, world_size: usize) -> EtcdConfig {
    EtcdConfig::builder()
        .endpoints_csv(endpoints)
        .prefix(prefix)
        .rank(rank)
        .world_size(world_size)
        .connect_timeout(Duration::from_secs(10))
        .op_timeout(Duration::from_secs(3))
        .build()
        .unwrap()
}

async fn connect_all(endpoints: &str, prefix: &str, world_size: usize) -> Vec<EtcdCoordinator> {
    let mut ranks = Vec::new();
    for rank in 0..world_size {
        ranks.push(
            EtcdCoordinator::connect(config(endpoints, prefix, rank, world_size))
                .await
                .unwrap(),
        );
    }
    ranks
}

async fn shutdown_all(ranks: Vec<EtcdCoordinator>) {
    let tasks: Vec<_> = ranks
        .into_iter()
        .map(|r| tokio::spawn(async move { r.shutdown(PATIENCE).await }))
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_ranks_meet_at_barriers_gather_and_signal() {
    let Some(endpoints) = endpoints("four_ranks_meet_at_barriers_gather_and_signal") else {
        return;
    };
    let prefix = unique_prefix("four-ranks");
    let mut tasks = Vec::new();
    for rank in 0..4 {
        // Each rank has its own client, as separate processes would.
        let config = config(&endpoints, &prefix, rank, 4);
        tasks.push(tokio::spawn(async move {
            let c = EtcdCoordinator::connect(config).await?;
            assert_eq!(c.rank(), rank);
            assert_eq!(c.world_size(), 4);
            assert_eq!(c.name(), "etcd");
            c.barrier(PATIENCE).await?;
            let first = c
                .all_gather(format!("rank-{rank}").into_bytes(), PATIENCE)
                .await?;
            let second = c.all_gather(vec![rank as u8; rank], PATIENCE).await?;
            c.barrier(PATIENCE).await?;

            // Rank 0 says go; every other rank waits for it.
            let go = if rank == 0 {
                assert_eq!(c.signal("go", b"step-1".to_vec()).await?, 1);
                assert_eq!(c.signal("go", b"step-2".to_vec()).await?, 2);
                None
            } else {
                Some(c.wait_for_rank(0, "go", 2, PATIENCE).await?)
            };
            let before = c.wait_for_rank(3, "never", 0, PATIENCE).await?;
            c.barrier(PATIENCE).await?;
            c.shutdown(PATIENCE).await?;
            Ok::<_, CoordinatorError>((first, second, go, before))
        }));
    }
    for (rank, task) in tasks.into_iter().enumerate() {
        let (first, second, go, before) = task.await.unwrap().unwrap();
        assert_eq!(
            first,
            (0..4)
                .map(|r| format!("rank-{r}").into_bytes())
                .collect::<Vec<_>>()
        );
        assert_eq!(
            second,
            (0..4).map(|r| vec![r as u8; r]).collect::<Vec<_>>(),
            "payloads are ordered by rank, an empty one included"
        );
        if rank > 0 {
            assert_eq!(
                go,
                Some(Signal {
                    seq: 2,
                    payload: b"step-2".to_vec()
                })
            );
        }
        assert_eq!(before, Signal::default(), "min_seq 0 returns at once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_of_the_etcd_coordinator() {
    let Some(endpoints) = endpoints("conformance_of_the_etcd_coordinator") else {
        return;
    };
    // Each job of the suite runs under a prefix of its own.
    conformance::run_all(|n| {
        let endpoints = endpoints.clone();
        async move { connect_all(&endpoints, &unique_prefix("conformance"), n).await }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_conformance_of_the_etcd_coordinator() {
    let Some(endpoints) = endpoints("membership_conformance_of_the_etcd_coordinator") else {
        return;
    };
    conformance::run_membership(|n| {
        let endpoints = endpoints.clone();
        async move { connect_all(&endpoints, &unique_prefix("membership"), n).await }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_name_the_missing_ranks_and_break_the_round() {
    let Some(endpoints) = endpoints("timeouts_name_the_missing_ranks_and_break_the_round") else {
        return;
    };
    let prefix = unique_prefix("timeouts");
    // Ranks 2 and 3 of 4 are not there.
    let present = vec![
        EtcdCoordinator::connect(config(&endpoints, &prefix, 0, 4))
            .await
            .unwrap(),
        EtcdCoordinator::connect(config(&endpoints, &prefix, 1, 4))
            .await
            .unwrap(),
    ];
    let waits: Vec<_> = present
        .iter()
        .cloned()
        .map(|c| tokio::spawn(async move { c.barrier(Duration::from_secs(2)).await }))
        .collect();
    let mut timed_out = 0;
    for w in waits {
        let err = w.await.unwrap().unwrap_err();
        assert_eq!(err.missing_ranks(), &[2, 3], "{err}");
        match err {
            CoordinatorError::Timeout { operation, .. } => {
                assert_eq!(operation, "barrier");
                timed_out += 1;
            }
            CoordinatorError::Broken {
                operation, round, ..
            } => {
                assert_eq!((operation, round), ("barrier", 0));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(timed_out >= 1, "at least one rank timed out itself");

    // A late rank finds round 0 broken at once, naming who was missing.
    let late = EtcdCoordinator::connect(config(&endpoints, &prefix, 2, 4))
        .await
        .unwrap();
    match late.barrier(PATIENCE).await.unwrap_err() {
        CoordinatorError::Broken {
            operation,
            round,
            missing,
        } => assert_eq!((operation, round, missing), ("barrier", 0, vec![2, 3])),
        other => panic!("unexpected {other:?}"),
    }

    // The all-gather rounds are counted apart from the barrier rounds.
    let err = present[0]
        .all_gather(b"x".to_vec(), Duration::from_millis(500))
        .await
        .unwrap_err();
    assert_eq!(err.missing_ranks(), &[1, 2, 3]);

    let err = present[0]
        .wait_for_rank(3, "ready", 1, Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CoordinatorError::Timeout { operation: "wait_for_rank", ref missing, .. } if missing == &[3]),
        "{err:?}"
    );
    assert!(matches!(
        present[0]
            .wait_for_rank(4, "ready", 1, PATIENCE)
            .await
            .unwrap_err(),
        CoordinatorError::InvalidRank {
            rank: 4,
            world_size: 4
        }
    ));
    assert!(matches!(
        present[0].signal("", vec![]).await.unwrap_err(),
        CoordinatorError::InvalidArgument(_)
    ));
    for c in present.into_iter().chain([late]) {
        c.shutdown(Duration::from_millis(200)).await.ok();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_with_different_prefixes_never_see_each_other() {
    let Some(endpoints) = endpoints("jobs_with_different_prefixes_never_see_each_other") else {
        return;
    };
    let job_a = unique_prefix("isolated");
    // Prefixes that extend A's as a string and as a path.
    let job_b = format!("{job_a}2");
    let job_c = format!("{job_a}/members");

    let a0 = EtcdCoordinator::connect(config(&endpoints, &job_a, 0, 2))
        .await
        .unwrap();
    let b = connect_all(&endpoints, &job_b, 2).await;
    let c = connect_all(&endpoints, &job_c, 2).await;

    // Jobs B and C are complete and meet; A's rank 1 never comes.
    let a_wait = {
        let a0 = a0.clone();
        tokio::spawn(async move { a0.barrier(Duration::from_secs(3)).await })
    };
    for job in [&b, &c] {
        let waits: Vec<_> = job
            .iter()
            .cloned()
            .map(|r| tokio::spawn(async move { r.barrier(PATIENCE).await }))
            .collect();
        for w in waits {
            w.await.unwrap().unwrap();
        }
    }
    let err = a_wait.await.unwrap().unwrap_err();
    assert_eq!(err.missing_ranks(), &[1]);

    assert_eq!(a0.members_alive().await.unwrap(), vec![0]);
    assert_eq!(b[0].members_alive().await.unwrap(), vec![0, 1]);
    assert_eq!(c[1].members_alive().await.unwrap(), vec![0, 1]);

    // A signal of job B's rank 0 is not job A's.
    b[0].signal("go", b"b".to_vec()).await.unwrap();
    let err = a0
        .wait_for_rank(0, "go", 1, Duration::from_millis(500))
        .await
        .unwrap_err();
    assert_eq!(err.missing_ranks(), &[0]);

    a0.shutdown(Duration::from_millis(200)).await.ok();
    shutdown_all(b).await;
    shutdown_all(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_etcd_is_a_clear_error_within_the_connect_timeout() {
    // No server needed: nothing listens on this port.
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let config = EtcdConfig::builder()
        .endpoints([endpoint.clone()])
        .prefix(unique_prefix("unreachable"))
        .connect_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let result = tokio::time::timeout(PATIENCE, EtcdCoordinator::connect(config))
        .await
        .expect("connect must give up by itself");
    let err = result.unwrap_err();
    match &err {
        CoordinatorError::Unavailable { message, .. } => {
            assert!(message.contains(&endpoint), "{message}");
            assert!(message.contains("within 1s"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rank_cannot_join_twice_or_with_another_world_size() {
    let Some(endpoints) = endpoints("a_rank_cannot_join_twice_or_with_another_world_size") else {
        return;
    };
    let prefix = unique_prefix("join-twice");
    let first = EtcdCoordinator::connect(config(&endpoints, &prefix, 0, 2))
        .await
        .unwrap();
    let err = EtcdCoordinator::connect(config(&endpoints, &prefix, 0, 2))
        .await
        .unwrap_err();
    assert!(matches!(err, CoordinatorError::Backend { .. }), "{err:?}");
    assert!(err.to_string().contains("already registered"), "{err}");

    let err = EtcdCoordinator::connect(config(&endpoints, &prefix, 1, 3))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CoordinatorError::InvalidArgument(_)),
        "{err:?}"
    );
    assert!(err.to_string().contains("world size"), "{err}");
    // The refused rank left nothing behind.
    assert_eq!(first.members_alive().await.unwrap(), vec![0]);
    first.shutdown(Duration::from_millis(200)).await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rank_whose_lease_expires_is_reported_failed() {
    let Some(endpoints) = endpoints("a_rank_whose_lease_expires_is_reported_failed") else {
        return;
    };
    let prefix = unique_prefix("lease-expiry");
    let short = |rank| {
        EtcdConfig::builder()
            .endpoints_csv(&endpoints)
            .prefix(prefix.clone())
            .rank(rank)
            .world_size(3)
            .lease_ttl(Duration::from_secs(2))
            .build()
            .unwrap()
    };
    let r0 = EtcdCoordinator::connect(short(0)).await.unwrap();
    let r1 = EtcdCoordinator::connect(short(1)).await.unwrap();
    let r2 = EtcdCoordinator::connect(short(2)).await.unwrap();
    let mut members = r0.watch_members();
    let mut joined = Vec::new();
    for _ in 0..3 {
        let event = tokio::time::timeout(PATIENCE, members.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        joined.push(event);
    }
    assert_eq!(
        joined,
        (0..3)
            .map(|rank| MemberEvent::Joined { rank })
            .collect::<Vec<_>>()
    );

    // Rank 1 leaves cleanly; rank 2 dies (its keep-alive stops with it).
    r1.shutdown(Duration::from_millis(200)).await.ok();
    let event = tokio::time::timeout(PATIENCE, members.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        event,
        MemberEvent::Left {
            rank: 1,
            graceful: true
        }
    );
    drop(r2);
    let event = tokio::time::timeout(PATIENCE, members.next())
        .await
        .expect("the expiry of rank 2's lease must be reported")
        .unwrap()
        .unwrap();
    assert_eq!(
        event,
        MemberEvent::Left {
            rank: 2,
            graceful: false
        }
    );
    assert!(event.is_failure());
    assert_eq!(r0.members_alive().await.unwrap(), vec![0]);
    // The dead rank's keys went with its lease: it is missing from a barrier.
    let err = r0.barrier(Duration::from_secs(1)).await.unwrap_err();
    assert_eq!(err.missing_ranks(), &[1, 2]);
    r0.shutdown(Duration::from_millis(200)).await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_ends_up_failed_in_the_health_monitor() {
    let Some(endpoints) = endpoints("an_expired_lease_ends_up_failed_in_the_health_monitor") else {
        return;
    };
    let prefix = unique_prefix("liveness");
    let short = |rank| {
        EtcdConfig::builder()
            .endpoints_csv(&endpoints)
            .prefix(prefix.clone())
            .rank(rank)
            .world_size(3)
            .lease_ttl(Duration::from_secs(2))
            .build()
            .unwrap()
    };
    let r0 = EtcdCoordinator::connect(short(0)).await.unwrap();
    let r1 = EtcdCoordinator::connect(short(1)).await.unwrap();
    let r2 = EtcdCoordinator::connect(short(2)).await.unwrap();
    let monitor = HealthMonitor::new(
        HealthConfig::builder()
            // Heartbeats every 1.5 s: room for a loaded machine.
            .heartbeat_timeout(Duration::from_secs(3))
            .check_interval(Duration::from_millis(100))
            .build()
            .unwrap(),
    );
    let mut changes = monitor.subscribe();
    let sweeper = monitor.start().unwrap();
    // The monitor follows the members etcd sees (rank 0's member watch).
    let reporter = monitor
        .follow_members(r0.world_size(), r0.watch_members())
        .unwrap();
    assert_eq!(monitor.len(), 3);

    // Rank 1 leaves cleanly: it is removed, not failed. Rank 2 dies.
    r1.shutdown(Duration::from_millis(200)).await.ok();
    drop(r2);
    let failed = tokio::time::timeout(PATIENCE, async {
        loop {
            let change = changes.recv().await.unwrap();
            assert_ne!(
                change.member,
                MemberId::Rank(0),
                "rank 0 is alive: {change:?}"
            );
            assert_ne!(
                change.member,
                MemberId::Rank(1),
                "rank 1 left cleanly: {change:?}"
            );
            if change.new == HealthStatus::Failed {
                return change.member;
            }
        }
    })
    .await
    .expect("the dead rank must end up Failed");
    assert_eq!(failed, MemberId::Rank(2));
    assert!(!monitor.contains(MemberId::Rank(1)));
    assert_eq!(
        monitor.status(MemberId::Rank(0)),
        Some(HealthStatus::Healthy)
    );
    assert!(!reporter.is_finished());
    drop(reporter);
    sweeper.stop().await;
    r0.shutdown(Duration::from_millis(200)).await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rank_whose_lease_is_gone_refuses_to_go_on() {
    let Some(endpoints) = endpoints("a_rank_whose_lease_is_gone_refuses_to_go_on") else {
        return;
    };
    let prefix = unique_prefix("lease-gone");
    let r0 = EtcdCoordinator::connect(config(&endpoints, &prefix, 0, 2))
        .await
        .unwrap();
    let r1 = EtcdCoordinator::connect(config(&endpoints, &prefix, 1, 2))
        .await
        .unwrap();
    let mut members = r1.watch_members();
    for _ in 0..2 {
        members.next().await.unwrap().unwrap();
    }
    // An operator (or etcd itself, after a partition) ends rank 0's lease.
    let mut admin = etcd_client::Client::connect([endpoints.split(',').next().unwrap()], None)
        .await
        .unwrap();
    admin.lease_revoke(r0.lease_id()).await.unwrap();
    let event = tokio::time::timeout(PATIENCE, members.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        event,
        MemberEvent::Left {
            rank: 0,
            graceful: false
        }
    );
    // Rank 0 cannot take part any more: a permanent error, not a wait; it
    // is fenced (it can no longer write under its lease).
    let err = r0.barrier(PATIENCE).await.unwrap_err();
    assert!(matches!(err, CoordinatorError::Fenced { .. }), "{err:?}");
    assert!(!err.is_transient());
    assert!(err.to_string().contains("lease"), "{err}");
    r1.shutdown(Duration::from_millis(200)).await.ok();
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// An etcd server of the test's own, on loopback ports and a data directory
/// that survive a restart.
struct OwnEtcd {
    bin: PathBuf,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

impl OwnEtcd {
    fn new(bin: PathBuf) -> OwnEtcd {
        let client_port = free_port();
        let mut peer_port = free_port();
        while peer_port == client_port {
            peer_port = free_port();
        }
        OwnEtcd {
            bin,
            dir: tempfile::tempdir().unwrap(),
            client_port,
            peer_port,
            child: None,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn start(&mut self) {
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("etcd.log"))
            .unwrap();
        let child = Command::new(&self.bin)
            .args(["--name", "steadfast-restart"])
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("steadfast-restart={peer}")])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }
}

fn etcd_bin(test: &str) -> Option<PathBuf> {
    init_tracing();
    let bin = PathBuf::from(server_var(test, "STEADFAST_ETCD_BIN")?);
    assert!(
        bin.exists(),
        "{test}: STEADFAST_ETCD_BIN names {}, which does not exist",
        bin.display()
    );
    Some(bin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_retry_through_an_etcd_restart() {
    let Some(bin) = etcd_bin("operations_retry_through_an_etcd_restart") else {
        return;
    };
    let mut etcd = OwnEtcd::new(bin);
    etcd.start();
    let endpoint = etcd.endpoint();
    let prefix = unique_prefix("restart");
    let patient = RetryPolicy::builder()
        .max_retries(100)
        .initial_delay(Duration::from_millis(100))
        .max_delay(Duration::from_secs(1))
        .max_elapsed(Duration::from_secs(60))
        .build()
        .unwrap();
    let config = |rank| {
        EtcdConfig::builder()
            .endpoints([endpoint.clone()])
            .prefix(prefix.clone())
            .rank(rank)
            .world_size(4)
            // Waits for the fresh server to come up.
            .connect_timeout(Duration::from_secs(30))
            .op_timeout(Duration::from_secs(2))
            .retry(patient.clone())
            .build()
            .unwrap()
    };
    let mut ranks = Vec::new();
    for rank in 0..4 {
        match EtcdCoordinator::connect(config(rank)).await {
            Ok(c) => ranks.push(c),
            Err(e) => panic!("connect to the test's etcd: {e}\n{}", etcd.log()),
        }
    }
    let round = |ranks: &Vec<EtcdCoordinator>| {
        ranks
            .iter()
            .cloned()
            .map(|c| {
                tokio::spawn(async move {
                    c.barrier(PATIENCE).await?;
                    let all = c.all_gather(vec![c.rank() as u8], PATIENCE).await?;
                    if c.rank() == 3 {
                        c.signal("after", b"restart".to_vec()).await?;
                    }
                    let signal = c.wait_for_rank(3, "after", 1, PATIENCE).await?;
                    Ok::<_, CoordinatorError>((all, signal))
                })
            })
            .collect::<Vec<_>>()
    };
    for task in round(&ranks) {
        task.await.unwrap().unwrap();
    }
    let mut members = ranks[0].watch_members();
    for _ in 0..4 {
        tokio::time::timeout(PATIENCE, members.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }

    let mut membership = ranks[0].watch_membership();
    for _ in 0..4 {
        let event = tokio::time::timeout(PATIENCE, membership.next())
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(event, MembershipEvent::Joined { .. }), "{event:?}");
    }

    // etcd dies; every rank starts its next round while it is down.
    etcd.kill().await;
    let during = round(&ranks);
    // Proof that etcd is really down while the rounds run: a fresh client
    // cannot connect.
    let probe = EtcdConfig::builder()
        .endpoints([endpoint.clone()])
        .prefix(unique_prefix("probe"))
        .connect_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    assert!(matches!(
        EtcdCoordinator::connect(probe).await,
        Err(CoordinatorError::Unavailable { .. })
    ));
    // Same ports, same data directory.
    etcd.start();
    for task in during {
        let (all, signal) = match task.await.unwrap() {
            Ok(done) => done,
            Err(e) => panic!("operation did not survive the restart: {e}\n{}", etcd.log()),
        };
        assert_eq!(all, vec![vec![0], vec![1], vec![2], vec![3]]);
        assert_eq!(signal.payload, b"restart");
    }
    // The leases survived the restart: every rank is still a member, and the
    // member watch reported no failure.
    assert_eq!(ranks[0].members_alive().await.unwrap(), vec![0, 1, 2, 3]);
    let more = tokio::time::timeout(Duration::from_secs(2), members.next()).await;
    if let Ok(Some(Ok(event))) = more {
        assert!(!event.is_failure(), "unexpected {event:?}");
    }
    // The membership watch was re-established: it reports a standby that
    // joins after the restart, and no failure before it.
    let spare = EtcdCoordinator::connect(
        EtcdConfig::builder()
            .endpoints([endpoint.clone()])
            .prefix(prefix.clone())
            .world_size(4)
            .member_id("spare-after-restart")
            .standby(true)
            .connect_timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let joined = tokio::time::timeout(PATIENCE, async {
        loop {
            let event = membership.next().await.expect("the watch ended");
            assert_eq!(event.failed_rank(), None, "unexpected {event:?}");
            if let MembershipEvent::Joined { member, role } = event {
                return (member, role);
            }
        }
    })
    .await
    .expect("the membership watch must come back after the restart");
    assert_eq!(joined, ("spare-after-restart".to_string(), Role::Standby));
    spare.shutdown(Duration::from_secs(5)).await.unwrap();
    shutdown_all(ranks).await;
    etcd.kill().await;
}
