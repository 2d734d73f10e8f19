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

use futures::StreamExt;
use tokio::time::Instant;

use super::epochs::{
    concurrent_proposals_one_wins, entering_an_epoch_moves_ranks_and_restarts_rounds,
    epoch_zero_holds_the_ranks, invalid_proposals_are_refused, members_left_out_are_not_members,
    stale_handles_are_fenced,
};
use super::records::{
    compare_and_set_semantics, list_records_by_prefix, one_leader_at_a_time,
    put_fenced_needs_the_leadership,
};
use super::{job, ok, violated, LONG};
use crate::coordinator::{
    CoordinatorError, EpochRecord, Membership, MembershipEvent, MembershipWatch, Result, Role,
};

/// How soon something that must happen "at once" must have happened: far
/// below [`LONG`], the timeout of the calls it cuts short, and generous
/// for a real server.
pub(super) const PROMPTLY: Duration = Duration::from_secs(30);

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

pub(super) fn member_ids<C: Membership>(ranks: &[C]) -> Vec<String> {
    ranks.iter().map(|r| r.member_id().to_string()).collect()
}

/// Proposes `next` after `expected` from `proposer` and checks that it is
/// accepted.
pub(super) async fn propose<C: Membership>(
    check: &str,
    proposer: &C,
    expected: u64,
    next: &EpochRecord,
) {
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
pub(super) async fn next_event(
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
pub(super) fn expect_fenced<T: std::fmt::Debug>(check: &str, what: &str, result: Result<T>) {
    match result {
        Err(CoordinatorError::Fenced { .. }) => {}
        other => violated(
            check,
            format_args!("{what}: expected Fenced, got {other:?}"),
        ),
    }
}

#[track_caller]
pub(super) fn expect_not_a_member<T: std::fmt::Debug>(
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
pub(super) fn expect_invalid<T: std::fmt::Debug>(check: &str, what: &str, result: Result<T>) {
    match result {
        Err(CoordinatorError::InvalidArgument(_)) => {}
        other => violated(
            check,
            format_args!("{what}: expected InvalidArgument, got {other:?}"),
        ),
    }
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
