//! The checkpoint manager on `MemoryStorage` and `InMemoryCoordinator`, on
//! paused time: schedules, asynchronous saves and their overlap policies,
//! events, ranks following rank 0's decisions, failures on one rank,
//! retention, and bad input. Restores are in tests/manager_restore.rs.

mod manager_common;

use std::sync::Mutex;
use std::time::{Duration, UNIX_EPOCH};

use futures::StreamExt;
use manager_common::{drain, managers, on_ranks, one, wall_start, Failing, Manager, SLOW_WRITE};
use steadfast::checkpoint::ManualClock;
use steadfast::manager::{
    CheckpointEvent, CheckpointManager, CheckpointManagerConfig, JsonState, ManagerError,
    OverlapPolicy, RecoveryFilter, RetentionPolicy, SkipReason,
};
use steadfast::storage::testing::Operation;
use steadfast::storage::MemoryStorage;
use tokio::time::Instant;

fn names(points: &[steadfast::manager::RecoveryPoint]) -> Vec<String> {
    points.iter().map(|p| p.name.clone()).collect()
}

#[tokio::test(start_paused = true)]
async fn the_step_schedule_saves_every_n_steps_on_every_rank() {
    let storage = MemoryStorage::new();
    let ranks = managers(&storage, 3, None, |b| b.prefix("run").every_n_steps(2));
    let saved = on_ranks(ranks, |m: Manager| async move {
        let value = JsonState::new(0u64);
        m.register_state("value", value.clone()).unwrap();
        let mut names = Vec::new();
        for step in 1..=6u64 {
            value.set(step * 10 + m.checkpoint().rank() as u64);
            if let Some(pending) = m.step().await.unwrap() {
                names.push(pending.wait().await.unwrap().name);
            }
        }
        names
    })
    .await;
    let expected = [
        "run/ckpt-0000000001-step-2",
        "run/ckpt-0000000002-step-4",
        "run/ckpt-0000000003-step-6",
    ];
    for names in saved {
        assert_eq!(names, expected);
    }
    let m = one(&storage, None, |b| b.prefix("run"));
    let points = m.recovery_points(&RecoveryFilter::all()).await.unwrap();
    assert_eq!(
        names(&points),
        expected.iter().rev().copied().collect::<Vec<_>>()
    );
    assert!(points.iter().all(|p| p.world_size == 3));
}

#[tokio::test(start_paused = true)]
async fn the_interval_schedule_ticks_on_paused_time_and_stop_takes_a_final_checkpoint() {
    let storage = MemoryStorage::new();
    let m = one(&storage, None, |b| {
        b.prefix("run").interval(Duration::from_secs(60))
    });
    m.register_state("s", JsonState::new(1)).unwrap();
    let mut events = m.events();
    let schedule = m.start();
    tokio::time::sleep(Duration::from_secs(59)).await;
    assert!(m
        .recovery_points(&RecoveryFilter::all())
        .await
        .unwrap()
        .is_empty());
    tokio::time::sleep(Duration::from_secs(62)).await; // ticks at 60 s and 120 s
    let points = m.recovery_points(&RecoveryFilter::all()).await.unwrap();
    assert_eq!(points.len(), 2);
    let last = schedule.stop(true).await.unwrap().unwrap();
    assert_eq!(last.name, "run/ckpt-0000000003-final");
    assert_eq!(last.sequence, Some(3));
    let committed = drain(&mut events)
        .into_iter()
        .filter(|e| matches!(e, CheckpointEvent::Committed { .. }))
        .count();
    assert_eq!(committed, 3);
    // Stopped: no more ticks.
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(
        m.recovery_points(&RecoveryFilter::all())
            .await
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test(start_paused = true)]
async fn ranks_follow_rank_zero_interval_decisions_and_never_drift() {
    let storage = MemoryStorage::new();
    // Writes take 100 s, ticks come every 60 s: rank 0 skips about every
    // other tick, and every rank must skip exactly those.
    storage
        .faults()
        .set_latency(Operation::PutStream, SLOW_WRITE);
    let ranks = managers(&storage, 3, None, |b| {
        b.prefix("run").interval(Duration::from_secs(60))
    });
    let results = on_ranks(ranks, |m: Manager| async move {
        m.register_state("s", JsonState::new(m.checkpoint().rank()))
            .unwrap();
        let mut events = m.events();
        let schedule = m.start();
        tokio::time::sleep(Duration::from_secs(60 * 10 + 30)).await;
        schedule.stop(false).await.unwrap();
        let events = drain(&mut events);
        let skipped = events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    CheckpointEvent::Skipped {
                        reason: SkipReason::SaveInFlight,
                        ..
                    }
                )
            })
            .count();
        let committed: Vec<String> = events
            .iter()
            .filter_map(|e| match e {
                CheckpointEvent::Committed { info, .. } => Some(info.name.clone()),
                _ => None,
            })
            .collect();
        (skipped, committed, m.last_error().map(|e| e.to_string()))
    })
    .await;
    let (skipped, committed, error) = &results[0];
    assert!(*skipped >= 3, "{results:?}");
    assert!(committed.len() >= 3, "{results:?}");
    assert_eq!(*error, None);
    for other in &results[1..] {
        assert_eq!(other, &results[0]);
    }
}

