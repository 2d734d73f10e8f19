//! A conformance suite for [`Coordinator`] implementations: run it against
//! your own coordinator to check that it keeps the trait's contract
//! (feature `testing`).
//!
//! Every check takes a way to make a job: a function that, given a world
//! size `n`, returns `n` connected ranks of a **new** job, in rank order
//! (`InMemoryCoordinator::new(n)`, or `n` etcd ranks under a fresh prefix).
//! [`run_all`] runs every check; each check is also a public function, to
//! run alone or to find which one fails. The ranks of a job run
//! concurrently on the caller's task (no task is spawned), so the suite
//! runs on paused time (`#[tokio::test(start_paused = true)]`) as well as
//! against a real server.
//!
//! The suite is a test helper: a check **panics** on the first violation it
//! finds, with a message that names the check and says what was expected
//! and what the coordinator did, which is what a `#[test]` wants. Do not
//! call it from production code.
//!
//! What is checked: rank and world size; barriers over several rounds; that
//! an all-gather returns every rank's payload (empty ones included) in rank
//! order, round after round, counted apart from the barriers; that a
//! timeout fails with [`CoordinatorError::Timeout`] naming the ranks that
//! did not arrive, not before the timeout, and breaks the round, so that a
//! late rank gets [`CoordinatorError::Broken`] naming them at once and the
//! next round works for all; signals (sequence numbers per rank and key,
//! payloads, `min_seq` 0 answering at once, a wait that returns when the
//! rank signals, a wait that times out naming the rank); that a rank out of
//! range is [`CoordinatorError::InvalidRank`]; and that every key in
//! [`INVALID_SIGNAL_KEYS`] is refused by `signal` and `wait_for_rank` with
//! [`CoordinatorError::InvalidArgument`], exactly as
//! [`validate_signal_key`] refuses it.
//!
//! For a coordinator that also implements
//! [`Membership`](super::Membership), [`run_membership`] checks that
//! contract, through the trait alone (no fault injection), with the same
//! kind of `make`, whose ranks must be members holding their ranks in
//! epoch 0: epoch 0 holds the ranks' member ids; of two concurrent
//! proposals after the same epoch exactly one wins and every member reads
//! it; entering an epoch moves ranks and world size and restarts rounds; a
//! handle left in an old epoch is fenced; a member the new epoch leaves
//! out is not a member; compare-and-set, listing by prefix, fenced writes
//! under a leadership; one leader at a time; the membership watch; and a
//! declared failure failing a waiting barrier at once, naming the rank.
//!
//! # Examples
//!
//! ```
//! use steadfast::coordinator::{conformance, InMemoryCoordinator};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! conformance::run_all(|n| async move { InMemoryCoordinator::new(n) }).await;
//! conformance::run_membership(|n| async move { InMemoryCoordinator::new(n) }).await;
//! # }
//! ```

use std::fmt::{Debug, Display};
use std::future::Future;
use std::time::Duration;

use futures::future::join_all;
use tokio::time::Instant;

use super::{validate_signal_key, Coordinator, CoordinatorError, Result, Signal};
use crate::retry::Transient;

/// Signal keys that every coordinator must refuse with
/// [`CoordinatorError::InvalidArgument`], in `signal` and `wait_for_rank`:
/// the empty key and keys holding control characters.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::{conformance::INVALID_SIGNAL_KEYS, validate_signal_key};
/// assert!(INVALID_SIGNAL_KEYS.iter().all(|k| validate_signal_key(k).is_err()));
/// ```
pub const INVALID_SIGNAL_KEYS: &[&str] = &["", "a\nb", "a\0b", "\t", "end\r", "del\u{7f}"];

/// The timeout of the calls that are meant to time out. Short, so that the
/// suite is quick against a real server; on paused time it costs nothing.
const SHORT: Duration = Duration::from_secs(1);

/// The timeout of the calls that must not time out.
const LONG: Duration = Duration::from_secs(60);

#[track_caller]
fn violated(check: &str, what: impl Display) -> ! {
    panic!("coordinator conformance check `{check}` failed: {what}")
}

