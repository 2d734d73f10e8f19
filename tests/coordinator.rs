//! Behaviour of the in-memory coordinator: barriers and gathers over several
//! rounds, broken rounds, signals, fault injection and trait objects; the
//! conformance suite on the in-memory coordinator, the fault-tolerant
//! wrapper and trait objects; wrappers that share a recovery manager.
//!
//! Every test runs on paused time, so timeouts and delays are exact.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use steadfast::coordinator::{
    conformance, validate_signal_key, Coordinator, CoordinatorError, CoordinatorFaults,
    FaultTolerant, FaultTolerantConfig, InMemoryCoordinator, Membership, Signal,
};
use steadfast::recovery::ErrorRecoveryManager;
use steadfast::retry::{RetryPolicy, Transient};
use tokio::time::Instant;

const SEC: Duration = Duration::from_secs(1);

/// Runs `op` on every rank as its own task and returns the results in rank
/// order.
async fn on_every_rank<T, F, Fut>(ranks: &[InMemoryCoordinator], op: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(InMemoryCoordinator) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let tasks: Vec<_> = ranks.iter().cloned().map(|r| tokio::spawn(op(r))).collect();
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(task.await.expect("rank task panicked"));
    }
    out
}

#[tokio::test(start_paused = true)]
async fn barrier_of_four_ranks_over_several_rounds() {
    let ranks = InMemoryCoordinator::new(4);
    // Rank 2 is one second late to every operation, so every round ends one
    // second after it starts, for every rank.
    ranks[0].faults().set_delay(2, SEC);
    let start = Instant::now();
    let finished = on_every_rank(&ranks, |rank| async move {
        let mut ends = Vec::new();
        for _ in 0..5 {
            rank.barrier(Duration::from_secs(10)).await.unwrap();
            ends.push(start.elapsed());
        }
        ends
    })
    .await;
    let expected: Vec<_> = (1..=5).map(|k| SEC * k).collect();
    for ends in finished {
        assert_eq!(ends, expected);
    }
}

#[tokio::test(start_paused = true)]
async fn barrier_waits_for_the_last_rank() {
    let ranks = InMemoryCoordinator::new(2);
    let start = Instant::now();
    let late = ranks[1].clone();
    let late = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        late.barrier(Duration::from_secs(10)).await
    });
    ranks[0].barrier(Duration::from_secs(10)).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    late.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn all_gather_returns_data_in_rank_order() {
    let ranks = InMemoryCoordinator::new(4);
    // Arrivals in reverse rank order: rank 0 is the last to arrive.
    for r in 0..4u32 {
        ranks[0].faults().set_delay(r as usize, SEC * (4 - r));
    }
    let gathered = on_every_rank(&ranks, |rank| async move {
        let data = format!("rank-{}", rank.rank()).into_bytes();
        rank.all_gather(data, Duration::from_secs(10))
            .await
            .unwrap()
    })
    .await;
    let expected: Vec<Vec<u8>> = (0..4).map(|r| format!("rank-{r}").into_bytes()).collect();
    for all in gathered {
        assert_eq!(all, expected);
    }
}

