//! The conformance checks of [`Membership`]: what every implementation
//! must do with epochs, records, fenced writes, leadership, watches and
//! declared failures, checked through the trait alone (no fault injection),
//! so that the same checks run on the in-memory coordinator and on a real
//! etcd.
//!
//! Every check makes its own jobs with `make(n)`, which returns the `n`
//! ranks of a new job, in rank order, each a member holding its rank in
//! epoch 0. Waits are bounded by events, never by sleeps: a check that
//! expects something to happen "at once" allows it half a minute, and only
//! [`one_leader_at_a_time`] waits out a short timeout on purpose.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use futures::future::join_all;
use futures::StreamExt;
use tokio::time::Instant;

use super::{job, ok, violated, LONG, SHORT};
use crate::coordinator::{
    CasOutcome, CoordinatorError, EpochOutcome, EpochRecord, Membership, MembershipEvent,
    MembershipWatch, Result, Role, MAX_RECORD_SIZE,
};

/// How soon something that must happen "at once" must have happened: far
/// below [`LONG`], the timeout of the calls it cuts short, and generous
/// for a real server.
const PROMPTLY: Duration = Duration::from_secs(30);

/// Runs every membership check, each on a job (or several) of its own.
///
/// `make(n)` returns the `n` ranks of a new job, in rank order.
///
/// # Panics
///
/// On the first violation, naming the check.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use steadfast::coordinator::{conformance, InMemoryCoordinator, Membership};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// conformance::run_membership(|n| async move { InMemoryCoordinator::new(n) }).await;
/// // Through trait objects:
/// conformance::run_membership(|n| async move {
///     InMemoryCoordinator::new(n)
///         .into_iter()
///         .map(|r| Arc::new(r) as Arc<dyn Membership>)
///         .collect::<Vec<_>>()
/// })
/// .await;
/// # }
/// ```
pub async fn run_membership<C, F, Fut>(mut make: F)
where
    C: Membership,
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Vec<C>>,
{
    epoch_zero_holds_the_ranks(&mut make).await;
    concurrent_proposals_one_wins(&mut make).await;
    invalid_proposals_are_refused(&mut make).await;
    entering_an_epoch_moves_ranks_and_restarts_rounds(&mut make).await;
    stale_handles_are_fenced(&mut make).await;
    members_left_out_are_not_members(&mut make).await;
    compare_and_set_semantics(&mut make).await;
    list_records_by_prefix(&mut make).await;
    put_fenced_needs_the_leadership(&mut make).await;
    one_leader_at_a_time(&mut make).await;
    watch_reports_members_and_epochs(&mut make).await;
    declared_failures_fail_waiting_rounds(&mut make).await;
}

fn member_ids<C: Membership>(ranks: &[C]) -> Vec<String> {
    ranks.iter().map(|r| r.member_id().to_string()).collect()
}

/// Proposes `next` after `expected` from `proposer` and checks that it is
/// accepted.
async fn propose<C: Membership>(check: &str, proposer: &C, expected: u64, next: &EpochRecord) {
    let outcome = ok(
        check,
        &format!("propose_epoch({expected}, epoch {})", next.epoch),
        proposer.propose_epoch(expected, next).await,
    );
    ensure!(
        check,
        outcome.is_accepted(),
        "the only proposal of epoch {} after {expected} was not accepted: {outcome:?}",
        next.epoch
    );
}

/// The next event of `watch`, within [`LONG`].
async fn next_event(
    check: &str,
    watch: &mut MembershipWatch,
    waiting_for: &str,
) -> MembershipEvent {
    match tokio::time::timeout(LONG, watch.next()).await {
        Ok(Some(event)) => event,
        Ok(None) => violated(
            check,
            format_args!("the membership watch ended while waiting for {waiting_for}"),
        ),
        Err(_) => violated(
            check,
            format_args!("the membership watch reported nothing within {LONG:?} while waiting for {waiting_for}"),
        ),
    }
}

#[track_caller]
fn expect_fenced<T: std::fmt::Debug>(check: &str, what: &str, result: Result<T>) {
    match result {
        Err(CoordinatorError::Fenced { .. }) => {}
        other => violated(
            check,
            format_args!("{what}: expected Fenced, got {other:?}"),
        ),
    }
}

