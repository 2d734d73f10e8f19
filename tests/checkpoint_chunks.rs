//! Chunked checkpoints (content-defined chunks under `chunks/`): a save
//! writes only the chunks the storage lacks, a load of one entry reads only
//! its chunks, BLAKE3 and zstd chunks round trip, unchanged entries are
//! reused from a base checkpoint without their bytes, and damaged or
//! hand-written indexes and chunks are refused with clear errors.

use std::time::Duration;

use steadfast::checkpoint::{
    manifest_key, sha256_hex, CheckpointError, CheckpointOptions, ChunkIndex, Chunking,
    Compression, DigestAlgorithm, DistributedCheckpoint, LoadOptions, Manifest, SaveOptions,
    ShardData,
};
use steadfast::coordinator::InMemoryCoordinator;
use steadfast::manager::{CheckpointManager, JsonState, StateError, Stateful};
use steadfast::retry::RetryPolicy;
use steadfast::storage::testing::{Call, Operation};
use steadfast::storage::{CheckpointStorage, LocalFsStorage, MemoryStorage};

fn policy() -> RetryPolicy {
    RetryPolicy::builder()
        .max_retries(1)
        .initial_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(1))
        .build()
        .unwrap()
}

fn single<S: CheckpointStorage>(storage: S) -> DistributedCheckpoint<S, InMemoryCoordinator> {
    DistributedCheckpoint::new(
        storage,
        InMemoryCoordinator::new(1).remove(0),
        policy(),
        CheckpointOptions::default(),
    )
}

/// Bytes that do not compress: a xorshift sequence.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// Bytes that compress: a slow pattern with a little noise.
fn compressible(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| {
            let noise = i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 30;
            ((i / 64) as u8).wrapping_add(noise as u8)
        })
        .collect()
}

fn chunked(average: u32) -> SaveOptions {
    SaveOptions::new().chunking(Chunking::with_average_size(average).unwrap())
}

/// Whether `key` is a chunk's (not a chunk lock's).
fn is_chunk(key: &str) -> bool {
    key.starts_with("chunks/") && !key.starts_with("chunks/locks/")
}

fn chunk_reads(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.operation == Operation::GetStream && is_chunk(&c.key))
        .map(|c| c.key.clone())
        .collect()
}

/// The chunk index of rank `rank`'s shard of checkpoint `name`.
async fn index_of<S: CheckpointStorage>(
    ckpt: &DistributedCheckpoint<S, InMemoryCoordinator>,
    storage: &S,
    name: &str,
    rank: usize,
) -> ChunkIndex {
    let manifest = ckpt.manifest(name).await.unwrap();
    let shard = manifest.shard(rank).unwrap();
    let bytes = storage.get(&shard.key).await.unwrap();
    ChunkIndex::from_bytes(name, &shard.key, &bytes, shard.chunks.as_ref().unwrap()).unwrap()
}

