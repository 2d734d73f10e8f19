//! Compressed checkpoints (zstd frames) and entries read alone: round trips
//! at several levels and sizes, entries across frame boundaries, a one-entry
//! load that reads only that entry's bytes, damaged compressed shards on a
//! real file system, manifests written by hand with impossible frames, and
//! checkpoints of format version 2 that still load.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use steadfast::checkpoint::{
    manifest_key, sha256_hex, CheckpointError, CheckpointOptions, Compression,
    DistributedCheckpoint, FrameInfo, LoadOptions, Manifest, SaveOptions, ShardCompression,
    ShardData,
};
use steadfast::coordinator::InMemoryCoordinator;
use steadfast::retry::RetryPolicy;
use steadfast::storage::testing::Operation;
use steadfast::storage::{CheckpointStorage, LocalFsStorage, MemoryStorage};

/// A small frame, so that tests cross many frame boundaries.
const FRAME: usize = 4096;

fn policy() -> RetryPolicy {
    RetryPolicy::builder()
        .max_retries(1)
        .initial_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(1))
        .build()
        .unwrap()
}

fn single<S: CheckpointStorage>(storage: S) -> DistributedCheckpoint<S, InMemoryCoordinator> {
    let options = CheckpointOptions::builder()
        .frame_size(FRAME)
        .chunk_size(1000)
        .build()
        .unwrap();
    DistributedCheckpoint::new(
        storage,
        InMemoryCoordinator::new(1).remove(0),
        policy(),
        options,
    )
}

/// Bytes that compress somewhat: a slow pattern with noise.
fn bytes(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| {
            let noise = i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 29;
            ((i / 7) as u8).wrapping_add(noise as u8)
        })
        .collect()
}

fn zstd(level: i32) -> SaveOptions {
    SaveOptions::new().compression(Compression::zstd_level(level))
}

#[tokio::test(start_paused = true)]
async fn compressed_shards_round_trip_at_every_size_and_level() {
    for level in [1, 3, -5, 19] {
        for size in [0, 1, FRAME - 1, FRAME, FRAME + 1, 3 * FRAME + 17] {
            let storage = MemoryStorage::new();
            let ckpt = single(storage.clone());
            let data = bytes(size, level as u32);
            let shard = ShardData::new().with_entry("all", data.clone());
            let name = format!("c-{size}");
            ckpt.save(&name, &shard, zstd(level)).await.unwrap();
            let manifest = ckpt.manifest(&name).await.unwrap();
            let layout = manifest.shards[0].compression.clone().unwrap();
            assert_eq!(layout.codec, "zstd");
            assert_eq!(layout.uncompressed_size, size as u64);
            assert_eq!(layout.frames.len(), size.div_ceil(FRAME), "{size}");
            // The only entry is the shard: its frames' and the shard's
            // digests verify it, and it carries none of its own.
            assert_eq!(manifest.entries["all"].sha256, None);
            let stored = storage.get(&manifest.shards[0].key).await.unwrap();
            assert_eq!(manifest.shards[0].size, stored.len() as u64);
            assert_eq!(manifest.shards[0].sha256, sha256_hex(&stored));

            assert_eq!(
                ckpt.load(&name, LoadOptions::default()).await.unwrap(),
                data
            );
            let unverified = LoadOptions::builder().verify(false).build().unwrap();
            assert_eq!(ckpt.load(&name, unverified).await.unwrap(), data);
            assert_eq!(ckpt.load_entry(&name, "all").await.unwrap(), data);
            ckpt.verify(&name).await.unwrap();

            // The same bytes from a stream.
            let streamed = format!("s-{size}");
            ckpt.save_stream(
                &streamed,
                || {
                    let reader = std::io::Cursor::new(data.clone());
                    async move { Ok(reader) }
                },
                zstd(level),
            )
            .await
            .unwrap();
            assert_eq!(
                ckpt.load(&streamed, LoadOptions::default()).await.unwrap(),
                data
            );
            ckpt.verify(&streamed).await.unwrap();
        }
    }
}

