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
