//! The etcd coordinator's `Membership` against a real etcd server: member
//! ids and standbys, epochs (one proposal wins), fencing of a rank left in
//! an old epoch or without its lease, records, leader election, the
//! membership watch, and, with real processes, a SIGKILLed rank failing the
//! round at once and a SIGSTOPped rank fenced after it resumes.
//!
//! The tests read the server's address from `STEADFAST_ETCD_ENDPOINTS`
//! (`.ci/services.sh` starts one and sets it); without it each test fails
//! in CI (`CI=true`) and, elsewhere, says it skipped. They run on the real
//! clock and wait for events with generous bounds; the process tests start
//! copies of this test binary, which run the ignored test `member_process`
//! and report on their standard output.
#![cfg(feature = "etcd")]

mod common;
use common::{init_tracing, server_var, unique};

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::StreamExt;
use steadfast::coordinator::{
    CasOutcome, Coordinator, CoordinatorError, EpochRecord, EtcdConfig, EtcdCoordinator,
    LiveMember, Membership, MembershipEvent, MembershipWatch, Role,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// A generous bound for things that should happen within seconds.
const PATIENCE: Duration = Duration::from_secs(60);

fn endpoints(test: &str) -> Option<String> {
    init_tracing();
    server_var(test, "STEADFAST_ETCD_ENDPOINTS")
}

fn config(endpoints: &str, prefix: &str, rank: usize, world: usize) -> EtcdConfig {
    EtcdConfig::builder()
        .endpoints_csv(endpoints)
        .prefix(prefix)
        .rank(rank)
        .world_size(world)
        .member_id(format!("rank-{rank}"))
        .lease_ttl(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(10))
        .op_timeout(Duration::from_secs(3))
        .build()
        .unwrap()
}

fn standby_config(endpoints: &str, prefix: &str, name: &str, world: usize) -> EtcdConfig {
    EtcdConfig::builder()
        .endpoints_csv(endpoints)
        .prefix(prefix)
        .world_size(world)
        .member_id(name)
        .standby(true)
        .lease_ttl(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(10))
        .op_timeout(Duration::from_secs(3))
        .build()
        .unwrap()
}

async fn connect(config: EtcdConfig) -> EtcdCoordinator {
    EtcdCoordinator::connect(config).await.unwrap()
}

/// The next event of `watch` that `keep` accepts, within [`PATIENCE`].
async fn next_event(
    watch: &mut MembershipWatch,
    mut keep: impl FnMut(&MembershipEvent) -> bool,
) -> MembershipEvent {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let event = watch.next().await.expect("the watch ended");
            if keep(&event) {
                return event;
            }
        }
    })
    .await
    .expect("the event did not come")
}