/// Replaces the chunk index of rank 0's shard with `index`, and the
/// manifest with one that records it (as a hostile writer would).
async fn rewrite_index(storage: &MemoryStorage, name: &str, index: &ChunkIndex) {
    let ckpt = single(storage.clone());
    let mut manifest: Manifest = ckpt.manifest(name).await.unwrap();
    let bytes = serde_json::to_vec(index).unwrap();
    let shard = &mut manifest.shards[0];
    storage.put(&shard.key, bytes.clone().into()).await.unwrap();
    shard.size = bytes.len() as u64;
    shard.sha256 = sha256_hex(&bytes);
    shard.chunks = Some(index.summary());
    storage
        .put(&manifest_key(name), manifest.to_bytes().unwrap().into())
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn identical_state_writes_no_new_chunk() {
    for options in [
        chunked(4096),
        chunked(4096).compression(Compression::zstd()),
        chunked(4096).digest(DigestAlgorithm::Blake3),
    ] {
        let storage = MemoryStorage::new();
        let ckpt = single(storage.clone());
        let shard = ShardData::new()
            .with_entry("a", compressible(100_000, 1))
            .with_entry("empty", Vec::new())
            .with_entry("b", noise(50_000, 2));
        let (_, first) = ckpt
            .save_with_stats("one", &shard, options.clone())
            .await
            .unwrap();
        assert!(first.chunks_total > 10, "{first:?}");
        assert_eq!(first.chunks_written, first.chunks_total);
        assert_eq!(first.bytes_written, first.bytes_stored_total);
        assert_eq!(first.bytes_total, 150_000);
        let chunks_before = storage.keys().iter().filter(|k| is_chunk(k)).count();
        storage.clear_calls();
        let (_, second) = ckpt
            .save_with_stats("two", &shard, options.clone())
            .await
            .unwrap();
        assert_eq!(second.chunks_written, 0, "{second:?}");
        assert_eq!(second.bytes_written, 0);
        assert_eq!(second.chunks_total, first.chunks_total);
        // One listing of chunks/, and no chunk written.
        let calls = storage.calls();
        assert_eq!(
            calls
                .iter()
                .filter(|c| c.operation == Operation::List && c.key == "chunks/")
                .count(),
            1
        );
        assert!(!calls
            .iter()
            .any(|c| c.operation == Operation::Put && is_chunk(&c.key)));
        let chunks_after = storage.keys().iter().filter(|k| is_chunk(k)).count();
        assert_eq!(chunks_before, chunks_after);
        let whole: Vec<u8> = shard
            .entries()
            .iter()
            .flat_map(|(_, d)| d.clone())
            .collect();
        assert_eq!(
            ckpt.load("two", LoadOptions::default()).await.unwrap(),
            whole
        );
        assert_eq!(
            ckpt.load_entry("two", "empty").await.unwrap(),
            Vec::<u8>::new()
        );
        ckpt.verify("two").await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_change_in_the_middle_of_a_large_shard_writes_only_the_chunks_around_it() {
    const SIZE: usize = 32 << 20;
    let storage = MemoryStorage::new();
    let ckpt = single(storage.clone());
    let mut data = noise(SIZE, 5);
    let options = chunked(1 << 20);
    let shard = ShardData::new().with_entry("weights", data.clone());
    let (_, full) = ckpt
        .save_with_stats("full", &shard, options.clone())
        .await
        .unwrap();
    assert_eq!(full.bytes_written, SIZE as u64);
    // 4 KiB changed in the middle.
    for b in &mut data[SIZE / 2..SIZE / 2 + 4096] {
        *b = !*b;
    }
    let shard = ShardData::new().with_entry("weights", data.clone());
    let (_, incremental) = ckpt
        .save_with_stats("incremental", &shard, options)
        .await
        .unwrap();
    // The chunk holding the change, and perhaps its neighbour: a few MiB
    // at most of 32.
    assert!(incremental.chunks_written <= 3, "{incremental:?}");
    assert!(
        incremental.bytes_written <= 8 << 20,
        "{} bytes written",
        incremental.bytes_written
    );
    assert!(incremental.bytes_written > 0);
    assert_eq!(
        ckpt.load("incremental", LoadOptions::default())
            .await
            .unwrap(),
        data
    );
}

#[tokio::test(start_paused = true)]
async fn a_load_of_one_entry_reads_only_its_chunks() {
    let storage = MemoryStorage::new();
    let ckpt = single(storage.clone());
    let shard = ShardData::new()
        .with_entry("a", noise(200_000, 1))
        .with_entry("b", noise(150_000, 2))
        .with_entry("c", noise(200_000, 3));
    ckpt.save("c", &shard, chunked(16 * 1024)).await.unwrap();
    let manifest = ckpt.manifest("c").await.unwrap();
    let index = index_of(&ckpt, &storage, "c", 0).await;
    let at = &manifest.entries["b"];
    // b's chunks: those whose bytes lie inside b's range.
    let mut start = 0u64;
    let mut expected = Vec::new();
    for chunk in &index.chunks {
        if start >= at.offset && start < at.offset + at.length {
            expected.push(chunk.key());
        }
        start += chunk.raw_size;
    }
    assert!(expected.len() >= 3);
    storage.clear_calls();
    let b = ckpt.load_entry("c", "b").await.unwrap();
    assert_eq!(b, shard.entries()[1].1);
    let mut read = chunk_reads(&storage.calls());
    read.sort();
    expected.sort();
    expected.dedup();
    assert_eq!(read, expected);
    // The whole load reads every chunk (once each, in order).
    storage.clear_calls();
    let whole = ckpt.load("c", LoadOptions::default()).await.unwrap();
    assert_eq!(whole.len(), 550_000);
    assert_eq!(chunk_reads(&storage.calls()).len(), index.chunks.len());
}

#[tokio::test(start_paused = true)]
async fn blake3_chunks_are_addressed_recorded_and_verified() {
    let storage = MemoryStorage::new();
    let ckpt = single(storage.clone());
    let data = noise(100_000, 9);
    let shard = ShardData::new().with_entry("x", data.clone());
    ckpt.save("b3", &shard, chunked(4096).digest(DigestAlgorithm::Blake3))
        .await
        .unwrap();
    let manifest = ckpt.manifest("b3").await.unwrap();
    let summary = manifest.shards[0].chunks.clone().unwrap();
    assert_eq!(summary.digest, DigestAlgorithm::Blake3);
    let index = index_of(&ckpt, &storage, "b3", 0).await;
    assert_eq!(index.digest, DigestAlgorithm::Blake3);
    for chunk in &index.chunks {
        let stored = storage.get(&chunk.key()).await.unwrap();
        assert_eq!(DigestAlgorithm::Blake3.hex(&stored), chunk.digest);
        assert_ne!(sha256_hex(&stored), chunk.digest);
    }
    assert_eq!(ckpt.load("b3", LoadOptions::default()).await.unwrap(), data);
    assert_eq!(ckpt.load_entry("b3", "x").await.unwrap(), data);
}

#[tokio::test(start_paused = true)]
async fn zstd_chunks_round_trip_and_are_verified_before_decompressing() {
    let storage = MemoryStorage::new();
    let ckpt = single(storage.clone());
    let data = compressible(300_000, 4);
    let shard = ShardData::new()
        .with_entry("p", data.clone())
        .with_entry("q", compressible(1000, 5));
    let (_, stats) = ckpt
        .save_with_stats(
            "z",
            &shard,
            chunked(8192).compression(Compression::zstd_level(3)),
        )
        .await
        .unwrap();
    assert!(
        stats.bytes_stored_total < stats.bytes_total / 2,
        "{stats:?}"
    );
    let index = index_of(&ckpt, &storage, "z", 0).await;
    assert_eq!(index.codec, "zstd");
    for chunk in &index.chunks {
        let stored = storage.get(&chunk.key()).await.unwrap();
        assert_eq!(sha256_hex(&stored), chunk.digest);
    }
    assert_eq!(ckpt.load_entry("z", "p").await.unwrap(), data);
    let whole = ckpt.load("z", LoadOptions::default()).await.unwrap();
    assert_eq!(&whole[..300_000], &data[..]);
    // A chunk replaced by another valid zstd frame of other bytes: its
    // address no longer matches, and it is refused before decompressing.
    let victim = index.chunks[1].key();
    let other = zstd::bulk::compress(&vec![0u8; index.chunks[1].raw_size as usize], 3).unwrap();
    storage.put(&victim, other.into()).await.unwrap();
    let err = ckpt.load("z", LoadOptions::default()).await.unwrap_err();
    match err {
        CheckpointError::Corrupted { name, shard, .. } => {
            assert_eq!(name, "z");
            assert_eq!(shard, victim);
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_stream_is_stored_as_the_same_chunks_as_its_bytes() {
    let storage = MemoryStorage::new();
    let ckpt = single(storage.clone());
    let data = noise(500_000, 6);
    let shard = ShardData::new().with_entry("all", data.clone());
    ckpt.save("entries", &shard, chunked(8192)).await.unwrap();
    storage.clear_calls();
    let copy = data.clone();
    ckpt.save_stream(
        "stream",
        || {
            let reader = std::io::Cursor::new(copy.clone());
            async move { Ok(reader) }
        },
        chunked(8192),
    )
    .await
    .unwrap();
    // Every chunk of the stream was stored already.
    assert!(!storage
        .calls()
        .iter()
        .any(|c| c.operation == Operation::Put && is_chunk(&c.key)));
    assert_eq!(
        index_of(&ckpt, &storage, "entries", 0).await.chunks,
        index_of(&ckpt, &storage, "stream", 0).await.chunks
    );
    assert_eq!(
        ckpt.load("stream", LoadOptions::default()).await.unwrap(),
        data
    );
}

#[tokio::test(start_paused = true)]
async fn chunked_shards_of_several_ranks_load_at_another_world_size() {
    let storage = MemoryStorage::new();
    let mut tasks = Vec::new();
    for coordinator in InMemoryCoordinator::new(3) {
        let ckpt = DistributedCheckpoint::new(
            storage.clone(),
            coordinator,
            policy(),
            CheckpointOptions::default(),
        );
        tasks.push(tokio::spawn(async move {
            let rank = ckpt.rank();
            let shard = ShardData::new()
                .with_entry(format!("w.{rank}"), noise(40_000, rank as u64))
                .with_entry(format!("b.{rank}"), noise(1000, 10 + rank as u64));
            ckpt.save("multi", &shard, chunked(4096).step(3)).await?;
            ckpt.load("multi", LoadOptions::default()).await
        }));
    }
    for (rank, task) in tasks.into_iter().enumerate() {
        let mut expected = noise(40_000, rank as u64);
        expected.extend(noise(1000, 10 + rank as u64));
        assert_eq!(task.await.unwrap().unwrap(), expected);
    }
    let ckpt = single(storage.clone());
    assert_eq!(
        ckpt.load_entry("multi", "w.2").await.unwrap(),
        noise(40_000, 2)
    );
    let bs = ckpt
        .load_entries("multi", |e| e.starts_with("b."))
        .await
        .unwrap();
    assert_eq!(bs.len(), 3);
    assert_eq!(bs["b.1"], noise(1000, 11));
    let manifest = ckpt.verify("multi").await.unwrap();
    assert!(manifest.shards.iter().all(|s| s.chunks.is_some()));
}

#[tokio::test(start_paused = true)]
async fn unchanged_entries_are_reused_without_their_bytes() {
    let storage = MemoryStorage::new();
    let ckpt = single(storage.clone());
    let big = noise(400_000, 1);
    let small = noise(20_000, 2);
    let shard = ShardData::new()
        .with_entry("step", b"1".to_vec())
        .with_entry("big", big.clone())
        .with_entry("small", small.clone());
    let options = chunked(8192);
    ckpt.save("base", &shard, options.clone()).await.unwrap();
    let next = ShardData::new()
        .with_entry("step", b"2".to_vec())
        .with_unchanged_entry("big")
        .with_unchanged_entry("small");
    storage.clear_calls();
    let (_, stats) = ckpt
        .save_with_stats("next", &next, options.clone().base("base"))
        .await
        .unwrap();
    assert_eq!(stats.bytes_total, 420_001);
    assert_eq!(stats.chunks_written, 1);
    assert_eq!(stats.bytes_written, 1);
    // Nothing of the base's chunks was read.
    assert!(chunk_reads(&storage.calls()).is_empty());
    let manifest = ckpt.manifest("next").await.unwrap();
    assert_eq!(manifest.entries["big"].length, 400_000);
    assert_eq!(ckpt.load_entry("next", "big").await.unwrap(), big);
    assert_eq!(ckpt.load_entry("next", "small").await.unwrap(), small);
    let mut whole = b"2".to_vec();
    whole.extend(&big);
    whole.extend(&small);
    assert_eq!(
        ckpt.load("next", LoadOptions::default()).await.unwrap(),
        whole
    );
    // A checkpoint of reused entries is a base in turn.
    let third = ShardData::new()
        .with_unchanged_entry("big")
        .with_entry("step", b"3".to_vec());
    ckpt.save("third", &third, options.base("next"))
        .await
        .unwrap();
    assert_eq!(ckpt.load_entry("third", "big").await.unwrap(), big);
}

#[tokio::test(start_paused = true)]
async fn an_unchanged_entry_that_cannot_be_reused_fails_the_save_with_the_reason() {
    let storage = MemoryStorage::new();
    let ckpt = single(storage.clone());
    let shard = ShardData::new().with_entry("a", noise(50_000, 1));
    ckpt.save("plain", &shard, SaveOptions::new())
        .await
        .unwrap();
    ckpt.save("base", &shard, chunked(4096)).await.unwrap();
    let reason = |err: CheckpointError| match err {
        CheckpointError::SaveFailed { reason, .. } => reason,
        other => panic!("expected a failed save, got {other:?}"),
    };
    let unchanged = ShardData::new().with_unchanged_entry("a");
    let missing = ShardData::new().with_unchanged_entry("nope");
    let cases = [
        (&unchanged, chunked(4096), "no base checkpoint"),
        (&missing, chunked(4096).base("base"), "has no such entry"),
        (&unchanged, chunked(4096).base("plain"), "is not chunked"),
        (
            &unchanged,
            chunked(4096).base("base").digest(DigestAlgorithm::Blake3),
            "addressed by sha256",
        ),
        (
            &unchanged,
            chunked(4096).base("gone"),
            "no committed checkpoint",
        ),
    ];
    for (i, (shard, options, why)) in cases.into_iter().enumerate() {
        let err = ckpt
            .save(&format!("s{i}"), shard, options)
            .await
            .unwrap_err();
        let text = reason(err);
        assert!(text.contains("cannot reuse unchanged entry"), "{text}");
        assert!(text.contains(why), "{text}");
    }
    // A base chunk the storage lost.
    let index = index_of(&ckpt, &storage, "base", 0).await;
    storage.delete(&index.chunks[2].key()).await.unwrap();
    let err = ckpt
        .save("lost", &unchanged, chunked(4096).base("base"))
        .await
        .unwrap_err();
    let text = reason(err);
    assert!(text.contains(&index.chunks[2].key()), "{text}");
    assert!(text.contains("not in the storage"), "{text}");
    // A save that does not chunk refuses unchanged entries.
    let err = ckpt
        .save("unchunked", &unchanged, SaveOptions::new())
        .await
        .unwrap_err();
    assert!(reason(err).contains("only a chunked save"));
    // Nothing of the failed saves is visible.
    let mut names: Vec<String> = ckpt
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    names.sort();
    assert_eq!(names, ["base", "plain"]);
}

#[tokio::test(start_paused = true)]
async fn a_missing_chunk_is_an_error_naming_it_and_the_checkpoint() {
    let storage = MemoryStorage::new();
    let ckpt = single(storage.clone());
    let shard = ShardData::new().with_entry("a", noise(60_000, 3));
    ckpt.save("c", &shard, chunked(4096)).await.unwrap();
    let index = index_of(&ckpt, &storage, "c", 0).await;
    let victim = index.chunks[3].key();
    storage.delete(&victim).await.unwrap();
    for err in [
        ckpt.load("c", LoadOptions::default()).await.unwrap_err(),
        ckpt.load_entry("c", "a").await.unwrap_err(),
        ckpt.verify("c").await.unwrap_err(),
    ] {
        let text = err.to_string();
        assert!(text.contains(&victim), "{text}");
        assert!(text.contains("\"c\""), "{text}");
        assert!(text.contains("no object"), "{text}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_chunk_whose_bytes_do_not_match_its_address_is_refused() {
    let storage = MemoryStorage::new();
    let ckpt = single(storage.clone());
    let data = noise(60_000, 4);
    ckpt.save("c", &ShardData::new().with_entry("a", data), chunked(4096))
        .await
        .unwrap();
    let index = index_of(&ckpt, &storage, "c", 0).await;
    let victim = index.chunks[2].key();
    let mut bytes = storage.get(&victim).await.unwrap().to_vec();
    bytes[7] ^= 0x40;
    storage.put(&victim, bytes.into()).await.unwrap();
    for err in [
        ckpt.load("c", LoadOptions::default()).await.unwrap_err(),
        ckpt.load("c", LoadOptions::new().verify(false))
            .await
            .unwrap_err(),
        ckpt.load_entry("c", "a").await.unwrap_err(),
        ckpt.verify("c").await.unwrap_err(),
    ] {
        match err {
            CheckpointError::Corrupted {
                name,
                shard,
                expected,
                ..
            } => {
                assert_eq!(name, "c");
                assert_eq!(shard, victim);
                assert!(expected.contains(&index.chunks[2].digest), "{expected}");
            }
            other => panic!("expected corruption, got {other:?}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_damaged_chunk_on_a_real_file_system_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let storage = LocalFsStorage::new(dir.path()).unwrap();
    let ckpt = single(storage.clone());
    let data = noise(80_000, 8);
    let options = chunked(4096).compression(Compression::zstd());
    ckpt.save(
        "c",
        &ShardData::new().with_entry("a", data.clone()),
        options,
    )
    .await
    .unwrap();
    assert_eq!(ckpt.load("c", LoadOptions::default()).await.unwrap(), data);
    let index = index_of(&ckpt, &storage, "c", 0).await;
    let path = dir.path().join("chunks").join(&index.chunks[1].digest);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let err = ckpt.load_entry("c", "a").await.unwrap_err();
    assert!(
        matches!(&err, CheckpointError::Corrupted { shard, .. } if *shard == index.chunks[1].key()),
        "{err:?}"
    );
    // Truncated: refused by its size before its bytes are hashed.
    std::fs::write(&path, &bytes[..last]).unwrap();
    let err = ckpt.verify("c").await.unwrap_err();
    assert!(
        matches!(&err, CheckpointError::Corrupted { shard, .. } if *shard == index.chunks[1].key()),
        "{err:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_index_naming_a_chunk_outside_chunks_is_refused() {
    let storage = MemoryStorage::new();
    let ckpt = single(storage.clone());
    ckpt.save(
        "c",
        &ShardData::new().with_entry("a", noise(30_000, 1)),
        chunked(4096),
    )
    .await
    .unwrap();
    storage.put("secret", vec![1u8; 10].into()).await.unwrap();
    let mut index = index_of(&ckpt, &storage, "c", 0).await;
    index.chunks[0].digest = "../secret".into();
    rewrite_index(&storage, "c", &index).await;
    storage.clear_calls();
    let err = ckpt.load("c", LoadOptions::default()).await.unwrap_err();
    match err {
        CheckpointError::ValidationFailed { reason, .. } => {
            assert!(reason.contains("outside chunks/"), "{reason}")
        }
        other => panic!("expected a validation failure, got {other:?}"),
    }
    assert!(!storage.calls().iter().any(|c| c.key.contains("secret")));
}

#[tokio::test(start_paused = true)]
async fn an_index_whose_sizes_do_not_add_up_is_refused() {
    let storage = MemoryStorage::new();
    let ckpt = single(storage.clone());
    ckpt.save(
        "c",
        &ShardData::new().with_entry("a", noise(30_000, 1)),
        chunked(4096),
    )
    .await
    .unwrap();
    let original = index_of(&ckpt, &storage, "c", 0).await;
    // One chunk claims a byte more than it holds; the manifest's summary is
    // kept, so the sizes no longer add up.
    let mut index = original.clone();
    index.chunks[1].raw_size += 1;
    index.chunks[1].size += 1;
    let summary = original.summary();
    let mut manifest = ckpt.manifest("c").await.unwrap();
    let bytes = serde_json::to_vec(&index).unwrap();
    storage
        .put(&manifest.shards[0].key, bytes.clone().into())
        .await
        .unwrap();
    manifest.shards[0].size = bytes.len() as u64;
    manifest.shards[0].sha256 = sha256_hex(&bytes);
    manifest.shards[0].chunks = Some(summary);
    storage
        .put(&manifest_key("c"), manifest.to_bytes().unwrap().into())
        .await
        .unwrap();
    let err = ckpt.load("c", LoadOptions::default()).await.unwrap_err();
    assert!(err.to_string().contains("the chunks hold"), "{err}");
    // Both changed consistently: the manifest now claims a byte the chunk
    // does not hold, which its read refuses.
    rewrite_index(&storage, "c", &index).await;
    let err = ckpt.load("c", LoadOptions::default()).await.unwrap_err();
    assert!(
        matches!(&err, CheckpointError::Corrupted { shard, .. } if *shard == index.chunks[1].key()),
        "{err:?}"
    );
    // An index changed behind the manifest's back fails its digest.
    let manifest = ckpt.manifest("c").await.unwrap();
    storage
        .put(
            &manifest.shards[0].key,
            serde_json::to_vec(&original).unwrap().into(),
        )
        .await
        .unwrap();
    let err = ckpt.load_entry("c", "a").await.unwrap_err();
    assert!(
        matches!(&err, CheckpointError::Corrupted { shard, .. } if *shard == manifest.shards[0].key),
        "{err:?}"
    );
}

/// A state that counts its snapshots and restores, with a revision the
/// test controls.
struct Counted {
    bytes: std::sync::Mutex<Vec<u8>>,
    snapshots: std::sync::atomic::AtomicUsize,
    revision: std::sync::atomic::AtomicU64,
}

impl Counted {
    fn new(bytes: Vec<u8>) -> std::sync::Arc<Counted> {
        std::sync::Arc::new(Counted {
            bytes: std::sync::Mutex::new(bytes),
            snapshots: Default::default(),
            revision: Default::default(),
        })
    }

    fn snapshots(&self) -> usize {
        self.snapshots.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Stateful for Counted {
    fn snapshot(&self) -> Result<Vec<u8>, StateError> {
        self.snapshots
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(self.bytes.lock().unwrap().clone())
    }

    fn restore(&self, bytes: &[u8]) -> Result<(), StateError> {
        *self.bytes.lock().unwrap() = bytes.to_vec();
        self.revision
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    fn revision(&self) -> Option<u64> {
        Some(self.revision.load(std::sync::atomic::Ordering::SeqCst))
    }
}

fn manager(storage: &MemoryStorage) -> CheckpointManager<MemoryStorage, InMemoryCoordinator> {
    CheckpointManager::builder(single(storage.clone()))
        .prefix("run")
        .chunking(Chunking::with_average_size(16 * 1024).unwrap())
        .digest(DigestAlgorithm::Blake3)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_manager_stores_an_unchanged_state_without_snapshotting_it() {
    let storage = MemoryStorage::new();
    let manager = manager(&storage);
    let weights = noise(1 << 20, 21);
    let big = Counted::new(weights.clone());
    let step = JsonState::new(0u64);
    manager.register_state("big", big.clone()).unwrap();
    manager.register_state("step", step.clone()).unwrap();
    let first = manager
        .create_checkpoint(None)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(big.snapshots(), 1);
    step.set(1);
    storage.clear_calls();
    let second = manager
        .create_checkpoint(None)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    // Neither snapshotted nor read nor written again.
    assert_eq!(big.snapshots(), 1);
    assert!(chunk_reads(&storage.calls()).is_empty());
    let puts: u64 = storage
        .calls()
        .iter()
        .filter(|c| c.operation == Operation::Put && is_chunk(&c.key))
        .count() as u64;
    assert_eq!(puts, 1, "only the changed step's chunk");
    let ckpt = manager.checkpoint();
    assert_eq!(
        ckpt.load_entry(&second.name, "rank-00000/big")
            .await
            .unwrap(),
        weights
    );
    assert_eq!(
        ckpt.load_entry(&second.name, "rank-00000/step")
            .await
            .unwrap(),
        b"1"
    );
    assert_ne!(first.name, second.name);
    // A change is seen: the state is snapshotted again.
    *big.bytes.lock().unwrap() = noise(1 << 20, 22);
    big.revision
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let third = manager
        .create_checkpoint(None)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(big.snapshots(), 2);
    assert_eq!(
        ckpt.load_entry(&third.name, "rank-00000/big")
            .await
            .unwrap(),
        noise(1 << 20, 22)
    );
    // After a restore, nothing is taken as unchanged.
    let report = manager.restore_latest().await.unwrap().unwrap();
    assert_eq!(report.point.name, third.name);
    manager
        .create_checkpoint(None)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(big.snapshots(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_manager_saves_every_state_again_when_the_base_chunks_are_gone() {
    let storage = MemoryStorage::new();
    let manager = manager(&storage);
    let weights = noise(300_000, 31);
    let big = Counted::new(weights.clone());
    manager.register_state("big", big.clone()).unwrap();
    let first = manager
        .create_checkpoint(None)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    // A chunk of the first checkpoint is lost.
    let ckpt = manager.checkpoint();
    let index = index_of(ckpt, &storage, &first.name, 0).await;
    storage.delete(&index.chunks[0].key()).await.unwrap();
    let second = manager
        .create_checkpoint(None)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(big.snapshots(), 2, "saved again with a snapshot");
    assert_eq!(
        ckpt.load_entry(&second.name, "rank-00000/big")
            .await
            .unwrap(),
        weights
    );
    // The lost chunk was written again, so the first loads again too.
    assert_eq!(
        ckpt.load_entry(&first.name, "rank-00000/big")
            .await
            .unwrap(),
        weights
    );
}
