//! FaultToleranceHandler and CheckpointRollbackManager: retry by error kind,
//! timeouts, rollback of single objects and multi-shard checkpoints (with
//! failed deletes reported and logged), and saves that never damage the
//! previous version.

use std::error::Error as _;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use steadfast::checkpoint::{
    manifest_key, CheckpointError, CheckpointOptions, DistributedCheckpoint, LoadOptions,
    SaveOptions, ShardData,
};
use steadfast::coordinator::InMemoryCoordinator;
use steadfast::handler::{CheckpointRollbackManager, FaultToleranceHandler, RollbackTarget};
use steadfast::retry::{GiveUp, RetryError, RetryPolicy};
use steadfast::storage::testing::Operation;
use steadfast::storage::{CheckpointStorage, MemoryStorage, StorageError};
use steadfast::timeout::{TimeoutError, TimeoutHandler};
use tokio::time::Instant;

mod common;
use common::capture::Capture;

fn policy() -> RetryPolicy {
    RetryPolicy::builder()
        .max_retries(3)
        .initial_delay(Duration::from_millis(100))
        .max_delay(Duration::from_secs(1))
        .build()
        .unwrap()
}

fn handler(storage: &MemoryStorage) -> FaultToleranceHandler<MemoryStorage> {
    FaultToleranceHandler::new(storage.clone(), policy(), TimeoutHandler::default())
}

/// Returns `results` in order, one per call, counting the calls.
fn scripted<E: Send + 'static>(
    results: Vec<Result<u32, E>>,
) -> (Arc<Mutex<u32>>, impl FnMut() -> Result<u32, E>) {
    let calls = Arc::new(Mutex::new(0u32));
    let counter = Arc::clone(&calls);
    let mut results = results.into_iter();
    let op = move || {
        *counter.lock().unwrap() += 1;
        results.next().expect("no more scripted results")
    };
    (calls, op)
}