#[track_caller]
fn ok<T>(check: &str, what: &str, result: Result<T>) -> T {
    match result {
        Ok(value) => value,
        Err(e) => violated(check, format_args!("{what} returned an error: {e} ({e:?})")),
    }
}

macro_rules! ensure {
    ($check:expr, $cond:expr, $($what:tt)+) => {
        if !$cond {
            violated($check, format_args!($($what)+));
        }
    };
}

mod epochs;
mod membership;
mod records;

pub use epochs::{
    concurrent_proposals_one_wins, entering_an_epoch_moves_ranks_and_restarts_rounds,
    epoch_zero_holds_the_ranks, invalid_proposals_are_refused, members_left_out_are_not_members,
    stale_handles_are_fenced,
};
pub use membership::{
    declared_failures_fail_waiting_rounds, run_membership, watch_reports_members_and_epochs,
};
pub use records::{
    compare_and_set_semantics, list_records_by_prefix, one_leader_at_a_time,
    put_fenced_needs_the_leadership,
};

/// Makes a job of `n` ranks and checks that it has `n` ranks in rank order.
async fn job<C, F, Fut>(check: &str, make: &mut F, n: usize) -> Vec<C>
where
    C: Coordinator,
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Vec<C>>,
{
    let ranks = make(n).await;
    ensure!(
        check,
        ranks.len() == n,
        "asked for a job of {n} ranks, got {} handles",
        ranks.len()
    );
    ranks
}

/// Runs every check, each on a job (or several) of its own.
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
/// use steadfast::coordinator::{conformance, Coordinator, InMemoryCoordinator};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// // Through trait objects:
/// conformance::run_all(|n| async move {
///     InMemoryCoordinator::new(n)
///         .into_iter()
///         .map(|r| Arc::new(r) as Arc<dyn Coordinator>)
///         .collect::<Vec<_>>()
/// })
/// .await;
/// # }
/// ```
pub async fn run_all<C, F, Fut>(mut make: F)
where
    C: Coordinator,
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Vec<C>>,
{
    rank_and_world_size(&mut make).await;
    barrier_over_several_rounds(&mut make).await;
    all_gather_in_rank_order(&mut make).await;
    rounds_of_each_collective_are_counted_apart(&mut make).await;
    barrier_timeout_names_the_missing_ranks(&mut make).await;
    all_gather_timeout_names_the_missing_ranks(&mut make).await;
    signals_and_waits(&mut make).await;
    wait_for_rank_times_out_naming_the_rank(&mut make).await;
    invalid_rank_is_refused(&mut make).await;
    invalid_signal_keys_are_refused(&mut make).await;
}

/// Every rank knows its number and the world size, and has a name.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::{conformance, InMemoryCoordinator};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// conformance::rank_and_world_size(&mut |n| async move { InMemoryCoordinator::new(n) }).await;
/// # }
/// ```
pub async fn rank_and_world_size<C, F, Fut>(make: &mut F)
where
    C: Coordinator,
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Vec<C>>,
{
    const CHECK: &str = "rank_and_world_size";
    for n in [1, 3] {
        let ranks = job(CHECK, make, n).await;
        for (i, r) in ranks.iter().enumerate() {
            ensure!(
                CHECK,
                r.rank() == i,
                "handle {i} says it is rank {}",
                r.rank()
            );
            ensure!(
                CHECK,
                r.world_size() == n,
                "rank {i} of a job of {n} says the world size is {}",
                r.world_size()
            );
            ensure!(CHECK, !r.name().is_empty(), "rank {i} has an empty name");
        }
    }
}

/// Every rank passes several barriers in a row, and a job of one rank
/// passes its barriers alone.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::{conformance, InMemoryCoordinator};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// conformance::barrier_over_several_rounds(&mut |n| async move { InMemoryCoordinator::new(n) }).await;
/// # }
/// ```
pub async fn barrier_over_several_rounds<C, F, Fut>(make: &mut F)
where
    C: Coordinator,
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Vec<C>>,
{
    const CHECK: &str = "barrier_over_several_rounds";
    for n in [1, 4] {
        let ranks = job(CHECK, make, n).await;
        for round in 0..3 {
            let results = join_all(ranks.iter().map(|r| r.barrier(LONG))).await;
            for (rank, result) in results.into_iter().enumerate() {
                ok(
                    CHECK,
                    &format!("barrier round {round} of rank {rank} of {n}"),
                    result,
                );
            }
        }
    }
}