#[track_caller]
fn expect_not_a_member<T: std::fmt::Debug>(
    check: &str,
    what: &str,
    member: &str,
    result: Result<T>,
) {
    match result {
        Err(CoordinatorError::NotAMember { member: ref m, .. }) if m == member => {}
        other => violated(
            check,
            format_args!("{what}: expected NotAMember naming {member:?}, got {other:?}"),
        ),
    }
}

#[track_caller]
fn expect_invalid<T: std::fmt::Debug>(check: &str, what: &str, result: Result<T>) {
    match result {
        Err(CoordinatorError::InvalidArgument(_)) => {}
        other => violated(
            check,
            format_args!("{what}: expected InvalidArgument, got {other:?}"),
        ),
    }
}

/// Epoch 0 holds the ranks' member ids in rank order; every handle is in
/// epoch 0 with the role of its rank; member ids are distinct and every
/// member is live.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::{conformance, InMemoryCoordinator};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// conformance::epoch_zero_holds_the_ranks(&mut |n| async move { InMemoryCoordinator::new(n) }).await;
/// # }
/// ```
pub async fn epoch_zero_holds_the_ranks<C, F, Fut>(make: &mut F)
where
    C: Membership,
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Vec<C>>,
{
    const CHECK: &str = "epoch_zero_holds_the_ranks";
    let ranks = job(CHECK, make, 3).await;
    let ids = member_ids(&ranks);
    let distinct: BTreeSet<&String> = ids.iter().collect();
    ensure!(
        CHECK,
        distinct.len() == 3,
        "member ids are not distinct: {ids:?}"
    );
    for (i, r) in ranks.iter().enumerate() {
        ensure!(
            CHECK,
            r.epoch() == 0,
            "rank {i} starts in epoch {}",
            r.epoch()
        );
        ensure!(
            CHECK,
            r.role() == Role::Rank(i),
            "rank {i} has the role {:?}",
            r.role()
        );
        let current = ok(CHECK, "current_epoch", r.current_epoch().await);
        ensure!(
            CHECK,
            current.epoch == 0 && current.ranks == ids,
            "rank {i} reads the current epoch {current:?}; expected epoch 0 holding {ids:?}"
        );
    }
    let live = ok(CHECK, "live_members", ranks[0].live_members().await);
    for (i, id) in ids.iter().enumerate() {
        ensure!(
            CHECK,
            live.iter()
                .any(|m| &m.member == id && m.role == Role::Rank(i)),
            "live_members {live:?} does not list {id:?} as rank {i}"
        );
    }
}

/// Of two proposals after the same epoch, made at the same time by two
/// members, exactly one is accepted; the other is told which record won,
/// and both then read the winner as the current epoch. A proposal after an
/// epoch that is no longer current is superseded.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::{conformance, InMemoryCoordinator};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// conformance::concurrent_proposals_one_wins(&mut |n| async move { InMemoryCoordinator::new(n) }).await;
/// # }
/// ```
pub async fn concurrent_proposals_one_wins<C, F, Fut>(make: &mut F)
where
    C: Membership,
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Vec<C>>,
{
    const CHECK: &str = "concurrent_proposals_one_wins";
    let ranks = job(CHECK, make, 2).await;
    let start = ok(CHECK, "current_epoch", ranks[0].current_epoch().await);
    let proposals: Vec<EpochRecord> = (0..2)
        .map(|i| {
            let mut next = EpochRecord::next_after(&start);
            next.payload = format!("proposal of rank {i}");
            next
        })
        .collect();
    let outcomes = join_all(
        ranks
            .iter()
            .zip(&proposals)
            .map(|(r, next)| r.propose_epoch(start.epoch, next)),
    )
    .await;
    let outcomes: Vec<EpochOutcome> = outcomes
        .into_iter()
        .map(|o| ok(CHECK, "a concurrent propose_epoch", o))
        .collect();
    let winners: Vec<usize> = (0..2).filter(|&i| outcomes[i].is_accepted()).collect();
    ensure!(
        CHECK,
        winners.len() == 1,
        "exactly one of two concurrent proposals must win; outcomes {outcomes:?}"
    );
    let winner = &proposals[winners[0]];
    let loser = 1 - winners[0];
    match &outcomes[loser] {
        EpochOutcome::Superseded { current } if current == winner => {}
        other => violated(
            CHECK,
            format_args!("the losing proposal should be superseded by {winner:?}, got {other:?}"),
        ),
    }
    for (i, r) in ranks.iter().enumerate() {
        let current = ok(CHECK, "current_epoch", r.current_epoch().await);
        ensure!(
            CHECK,
            &current == winner,
            "rank {i} reads {current:?} after the proposals; the winner was {winner:?}"
        );
    }
    // A proposal that follows an old epoch is superseded.
    let mut late = EpochRecord::next_after(&start);
    late.epoch = winner.epoch + 1;
    let outcome = ok(
        CHECK,
        "a late propose_epoch",
        ranks[loser].propose_epoch(start.epoch, &late).await,
    );
    ensure!(
        CHECK,
        matches!(&outcome, EpochOutcome::Superseded { current } if current == winner),
        "a proposal after epoch {} once epoch {} is current should be superseded, got {outcome:?}",
        start.epoch,
        winner.epoch
    );
}