#[tokio::test(start_paused = true)]
async fn transient_io_errors_are_retried_with_backoff() {
    let h = handler(&MemoryStorage::new());
    let (calls, mut op) = scripted(vec![
        Err(io::Error::from(io::ErrorKind::ConnectionReset)),
        Err(io::Error::from(io::ErrorKind::TimedOut)),
        Ok(7),
    ]);
    let start = Instant::now();
    assert_eq!(
        h.execute_with_retry(|| std::future::ready(op()))
            .await
            .unwrap(),
        7
    );
    assert_eq!(*calls.lock().unwrap(), 3);
    // 100 ms, then 200 ms of backoff, on paused time.
    assert_eq!(start.elapsed(), Duration::from_millis(300));
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_are_not_retried() {
    let h = handler(&MemoryStorage::new());
    for kind in [
        io::ErrorKind::NotFound,
        io::ErrorKind::PermissionDenied,
        io::ErrorKind::InvalidData,
    ] {
        let (calls, mut op) = scripted(vec![Err(io::Error::from(kind)), Ok(1)]);
        let err = h
            .execute_with_retry(|| std::future::ready(op()))
            .await
            .unwrap_err();
        assert_eq!(err.attempts(), 1, "{kind:?}");
        assert_eq!(err.reason(), GiveUp::NotTransient);
        assert_eq!(err.inner().kind(), kind);
        assert_eq!(*calls.lock().unwrap(), 1);
    }
}

#[tokio::test(start_paused = true)]
async fn retries_run_out() {
    let h = handler(&MemoryStorage::new());
    let (calls, mut op) = scripted(
        (0..10)
            .map(|_| Err(io::Error::from(io::ErrorKind::Interrupted)))
            .collect(),
    );
    let err = h
        .execute_with_retry(|| std::future::ready(op()))
        .await
        .unwrap_err();
    assert_eq!(err.attempts(), 4);
    assert_eq!(err.reason(), GiveUp::Exhausted);
    assert_eq!(*calls.lock().unwrap(), 4);
    assert!(err.source().is_some(), "the caller's error is the source");
}

#[tokio::test(start_paused = true)]
async fn storage_errors_are_classified_by_kind() {
    let storage = MemoryStorage::new();
    let h = handler(&storage);
    // Two transient injected failures, then the write goes through.
    storage.faults().fail_next(Operation::Put, 2);
    h.execute_with_retry(|| storage.put("a", vec![1].into()))
        .await
        .unwrap();
    assert_eq!(storage.count(Operation::Put), 3);
    // A missing object is not retried.
    let err = h
        .execute_with_retry(|| storage.get("missing"))
        .await
        .unwrap_err();
    assert_eq!(err.attempts(), 1);
    assert!(matches!(err.inner(), StorageError::NotFound { .. }));
    // Neither is an invalid key.
    let err = h
        .execute_with_retry(|| storage.get("../x"))
        .await
        .unwrap_err();
    assert_eq!(err.attempts(), 1);
    assert!(matches!(err.inner(), StorageError::InvalidKey { .. }));
}

#[tokio::test(start_paused = true)]
async fn timeouts_bound_the_operation() {
    let h = handler(&MemoryStorage::new());
    let start = Instant::now();
    let slow = h
        .execute_with_timeout(
            tokio::time::sleep(Duration::from_secs(60)),
            Duration::from_secs(2),
        )
        .await;
    assert!(
        matches!(slow, Err(TimeoutError::Elapsed { after, .. }) if after == Duration::from_secs(2)),
        "{slow:?}"
    );
    assert_eq!(start.elapsed(), Duration::from_secs(2));

    let quick = h
        .execute_with_timeout(
            async {
                tokio::time::sleep(Duration::from_millis(500)).await;
                "done"
            },
            Duration::from_secs(2),
        )
        .await;
    assert_eq!(quick.unwrap(), "done");
}

#[tokio::test(start_paused = true)]
async fn rollback_of_a_single_object() {
    let storage = MemoryStorage::new();
    storage
        .put("models/next.bin", vec![1; 64].into())
        .await
        .unwrap();
    storage
        .put("models/current.bin", vec![2; 64].into())
        .await
        .unwrap();
    let report = handler(&storage)
        .rollback(RollbackTarget::file("models/next.bin"))
        .await;
    assert!(report.is_complete());
    assert_eq!(report.deleted, ["models/next.bin"]);
    assert_eq!(storage.keys(), ["models/current.bin"]);

    let report = handler(&storage)
        .rollback(RollbackTarget::file("../escape"))
        .await;
    assert!(
        matches!(report.failed.as_slice(), [(k, StorageError::InvalidKey { .. })] if k == "../escape")
    );
}

/// Saves a committed `world`-rank checkpoint `name` on `storage`.
async fn save_checkpoint(storage: &MemoryStorage, name: &'static str, world: usize) {
    let tasks: Vec<_> = InMemoryCoordinator::new(world)
        .into_iter()
        .map(|rank| {
            let ckpt = DistributedCheckpoint::new(
                storage.clone(),
                rank,
                policy(),
                CheckpointOptions::default(),
            );
            tokio::spawn(async move {
                let shard = ShardData::new()
                    .with_entry(format!("w{}", ckpt.rank()), vec![ckpt.rank() as u8; 16]);
                ckpt.save(name, &shard, SaveOptions::new()).await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn rollback_of_a_checkpoint_finds_every_object_by_listing() {
    let storage = MemoryStorage::new();
    save_checkpoint(&storage, "run/step-2", 3).await;
    save_checkpoint(&storage, "run/step-1", 2).await;
    // Objects with names no rank number predicts.
    storage
        .put("run/step-2/shard-00007-of-00003-stray.bin", vec![7].into())
        .await
        .unwrap();
    storage
        .put("run/step-2/optimizer.extra", vec![8].into())
        .await
        .unwrap();
    let before_other: Vec<String> = storage
        .keys()
        .into_iter()
        .filter(|k| k.starts_with("run/step-1/"))
        .collect();

    storage.clear_calls();
    let report = handler(&storage)
        .rollback(RollbackTarget::checkpoint("run/step-2"))
        .await;
    assert!(report.is_complete(), "{:?}", report.failed);
    assert_eq!(report.deleted.len(), 6);
    // The manifest went first: the first delete the storage saw.
    let deletes: Vec<String> = storage
        .calls()
        .into_iter()
        .filter(|c| c.operation == Operation::Delete)
        .map(|c| c.key)
        .collect();
    assert_eq!(deletes[0], manifest_key("run/step-2"));
    assert_eq!(report.deleted[0], manifest_key("run/step-2"));
    let after: Vec<String> = storage.keys();
    assert_eq!(after, before_other, "only the other checkpoint remains");
}

#[tokio::test(start_paused = true)]
async fn failed_deletes_are_reported_and_logged() {
    let storage = MemoryStorage::new();
    save_checkpoint(&storage, "ckpt", 3).await;
    let shards: Vec<String> = storage
        .keys()
        .into_iter()
        .filter(|k| k.contains("shard-"))
        .collect();
    // The manifest's delete goes through; the next one fails for good.
    storage.faults().fail_nth(Operation::Delete, 2).permanent();
    let logs = Capture::start();
    let report = handler(&storage)
        .rollback(RollbackTarget::checkpoint("ckpt"))
        .await;
    assert!(!report.is_complete());
    assert_eq!(report.failed.len(), 1);
    let (failed_key, error) = &report.failed[0];
    assert!(shards.contains(failed_key));
    assert!(matches!(
        error,
        StorageError::Injected {
            operation: "delete",
            transient: false,
            ..
        }
    ));
    assert_eq!(report.deleted.len(), 3);
    assert_eq!(
        storage.keys(),
        std::slice::from_ref(failed_key),
        "only the undeletable shard remains"
    );
    let errors = logs.at("steadfast::checkpoint", tracing::Level::ERROR);
    assert!(
        errors.iter().any(|event| event
            .fields
            .values()
            .any(|value| value.contains(failed_key.as_str()))),
        "{:?}",
        logs.events()
    );
}

#[tokio::test(start_paused = true)]
async fn a_manifest_that_cannot_be_deleted_keeps_the_checkpoint_whole() {
    let storage = MemoryStorage::new();
    save_checkpoint(&storage, "ckpt", 2).await;
    let before = storage.keys();
    storage.faults().fail_next(Operation::Delete, 1).permanent();
    let report = handler(&storage)
        .rollback(RollbackTarget::checkpoint("ckpt"))
        .await;
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, manifest_key("ckpt"));
    assert!(report.deleted.is_empty());
    assert_eq!(
        storage.keys(),
        before,
        "no shard of a visible checkpoint was deleted"
    );
    let rank = InMemoryCoordinator::new(2).remove(1);
    let ckpt = DistributedCheckpoint::new(storage, rank, policy(), CheckpointOptions::default());
    assert_eq!(
        ckpt.load("ckpt", LoadOptions::default()).await.unwrap(),
        vec![1; 16]
    );
}

#[tokio::test(start_paused = true)]
async fn transient_delete_failures_are_retried() {
    let storage = MemoryStorage::new();
    save_checkpoint(&storage, "ckpt", 2).await;
    storage.faults().fail_next(Operation::Delete, 2);
    let report = handler(&storage)
        .rollback(RollbackTarget::checkpoint("ckpt"))
        .await;
    assert!(report.is_complete(), "{:?}", report.failed);
    assert!(storage.is_empty());
}

fn manager(storage: &MemoryStorage) -> CheckpointRollbackManager<MemoryStorage> {
    CheckpointRollbackManager::new(storage.clone(), policy())
}

#[tokio::test(start_paused = true)]
async fn save_with_rollback_retries_transient_failures() {
    let storage = MemoryStorage::new();
    let m = manager(&storage);
    // The producer fails twice with transient errors.
    let (calls, mut op) = scripted(vec![
        Err(io::Error::from(io::ErrorKind::ConnectionAborted)),
        Err(io::Error::from(io::ErrorKind::TimedOut)),
        Ok(3),
    ]);
    let meta = m
        .save_with_rollback("state.bin", || {
            let result = op().map(|n| vec![n as u8; 10]);
            async move { result }
        })
        .await
        .unwrap();
    assert_eq!(*calls.lock().unwrap(), 3);
    assert_eq!(meta.size, 10);
    assert_eq!(storage.get("state.bin").await.unwrap(), vec![3; 10]);

    // The storage fails twice, transiently; the bytes are made only once.
    storage.faults().fail_next(Operation::PutStream, 2);
    let mut produced = 0;
    m.save_with_rollback("state.bin", || {
        produced += 1;
        async { Ok::<_, io::Error>(vec![4; 10]) }
    })
    .await
    .unwrap();
    assert_eq!(produced, 1);
    assert_eq!(storage.count(Operation::PutStream), 4);
    assert_eq!(storage.get("state.bin").await.unwrap(), vec![4; 10]);
}

#[tokio::test(start_paused = true)]
async fn a_permanent_failure_keeps_the_previous_version() {
    let storage = MemoryStorage::new();
    let m = manager(&storage);
    m.save_with_rollback("state.bin", || async { Ok::<_, io::Error>(b"v1".to_vec()) })
        .await
        .unwrap();

    // The producer fails for good.
    let err = m
        .save_with_rollback("state.bin", || async {
            Err::<Vec<u8>, _>(io::Error::from(io::ErrorKind::PermissionDenied))
        })
        .await
        .unwrap_err();
    match &err {
        CheckpointError::SaveFailed {
            name,
            failed_ranks,
            reason,
            ..
        } => {
            assert_eq!(name, "state.bin");
            assert!(failed_ranks.is_empty());
            assert!(reason.contains("after 1 attempt "), "{reason}");
        }
        other => panic!("expected SaveFailed, got {other:?}"),
    }
    let cause = err.source().and_then(|retry| retry.source()).unwrap();
    assert_eq!(
        cause.downcast_ref::<io::Error>().unwrap().kind(),
        io::ErrorKind::PermissionDenied
    );
    assert_eq!(storage.get("state.bin").await.unwrap(), &b"v1"[..]);

    // The storage fails for good.
    storage
        .faults()
        .fail_next(Operation::PutStream, 1)
        .permanent();
    let err = m
        .save_with_rollback("state.bin", || async { Ok::<_, io::Error>(b"v2".to_vec()) })
        .await
        .unwrap_err();
    assert!(matches!(err, CheckpointError::SaveFailed { ref name, .. } if name == "state.bin"));
    let retry = err
        .source()
        .unwrap()
        .downcast_ref::<RetryError<StorageError>>()
        .unwrap();
    assert!(matches!(
        retry.inner(),
        StorageError::Injected {
            transient: false,
            ..
        }
    ));
    assert_eq!(storage.get("state.bin").await.unwrap(), &b"v1"[..]);
    assert_eq!(storage.keys(), ["state.bin"], "nothing partial remains");
}

#[tokio::test(start_paused = true)]
async fn a_torn_write_keeps_the_previous_version() {
    let storage = MemoryStorage::new();
    let m = manager(&storage);
    m.save_with_rollback("state.bin", || async { Ok::<_, io::Error>(b"v1".to_vec()) })
        .await
        .unwrap();

    // Every attempt is torn: the save fails, v1 stays.
    storage.faults().tear_next(Operation::PutStream, 10);
    let err = m
        .save_with_rollback("state.bin", || async { Ok::<_, io::Error>(vec![2; 4096]) })
        .await
        .unwrap_err();
    assert!(matches!(err, CheckpointError::SaveFailed { .. }), "{err}");
    assert_eq!(storage.get("state.bin").await.unwrap(), &b"v1"[..]);
    assert_eq!(storage.keys(), ["state.bin"]);
    storage.faults().clear();

    // One torn attempt, then a whole one: v2 replaces v1 at once.
    storage.faults().tear_next(Operation::PutStream, 1);
    m.save_with_rollback("state.bin", || async { Ok::<_, io::Error>(vec![2; 4096]) })
        .await
        .unwrap();
    assert_eq!(storage.get("state.bin").await.unwrap(), vec![2; 4096]);
}

#[tokio::test(start_paused = true)]
async fn an_invalid_key_is_refused_before_anything_runs() {
    let storage = MemoryStorage::new();
    let mut ran = false;
    let err = manager(&storage)
        .save_with_rollback("/etc/passwd", || {
            ran = true;
            async { Ok::<_, io::Error>(vec![]) }
        })
        .await
        .unwrap_err();
    assert!(matches!(err, CheckpointError::InvalidName { .. }));
    assert!(!ran);
    assert!(storage.is_empty());
}
