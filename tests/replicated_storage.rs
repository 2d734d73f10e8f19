//! `ReplicatedStorage`: the storage conformance suite over three replicas
//! (in memory and in three directories), and checkpoints that survive a
//! replica that is down, slow, full or corrupting bytes, with read repair,
//! the scrub, quorum errors and the visibility rule.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use steadfast::checkpoint::{
    CheckpointOptions, DistributedCheckpoint, LoadOptions, SaveOptions, ShardData,
};
use steadfast::coordinator::InMemoryCoordinator;
use steadfast::retry::RetryPolicy;
use steadfast::storage::testing::Operation;
use steadfast::storage::{
    conformance, Bytes, CheckpointStorage, ConsistencyLevel, LocalFsStorage, MemoryStorage,
    ObjectMeta, ObjectStream, ObjectWriter, RepairOutcome, Replica, ReplicatedStorage,
    Result as StorageResult, StorageError,
};
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

/// Three in-memory replicas in domains a, b and c, and the storage over them.
fn three_in_memory(level: ConsistencyLevel) -> ([MemoryStorage; 3], ReplicatedStorage) {
    let replicas = [
        MemoryStorage::new(),
        MemoryStorage::new(),
        MemoryStorage::new(),
    ];
    let storage = ReplicatedStorage::builder()
        .replicas(
            replicas
                .iter()
                .zip(["a", "b", "c"])
                .map(|(r, d)| Replica::new(r.clone()).domain(d)),
        )
        .consistency(level)
        .build()
        .unwrap();
    (replicas, storage)
}

/// Fails every call of every operation on `replica`, permanently.
fn take_down(replica: &MemoryStorage) {
    for op in Operation::ALL {
        replica.faults().fail_next(op, u64::MAX).permanent();
    }
}

fn policy() -> RetryPolicy {
    RetryPolicy::builder()
        .max_retries(2)
        .initial_delay(Duration::from_millis(10))
        .max_delay(Duration::from_millis(50))
        .build()
        .unwrap()
}

fn ckpt<S: CheckpointStorage + Clone>(
    storage: &S,
) -> DistributedCheckpoint<S, InMemoryCoordinator> {
    let rank = InMemoryCoordinator::new(1).remove(0);
    DistributedCheckpoint::new(
        storage.clone(),
        rank,
        policy(),
        CheckpointOptions::default(),
    )
}

fn shard(seed: u8) -> ShardData {
    ShardData::new()
        .with_entry(
            "weights",
            (0..50_000u32)
                .map(|i| (i as u8) ^ seed)
                .collect::<Vec<u8>>(),
        )
        .with_entry("bias", vec![seed; 1000])
}

fn shard_bytes(seed: u8) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..50_000u32).map(|i| (i as u8) ^ seed).collect();
    bytes.extend(vec![seed; 1000]);
    bytes
}

/// Every key of `replica` with its stored bytes.
async fn contents(replica: &MemoryStorage) -> Vec<(String, Bytes)> {
    let mut out = Vec::new();
    for key in replica.keys() {
        out.push((key.clone(), replica.get(&key).await.unwrap()));
    }
    out
}

/// Flips one byte of what `replica` stores under `key`.
async fn flip_a_byte(replica: &MemoryStorage, key: &str, at: usize) {
    let mut bytes = replica.get(key).await.unwrap().to_vec();
    bytes[at] ^= 0x5a;
    replica.put(key, bytes.into()).await.unwrap();
}

// ---------------------------------------------------------------------------
// Conformance

#[tokio::test]
async fn three_memory_replicas_conform() {
    let (replicas, storage) = three_in_memory(ConsistencyLevel::Quorum);
    conformance::run_all(&storage).await;
    storage.wait_for_writes().await;
    storage.wait_for_repairs().await;
    for replica in &replicas {
        assert!(replica.is_empty(), "left behind: {:?}", replica.keys());
    }
}