/// A proposal whose epoch does not follow the expected one, or whose
/// record does not validate (no ranks, a member holding two ranks, an
/// invalid member id), is refused with
/// [`CoordinatorError::InvalidArgument`] and changes nothing.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::{conformance, InMemoryCoordinator};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// conformance::invalid_proposals_are_refused(&mut |n| async move { InMemoryCoordinator::new(n) }).await;
/// # }
/// ```
pub async fn invalid_proposals_are_refused<C, F, Fut>(make: &mut F)
where
    C: Membership,
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Vec<C>>,
{
    const CHECK: &str = "invalid_proposals_are_refused";
    let ranks = job(CHECK, make, 2).await;
    let start = ok(CHECK, "current_epoch", ranks[0].current_epoch().await);
    let same = EpochRecord::new(start.epoch, start.ranks.clone());
    expect_invalid(
        CHECK,
        "an epoch that does not grow",
        ranks[0].propose_epoch(start.epoch, &same).await,
    );
    let mut duplicate = EpochRecord::next_after(&start);
    duplicate.ranks = vec![start.ranks[0].clone(), start.ranks[0].clone()];
    expect_invalid(
        CHECK,
        "a member holding two ranks",
        ranks[0].propose_epoch(start.epoch, &duplicate).await,
    );
    let mut empty = EpochRecord::next_after(&start);
    empty.ranks.clear();
    expect_invalid(
        CHECK,
        "an epoch without ranks",
        ranks[0].propose_epoch(start.epoch, &empty).await,
    );
    let mut bad_id = EpochRecord::next_after(&start);
    bad_id.ranks[1] = "not/a member".into();
    expect_invalid(
        CHECK,
        "an invalid member id",
        ranks[0].propose_epoch(start.epoch, &bad_id).await,
    );
    let current = ok(CHECK, "current_epoch", ranks[1].current_epoch().await);
    ensure!(
        CHECK,
        current == start,
        "refused proposals changed the epoch to {current:?}"
    );
}

/// Entering an epoch gives each handle the rank and world size the record
/// gives it, and collectives start again at round 0 of that epoch: ranks
/// that were out of step in the old epoch (two of them broke a barrier
/// that the third never joined) meet in the new one.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::{conformance, InMemoryCoordinator};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// conformance::entering_an_epoch_moves_ranks_and_restarts_rounds(&mut |n| async move {
///     InMemoryCoordinator::new(n)
/// })
/// .await;
/// # }
/// ```
pub async fn entering_an_epoch_moves_ranks_and_restarts_rounds<C, F, Fut>(make: &mut F)
where
    C: Membership,
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Vec<C>>,
{
    const CHECK: &str = "entering_an_epoch_moves_ranks_and_restarts_rounds";
    let ranks = job(CHECK, make, 3).await;
    // Ranks 0 and 1 use up a barrier round that rank 2 never joins.
    let results = join_all(ranks[..2].iter().map(|r| r.barrier(SHORT))).await;
    for (rank, result) in results.into_iter().enumerate() {
        ensure!(
            CHECK,
            result.is_err(),
            "rank {rank}'s barrier without rank 2 succeeded"
        );
    }
    let start = ok(CHECK, "current_epoch", ranks[0].current_epoch().await);
    let mut next = EpochRecord::next_after(&start);
    next.ranks.reverse();
    propose(CHECK, &ranks[0], start.epoch, &next).await;
    for (i, r) in ranks.iter().enumerate() {
        ok(
            CHECK,
            &format!("enter_epoch of rank {i}"),
            r.enter_epoch(&next).await,
        );
        ensure!(
            CHECK,
            r.rank() == 2 - i && r.world_size() == 3 && r.epoch() == next.epoch,
            "the handle of old rank {i} has rank {}, world size {} and epoch {} after entering \
             epoch {} that gives it rank {}",
            r.rank(),
            r.world_size(),
            r.epoch(),
            next.epoch,
            2 - i
        );
        ensure!(
            CHECK,
            r.role() == Role::Rank(2 - i),
            "old rank {i} has the role {:?}",
            r.role()
        );
    }
    let barriers = join_all(ranks.iter().map(|r| r.barrier(LONG))).await;
    for (i, result) in barriers.into_iter().enumerate() {
        ok(
            CHECK,
            &format!("the first barrier of epoch 1, old rank {i}"),
            result,
        );
    }
    let gathered = join_all(
        ranks
            .iter()
            .map(|r| r.all_gather(vec![r.rank() as u8], LONG)),
    )
    .await;
    for (i, result) in gathered.into_iter().enumerate() {
        let all = ok(
            CHECK,
            &format!("an all_gather of epoch 1, old rank {i}"),
            result,
        );
        ensure!(
            CHECK,
            all == vec![vec![0], vec![1], vec![2]],
            "old rank {i} gathered {all:?} in epoch 1"
        );
    }
}

