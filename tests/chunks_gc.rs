//! Chunk collection against real chunked saves, driven through the two
//! dangerous interleavings step by step: a storage wrapper stops one side at
//! the moment that matters while the other runs.
//!
//! 1. A save has listed `chunks/` and found its chunks present (so it will
//!    not write them again); a collection runs; the save commits. The
//!    collection gives way, and the checkpoint loads.
//! 2. A collection is deleting; a save starts. The save waits for the
//!    collection to finish before it lists `chunks/`, writes again the
//!    chunks the collection deleted, and its checkpoint loads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use steadfast::checkpoint::{
    CheckpointOptions, Chunking, DistributedCheckpoint, SaveOptions, ShardData,
};
use steadfast::coordinator::InMemoryCoordinator;
use steadfast::retry::RetryPolicy;
use steadfast::storage::{
    CheckpointStorage, MemoryStorage, ObjectMeta, ObjectStream, ObjectWriter,
    Result as StorageResult,
};
use tokio::sync::Notify;

/// Stops the first call that matches, once armed, until released.
#[derive(Debug, Default)]
struct Gate {
    armed: AtomicBool,
    reached: Notify,
    release: Notify,
}

impl Gate {
    async fn pass(&self) {
        if self.armed.swap(false, Ordering::SeqCst) {
            self.reached.notify_one();
            self.release.notified().await;
        }
    }
}

/// A memory storage whose listing of `chunks/` (when `on_list`) or whose
/// first chunk delete (otherwise) stops at the gate.
#[derive(Debug, Clone)]
struct Gated {
    inner: MemoryStorage,
    gate: Arc<Gate>,
    on_list: bool,
}

#[async_trait]
impl CheckpointStorage for Gated {
    async fn put(&self, key: &str, data: Bytes) -> StorageResult<()> {
        self.inner.put(key, data).await
    }
    async fn put_if_absent(&self, key: &str, data: Bytes) -> StorageResult<()> {
        self.inner.put_if_absent(key, data).await
    }
    async fn get(&self, key: &str) -> StorageResult<Bytes> {
        self.inner.get(key).await
    }
    async fn head(&self, key: &str) -> StorageResult<ObjectMeta> {
        self.inner.head(key).await
    }
    async fn delete(&self, key: &str) -> StorageResult<()> {
        if !self.on_list && key.starts_with("chunks/") && !key.starts_with("chunks/locks/") {
            self.gate.pass().await;
        }
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str) -> StorageResult<Vec<ObjectMeta>> {
        let listed = self.inner.list(prefix).await;
        if self.on_list && prefix == "chunks/" {
            self.gate.pass().await;
        }
        listed
    }
    async fn put_stream(&self, key: &str) -> StorageResult<Box<dyn ObjectWriter>> {
        self.inner.put_stream(key).await
    }
    async fn get_stream(&self, key: &str) -> StorageResult<ObjectStream> {
        self.inner.get_stream(key).await
    }
    async fn get_sized(&self, key: &str, size: u64) -> StorageResult<Bytes> {
        self.inner.get_sized(key, size).await
    }
    async fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> StorageResult<Bytes> {
        self.inner.get_range(key, range).await
    }
}

fn handle<S: CheckpointStorage>(storage: S) -> DistributedCheckpoint<S, InMemoryCoordinator> {
    DistributedCheckpoint::new(
        storage,
        InMemoryCoordinator::new(1).remove(0),
        RetryPolicy::default(),
        CheckpointOptions::default(),
    )
}

fn state() -> Vec<u8> {
    let mut bytes = vec![0u8; 256 * 1024];
    SmallRng::seed_from_u64(7).fill_bytes(&mut bytes);
    bytes
}

fn chunked() -> SaveOptions {
    SaveOptions::new().chunking(Chunking::with_average_size(16 * 1024).unwrap())
}

fn chunk_count(storage: &MemoryStorage) -> usize {
    storage
        .keys()
        .iter()
        .filter(|k| k.starts_with("chunks/") && !k.starts_with("chunks/locks/"))
        .count()
}

#[tokio::test(start_paused = true)]
async fn a_chunk_a_save_found_present_survives_a_collection_before_its_commit() {
    let storage = MemoryStorage::new();
    let plain = handle(storage.clone());
    let shard = ShardData::new().with_entry("weights", state());
    // The chunks stay in storage after their checkpoint is deleted.
    plain.save("old", &shard, chunked()).await.unwrap();
    let stored = chunk_count(&storage);
    assert!(stored > 4, "{stored} chunks");
    assert!(plain.delete("old").await.unwrap().failed.is_empty());

    let gate = Arc::new(Gate::default());
    gate.armed.store(true, Ordering::SeqCst);
    let saver = handle(Gated {
        inner: storage.clone(),
        gate: gate.clone(),
        on_list: true,
    });
    let save = tokio::spawn(async move {
        let stats = saver.save_with_stats("new", &shard, chunked()).await;
        (saver, stats)
    });
    // The save has listed chunks/ and found every chunk there.
    gate.reached.notified().await;

    let report = plain.collect_chunks().await.unwrap();
    assert_eq!(report.deferred_by.len(), 1, "{report:?}");
    assert!(report.deleted.is_empty());
    assert_eq!(chunk_count(&storage), stored);

    gate.release.notify_one();
    let (saver, stats) = save.await.unwrap();
    let (_, stats) = stats.unwrap();
    assert_eq!(stats.chunks_written, 0, "{stats:?}");
    assert_eq!(saver.load_entry("new", "weights").await.unwrap(), state());
    // Now the collection runs, and keeps what "new" refers to.
    let report = plain.collect_chunks().await.unwrap();
    assert!(
        report.deleted.is_empty() && !report.is_deferred(),
        "{report:?}"
    );
    assert_eq!(report.kept, stored);
}

#[tokio::test(start_paused = true)]
async fn a_save_that_starts_during_a_collection_waits_and_writes_what_it_deleted() {
    let storage = MemoryStorage::new();
    let plain = handle(storage.clone());
    let shard = ShardData::new().with_entry("weights", state());
    plain.save("old", &shard, chunked()).await.unwrap();
    let stored = chunk_count(&storage);
    assert!(plain.delete("old").await.unwrap().failed.is_empty());

    // The collection stops at its first delete.
    let gate = Arc::new(Gate::default());
    gate.armed.store(true, Ordering::SeqCst);
    let collector = handle(Gated {
        inner: storage.clone(),
        gate: gate.clone(),
        on_list: false,
    });
    let collection = tokio::spawn(async move { collector.collect_chunks().await });
    gate.reached.notified().await;

    // A save of the same state starts: it must not trust the chunks the
    // collection is about to delete.
    let saver = handle(storage.clone());
    let save = tokio::spawn(async move {
        let stats = saver.save_with_stats("new", &shard, chunked()).await;
        (saver, stats)
    });
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(!save.is_finished(), "the save went on during a collection");

    gate.release.notify_one();
    let report = collection.await.unwrap().unwrap();
    assert_eq!(report.deleted.len(), stored, "{report:?}");
    let (saver, stats) = save.await.unwrap();
    let (_, stats) = stats.unwrap();
    assert_eq!(stats.chunks_written as usize, stored, "{stats:?}");
    assert_eq!(saver.load_entry("new", "weights").await.unwrap(), state());
}
