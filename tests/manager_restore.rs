//! Restores by the checkpoint manager: recovery points and their filters,
//! restore_before and restore_step, restore_latest falling back past a
//! corrupted or truncated newest checkpoint and saying why, integrity
//! checks, load timeouts, and resharding to another world size.

mod manager_common;

use std::time::Duration;

use manager_common::{managers, on_ranks, one, wall_start, Manager};
use steadfast::checkpoint::{manifest_key, ManualClock};
use steadfast::manager::{
    FnCheck, IntegrityVerdict, JsonState, ManagerError, NonEmpty, RecoveryFilter, RecoveryPoint,
};
use steadfast::storage::testing::Operation;
use steadfast::storage::{CheckpointStorage, MemoryStorage};

/// Saves checkpoints of `value` = 1, 2, 3 (steps 1, 2, 3; a minute apart
/// on the manual clock); returns the manager and its state.
async fn three_checkpoints(
    storage: &MemoryStorage,
    clock: &ManualClock,
    setup: impl Fn(manager_common::Builder) -> manager_common::Builder,
) -> (Manager, JsonState<u64>) {
    let m = one(storage, Some(clock.clone()), move |b| {
        setup(b.prefix("run").every_n_steps(1))
    });
    let value = JsonState::new(0u64);
    m.register_state("value", value.clone()).unwrap();
    for v in 1..=3 {
        value.set(v);
        m.step().await.unwrap().unwrap().wait().await.unwrap();
        clock.advance(Duration::from_secs(60));
    }
    (m, value)
}

/// The key of the shard of the checkpoint `name`.
fn shard_key(storage: &MemoryStorage, name: &str) -> String {
    storage
        .keys()
        .into_iter()
        .find(|k| k.starts_with(&format!("{name}/")) && !k.ends_with("metadata.json"))
        .unwrap()
}