fn sorted(mut members: Vec<LiveMember>) -> Vec<LiveMember> {
    members.sort_by(|a, b| a.member.cmp(&b.member));
    members
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_membership_operation_against_etcd() {
    let Some(endpoints) = endpoints("every_membership_operation_against_etcd") else {
        return;
    };
    let prefix = unique("membership-ops");
    let r0 = connect(config(&endpoints, &prefix, 0, 2)).await;
    let mut watch = r0.watch_membership();
    let r1 = connect(config(&endpoints, &prefix, 1, 2)).await;
    let spare = connect(standby_config(&endpoints, &prefix, "spare-0", 2)).await;

    // Member ids, roles; a standby holds no rank.
    assert_eq!(r0.member_id(), "rank-0");
    assert_eq!((r1.role(), r1.epoch()), (Role::Rank(1), 0));
    assert_eq!(spare.role(), Role::Standby);
    assert_eq!((spare.rank(), spare.world_size()), (2, 2));
    let err = spare.barrier(Duration::from_secs(5)).await.unwrap_err();
    assert!(
        matches!(err, CoordinatorError::NotAMember { ref member, epoch: 0 } if member == "spare-0"),
        "{err:?}"
    );
    // A default member id is made unique per process.
    let anonymous = connect(
        EtcdConfig::builder()
            .endpoints_csv(&endpoints)
            .prefix(unique("membership-anonymous"))
            .build()
            .unwrap(),
    )
    .await;
    assert!(
        anonymous
            .member_id()
            .starts_with(&format!("p{}-", std::process::id())),
        "{}",
        anonymous.member_id()
    );
    anonymous.shutdown(Duration::from_secs(5)).await.unwrap();

    // Epoch 0 is the ranks as connected.
    let epoch0 = r0.current_epoch().await.unwrap();
    assert_eq!(
        epoch0,
        EpochRecord::new(0, vec!["rank-0".into(), "rank-1".into()])
    );
    assert_eq!(
        sorted(r0.live_members().await.unwrap()),
        vec![
            LiveMember {
                member: "rank-0".into(),
                role: Role::Rank(0)
            },
            LiveMember {
                member: "rank-1".into(),
                role: Role::Rank(1)
            },
            LiveMember {
                member: "spare-0".into(),
                role: Role::Standby
            },
        ]
    );
    let mut joined = Vec::new();
    for _ in 0..3 {
        match next_event(&mut watch, |_| true).await {
            MembershipEvent::Joined { member, role } => joined.push((member, role)),
            other => panic!("expected joins first, got {other:?}"),
        }
    }
    joined.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        joined,
        vec![
            ("rank-0".to_string(), Role::Rank(0)),
            ("rank-1".to_string(), Role::Rank(1)),
            ("spare-0".to_string(), Role::Standby)
        ]
    );

    // Records: compare-and-set, read, list.
    assert_eq!(r0.read_record("plans/a").await.unwrap(), None);
    let v1 = match r0
        .compare_and_set("plans/a", 0, b"one".to_vec())
        .await
        .unwrap()
    {
        CasOutcome::Written { version } => version,
        other => panic!("{other:?}"),
    };
    match r1
        .compare_and_set("plans/a", 0, b"two".to_vec())
        .await
        .unwrap()
    {
        CasOutcome::Conflict { current: Some(now) } => {
            assert_eq!((now.value, now.version), (b"one".to_vec(), v1));
        }
        other => panic!("{other:?}"),
    }
    let v2 = match r1
        .compare_and_set("plans/a", v1, b"two".to_vec())
        .await
        .unwrap()
    {
        CasOutcome::Written { version } => version,
        other => panic!("{other:?}"),
    };
    assert!(v2 > v1);
    let fenced_version = r0.put_fenced("plans/b", b"b".to_vec(), None).await.unwrap();
    let listed = r1.list_records("plans/").await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|(k, v)| (k.as_str(), v.value.as_slice(), v.version))
            .collect::<Vec<_>>(),
        vec![
            ("plans/a", b"two".as_slice(), v2),
            ("plans/b", b"b".as_slice(), fenced_version)
        ]
    );
    assert!(r0.read_record("a//b").await.is_err());

    // A rank declared failed fails the round at once, naming it.
    r1.declare_failed(1, "health monitor: missed 3 heartbeats")
        .await
        .unwrap();
    let started = Instant::now();
    let err = r0.barrier(PATIENCE).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    match &err {
        CoordinatorError::RanksFailed { ranks, reason, .. } => {
            assert_eq!(&ranks[..], &[1]);
            assert!(reason.contains("missed 3 heartbeats"), "{reason}");
        }
        other => panic!("expected RanksFailed, got {other:?}"),
    }
    let event = next_event(&mut watch, |e| {
        matches!(e, MembershipEvent::RankFailed { .. })
    })
    .await;
    assert_eq!(event.failed_rank(), Some(1));

    // The spare takes rank 1 in epoch 1.
    let mut next = EpochRecord::next_after(&epoch0);
    next.ranks[1] = "spare-0".into();
    next.payload = r#"{"reason":"rank 1 failed"}"#.into();
    assert!(r0.propose_epoch(0, &next).await.unwrap().is_accepted());
    // A stale proposal is superseded, and says what is current.
    match r1
        .propose_epoch(0, &EpochRecord::next_after(&epoch0))
        .await
        .unwrap()
    {
        steadfast::coordinator::EpochOutcome::Superseded { current } => assert_eq!(current, next),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        next_event(&mut watch, |e| matches!(
            e,
            MembershipEvent::EpochChanged(_)
        ))
        .await,
        MembershipEvent::EpochChanged(next.clone())
    );
    assert!(matches!(
        r0.enter_epoch(&epoch0).await.unwrap_err(),
        CoordinatorError::Fenced { .. }
    ));
    r0.enter_epoch(&next).await.unwrap();
    spare.enter_epoch(&next).await.unwrap();
    assert_eq!(
        (spare.role(), spare.rank(), spare.epoch()),
        (Role::Rank(1), 1, 1)
    );
    let (a, b) = tokio::join!(
        r0.all_gather(b"r0".to_vec(), PATIENCE),
        spare.all_gather(b"spare".to_vec(), PATIENCE)
    );
    assert_eq!(a.unwrap(), vec![b"r0".to_vec(), b"spare".to_vec()]);
    assert_eq!(b.unwrap(), vec![b"r0".to_vec(), b"spare".to_vec()]);
    spare
        .put_fenced("commits/1", b"ok".to_vec(), None)
        .await
        .unwrap();

    // Rank 1, left in epoch 0, is fenced in rounds and fenced writes.
    match r1.barrier(PATIENCE).await.unwrap_err() {
        CoordinatorError::Fenced { epoch: 0, reason } => {
            assert!(reason.contains("epoch 1"), "{reason}")
        }
        other => panic!("expected Fenced, got {other:?}"),
    }
    let err = r1
        .put_fenced("commits/1", b"stale".to_vec(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, CoordinatorError::Fenced { epoch: 0, .. }),
        "{err:?}"
    );
    assert_eq!(
        r0.read_record("commits/1").await.unwrap().unwrap().value,
        b"ok"
    );
    // Entering the current epoch without a rank leaves it a standby.
    assert!(matches!(
        r1.enter_epoch(&next).await.unwrap_err(),
        CoordinatorError::NotAMember { .. }
    ));
    assert_eq!(r1.role(), Role::Standby);

    // A graceful leave is reported as such.
    r1.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        next_event(&mut watch, |e| matches!(e, MembershipEvent::Left { .. })).await,
        MembershipEvent::Left {
            member: "rank-1".into(),
            role: Role::Standby,
            graceful: true
        }
    );
    let (a, b) = tokio::join!(
        r0.shutdown(Duration::from_secs(10)),
        spare.shutdown(Duration::from_secs(10))
    );
    a.unwrap();
    b.unwrap();
    // The watch ends with the handle.
    tokio::time::timeout(PATIENCE, async { while watch.next().await.is_some() {} })
        .await
        .expect("the watch ends when its handle shuts down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_concurrent_proposals_exactly_one_wins() {
    let Some(endpoints) = endpoints("of_concurrent_proposals_exactly_one_wins") else {
        return;
    };
    let prefix = unique("membership-proposals");
    let mut ranks = Vec::new();
    for rank in 0..4 {
        ranks.push(connect(config(&endpoints, &prefix, rank, 4)).await);
    }
    let current = ranks[0].current_epoch().await.unwrap();
    let proposals: Vec<_> = ranks
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, rank)| {
            let mut next = EpochRecord::next_after(&current);
            next.payload = format!("plan of {i}");
            tokio::spawn(async move { (rank.propose_epoch(0, &next).await.unwrap(), next) })
        })
        .collect();
    let mut winners = Vec::new();
    let mut seen_current = Vec::new();
    for p in proposals {
        let (outcome, next) = p.await.unwrap();
        match outcome {
            steadfast::coordinator::EpochOutcome::Accepted => winners.push(next),
            steadfast::coordinator::EpochOutcome::Superseded { current } => {
                seen_current.push(current)
            }
        }
    }
    assert_eq!(winners.len(), 1, "exactly one proposal wins");
    assert!(seen_current.iter().all(|c| *c == winners[0]));
    assert_eq!(ranks[3].current_epoch().await.unwrap(), winners[0]);
    for rank in &ranks {
        rank.enter_epoch(&winners[0]).await.unwrap();
    }
    let tasks: Vec<_> = ranks
        .into_iter()
        .map(|r| tokio::spawn(async move { r.shutdown(PATIENCE).await }))
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_passes_on_when_the_leaders_lease_expires() {
    let Some(endpoints) = endpoints("leadership_passes_on_when_the_leaders_lease_expires") else {
        return;
    };
    let prefix = unique("membership-election");
    let a = connect(config(&endpoints, &prefix, 0, 2)).await;
    let b = connect(config(&endpoints, &prefix, 1, 2)).await;
    let mut watch = b.watch_membership();
    assert_eq!(a.leader().await.unwrap(), None);
    let first = a.campaign(PATIENCE).await.unwrap();
    assert_eq!(first.member, "rank-0");
    assert_eq!(a.campaign(PATIENCE).await.unwrap(), first, "already leads");
    assert_eq!(b.leader().await.unwrap(), Some(first.clone()));
    a.put_fenced("commits/x", b"a".to_vec(), Some(&first))
        .await
        .unwrap();
    // b cannot lead meanwhile.
    assert!(matches!(
        b.campaign(Duration::from_millis(500)).await.unwrap_err(),
        CoordinatorError::Timeout {
            operation: "campaign",
            ..
        }
    ));

    // a's process dies: its lease expires, and b's campaign wins.
    let campaign = tokio::spawn({
        let b = b.clone();
        async move { b.campaign(PATIENCE).await }
    });
    let lease_of_a = a.lease_id();
    drop(a);
    let started = Instant::now();
    let second = campaign.await.unwrap().unwrap();
    assert_eq!(second.member, "rank-1");
    assert!(second.term > first.term, "terms grow");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_ne!(lease_of_a, b.lease_id());
    b.put_fenced("commits/x", b"b".to_vec(), Some(&second))
        .await
        .unwrap();
    // The old term no longer writes, even from the new leader's member.
    let stale = steadfast::coordinator::Leadership {
        member: "rank-1".into(),
        term: first.term,
    };
    match b
        .put_fenced("commits/x", b"old".to_vec(), Some(&stale))
        .await
    {
        Err(CoordinatorError::Fenced { reason, .. }) => {
            assert!(reason.contains("leadership"), "{reason}")
        }
        other => panic!("expected Fenced, got {other:?}"),
    }
    let event = next_event(
        &mut watch,
        |e| matches!(e, MembershipEvent::LeaderChanged(Some(l)) if l.member == "rank-1"),
    )
    .await;
    assert_eq!(event, MembershipEvent::LeaderChanged(Some(second.clone())));
    b.resign(&second).await.unwrap();
    assert_eq!(b.leader().await.unwrap(), None);
    b.resign(&second).await.unwrap();
    b.shutdown(Duration::from_millis(200)).await.ok();
}