/// A handle left in an old epoch is fenced: its collectives and
/// `put_fenced` fail with [`CoordinatorError::Fenced`] (at once, writing
/// nothing), and it cannot enter the old epoch again. Once it enters the
/// current epoch it takes part again.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::{conformance, InMemoryCoordinator};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// conformance::stale_handles_are_fenced(&mut |n| async move { InMemoryCoordinator::new(n) }).await;
/// # }
/// ```
pub async fn stale_handles_are_fenced<C, F, Fut>(make: &mut F)
where
    C: Membership,
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Vec<C>>,
{
    const CHECK: &str = "stale_handles_are_fenced";
    let ranks = job(CHECK, make, 2).await;
    let old = ok(CHECK, "current_epoch", ranks[0].current_epoch().await);
    let next = EpochRecord::next_after(&old);
    propose(CHECK, &ranks[0], old.epoch, &next).await;
    ok(
        CHECK,
        "enter_epoch of rank 0",
        ranks[0].enter_epoch(&next).await,
    );

    let start = Instant::now();
    expect_fenced(
        CHECK,
        "a barrier of a handle left in the old epoch",
        ranks[1].barrier(LONG).await,
    );
    expect_fenced(
        CHECK,
        "an all_gather of a handle left in the old epoch",
        ranks[1].all_gather(vec![1], LONG).await,
    );
    ensure!(
        CHECK,
        start.elapsed() < PROMPTLY,
        "the stale handle's collectives waited {:?} before being fenced",
        start.elapsed()
    );
    expect_fenced(
        CHECK,
        "put_fenced of a handle left in the old epoch",
        ranks[1]
            .put_fenced("fence/stale", b"stale".to_vec(), None)
            .await,
    );
    let written = ok(
        CHECK,
        "read_record",
        ranks[0].read_record("fence/stale").await,
    );
    ensure!(
        CHECK,
        written.is_none(),
        "a fenced put_fenced wrote {written:?}"
    );
    expect_fenced(
        CHECK,
        "entering the old epoch again",
        ranks[1].enter_epoch(&old).await,
    );
    let version = ok(
        CHECK,
        "put_fenced of the handle in the current epoch",
        ranks[0]
            .put_fenced("fence/current", b"ok".to_vec(), None)
            .await,
    );
    ensure!(CHECK, version > 0, "put_fenced returned version 0");

    let current = ok(CHECK, "current_epoch", ranks[1].current_epoch().await);
    ok(
        CHECK,
        "enter_epoch of rank 1",
        ranks[1].enter_epoch(&current).await,
    );
    let barriers = join_all(ranks.iter().map(|r| r.barrier(LONG))).await;
    for (i, result) in barriers.into_iter().enumerate() {
        ok(CHECK, &format!("the barrier of epoch 1, rank {i}"), result);
    }
}