#[tokio::test(start_paused = true)]
async fn a_save_blocks_its_caller_only_for_the_snapshot() {
    let storage = MemoryStorage::new();
    storage
        .faults()
        .set_latency(Operation::PutStream, SLOW_WRITE);
    let m = one(&storage, None, |b| b.every_n_steps(1));
    m.register_state("s", JsonState::new(vec![7u8; 1024]))
        .unwrap();
    let started = Instant::now();
    let pending = m.step().await.unwrap().expect("due");
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert!(m
        .recovery_points(&RecoveryFilter::all())
        .await
        .unwrap()
        .is_empty());
    let info = pending.wait().await.unwrap();
    assert!(started.elapsed() >= SLOW_WRITE);
    assert_eq!(info.step, Some(1));
}

#[tokio::test(start_paused = true)]
async fn overlap_skip_counts_and_reports_the_skipped_save_on_every_rank() {
    let storage = MemoryStorage::new();
    storage
        .faults()
        .set_latency(Operation::PutStream, SLOW_WRITE);
    let ranks = managers(&storage, 2, None, |b| b.every_n_steps(1));
    let results = on_ranks(ranks, |m: Manager| async move {
        m.register_state("s", JsonState::new(0)).unwrap();
        let mut events = m.events();
        let first = m.step().await.unwrap();
        let second = m.step().await.unwrap();
        assert!(first.is_some() && second.is_none());
        m.wait_for_pending().await.unwrap();
        let third = m.step().await.unwrap().expect("nothing in flight");
        third.wait().await.unwrap();
        drain(&mut events)
            .into_iter()
            .filter_map(|e| match e {
                CheckpointEvent::Skipped { step, reason } => Some((step, reason)),
                _ => None,
            })
            .collect::<Vec<_>>()
    })
    .await;
    for skipped in results {
        assert_eq!(skipped, [(Some(2), SkipReason::SaveInFlight)]);
    }
}

#[tokio::test(start_paused = true)]
async fn overlap_queue_keeps_one_save_waiting_and_skips_beyond_it() {
    let storage = MemoryStorage::new();
    storage
        .faults()
        .set_latency(Operation::PutStream, SLOW_WRITE);
    let ranks = managers(&storage, 2, None, |b| {
        b.every_n_steps(1).overlap(OverlapPolicy::Queue)
    });
    let results = on_ranks(ranks, |m: Manager| async move {
        m.register_state("s", JsonState::new(0)).unwrap();
        let mut events = m.events();
        let first = m.step().await.unwrap().expect("saves");
        let queued = m.step().await.unwrap().expect("queued");
        assert!(m.step().await.unwrap().is_none());
        let started = Instant::now();
        let second = queued.wait().await.unwrap();
        // The queued save started when the first ended.
        assert!(started.elapsed() >= SLOW_WRITE * 2 - Duration::from_secs(1));
        let first = first.wait().await.unwrap();
        assert!(first.sequence < second.sequence);
        let events = drain(&mut events);
        let skipped: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                CheckpointEvent::Skipped { reason, .. } => Some(*reason),
                _ => None,
            })
            .collect();
        assert_eq!(skipped, [SkipReason::QueueFull]);
        let CheckpointEvent::Committed { timings, .. } = events
            .iter()
            .filter(|e| matches!(e, CheckpointEvent::Committed { .. }))
            .nth(1)
            .unwrap()
        else {
            unreachable!()
        };
        assert!(timings.queued >= SLOW_WRITE - Duration::from_secs(1));
        second.name
    })
    .await;
    assert_eq!(results[0], results[1]);
}