async fn flip_last_byte(storage: &MemoryStorage, key: &str) {
    let mut bytes = storage.get(key).await.unwrap().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    storage.put(key, bytes.into()).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn restore_latest_restores_the_newest_and_sets_the_step() {
    let storage = MemoryStorage::new();
    let clock = ManualClock::new(wall_start());
    let (m, value) = three_checkpoints(&storage, &clock, |b| b).await;
    value.set(99);
    let report = m.restore_latest().await.unwrap().unwrap();
    assert_eq!(value.get(), 3);
    assert_eq!(report.point.name, "run/ckpt-0000000003-step-3");
    assert_eq!(report.point.sequence, Some(3));
    assert_eq!(report.states, ["value"]);
    assert!(report.skipped.is_empty());
    assert!(!report.resharded);
    assert_eq!(m.current_step(), 3);
}

#[tokio::test(start_paused = true)]
async fn restore_before_restore_step_and_filters_pick_the_right_point() {
    let storage = MemoryStorage::new();
    let clock = ManualClock::new(wall_start());
    let (m, value) = three_checkpoints(&storage, &clock, |b| b).await;
    let points = m
        .recovery_points(&RecoveryFilter::all().committed_between(
            wall_start() + Duration::from_secs(30),
            wall_start() + Duration::from_secs(150),
        ))
        .await
        .unwrap();
    let steps: Vec<_> = points.iter().map(|p| p.step).collect();
    assert_eq!(steps, [Some(3), Some(2)]);
    assert_eq!(
        points[0].committed_at,
        wall_start() + Duration::from_secs(120)
    );

    m.restore_before(wall_start() + Duration::from_secs(61))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(value.get(), 2);
    assert!(m.restore_before(wall_start()).await.unwrap().is_none());

    m.restore_step(1).await.unwrap().unwrap();
    assert_eq!(value.get(), 1);
    assert_eq!(m.current_step(), 1);
    assert!(m.restore_step(4).await.unwrap().is_none());

    // After going back, what is saved next is the newest, by sequence.
    value.set(10);
    let next = m
        .create_checkpoint(Some("branch"))
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(next.name, "run/ckpt-0000000004-step-1-branch");
    value.set(0);
    let report = m.restore_latest().await.unwrap().unwrap();
    assert_eq!(report.point.label.as_deref(), Some("branch"));
    assert_eq!(value.get(), 10);
    let labelled = m
        .recovery_points(&RecoveryFilter::all().label("branch"))
        .await
        .unwrap();
    assert_eq!(labelled.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn restore_latest_falls_back_past_a_flipped_byte_and_says_why() {
    let storage = MemoryStorage::new();
    let clock = ManualClock::new(wall_start());
    let (m, value) = three_checkpoints(&storage, &clock, |b| b).await;
    let newest = "run/ckpt-0000000003-step-3";
    flip_last_byte(&storage, &shard_key(&storage, newest)).await;
    value.set(99);
    let report = m.restore_latest().await.unwrap().unwrap();
    assert_eq!(report.point.name, "run/ckpt-0000000002-step-2");
    assert_eq!(value.get(), 2);
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].0, newest);
    assert!(
        report.skipped[0].1.contains("corrupt"),
        "{:?}",
        report.skipped
    );
}

#[tokio::test(start_paused = true)]
async fn restore_latest_falls_back_past_a_truncated_manifest_and_says_why() {
    let storage = MemoryStorage::new();
    let clock = ManualClock::new(wall_start());
    let (m, value) = three_checkpoints(&storage, &clock, |b| b).await;
    let newest = "run/ckpt-0000000003-step-3";
    let key = manifest_key(newest);
    let bytes = storage.get(&key).await.unwrap();
    storage
        .put(&key, bytes.slice(..bytes.len() / 2))
        .await
        .unwrap();
    value.set(99);
    let report = m.restore_latest().await.unwrap().unwrap();
    assert_eq!(report.point.name, "run/ckpt-0000000002-step-2");
    assert_eq!(value.get(), 2);
    assert_eq!(report.skipped.len(), 1, "{:?}", report.skipped);
    assert_eq!(report.skipped[0].0, newest);
    assert!(!report.skipped[0].1.is_empty());
}

#[tokio::test(start_paused = true)]
async fn when_nothing_verifies_nothing_is_restored_and_every_reason_is_given() {
    let storage = MemoryStorage::new();
    let clock = ManualClock::new(wall_start());
    let (m, value) = three_checkpoints(&storage, &clock, |b| b).await;
    for name in [
        "run/ckpt-0000000001-step-1",
        "run/ckpt-0000000002-step-2",
        "run/ckpt-0000000003-step-3",
    ] {
        flip_last_byte(&storage, &shard_key(&storage, name)).await;
    }
    value.set(99);
    let err = m.restore_latest().await.unwrap_err();
    let ManagerError::NothingRestorable { skipped } = &err else {
        panic!("{err}");
    };
    assert_eq!(skipped.len(), 3);
    assert_eq!(skipped[0].0, "run/ckpt-0000000003-step-3");
    assert_eq!(value.get(), 99);
}

#[tokio::test(start_paused = true)]
async fn a_missing_state_is_a_reason_to_fall_back() {
    let storage = MemoryStorage::new();
    let clock = ManualClock::new(wall_start());
    let (m, value) = three_checkpoints(&storage, &clock, |b| b).await;
    // A state registered now is in no checkpoint: nothing verifies, and the
    // other state is left alone.
    m.register_state("optimizer", JsonState::new(5u32)).unwrap();
    value.set(99);
    let err = m.restore_latest().await.unwrap_err();
    assert!(err.to_string().contains("optimizer"), "{err}");
    assert_eq!(value.get(), 99);
}

#[tokio::test(start_paused = true)]
async fn an_integrity_check_that_rejects_makes_the_restore_fall_back() {
    let storage = MemoryStorage::new();
    let clock = ManualClock::new(wall_start());
    fn value_below_3(_: &RecoveryPoint, _: &str, bytes: &[u8]) -> IntegrityVerdict {
        let value: u64 = serde_json::from_slice(bytes).unwrap_or(u64::MAX);
        if value >= 3 {
            IntegrityVerdict::Reject(format!("value {value} is out of range"))
        } else if value == 2 {
            IntegrityVerdict::Warn("value 2 is suspicious".into())
        } else {
            IntegrityVerdict::Accept
        }
    }
    let (m, value) = three_checkpoints(&storage, &clock, |b| {
        b.integrity_check(NonEmpty)
            .integrity_check(FnCheck::new("value_below_3", value_below_3))
    })
    .await;
    value.set(99);
    let report = m.restore_latest().await.unwrap().unwrap();
    assert_eq!(value.get(), 2);
    assert_eq!(report.skipped[0].0, "run/ckpt-0000000003-step-3");
    assert!(report.skipped[0].1.contains("value 3 is out of range"));
    assert_eq!(report.warnings.len(), 1);
    assert!(report.warnings[0].contains("value 2 is suspicious"));

    // restore() of a rejected point is the rejection, and restores nothing.
    let newest = m
        .recovery_points(&RecoveryFilter::all())
        .await
        .unwrap()
        .remove(0);
    let err = m.restore(&newest).await.unwrap_err();
    assert!(matches!(err, ManagerError::IntegrityRejected(_)), "{err}");
    assert_eq!(value.get(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_slow_load_is_bounded_by_the_load_timeout() {
    let storage = MemoryStorage::new();
    let clock = ManualClock::new(wall_start());
    let (_, _) = three_checkpoints(&storage, &clock, |b| b).await;
    let m = one(&storage, None, |b| {
        b.prefix("run").load_timeout(Duration::from_secs(5))
    });
    let value = JsonState::new(0u64);
    m.register_state("value", value.clone()).unwrap();
    let newest = m
        .recovery_points(&RecoveryFilter::all())
        .await
        .unwrap()
        .remove(0);
    storage
        .faults()
        .set_latency(Operation::GetStream, Duration::from_secs(60));
    let err = m.restore(&newest).await.unwrap_err();
    assert!(
        matches!(err, ManagerError::LoadTimeout { after, .. } if after == Duration::from_secs(5)),
        "{err}"
    );
    assert!(err.to_string().contains("load timeout"));
    assert_eq!(value.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_restore_at_another_world_size_is_resharded() {
    let storage = MemoryStorage::new();
    let ranks = managers(&storage, 2, None, |b| b.prefix("run"));
    on_ranks(ranks, |m: Manager| async move {
        let rank = m.checkpoint().rank() as u64;
        m.register_state("shard", JsonState::new(100 + rank))
            .unwrap();
        m.create_checkpoint(None)
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
    })
    .await;
    let ranks = managers(&storage, 3, None, |b| b.prefix("run"));
    let reports = on_ranks(ranks, |m: Manager| async move {
        let value = JsonState::new(0u64);
        m.register_state("shard", value.clone()).unwrap();
        let report = m.restore_latest().await.unwrap().unwrap();
        (value.get(), report.resharded, report.sources)
    })
    .await;
    assert_eq!(reports[0], (100, true, vec![("shard".to_string(), 0)]));
    assert_eq!(reports[1], (101, true, vec![("shard".to_string(), 1)]));
    assert_eq!(reports[2], (100, true, vec![("shard".to_string(), 0)]));
}

#[tokio::test(start_paused = true)]
async fn a_point_damaged_on_one_rank_is_restored_on_no_rank() {
    let storage = MemoryStorage::new();
    let ranks = managers(&storage, 2, None, |b| b.prefix("run"));
    on_ranks(ranks, |m: Manager| async move {
        let rank = m.checkpoint().rank() as u64;
        let value = JsonState::new(rank);
        m.register_state("v", value.clone()).unwrap();
        m.create_checkpoint(None)
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        value.set(10 + rank);
        m.create_checkpoint(None)
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
    })
    .await;
    // Damage rank 1's shard of the newest checkpoint only.
    let newest = "run/ckpt-0000000002";
    let bytes = storage.get(&manifest_key(newest)).await.unwrap();
    let manifest = steadfast::checkpoint::Manifest::from_bytes(newest, &bytes).unwrap();
    let key = manifest.shard(1).unwrap().key.clone();
    flip_last_byte(&storage, &key).await;
    let ranks = managers(&storage, 2, None, |b| b.prefix("run"));
    let restored = on_ranks(ranks, |m: Manager| async move {
        let value = JsonState::new(99u64);
        m.register_state("v", value.clone()).unwrap();
        let report = m.restore_latest().await.unwrap().unwrap();
        (value.get(), report.point.name, report.skipped)
    })
    .await;
    assert_eq!(restored[0].0, 0);
    assert_eq!(restored[1].0, 1);
    for (_, name, skipped) in &restored {
        assert_eq!(name, "run/ckpt-0000000001");
        assert_eq!(skipped[0].0, newest);
    }
    assert!(restored[0].2[0].1.contains("rank 1"), "{:?}", restored[0].2);
}

#[tokio::test(start_paused = true)]
async fn retention_never_deletes_a_checkpoint_being_loaded() {
    let storage = MemoryStorage::new();
    let clock = ManualClock::new(wall_start());
    let (_, _) = three_checkpoints(&storage, &clock, |b| b).await;
    let m = one(&storage, None, |b| {
        b.prefix("run")
            .retention(steadfast::manager::RetentionPolicy::keep_all().keep_last(1))
    });
    let value = JsonState::new(0u64);
    m.register_state("value", value.clone()).unwrap();
    let oldest = m
        .recovery_points(&RecoveryFilter::all())
        .await
        .unwrap()
        .remove(2);
    storage
        .faults()
        .set_latency(Operation::GetStream, Duration::from_secs(10));
    let restoring = tokio::spawn({
        let m = m.clone();
        async move { m.restore(&oldest).await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    storage
        .faults()
        .set_latency(Operation::GetStream, Duration::ZERO);
    let report = m.apply_retention().await.unwrap();
    assert_eq!(report.removed, ["run/ckpt-0000000002-step-2"]);
    assert_eq!(
        report.kept,
        ["run/ckpt-0000000003-step-3", "run/ckpt-0000000001-step-1"]
    );
    restoring.await.unwrap().unwrap();
    assert_eq!(value.get(), 1);
    let report = m.apply_retention().await.unwrap();
    assert_eq!(report.removed, ["run/ckpt-0000000001-step-1"]);
}

#[tokio::test(start_paused = true)]
async fn restore_latest_falls_back_past_an_incomplete_checkpoint() {
    let storage = MemoryStorage::new();
    let clock = ManualClock::new(wall_start());
    let (m, value) = three_checkpoints(&storage, &clock, |b| b).await;
    let newest = "run/ckpt-0000000003-step-3";
    storage.delete(&shard_key(&storage, newest)).await.unwrap();
    value.set(99);
    let report = m.restore_latest().await.unwrap().unwrap();
    assert_eq!(value.get(), 2);
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].0, newest);
    assert!(
        report.skipped[0].1.contains("shard"),
        "{:?}",
        report.skipped
    );
}

#[tokio::test(start_paused = true)]
async fn every_newer_checkpoint_passed_over_is_listed_newest_first() {
    let storage = MemoryStorage::new();
    let clock = ManualClock::new(wall_start());
    let (m, value) = three_checkpoints(&storage, &clock, |b| b).await;
    let key = manifest_key("run/ckpt-0000000003-step-3");
    storage
        .put(&key, b"{\"format_".to_vec().into())
        .await
        .unwrap();
    flip_last_byte(&storage, &shard_key(&storage, "run/ckpt-0000000002-step-2")).await;
    value.set(99);
    let report = m.restore_latest().await.unwrap().unwrap();
    assert_eq!(value.get(), 1);
    let skipped: Vec<_> = report
        .skipped
        .iter()
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(
        skipped,
        ["run/ckpt-0000000003-step-3", "run/ckpt-0000000002-step-2"]
    );
}