/// A member that the new epoch leaves out (the job shrinks) becomes a
/// standby when it enters it: `enter_epoch` and its collectives fail with
/// [`CoordinatorError::NotAMember`], its role is
/// [`Role::Standby`] and its rank is the new world size; the others go on
/// with the smaller world.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::{conformance, InMemoryCoordinator};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// conformance::members_left_out_are_not_members(&mut |n| async move { InMemoryCoordinator::new(n) }).await;
/// # }
/// ```
pub async fn members_left_out_are_not_members<C, F, Fut>(make: &mut F)
where
    C: Membership,
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Vec<C>>,
{
    const CHECK: &str = "members_left_out_are_not_members";
    let ranks = job(CHECK, make, 3).await;
    let ids = member_ids(&ranks);
    let start = ok(CHECK, "current_epoch", ranks[0].current_epoch().await);
    let mut next = EpochRecord::next_after(&start);
    next.ranks = vec![ids[0].clone(), ids[2].clone()];
    propose(CHECK, &ranks[0], start.epoch, &next).await;
    ok(
        CHECK,
        "enter_epoch of rank 0",
        ranks[0].enter_epoch(&next).await,
    );
    ok(
        CHECK,
        "enter_epoch of rank 2",
        ranks[2].enter_epoch(&next).await,
    );
    expect_not_a_member(
        CHECK,
        "enter_epoch of the member left out",
        &ids[1],
        ranks[1].enter_epoch(&next).await,
    );
    let left_out = &ranks[1];
    ensure!(
        CHECK,
        left_out.role() == Role::Standby && left_out.rank() == 2 && left_out.world_size() == 2,
        "the member left out has role {:?}, rank {} and world size {}; expected a standby with \
         rank 2 in a world of 2",
        left_out.role(),
        left_out.rank(),
        left_out.world_size()
    );
    ensure!(
        CHECK,
        ranks[2].rank() == 1 && ranks[2].world_size() == 2,
        "old rank 2 has rank {} and world size {} in the shrunk epoch",
        ranks[2].rank(),
        ranks[2].world_size()
    );
    expect_not_a_member(
        CHECK,
        "a barrier of the member left out",
        &ids[1],
        left_out.barrier(LONG).await,
    );
    let (a, b) = futures::join!(ranks[0].barrier(LONG), ranks[2].barrier(LONG));
    ok(CHECK, "the barrier of rank 0 in the shrunk epoch", a);
    ok(CHECK, "the barrier of rank 1 in the shrunk epoch", b);
}

/// Compare-and-set: `expected` 0 means absent; a conflict writes nothing
/// and returns the record as it is (`None` when absent); versions are
/// never 0 and grow with each write; every member reads the same record;
/// an invalid key or an oversize value is refused.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::{conformance, InMemoryCoordinator};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// conformance::compare_and_set_semantics(&mut |n| async move { InMemoryCoordinator::new(n) }).await;
/// # }
/// ```
pub async fn compare_and_set_semantics<C, F, Fut>(make: &mut F)
where
    C: Membership,
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Vec<C>>,
{
    const CHECK: &str = "compare_and_set_semantics";
    let ranks = job(CHECK, make, 2).await;
    let key = "plans/next";
    let absent = ok(
        CHECK,
        "read_record of a new key",
        ranks[0].read_record(key).await,
    );
    ensure!(CHECK, absent.is_none(), "a new key reads {absent:?}");
    let outcome = ok(
        CHECK,
        "cas(expected 7) on an absent key",
        ranks[0].compare_and_set(key, 7, b"x".to_vec()).await,
    );
    ensure!(
        CHECK,
        outcome == CasOutcome::Conflict { current: None },
        "cas(expected 7) on an absent key gave {outcome:?}; expected a conflict with None"
    );
    let first = match ok(
        CHECK,
        "cas(expected 0)",
        ranks[0].compare_and_set(key, 0, b"one".to_vec()).await,
    ) {
        CasOutcome::Written { version } if version > 0 => version,
        other => violated(
            CHECK,
            format_args!("cas(expected 0) on an absent key gave {other:?}"),
        ),
    };
    let read = ok(CHECK, "read_record", ranks[1].read_record(key).await);
    ensure!(
        CHECK,
        matches!(&read, Some(r) if r.value == b"one" && r.version == first),
        "the other member reads {read:?}; expected \"one\" at version {first}"
    );
    let conflict = ok(
        CHECK,
        "a second cas(expected 0)",
        ranks[1].compare_and_set(key, 0, b"two".to_vec()).await,
    );
    match &conflict {
        CasOutcome::Conflict { current: Some(r) } if r.value == b"one" && r.version == first => {}
        other => violated(
            CHECK,
            format_args!(
                "cas(expected 0) on a present key should conflict and return it, got {other:?}"
            ),
        ),
    }
    let second = match ok(
        CHECK,
        "cas(expected first)",
        ranks[1].compare_and_set(key, first, b"two".to_vec()).await,
    ) {
        CasOutcome::Written { version } => version,
        other => violated(
            CHECK,
            format_args!("cas at the current version gave {other:?}"),
        ),
    };
    ensure!(
        CHECK,
        second > first,
        "the version went from {first} to {second}"
    );
    let stale = ok(
        CHECK,
        "cas(expected first) again",
        ranks[0]
            .compare_and_set(key, first, b"three".to_vec())
            .await,
    );
    ensure!(
        CHECK,
        matches!(&stale, CasOutcome::Conflict { current: Some(r) } if r.version == second && r.value == b"two"),
        "cas at an old version gave {stale:?}"
    );
    expect_invalid(
        CHECK,
        "cas with an invalid key",
        ranks[0].compare_and_set("a//b", 0, Vec::new()).await,
    );
    expect_invalid(
        CHECK,
        "cas with an oversize value",
        ranks[0]
            .compare_and_set("big", 0, vec![0; MAX_RECORD_SIZE + 1])
            .await,
    );
    expect_invalid(
        CHECK,
        "read_record with an invalid key",
        ranks[0].read_record("").await,
    );
}

