//! Tests of the chunk locks and the collection, driven step by step through
//! the crate-private lock calls, on hand-made chunked checkpoints.

use std::time::{Duration, UNIX_EPOCH};

use crate::checkpoint::manifest::shard_key;
use crate::checkpoint::{
    chunk_key, manifest_key, sha256_hex, CheckpointError, CheckpointOptions, ChunkIndex, ChunkRef,
    DigestAlgorithm, DistributedCheckpoint, Manifest, ManualClock, ShardInfo,
};
use crate::coordinator::InMemoryCoordinator;
use crate::retry::RetryPolicy;
use crate::storage::{CheckpointStorage, MemoryStorage};

type Ckpt = DistributedCheckpoint<MemoryStorage, InMemoryCoordinator>;

const LIFETIME: Duration = Duration::from_secs(60);

fn handle(storage: &MemoryStorage, clock: &ManualClock) -> Ckpt {
    let rank = InMemoryCoordinator::new(1).remove(0);
    let options = CheckpointOptions::builder()
        .chunk_lock_lifetime(LIFETIME)
        .build()
        .unwrap();
    DistributedCheckpoint::new(storage.clone(), rank, RetryPolicy::default(), options)
        .with_wall_clock(clock.clone())
}

fn clock() -> ManualClock {
    ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_800_000_000))
}

fn digest(bytes: &[u8]) -> String {
    DigestAlgorithm::Sha256.hex(bytes)
}

async fn put_chunk(storage: &MemoryStorage, bytes: &[u8]) -> String {
    let d = digest(bytes);
    storage
        .put(&chunk_key(&d), bytes.to_vec().into())
        .await
        .unwrap();
    d
}

/// Commits a one-rank chunked checkpoint whose shard is `chunks` (stored
/// raw) in order.
async fn commit_chunked(storage: &MemoryStorage, name: &str, sequence: u64, chunks: &[&[u8]]) {
    let mut index = ChunkIndex::new(DigestAlgorithm::Sha256, "none");
    for bytes in chunks {
        let d = put_chunk(storage, bytes).await;
        index
            .chunks
            .push(ChunkRef::new(d, bytes.len() as u64, bytes.len() as u64));
    }
    let index_bytes = index.to_bytes().unwrap();
    let key = shard_key(name, 0, 1, sequence);
    storage.put(&key, index_bytes.clone().into()).await.unwrap();
    let mut manifest = Manifest::new(name, 1);
    manifest.sequence = Some(sequence);
    manifest.shards.push(
        ShardInfo::new(0, key, index_bytes.len() as u64, sha256_hex(&index_bytes))
            .with_chunks(index.summary()),
    );
    storage
        .put_if_absent(&manifest_key(name), manifest.to_bytes().unwrap().into())
        .await
        .unwrap();
}