#[tokio::test(start_paused = true)]
async fn all_gather_rounds_do_not_mix() {
    let ranks = InMemoryCoordinator::new(3);
    let gathered = on_every_rank(&ranks, |rank| async move {
        let mut rounds = Vec::new();
        for round in 0..3u8 {
            let data = vec![round, rank.rank() as u8];
            rounds.push(rank.all_gather(data, SEC).await.unwrap());
        }
        rounds
    })
    .await;
    for rounds in gathered {
        for (round, all) in rounds.into_iter().enumerate() {
            let expected: Vec<Vec<u8>> = (0..3).map(|r| vec![round as u8, r]).collect();
            assert_eq!(all, expected);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn an_absent_rank_is_named_by_every_other_rank_wherever_it_sits() {
    for absent in 0..4 {
        let ranks = InMemoryCoordinator::new(4);
        ranks[0].faults().set_absent(absent, true);
        let start = Instant::now();
        let results = on_every_rank(&ranks, |rank| async move {
            rank.barrier(Duration::from_secs(5)).await
        })
        .await;
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        for (rank, result) in results.into_iter().enumerate() {
            let err = result.unwrap_err();
            assert!(
                matches!(
                    err,
                    CoordinatorError::Timeout { .. } | CoordinatorError::Broken { .. }
                ),
                "rank {rank} with rank {absent} absent: {err:?}"
            );
            assert_eq!(err.missing_ranks(), &[absent], "rank {rank}: {err}");
            assert!(err.is_transient());
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_timeout_breaks_the_round_for_all_and_later_rounds_work() {
    let ranks = InMemoryCoordinator::new(3);
    let start = Instant::now();
    let results = on_every_rank(&ranks, |rank| async move {
        // Rank 2 arrives at the first barrier two seconds late, after the
        // others gave up at one second.
        if rank.rank() == 2 {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let first = rank.barrier(SEC).await;
        let first_done = start.elapsed();
        let second = rank.barrier(Duration::from_secs(10)).await;
        (first, first_done, second)
    })
    .await;
    for (rank, (first, first_done, second)) in results.into_iter().enumerate() {
        let err = first.unwrap_err();
        assert_eq!(err.missing_ranks(), &[2], "rank {rank}: {err}");
        if rank == 2 {
            // The late rank learns at once that its round is broken, rather
            // than waiting out a round that can no longer complete.
            assert!(
                matches!(err, CoordinatorError::Broken { round: 0, .. }),
                "{err:?}"
            );
            assert_eq!(first_done, Duration::from_secs(2));
        } else {
            assert_eq!(first_done, SEC);
        }
        second.unwrap();
    }
    // The second round completed when the late rank arrived there.
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn fail_next_injects_transient_unavailable_errors() {
    let ranks = InMemoryCoordinator::new(2);
    ranks[0].faults().fail_next(1, 2);
    for _ in 0..2 {
        let err = ranks[1].signal("ready", vec![]).await.unwrap_err();
        assert!(
            matches!(err, CoordinatorError::Unavailable { .. }),
            "{err:?}"
        );
        assert!(err.is_transient());
    }
    // The failures did not consume a barrier round: the third operation
    // meets rank 0 in round 0.
    let results = on_every_rank(&ranks, |rank| async move { rank.barrier(SEC).await }).await;
    for r in results {
        r.unwrap();
    }
    assert_eq!(ranks[1].signal("ready", vec![]).await.unwrap(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_call_after_an_injected_failure_joins_the_round_it_missed() {
    let ranks = InMemoryCoordinator::new(2);
    ranks[0].faults().fail_next(1, 1);
    let err = ranks[1].barrier(SEC).await.unwrap_err();
    assert!(
        matches!(err, CoordinatorError::Unavailable { .. }),
        "{err:?}"
    );
    // Rank 0 waits in round 0 without rank 1 and times out naming it.
    match ranks[0].barrier(SEC).await.unwrap_err() {
        CoordinatorError::Timeout { missing, .. } => assert_eq!(missing, [1]),
        other => panic!("expected a timeout, got {other:?}"),
    }
    // Rank 1's next barrier is round 0, which is broken: it learns so.
    match ranks[1].barrier(SEC).await.unwrap_err() {
        CoordinatorError::Broken { round, missing, .. } => {
            assert_eq!((round, missing), (0, vec![1]));
        }
        other => panic!("expected the broken round, got {other:?}"),
    }
    // Both are in step again.
    for r in on_every_rank(&ranks, |rank| async move { rank.barrier(SEC).await }).await {
        r.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn set_delay_delays_every_operation_of_that_rank() {
    let ranks = InMemoryCoordinator::new(2);
    ranks[0].faults().set_delay(1, Duration::from_secs(3));
    let start = Instant::now();
    ranks[1].signal("k", b"x".to_vec()).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    // Rank 0 is not delayed.
    ranks[0].signal("k", b"y".to_vec()).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    ranks[0].faults().clear();
    ranks[1].signal("k", b"z".to_vec()).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn invalid_rank_is_an_error() {
    let ranks = InMemoryCoordinator::new(4);
    let err = ranks[0].wait_for_rank(7, "k", 1, SEC).await.unwrap_err();
    assert!(
        matches!(
            err,
            CoordinatorError::InvalidRank {
                rank: 7,
                world_size: 4
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_transient());
}

#[tokio::test(start_paused = true)]
async fn empty_signal_keys_are_refused() {
    let ranks = InMemoryCoordinator::new(2);
    let err = ranks[0].signal("", vec![]).await.unwrap_err();
    assert!(
        matches!(err, CoordinatorError::InvalidArgument(_)),
        "{err:?}"
    );
    let err = ranks[0].wait_for_rank(1, "", 1, SEC).await.unwrap_err();
    assert!(
        matches!(err, CoordinatorError::InvalidArgument(_)),
        "{err:?}"
    );
    assert!(!err.is_transient());
}

#[tokio::test(start_paused = true)]
async fn signal_sequence_numbers_grow_per_rank_and_key() {
    let ranks = InMemoryCoordinator::new(2);
    assert_eq!(ranks[1].signal("step", b"a".to_vec()).await.unwrap(), 1);
    assert_eq!(ranks[1].signal("step", b"b".to_vec()).await.unwrap(), 2);
    assert_eq!(ranks[1].signal("other", b"c".to_vec()).await.unwrap(), 1);
    assert_eq!(ranks[0].signal("step", b"d".to_vec()).await.unwrap(), 1);
    assert_eq!(ranks[1].signal("step", b"e".to_vec()).await.unwrap(), 3);
    let seen = ranks[0].wait_for_rank(1, "step", 2, SEC).await.unwrap();
    assert_eq!(
        seen,
        Signal {
            seq: 3,
            payload: b"e".to_vec()
        }
    );
}

#[tokio::test(start_paused = true)]
async fn min_seq_zero_returns_at_once() {
    let ranks = InMemoryCoordinator::new(2);
    let start = Instant::now();
    let never = ranks[0].wait_for_rank(1, "k", 0, SEC).await.unwrap();
    assert_eq!(never, Signal::default());
    assert!(!never.is_raised());
    ranks[1].signal("k", b"p".to_vec()).await.unwrap();
    let now = ranks[0].wait_for_rank(1, "k", 0, SEC).await.unwrap();
    assert_eq!(now.seq, 1);
    assert_eq!(now.payload, b"p");
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn wait_for_rank_returns_when_the_rank_signals() {
    let ranks = InMemoryCoordinator::new(2);
    let signaller = ranks[1].clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        signaller.signal("ready", b"go".to_vec()).await.unwrap();
    });
    let start = Instant::now();
    let signal = ranks[0]
        .wait_for_rank(1, "ready", 1, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(signal.payload, b"go");
}

#[tokio::test(start_paused = true)]
async fn wait_for_an_absent_rank_times_out_naming_it() {
    let ranks = InMemoryCoordinator::new(3);
    ranks[0].faults().set_absent(2, true);
    ranks[2].signal("ready", vec![]).await.unwrap();
    let start = Instant::now();
    let err = ranks[0]
        .wait_for_rank(2, "ready", 1, Duration::from_secs(4))
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(4));
    match err {
        CoordinatorError::Timeout {
            operation,
            after,
            ref missing,
        } => {
            assert_eq!(operation, "wait_for_rank");
            assert_eq!(after, Duration::from_secs(4));
            assert_eq!(missing, &[2]);
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn the_longest_timeout_does_not_overflow() {
    let ranks = InMemoryCoordinator::new(1);
    ranks[0].barrier(Duration::MAX).await.unwrap();
    assert_eq!(
        ranks[0].all_gather(vec![1], Duration::MAX).await.unwrap(),
        vec![vec![1]]
    );
    let signal = ranks[0].wait_for_rank(0, "k", 0, Duration::MAX).await;
    assert_eq!(signal.unwrap().seq, 0);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_barrier_still_counts_as_arrived() {
    let ranks = InMemoryCoordinator::new(2);
    // Rank 0 gives up on its own (the future is dropped) after one second.
    let gave_up = tokio::time::timeout(SEC, ranks[0].barrier(Duration::from_secs(10))).await;
    assert!(gave_up.is_err());
    // Its arrival in round 0 stands, so rank 1 passes round 0 at once...
    let start = Instant::now();
    ranks[1].barrier(Duration::from_secs(10)).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    // ...and the next round works for both.
    let results = on_every_rank(&ranks, |rank| async move { rank.barrier(SEC).await }).await;
    for r in results {
        r.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn works_through_trait_objects() {
    let ranks = InMemoryCoordinator::new(2);
    let shared: Vec<Arc<dyn Coordinator>> = ranks
        .iter()
        .cloned()
        .map(|r| Arc::new(r) as Arc<dyn Coordinator>)
        .collect();
    let tasks: Vec<_> = shared
        .iter()
        .cloned()
        .map(|c| {
            tokio::spawn(async move {
                assert_eq!(c.name(), "in-memory");
                assert_eq!(c.world_size(), 2);
                c.barrier(SEC).await?;
                c.all_gather(vec![c.rank() as u8], SEC).await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), vec![vec![0], vec![1]]);
    }
    let boxed: Box<dyn Coordinator> = Box::new(ranks[1].clone());
    assert_eq!(boxed.signal("k", vec![]).await.unwrap(), 1);
    assert_eq!(
        shared[0].wait_for_rank(1, "k", 1, SEC).await.unwrap().seq,
        1
    );
}

#[test]
fn coordinator_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<InMemoryCoordinator>();
    assert_send_sync::<CoordinatorFaults>();
    assert_send_sync::<CoordinatorError>();
    assert_send_sync::<Signal>();
    assert_send_sync::<Arc<dyn Coordinator>>();
    assert_send_sync::<Box<dyn Coordinator>>();
    assert_send_sync::<steadfast::coordinator::Abandoned>();
    assert_send_sync::<steadfast::coordinator::MemberEvent>();
    assert_send_sync::<FaultTolerant<InMemoryCoordinator>>();
}

#[tokio::test(start_paused = true)]
async fn a_delay_counts_against_the_delayed_calls_own_timeout() {
    let ranks = InMemoryCoordinator::new(2);
    // Rank 1 is 10 s late to everything; its barrier may wait 3 s only.
    ranks[0].faults().set_delay(1, Duration::from_secs(10));
    let start = Instant::now();
    let patient = ranks[0].clone();
    let patient = tokio::spawn(async move {
        let result = patient.barrier(Duration::from_secs(60)).await;
        (result, start.elapsed())
    });
    let result = ranks[1].barrier(Duration::from_secs(3)).await;
    // The delayed call times out at its own deadline, not when its delay
    // ends, naming itself: it never arrived.
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    match result.unwrap_err() {
        CoordinatorError::Timeout {
            operation,
            after,
            missing,
        } => {
            assert_eq!(operation, "barrier");
            assert_eq!(after, Duration::from_secs(3));
            assert_eq!(missing, [1]);
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    // Its timeout broke the round for the rank that waited.
    let (result, done) = patient.await.unwrap();
    assert_eq!(done, Duration::from_secs(3));
    assert!(
        matches!(result, Err(CoordinatorError::Broken { round: 0, ref missing, .. }) if missing == &[1]),
        "{result:?}"
    );

    // A wait for a signal times out at its deadline too.
    let start = Instant::now();
    let err = ranks[1]
        .wait_for_rank(0, "k", 0, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert!(
        matches!(err, CoordinatorError::Timeout { operation: "wait_for_rank", ref missing, .. } if missing == &[0]),
        "{err:?}"
    );
    // A delay within the timeout is waited, and the call succeeds.
    ranks[0].faults().set_delay(1, Duration::from_secs(1));
    let start = Instant::now();
    let signal = ranks[1]
        .wait_for_rank(0, "k", 0, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!((signal.seq, start.elapsed()), (0, SEC));
}

// ------------------------------------------------------------ conformance

#[tokio::test(start_paused = true)]
async fn conformance_of_the_in_memory_coordinator() {
    conformance::run_all(|n| async move { InMemoryCoordinator::new(n) }).await;
}

#[tokio::test(start_paused = true)]
async fn conformance_of_the_fault_tolerant_wrapper() {
    conformance::run_all(|n| async move {
        InMemoryCoordinator::new(n)
            .into_iter()
            .map(|r| FaultTolerant::new(r, FaultTolerantConfig::default()))
            .collect::<Vec<_>>()
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn conformance_through_trait_objects() {
    conformance::run_all(|n| async move {
        InMemoryCoordinator::new(n)
            .into_iter()
            .map(|r| Arc::new(r) as Arc<dyn Coordinator>)
            .collect::<Vec<_>>()
    })
    .await;
    conformance::run_all(|n| async move {
        InMemoryCoordinator::new(n)
            .into_iter()
            .map(|r| {
                let wrapped = FaultTolerant::new(r, FaultTolerantConfig::default());
                Box::new(wrapped) as Box<dyn Coordinator>
            })
            .collect::<Vec<_>>()
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn membership_conformance_of_the_in_memory_coordinator() {
    conformance::run_membership(|n| async move { InMemoryCoordinator::new(n) }).await;
}

#[tokio::test(start_paused = true)]
async fn membership_conformance_of_the_fault_tolerant_wrapper() {
    conformance::run_membership(|n| async move {
        InMemoryCoordinator::new(n)
            .into_iter()
            .map(|r| FaultTolerant::new(r, FaultTolerantConfig::default()))
            .collect::<Vec<_>>()
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn membership_conformance_through_trait_objects() {
    conformance::run_membership(|n| async move {
        InMemoryCoordinator::new(n)
            .into_iter()
            .map(|r| Arc::new(r) as Arc<dyn Membership>)
            .collect::<Vec<_>>()
    })
    .await;
    conformance::run_membership(|n| async move {
        InMemoryCoordinator::new(n)
            .into_iter()
            .map(|r| {
                let wrapped = FaultTolerant::new(r, FaultTolerantConfig::default());
                Box::new(wrapped) as Box<dyn Membership>
            })
            .collect::<Vec<_>>()
    })
    .await;
}

#[test]
fn the_coordinator_trait_is_object_safe() {
    fn takes(_: &dyn Coordinator) {}
    let ranks = InMemoryCoordinator::new(1);
    takes(&ranks[0]);
    let shared: Arc<dyn Coordinator> = Arc::new(ranks[0].clone());
    takes(&shared);
    let boxed: Box<dyn Coordinator> = Box::new(shared.clone());
    takes(&boxed);
    let wrapped: Arc<dyn Coordinator> =
        Arc::new(FaultTolerant::new(boxed, FaultTolerantConfig::default()));
    takes(&wrapped);
}

#[test]
fn both_coordinators_refuse_the_same_signal_keys() {
    for key in conformance::INVALID_SIGNAL_KEYS {
        assert!(
            matches!(
                validate_signal_key(key),
                Err(CoordinatorError::InvalidArgument(_))
            ),
            "{key:?}"
        );
    }
    for key in ["k", "shard/7", "step-7 ✓", " spaced "] {
        validate_signal_key(key).unwrap();
    }
}

// ------------------------------------- wrappers sharing one recovery manager

/// A policy of three retries, one second apart.
fn three_retries() -> FaultTolerantConfig {
    FaultTolerantConfig::builder()
        .retry(
            RetryPolicy::builder()
                .max_retries(3)
                .factor(1.0)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn wrappers_sharing_a_recovery_manager_count_their_own_failures() {
    let recovery = ErrorRecoveryManager::default();
    let ranks = InMemoryCoordinator::new(2);
    // Each rank's first two barriers fail: two failures each, four in all,
    // more than the three retries either may make.
    ranks[0].faults().fail_next(0, 2);
    ranks[0].faults().fail_next(1, 2);
    let start = Instant::now();
    let results = on_every_rank(&ranks, |rank| {
        let recovery = recovery.clone();
        async move {
            let ft = FaultTolerant::with_recovery(rank, three_retries(), recovery);
            ft.barrier(Duration::from_secs(30)).await
        }
    })
    .await;
    for (rank, result) in results.into_iter().enumerate() {
        result.unwrap_or_else(|e| panic!("rank {rank} gave up early: {e:?}"));
    }
    // Two retries each, one second apart.
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    let stats = recovery.statistics();
    assert_eq!(stats.by_kind["coordinator.barrier"], 4);
    let ids: std::collections::BTreeSet<_> = recovery
        .history()
        .into_iter()
        .map(|r| r.operation_id)
        .collect();
    assert_eq!(ids.len(), 2, "one operation id per wrapper: {ids:?}");
}

#[tokio::test(start_paused = true)]
async fn a_success_of_one_wrapper_does_not_reset_the_count_of_another() {
    let recovery = ErrorRecoveryManager::default();
    // Two jobs of one rank each (rank 0 both), sharing the manager.
    let quick = InMemoryCoordinator::new(1).remove(0);
    let stuck = InMemoryCoordinator::new(1).remove(0);
    quick.faults().fail_next(0, 1);
    stuck.faults().fail_next(0, 10);
    let quick = FaultTolerant::with_recovery(quick, three_retries(), recovery.clone());
    let stuck = FaultTolerant::with_recovery(stuck, three_retries(), recovery.clone());
    let start = Instant::now();
    let (quick_result, stuck_result) = tokio::join!(
        quick.barrier(Duration::from_secs(30)),
        stuck.barrier(Duration::from_secs(30))
    );
    // The quick one succeeded at its first retry...
    quick_result.unwrap();
    // ...and the stuck one still gave up after its own four attempts.
    let err = stuck_result.unwrap_err();
    assert!(
        matches!(err, CoordinatorError::Unavailable { .. }),
        "{err:?}"
    );
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    assert_eq!(recovery.statistics().by_kind["coordinator.barrier"], 1 + 4);
    // 10 - 4 injected failures are left for the stuck rank.
    for _ in 0..6 {
        assert!(stuck.inner().barrier(SEC).await.is_err());
    }
    stuck.inner().barrier(SEC).await.unwrap();
}