/// `list_records(prefix)` returns exactly the records whose key starts
/// with `prefix`, sorted by key.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::{conformance, InMemoryCoordinator};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// conformance::list_records_by_prefix(&mut |n| async move { InMemoryCoordinator::new(n) }).await;
/// # }
/// ```
pub async fn list_records_by_prefix<C, F, Fut>(make: &mut F)
where
    C: Membership,
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Vec<C>>,
{
    const CHECK: &str = "list_records_by_prefix";
    let ranks = job(CHECK, make, 1).await;
    for key in ["b/1", "a/2", "ab/3", "a/1", "a"] {
        let outcome = ok(
            CHECK,
            "compare_and_set",
            ranks[0]
                .compare_and_set(key, 0, key.as_bytes().to_vec())
                .await,
        );
        ensure!(
            CHECK,
            outcome.is_written(),
            "writing {key:?} gave {outcome:?}"
        );
    }
    for (prefix, expected) in [
        ("a/", vec!["a/1", "a/2"]),
        ("a", vec!["a", "a/1", "a/2", "ab/3"]),
        ("b/", vec!["b/1"]),
        ("c", vec![]),
    ] {
        let listed = ok(CHECK, "list_records", ranks[0].list_records(prefix).await);
        let keys: Vec<&str> = listed.iter().map(|(k, _)| k.as_str()).collect();
        ensure!(
            CHECK,
            keys == expected,
            "list_records({prefix:?}) gave {keys:?}, expected {expected:?}"
        );
        for (k, v) in &listed {
            ensure!(
                CHECK,
                v.value == k.as_bytes() && v.version > 0,
                "{k:?} listed as {v:?}"
            );
        }
    }
}

/// `put_fenced` under a leadership lands while the leadership is held and
/// fails with [`CoordinatorError::Fenced`], writing nothing, once it
/// ended; without a leadership it lands for a live member of the current
/// epoch.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::{conformance, InMemoryCoordinator};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// conformance::put_fenced_needs_the_leadership(&mut |n| async move { InMemoryCoordinator::new(n) }).await;
/// # }
/// ```
pub async fn put_fenced_needs_the_leadership<C, F, Fut>(make: &mut F)
where
    C: Membership,
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Vec<C>>,
{
    const CHECK: &str = "put_fenced_needs_the_leadership";
    let ranks = job(CHECK, make, 2).await;
    let leadership = ok(CHECK, "campaign", ranks[0].campaign(LONG).await);
    let first = ok(
        CHECK,
        "put_fenced under the leadership",
        ranks[0]
            .put_fenced("commits/1", b"one".to_vec(), Some(&leadership))
            .await,
    );
    ensure!(CHECK, first > 0, "put_fenced returned version 0");
    let plain = ok(
        CHECK,
        "put_fenced without a leadership",
        ranks[1].put_fenced("votes/1", b"v".to_vec(), None).await,
    );
    ensure!(
        CHECK,
        plain > first,
        "versions went from {first} to {plain}"
    );
    ok(CHECK, "resign", ranks[0].resign(&leadership).await);
    expect_fenced(
        CHECK,
        "put_fenced under a leadership that ended",
        ranks[0]
            .put_fenced("commits/1", b"two".to_vec(), Some(&leadership))
            .await,
    );
    let stored = ok(
        CHECK,
        "read_record",
        ranks[1].read_record("commits/1").await,
    );
    ensure!(
        CHECK,
        matches!(&stored, Some(r) if r.value == b"one" && r.version == first),
        "a fenced put_fenced changed the record to {stored:?}"
    );
    expect_invalid(
        CHECK,
        "put_fenced with an invalid key",
        ranks[1].put_fenced("/abs", Vec::new(), None).await,
    );
}