#[tokio::test(start_paused = true)]
async fn overlap_wait_blocks_the_next_save_until_the_one_in_flight_ends() {
    let storage = MemoryStorage::new();
    storage
        .faults()
        .set_latency(Operation::PutStream, SLOW_WRITE);
    let ranks = managers(&storage, 2, None, |b| {
        b.every_n_steps(1).overlap(OverlapPolicy::Wait)
    });
    on_ranks(ranks, |m: Manager| async move {
        m.register_state("s", JsonState::new(0)).unwrap();
        let started = Instant::now();
        let _first = m.step().await.unwrap().expect("saves");
        let second = m.step().await.unwrap().expect("waits, then saves");
        assert!(started.elapsed() >= SLOW_WRITE);
        second.wait().await.unwrap();
    })
    .await;
    let m = one(&storage, None, |b| b);
    assert_eq!(
        m.recovery_points(&RecoveryFilter::all())
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_snapshot_on_one_rank_fails_the_checkpoint_on_every_rank() {
    let storage = MemoryStorage::new();
    let ranks = managers(&storage, 2, None, |b| b.prefix("run"));
    on_ranks(ranks, |m: Manager| async move {
        let rank = m.checkpoint().rank();
        let fail = std::sync::Arc::new(Mutex::new(false));
        m.register_state("good", JsonState::new(rank)).unwrap();
        m.register_state("flaky", Failing(fail.clone())).unwrap();
        m.create_checkpoint(None)
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();

        let mut events = m.events();
        *fail.lock().unwrap() = rank == 1;
        let outcome = m.create_checkpoint(None).await;
        let failed_name = "run/ckpt-0000000002";
        if rank == 1 {
            let Err(ManagerError::State(e)) = outcome else {
                panic!("rank 1's snapshot failed: {outcome:?}");
            };
            assert_eq!(e.state(), "flaky");
            let err = m.wait_for_pending().await.unwrap_err();
            assert!(matches!(err, ManagerError::SaveFailed { .. }));
        } else {
            let err = outcome.unwrap().wait().await.unwrap_err();
            let ManagerError::SaveFailed { name, source } = err else {
                panic!("a failed save")
            };
            assert_eq!(name, failed_name);
            assert!(source.to_string().contains("rank"), "{source}");
        }
        let events = drain(&mut events);
        assert!(events
            .iter()
            .any(|e| matches!(e, CheckpointEvent::Failed { name, .. } if name == failed_name)));
        assert!(m.last_error().is_some());
        // The previous checkpoint is intact and restorable; the next save works.
        *fail.lock().unwrap() = false;
        let report = m.restore_latest().await.unwrap().unwrap();
        assert_eq!(report.point.name, "run/ckpt-0000000001");
        let next = m
            .create_checkpoint(None)
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        assert_eq!(next.sequence, Some(2));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_storage_failure_fails_the_save_everywhere_and_events_say_so() {
    let storage = MemoryStorage::new();
    let ranks = managers(&storage, 2, None, |b| b.prefix("run").every_n_steps(1));
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let storage2 = storage.clone();
    on_ranks(ranks, move |m: Manager| {
        let barrier = barrier.clone();
        let storage = storage2.clone();
        async move {
            m.register_state("s", JsonState::new(1)).unwrap();
            m.step().await.unwrap().unwrap().wait().await.unwrap();
            if barrier.wait().await.is_leader() {
                storage
                    .faults()
                    .fail_next(Operation::PutStream, 1_000)
                    .permanent();
            }
            barrier.wait().await;
            let mut events = m.events();
            let err = m.step().await.unwrap().unwrap().wait().await.unwrap_err();
            assert!(matches!(err, ManagerError::SaveFailed { .. }));
            let events = drain(&mut events);
            assert!(matches!(
                events[0],
                CheckpointEvent::Started { sequence: 2, .. }
            ));
            assert!(matches!(events[1], CheckpointEvent::Failed { .. }));
        }
    })
    .await;
    storage.faults().clear();
    let m = one(&storage, None, |b| b.prefix("run"));
    let points = m.recovery_points(&RecoveryFilter::all()).await.unwrap();
    assert_eq!(names(&points), ["run/ckpt-0000000001-step-1"]);
}

#[tokio::test(start_paused = true)]
async fn retention_keeps_the_last_n_after_each_commit_and_reports_deletions() {
    let storage = MemoryStorage::new();
    let m = one(&storage, None, |b| {
        b.prefix("run")
            .retention(RetentionPolicy::keep_all().keep_last(2))
    });
    m.register_state("s", JsonState::new(0)).unwrap();
    let mut events = m.events();
    for _ in 0..4 {
        m.create_checkpoint(None)
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
    }
    let points = m.recovery_points(&RecoveryFilter::all()).await.unwrap();
    assert_eq!(
        names(&points),
        ["run/ckpt-0000000004", "run/ckpt-0000000003"]
    );
    let deleted: Vec<Vec<String>> = drain(&mut events)
        .into_iter()
        .filter_map(|e| match e {
            CheckpointEvent::Deleted { names } => Some(names),
            _ => None,
        })
        .collect();
    assert_eq!(
        deleted,
        [
            vec!["run/ckpt-0000000001".to_string()],
            vec!["run/ckpt-0000000002".to_string()]
        ]
    );
    // Nothing of the deleted checkpoints is left in the storage.
    assert!(storage
        .keys()
        .iter()
        .all(|k| !k.contains("0000000001") && !k.contains("0000000002")));
}

#[tokio::test(start_paused = true)]
async fn retention_by_age_reads_the_injected_wall_clock() {
    let storage = MemoryStorage::new();
    let clock = ManualClock::new(wall_start());
    let m = one(&storage, Some(clock.clone()), |b| {
        b.prefix("run")
            .retention(RetentionPolicy::keep_all().keep_for(Duration::from_secs(7 * 86_400)))
    });
    m.register_state("s", JsonState::new(0)).unwrap();
    for _ in 0..3 {
        m.create_checkpoint(None)
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        clock.advance(Duration::from_secs(3 * 86_400));
    }
    // Ages now 9, 6 and 3 days: the first is gone (after the third commit it
    // was 6 days old, so it went on demand).
    let report = m.apply_retention().await.unwrap();
    assert_eq!(report.removed, ["run/ckpt-0000000001"]);
    assert_eq!(report.kept, ["run/ckpt-0000000003", "run/ckpt-0000000002"]);
    // Much later everything is old, but the newest is always kept.
    clock.advance(Duration::from_secs(30 * 86_400));
    let report = m.apply_retention().await.unwrap();
    assert_eq!(report.removed, ["run/ckpt-0000000002"]);
    assert_eq!(report.kept, ["run/ckpt-0000000003"]);
    assert!(wall_start() > UNIX_EPOCH);
}

#[tokio::test(start_paused = true)]
async fn retention_never_touches_other_prefixes() {
    let storage = MemoryStorage::new();
    let other = one(&storage, None, |b| b.prefix("other"));
    other.register_state("s", JsonState::new(0)).unwrap();
    other
        .create_checkpoint(None)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    let m = one(&storage, None, |b| {
        b.prefix("run")
            .retention(RetentionPolicy::keep_all().keep_last(1))
    });
    m.register_state("s", JsonState::new(0)).unwrap();
    for _ in 0..2 {
        m.create_checkpoint(None)
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
    }
    // The sequence counts every checkpoint of the storage.
    assert_eq!(
        names(&m.recovery_points(&RecoveryFilter::all()).await.unwrap()),
        ["run/ckpt-0000000003"]
    );
    assert_eq!(
        names(&other.recovery_points(&RecoveryFilter::all()).await.unwrap()),
        ["other/ckpt-0000000001"]
    );
}

#[tokio::test(start_paused = true)]
async fn stop_waits_for_the_save_in_flight() {
    let storage = MemoryStorage::new();
    storage
        .faults()
        .set_latency(Operation::PutStream, SLOW_WRITE);
    let m = one(&storage, None, |b| b.interval(Duration::from_secs(10)));
    m.register_state("s", JsonState::new(0)).unwrap();
    let schedule = m.start();
    tokio::time::sleep(Duration::from_secs(11)).await; // one save in flight
    let started = Instant::now();
    let saved = schedule
        .stop(false)
        .await
        .unwrap()
        .expect("the save in flight");
    assert!(started.elapsed() >= SLOW_WRITE - Duration::from_secs(2));
    assert_eq!(saved.sequence, Some(1));
}

#[tokio::test(start_paused = true)]
async fn bad_input_is_a_clear_error() {
    let storage = MemoryStorage::new();
    let build = |f: fn(manager_common::Builder) -> manager_common::Builder| {
        let rank = steadfast::coordinator::InMemoryCoordinator::new(1).remove(0);
        let ckpt = manager_common::checkpoint(storage.clone(), rank, None);
        f(CheckpointManager::builder(ckpt)).build()
    };
    let err = build(|b| b.interval(Duration::ZERO)).unwrap_err();
    assert_eq!(err.field(), "checkpoint_interval");
    assert!(err.to_string().contains("zero"), "{err}");
    let err = build(|b| b.every_n_steps(0)).unwrap_err();
    assert_eq!(err.field(), "checkpoint_every_n_steps");
    let err = build(|b| b.prefix("a//b")).unwrap_err();
    assert_eq!(err.field(), "checkpoint_prefix");

    let m = one(&storage, None, |b| b);
    let err = m
        .register_state("agent state", JsonState::new(0))
        .unwrap_err();
    assert!(
        matches!(err, ManagerError::InvalidStateName { ref name, .. } if name == "agent state")
    );
    assert!(err.to_string().contains("agent state"));
    assert!(m.register_state("rank/x", JsonState::new(0)).is_err());
    m.register_state("agent_state", JsonState::new(0)).unwrap();
    let err = m
        .register_state("agent_state", JsonState::new(1))
        .unwrap_err();
    assert!(matches!(err, ManagerError::DuplicateState { .. }), "{err}");
    let err = m.create_checkpoint(Some("no/slash")).await.unwrap_err();
    assert!(matches!(err, ManagerError::InvalidLabel { .. }), "{err}");
    // Nothing was saved by any of it.
    assert!(storage.is_empty());
    assert_eq!(m.states(), ["agent_state"]);
}

#[tokio::test(start_paused = true)]
async fn a_lagging_event_stream_is_told_what_it_missed() {
    let storage = MemoryStorage::new();
    let m = one(&storage, None, |b| b.every_n_steps(1));
    m.register_state("s", JsonState::new(0)).unwrap();
    let mut events = m.events();
    for _ in 0..(steadfast::manager::EVENT_CAPACITY / 2 + 10) {
        m.step().await.unwrap().unwrap().wait().await.unwrap();
    }
    assert!(matches!(events.next().await, Some(CheckpointEvent::Lagged { missed }) if missed > 0));
}

#[tokio::test(start_paused = true)]
async fn a_config_file_sets_every_key_of_the_manager() {
    let config: CheckpointManagerConfig = serde_json::from_str(
        r#"{
            "checkpoint_interval": "5m",
            "checkpoint_every_n_steps": 1000,
            "checkpoint_retention": "7d",
            "checkpoint_keep_last": 5,
            "checkpoint_compression": "zstd:1",
            "checkpoint_prefix": "run-1",
            "checkpoint_overlap": "queue",
            "checkpoint_save_timeout": "2m",
            "checkpoint_load_timeout": "10m"
        }"#,
    )
    .unwrap();
    let storage = MemoryStorage::new();
    let m = one(&storage, None, |b| b.config(&config));
    assert_eq!(m.config(), &config);
    assert_eq!(m.config().interval, Some(Duration::from_secs(300)));
    assert_eq!(m.config().overlap, OverlapPolicy::Queue);
    m.register_state("s", JsonState::new(0)).unwrap();
    let schedule = m.start();
    tokio::time::sleep(Duration::from_secs(301)).await;
    let saved = schedule.stop(false).await.unwrap().unwrap();
    assert_eq!(saved.name, "run-1/ckpt-0000000001");
}

#[tokio::test(start_paused = true)]
async fn every_rank_stops_with_the_same_final_checkpoint() {
    let storage = MemoryStorage::new();
    let ranks = managers(&storage, 3, None, |b| {
        b.prefix("run").interval(Duration::from_secs(60))
    });
    let finals = on_ranks(ranks, |m: Manager| async move {
        m.register_state("s", JsonState::new(m.checkpoint().rank()))
            .unwrap();
        let schedule = m.start();
        tokio::time::sleep(Duration::from_secs(150)).await;
        schedule.stop(true).await.unwrap().unwrap()
    })
    .await;
    for info in &finals {
        assert_eq!(info, &finals[0]);
    }
    assert_eq!(finals[0].name, "run/ckpt-0000000003-final");
    assert_eq!(finals[0].world_size, 3);
}

#[tokio::test(start_paused = true)]
async fn a_rank_that_asks_for_a_save_rank_zero_skipped_is_out_of_step() {
    let storage = MemoryStorage::new();
    storage
        .faults()
        .set_latency(Operation::PutStream, SLOW_WRITE);
    let ranks = managers(&storage, 2, None, |b| b.every_n_steps(1));
    let outcomes = on_ranks(ranks, |m: Manager| async move {
        m.register_state("s", JsonState::new(0)).unwrap();
        let first = m.step().await.unwrap().unwrap();
        // Rank 0 steps (and skips: a save is in flight); rank 1 calls the
        // manager differently and must not drift silently.
        let second = if m.checkpoint().rank() == 0 {
            m.step().await.map(|p| p.is_some())
        } else {
            m.create_checkpoint(None).await.map(|_| true)
        };
        first.wait().await.unwrap();
        second
    })
    .await;
    assert!(matches!(outcomes[0], Ok(false)));
    assert!(
        matches!(outcomes[1], Err(ManagerError::OutOfStep { rank: 1, .. })),
        "{:?}",
        outcomes[1]
    );
}

#[tokio::test(start_paused = true)]
async fn a_manager_works_over_dyn_storage_on_the_local_file_system() {
    let dir = tempfile::tempdir().unwrap();
    let location = steadfast::manager::StorageLocation::Local(dir.path().to_path_buf());
    let storage = location.open().await.unwrap();
    let rank = steadfast::coordinator::InMemoryCoordinator::new(1).remove(0);
    let ckpt = steadfast::checkpoint::DistributedCheckpoint::new(
        storage,
        rank,
        manager_common::policy(),
        steadfast::checkpoint::CheckpointOptions::default(),
    );
    let m = CheckpointManager::builder(ckpt)
        .prefix("run")
        .every_n_steps(2)
        .build()
        .unwrap();
    let value = JsonState::new(0u64);
    m.register_state("value", value.clone()).unwrap();
    for v in 1..=4 {
        value.set(v);
        if let Some(pending) = m.step().await.unwrap() {
            pending.wait().await.unwrap();
        }
    }
    value.set(0);
    let report = m.restore_latest().await.unwrap().unwrap();
    assert_eq!(report.point.name, "run/ckpt-0000000002-step-4");
    assert_eq!(value.get(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_retention_that_cannot_delete_is_reported_and_deletes_nothing_visible() {
    let storage = MemoryStorage::new();
    let m = one(&storage, None, |b| {
        b.prefix("run")
            .retention(RetentionPolicy::keep_all().keep_last(1))
    });
    m.register_state("s", JsonState::new(0)).unwrap();
    m.create_checkpoint(None)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    storage
        .faults()
        .fail_next(Operation::Delete, 1_000)
        .permanent();
    m.create_checkpoint(None)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert!(m.last_error().is_some());
    storage.faults().clear();
    let points = m.recovery_points(&RecoveryFilter::all()).await.unwrap();
    assert_eq!(points.len(), 2);
    m.restore(&points[1]).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn ticks_and_steps_together_save_the_same_checkpoints_in_the_same_order_on_every_rank() {
    let storage = MemoryStorage::new();
    storage
        .faults()
        .set_latency(Operation::PutStream, Duration::from_secs(20));
    let ranks = managers(&storage, 3, None, |b| {
        b.prefix("run")
            .interval(Duration::from_secs(60))
            .every_n_steps(5)
            .overlap(OverlapPolicy::Queue)
    });
    let results = on_ranks(ranks, |m: Manager| async move {
        m.register_state("s", JsonState::new(m.checkpoint().rank()))
            .unwrap();
        let mut events = m.events();
        let schedule = m.start();
        for _ in 0..60 {
            tokio::time::sleep(Duration::from_secs(7)).await;
            m.step().await.unwrap();
        }
        schedule.stop(true).await.unwrap();
        let mut committed = Vec::new();
        let mut skipped = 0;
        for event in drain(&mut events) {
            match event {
                CheckpointEvent::Committed { info, .. } => committed.push(info.name),
                CheckpointEvent::Skipped { .. } => skipped += 1,
                CheckpointEvent::Failed { error, .. } => panic!("{error}"),
                _ => {}
            }
        }
        (committed, skipped, m.last_error().map(|e| e.to_string()))
    })
    .await;
    let (committed, _, error) = &results[0];
    assert_eq!(*error, None);
    // Saves from both streams: named with steps, some from ticks between them.
    assert!(committed.len() > 10, "{committed:?}");
    assert!(committed.last().unwrap().ends_with("-final"));
    for other in &results[1..] {
        assert_eq!(other, &results[0]);
    }
}
