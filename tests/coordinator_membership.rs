//! Membership of the in-memory coordinator under injected faults: a killed
//! rank fails the rounds that wait for it at once, on every survivor; a
//! killed leader's leadership ends; partitions and heals; a standby takes
//! over a dead rank; a job shrinks; stale handles are fenced; bad input is
//! a clear error.
//!
//! Every test runs on paused time, so "at once" is exact: a round that
//! fails because of a dead rank returns at the instant of the kill, long
//! before its 60 s timeout (which is what the old coordinator waited for).

use std::time::Duration;

use futures::StreamExt;
use steadfast::coordinator::{
    Coordinator, CoordinatorError, EpochRecord, FaultTolerant, FaultTolerantConfig,
    InMemoryCoordinator, Membership, MembershipEvent, Role, MAX_RECORD_SIZE,
};
use tokio::task::JoinHandle;
use tokio::time::Instant;

const SEC: Duration = Duration::from_secs(1);
/// The timeout of collectives that must not wait it out.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

fn spawn_barrier(rank: &InMemoryCoordinator) -> JoinHandle<Result<Duration, CoordinatorError>> {
    let rank = rank.clone();
    tokio::spawn(async move {
        let start = Instant::now();
        rank.barrier(STEP_TIMEOUT).await.map(|()| start.elapsed())
    })
}

/// Waits for `task` and returns its error and how long it took from `since`.
async fn failure<T: std::fmt::Debug>(
    task: JoinHandle<Result<T, CoordinatorError>>,
    since: Instant,
) -> (CoordinatorError, Duration) {
    let err = task.await.unwrap().unwrap_err();
    (err, since.elapsed())
}

fn failed_ranks(err: &CoordinatorError) -> Option<&[usize]> {
    match err {
        CoordinatorError::RanksFailed { ranks, .. } => Some(ranks),
        _ => None,
    }
}

/// Everyone in `ranks` proposes nothing, `ranks[0]` proposes `next` after
/// the current epoch, and everyone in `enter` enters it.
async fn move_to(
    proposer: &InMemoryCoordinator,
    next: &EpochRecord,
    enter: &[&InMemoryCoordinator],
) {
    let current = proposer.current_epoch().await.unwrap();
    assert!(proposer
        .propose_epoch(current.epoch, next)
        .await
        .unwrap()
        .is_accepted());
    for member in enter {
        member.enter_epoch(next).await.unwrap();
    }
}

// ------------------------------------------------- a dead rank fails rounds

#[tokio::test(start_paused = true)]
async fn a_kill_during_a_barrier_fails_every_survivor_at_once_naming_the_rank() {
    let ranks = InMemoryCoordinator::new(4);
    let waits: Vec<_> = ranks[..3].iter().map(spawn_barrier).collect();
    tokio::time::sleep(SEC).await; // the survivors are waiting
    let killed_at = Instant::now();
    ranks[0].faults().kill(3);
    for wait in waits {
        let (err, after) = failure(wait, killed_at).await;
        assert_eq!(failed_ranks(&err), Some(&[3][..]), "{err:?}");
        assert!(err.to_string().contains("killed"), "{err}");
        // At the instant of the kill: the old coordinator waited the whole
        // 60 s and then timed out.
        assert_eq!(after, Duration::ZERO);
    }
}