// ---- Real processes ------------------------------------------------------

/// A child process and its output lines.
struct Running {
    name: String,
    child: Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn spawn(name: &str, env: &[(&str, String)]) -> Running {
        let exe = std::env::current_exe().unwrap();
        let mut command = Command::new(exe);
        command
            .args([
                "--ignored",
                "--exact",
                "member_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        for (stream, tag) in [
            (
                Box::new(stdout) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
                "",
            ),
            (Box::new(stderr), "stderr: "),
        ] {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if tx.send(format!("{tag}{line}")).is_err() {
                        break;
                    }
                }
            });
        }
        Running {
            name: name.to_string(),
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    async fn wait_for_line(&mut self, prefix: &str) -> String {
        let found = tokio::time::timeout(PATIENCE * 2, async {
            while let Some(line) = self.lines.recv().await {
                self.seen.push(line.clone());
                if let Some(at) = line.find(prefix) {
                    return Some(line[at..].to_string());
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(line)) => line,
            _ => panic!(
                "{} never printed {prefix:?}; its output:\n{}",
                self.name,
                self.seen.join("\n")
            ),
        }
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().unwrap();
        let status = std::process::Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {pid}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rank_killed_after_a_barrier_fails_the_next_round_within_its_lease() {
    let Some(endpoints) =
        endpoints("a_rank_killed_after_a_barrier_fails_the_next_round_within_its_lease")
    else {
        return;
    };
    let job = unique("membership-sigkill");
    let mut children: Vec<Running> = (0..4)
        .map(|rank| {
            Running::spawn(
                &format!("rank {rank}"),
                &[
                    ("STEADFAST_MEMBER_ROLE", "sigkill".to_string()),
                    ("STEADFAST_MEMBER_ENDPOINTS", endpoints.clone()),
                    ("STEADFAST_MEMBER_JOB", job.clone()),
                    ("STEADFAST_MEMBER_RANK", rank.to_string()),
                ],
            )
        })
        .collect();
    let mut victim = children.remove(3);
    victim.wait_for_line("BARRIER-1").await;
    victim.child.start_kill().unwrap();
    let killed = Instant::now();
    victim.child.wait().await.unwrap();
    for (rank, mut child) in children.into_iter().enumerate() {
        let result = child.wait_for_line("RESULT ").await;
        let waited = killed.elapsed();
        assert!(
            result.starts_with("RESULT ranks-failed ranks=[3]"),
            "rank {rank}: {result}; its output:\n{}",
            child.seen.join("\n")
        );
        // The lease TTL is 2 s: the round fails within it plus a few
        // seconds, far below the 60 s timeout of the barrier.
        assert!(
            waited < Duration::from_secs(15),
            "rank {rank} learnt of the failure {waited:?} after the kill"
        );
        eprintln!("rank {rank}: {result}; {waited:?} after the SIGKILL");
        assert!(child.child.wait().await.unwrap().success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rank_stopped_past_its_lease_is_fenced_when_it_resumes() {
    let Some(endpoints) = endpoints("a_rank_stopped_past_its_lease_is_fenced_when_it_resumes")
    else {
        return;
    };
    let job = unique("membership-sigstop");
    let r0 = connect(config(&endpoints, &job, 0, 2)).await;
    let spare = connect(standby_config(&endpoints, &job, "spare-0", 2)).await;
    let mut watch = r0.watch_membership();
    let mut child = Running::spawn(
        "rank 1",
        &[
            ("STEADFAST_MEMBER_ROLE", "sigstop".to_string()),
            ("STEADFAST_MEMBER_ENDPOINTS", endpoints.clone()),
            ("STEADFAST_MEMBER_JOB", job.clone()),
            ("STEADFAST_MEMBER_RANK", "1".to_string()),
        ],
    );
    r0.barrier(PATIENCE).await.unwrap();
    child.wait_for_line("BARRIER-1").await;

    // The child stops past its lease: the survivors see it fail.
    child.signal("STOP");
    next_event(&mut watch, |e| {
        matches!(e, MembershipEvent::Left { member, graceful: false, .. } if member == "rank-1")
    })
    .await;

    // They move on to epoch 1, the spare in rank 1, and commit.
    let current = r0.current_epoch().await.unwrap();
    let mut next = EpochRecord::next_after(&current);
    next.ranks[1] = "spare-0".into();
    assert!(r0.propose_epoch(0, &next).await.unwrap().is_accepted());
    r0.enter_epoch(&next).await.unwrap();
    spare.enter_epoch(&next).await.unwrap();
    let (a, b) = tokio::join!(r0.barrier(PATIENCE), spare.barrier(PATIENCE));
    a.unwrap();
    b.unwrap();
    let leadership = r0.campaign(PATIENCE).await.unwrap();
    r0.put_fenced("commits/step-2", b"epoch 1".to_vec(), Some(&leadership))
        .await
        .unwrap();

    // The child resumes and tries to go on: it is fenced.
    child.signal("CONT");
    let stdin = child.child.stdin.as_mut().unwrap();
    stdin.write_all(b"GO\n").await.unwrap();
    stdin.flush().await.unwrap();
    let result = child.wait_for_line("RESULT ").await;
    assert_eq!(
        result,
        "RESULT barrier=fenced put=fenced",
        "its output:\n{}",
        child.seen.join("\n")
    );
    assert!(child.child.wait().await.unwrap().success());
    assert_eq!(
        r0.read_record("commits/step-2")
            .await
            .unwrap()
            .unwrap()
            .value,
        b"epoch 1"
    );
    let (a, b) = tokio::join!(
        r0.shutdown(Duration::from_secs(10)),
        spare.shutdown(Duration::from_secs(10))
    );
    a.unwrap();
    b.unwrap();
}

// ---- The child side ----------------------------------------------------

fn kind_of(result: &Result<impl Sized, CoordinatorError>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(CoordinatorError::Fenced { .. }) => "fenced".into(),
        Err(CoordinatorError::RanksFailed { ranks, .. }) => format!("ranks-failed ranks={ranks:?}"),
        Err(other) => format!("other: {other}"),
    }
}

/// The entry point of the child processes; not a test of its own (it is
/// ignored, and the other tests run it with `--ignored --exact`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "entry point of the member processes that the other tests start"]
async fn member_process() {
    let env: HashMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("STEADFAST_MEMBER_"))
        .collect();
    if env.is_empty() {
        eprintln!("member_process: skipped: the other tests of this file run it");
        return;
    }
    let get = |name: &str| {
        env.get(name)
            .unwrap_or_else(|| panic!("{name} not set"))
            .clone()
    };
    let rank: usize = get("STEADFAST_MEMBER_RANK").parse().unwrap();
    let role = get("STEADFAST_MEMBER_ROLE");
    let world = if role == "sigkill" { 4 } else { 2 };
    let coordinator = connect(config(
        &get("STEADFAST_MEMBER_ENDPOINTS"),
        &get("STEADFAST_MEMBER_JOB"),
        rank,
        world,
    ))
    .await;
    coordinator.barrier(PATIENCE).await.unwrap();
    println!("BARRIER-1");
    if role == "sigkill" {
        if rank == 3 {
            // Killed here by the parent.
            std::future::pending::<()>().await;
        }
        let started = Instant::now();
        let result = coordinator.barrier(Duration::from_secs(60)).await;
        println!("RESULT {} after={:?}", kind_of(&result), started.elapsed());
        if let Err(e) = &result {
            eprintln!("barrier 2: {e}");
        }
    } else {
        // Stopped with SIGSTOP here; resumed, the parent says GO.
        let mut line = String::new();
        BufReader::new(tokio::io::stdin())
            .read_line(&mut line)
            .await
            .unwrap();
        let barrier = coordinator.barrier(Duration::from_secs(10)).await;
        let put = coordinator
            .put_fenced("commits/step-2", b"stale".to_vec(), None)
            .await;
        eprintln!("barrier: {barrier:?}; put: {put:?}");
        println!("RESULT barrier={} put={}", kind_of(&barrier), kind_of(&put));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_lease_is_revoked_is_fenced_in_every_write() {
    let Some(endpoints) = endpoints("a_member_whose_lease_is_revoked_is_fenced_in_every_write")
    else {
        return;
    };
    let prefix = unique("membership-revoked");
    let r0 = connect(config(&endpoints, &prefix, 0, 1)).await;
    r0.put_fenced("commits/0", b"ok".to_vec(), None)
        .await
        .unwrap();
    let mut admin = etcd_client::Client::connect([endpoints.split(',').next().unwrap()], None)
        .await
        .unwrap();
    admin.lease_revoke(r0.lease_id()).await.unwrap();
    // Whether its keep-alive noticed first or etcd refuses the write, the
    // member is fenced, saying why.
    for result in [
        r0.signal("go", b"x".to_vec()).await.map(drop),
        r0.put_fenced("commits/1", b"late".to_vec(), None)
            .await
            .map(drop),
        r0.campaign(Duration::from_secs(5)).await.map(drop),
        r0.barrier(Duration::from_secs(5)).await,
    ] {
        match result {
            Err(CoordinatorError::Fenced { epoch: 0, reason }) => {
                assert!(reason.contains("lease"), "{reason}")
            }
            other => panic!("expected Fenced, got {other:?}"),
        }
    }
    let mut check = etcd_client::Client::connect([endpoints.split(',').next().unwrap()], None)
        .await
        .unwrap();
    let late = check
        .get(format!("{prefix}/records/commits/1"), None)
        .await
        .unwrap();
    assert!(late.kvs().is_empty(), "nothing was written");
}