#[tokio::test(start_paused = true)]
async fn compressible_data_is_stored_smaller() {
    let storage = MemoryStorage::new();
    let ckpt = single(storage.clone());
    let shard = ShardData::new().with_entry("zeros", vec![0u8; 20 * FRAME]);
    let info = ckpt.save("z", &shard, zstd(1)).await.unwrap();
    assert!(info.total_size < 2 * FRAME as u64, "{}", info.total_size);
    assert_eq!(
        ckpt.load("z", LoadOptions::default()).await.unwrap(),
        vec![0u8; 20 * FRAME]
    );
}

/// Entries of many sizes, across frame boundaries, with empty ones.
fn many_entries() -> ShardData {
    let lengths = [3000, 5000, 1, 0, 9000, FRAME, 2 * FRAME + 3, 17, 0];
    lengths
        .iter()
        .enumerate()
        .map(|(i, &len)| (format!("e{i}"), bytes(len, i as u32)))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn entries_across_frame_boundaries_load_alone() {
    for compression in [
        Compression::None,
        Compression::zstd_level(1),
        Compression::zstd_level(7),
    ] {
        let storage = MemoryStorage::new();
        let ckpt = single(storage.clone());
        let shard = many_entries();
        ckpt.save("c", &shard, SaveOptions::new().compression(compression))
            .await
            .unwrap();
        let manifest = ckpt.manifest("c").await.unwrap();
        for (name, data) in shard.entries() {
            assert_eq!(manifest.entries[name].sha256, Some(sha256_hex(data)));
            assert_eq!(&ckpt.load_entry("c", name).await.unwrap(), data, "{name}");
        }
        let all = ckpt.load_entries("c", |_| true).await.unwrap();
        let expected: BTreeMap<String, Vec<u8>> = shard.entries().iter().cloned().collect();
        assert_eq!(all, expected);
        let whole: Vec<u8> = shard
            .entries()
            .iter()
            .flat_map(|(_, d)| d.clone())
            .collect();
        assert_eq!(ckpt.load("c", LoadOptions::default()).await.unwrap(), whole);
    }
}

#[tokio::test(start_paused = true)]
async fn a_one_entry_load_reads_only_that_entrys_bytes() {
    for compression in [Compression::None, Compression::zstd_level(1)] {
        let storage = MemoryStorage::new();
        let ckpt = single(storage.clone());
        let shard = many_entries();
        ckpt.save("c", &shard, SaveOptions::new().compression(compression))
            .await
            .unwrap();
        let manifest = ckpt.manifest("c").await.unwrap();
        let key = manifest.shards[0].key.clone();
        let at = manifest.entries["e4"].clone();
        storage.clear_calls();
        assert_eq!(ckpt.load_entry("c", "e4").await.unwrap(), bytes(9000, 4));
        // No whole read of the shard; one ranged read.
        assert_eq!(storage.count(Operation::Get), 0);
        assert_eq!(storage.count(Operation::GetStream), 1, "the manifest only");
        let ranges = storage.ranges_read();
        assert_eq!(ranges.len(), 1, "{ranges:?}");
        assert_eq!(ranges[0].0, key);
        let range = ranges[0].1.clone();
        match &manifest.shards[0].compression {
            None => assert_eq!(range, at.offset..at.offset + at.length),
            Some(layout) => {
                // Exactly the frames that hold the entry: e4 spans
                // 8001..17001, frames 1 to 4 of 4096 bytes.
                let first = (at.offset / FRAME as u64) as usize;
                let last = ((at.offset + at.length - 1) / FRAME as u64) as usize;
                assert_eq!((first, last), (1, 4));
                let start: u64 = layout.frames[..first].iter().map(|f| f.size).sum();
                let end: u64 = layout.frames[..=last].iter().map(|f| f.size).sum();
                assert_eq!(range, start..end);
                assert!(end - start < manifest.shards[0].size);
            }
        }
        // An empty entry reads nothing.
        storage.clear_calls();
        assert!(ckpt.load_entry("c", "e3").await.unwrap().is_empty());
        assert!(storage.ranges_read().is_empty());
    }
}

/// A committed compressed checkpoint on a real directory, and its shard's
/// path.
async fn on_disk(
    dir: &Path,
) -> (
    DistributedCheckpoint<LocalFsStorage, InMemoryCoordinator>,
    Manifest,
) {
    let ckpt = single(LocalFsStorage::new(dir).unwrap());
    ckpt.save("run/step-1", &many_entries(), zstd(3))
        .await
        .unwrap();
    let manifest = ckpt.manifest("run/step-1").await.unwrap();
    (ckpt, manifest)
}

fn corrupted_shard(err: &CheckpointError) -> &str {
    match err {
        CheckpointError::Corrupted { shard, .. } => shard,
        other => panic!("expected Corrupted, got {other:?}"),
    }
}

#[tokio::test]
async fn a_flipped_byte_in_a_compressed_shard_is_corrupted_never_wrong_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (ckpt, manifest) = on_disk(dir.path()).await;
    let key = manifest.shards[0].key.clone();
    let layout = manifest.shards[0].compression.clone().unwrap();
    let path = dir.path().join(&key);
    let original = std::fs::read(&path).unwrap();
    // A byte in frame 3 (uncompressed 12288..16384: inside e4).
    let frame_start: u64 = layout.frames[..3].iter().map(|f| f.size).sum();
    for at in [
        0,
        frame_start + layout.frames[3].size / 2,
        original.len() as u64 - 1,
    ] {
        let mut damaged = original.clone();
        damaged[at as usize] ^= 0x20;
        std::fs::write(&path, &damaged).unwrap();
        for err in [
            ckpt.load("run/step-1", LoadOptions::default())
                .await
                .unwrap_err(),
            ckpt.verify("run/step-1").await.unwrap_err(),
            ckpt.load_entries("run/step-1", |_| true).await.unwrap_err(),
        ] {
            assert_eq!(corrupted_shard(&err), key, "{err}");
        }
        // Unverified, a damaged frame may fail to decompress or decompress
        // to other bytes; it never panics.
        let unverified = LoadOptions::builder().verify(false).build().unwrap();
        let _ = ckpt.load("run/step-1", unverified).await;
    }
    // The frame's own entry is refused; an entry in other frames loads.
    let mut damaged = original.clone();
    damaged[(frame_start + 5) as usize] ^= 0x01;
    std::fs::write(&path, &damaged).unwrap();
    let err = ckpt.load_entry("run/step-1", "e4").await.unwrap_err();
    assert_eq!(corrupted_shard(&err), key);
    assert!(err.to_string().contains("frame 3"), "{err}");
    assert_eq!(
        ckpt.load_entry("run/step-1", "e0").await.unwrap(),
        bytes(3000, 0)
    );
}