#[tokio::test(start_paused = true)]
async fn a_kill_during_an_all_gather_fails_every_survivor_at_once_naming_the_rank() {
    let ranks = InMemoryCoordinator::new(3);
    let waits: Vec<_> = ranks[..2]
        .iter()
        .cloned()
        .map(|r| {
            tokio::spawn(async move { r.all_gather(vec![r.rank() as u8], STEP_TIMEOUT).await })
        })
        .collect();
    tokio::time::sleep(5 * SEC).await;
    let killed_at = Instant::now();
    ranks[2].faults().kill_member("rank-2");
    for wait in waits {
        let (err, after) = failure(wait, killed_at).await;
        assert!(
            matches!(&err, CoordinatorError::RanksFailed { operation: "all_gather", ranks, .. } if ranks[..] == [2]),
            "{err:?}"
        );
        assert_eq!(after, Duration::ZERO);
    }
    // Later rounds of the epoch fail too, at once, until a new epoch.
    let start = Instant::now();
    let err = ranks[0]
        .all_gather(vec![0], STEP_TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(failed_ranks(&err), Some(&[2][..]));
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn simultaneous_kills_are_all_named() {
    let ranks = InMemoryCoordinator::new(5);
    let waits: Vec<_> = ranks[..3].iter().map(spawn_barrier).collect();
    tokio::time::sleep(SEC).await;
    let killed_at = Instant::now();
    ranks[0].faults().kill(4);
    ranks[0].faults().kill(3);
    for wait in waits {
        let (err, after) = failure(wait, killed_at).await;
        assert_eq!(failed_ranks(&err), Some(&[3, 4][..]), "{err:?}");
        assert_eq!(after, Duration::ZERO);
    }
}

#[tokio::test(start_paused = true)]
async fn a_rank_that_arrived_before_it_died_fails_only_the_next_round() {
    let ranks = InMemoryCoordinator::new(3);
    // Rank 2 arrives, then dies while rank 1 is late: the round still
    // completes once rank 1 comes (rank 2's arrival counts).
    let early = spawn_barrier(&ranks[0]);
    let dead = spawn_barrier(&ranks[2]);
    tokio::time::sleep(SEC).await;
    ranks[0].faults().kill(2);
    let err = dead.await.unwrap().unwrap_err();
    assert!(matches!(err, CoordinatorError::Fenced { .. }), "{err:?}");
    ranks[1].barrier(STEP_TIMEOUT).await.unwrap();
    early.await.unwrap().unwrap();
    let err = ranks[1].barrier(STEP_TIMEOUT).await.unwrap_err();
    assert_eq!(failed_ranks(&err), Some(&[2][..]));
}

#[tokio::test(start_paused = true)]
async fn a_wait_for_a_killed_rank_fails_at_once() {
    let ranks = InMemoryCoordinator::new(2);
    let waiter = ranks[0].clone();
    let wait = tokio::spawn(async move { waiter.wait_for_rank(1, "ready", 1, STEP_TIMEOUT).await });
    tokio::time::sleep(SEC).await;
    let killed_at = Instant::now();
    ranks[0].faults().kill(1);
    let (err, after) = failure(wait, killed_at).await;
    assert_eq!(failed_ranks(&err), Some(&[1][..]), "{err:?}");
    assert_eq!(after, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_graceful_leave_fails_the_rounds_waiting_for_it() {
    let ranks = InMemoryCoordinator::new(2);
    let mut watch = ranks[0].watch_membership();
    let wait = spawn_barrier(&ranks[0]);
    tokio::time::sleep(SEC).await;
    let left_at = Instant::now();
    ranks[1].leave();
    let (err, after) = failure(wait, left_at).await;
    assert_eq!(failed_ranks(&err), Some(&[1][..]));
    assert!(err.to_string().contains("left"), "{err}");
    assert_eq!(after, Duration::ZERO);
    let mut left = None;
    while let Some(event) = watch.next().await {
        if let MembershipEvent::Left {
            member, graceful, ..
        } = &event
        {
            left = Some((member.clone(), *graceful));
            assert_eq!(event.failed_rank(), None);
            break;
        }
    }
    assert_eq!(left, Some(("rank-1".to_string(), true)));
    assert!(matches!(
        ranks[1].barrier(SEC).await,
        Err(CoordinatorError::Fenced { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn set_absent_still_waits_for_the_timeout() {
    // An absent rank is live: nothing tells the job it will not come.
    let ranks = InMemoryCoordinator::new(2);
    ranks[0].faults().set_absent(1, true);
    let start = Instant::now();
    let err = ranks[0].barrier(10 * SEC).await.unwrap_err();
    assert!(matches!(err, CoordinatorError::Timeout { .. }));
    assert_eq!(start.elapsed(), 10 * SEC);
}

// ------------------------------------------------ the killed handle itself

#[tokio::test(start_paused = true)]
async fn a_killed_handle_is_fenced_for_everything() {
    let ranks = InMemoryCoordinator::new(2);
    let clone = ranks[1].clone();
    ranks[0].faults().kill(1);
    let lease_lost = |r: Result<(), CoordinatorError>| match r {
        Err(CoordinatorError::Fenced { reason, .. }) => {
            assert!(reason.contains("lease lost"), "{reason}")
        }
        other => panic!("expected Fenced, got {other:?}"),
    };
    lease_lost(clone.barrier(SEC).await);
    lease_lost(clone.signal("k", vec![]).await.map(drop));
    lease_lost(clone.wait_for_rank(0, "k", 0, SEC).await.map(drop));
    lease_lost(clone.current_epoch().await.map(drop));
    lease_lost(clone.read_record("k").await.map(drop));
    lease_lost(clone.campaign(SEC).await.map(drop));
    lease_lost(clone.put_fenced("k", vec![], None).await.map(drop));
    lease_lost(clone.compare_and_set("k", 0, vec![]).await.map(drop));
    lease_lost(clone.declare_failed(0, "x").await);
    // Its watch is empty: a dead process sees nothing.
    assert!(clone.watch_membership().next().await.is_none());
    let live = ranks[0].live_members().await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].member, "rank-0");
}

#[tokio::test(start_paused = true)]
async fn an_expired_member_reads_but_cannot_act() {
    let ranks = InMemoryCoordinator::new(3);
    let wait = spawn_barrier(&ranks[0]);
    tokio::time::sleep(SEC).await;
    let expired_at = Instant::now();
    ranks[0].faults().expire(2);
    let (err, after) = failure(wait, expired_at).await;
    assert_eq!(failed_ranks(&err), Some(&[2][..]));
    assert!(err.to_string().contains("expired"), "{err}");
    assert_eq!(after, Duration::ZERO);

    let zombie = &ranks[2];
    assert_eq!(zombie.current_epoch().await.unwrap().epoch, 0);
    assert!(zombie.leader().await.unwrap().is_none());
    for result in [
        zombie
            .put_fenced("commits/1", b"late".to_vec(), None)
            .await
            .map(drop),
        zombie.barrier(SEC).await,
        zombie.campaign(SEC).await.map(drop),
    ] {
        assert!(
            matches!(result, Err(CoordinatorError::Fenced { .. })),
            "{result:?}"
        );
    }
    assert!(ranks[0].read_record("commits/1").await.unwrap().is_none());
    // The others see it leave as a failure.
    let mut watch = ranks[0].watch_membership();
    let mut members = 0;
    while let Some(MembershipEvent::Joined { .. }) =
        tokio::time::timeout(SEC, watch.next()).await.ok().flatten()
    {
        members += 1;
    }
    assert_eq!(members, 2);
}

// --------------------------------------------------------------- leadership

#[tokio::test(start_paused = true)]
async fn killing_the_leader_ends_its_leadership_and_another_campaigner_wins() {
    let ranks = InMemoryCoordinator::new(3);
    let first = ranks[0].campaign(SEC).await.unwrap();
    let mut watch = ranks[2].watch_membership();
    let campaigner = ranks[1].clone();
    let campaign = tokio::spawn(async move {
        let start = Instant::now();
        let won = campaigner.campaign(STEP_TIMEOUT).await;
        (won, start.elapsed())
    });
    tokio::time::sleep(10 * SEC).await;
    assert!(
        !campaign.is_finished(),
        "a campaign won while the leader lived"
    );
    ranks[2].faults().kill(0);
    let (won, waited) = campaign.await.unwrap();
    let second = won.unwrap();
    assert_eq!(second.member, "rank-1");
    assert!(second.term > first.term);
    assert_eq!(waited, 10 * SEC, "the campaign won at the kill");
    assert_eq!(ranks[2].leader().await.unwrap(), Some(second.clone()));
    // The watch saw the old leader leave, the leadership end, the new one.
    let mut changes = Vec::new();
    while changes.len() < 2 {
        match watch.next().await.unwrap() {
            MembershipEvent::LeaderChanged(leader) => changes.push(leader),
            MembershipEvent::Left {
                member, graceful, ..
            } => {
                assert_eq!((member.as_str(), graceful), ("rank-0", false));
            }
            _ => {}
        }
    }
    assert_eq!(changes, vec![None, Some(second.clone())]);
    // The dead leader's commits are refused; the new leader's land.
    let err = ranks[0]
        .put_fenced("commits/9", vec![1], Some(&first))
        .await
        .unwrap_err();
    assert!(matches!(err, CoordinatorError::Fenced { .. }));
    assert!(ranks[1]
        .put_fenced("commits/9", vec![2], Some(&second))
        .await
        .is_ok());
    // A leadership cannot be borrowed by another member.
    let err = ranks[2]
        .put_fenced("commits/9", vec![3], Some(&second))
        .await
        .unwrap_err();
    assert!(matches!(err, CoordinatorError::Fenced { .. }));
}

#[tokio::test(start_paused = true)]
async fn a_campaign_times_out_while_the_leader_holds_on() {
    let ranks = InMemoryCoordinator::new(2);
    ranks[0].campaign(SEC).await.unwrap();
    let start = Instant::now();
    let err = ranks[1].campaign(3 * SEC).await.unwrap_err();
    assert!(
        matches!(
            err,
            CoordinatorError::Timeout {
                operation: "campaign",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(start.elapsed(), 3 * SEC);
}

// --------------------------------------------------------------- partitions

#[tokio::test(start_paused = true)]
async fn a_partitioned_member_is_unavailable_stays_a_member_and_rejoins_after_the_heal() {
    let ranks = InMemoryCoordinator::new(3);
    ranks[0].faults().partition(&["rank-2"]);
    let cut = &ranks[2];
    for result in [
        cut.barrier(SEC).await,
        cut.current_epoch().await.map(drop),
        cut.put_fenced("commits/1", vec![], None).await.map(drop),
        cut.campaign(SEC).await.map(drop),
    ] {
        assert!(
            matches!(result, Err(CoordinatorError::Unavailable { .. })),
            "{result:?}"
        );
    }
    // It is still a member: the others wait for it (until its lease would
    // expire), and time out naming it rather than failing at once.
    assert_eq!(ranks[0].live_members().await.unwrap().len(), 3);
    let start = Instant::now();
    let (a, b) = tokio::join!(ranks[0].barrier(5 * SEC), ranks[1].barrier(5 * SEC));
    for err in [a.unwrap_err(), b.unwrap_err()] {
        assert_eq!(err.missing_ranks(), &[2]);
        assert!(!matches!(err, CoordinatorError::RanksFailed { .. }));
    }
    assert_eq!(start.elapsed(), 5 * SEC);

    // The majority moves on to a new epoch that keeps it.
    let next = EpochRecord::next_after(&ranks[0].current_epoch().await.unwrap());
    move_to(&ranks[0], &next, &[&ranks[0], &ranks[1]]).await;

    ranks[0].faults().heal();
    // Back, it finds itself fenced, reads the current epoch and rejoins.
    assert!(matches!(
        cut.barrier(SEC).await,
        Err(CoordinatorError::Fenced { .. })
    ));
    let current = cut.current_epoch().await.unwrap();
    cut.enter_epoch(&current).await.unwrap();
    let (a, b, c) = tokio::join!(
        ranks[0].barrier(SEC),
        ranks[1].barrier(SEC),
        cut.barrier(SEC)
    );
    a.unwrap();
    b.unwrap();
    c.unwrap();
}

// ---------------------------------------------------- standbys and epochs

#[tokio::test(start_paused = true)]
async fn a_standby_takes_over_the_dead_rank_at_the_same_world_size() {
    let ranks = InMemoryCoordinator::new(3);
    let spare = ranks[0].add_standby("spare-0").unwrap();
    assert_eq!(
        (spare.role(), spare.rank(), spare.world_size()),
        (Role::Standby, 3, 3)
    );
    assert!(matches!(
        spare.barrier(SEC).await,
        Err(CoordinatorError::NotAMember { ref member, epoch: 0 }) if member == "spare-0"
    ));
    ranks[0].faults().kill(1);
    let current = ranks[0].current_epoch().await.unwrap();
    let mut next = EpochRecord::next_after(&current);
    next.ranks[1] = spare.member_id().to_string();
    next.payload = r#"{"restore":"step-100"}"#.into();
    move_to(&ranks[0], &next, &[&ranks[0], &ranks[2], &spare]).await;
    assert_eq!(
        (
            spare.role(),
            spare.rank(),
            spare.world_size(),
            spare.epoch()
        ),
        (Role::Rank(1), 1, 3, 1)
    );
    let (a, b, c) = tokio::join!(
        ranks[0].all_gather(vec![0], SEC),
        spare.all_gather(vec![1], SEC),
        ranks[2].all_gather(vec![2], SEC),
    );
    for all in [a.unwrap(), b.unwrap(), c.unwrap()] {
        assert_eq!(all, vec![vec![0], vec![1], vec![2]]);
    }
    // The dead rank's handle cannot come back into the epoch.
    assert!(matches!(
        ranks[1].enter_epoch(&next).await,
        Err(CoordinatorError::Fenced { .. })
    ));
    let live = ranks[0].live_members().await.unwrap();
    assert!(live
        .iter()
        .any(|m| m.member == "spare-0" && m.role == Role::Rank(1)));
    assert!(!live.iter().any(|m| m.member == "rank-1"));
}

#[tokio::test(start_paused = true)]
async fn a_shrinking_epoch_renumbers_the_survivors() {
    let ranks = InMemoryCoordinator::new(4);
    ranks[0].faults().kill(1);
    let mut next = EpochRecord::next_after(&ranks[0].current_epoch().await.unwrap());
    next.ranks.remove(1);
    move_to(&ranks[3], &next, &[&ranks[0], &ranks[2], &ranks[3]]).await;
    assert_eq!(
        (ranks[2].rank(), ranks[3].rank(), ranks[3].world_size()),
        (1, 2, 3)
    );
    let (a, b, c) = tokio::join!(
        ranks[0].all_gather(b"a".to_vec(), SEC),
        ranks[2].all_gather(b"c".to_vec(), SEC),
        ranks[3].all_gather(b"d".to_vec(), SEC),
    );
    for all in [a.unwrap(), b.unwrap(), c.unwrap()] {
        assert_eq!(all, vec![b"a".to_vec(), b"c".to_vec(), b"d".to_vec()]);
    }
    // The failures of the old epoch are gone with it.
    let (a, b, c) = tokio::join!(
        ranks[0].barrier(SEC),
        ranks[2].barrier(SEC),
        ranks[3].barrier(SEC)
    );
    a.unwrap();
    b.unwrap();
    c.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_collective_waiting_when_the_epoch_changes_is_fenced_at_once() {
    let ranks = InMemoryCoordinator::new(2);
    let wait = spawn_barrier(&ranks[0]);
    tokio::time::sleep(SEC).await;
    let changed_at = Instant::now();
    let next = EpochRecord::next_after(&ranks[1].current_epoch().await.unwrap());
    assert!(ranks[1]
        .propose_epoch(0, &next)
        .await
        .unwrap()
        .is_accepted());
    let (err, after) = failure(wait, changed_at).await;
    assert!(
        matches!(err, CoordinatorError::Fenced { epoch: 0, .. }),
        "{err:?}"
    );
    assert_eq!(after, Duration::ZERO);
    // So are its signals and waits until it enters the new epoch.
    assert!(matches!(
        ranks[0].signal("k", vec![]).await,
        Err(CoordinatorError::Fenced { .. })
    ));
    ranks[0].enter_epoch(&next).await.unwrap();
    assert_eq!(ranks[0].signal("k", vec![]).await.unwrap(), 1);
}

#[tokio::test(start_paused = true)]
async fn clones_share_the_epoch_they_entered() {
    let ranks = InMemoryCoordinator::new(2);
    let clone = ranks[1].clone();
    let mut next = EpochRecord::next_after(&ranks[0].current_epoch().await.unwrap());
    next.ranks.reverse();
    move_to(&ranks[0], &next, &[&ranks[1]]).await;
    assert_eq!(
        (clone.epoch(), clone.rank(), clone.role()),
        (1, 0, Role::Rank(0))
    );
}

// ---------------------------------------------------------------- bad input

#[tokio::test(start_paused = true)]
async fn bad_input_is_a_clear_error() {
    let ranks = InMemoryCoordinator::new(2);
    let invalid = |r: Result<(), CoordinatorError>, what: &str| match r {
        Err(CoordinatorError::InvalidArgument(message)) => assert!(!message.is_empty()),
        other => panic!("{what}: expected InvalidArgument, got {other:?}"),
    };
    invalid(ranks[0].add_standby("").map(drop), "an empty member id");
    invalid(
        ranks[0].add_standby("a b").map(drop),
        "a member id with a space",
    );
    invalid(
        ranks[0].add_standby("rank-1").map(drop),
        "a member id in use",
    );
    ranks[0].faults().kill(1);
    invalid(
        ranks[0].add_standby("rank-1").map(drop),
        "the id of a dead member",
    );
    invalid(
        ranks[0].read_record("a//b").await.map(drop),
        "an empty key segment",
    );
    invalid(
        ranks[0].compare_and_set("/a", 0, vec![]).await.map(drop),
        "an absolute key",
    );
    invalid(
        ranks[0].list_records("a\nb").await.map(drop),
        "a control character in a prefix",
    );
    invalid(
        ranks[0]
            .put_fenced("big", vec![0; MAX_RECORD_SIZE + 1], None)
            .await
            .map(drop),
        "an oversize value",
    );
    let current = ranks[0].current_epoch().await.unwrap();
    let mut next = EpochRecord::next_after(&current);
    next.epoch = 0;
    invalid(
        ranks[0].propose_epoch(0, &next).await.map(drop),
        "an epoch that does not grow",
    );
    let mut next = EpochRecord::next_after(&current);
    next.ranks = vec!["rank-0".into(), "rank-0".into()];
    let err = ranks[0].propose_epoch(0, &next).await.unwrap_err();
    assert!(err.to_string().contains("more than one rank"), "{err}");
    assert!(matches!(
        ranks[0].declare_failed(2, "x").await,
        Err(CoordinatorError::InvalidRank {
            rank: 2,
            world_size: 2
        })
    ));
    // A record that is not the job's epoch (same number, other ranks).
    let forged = EpochRecord::new(0, vec!["rank-0".into()]);
    assert!(matches!(
        ranks[0].enter_epoch(&forged).await,
        Err(CoordinatorError::Fenced { .. })
    ));
    assert_eq!(ranks[0].current_epoch().await.unwrap(), current);
}

// ------------------------------------------------------------------ watches

#[tokio::test(start_paused = true)]
async fn a_slow_watcher_blocks_no_writer_and_misses_nothing() {
    let ranks = InMemoryCoordinator::new(1);
    let mut watch = ranks[0].watch_membership();
    let mut term = 0;
    for _ in 0..10_000 {
        let leadership = ranks[0].campaign(SEC).await.unwrap();
        assert!(leadership.term > term);
        term = leadership.term;
        ranks[0].resign(&leadership).await.unwrap();
    }
    assert!(matches!(
        watch.next().await,
        Some(MembershipEvent::Joined { .. })
    ));
    let mut changes = 0;
    while changes < 20_000 {
        match watch.next().await.unwrap() {
            MembershipEvent::LeaderChanged(_) => changes += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_watch_reports_joins_failures_and_ends_with_its_own_departure() {
    let ranks = InMemoryCoordinator::new(2);
    let spare = ranks[0].add_standby("spare-0").unwrap();
    let mut watch = spare.watch_membership();
    let mut joined = Vec::new();
    for _ in 0..3 {
        match watch.next().await.unwrap() {
            MembershipEvent::Joined { member, role } => joined.push((member, role)),
            other => panic!("expected Joined, got {other:?}"),
        }
    }
    joined.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        joined,
        vec![
            ("rank-0".to_string(), Role::Rank(0)),
            ("rank-1".to_string(), Role::Rank(1)),
            ("spare-0".to_string(), Role::Standby),
        ]
    );
    ranks[0]
        .declare_failed(1, "health monitor: Failed")
        .await
        .unwrap();
    let event = watch.next().await.unwrap();
    assert_eq!(
        event,
        MembershipEvent::RankFailed {
            epoch: 0,
            rank: 1,
            reason: "health monitor: Failed".into()
        }
    );
    assert_eq!(event.failed_rank(), Some(1));
    ranks[0].faults().kill_member("spare-0");
    assert!(
        matches!(watch.next().await, Some(MembershipEvent::Left { ref member, graceful: false, .. }) if member == "spare-0")
    );
    assert!(watch.next().await.is_none());
}

// ------------------------------------------------------- fault-tolerant

#[tokio::test(start_paused = true)]
async fn the_wrapper_retries_reads_but_never_a_conditional_write() {
    let rank = InMemoryCoordinator::new(1).remove(0);
    let faults = rank.faults();
    let wrapped = FaultTolerant::new(rank, FaultTolerantConfig::default());
    faults.partition(&["rank-0"]);
    let start = Instant::now();
    for result in [
        wrapped.compare_and_set("k", 0, vec![]).await.map(drop),
        wrapped.put_fenced("k", vec![], None).await.map(drop),
        wrapped
            .propose_epoch(0, &EpochRecord::new(1, vec!["rank-0".into()]))
            .await
            .map(drop),
    ] {
        assert!(
            matches!(result, Err(CoordinatorError::Unavailable { .. })),
            "{result:?}"
        );
    }
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "a conditional write was retried"
    );
    assert_eq!(wrapped.recovery().statistics().total, 0);
    let healer = tokio::spawn(async move {
        tokio::time::sleep(2 * SEC).await;
        faults.heal();
    });
    assert!(wrapped.read_record("k").await.unwrap().is_none());
    assert!(start.elapsed() >= 2 * SEC);
    assert!(wrapped.recovery().statistics().by_kind["coordinator.read_record"] >= 1);
    healer.await.unwrap();
}

#[test]
fn membership_types_are_send() {
    fn assert_send<T: Send + 'static>() {}
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send::<steadfast::coordinator::MembershipWatch>();
    assert_send_sync::<InMemoryCoordinator>();
    assert_send_sync::<steadfast::coordinator::CoordinatorFaults>();
    assert_send_sync::<FaultTolerant<InMemoryCoordinator>>();
}