/// One leader at a time: a campaign wins when nobody leads, a second
/// campaign of the leader returns the same leadership, another member's
/// campaign times out (not before its timeout) while the leader holds on,
/// and wins, with a higher term, once the leader resigns.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::{conformance, InMemoryCoordinator};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// conformance::one_leader_at_a_time(&mut |n| async move { InMemoryCoordinator::new(n) }).await;
/// # }
/// ```
pub async fn one_leader_at_a_time<C, F, Fut>(make: &mut F)
where
    C: Membership,
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Vec<C>>,
{
    const CHECK: &str = "one_leader_at_a_time";
    let ranks = job(CHECK, make, 2).await;
    let nobody = ok(CHECK, "leader", ranks[1].leader().await);
    ensure!(
        CHECK,
        nobody.is_none(),
        "a new job has a leader: {nobody:?}"
    );
    let first = ok(CHECK, "campaign of rank 0", ranks[0].campaign(LONG).await);
    ensure!(
        CHECK,
        first.member == ranks[0].member_id() && first.term > 0,
        "rank 0's campaign gave {first:?}"
    );
    let again = ok(
        CHECK,
        "a second campaign of the leader",
        ranks[0].campaign(LONG).await,
    );
    ensure!(
        CHECK,
        again == first,
        "the leader campaigned again and got {again:?} instead of {first:?}"
    );
    let seen = ok(CHECK, "leader", ranks[1].leader().await);
    ensure!(
        CHECK,
        seen.as_ref() == Some(&first),
        "rank 1 sees the leader {seen:?}, expected {first:?}"
    );

    let start = Instant::now();
    let lost = ranks[1].campaign(SHORT).await;
    let waited = start.elapsed();
    match lost {
        Err(CoordinatorError::Timeout { .. }) => {}
        other => violated(
            CHECK,
            format_args!("a campaign while another member leads should time out, got {other:?}"),
        ),
    }
    ensure!(
        CHECK,
        waited >= SHORT,
        "the campaign timed out after {waited:?}, before {SHORT:?}"
    );

    let (won, resigned) = futures::join!(ranks[1].campaign(LONG), async {
        tokio::task::yield_now().await;
        ranks[0].resign(&first).await
    });
    ok(CHECK, "resign", resigned);
    let second = ok(CHECK, "campaign of rank 1 after the resignation", won);
    ensure!(
        CHECK,
        second.member == ranks[1].member_id() && second.term > first.term,
        "after rank 0 resigned (term {}), rank 1's campaign gave {second:?}",
        first.term
    );
    let seen = ok(CHECK, "leader", ranks[0].leader().await);
    ensure!(
        CHECK,
        seen.as_ref() == Some(&second),
        "rank 0 sees the leader {seen:?}, expected {second:?}"
    );
    ok(CHECK, "resign of rank 1", ranks[1].resign(&second).await);
    // Resigning a leadership that ended does nothing.
    ok(CHECK, "a second resign", ranks[1].resign(&second).await);
}