#[tokio::test]
async fn a_truncated_compressed_shard_is_corrupted() {
    let dir = tempfile::tempdir().unwrap();
    let (ckpt, manifest) = on_disk(dir.path()).await;
    let key = manifest.shards[0].key.clone();
    let path = dir.path().join(&key);
    let original = std::fs::read(&path).unwrap();
    for keep in [0, 1, original.len() / 2, original.len() - 1] {
        std::fs::write(&path, &original[..keep]).unwrap();
        for err in [
            ckpt.load("run/step-1", LoadOptions::default())
                .await
                .unwrap_err(),
            ckpt.verify("run/step-1").await.unwrap_err(),
            ckpt.load_entry("run/step-1", "e0").await.unwrap_err(),
            ckpt.load_entry("run/step-1", "e8").await.unwrap_err(),
        ] {
            assert_eq!(corrupted_shard(&err), key, "{err}");
        }
    }
}

/// Writes `manifest` (with a fresh, correct checksum) over the stored one.
async fn rewrite<S: CheckpointStorage>(storage: &S, manifest: &Manifest) {
    storage
        .put(
            &manifest_key(&manifest.name),
            manifest.to_bytes().unwrap().into(),
        )
        .await
        .unwrap();
}

fn validation_reason(err: CheckpointError) -> String {
    match err {
        CheckpointError::ValidationFailed { reason, .. } => reason,
        other => panic!("expected ValidationFailed, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn impossible_frames_in_a_checksummed_manifest_are_refused() {
    let storage = MemoryStorage::new();
    let ckpt = single(storage.clone());
    ckpt.save("c", &many_entries(), zstd(1)).await.unwrap();
    let good = ckpt.manifest("c").await.unwrap();
    let edit = |f: &dyn Fn(&mut ShardCompression)| {
        let mut m = good.clone();
        f(m.shards[0].compression.as_mut().unwrap());
        m
    };

    let unknown = edit(&|l| l.codec = "lz4".into());
    rewrite(&storage, &unknown).await;
    let reason = validation_reason(ckpt.load("c", LoadOptions::default()).await.unwrap_err());
    assert!(
        reason.contains("\"lz4\"") && reason.contains("codec"),
        "{reason}"
    );

    let uneven = edit(&|l| l.uncompressed_size += 1);
    rewrite(&storage, &uneven).await;
    let reason = validation_reason(ckpt.load_entry("c", "e0").await.unwrap_err());
    assert!(reason.contains("uncompressed bytes"), "{reason}");

    let shifted = edit(&|l| {
        l.frames[0].uncompressed_size -= 1;
        l.frames[1].uncompressed_size += 1;
    });
    rewrite(&storage, &shifted).await;
    validation_reason(ckpt.verify("c").await.unwrap_err());

    let huge = edit(&|l| {
        let last = l.frames.len() - 1;
        l.frames[last].uncompressed_size = 1 << 40;
        l.uncompressed_size = l.frames.iter().map(|f| f.uncompressed_size).sum();
    });
    rewrite(&storage, &huge).await;
    validation_reason(ckpt.load("c", LoadOptions::default()).await.unwrap_err());

    let mut huge_frames = good.clone();
    let layout = huge_frames.shards[0].compression.as_mut().unwrap();
    *layout = ShardCompression::zstd(1 << 40);
    layout.push(FrameInfo::new(
        good.shards[0].size,
        sha256_hex(b"x"),
        1 << 40,
    ));
    huge_frames.entries.clear();
    rewrite(&storage, &huge_frames).await;
    let reason = validation_reason(ckpt.load("c", LoadOptions::default()).await.unwrap_err());
    assert!(reason.contains("frame size"), "{reason}");

    let mut past_end = good.clone();
    past_end.entries.get_mut("e8").unwrap().offset += 1;
    rewrite(&storage, &past_end).await;
    validation_reason(ckpt.load_entries("c", |_| true).await.unwrap_err());

    // Restored, it loads again: nothing was lost.
    rewrite(&storage, &good).await;
    ckpt.verify("c").await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_frame_that_decompresses_to_more_than_recorded_is_refused() {
    let storage = MemoryStorage::new();
    let ckpt = single(storage.clone());
    // Two frames: 4096 bytes, then 100.
    let data = bytes(FRAME + 100, 9);
    ckpt.save(
        "c",
        &ShardData::new().with_entry("all", data.clone()),
        zstd(1),
    )
    .await
    .unwrap();
    let good = ckpt.manifest("c").await.unwrap();
    // The last frame claims 60 bytes: every size adds up, the entry fits,
    // but the frame holds 100.
    let mut lying = good.clone();
    let layout = lying.shards[0].compression.as_mut().unwrap();
    layout.frames[1].uncompressed_size = 60;
    layout.uncompressed_size = FRAME as u64 + 60;
    let at = lying.entries.get_mut("all").unwrap();
    at.length = FRAME as u64 + 60;
    at.sha256 = Some(sha256_hex(&data[..FRAME + 60]));
    rewrite(&storage, &lying).await;
    for err in [
        ckpt.load("c", LoadOptions::default()).await.unwrap_err(),
        ckpt.load_entry("c", "all").await.unwrap_err(),
        ckpt.verify("c").await.unwrap_err(),
    ] {
        assert_eq!(corrupted_shard(&err), good.shards[0].key);
        assert!(
            err.to_string()
                .contains("frame 1 decompressing to 60 bytes"),
            "{err}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn an_entry_whose_digest_does_not_match_is_refused() {
    let storage = MemoryStorage::new();
    let ckpt = single(storage.clone());
    ckpt.save("c", &many_entries(), zstd(1)).await.unwrap();
    let mut m = ckpt.manifest("c").await.unwrap();
    m.entries.get_mut("e1").unwrap().sha256 = Some(sha256_hex(b"not e1"));
    rewrite(&storage, &m).await;
    let err = ckpt.load_entry("c", "e1").await.unwrap_err();
    assert_eq!(corrupted_shard(&err), m.shards[0].key);
    assert!(err.to_string().contains(&sha256_hex(b"not e1")), "{err}");
    assert!(ckpt.load_entries("c", |_| true).await.is_err());
    assert_eq!(ckpt.load_entry("c", "e0").await.unwrap(), bytes(3000, 0));
}

/// A checkpoint of format version 2 (no entry digests, raw shards), exactly
/// as the code before format version 3 wrote it.
const VERSION_2_MANIFEST: &str = r#"
{
  "format_version": 2,
  "name": "old/run",
  "step": 40,
  "sequence": 3,
  "created_at": 1764000000000,
  "world_size": 2,
  "shards": [
    {
      "rank": 0,
      "key": "old/run/shard-00000-of-00002-00000000000000a0.bin",
      "size": 16,
      "sha256": "23534b261096da0e5f82a5807ad02179393dc4d415f8c02ea46873dc4c2d1565"
    },
    {
      "rank": 1,
      "key": "old/run/shard-00001-of-00002-00000000000000a1.bin",
      "size": 5,
      "sha256": "be9d587defa1f0c09ef49eb17e206983a5f8f8289e4281860bd0ee5a19592c67"
    }
  ],
  "entries": {
    "alpha": {
      "rank": 0,
      "offset": 0,
      "length": 11
    },
    "beta": {
      "rank": 0,
      "offset": 12,
      "length": 4
    },
    "gamma": {
      "rank": 1,
      "offset": 0,
      "length": 5
    }
  },
  "metadata": {
    "model": "tiny"
  },
  "checksum": "efc58a6de312631c2fb3fa303f465e6013163ddf651940f2f3e00b84ae3abb63"
}"#;

#[tokio::test(start_paused = true)]
async fn a_version_2_checkpoint_loads_through_every_path() {
    let storage = MemoryStorage::new();
    storage
        .put(
            "old/run/shard-00000-of-00002-00000000000000a0.bin",
            b"alpha-bytes|beta".to_vec().into(),
        )
        .await
        .unwrap();
    storage
        .put(
            "old/run/shard-00001-of-00002-00000000000000a1.bin",
            b"gamma".to_vec().into(),
        )
        .await
        .unwrap();
    storage
        .put(
            &manifest_key("old/run"),
            VERSION_2_MANIFEST.trim_start().as_bytes().to_vec().into(),
        )
        .await
        .unwrap();
    let ranks: Vec<_> = InMemoryCoordinator::new(2)
        .into_iter()
        .map(|rank| {
            DistributedCheckpoint::new(
                storage.clone(),
                rank,
                policy(),
                CheckpointOptions::default(),
            )
        })
        .collect();
    let manifest = ranks[0].manifest("old/run").await.unwrap();
    assert_eq!((manifest.format_version, manifest.sequence), (2, Some(3)));
    assert!(manifest.entries.values().all(|at| at.sha256.is_none()));
    assert!(manifest.shards.iter().all(|s| s.compression.is_none()));
    assert_eq!(ranks[0].list().await.unwrap()[0].name, "old/run");
    assert_eq!(
        ranks[0]
            .load("old/run", LoadOptions::default())
            .await
            .unwrap(),
        b"alpha-bytes|beta"
    );
    assert_eq!(
        ranks[1]
            .load("old/run", LoadOptions::default())
            .await
            .unwrap(),
        b"gamma"
    );
    assert_eq!(
        ranks[1].load_entry("old/run", "beta").await.unwrap(),
        b"beta"
    );
    let all = ranks[0].load_entries("old/run", |_| true).await.unwrap();
    assert_eq!(all["alpha"], b"alpha-bytes");
    assert_eq!(all["gamma"], b"gamma");
    ranks[0].verify("old/run").await.unwrap();
    // Without digests an entry is read with its whole shard, verified.
    storage.clear_calls();
    ranks[0].load_entry("old/run", "gamma").await.unwrap();
    assert!(storage.ranges_read().is_empty());

    // A damaged byte outside the entry still refuses it: the whole shard is
    // verified.
    storage
        .put(
            "old/run/shard-00000-of-00002-00000000000000a0.bin",
            b"alpha-bytes|betA".to_vec().into(),
        )
        .await
        .unwrap();
    let err = ranks[0].load_entry("old/run", "alpha").await.unwrap_err();
    assert_eq!(
        corrupted_shard(&err),
        "old/run/shard-00000-of-00002-00000000000000a0.bin"
    );
}

#[tokio::test(start_paused = true)]
async fn a_compressed_checkpoint_of_three_ranks_loads_at_another_world_size() {
    let storage = MemoryStorage::new();
    let options = CheckpointOptions::builder()
        .frame_size(FRAME)
        .build()
        .unwrap();
    let saves: Vec<_> = InMemoryCoordinator::new(3)
        .into_iter()
        .map(|rank| {
            let ckpt = DistributedCheckpoint::new(storage.clone(), rank, policy(), options.clone());
            tokio::spawn(async move {
                let r = ckpt.rank();
                let shard = ShardData::new()
                    .with_entry(format!("rank-{r}/model"), bytes(3 * FRAME + r, r as u32))
                    .with_entry(format!("rank-{r}/step"), vec![r as u8; 8]);
                ckpt.save("multi", &shard, zstd(2)).await
            })
        })
        .collect();
    for save in saves {
        save.await.unwrap().unwrap();
    }
    let rank = InMemoryCoordinator::new(2).remove(1);
    let ckpt = DistributedCheckpoint::new(storage.clone(), rank, policy(), options);
    let manifest = ckpt.verify("multi").await.unwrap();
    assert!(manifest.shards.iter().all(|s| s.compression.is_some()));
    assert!(manifest.entries.values().all(|at| at.sha256.is_some()));
    for r in 0..3usize {
        assert_eq!(
            ckpt.load_entry("multi", &format!("rank-{r}/model"))
                .await
                .unwrap(),
            bytes(3 * FRAME + r, r as u32)
        );
    }
    let steps = ckpt
        .load_entries("multi", |e| e.ends_with("/step"))
        .await
        .unwrap();
    assert_eq!(steps.len(), 3);
    assert_eq!(steps["rank-2/step"], vec![2; 8]);
    // Rank 1 of two loads the shard rank 1 of three saved, when not strict.
    let loose = LoadOptions::builder().strict(false).build().unwrap();
    let whole = ckpt.load("multi", loose).await.unwrap();
    assert_eq!(whole.len(), 3 * FRAME + 1 + 8);
}
