//! Distributed checkpoints on `MemoryStorage` and `InMemoryCoordinator`:
//! round trips, listing, deletion, retention, cleanup, resharding, and every
//! rank agreeing on the outcome when a rank fails, vanishes or is dropped.

mod common;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use common::damaged_reads::DamagedReads;
use steadfast::checkpoint::{
    manifest_key, CheckpointError, CheckpointInfo, CheckpointOptions, DistributedCheckpoint,
    LoadOptions, Manifest, SaveOptions, ShardData, FORMAT_VERSION,
};
use steadfast::coordinator::{
    Coordinator, InMemoryCoordinator, Result as CoordinatorResult, Signal,
};
use steadfast::retry::RetryPolicy;
use steadfast::storage::testing::Operation;
use steadfast::storage::Bytes;
use steadfast::storage::{
    CheckpointStorage, MemoryStorage, ObjectMeta, ObjectStream, ObjectWriter,
    Result as StorageResult,
};

type Ckpt<S> = DistributedCheckpoint<S, InMemoryCoordinator>;

fn policy() -> RetryPolicy {
    RetryPolicy::builder()
        .max_retries(3)
        .initial_delay(Duration::from_millis(10))
        .max_delay(Duration::from_millis(100))
        .build()
        .unwrap()
}

fn options() -> CheckpointOptions {
    // Small chunks, so that shards are written in several pieces.
    CheckpointOptions::builder().chunk_size(7).build().unwrap()
}

fn handles<S: CheckpointStorage + Clone>(
    storage: &S,
    ranks: Vec<InMemoryCoordinator>,
) -> Vec<Ckpt<S>> {
    ranks
        .into_iter()
        .map(|rank| DistributedCheckpoint::new(storage.clone(), rank, policy(), options()))
        .collect()
}

/// Runs `f` on every rank as its own task and returns the results in rank
/// order.
async fn on_every_rank<S, F, Fut, T>(ckpts: Vec<Ckpt<S>>, f: F) -> Vec<T>
where
    S: CheckpointStorage + Clone,
    F: Fn(Arc<Ckpt<S>>) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let tasks: Vec<_> = ckpts
        .into_iter()
        .map(|c| tokio::spawn(f(Arc::new(c))))
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("rank task panicked"));
    }
    out
}

/// Rank `r`'s shard: entries `layer.<r>.weight` and `layer.<r>.bias`, of a
/// size that differs by rank and by `seed`.
fn shard_of(rank: usize, seed: u8) -> ShardData {
    ShardData::new()
        .with_entry(
            format!("layer.{rank}.weight"),
            vec![seed ^ rank as u8; 20 + rank * 3],
        )
        .with_entry(
            format!("layer.{rank}.bias"),
            vec![seed.wrapping_add(rank as u8); 5],
        )
}

fn shard_bytes(rank: usize, seed: u8) -> Vec<u8> {
    shard_of(rank, seed)
        .entries()
        .iter()
        .flat_map(|(_, d)| d.clone())
        .collect()
}

/// Saves `name` at `step` on a fresh `world`-rank job over `storage`.
async fn save_all<S: CheckpointStorage + Clone>(
    storage: &S,
    world: usize,
    name: &'static str,
    step: u64,
    seed: u8,
) -> Vec<Result<CheckpointInfo, CheckpointError>> {
    on_every_rank(
        handles(storage, InMemoryCoordinator::new(world)),
        move |c| async move {
            let shard = shard_of(c.rank(), seed);
            c.save(
                name,
                &shard,
                SaveOptions::new()
                    .step(step)
                    .metadata("seed", seed.to_string()),
            )
            .await
        },
    )
    .await
}

fn single<S: CheckpointStorage>(storage: S) -> Ckpt<S> {
    DistributedCheckpoint::new(
        storage,
        InMemoryCoordinator::new(1).remove(0),
        policy(),
        options(),
    )
}