#[tokio::test]
async fn three_memory_replicas_conform_through_arc_dyn_at_every_level() {
    for level in [ConsistencyLevel::Quorum, ConsistencyLevel::All] {
        let (_, storage) = three_in_memory(level);
        let shared: Arc<dyn CheckpointStorage> = Arc::new(storage);
        conformance::run_all(&shared).await;
    }
    let replicas = [
        MemoryStorage::new(),
        MemoryStorage::new(),
        MemoryStorage::new(),
    ];
    let one = ReplicatedStorage::builder()
        .replicas(replicas.iter().cloned().map(Replica::new))
        .consistency(ConsistencyLevel::One)
        .allow_put_if_absent_at_one(true)
        .build()
        .unwrap();
    conformance::run_all(&one).await;
}

fn three_directories() -> (tempfile::TempDir, [PathBuf; 3], ReplicatedStorage) {
    let dir = tempfile::tempdir().unwrap();
    let roots = ["a", "b", "c"].map(|d| dir.path().join(d));
    let storage = ReplicatedStorage::builder()
        .replicas(
            roots
                .iter()
                .zip(["disk-a", "disk-b", "disk-c"])
                .map(|(root, d)| Replica::new(LocalFsStorage::new(root).unwrap()).domain(d)),
        )
        .geo_distributed(true)
        .build()
        .unwrap();
    (dir, roots, storage)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_local_directories_conform() {
    let (_dir, _roots, storage) = three_directories();
    conformance::run_all(&storage).await;
}

// ---------------------------------------------------------------------------
// Checkpoints with one replica of three down, slow, full or corrupting

#[tokio::test(start_paused = true)]
async fn a_replica_down_does_not_stop_saves_and_loads_and_its_copies_are_repaired() {
    let (replicas, storage) = three_in_memory(ConsistencyLevel::Quorum);
    let ckpt = ckpt(&storage);
    take_down(&replicas[2]);
    ckpt.save("step-1", &shard(1), SaveOptions::new().step(1))
        .await
        .unwrap();
    assert_eq!(
        ckpt.load("step-1", LoadOptions::default()).await.unwrap(),
        shard_bytes(1)
    );
    assert_eq!(ckpt.latest().await.unwrap().unwrap().name, "step-1");
    assert!(replicas[2].is_empty());

    // Back up: the next load finds its copies missing and rewrites them.
    replicas[2].faults().clear();
    assert_eq!(
        ckpt.load("step-1", LoadOptions::default()).await.unwrap(),
        shard_bytes(1)
    );
    storage.wait_for_repairs().await;
    assert!(
        contents(&replicas[2]).await == contents(&replicas[0]).await,
        "replica 2 differs from replica 0"
    );
    let stats = storage.repair_stats();
    assert!(stats.repaired >= 2, "{stats:?}");
    assert_eq!(stats.failed, 0);
}

#[tokio::test(start_paused = true)]
async fn a_slow_replica_does_not_hold_up_acknowledged_writes() {
    let (replicas, storage) = three_in_memory(ConsistencyLevel::Quorum);
    let slow = Duration::from_secs(60);
    for op in [
        Operation::Put,
        Operation::PutStream,
        Operation::PutIfAbsent,
        Operation::Delete,
    ] {
        replicas[1].faults().set_latency(op, slow);
    }
    let started = Instant::now();
    storage
        .put("k", Bytes::from_static(b"value"))
        .await
        .unwrap();
    storage
        .put_if_absent("m", Bytes::from_static(b"manifest"))
        .await
        .unwrap();
    let mut writer = storage.put_stream("s").await.unwrap();
    writer.write(b"streamed").await.unwrap();
    writer.commit().await.unwrap();
    storage.delete("k").await.unwrap();
    assert!(
        started.elapsed() < slow,
        "acknowledged writes waited for the slow replica: {:?}",
        started.elapsed()
    );
    // The slow copies land in the background.
    assert!(!replicas[1].keys().contains(&"s".to_string()));
    storage.wait_for_writes().await;
    assert_eq!(replicas[1].keys(), ["m", "s"]);
    assert_eq!(replicas[0].keys(), ["m", "s"]);

    // A whole checkpoint saves and loads with the slow replica.
    let ckpt = ckpt(&storage);
    ckpt.save("step-1", &shard(2), SaveOptions::new())
        .await
        .unwrap();
    assert_eq!(
        ckpt.load("step-1", LoadOptions::default()).await.unwrap(),
        shard_bytes(2)
    );
}

/// A storage whose writes fail as a full disk does (`StorageFull`).
#[derive(Debug, Clone)]
struct Full(MemoryStorage);

fn no_space(key: &str, operation: &'static str) -> StorageError {
    StorageError::Io {
        key: key.to_string(),
        operation,
        source: io::Error::new(io::ErrorKind::StorageFull, "no space left on device"),
    }
}

#[async_trait]
impl CheckpointStorage for Full {
    async fn put(&self, key: &str, _: Bytes) -> StorageResult<()> {
        Err(no_space(key, "put"))
    }
    async fn put_if_absent(&self, key: &str, _: Bytes) -> StorageResult<()> {
        Err(no_space(key, "put_if_absent"))
    }
    async fn get(&self, key: &str) -> StorageResult<Bytes> {
        self.0.get(key).await
    }
    async fn head(&self, key: &str) -> StorageResult<ObjectMeta> {
        self.0.head(key).await
    }
    async fn delete(&self, key: &str) -> StorageResult<()> {
        self.0.delete(key).await
    }
    async fn list(&self, prefix: &str) -> StorageResult<Vec<ObjectMeta>> {
        self.0.list(prefix).await
    }
    async fn put_stream(&self, key: &str) -> StorageResult<Box<dyn ObjectWriter>> {
        Err(no_space(key, "put_stream"))
    }
    async fn get_stream(&self, key: &str) -> StorageResult<ObjectStream> {
        self.0.get_stream(key).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_full_replica_does_not_stop_saves_and_is_repaired_once_it_has_room() {
    let replicas = [
        MemoryStorage::new(),
        MemoryStorage::new(),
        MemoryStorage::new(),
    ];
    let full = Full(replicas[2].clone());
    let storage = ReplicatedStorage::builder()
        .replica(Replica::new(replicas[0].clone()))
        .replica(Replica::new(replicas[1].clone()))
        .replica(Replica::new(full))
        .build()
        .unwrap();
    let ckpt = ckpt(&storage);
    ckpt.save("step-1", &shard(3), SaveOptions::new())
        .await
        .unwrap();
    assert_eq!(
        ckpt.load("step-1", LoadOptions::default()).await.unwrap(),
        shard_bytes(3)
    );
    // Read repair tried and failed (no room): counted, not fatal.
    storage.wait_for_repairs().await;
    assert!(storage.repair_stats().failed >= 1);
    assert!(replicas[2].is_empty());

    // The same replica with room again: the scrub restores every copy.
    let healed = ReplicatedStorage::builder()
        .replicas(replicas.iter().cloned().map(Replica::new))
        .build()
        .unwrap();
    let report = healed.repair().await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.copies_rewritten(), replicas[0].len());
    assert!(
        contents(&replicas[2]).await == contents(&replicas[0]).await,
        "replica 2 differs from replica 0"
    );
}

#[tokio::test(start_paused = true)]
async fn a_corrupted_copy_is_never_returned_and_is_repaired() {
    let (replicas, storage) = three_in_memory(ConsistencyLevel::Quorum);
    let ckpt = ckpt(&storage);
    ckpt.save("step-1", &shard(4), SaveOptions::new())
        .await
        .unwrap();
    storage.wait_for_writes().await;
    let good = contents(&replicas[1]).await;
    // Damage every copy replica 0 holds (read first): the manifest and the
    // shard, one byte each.
    for (key, _) in &good {
        flip_a_byte(&replicas[0], key, 3).await;
    }
    assert!(contents(&replicas[0]).await != good);

    assert_eq!(
        ckpt.load("step-1", LoadOptions::default()).await.unwrap(),
        shard_bytes(4)
    );
    storage.wait_for_repairs().await;
    assert!(
        contents(&replicas[0]).await == good,
        "replica 0 was not repaired"
    );
    assert_eq!(storage.repair_stats().repaired, good.len() as u64);
}

#[tokio::test]
async fn a_copy_truncated_or_cut_short_falls_back_to_the_next() {
    let (replicas, storage) = three_in_memory(ConsistencyLevel::Quorum);
    storage.put("k", vec![9; 1000].into()).await.unwrap();
    storage.wait_for_writes().await;
    let stored = replicas[0].get("k").await.unwrap();
    replicas[0].put("k", stored.slice(..500)).await.unwrap();
    assert_eq!(storage.get("k").await.unwrap(), vec![9; 1000]);
    assert_eq!(storage.get_sized("k", 1000).await.unwrap(), vec![9; 1000]);
    storage.wait_for_repairs().await;
    assert_eq!(replicas[0].get("k").await.unwrap(), stored);
}

#[tokio::test]
async fn a_stream_of_a_large_damaged_copy_fails_at_its_end_and_the_copy_is_repaired() {
    const SIZE: usize = 5 * 1024 * 1024; // above what is verified before streaming
    let (replicas, storage) = three_in_memory(ConsistencyLevel::Quorum);
    storage.put("k", vec![1; SIZE].into()).await.unwrap();
    storage.wait_for_writes().await;
    let good = replicas[1].get("k").await.unwrap();
    flip_a_byte(&replicas[0], "k", SIZE / 2).await;

    let mut stream = storage.get_stream("k").await.unwrap();
    assert_eq!(stream.meta.size, SIZE as u64);
    let mut out = Vec::new();
    let err = stream.reader.read_to_end(&mut out).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("SHA-256"), "{err}");
    storage.wait_for_repairs().await;
    assert!(replicas[0].get("k").await.unwrap() == good);

    // Now the first copy verifies: the stream reads to its end.
    let mut stream = storage.get_stream("k").await.unwrap();
    let mut out = Vec::new();
    stream.reader.read_to_end(&mut out).await.unwrap();
    assert!(out == vec![1; SIZE]);
}

#[tokio::test]
async fn a_stream_of_a_small_damaged_copy_falls_back_before_the_first_byte() {
    let (replicas, storage) = three_in_memory(ConsistencyLevel::Quorum);
    storage.put("k", vec![1; 1000].into()).await.unwrap();
    storage.wait_for_writes().await;
    flip_a_byte(&replicas[0], "k", 500).await;
    let mut stream = storage.get_stream("k").await.unwrap();
    let mut out = Vec::new();
    stream.reader.read_to_end(&mut out).await.unwrap();
    assert_eq!(out, vec![1; 1000]);
    storage.wait_for_repairs().await;
    assert_eq!(storage.repair_stats().repaired, 1);
}

#[tokio::test]
async fn a_range_read_checks_the_footer_and_falls_back() {
    let (replicas, storage) = three_in_memory(ConsistencyLevel::Quorum);
    storage
        .put("k", (0..=255u8).collect::<Vec<u8>>().into())
        .await
        .unwrap();
    storage.wait_for_writes().await;
    // A copy whose footer is damaged (its magic).
    let stored = replicas[0].get("k").await.unwrap();
    flip_a_byte(&replicas[0], "k", stored.len() - 1).await;
    replicas[0].clear_calls();
    assert_eq!(
        storage.get_range("k", 10..20).await.unwrap(),
        (10..20u8).collect::<Vec<u8>>()
    );
    // Replica 0 was asked for the range and the footer, nothing more.
    assert_eq!(
        replicas[0].ranges_read(),
        [("k".to_string(), 10..20), ("k".to_string(), 256..308)]
    );
    storage.wait_for_repairs().await;
    assert_eq!(replicas[0].get("k").await.unwrap(), stored);
}

// ---------------------------------------------------------------------------
// Two of three down: a clear error, and nothing visible

#[tokio::test(start_paused = true)]
async fn two_replicas_down_fail_the_save_naming_them_and_show_no_checkpoint() {
    let (replicas, storage) = three_in_memory(ConsistencyLevel::Quorum);
    let ckpt = ckpt(&storage);
    take_down(&replicas[1]);
    take_down(&replicas[2]);
    let err = ckpt
        .save("step-1", &shard(5), SaveOptions::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("#1 (b)") && err.contains("#2 (c)"), "{err}");
    assert!(err.contains("of the 2 replicas it needs"), "{err}");

    replicas[1].faults().clear();
    replicas[2].faults().clear();
    assert!(ckpt.list().await.unwrap().is_empty());
    assert!(ckpt.latest().await.unwrap().is_none());
}

#[tokio::test]
async fn a_direct_write_to_two_down_replicas_names_them_and_how_many_were_needed() {
    let (replicas, storage) = three_in_memory(ConsistencyLevel::Quorum);
    take_down(&replicas[0]);
    take_down(&replicas[2]);
    match storage
        .put("k", Bytes::from_static(b"v"))
        .await
        .unwrap_err()
    {
        StorageError::QuorumNotReached {
            operation,
            key,
            needed,
            succeeded,
            failures,
        } => {
            assert_eq!(
                (operation, key.as_str(), needed, succeeded),
                ("put", "k", 2, 1)
            );
            let names: Vec<&str> = failures.iter().map(|f| f.replica.as_str()).collect();
            assert_eq!(names.len(), 2);
            assert!(
                names.contains(&"#0 (a)") && names.contains(&"#2 (c)"),
                "{names:?}"
            );
        }
        other => panic!("expected QuorumNotReached, got {other:?}"),
    }
    // A listing with two replicas down cannot tell what exists: an error,
    // not an empty list.
    assert!(matches!(
        storage.list("").await,
        Err(StorageError::QuorumNotReached {
            operation: "list",
            needed: 2,
            succeeded: 1,
            ..
        })
    ));
    assert!(matches!(
        storage.exists("k").await,
        Err(StorageError::QuorumNotReached { .. })
    ));
}

#[tokio::test]
async fn a_manifest_on_fewer_than_w_replicas_is_never_shown() {
    let (replicas, storage) = three_in_memory(ConsistencyLevel::Quorum);
    let ckpt = ckpt(&storage);
    ckpt.save("step-1", &shard(6), SaveOptions::new())
        .await
        .unwrap();
    storage.wait_for_writes().await;
    let manifest = steadfast::checkpoint::manifest_key("step-1");
    // Its manifest survives on one replica only.
    replicas[1].delete(&manifest).await.unwrap();
    replicas[2].delete(&manifest).await.unwrap();
    assert!(ckpt.list().await.unwrap().is_empty());
    assert!(ckpt.latest().await.unwrap().is_none());
    assert!(!storage.exists(&manifest).await.unwrap());
    assert!(matches!(
        storage.get(&manifest).await,
        Err(StorageError::NotFound { .. })
    ));
    // The scrub leaves it alone: restoring it would make it visible.
    let report = storage.repair().await.unwrap();
    let entry = report.keys.iter().find(|k| k.key == manifest).unwrap();
    assert_eq!(entry.outcome, RepairOutcome::BelowQuorum { holders: 1 });
    assert!(!replicas[1].exists(&manifest).await.unwrap());
}

#[tokio::test]
async fn a_failed_put_if_absent_takes_back_its_copies() {
    let (replicas, storage) = three_in_memory(ConsistencyLevel::Quorum);
    take_down(&replicas[1]);
    take_down(&replicas[2]);
    assert!(matches!(
        storage.put_if_absent("m", Bytes::from_static(b"x")).await,
        Err(StorageError::QuorumNotReached {
            operation: "put_if_absent",
            ..
        })
    ));
    assert!(replicas[0].is_empty());
    replicas[1].faults().clear();
    replicas[2].faults().clear();
    storage
        .put_if_absent("m", Bytes::from_static(b"x"))
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------
// put_if_absent across replicas

#[tokio::test(start_paused = true)]
async fn two_concurrent_writers_of_one_name_never_both_win() {
    for (round, latencies) in [[0u64, 0, 0], [5, 0, 0], [0, 5, 0], [3, 1, 7], [7, 3, 1]]
        .into_iter()
        .enumerate()
    {
        let (replicas, storage) = three_in_memory(ConsistencyLevel::Quorum);
        for (replica, ms) in replicas.iter().zip(latencies) {
            replica
                .faults()
                .set_latency(Operation::PutIfAbsent, Duration::from_millis(ms));
        }
        let (first, second) = (storage.clone(), storage.clone());
        let a =
            tokio::spawn(async move { first.put_if_absent("m", Bytes::from_static(b"A")).await });
        let b =
            tokio::spawn(async move { second.put_if_absent("m", Bytes::from_static(b"B")).await });
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        let winners = [&a, &b].iter().filter(|r| r.is_ok()).count();
        assert_eq!(winners, 1, "round {round}: {a:?} {b:?}");
        let loser = if a.is_ok() { &b } else { &a };
        assert!(
            matches!(loser, Err(StorageError::AlreadyExists { .. })),
            "{loser:?}"
        );
        let won = if a.is_ok() { &b"A"[..] } else { &b"B"[..] };
        storage.wait_for_writes().await;
        assert_eq!(storage.get("m").await.unwrap(), won);
    }
}

#[tokio::test(start_paused = true)]
async fn put_if_absent_at_one_is_refused_unless_allowed() {
    let (_, storage) = three_in_memory(ConsistencyLevel::One);
    assert!(matches!(
        storage.put_if_absent("m", Bytes::from_static(b"x")).await,
        Err(StorageError::ConditionalWriteNeedsQuorum { .. })
    ));
    // So is a checkpoint, whose commit is a put_if_absent.
    assert!(ckpt(&storage)
        .save("step-1", &shard(7), SaveOptions::new())
        .await
        .is_err());
}

// ---------------------------------------------------------------------------
// Visibility, consistency levels, domains

#[tokio::test]
async fn at_all_every_replica_must_acknowledge_and_answer() {
    let (replicas, storage) = three_in_memory(ConsistencyLevel::All);
    storage.put("k", Bytes::from_static(b"v")).await.unwrap();
    take_down(&replicas[2]);
    assert!(matches!(
        storage.put("j", Bytes::from_static(b"v")).await,
        Err(StorageError::QuorumNotReached {
            needed: 3,
            succeeded: 2,
            ..
        })
    ));
    assert!(matches!(
        storage.get("k").await,
        Err(StorageError::QuorumNotReached { needed: 3, .. })
    ));
}

#[tokio::test]
async fn distinct_domains_are_required_for_an_acknowledgement() {
    let replicas = [
        MemoryStorage::new(),
        MemoryStorage::new(),
        MemoryStorage::new(),
    ];
    let storage = ReplicatedStorage::builder()
        .replica(Replica::new(replicas[0].clone()).domain("rack-a"))
        .replica(Replica::new(replicas[1].clone()).domain("rack-a"))
        .replica(Replica::new(replicas[2].clone()).domain("rack-b"))
        .require_distinct_domains(true)
        .build()
        .unwrap();
    take_down(&replicas[2]);
    // Two copies, but both in rack-a.
    let err = storage
        .put("k", Bytes::from_static(b"v"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::QuorumNotReached { succeeded: 1, .. }),
        "{err:?}"
    );
    replicas[2].faults().clear();
    storage.put("k", Bytes::from_static(b"v")).await.unwrap();
}

#[tokio::test]
async fn reads_prefer_replicas_that_have_not_failed() {
    let (replicas, storage) = three_in_memory(ConsistencyLevel::Quorum);
    storage.put("k", Bytes::from_static(b"v")).await.unwrap();
    storage.wait_for_writes().await;
    replicas[0].faults().fail_next(Operation::Get, 1);
    assert_eq!(storage.get("k").await.unwrap(), &b"v"[..]);
    replicas[0].clear_calls();
    assert_eq!(storage.get("k").await.unwrap(), &b"v"[..]);
    assert_eq!(
        replicas[0].count(Operation::Get),
        0,
        "replica 0 failed and was read first"
    );
}

// ---------------------------------------------------------------------------
// Real directories: one removed or replaced by a file mid-run

fn files(root: &Path) -> Vec<PathBuf> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_type().unwrap().is_dir() {
                walk(base, &entry.path(), out);
            } else {
                out.push(entry.path().strip_prefix(base).unwrap().to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_replaced_by_a_file_mid_run_then_restored_by_the_scrub() {
    let (_dir, roots, storage) = three_directories();
    let ckpt = ckpt(&storage);
    ckpt.save("step-1", &shard(8), SaveOptions::new())
        .await
        .unwrap();
    storage.wait_for_writes().await;

    std::fs::remove_dir_all(&roots[2]).unwrap();
    std::fs::write(&roots[2], b"not a directory").unwrap();
    ckpt.save("step-2", &shard(9), SaveOptions::new())
        .await
        .unwrap();
    assert_eq!(
        ckpt.load("step-1", LoadOptions::default()).await.unwrap(),
        shard_bytes(8)
    );
    assert_eq!(
        ckpt.load("step-2", LoadOptions::default()).await.unwrap(),
        shard_bytes(9)
    );
    let names: Vec<String> = ckpt
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names.len(), 2);
    storage.wait_for_repairs().await;
    storage.wait_for_writes().await;

    // The directory is back, empty: the scrub restores every copy.
    std::fs::remove_file(&roots[2]).unwrap();
    std::fs::create_dir(&roots[2]).unwrap();
    let report = storage.repair().await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(files(&roots[2]), files(&roots[0]));
    assert_eq!(report.copies_rewritten(), files(&roots[0]).len());
    for path in files(&roots[0]) {
        assert_eq!(
            std::fs::read(roots[2].join(&path)).unwrap(),
            std::fs::read(roots[0].join(&path)).unwrap()
        );
    }
    assert!(storage.repair().await.unwrap().keys.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_removed_mid_run_loses_nothing() {
    let (_dir, roots, storage) = three_directories();
    let ckpt = ckpt(&storage);
    ckpt.save("step-1", &shard(10), SaveOptions::new())
        .await
        .unwrap();
    storage.wait_for_writes().await;
    std::fs::remove_dir_all(&roots[1]).unwrap();
    ckpt.save("step-2", &shard(11), SaveOptions::new())
        .await
        .unwrap();
    assert_eq!(
        ckpt.load("step-1", LoadOptions::default()).await.unwrap(),
        shard_bytes(10)
    );
    assert_eq!(
        ckpt.load("step-2", LoadOptions::default()).await.unwrap(),
        shard_bytes(11)
    );
    storage.wait_for_repairs().await;
    storage.wait_for_writes().await;
    // Back (empty): the scrub restores every copy.
    std::fs::create_dir_all(&roots[1]).unwrap();
    let report = storage.repair().await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(files(&roots[1]), files(&roots[0]));
}

#[tokio::test(start_paused = true)]
async fn a_late_copy_never_lands_over_a_newer_one_or_after_a_delete() {
    let (replicas, storage) = three_in_memory(ConsistencyLevel::Quorum);
    // Replica 2's first put is slow; the next ones are not.
    replicas[2]
        .faults()
        .set_latency(Operation::Put, Duration::from_secs(60));
    storage.put("k", Bytes::from_static(b"old")).await.unwrap();
    replicas[2]
        .faults()
        .set_latency(Operation::Put, Duration::ZERO);
    storage.put("k", Bytes::from_static(b"new")).await.unwrap();
    storage.put("gone", Bytes::from_static(b"x")).await.unwrap();
    storage.wait_for_writes().await;
    let on_two = replicas[2].get("k").await.unwrap();
    let on_zero = replicas[0].get("k").await.unwrap();
    assert_eq!(on_two, on_zero, "the late copy landed over the newer one");

    replicas[2]
        .faults()
        .set_latency(Operation::Put, Duration::from_secs(60));
    storage.put("d", Bytes::from_static(b"x")).await.unwrap();
    storage.delete("d").await.unwrap();
    storage.wait_for_writes().await;
    assert!(
        !replicas[2].exists("d").await.unwrap(),
        "a late put landed after the delete"
    );
}

#[tokio::test(start_paused = true)]
async fn a_read_repair_never_brings_back_a_key_deleted_before_it_ran() {
    let (replicas, storage) = three_in_memory(ConsistencyLevel::Quorum);
    storage.put("k", Bytes::from_static(b"v")).await.unwrap();
    storage.wait_for_writes().await;
    replicas[2].delete("k").await.unwrap(); // a lost copy
                                            // Replica 2 is slow to write: a repair's rewrite would land late.
    replicas[2]
        .faults()
        .set_latency(Operation::Put, Duration::from_secs(60));
    // The read schedules a repair of replica 2; the delete starts before it runs.
    assert_eq!(storage.get("k").await.unwrap(), &b"v"[..]);
    storage.delete("k").await.unwrap();
    storage.wait_for_writes().await;
    storage.wait_for_repairs().await;
    for replica in &replicas {
        assert!(replica.is_empty(), "{:?}", replica.keys());
    }
    let stats = storage.repair_stats();
    assert_eq!((stats.scheduled, stats.obsolete, stats.repaired), (1, 1, 0));
}
