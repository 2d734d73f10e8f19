//! The conformance checks of epochs: epoch 0, proposals (one winner of
//! concurrent ones, refused invalid ones), entering an epoch (ranks, world
//! size, rounds that restart), stale handles fenced, members left out.

use std::collections::BTreeSet;
use std::future::Future;

use futures::future::join_all;
use tokio::time::Instant;

use super::membership::{
    expect_fenced, expect_invalid, expect_not_a_member, member_ids, propose, PROMPTLY,
};
use super::{job, ok, violated, LONG, SHORT};
use crate::coordinator::{EpochOutcome, EpochRecord, Membership, Role};

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
/// [`InvalidArgument`](crate::coordinator::CoordinatorError::InvalidArgument)
/// and changes nothing.
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
/// `put_fenced` fail with
/// [`Fenced`](crate::coordinator::CoordinatorError::Fenced) (at once, writing
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
/// [`NotAMember`](crate::coordinator::CoordinatorError::NotAMember), its role is
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