/// A membership watch first reports every live member as
/// [`MembershipEvent::Joined`] with its role, then the changes: a new
/// epoch as [`MembershipEvent::EpochChanged`] with its record.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::{conformance, InMemoryCoordinator};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// conformance::watch_reports_members_and_epochs(&mut |n| async move { InMemoryCoordinator::new(n) }).await;
/// # }
/// ```
pub async fn watch_reports_members_and_epochs<C, F, Fut>(make: &mut F)
where
    C: Membership,
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Vec<C>>,
{
    const CHECK: &str = "watch_reports_members_and_epochs";
    let ranks = job(CHECK, make, 2).await;
    let ids = member_ids(&ranks);
    let mut watch = ranks[1].watch_membership();
    let mut joined = BTreeSet::new();
    while joined.len() < ids.len() {
        match next_event(CHECK, &mut watch, "the first Joined events").await {
            MembershipEvent::Joined { member, role } => {
                let rank = ids.iter().position(|id| *id == member);
                ensure!(
                    CHECK,
                    rank.map(Role::Rank) == Some(role),
                    "the watch reported {member:?} joined as {role:?}; the job's members are {ids:?}"
                );
                joined.insert(member);
            }
            other => violated(
                CHECK,
                format_args!("the watch reported {other:?} before a Joined for every live member"),
            ),
        }
    }
    let start = ok(CHECK, "current_epoch", ranks[0].current_epoch().await);
    let mut next = EpochRecord::next_after(&start);
    next.payload = "watched".into();
    propose(CHECK, &ranks[0], start.epoch, &next).await;
    loop {
        match next_event(CHECK, &mut watch, "EpochChanged").await {
            MembershipEvent::EpochChanged(record) => {
                ensure!(
                    CHECK,
                    record == next,
                    "the watch reported epoch {record:?}, expected {next:?}"
                );
                break;
            }
            MembershipEvent::Left { member, .. } => violated(
                CHECK,
                format_args!("the watch reported {member:?} left; nobody did"),
            ),
            _ => {}
        }
    }
}

/// Declaring a rank failed fails the collectives that wait for it at once
/// (long before their timeout), on every waiting rank, with
/// [`CoordinatorError::RanksFailed`] naming it, and every later one of the
/// epoch too; watchers see [`MembershipEvent::RankFailed`]. In a new epoch
/// without the rank, collectives work again.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::{conformance, InMemoryCoordinator};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// conformance::declared_failures_fail_waiting_rounds(&mut |n| async move { InMemoryCoordinator::new(n) })
///     .await;
/// # }
/// ```
pub async fn declared_failures_fail_waiting_rounds<C, F, Fut>(make: &mut F)
where
    C: Membership,
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Vec<C>>,
{
    const CHECK: &str = "declared_failures_fail_waiting_rounds";
    let ranks = job(CHECK, make, 3).await;
    let ids = member_ids(&ranks);
    let mut watch = ranks[1].watch_membership();
    let start = Instant::now();
    let (a, b, declared) = futures::join!(ranks[0].barrier(LONG), ranks[1].barrier(LONG), async {
        tokio::task::yield_now().await;
        ranks[0]
            .declare_failed(2, "declared by the conformance suite")
            .await
    });
    let waited = start.elapsed();
    ok(CHECK, "declare_failed", declared);
    for (rank, result) in [a, b].into_iter().enumerate() {
        match result {
            Err(CoordinatorError::RanksFailed { ref ranks, .. }) if ranks[..] == [2] => {}
            other => violated(
                CHECK,
                format_args!("rank {rank}'s barrier waiting for a failed rank 2 gave {other:?}"),
            ),
        }
    }
    ensure!(
        CHECK,
        waited < PROMPTLY,
        "the barriers took {waited:?} to fail after rank 2 was declared failed (timeout {LONG:?})"
    );
    let later = ranks[0].all_gather(vec![0], LONG).await;
    ensure!(
        CHECK,
        matches!(&later, Err(CoordinatorError::RanksFailed { ranks, .. }) if ranks[..] == [2]),
        "a later all_gather of the epoch gave {later:?}; expected RanksFailed naming 2"
    );
    loop {
        match next_event(CHECK, &mut watch, "RankFailed").await {
            MembershipEvent::RankFailed { rank: 2, .. } => break,
            MembershipEvent::RankFailed { rank, .. } => violated(
                CHECK,
                format_args!("the watch reported rank {rank} failed, not 2"),
            ),
            _ => {}
        }
    }
    let current = ok(CHECK, "current_epoch", ranks[0].current_epoch().await);
    let mut next = EpochRecord::next_after(&current);
    next.ranks = ids[..2].to_vec();
    propose(CHECK, &ranks[0], current.epoch, &next).await;
    for (i, r) in ranks[..2].iter().enumerate() {
        ok(
            CHECK,
            &format!("enter_epoch of rank {i}"),
            r.enter_epoch(&next).await,
        );
    }
    let (a, b) = futures::join!(ranks[0].barrier(LONG), ranks[1].barrier(LONG));
    ok(CHECK, "a barrier of the new epoch, rank 0", a);
    ok(CHECK, "a barrier of the new epoch, rank 1", b);
}