#[tokio::test(start_paused = true)]
async fn four_ranks_round_trip() {
    let storage = MemoryStorage::new();
    let results = save_all(&storage, 4, "run/step-10", 10, 1).await;
    let infos: Vec<_> = results.into_iter().map(Result::unwrap).collect();
    for info in &infos {
        assert_eq!(info, &infos[0], "every rank returns the same summary");
    }
    assert_eq!(infos[0].name, "run/step-10");
    assert_eq!(infos[0].step, Some(10));
    assert_eq!(infos[0].world_size, 4);
    let expected_total: usize = (0..4).map(|r| shard_bytes(r, 1).len()).sum();
    assert_eq!(infos[0].total_size, expected_total as u64);
    // Four shards and the manifest.
    assert_eq!(storage.len(), 5);
    assert!(storage.keys().contains(&manifest_key("run/step-10")));

    let loaded = on_every_rank(
        handles(&storage, InMemoryCoordinator::new(4)),
        |c| async move { c.load("run/step-10", LoadOptions::default()).await },
    )
    .await;
    for (rank, bytes) in loaded.into_iter().enumerate() {
        assert_eq!(bytes.unwrap(), shard_bytes(rank, 1), "rank {rank}");
    }

    let ckpt = single(storage.clone());
    let manifest = ckpt.verify("run/step-10").await.unwrap();
    assert_eq!(manifest.metadata["seed"], "1");
    assert_eq!(manifest.entries.len(), 8);
    assert_eq!(
        ckpt.load_entry("run/step-10", "layer.2.bias")
            .await
            .unwrap(),
        vec![3u8; 5]
    );
    assert!(matches!(
        ckpt.load_entry("run/step-10", "layer.9.bias").await,
        Err(CheckpointError::EntryNotFound { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn streamed_shards_round_trip() {
    let storage = MemoryStorage::new();
    let results = on_every_rank(
        handles(&storage, InMemoryCoordinator::new(2)),
        |c| async move {
            let bytes: Vec<u8> = (0..1000u32)
                .map(|i| (i * 7 + c.rank() as u32) as u8)
                .collect();
            let source = bytes.clone();
            let info = c
                .save_stream(
                    "streamed",
                    move || {
                        let reader = std::io::Cursor::new(source.clone());
                        async move { Ok(reader) }
                    },
                    SaveOptions::new(),
                )
                .await?;
            let loaded = c.load("streamed", LoadOptions::default()).await?;
            Ok::<_, CheckpointError>((info, loaded == bytes))
        },
    )
    .await;
    for r in results {
        let (info, same) = r.unwrap();
        assert!(same);
        assert_eq!(info.total_size, 2000);
    }
}

#[tokio::test(start_paused = true)]
async fn list_shows_committed_only_newest_first() {
    let storage = MemoryStorage::new();
    for (step, name) in [(1, "step-1"), (2, "step-2"), (3, "step-3")] {
        for r in save_all(&storage, 2, name, step, step as u8).await {
            r.unwrap();
        }
    }
    // A save in progress (or crashed): shards without a manifest.
    storage
        .put(
            "step-4/shard-00000-of-00002-00000000000000aa.bin",
            vec![1; 10].into(),
        )
        .await
        .unwrap();
    // A manifest that is not a valid checkpoint.
    storage
        .put("broken/metadata.json", Bytes::from_static(b"{"))
        .await
        .unwrap();

    let ckpt = single(storage.clone());
    let list = ckpt.list().await.unwrap();
    let names: Vec<_> = list.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["step-3", "step-2", "step-1"]);
    assert!(list.windows(2).all(|w| w[0].created_at >= w[1].created_at));
    assert_eq!(ckpt.latest().await.unwrap().unwrap().name, "step-3");
    assert!(matches!(
        ckpt.load("step-4", LoadOptions::default()).await,
        Err(CheckpointError::NotFound { .. })
    ));
}

/// Rewrites the manifest of `name` through the public [`Manifest`] API (the
/// checksum is computed afresh): how these tests forge what a stepped clock
/// would have recorded.
async fn rewrite_manifest<S: CheckpointStorage>(
    storage: &S,
    name: &str,
    edit: impl FnOnce(&mut Manifest),
) {
    let key = manifest_key(name);
    let mut manifest = Manifest::from_bytes(name, &storage.get(&key).await.unwrap()).unwrap();
    edit(&mut manifest);
    storage
        .put(&key, manifest.to_bytes().unwrap().into())
        .await
        .unwrap();
}

fn names(list: &[CheckpointInfo]) -> Vec<&str> {
    list.iter().map(|i| i.name.as_str()).collect()
}

#[tokio::test(start_paused = true)]
async fn the_newest_is_the_last_committed_even_after_the_clock_stepped_back() {
    let storage = MemoryStorage::new();
    let ckpt = single(storage.clone());
    let shard = ShardData::new().with_entry("w", vec![1, 2, 3]);
    ckpt.save("first", &shard, SaveOptions::new().step(1))
        .await
        .unwrap();
    // The system clock stepped back an hour before the next commit: the
    // first checkpoint's recorded commit time is later than the second's.
    rewrite_manifest(&storage, "first", |m| m.created_at += 3_600_000).await;
    ckpt.save("second", &shard, SaveOptions::new().step(2))
        .await
        .unwrap();

    assert_eq!(names(&ckpt.list().await.unwrap()), ["second", "first"]);
    assert_eq!(ckpt.latest().await.unwrap().unwrap().name, "second");
    // Retention right after a successful save keeps the checkpoint just
    // saved.
    let report = ckpt.retain_last(1).await.unwrap();
    assert_eq!(report.kept, ["second"]);
    assert_eq!(report.removed, ["first"]);
    ckpt.verify("second").await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn after_a_restore_to_an_earlier_step_the_work_saved_since_is_newest() {
    let storage = MemoryStorage::new();
    for (name, step) in [("step-10", 10), ("step-20", 20)] {
        for r in save_all(&storage, 2, name, step, 0).await {
            r.unwrap();
        }
    }
    // The job restores step 10 (step 20 went bad) and saves step 15.
    for r in save_all(&storage, 2, "step-15", 15, 0).await {
        r.unwrap();
    }
    // A coarse clock: every commit recorded the same time, so only the
    // order of the commits tells them apart.
    for name in ["step-10", "step-20", "step-15"] {
        rewrite_manifest(&storage, name, |m| m.created_at = 1_700_000_000_000).await;
    }

    let ckpt = single(storage.clone());
    assert_eq!(
        names(&ckpt.list().await.unwrap()),
        ["step-15", "step-20", "step-10"]
    );
    let latest = ckpt.latest().await.unwrap().unwrap();
    assert_eq!((latest.name.as_str(), latest.step), ("step-15", Some(15)));
    let report = ckpt.retain_last(2).await.unwrap();
    assert_eq!(report.kept, ["step-15", "step-20"]);
    assert_eq!(report.removed, ["step-10"]);
}

/// A manifest as version 0.1.0 of this crate wrote it (format version 1, no
/// commit sequence), byte for byte, and its one shard.
const VERSION_1_MANIFEST: &str = r#"{
  "format_version": 1,
  "name": "old/step-7",
  "step": 7,
  "created_at": 1796215917861,
  "world_size": 1,
  "shards": [
    {
      "rank": 0,
      "key": "old/step-7/shard-00000-of-00001-b3cb209f6901d8a4.bin",
      "size": 8,
      "sha256": "98769f6e4e1413b0c3c926573ebc2e525a371099d139050df22109941df6169b"
    }
  ],
  "entries": {
    "w": {
      "rank": 0,
      "offset": 0,
      "length": 8
    }
  },
  "metadata": {
    "by": "0.1.0"
  },
  "checksum": "566a5ab7c9c5b607e225f448274a8c50924310f1771c1a3c7d70889175e206fc"
}"#;

#[tokio::test(start_paused = true)]
async fn a_version_1_checkpoint_still_loads_and_sorts_before_every_sequenced_one() {
    let storage = MemoryStorage::new();
    storage
        .put(
            "old/step-7/shard-00000-of-00001-b3cb209f6901d8a4.bin",
            b"v1 bytes".to_vec().into(),
        )
        .await
        .unwrap();
    storage
        .put(
            &manifest_key("old/step-7"),
            VERSION_1_MANIFEST.as_bytes().to_vec().into(),
        )
        .await
        .unwrap();
    let ckpt = single(storage.clone());
    let old = ckpt.manifest("old/step-7").await.unwrap();
    assert_eq!(
        (old.format_version, old.sequence, old.step),
        (1, None, Some(7))
    );
    assert_eq!(
        ckpt.load_entry("old/step-7", "w").await.unwrap(),
        b"v1 bytes"
    );
    assert_eq!(
        ckpt.load("old/step-7", LoadOptions::default())
            .await
            .unwrap(),
        b"v1 bytes"
    );

    // A second old checkpoint, of an earlier step but a later time: old
    // checkpoints are ordered by step, then time.
    let shard = ShardData::new().with_entry("w", vec![3]);
    ckpt.save("old/step-3", &shard, SaveOptions::new().step(3))
        .await
        .unwrap();
    rewrite_manifest(&storage, "old/step-3", |m| {
        m.format_version = 1;
        m.sequence = None;
        // Nor entry digests (format version 3).
        for at in m.entries.values_mut() {
            at.sha256 = None;
        }
        m.created_at = 1_900_000_000_000;
    })
    .await;

    // Checkpoints saved now carry sequences from 1 and sort before the old
    // ones, whatever their steps.
    let info = ckpt
        .save("new/step-1", &shard, SaveOptions::new().step(1))
        .await
        .unwrap();
    assert_eq!(info.sequence, Some(1));
    let list = ckpt.list().await.unwrap();
    assert_eq!(names(&list), ["new/step-1", "old/step-7", "old/step-3"]);
    let sequences: Vec<_> = list.iter().map(|i| i.sequence).collect();
    assert_eq!(sequences, [Some(1), None, None]);
    assert_eq!(ckpt.latest().await.unwrap().unwrap().name, "new/step-1");
    let report = ckpt.retain_last(2).await.unwrap();
    assert_eq!(report.removed, ["old/step-3"]);
}

#[tokio::test(start_paused = true)]
async fn each_commit_records_one_more_than_the_highest_sequence() {
    let storage = MemoryStorage::new();
    for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
        let infos: Vec<_> = save_all(&storage, 3, name, 1, 0)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        // Every rank returns the sequence rank 0 assigned.
        assert!(infos.iter().all(|info| *info == infos[0]));
        assert_eq!(infos[0].sequence, Some(i as u64 + 1));
    }
    let ckpt = single(storage.clone());
    assert_eq!(ckpt.manifest("c").await.unwrap().sequence, Some(3));
    // Deleting the newest frees its sequence: the next commit is still
    // newer than every checkpoint that remains.
    assert!(ckpt.delete("c").await.unwrap().is_complete());
    let info = ckpt
        .save("d", &ShardData::new(), SaveOptions::new())
        .await
        .unwrap();
    assert_eq!(info.sequence, Some(3));
    assert_eq!(names(&ckpt.list().await.unwrap()), ["d", "b", "a"]);
}

#[tokio::test(start_paused = true)]
async fn delete_removes_manifest_and_every_listed_object() {
    let storage = MemoryStorage::new();
    for r in save_all(&storage, 3, "doomed", 1, 9).await {
        r.unwrap();
    }
    for r in save_all(&storage, 1, "kept", 2, 9).await {
        r.unwrap();
    }
    // A stray object with a name no rank number predicts.
    storage
        .put("doomed/notes.txt", Bytes::from_static(b"stray"))
        .await
        .unwrap();
    let ckpt = single(storage.clone());
    let report = ckpt.delete("doomed").await.unwrap();
    assert!(report.is_complete());
    assert_eq!(
        report.deleted[0], "doomed/metadata.json",
        "the manifest goes first"
    );
    assert_eq!(report.deleted.len(), 5);
    assert!(storage.keys().iter().all(|k| k.starts_with("kept/")));
    assert!(matches!(
        ckpt.delete("doomed").await,
        Err(CheckpointError::NotFound { .. })
    ));
    assert!(matches!(
        ckpt.delete("../x").await,
        Err(CheckpointError::InvalidName { .. })
    ));
    assert_eq!(ckpt.latest().await.unwrap().unwrap().name, "kept");
}

#[tokio::test(start_paused = true)]
async fn a_failed_save_does_not_sweep_a_nested_save_in_progress() {
    let storage = MemoryStorage::new();
    // The save of "a/b" is slow to commit; the save of "a", started
    // meanwhile, fails its shard write and rolls back.
    storage
        .faults()
        .set_latency(Operation::PutIfAbsent, Duration::from_secs(10));
    storage
        .faults()
        .fail_nth(Operation::PutStream, 2)
        .permanent();
    let inner = tokio::spawn({
        let storage = storage.clone();
        async move {
            single(storage)
                .save("a/b", &shard_of(0, 1), SaveOptions::new())
                .await
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let outer = single(storage.clone())
        .save("a", &shard_of(0, 2), SaveOptions::new())
        .await;
    assert!(
        matches!(outer, Err(CheckpointError::SaveFailed { .. })),
        "{outer:?}"
    );
    let inner = inner.await.unwrap();
    assert!(inner.is_ok(), "{inner:?}");
    // The inner save reported success: its checkpoint must be whole.
    single(storage).verify("a/b").await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn delete_leaves_objects_of_other_names_below_the_prefix() {
    let storage = MemoryStorage::new();
    for r in save_all(&storage, 2, "outer", 1, 0).await {
        r.unwrap();
    }
    // What a save of "outer/inner" in progress has written so far: not part
    // of checkpoint "outer".
    let nested = "outer/inner/shard-00000-of-00001-00000000000000aa.bin";
    storage.put(nested, vec![1; 8].into()).await.unwrap();
    let report = single(storage.clone()).delete("outer").await.unwrap();
    assert!(report.is_complete());
    assert_eq!(report.deleted.len(), 3, "{:?}", report.deleted);
    assert_eq!(storage.keys(), [nested]);
}

#[tokio::test(start_paused = true)]
async fn retain_last_keeps_the_newest_and_ignores_saves_in_progress() {
    let storage = MemoryStorage::new();
    for (step, name) in [(1, "s1"), (2, "s2"), (3, "s3"), (4, "s4")] {
        for r in save_all(&storage, 2, name, step, 0).await {
            r.unwrap();
        }
    }
    let in_progress = "s5/shard-00000-of-00002-0000000000000005.bin";
    storage.put(in_progress, vec![5; 32].into()).await.unwrap();
    let ckpt = single(storage.clone());

    let report = ckpt.retain_last(2).await.unwrap();
    assert_eq!(report.kept, ["s4", "s3"]);
    assert_eq!(report.removed, ["s2", "s1"]);
    assert!(report.objects.is_complete());
    assert!(storage.keys().contains(&in_progress.to_string()));
    assert!(storage
        .keys()
        .iter()
        .all(|k| !k.starts_with("s1/") && !k.starts_with("s2/")));

    // Zero is clamped to one: the newest committed checkpoint stays.
    let report = ckpt.retain_last(0).await.unwrap();
    assert_eq!(report.kept, ["s4"]);
    assert_eq!(report.removed, ["s3"]);
    assert_eq!(ckpt.latest().await.unwrap().unwrap().name, "s4");
    ckpt.verify("s4").await.unwrap();
    assert!(storage.keys().contains(&in_progress.to_string()));
}

/// A storage whose objects under some prefixes look two hours old, and
/// whose clean-up of temporary objects reports two removed each time,
/// recording the age it was asked for.
#[derive(Debug, Clone)]
struct Aged {
    inner: MemoryStorage,
    old: Vec<&'static str>,
    temporary: Arc<std::sync::Mutex<Vec<Duration>>>,
}

impl Aged {
    fn new(old: Vec<&'static str>) -> Self {
        Aged {
            inner: MemoryStorage::new(),
            old,
            temporary: Arc::default(),
        }
    }

    /// The `older_than` of each call of `cleanup_temporary`.
    fn temporary_cleanups(&self) -> Vec<Duration> {
        self.temporary.lock().unwrap().clone()
    }

    fn age(&self, mut meta: ObjectMeta) -> ObjectMeta {
        if self.old.iter().any(|p| meta.key.starts_with(p)) {
            meta.last_modified = meta.last_modified.map(|t| t - Duration::from_secs(7200));
        }
        meta
    }
}

#[async_trait]
impl CheckpointStorage for Aged {
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
        Ok(self.age(self.inner.head(key).await?))
    }
    async fn delete(&self, key: &str) -> StorageResult<()> {
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str) -> StorageResult<Vec<ObjectMeta>> {
        Ok(self
            .inner
            .list(prefix)
            .await?
            .into_iter()
            .map(|m| self.age(m))
            .collect())
    }
    async fn put_stream(&self, key: &str) -> StorageResult<Box<dyn ObjectWriter>> {
        self.inner.put_stream(key).await
    }
    async fn get_stream(&self, key: &str) -> StorageResult<ObjectStream> {
        self.inner.get_stream(key).await
    }
    async fn cleanup_temporary(&self, older_than: Duration) -> StorageResult<u64> {
        self.temporary.lock().unwrap().push(older_than);
        Ok(2)
    }
}

#[tokio::test(start_paused = true)]
async fn cleanup_uncommitted_respects_the_grace_period() {
    let storage = Aged::new(vec!["crashed/", "done/", "notes/"]);
    for r in save_all(&storage, 2, "done", 1, 0).await {
        r.unwrap();
    }
    storage
        .put(
            "crashed/shard-00000-of-00002-0000000000000001.bin",
            vec![1; 8].into(),
        )
        .await
        .unwrap();
    storage
        .put(
            "crashed/shard-00001-of-00002-0000000000000002.bin",
            vec![2; 8].into(),
        )
        .await
        .unwrap();
    storage
        .put(
            "writing/shard-00000-of-00001-0000000000000003.bin",
            vec![3; 8].into(),
        )
        .await
        .unwrap();
    storage
        .put("notes/readme.txt", Bytes::from_static(b"not a checkpoint"))
        .await
        .unwrap();
    let before: Vec<String> = storage.inner.keys();

    let ckpt = single(storage.clone());
    let report = ckpt
        .cleanup_uncommitted(Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(report.removed, ["crashed"]);
    assert_eq!(report.recent, ["writing"]);
    assert_eq!(report.objects.deleted.len(), 2);
    let after = storage.inner.keys();
    assert_eq!(after.len(), before.len() - 2);
    assert!(after.iter().all(|k| !k.starts_with("crashed/")));
    ckpt.verify("done").await.unwrap();

    // With no grace, the recent leftover goes too; the committed checkpoint
    // and the unrelated object stay.
    let report = ckpt.cleanup_uncommitted(Duration::ZERO).await.unwrap();
    assert_eq!(report.removed, ["writing"]);
    let after = storage.inner.keys();
    assert!(after
        .iter()
        .all(|k| k.starts_with("done/") || k == "notes/readme.txt"));
    ckpt.verify("done").await.unwrap();
}

/// Stores a shard under `prefix` with no manifest: what a save that crashed
/// leaves, or a save in progress.
async fn leftover<S: CheckpointStorage>(storage: &S, prefix: &str) {
    storage
        .put(
            &format!("{prefix}/shard-00000-of-00002-00000000000000ee.bin"),
            vec![9; 8].into(),
        )
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_start_up_call_removes_old_leftovers_on_the_committing_rank_only() {
    let storage = Aged::new(vec!["crashed/"]);
    for r in save_all(&storage, 2, "done", 1, 0).await {
        r.unwrap();
    }
    leftover(&storage, "crashed").await;
    leftover(&storage, "young").await;
    let before = storage.inner.keys();
    let mut ranks = handles(&storage, InMemoryCoordinator::new(2));
    let rank1 = ranks.pop().unwrap();
    let rank0 = ranks.pop().unwrap();

    // A rank that does not commit removes nothing, nor does its retention.
    let report = rank1.cleanup_on_start().await.unwrap();
    assert!(report.removed.is_empty() && report.recent.is_empty());
    assert_eq!(report.temporary, 0);
    let report = rank1.retain_last(1).await.unwrap();
    assert!(report.leftovers.removed.is_empty() && report.leftovers.recent.is_empty());
    assert_eq!(storage.inner.keys(), before);
    assert!(storage.temporary_cleanups().is_empty());

    // Rank 0 removes the leftover older than the grace (10 minutes by
    // default) and the storage's old temporary objects; the young prefix
    // may be a save in progress, and stays.
    let report = rank0.cleanup_on_start().await.unwrap();
    assert_eq!(report.removed, ["crashed"]);
    assert_eq!(report.recent, ["young"]);
    assert_eq!(report.temporary, 2);
    assert!(report.objects.is_complete());
    assert_eq!(storage.temporary_cleanups(), [Duration::from_secs(600)]);
    let after = storage.inner.keys();
    assert!(after.iter().all(|k| !k.starts_with("crashed/")));
    assert!(after.iter().any(|k| k.starts_with("young/")));
    rank0.verify("done").await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn retention_also_removes_old_leftovers() {
    let storage = Aged::new(vec!["crashed-1/", "crashed-2/"]);
    for (name, step) in [("s1", 1), ("s2", 2), ("s3", 3)] {
        for r in save_all(&storage, 1, name, step, 0).await {
            r.unwrap();
        }
    }
    leftover(&storage, "crashed-1").await;
    leftover(&storage, "crashed-2").await;
    leftover(&storage, "young").await;

    let ckpt = single(storage.clone());
    let report = ckpt.retain_last(2).await.unwrap();
    assert_eq!(report.kept, ["s3", "s2"]);
    assert_eq!(report.removed, ["s1"]);
    assert_eq!(report.leftovers.removed, ["crashed-1", "crashed-2"]);
    assert_eq!(report.leftovers.recent, ["young"]);
    assert_eq!(report.leftovers.temporary, 2);
    let after = storage.inner.keys();
    assert!(after
        .iter()
        .all(|k| k.starts_with("s2/") || k.starts_with("s3/") || k.starts_with("young/")));
    assert!(after.iter().any(|k| k.starts_with("young/")));
}

#[tokio::test(start_paused = true)]
async fn a_save_in_progress_survives_the_clean_ups_and_commits() {
    let storage = MemoryStorage::new();
    let mut ranks = handles(&storage, InMemoryCoordinator::new(2)).into_iter();
    let rank0 = ranks.next().unwrap();
    let rank1 = ranks.next().unwrap();
    // Rank 1 writes its shard, then waits for rank 0 at the exchange.
    let saving = tokio::spawn(async move {
        let info = rank1
            .save("step-5", &shard_of(1, 5), SaveOptions::new().step(5))
            .await;
        (info, rank1)
    });
    while !storage
        .keys()
        .iter()
        .any(|k| k.starts_with("step-5/shard-00001-"))
    {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    // Meanwhile rank 0 starts up and cleans up, and applies retention.
    let report = rank0.cleanup_on_start().await.unwrap();
    assert!(report.removed.is_empty());
    assert_eq!(report.recent, ["step-5"]);
    let report = rank0.retain_last(1).await.unwrap();
    assert!(report.leftovers.removed.is_empty());
    assert_eq!(report.leftovers.recent, ["step-5"]);

    // Rank 0 joins the save: it commits, and every rank loads its shard.
    let info0 = rank0
        .save("step-5", &shard_of(0, 5), SaveOptions::new().step(5))
        .await
        .unwrap();
    let (info1, rank1) = saving.await.unwrap();
    assert_eq!(info1.unwrap(), info0);
    assert_eq!(
        rank0.load("step-5", LoadOptions::default()).await.unwrap(),
        shard_bytes(0, 5)
    );
    assert_eq!(
        rank1.load("step-5", LoadOptions::default()).await.unwrap(),
        shard_bytes(1, 5)
    );
}

#[tokio::test(start_paused = true)]
async fn a_two_rank_job_reads_what_a_four_rank_job_saved() {
    let storage = MemoryStorage::new();
    for r in save_all(&storage, 4, "wide", 5, 42).await {
        r.unwrap();
    }
    let results = on_every_rank(
        handles(&storage, InMemoryCoordinator::new(2)),
        |c| async move {
            // Rank r of 2 takes the layers of old ranks 2r and 2r + 1.
            let mine = [2 * c.rank(), 2 * c.rank() + 1];
            let entries = c
                .load_entries("wide", |e| {
                    mine.iter().any(|r| e.starts_with(&format!("layer.{r}.")))
                })
                .await?;
            let strict = c.load("wide", LoadOptions::default()).await;
            let loose = c.load("wide", LoadOptions::new().strict(false)).await?;
            Ok::<_, CheckpointError>((c.rank(), entries, strict, loose))
        },
    )
    .await;
    for r in results {
        let (rank, entries, strict, loose) = r.unwrap();
        assert_eq!(entries.len(), 4);
        for old in [2 * rank, 2 * rank + 1] {
            let shard = shard_of(old, 42);
            for (name, data) in shard.entries() {
                assert_eq!(&entries[name], data, "{name}");
            }
        }
        assert!(
            matches!(&strict, Err(CheckpointError::LoadFailed { reason, .. }) if reason.contains("4 ranks")),
            "{strict:?}"
        );
        assert_eq!(loose, shard_bytes(rank, 42));
    }
}

#[tokio::test(start_paused = true)]
async fn a_commit_slower_than_the_timeout_is_still_heard_by_every_rank() {
    // Rank 0 takes 40 s to write the manifest; the others give up on the
    // commit exchange after 30 s. They must not report a failure for a
    // checkpoint that then commits.
    let storage = MemoryStorage::new();
    storage
        .faults()
        .set_latency(Operation::PutIfAbsent, Duration::from_secs(40));
    let timeout = Duration::from_secs(30);
    let results = on_every_rank(
        handles(&storage, InMemoryCoordinator::new(3)),
        move |c| async move {
            let shard = shard_of(c.rank(), 4);
            c.save("slow", &shard, SaveOptions::new().timeout(timeout))
                .await
        },
    )
    .await;
    for (rank, r) in results.iter().enumerate() {
        assert!(r.is_ok(), "rank {rank}: {r:?}");
    }
    assert!(results
        .windows(2)
        .all(|w| w[0].as_ref().unwrap() == w[1].as_ref().unwrap()));
    single(storage).verify("slow").await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn shard_checks_slower_than_the_timeout_fail_the_save_on_every_rank() {
    // Every `head` takes 40 s, so rank 0's check of the shards outlasts the
    // 30 s the others wait for the commit outcome. Rank 0 must not commit a
    // checkpoint the others have stopped waiting for: every rank fails, and
    // nothing is left.
    let storage = MemoryStorage::new();
    storage
        .faults()
        .set_latency(Operation::Head, Duration::from_secs(40));
    let timeout = Duration::from_secs(30);
    let results = on_every_rank(
        handles(&storage, InMemoryCoordinator::new(3)),
        move |c| async move {
            let shard = shard_of(c.rank(), 5);
            c.save("checked", &shard, SaveOptions::new().timeout(timeout))
                .await
        },
    )
    .await;
    for (rank, r) in results.iter().enumerate() {
        assert!(r.is_err(), "rank {rank}: {r:?}");
    }
    assert!(
        matches!(&results[0], Err(CheckpointError::SaveFailed { failed_ranks, .. }) if failed_ranks == &[0]),
        "{:?}",
        results[0]
    );
    storage.faults().clear();
    assert!(single(storage.clone()).list().await.unwrap().is_empty());
    assert!(storage.is_empty(), "left behind: {:?}", storage.keys());
}

#[tokio::test(start_paused = true)]
async fn a_rank_that_never_hears_the_commit_keeps_its_shard() {
    // The manifest write takes longer than twice the timeout: the ranks that
    // wait for it give up, but delete nothing, so the checkpoint that rank 0
    // then commits is whole.
    let storage = MemoryStorage::new();
    storage
        .faults()
        .set_latency(Operation::PutIfAbsent, Duration::from_secs(100));
    let timeout = Duration::from_secs(30);
    let results = on_every_rank(
        handles(&storage, InMemoryCoordinator::new(3)),
        move |c| async move {
            let shard = shard_of(c.rank(), 4);
            c.save("slower", &shard, SaveOptions::new().timeout(timeout))
                .await
        },
    )
    .await;
    assert!(results[0].is_ok(), "{:?}", results[0]);
    for (rank, r) in results.iter().enumerate().skip(1) {
        assert!(
            matches!(r, Err(CheckpointError::Timeout { missing_ranks, .. }) if missing_ranks == &[0]),
            "rank {rank}: {r:?}"
        );
    }
    single(storage).verify("slower").await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_absent_rank_times_out_everyone_and_is_named() {
    let storage = MemoryStorage::new();
    let ranks = InMemoryCoordinator::new(4);
    ranks[0].faults().set_absent(3, true);
    let timeout = Duration::from_secs(30);
    let results = on_every_rank(handles(&storage, ranks), move |c| async move {
        let shard = shard_of(c.rank(), 0);
        c.save("lost", &shard, SaveOptions::new().timeout(timeout))
            .await
    })
    .await;
    for (rank, r) in results.into_iter().enumerate() {
        match r {
            Err(CheckpointError::Timeout {
                missing_ranks,
                after,
                name,
                ..
            }) => {
                assert_eq!(missing_ranks, vec![3], "rank {rank}");
                assert_eq!(after, timeout);
                assert_eq!(name, "lost");
            }
            other => panic!("rank {rank}: expected a timeout, got {other:?}"),
        }
    }
    assert!(storage.is_empty(), "left behind: {:?}", storage.keys());
    assert!(single(storage).list().await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_dropped_save_leaves_no_visible_checkpoint() {
    let storage = MemoryStorage::new();
    let ranks = InMemoryCoordinator::new(4);
    // Rank 2 is slow to arrive, so the others wait at the exchange when the
    // saves are dropped.
    ranks[0].faults().set_delay(2, Duration::from_secs(60));
    let results = on_every_rank(handles(&storage, ranks), |c| async move {
        let shard = shard_of(c.rank(), 0);
        tokio::time::timeout(
            Duration::from_secs(5),
            c.save("dropped", &shard, SaveOptions::new()),
        )
        .await
    })
    .await;
    assert!(results.iter().all(|r| r.is_err()), "every save was cut off");
    let ckpt = single(storage.clone());
    assert!(ckpt.list().await.unwrap().is_empty());
    assert!(!storage.keys().contains(&manifest_key("dropped")));
    assert!(matches!(
        ckpt.load("dropped", LoadOptions::default()).await,
        Err(CheckpointError::NotFound { .. })
    ));
    assert!(
        !storage.is_empty(),
        "the shards written before the drop are leftovers"
    );
    let report = ckpt.cleanup_uncommitted(Duration::ZERO).await.unwrap();
    assert_eq!(report.removed, ["dropped"]);
    assert!(storage.is_empty());
}

#[tokio::test(start_paused = true)]
async fn saving_the_same_name_twice_leaves_the_first_intact() {
    let storage = MemoryStorage::new();
    for r in save_all(&storage, 3, "once", 1, 1).await {
        r.unwrap();
    }
    let before: Vec<(String, Bytes)> = {
        let mut v = Vec::new();
        for k in storage.keys() {
            let data = storage.get(&k).await.unwrap();
            v.push((k, data));
        }
        v
    };
    for (rank, r) in save_all(&storage, 3, "once", 2, 2)
        .await
        .into_iter()
        .enumerate()
    {
        assert!(
            matches!(&r, Err(CheckpointError::AlreadyExists { name }) if name == "once"),
            "rank {rank}: {r:?}"
        );
    }
    let mut after = Vec::new();
    for k in storage.keys() {
        let data = storage.get(&k).await.unwrap();
        after.push((k, data));
    }
    assert_eq!(
        before, after,
        "the first checkpoint is untouched and nothing was added"
    );
    let loaded = on_every_rank(
        handles(&storage, InMemoryCoordinator::new(3)),
        |c| async move { c.load("once", LoadOptions::default()).await },
    )
    .await;
    for (rank, bytes) in loaded.into_iter().enumerate() {
        assert_eq!(bytes.unwrap(), shard_bytes(rank, 1));
    }
}

#[tokio::test(start_paused = true)]
async fn duplicate_entry_names_fail_on_every_rank() {
    let storage = MemoryStorage::new();
    let results = on_every_rank(
        handles(&storage, InMemoryCoordinator::new(3)),
        |c| async move {
            let shard = ShardData::new().with_entry("shared", vec![c.rank() as u8]);
            c.save("dup", &shard, SaveOptions::new()).await
        },
    )
    .await;
    for r in results {
        match r {
            Err(CheckpointError::SaveFailed {
                failed_ranks,
                reason,
                ..
            }) => {
                assert_eq!(failed_ranks, vec![0, 1]);
                assert!(reason.contains("\"shared\""), "{reason}");
            }
            other => panic!("expected SaveFailed, got {other:?}"),
        }
    }
    assert!(storage.is_empty(), "left behind: {:?}", storage.keys());
}

#[tokio::test(start_paused = true)]
async fn checkpoints_do_not_nest() {
    let storage = MemoryStorage::new();
    for r in save_all(&storage, 1, "outer", 1, 0).await {
        r.unwrap();
    }
    let inner = save_all(&storage, 1, "outer/inner", 2, 0).await.remove(0);
    assert!(
        matches!(inner, Err(CheckpointError::SaveFailed { .. })),
        "{inner:?}"
    );
    for r in save_all(&storage, 1, "a/b", 1, 0).await {
        r.unwrap();
    }
    let around = save_all(&storage, 1, "a", 2, 0).await.remove(0);
    assert!(
        matches!(around, Err(CheckpointError::SaveFailed { .. })),
        "{around:?}"
    );
    let storage_keys = storage.keys();
    let names: Vec<_> = single(storage)
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names.len(), 2, "{names:?} {:?}", storage_keys);
}

#[tokio::test(start_paused = true)]
async fn a_newer_manifest_version_is_refused() {
    let storage = MemoryStorage::new();
    for r in save_all(&storage, 1, "future", 1, 0).await {
        r.unwrap();
    }
    let key = manifest_key("future");
    let mut json: serde_json::Value =
        serde_json::from_slice(&storage.get(&key).await.unwrap()).unwrap();
    json["format_version"] = (FORMAT_VERSION + 1).into();
    storage
        .put(&key, serde_json::to_vec(&json).unwrap().into())
        .await
        .unwrap();
    let ckpt = single(storage);
    let err = ckpt
        .load("future", LoadOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CheckpointError::IncompatibleVersion {
                found,
                supported: FORMAT_VERSION,
                ..
            } if found == FORMAT_VERSION + 1
        ),
        "{err}"
    );
    assert!(ckpt.list().await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_manifest_read_back_is_the_one_written() {
    let storage = MemoryStorage::new();
    for r in save_all(&storage, 2, "m", 3, 0).await {
        r.unwrap();
    }
    let bytes = storage.get(&manifest_key("m")).await.unwrap();
    let manifest = Manifest::from_bytes("m", &bytes).unwrap();
    assert_eq!(manifest.world_size, 2);
    assert_eq!(manifest.step, Some(3));
    assert!(manifest.created_at_time() <= SystemTime::now());
    for shard in &manifest.shards {
        assert!(shard.key.starts_with("m/shard-"));
        assert_eq!(storage.head(&shard.key).await.unwrap().size, shard.size);
    }
}

/// The rank whose shard key `key` is (`NAME/shard-<rank>-of-...`).
fn rank_of_shard_key(key: &str) -> usize {
    let digits = key
        .rsplit('/')
        .next()
        .unwrap()
        .strip_prefix("shard-")
        .unwrap();
    digits[..5].parse().unwrap()
}

#[tokio::test(start_paused = true)]
async fn every_rank_sees_the_same_outcome_when_one_rank_fails() {
    let storage = MemoryStorage::new();
    // The third shard write fails for good.
    storage
        .faults()
        .fail_nth(Operation::PutStream, 3)
        .permanent();
    let results = save_all(&storage, 4, "half", 1, 0).await;
    let failed_key = storage
        .calls()
        .into_iter()
        .filter(|c| c.operation == Operation::PutStream)
        .nth(2)
        .unwrap()
        .key;
    let failed_rank = rank_of_shard_key(&failed_key);
    let mut reasons = Vec::new();
    for (rank, r) in results.into_iter().enumerate() {
        match r {
            Err(CheckpointError::SaveFailed {
                name,
                failed_ranks,
                reason,
                source,
            }) => {
                assert_eq!(name, "half");
                assert_eq!(failed_ranks, vec![failed_rank], "rank {rank}");
                assert!(reason.contains(&format!("rank {failed_rank}")), "{reason}");
                // The failed rank carries its own cause.
                assert_eq!(source.is_some(), rank == failed_rank, "rank {rank}");
                reasons.push(reason);
            }
            other => panic!("rank {rank}: expected SaveFailed, got {other:?}"),
        }
    }
    assert!(
        reasons.windows(2).all(|w| w[0] == w[1]),
        "the same reason everywhere"
    );
    assert!(storage.is_empty(), "left behind: {:?}", storage.keys());
    assert!(single(storage).list().await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn transient_write_faults_are_retried_within_the_save() {
    let storage = MemoryStorage::new();
    storage.faults().fail_next(Operation::PutStream, 3);
    for r in save_all(&storage, 4, "bumpy", 1, 3).await {
        r.unwrap();
    }
    assert_eq!(storage.count(Operation::PutStream), 7);
    single(storage).verify("bumpy").await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_failed_commit_is_rolled_back_everywhere() {
    let storage = MemoryStorage::new();
    storage
        .faults()
        .fail_next(Operation::PutIfAbsent, 1)
        .permanent();
    for (rank, r) in save_all(&storage, 3, "uncommitted", 1, 0)
        .await
        .into_iter()
        .enumerate()
    {
        match r {
            Err(CheckpointError::SaveFailed {
                failed_ranks,
                reason,
                ..
            }) => {
                assert_eq!(failed_ranks, vec![0], "rank {rank}");
                assert!(reason.contains("manifest"), "{reason}");
            }
            other => panic!("rank {rank}: expected SaveFailed, got {other:?}"),
        }
    }
    assert!(storage.is_empty(), "left behind: {:?}", storage.keys());
}

#[tokio::test(start_paused = true)]
async fn a_lost_commit_answer_is_recognised() {
    let storage = MemoryStorage::new();
    // The manifest is written but the answer is lost: the retry finds the
    // identical manifest in place and the save succeeds.
    let writer = storage.clone();
    let wrapped = LostAnswer {
        inner: writer,
        transient: true,
    };
    for r in save_all(&wrapped, 2, "lost-answer", 1, 0).await {
        r.unwrap();
    }
    single(storage).verify("lost-answer").await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_manifest_stored_despite_a_permanent_error_is_not_orphaned() {
    // The manifest lands, but the write reports a permanent error, so it is
    // not retried. Rolling back the shards now would leave a visible
    // checkpoint that cannot be loaded: rank 0 must find its manifest and
    // report the commit.
    let storage = MemoryStorage::new();
    let wrapped = LostAnswer {
        inner: storage.clone(),
        transient: false,
    };
    for (rank, r) in save_all(&wrapped, 3, "landed", 1, 0)
        .await
        .into_iter()
        .enumerate()
    {
        assert!(r.is_ok(), "rank {rank}: {r:?}");
    }
    let ckpt = single(storage);
    ckpt.verify("landed").await.unwrap();
    assert_eq!(ckpt.list().await.unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_unknown_commit_outcome_leaves_every_shard_in_place() {
    // The manifest lands with a permanent error, and it cannot be read back
    // either: rank 0 cannot tell whether the checkpoint is committed. Every
    // rank fails the same way, and no shard is deleted, so that whatever the
    // storage holds is either a whole checkpoint or leftovers.
    let storage = MemoryStorage::new();
    storage
        .faults()
        .fail_next(Operation::GetStream, 1_000)
        .permanent();
    storage
        .faults()
        .fail_next(Operation::Get, 1_000)
        .permanent();
    let wrapped = LostAnswer {
        inner: storage.clone(),
        transient: false,
    };
    let results = save_all(&wrapped, 3, "unknown", 1, 0).await;
    let mut reasons = Vec::new();
    for (rank, r) in results.into_iter().enumerate() {
        match r {
            Err(CheckpointError::SaveFailed {
                failed_ranks,
                reason,
                ..
            }) => {
                assert_eq!(failed_ranks, vec![0], "rank {rank}");
                assert!(reason.contains("unknown"), "{reason}");
                reasons.push(reason);
            }
            other => panic!("rank {rank}: expected SaveFailed, got {other:?}"),
        }
    }
    assert!(reasons.windows(2).all(|w| w[0] == w[1]));
    // Nothing was rolled back: three shards and the manifest.
    assert_eq!(storage.len(), 4, "{:?}", storage.keys());
    storage.faults().clear();
    single(storage).verify("unknown").await.unwrap();
}

/// A storage whose first `put_if_absent` stores the object but reports a
/// failure (transient or not), as a connection reset after the write would.
#[derive(Debug, Clone)]
struct LostAnswer {
    inner: MemoryStorage,
    transient: bool,
}

#[async_trait]
impl CheckpointStorage for LostAnswer {
    async fn put(&self, key: &str, data: Bytes) -> StorageResult<()> {
        self.inner.put(key, data).await
    }
    async fn put_if_absent(&self, key: &str, data: Bytes) -> StorageResult<()> {
        let first = self.inner.count(Operation::PutIfAbsent) == 0;
        self.inner.put_if_absent(key, data).await?;
        if first {
            return Err(steadfast::storage::StorageError::Injected {
                operation: "put_if_absent",
                key: key.to_string(),
                transient: self.transient,
            });
        }
        Ok(())
    }
    async fn get(&self, key: &str) -> StorageResult<Bytes> {
        self.inner.get(key).await
    }
    async fn head(&self, key: &str) -> StorageResult<ObjectMeta> {
        self.inner.head(key).await
    }
    async fn delete(&self, key: &str) -> StorageResult<()> {
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str) -> StorageResult<Vec<ObjectMeta>> {
        self.inner.list(prefix).await
    }
    async fn put_stream(&self, key: &str) -> StorageResult<Box<dyn ObjectWriter>> {
        self.inner.put_stream(key).await
    }
    async fn get_stream(&self, key: &str) -> StorageResult<ObjectStream> {
        self.inner.get_stream(key).await
    }
}

/// A coordinator whose first all-gather loses the last rank's report, as a
/// faulty coordinator backend might.
#[derive(Debug)]
struct LosesAReport {
    inner: InMemoryCoordinator,
    gathers: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl Coordinator for LosesAReport {
    fn rank(&self) -> usize {
        self.inner.rank()
    }
    fn world_size(&self) -> usize {
        self.inner.world_size()
    }
    fn name(&self) -> &str {
        "loses-a-report"
    }
    async fn barrier(&self, timeout: Duration) -> CoordinatorResult<()> {
        self.inner.barrier(timeout).await
    }
    async fn all_gather(
        &self,
        data: Vec<u8>,
        timeout: Duration,
    ) -> CoordinatorResult<Vec<Vec<u8>>> {
        let mut all = self.inner.all_gather(data, timeout).await?;
        if self
            .gathers
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            == 0
        {
            all.pop();
        }
        Ok(all)
    }
    async fn signal(&self, key: &str, payload: Vec<u8>) -> CoordinatorResult<u64> {
        self.inner.signal(key, payload).await
    }
    async fn wait_for_rank(
        &self,
        rank: usize,
        key: &str,
        min_seq: u64,
        timeout: Duration,
    ) -> CoordinatorResult<Signal> {
        self.inner.wait_for_rank(rank, key, min_seq, timeout).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_missing_report_is_blamed_on_the_same_rank_everywhere() {
    let storage = MemoryStorage::new();
    let tasks: Vec<_> = InMemoryCoordinator::new(3)
        .into_iter()
        .map(|inner| {
            let coordinator = LosesAReport {
                inner,
                gathers: Default::default(),
            };
            let ckpt =
                DistributedCheckpoint::new(storage.clone(), coordinator, policy(), options());
            tokio::spawn(async move {
                let shard = shard_of(ckpt.rank(), 0);
                ckpt.save("short", &shard, SaveOptions::new()).await
            })
        })
        .collect();
    for (rank, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Err(CheckpointError::SaveFailed { failed_ranks, .. }) => {
                assert_eq!(failed_ranks, vec![2], "rank {rank}");
            }
            other => panic!("rank {rank}: expected SaveFailed, got {other:?}"),
        }
    }
    assert!(storage.is_empty(), "left behind: {:?}", storage.keys());
}

// ---------------------------------------------------------------------
// The commit sequence when a manifest read comes back damaged.
// ---------------------------------------------------------------------

/// Two checkpoints, `b-1` (step 1, sequence 1) and `b-2` (step 2, sequence
/// 2), on a storage that can damage the reads of one key.
async fn two_committed() -> (DamagedReads, Ckpt<DamagedReads>) {
    let storage = DamagedReads::new(MemoryStorage::new());
    let ckpt = single(storage.clone());
    for step in [1, 2] {
        ckpt.save(
            &format!("b-{step}"),
            &shard_of(0, 1),
            SaveOptions::new().step(step),
        )
        .await
        .unwrap();
    }
    (storage, ckpt)
}

#[tokio::test(start_paused = true)]
async fn a_manifest_read_damaged_once_during_a_commit_is_read_again() {
    let (storage, ckpt) = two_committed().await;
    // The commit of `a-3` reads the newest manifest damaged once: skipping
    // it would give `a-3` the sequence of `b-2`, and the order by name would
    // make `b-2` the latest.
    storage.damage(&manifest_key("b-2"), 1);
    let info = ckpt
        .save("a-3", &shard_of(0, 1), SaveOptions::new().step(3))
        .await
        .unwrap();
    assert_eq!(storage.damaged(), 1);
    assert_eq!(info.sequence, Some(3));
    let latest = ckpt.latest().await.unwrap().unwrap();
    assert_eq!((latest.name.as_str(), latest.sequence), ("a-3", Some(3)));
    let names: Vec<_> = ckpt
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["a-3", "b-2", "b-1"]);
}

#[tokio::test(start_paused = true)]
async fn a_commit_refuses_a_sequence_while_a_manifest_reads_damaged_every_time() {
    let (storage, ckpt) = two_committed().await;
    storage.damage(&manifest_key("b-2"), u64::MAX);
    let err = ckpt
        .save("a-3", &shard_of(0, 1), SaveOptions::new().step(3))
        .await
        .unwrap_err();
    match &err {
        CheckpointError::SaveFailed { reason, .. } => {
            assert!(reason.contains("commit sequence"), "{reason}");
            assert!(reason.contains("b-2"), "{reason}");
            assert!(reason.contains("damaged on the way"), "{reason}");
        }
        other => panic!("expected SaveFailed, got {other:?}"),
    }
    // Nothing of the refused save is left, and `list` still skips the
    // manifest it cannot read.
    let names: Vec<_> = ckpt
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["b-1"]);
    storage.heal();
    assert!(storage.inner.keys().iter().all(|k| !k.starts_with("a-3/")));
    let info = ckpt
        .save("a-3", &shard_of(0, 1), SaveOptions::new().step(3))
        .await
        .unwrap();
    assert_eq!(info.sequence, Some(3));
    assert_eq!(ckpt.latest().await.unwrap().unwrap().name, "a-3");
}

#[tokio::test(start_paused = true)]
async fn a_manifest_damaged_in_storage_is_skipped_by_the_commit() {
    let (storage, ckpt) = two_committed().await;
    // The same damaged bytes on every read: damaged in storage, so no load
    // will ever see `b-2`, and the commit goes on without it.
    let key = manifest_key("b-2");
    let mut bytes = storage.inner.get(&key).await.unwrap().to_vec();
    bytes[10] ^= 0x04;
    storage.inner.put(&key, bytes.into()).await.unwrap();
    let info = ckpt
        .save("a-3", &shard_of(0, 1), SaveOptions::new().step(3))
        .await
        .unwrap();
    assert_eq!(info.sequence, Some(2));
    let names: Vec<_> = ckpt
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["a-3", "b-1"]);
}