/// An all-gather returns what every rank sent, indexed by rank (an empty
/// payload and payloads of different lengths included), to every rank,
/// and successive rounds do not mix.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::{conformance, InMemoryCoordinator};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// conformance::all_gather_in_rank_order(&mut |n| async move { InMemoryCoordinator::new(n) }).await;
/// # }
/// ```
pub async fn all_gather_in_rank_order<C, F, Fut>(make: &mut F)
where
    C: Coordinator,
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Vec<C>>,
{
    const CHECK: &str = "all_gather_in_rank_order";
    let n = 4;
    let ranks = job(CHECK, make, n).await;
    let payload = |round: u8, rank: usize| vec![round; rank];
    for round in 0..3u8 {
        let results = join_all(
            ranks
                .iter()
                .map(|r| r.all_gather(payload(round, r.rank()), LONG)),
        )
        .await;
        let expected: Vec<Vec<u8>> = (0..n).map(|rank| payload(round, rank)).collect();
        for (rank, result) in results.into_iter().enumerate() {
            let all = ok(
                CHECK,
                &format!("all_gather round {round} of rank {rank}"),
                result,
            );
            ensure!(
                CHECK,
                all == expected,
                "round {round}: rank {rank} gathered {all:?}, expected {expected:?}"
            );
        }
    }
}

/// Barriers and all-gathers are numbered apart: a barrier between two
/// gathers does not shift the gathers' rounds, whichever collective each
/// rank calls first.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::{conformance, InMemoryCoordinator};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// conformance::rounds_of_each_collective_are_counted_apart(&mut |n| async move {
///     InMemoryCoordinator::new(n)
/// })
/// .await;
/// # }
/// ```
pub async fn rounds_of_each_collective_are_counted_apart<C, F, Fut>(make: &mut F)
where
    C: Coordinator,
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Vec<C>>,
{
    const CHECK: &str = "rounds_of_each_collective_are_counted_apart";
    let ranks = job(CHECK, make, 2).await;
    async fn sequence<C: Coordinator>(r: &C) -> Result<(Vec<Vec<u8>>, Vec<Vec<u8>>)> {
        let me = r.rank() as u8;
        let first = r.all_gather(vec![me], LONG).await?;
        r.barrier(LONG).await?;
        let second = r.all_gather(vec![me + 10], LONG).await?;
        r.barrier(LONG).await?;
        Ok((first, second))
    }
    let results = join_all(ranks.iter().map(sequence)).await;
    for (rank, result) in results.into_iter().enumerate() {
        let (first, second) = ok(CHECK, &format!("the collectives of rank {rank}"), result);
        ensure!(
            CHECK,
            first == vec![vec![0], vec![1]] && second == vec![vec![10], vec![11]],
            "rank {rank} gathered {first:?} then {second:?}"
        );
    }
}

/// The error of a rank that waited for ranks that never came: a timeout
/// (or the round broken by another rank's timeout), naming `missing`,
/// transient, and not before `timeout`.
#[track_caller]
fn expect_timed_out<T: Debug>(
    check: &str,
    what: &str,
    result: Result<T>,
    missing: &[usize],
    waited: Duration,
) -> bool {
    let err = match result {
        Ok(value) => violated(
            check,
            format_args!("{what} succeeded ({value:?}) although ranks {missing:?} never came"),
        ),
        Err(err) => err,
    };
    let timed_out = matches!(err, CoordinatorError::Timeout { .. });
    ensure!(
        check,
        timed_out || matches!(err, CoordinatorError::Broken { .. }),
        "{what}: expected Timeout or Broken, got {err:?}"
    );
    ensure!(
        check,
        err.missing_ranks() == missing,
        "{what}: expected the missing ranks {missing:?} to be named, got {:?} ({err})",
        err.missing_ranks()
    );
    ensure!(
        check,
        err.is_transient(),
        "{what}: {err:?} is not transient"
    );
    if timed_out {
        ensure!(
            check,
            waited >= SHORT,
            "{what}: timed out after {waited:?}, before its timeout of {SHORT:?}"
        );
    }
    timed_out
}

