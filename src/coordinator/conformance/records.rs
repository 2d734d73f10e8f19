//! The conformance checks of records and leadership: compare-and-set,
//! listing by prefix, fenced writes under a leadership, one leader at a
//! time.

use std::future::Future;

use tokio::time::Instant;

use super::membership::{expect_fenced, expect_invalid};
use super::{job, ok, violated, LONG, SHORT};
use crate::coordinator::{CasOutcome, CoordinatorError, Membership, MAX_RECORD_SIZE};

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