fn chunk_keys(storage: &MemoryStorage) -> Vec<String> {
    storage
        .keys()
        .into_iter()
        .filter(|k| k.starts_with("chunks/") && !k.starts_with("chunks/locks/"))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn unreferenced_chunks_go_and_referenced_ones_stay() {
    let storage = MemoryStorage::new();
    let clock = clock();
    let ckpt = handle(&storage, &clock);
    commit_chunked(&storage, "a", 1, &[b"shared", b"only-a"]).await;
    commit_chunked(&storage, "b", 2, &[b"shared", b"only-b"]).await;
    let orphan = put_chunk(&storage, b"left by a dead save").await;

    let report = ckpt.collect_chunks().await.unwrap();
    assert_eq!(report.deleted, std::slice::from_ref(&orphan));
    assert_eq!(report.bytes_deleted, 19);
    assert_eq!(report.kept, 3);
    assert_eq!(report.checkpoints.len(), 2);
    assert!(!report.is_deferred() && report.stopped.is_none() && report.failed.is_empty());
    assert!(!storage
        .keys()
        .iter()
        .any(|k| k.starts_with("chunks/locks/")));

    // Deleting "a" leaves its own chunk unreferenced; the shared one stays.
    assert_eq!(ckpt.delete("a").await.unwrap().failed.len(), 0);
    let report = ckpt.collect_chunks().await.unwrap();
    assert_eq!(report.deleted, [digest(b"only-a")]);
    let mut left = chunk_keys(&storage);
    left.sort();
    let mut expected = vec![chunk_key(&digest(b"shared")), chunk_key(&digest(b"only-b"))];
    expected.sort();
    assert_eq!(left, expected);
}

#[tokio::test(start_paused = true)]
async fn a_storage_without_chunks_costs_one_listing() {
    let storage = MemoryStorage::new();
    let ckpt = handle(&storage, &clock());
    storage.clear_calls();
    let report = ckpt.collect_chunks().await.unwrap();
    assert!(report.deleted.is_empty() && report.checkpoints.is_empty());
    assert_eq!(storage.calls().len(), 1);
}

/// The dangerous interleaving: a save has found a chunk present (and will
/// not write it again), a collection runs, then the save commits a
/// checkpoint referring to it. The collection gives way; the checkpoint's
/// chunks are all there.
#[tokio::test(start_paused = true)]
async fn a_collection_gives_way_to_a_save_that_found_a_chunk_present() {
    let storage = MemoryStorage::new();
    let clock = clock();
    let ckpt = handle(&storage, &clock);
    // The chunk belonged to a checkpoint that retention has deleted.
    commit_chunked(&storage, "old", 1, &[b"reused"]).await;
    assert_eq!(ckpt.delete("old").await.unwrap().failed.len(), 0);

    // The save takes its lock and lists chunks/: the chunk is there.
    let lock = ckpt
        .acquire_save_lock(Duration::from_secs(1))
        .await
        .unwrap();
    assert!(storage.keys().contains(&chunk_key(&digest(b"reused"))));

    // A collection starts meanwhile, in another process.
    let collector = handle(&storage, &clock);
    let collection = tokio::spawn(async move { collector.collect_chunks().await });
    let report = collection.await.unwrap().unwrap();
    assert_eq!(report.deferred_by, [lock.key().to_string()]);
    assert!(report.deleted.is_empty());

    // The save commits a checkpoint that refers to the chunk it did not
    // write again, then releases its lock.
    ckpt.ensure_fresh(&lock).unwrap();
    storage.delete(&manifest_key("old")).await.ok();
    commit_chunked(&storage, "new", 2, &[b"reused"]).await;
    ckpt.release_lock(lock).await;

    let report = ckpt.collect_chunks().await.unwrap();
    assert!(report.deleted.is_empty(), "{report:?}");
    let manifest = ckpt.manifest("new").await.unwrap();
    let shard = &manifest.shards[0];
    let summary = shard.chunks.as_ref().unwrap();
    let index = ckpt.chunk_index("new", shard, summary).await.unwrap();
    for chunk in index.chunks {
        assert!(storage.exists(&chunk.key()).await.unwrap());
    }
}

/// The other order: a collection holds its lock when a save starts. The
/// save waits until the collection is over before it lists `chunks/`.
#[tokio::test(start_paused = true)]
async fn a_save_waits_for_a_collection_in_progress() {
    let storage = MemoryStorage::new();
    let clock = clock();
    let collector = handle(&storage, &clock);
    let (lock, stale) = collector
        .acquire_collection_lock(Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    assert!(stale.is_empty());

    let saver = handle(&storage, &clock);
    let save = tokio::spawn(async move {
        let lock = saver.acquire_save_lock(Duration::from_secs(600)).await;
        (saver, lock)
    });
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(
        !save.is_finished(),
        "the save listed chunks/ during a collection"
    );
    collector.release_lock(lock).await;
    let (saver, lock) = save.await.unwrap();
    let lock = lock.unwrap();
    saver.release_lock(lock).await;
    assert!(storage.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_save_gives_up_on_a_collection_that_outlasts_its_wait() {
    let storage = MemoryStorage::new();
    let clock = clock();
    let collector = handle(&storage, &clock);
    let (lock, _) = collector
        .acquire_collection_lock(Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    let saver = handle(&storage, &clock);
    let reason = saver
        .acquire_save_lock(Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(reason.contains("still deleting chunks"), "{reason}");
    // Its own lock is gone: it does not hold up collections.
    let keys = storage.keys();
    assert_eq!(keys, [lock.key().to_string()]);
    collector.release_lock(lock).await;
}

#[tokio::test(start_paused = true)]
async fn locks_of_dead_processes_turn_stale_and_are_removed() {
    let storage = MemoryStorage::new();
    let clock = clock();
    let dead = handle(&storage, &clock);
    let save_lock = dead.acquire_save_lock(Duration::ZERO).await.unwrap();
    let save_key = save_lock.key().to_string();
    let orphan = put_chunk(&storage, b"written by the dead save").await;
    // The process dies: nothing refreshes its lock. While the lock is
    // fresh, collections give way.
    let collector = handle(&storage, &clock);
    let report = collector.collect_chunks().await.unwrap();
    assert!(report.is_deferred());
    assert!(storage.exists(&chunk_key(&orphan)).await.unwrap());
    // A lifetime later it is stale: removed, and the chunk collected.
    clock.advance(LIFETIME);
    let report = collector.collect_chunks().await.unwrap();
    assert_eq!(report.stale_locks_removed, [save_key]);
    assert_eq!(report.deleted, [orphan]);
    assert!(storage.is_empty());
    drop(save_lock);
}

#[tokio::test(start_paused = true)]
async fn a_holder_whose_lock_went_stale_knows_it() {
    let storage = MemoryStorage::new();
    let clock = clock();
    let ckpt = handle(&storage, &clock);
    let lock = ckpt.acquire_save_lock(Duration::ZERO).await.unwrap();
    clock.advance(LIFETIME - Duration::from_secs(1));
    ckpt.ensure_fresh(&lock).unwrap();
    // Paused past its lifetime (no refresh ran).
    clock.advance(Duration::from_secs(1));
    let reason = ckpt.ensure_fresh(&lock).unwrap_err();
    assert!(reason.contains("taken this process for dead"), "{reason}");
    ckpt.release_lock(lock).await;
}

#[tokio::test(start_paused = true)]
async fn a_held_lock_is_refreshed_while_its_holder_works() {
    let storage = MemoryStorage::new();
    let clock = clock();
    let ckpt = handle(&storage, &clock);
    let lock = ckpt.acquire_save_lock(Duration::ZERO).await.unwrap();
    let work = async {
        for _ in 0..8 {
            // A long save: the wall clock moves with tokio's.
            tokio::time::sleep(LIFETIME / 2).await;
            clock.advance(LIFETIME / 2);
        }
    };
    ckpt.hold_lock(&lock, work).await;
    ckpt.ensure_fresh(&lock).unwrap();
    let seen = ckpt.scan_locks().await.unwrap();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].is_fresh(LIFETIME), "{seen:?}");
    ckpt.release_lock(lock).await;
}

#[tokio::test(start_paused = true)]
async fn an_unreadable_checkpoint_stops_the_collection_before_any_delete() {
    let storage = MemoryStorage::new();
    let clock = clock();
    let ckpt = handle(&storage, &clock);
    commit_chunked(&storage, "good", 1, &[b"g"]).await;
    commit_chunked(&storage, "broken", 2, &[b"b"]).await;
    let orphan = put_chunk(&storage, b"orphan").await;
    // Flip a byte of the broken checkpoint's chunk index.
    let manifest = ckpt.manifest("broken").await.unwrap();
    let key = manifest.shards[0].key.clone();
    let mut bytes = storage.get(&key).await.unwrap().to_vec();
    bytes[5] ^= 0x01;
    storage.put(&key, bytes.into()).await.unwrap();

    let err = ckpt.collect_chunks().await.unwrap_err();
    match &err {
        CheckpointError::CollectionRefused { reason } => {
            assert!(reason.contains("\"broken\""), "{reason}")
        }
        other => panic!("expected a refused collection, got {other:?}"),
    }
    assert!(storage.exists(&chunk_key(&orphan)).await.unwrap());
    assert!(!storage
        .keys()
        .iter()
        .any(|k| k.starts_with("chunks/locks/")));

    // A manifest that does not parse stops it too.
    storage
        .put(&manifest_key("broken"), b"{".to_vec().into())
        .await
        .unwrap();
    assert!(matches!(
        ckpt.collect_chunks().await,
        Err(CheckpointError::CollectionRefused { .. })
    ));
    assert!(storage.exists(&chunk_key(&orphan)).await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn retention_collects_the_chunks_of_what_it_deleted() {
    let storage = MemoryStorage::new();
    let clock = clock();
    let ckpt = handle(&storage, &clock);
    commit_chunked(&storage, "s1", 1, &[b"base", b"v1"]).await;
    commit_chunked(&storage, "s2", 2, &[b"base", b"v2"]).await;
    commit_chunked(&storage, "s3", 3, &[b"base", b"v3"]).await;
    let report = ckpt.retain_last(2).await.unwrap();
    assert_eq!(report.removed, ["s1"]);
    assert_eq!(report.chunks.deleted, [digest(b"v1")]);
    assert_eq!(report.chunks.kept, 3);
    // Nothing removed: no collection.
    let report = ckpt.retain_last(2).await.unwrap();
    assert!(report.removed.is_empty() && report.chunks.checkpoints.is_empty());
}