/// A barrier that some ranks never reach fails, not before its timeout,
/// with a timeout naming them (at least one rank times out itself; the
/// others may find the round broken). The round is then broken: a rank
/// that arrives late learns it at once, with the same missing ranks, and
/// the next round works for every rank.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::{conformance, InMemoryCoordinator};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// conformance::barrier_timeout_names_the_missing_ranks(&mut |n| async move {
///     InMemoryCoordinator::new(n)
/// })
/// .await;
/// # }
/// ```
pub async fn barrier_timeout_names_the_missing_ranks<C, F, Fut>(make: &mut F)
where
    C: Coordinator,
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Vec<C>>,
{
    const CHECK: &str = "barrier_timeout_names_the_missing_ranks";
    let ranks = job(CHECK, make, 4).await;
    let start = Instant::now();
    // Ranks 2 and 3 do not come.
    let results = join_all(ranks[..2].iter().map(|r| r.barrier(SHORT))).await;
    let waited = start.elapsed();
    let mut timed_out = 0;
    for (rank, result) in results.into_iter().enumerate() {
        let what = format!("the barrier of rank {rank}");
        timed_out += usize::from(expect_timed_out(CHECK, &what, result, &[2, 3], waited));
    }
    ensure!(
        CHECK,
        timed_out >= 1,
        "no rank timed out itself; every one found the round broken"
    );

    // The late ranks find the round broken, at once: long before their own
    // timeout.
    let start = Instant::now();
    let late = join_all(ranks[2..].iter().map(|r| r.barrier(LONG))).await;
    for (i, result) in late.into_iter().enumerate() {
        let rank = i + 2;
        match result {
            Err(CoordinatorError::Broken { ref missing, .. }) if missing == &[2, 3] => {}
            other => violated(
                CHECK,
                format_args!(
                    "late rank {rank} should find the round broken, naming [2, 3]; got {other:?}"
                ),
            ),
        }
    }
    ensure!(
        CHECK,
        start.elapsed() < LONG,
        "the late ranks waited out their timeout instead of learning that the round is broken"
    );

    // Every rank has left the broken round: the next one works.
    let results = join_all(ranks.iter().map(|r| r.barrier(LONG))).await;
    for (rank, result) in results.into_iter().enumerate() {
        ok(
            CHECK,
            &format!("the barrier after the broken round, rank {rank}"),
            result,
        );
    }
}

/// An all-gather that a rank never joins fails with a timeout naming it,
/// and the next all-gather of every rank works and returns fresh data.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::{conformance, InMemoryCoordinator};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// conformance::all_gather_timeout_names_the_missing_ranks(&mut |n| async move {
///     InMemoryCoordinator::new(n)
/// })
/// .await;
/// # }
/// ```
pub async fn all_gather_timeout_names_the_missing_ranks<C, F, Fut>(make: &mut F)
where
    C: Coordinator,
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Vec<C>>,
{
    const CHECK: &str = "all_gather_timeout_names_the_missing_ranks";
    let ranks = job(CHECK, make, 3).await;
    let start = Instant::now();
    // Rank 1 does not come.
    let results = join_all(
        [&ranks[0], &ranks[2]]
            .into_iter()
            .map(|r| r.all_gather(vec![r.rank() as u8], SHORT)),
    )
    .await;
    let waited = start.elapsed();
    for (result, rank) in results.into_iter().zip([0, 2]) {
        let what = format!("the all_gather of rank {rank}");
        expect_timed_out(CHECK, &what, result, &[1], waited);
    }
    // Rank 1 learns that round 0 is broken; then all meet in round 1.
    let late = ranks[1].all_gather(vec![1], LONG).await;
    ensure!(
        CHECK,
        matches!(late, Err(CoordinatorError::Broken { ref missing, .. }) if missing == &[1]),
        "the late rank should find the round broken, naming [1]; got {late:?}"
    );
    let results = join_all(
        ranks
            .iter()
            .map(|r| r.all_gather(vec![r.rank() as u8 + 100], LONG)),
    )
    .await;
    for (rank, result) in results.into_iter().enumerate() {
        let all = ok(
            CHECK,
            &format!("the all_gather after the broken round, rank {rank}"),
            result,
        );
        ensure!(
            CHECK,
            all == vec![vec![100], vec![101], vec![102]],
            "rank {rank} gathered {all:?} after the broken round"
        );
    }
}

/// Signals: the sequence number starts at 1 for each rank and key and grows
/// by one with each signal; a wait with `min_seq` returns the latest signal
/// with its payload; `min_seq` 0 answers at once (sequence 0 and no payload
/// for a key never raised); a wait returns when the rank signals.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::{conformance, InMemoryCoordinator};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// conformance::signals_and_waits(&mut |n| async move { InMemoryCoordinator::new(n) }).await;
/// # }
/// ```
pub async fn signals_and_waits<C, F, Fut>(make: &mut F)
where
    C: Coordinator,
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Vec<C>>,
{
    const CHECK: &str = "signals_and_waits";
    let ranks = job(CHECK, make, 2).await;
    let seqs = [
        ranks[1].signal("step", b"a".to_vec()).await,
        ranks[1].signal("step", b"b".to_vec()).await,
        ranks[1].signal("other/key ✓", b"c".to_vec()).await,
        ranks[0].signal("step", b"d".to_vec()).await,
        ranks[1].signal("step", Vec::new()).await,
    ];
    let seqs: Vec<u64> = seqs.into_iter().map(|r| ok(CHECK, "signal", r)).collect();
    ensure!(
        CHECK,
        seqs == [1, 2, 1, 1, 3],
        "sequence numbers per rank and key should be [1, 2, 1, 1, 3], got {seqs:?}"
    );
    let seen = ok(
        CHECK,
        "wait_for_rank(1, \"step\", 2)",
        ranks[0].wait_for_rank(1, "step", 2, LONG).await,
    );
    ensure!(
        CHECK,
        seen == Signal {
            seq: 3,
            payload: Vec::new()
        },
        "waiting for rank 1's \"step\" returned {seen:?}, expected its third signal"
    );
    let other = ok(
        CHECK,
        "wait_for_rank(1, \"other/key ✓\", 1)",
        ranks[0].wait_for_rank(1, "other/key ✓", 1, LONG).await,
    );
    ensure!(
        CHECK,
        other
            == Signal {
                seq: 1,
                payload: b"c".to_vec()
            },
        "got {other:?} for rank 1's \"other/key ✓\""
    );

    let start = Instant::now();
    let never = ok(
        CHECK,
        "wait_for_rank(1, \"never\", 0)",
        ranks[0].wait_for_rank(1, "never", 0, LONG).await,
    );
    ensure!(
        CHECK,
        never == Signal::default() && !never.is_raised(),
        "min_seq 0 for a key never raised should give Signal::default(), got {never:?}"
    );
    let current = ok(
        CHECK,
        "wait_for_rank(0, \"step\", 0)",
        ranks[1].wait_for_rank(0, "step", 0, LONG).await,
    );
    ensure!(
        CHECK,
        current
            == Signal {
                seq: 1,
                payload: b"d".to_vec()
            },
        "min_seq 0 should return the current signal, got {current:?}"
    );
    ensure!(
        CHECK,
        start.elapsed() < LONG,
        "waits with min_seq 0 should answer at once"
    );

    // A wait that starts before the signal returns when it is raised.
    let (waited, raised) = futures::join!(ranks[0].wait_for_rank(1, "later", 1, LONG), async {
        tokio::task::yield_now().await;
        ranks[1].signal("later", b"now".to_vec()).await
    });
    ok(CHECK, "signal(\"later\")", raised);
    let waited = ok(CHECK, "wait_for_rank(1, \"later\", 1)", waited);
    ensure!(
        CHECK,
        waited
            == Signal {
                seq: 1,
                payload: b"now".to_vec()
            },
        "a wait should return the signal raised while it waited, got {waited:?}"
    );
}

/// A wait for a signal that never comes fails, not before its timeout,
/// with [`CoordinatorError::Timeout`] of `wait_for_rank` naming the rank.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::{conformance, InMemoryCoordinator};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// conformance::wait_for_rank_times_out_naming_the_rank(&mut |n| async move {
///     InMemoryCoordinator::new(n)
/// })
/// .await;
/// # }
/// ```
pub async fn wait_for_rank_times_out_naming_the_rank<C, F, Fut>(make: &mut F)
where
    C: Coordinator,
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Vec<C>>,
{
    const CHECK: &str = "wait_for_rank_times_out_naming_the_rank";
    let ranks = job(CHECK, make, 3).await;
    ok(CHECK, "signal", ranks[2].signal("ready", Vec::new()).await);
    let start = Instant::now();
    // Rank 2 signalled once; waiting for a second signal times out.
    let result = ranks[0].wait_for_rank(2, "ready", 2, SHORT).await;
    let waited = start.elapsed();
    match result {
        Err(CoordinatorError::Timeout {
            operation,
            after,
            ref missing,
        }) => {
            ensure!(
                CHECK,
                operation == "wait_for_rank" && after == SHORT && missing == &[2],
                "expected a timeout of wait_for_rank after {SHORT:?} naming [2], got \
                 operation {operation:?}, after {after:?}, missing {missing:?}"
            );
        }
        other => violated(
            CHECK,
            format_args!("expected a timeout naming rank 2, got {other:?}"),
        ),
    }
    ensure!(
        CHECK,
        waited >= SHORT,
        "timed out after {waited:?}, before its timeout of {SHORT:?}"
    );
}

/// A rank outside `0..world_size` is refused with
/// [`CoordinatorError::InvalidRank`], which is not transient.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::{conformance, InMemoryCoordinator};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// conformance::invalid_rank_is_refused(&mut |n| async move { InMemoryCoordinator::new(n) }).await;
/// # }
/// ```
pub async fn invalid_rank_is_refused<C, F, Fut>(make: &mut F)
where
    C: Coordinator,
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Vec<C>>,
{
    const CHECK: &str = "invalid_rank_is_refused";
    let ranks = job(CHECK, make, 2).await;
    for rank in [2, usize::MAX] {
        let result = ranks[0].wait_for_rank(rank, "k", 1, LONG).await;
        match result {
            Err(
                ref err @ CoordinatorError::InvalidRank {
                    rank: r,
                    world_size: 2,
                },
            ) if r == rank => {
                ensure!(CHECK, !err.is_transient(), "{err:?} is transient");
            }
            other => violated(
                CHECK,
                format_args!("wait_for_rank({rank}) in a world of 2 gave {other:?}"),
            ),
        }
    }
}

/// Every key of [`INVALID_SIGNAL_KEYS`] is refused by `signal` and
/// `wait_for_rank` with [`CoordinatorError::InvalidArgument`] (not
/// transient), as [`validate_signal_key`] refuses it.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::{conformance, InMemoryCoordinator};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// conformance::invalid_signal_keys_are_refused(&mut |n| async move { InMemoryCoordinator::new(n) })
///     .await;
/// # }
/// ```
pub async fn invalid_signal_keys_are_refused<C, F, Fut>(make: &mut F)
where
    C: Coordinator,
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Vec<C>>,
{
    const CHECK: &str = "invalid_signal_keys_are_refused";
    let ranks = job(CHECK, make, 2).await;
    for key in INVALID_SIGNAL_KEYS {
        ensure!(
            CHECK,
            validate_signal_key(key).is_err(),
            "validate_signal_key accepts {key:?}"
        );
        let signalled = ranks[0].signal(key, b"x".to_vec()).await;
        let waited = ranks[1].wait_for_rank(0, key, 0, LONG).await;
        for (what, err) in [("signal", signalled.err()), ("wait_for_rank", waited.err())] {
            match err {
                Some(ref e @ CoordinatorError::InvalidArgument(_)) => {
                    ensure!(CHECK, !e.is_transient(), "{e:?} is transient");
                }
                other => violated(
                    CHECK,
                    format_args!(
                        "{what} with the key {key:?} should be refused with InvalidArgument, got {other:?}"
                    ),
                ),
            }
        }
    }
}
