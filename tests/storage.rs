//! Storage implementations: the conformance suite on each of them (also
//! through trait objects), fault injection of `MemoryStorage`, and the
//! crash-safety details of `LocalFsStorage`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use steadfast::retry::Transient;
use steadfast::storage::testing::{Call, Operation};
use steadfast::storage::Bytes;
use steadfast::storage::{
    conformance, CheckpointStorage, LocalFsStorage, MemoryStorage, StorageError,
};
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

fn local() -> (tempfile::TempDir, LocalFsStorage) {
    let dir = tempfile::tempdir().unwrap();
    let storage = LocalFsStorage::new(dir.path().join("root")).unwrap();
    (dir, storage)
}

/// Every file under `dir`, as paths relative to it, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let file_type = entry.file_type().unwrap();
            if file_type.is_dir() {
                walk(base, &entry.path(), out);
            } else {
                out.push(entry.path().strip_prefix(base).unwrap().to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn temp_files_under(dir: &Path) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.starts_with('.') && name.contains(".tmp-")
        })
        .collect()
}

fn injected(err: &StorageError) -> (&'static str, String, bool) {
    match err {
        StorageError::Injected {
            operation,
            key,
            transient,
        } => (operation, key.clone(), *transient),
        other => panic!("expected an injected fault, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Conformance

#[tokio::test]
async fn memory_storage_conforms() {
    conformance::run_all(&MemoryStorage::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_fs_storage_conforms() {
    let (_dir, storage) = local();
    conformance::run_all(&storage).await;
    assert!(files_under(storage.root()).is_empty());
}

#[tokio::test]
async fn memory_storage_conforms_through_arc_dyn() {
    let storage: Arc<dyn CheckpointStorage> = Arc::new(MemoryStorage::new());
    conformance::run_all(&storage).await;
    conformance::run_all(storage.as_ref()).await;
}

#[tokio::test]
async fn memory_storage_conforms_through_box_dyn() {
    let storage: Box<dyn CheckpointStorage> = Box::new(MemoryStorage::new());
    conformance::run_all(&storage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_fs_storage_conforms_through_arc_dyn() {
    let (_dir, storage) = local();
    let storage: Arc<dyn CheckpointStorage> = Arc::new(storage);
    conformance::run_all(&storage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_fs_storage_conforms_through_box_dyn() {
    let (_dir, storage) = local();
    let storage: Box<dyn CheckpointStorage> = Box::new(storage);
    conformance::run_all(&storage).await;
}

#[tokio::test]
#[should_panic(expected = "must be empty")]
async fn conformance_refuses_a_storage_that_is_not_empty() {
    let storage = MemoryStorage::new();
    storage.put("left/over", vec![1].into()).await.unwrap();
    conformance::run_all(&storage).await;
}

/// A storage that breaks the contract in one way: `put_if_absent` overwrites.
#[derive(Debug, Default)]
struct Overwriting(MemoryStorage);

#[async_trait::async_trait]
impl CheckpointStorage for Overwriting {
    async fn put(&self, key: &str, data: Bytes) -> steadfast::storage::Result<()> {
        self.0.put(key, data).await
    }
    async fn put_if_absent(&self, key: &str, data: Bytes) -> steadfast::storage::Result<()> {
        self.0.put(key, data).await
    }
    async fn get(&self, key: &str) -> steadfast::storage::Result<Bytes> {
        self.0.get(key).await
    }
    async fn head(&self, key: &str) -> steadfast::storage::Result<steadfast::storage::ObjectMeta> {
        self.0.head(key).await
    }
    async fn delete(&self, key: &str) -> steadfast::storage::Result<()> {
        self.0.delete(key).await
    }
    async fn list(
        &self,
        prefix: &str,
    ) -> steadfast::storage::Result<Vec<steadfast::storage::ObjectMeta>> {
        self.0.list(prefix).await
    }
    async fn put_stream(
        &self,
        key: &str,
    ) -> steadfast::storage::Result<Box<dyn steadfast::storage::ObjectWriter>> {
        self.0.put_stream(key).await
    }
    async fn get_stream(
        &self,
        key: &str,
    ) -> steadfast::storage::Result<steadfast::storage::ObjectStream> {
        self.0.get_stream(key).await
    }
}

#[tokio::test]
#[should_panic(expected = "storage conformance check `put_if_absent_conflicts` failed")]
async fn conformance_catches_a_broken_put_if_absent() {
    conformance::put_if_absent_conflicts(&Overwriting::default()).await;
}

// ---------------------------------------------------------------------------
// MemoryStorage fault injection

#[tokio::test]
async fn fail_nth_fails_exactly_that_call() {
    let storage = MemoryStorage::new();
    let rule = storage.faults().fail_nth(Operation::Put, 3);
    for i in 1..=5 {
        let result = storage.put(&format!("k{i}"), vec![i].into()).await;
        if i == 3 {
            let err = result.unwrap_err();
            assert_eq!(injected(&err), ("put", "k3".to_string(), true));
            assert!(err.is_transient());
        } else {
            result.unwrap();
        }
    }
    assert_eq!(storage.keys(), ["k1", "k2", "k4", "k5"]);
    assert_eq!(rule.fired(), 1);
    // Other operations are not affected.
    assert_eq!(storage.get("k1").await.unwrap(), &[1][..]);
}

#[tokio::test]
async fn fail_nth_counts_from_when_the_rule_is_added() {
    let storage = MemoryStorage::new();
    storage.get("a").await.unwrap_err();
    storage.get("a").await.unwrap_err();
    storage.put("a", vec![1].into()).await.unwrap();
    storage.faults().fail_nth(Operation::Get, 2);
    assert!(storage.get("a").await.is_ok());
    assert!(matches!(
        storage.get("a").await,
        Err(StorageError::Injected { .. })
    ));
    assert!(storage.get("a").await.is_ok());
}

#[tokio::test]
async fn fail_next_fails_k_calls_then_recovers() {
    let storage = MemoryStorage::new();
    storage.put("a", vec![1].into()).await.unwrap();
    storage.faults().fail_next(Operation::Get, 3).permanent();
    for _ in 0..3 {
        let err = storage.get("a").await.unwrap_err();
        assert_eq!(injected(&err), ("get", "a".to_string(), false));
        assert!(!err.is_transient());
    }
    assert_eq!(storage.get("a").await.unwrap(), &[1][..]);
}

#[tokio::test]
async fn every_operation_can_fail() {
    let storage = MemoryStorage::new();
    storage.put("k", vec![1].into()).await.unwrap();
    for operation in Operation::ALL {
        storage.faults().fail_next(operation, 1);
    }
    let names: Vec<&str> = vec![
        injected(&storage.put("k", vec![2].into()).await.unwrap_err()).0,
        injected(
            &storage
                .put_if_absent("n", vec![2].into())
                .await
                .unwrap_err(),
        )
        .0,
        injected(&storage.get("k").await.unwrap_err()).0,
        injected(&storage.head("k").await.unwrap_err()).0,
        injected(&storage.delete("k").await.unwrap_err()).0,
        injected(&storage.list("").await.unwrap_err()).0,
        {
            let mut writer = storage.put_stream("s").await.unwrap();
            injected(&writer.write(b"x").await.unwrap_err()).0
        },
        injected(&storage.get_stream("k").await.unwrap_err()).0,
        injected(&storage.get_range("k", 0..1).await.unwrap_err()).0,
    ];
    assert_eq!(
        names,
        Operation::ALL.map(Operation::name).to_vec(),
        "each operation reports its own name"
    );
    // Nothing changed.
    assert_eq!(storage.keys(), ["k"]);
    assert_eq!(storage.get("k").await.unwrap(), &[1][..]);
}

#[tokio::test]
async fn a_failed_streamed_write_fails_its_writes_and_its_commit() {
    let storage = MemoryStorage::new();
    storage.faults().fail_nth(Operation::PutStream, 1);
    let mut writer = storage.put_stream("s").await.unwrap();
    assert!(writer.write(b"abc").await.is_err());
    assert!(writer.write(b"def").await.is_err());
    assert!(writer.commit().await.is_err());
    assert!(!storage.exists("s").await.unwrap());

    // A stream with no write fails at the commit.
    storage.faults().fail_nth(Operation::PutStream, 1);
    let writer = storage.put_stream("s").await.unwrap();
    assert!(writer.commit().await.is_err());
    assert!(!storage.exists("s").await.unwrap());
}

async fn failure_pattern(seed: u64) -> Vec<bool> {
    let storage = MemoryStorage::new();
    storage.put("a", vec![1].into()).await.unwrap();
    storage
        .faults()
        .fail_with_probability(Operation::Get, 0.3, seed)
        .unwrap();
    let mut pattern = Vec::new();
    for _ in 0..200 {
        pattern.push(storage.get("a").await.is_err());
    }
    pattern
}

#[tokio::test]
async fn seeded_probability_is_deterministic() {
    let first = failure_pattern(7).await;
    let second = failure_pattern(7).await;
    assert_eq!(first, second, "the same seed gives the same failures");
    let failures = first.iter().filter(|f| **f).count();
    assert!(
        (30..=90).contains(&failures),
        "about 30% of 200 calls fail, got {failures}"
    );
    assert_ne!(
        first,
        failure_pattern(8).await,
        "another seed gives other failures"
    );
}

#[tokio::test]
async fn probability_bounds() {
    let storage = MemoryStorage::new();
    for bad in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
        let err = storage
            .faults()
            .fail_with_probability(Operation::Get, bad, 1)
            .unwrap_err();
        assert_eq!(err.field(), "probability");
    }
    storage.put("a", vec![].into()).await.unwrap();
    let never = storage
        .faults()
        .fail_with_probability(Operation::Get, 0.0, 1)
        .unwrap();
    for _ in 0..50 {
        storage.get("a").await.unwrap();
    }
    never.remove();
    storage
        .faults()
        .fail_with_probability(Operation::Get, 1.0, 1)
        .unwrap();
    for _ in 0..50 {
        storage.get("a").await.unwrap_err();
    }
}

#[tokio::test(start_paused = true)]
async fn latency_is_slept_on_tokio_time() {
    let storage = MemoryStorage::new();
    storage
        .faults()
        .set_latency(Operation::Get, Duration::from_secs(5));
    storage
        .faults()
        .set_latency(Operation::PutStream, Duration::from_secs(2));
    assert_eq!(
        storage.faults().latency(Operation::Get),
        Duration::from_secs(5)
    );

    let start = Instant::now();
    storage.put("a", vec![1].into()).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO, "put has no latency");

    let start = Instant::now();
    assert_eq!(storage.get("a").await.unwrap(), &[1][..]);
    assert_eq!(start.elapsed(), Duration::from_secs(5));

    let start = Instant::now();
    let mut writer = storage.put_stream("s").await.unwrap();
    writer.write(b"abc").await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    writer.commit().await.unwrap();
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(2),
        "slept at the commit"
    );

    let timed_out = tokio::time::timeout(Duration::from_secs(1), storage.get("a")).await;
    assert!(timed_out.is_err(), "a 5 s get does not finish within 1 s");

    storage.faults().set_latency(Operation::Get, Duration::ZERO);
    let start = Instant::now();
    storage.get("a").await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_failed_call_still_takes_its_latency() {
    let storage = MemoryStorage::new();
    storage
        .faults()
        .set_latency(Operation::Delete, Duration::from_millis(300));
    storage.faults().fail_nth(Operation::Delete, 1);
    let start = Instant::now();
    storage.delete("a").await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_millis(300));
}

#[tokio::test]
async fn torn_put_keeps_the_previous_object() {
    let storage = MemoryStorage::new();
    storage
        .put("ckpt", Bytes::from_static(b"v1"))
        .await
        .unwrap();
    let rule = storage.faults().tear_nth(Operation::Put, 1);
    let err = storage
        .put("ckpt", Bytes::from_static(b"v2-longer"))
        .await
        .unwrap_err();
    assert_eq!(injected(&err), ("put", "ckpt".to_string(), true));
    assert_eq!(storage.get("ckpt").await.unwrap(), &b"v1"[..]);
    assert_eq!(storage.head("ckpt").await.unwrap().size, 2);
    assert_eq!(rule.fired(), 1);
    storage
        .put("ckpt", Bytes::from_static(b"v3"))
        .await
        .unwrap();
    assert_eq!(storage.get("ckpt").await.unwrap(), &b"v3"[..]);
}

#[tokio::test]
async fn torn_put_if_absent_leaves_the_key_absent() {
    let storage = MemoryStorage::new();
    storage
        .faults()
        .tear_next(Operation::PutIfAbsent, 1)
        .permanent();
    let err = storage
        .put_if_absent("new", vec![1; 10].into())
        .await
        .unwrap_err();
    assert!(!err.is_transient());
    assert!(!storage.exists("new").await.unwrap());
    storage.put_if_absent("new", vec![2].into()).await.unwrap();
    assert_eq!(storage.get("new").await.unwrap(), &[2][..]);
}

#[tokio::test]
async fn torn_streamed_write_accepts_every_byte_then_fails_the_commit() {
    let storage = MemoryStorage::new();
    storage
        .put("shard", Bytes::from_static(b"old"))
        .await
        .unwrap();
    storage.faults().tear_nth(Operation::PutStream, 1);
    let mut writer = storage.put_stream("shard").await.unwrap();
    for _ in 0..10 {
        writer.write(&[9; 1000]).await.unwrap();
    }
    let err = writer.commit().await.unwrap_err();
    assert_eq!(injected(&err).0, "put_stream");
    assert_eq!(storage.get("shard").await.unwrap(), &b"old"[..]);
    assert_eq!(storage.list("").await.unwrap().len(), 1);
}

#[tokio::test]
async fn calls_are_recorded_in_order() {
    let storage = MemoryStorage::new();
    storage.put("a", vec![1].into()).await.unwrap();
    storage.put_if_absent("b", vec![2].into()).await.unwrap();
    storage.get("a").await.unwrap();
    storage.exists("a").await.unwrap();
    storage.list("a").await.unwrap();
    let writer = storage.put_stream("c").await.unwrap();
    writer.commit().await.unwrap();
    let mut stream = storage.get_stream("c").await.unwrap();
    stream.reader.read_to_end(&mut Vec::new()).await.unwrap();
    storage.delete("a").await.unwrap();
    // Refused keys are not recorded.
    storage.get("../x").await.unwrap_err();

    let call = |operation, key: &str| Call {
        operation,
        key: key.to_string(),
    };
    assert_eq!(
        storage.calls(),
        vec![
            call(Operation::Put, "a"),
            call(Operation::PutIfAbsent, "b"),
            call(Operation::Get, "a"),
            call(Operation::Head, "a"),
            call(Operation::List, "a"),
            call(Operation::PutStream, "c"),
            call(Operation::GetStream, "c"),
            call(Operation::Delete, "a"),
        ]
    );
    assert_eq!(storage.count(Operation::Put), 1);
    assert_eq!(storage.count(Operation::Head), 1);
    storage.clear_calls();
    assert!(storage.calls().is_empty());
    assert_eq!(storage.count(Operation::Put), 0);
}

#[tokio::test]
async fn failed_calls_are_recorded_too() {
    let storage = MemoryStorage::new();
    storage.faults().fail_next(Operation::Put, 2);
    for _ in 0..3 {
        let _ = storage.put("a", vec![].into()).await;
    }
    assert_eq!(storage.count(Operation::Put), 3);
}

#[tokio::test]
async fn clones_share_objects_faults_and_calls() {
    let storage = MemoryStorage::new();
    let clone = storage.clone();
    clone.faults().fail_nth(Operation::Put, 1);
    assert!(storage.put("a", vec![].into()).await.is_err());
    storage.put("a", vec![7].into()).await.unwrap();
    assert_eq!(clone.get("a").await.unwrap(), &[7][..]);
    assert_eq!(clone.count(Operation::Put), 2);
    storage.clear_calls();
    assert!(clone.calls().is_empty());
}

#[tokio::test]
async fn rules_are_removed_and_cleared() {
    let storage = MemoryStorage::new();
    let rule = storage.faults().fail_next(Operation::Get, 100);
    storage.get("a").await.unwrap_err();
    rule.clone().remove();
    assert_eq!(rule.fired(), 0, "a removed rule reports nothing");
    expect_not_found(storage.get("a").await);

    storage.faults().fail_next(Operation::Get, 100);
    storage
        .faults()
        .set_latency(Operation::Get, Duration::from_secs(1));
    storage.faults().clear();
    assert_eq!(storage.faults().latency(Operation::Get), Duration::ZERO);
    expect_not_found(storage.get("a").await);
}

fn expect_not_found<T: std::fmt::Debug>(result: steadfast::storage::Result<T>) {
    assert!(
        matches!(result, Err(StorageError::NotFound { .. })),
        "expected NotFound, got {result:?}"
    );
}

#[tokio::test]
async fn the_first_rule_that_fires_decides_but_every_rule_counts() {
    let storage = MemoryStorage::new();
    let permanent = storage.faults().fail_nth(Operation::Put, 2).permanent();
    let transient = storage.faults().fail_next(Operation::Put, 2);
    // Call 1: only the fail_next rule fires (transient).
    assert!(storage
        .put("a", vec![].into())
        .await
        .unwrap_err()
        .is_transient());
    // Call 2: both fire; the permanent rule was added first and decides.
    assert!(!storage
        .put("a", vec![].into())
        .await
        .unwrap_err()
        .is_transient());
    // Call 3: both are spent.
    storage.put("a", vec![].into()).await.unwrap();
    assert_eq!((permanent.fired(), transient.fired()), (1, 2));
}

// ---------------------------------------------------------------------------
// LocalFsStorage

#[tokio::test]
async fn new_creates_and_canonicalizes_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let storage = LocalFsStorage::new(dir.path().join("a").join("..").join("b")).unwrap();
    assert_eq!(storage.root(), dir.path().canonicalize().unwrap().join("b"));
    assert!(storage.root().is_dir());

    fs::write(dir.path().join("file"), b"x").unwrap();
    let err = LocalFsStorage::new(dir.path().join("file")).unwrap_err();
    assert!(matches!(
        err,
        StorageError::Io {
            operation: "open",
            ..
        }
    ));
}

#[tokio::test]
async fn objects_are_plain_files_and_deletes_prune_empty_directories() {
    let (_dir, storage) = local();
    storage
        .put("run/7/shard-0.bin", Bytes::from_static(b"abc"))
        .await
        .unwrap();
    storage
        .put("run/8/shard-0.bin", Bytes::from_static(b"def"))
        .await
        .unwrap();
    assert_eq!(
        fs::read(storage.root().join("run/7/shard-0.bin")).unwrap(),
        b"abc"
    );
    storage.delete("run/7/shard-0.bin").await.unwrap();
    assert!(!storage.root().join("run/7").exists(), "empty dir removed");
    assert!(storage.root().join("run/8").is_dir(), "non-empty dir kept");
    storage.delete("run/8/shard-0.bin").await.unwrap();
    assert!(!storage.root().join("run").exists());
    assert!(storage.root().is_dir(), "the root itself stays");
}

#[tokio::test]
async fn an_object_and_a_directory_cannot_share_a_path() {
    let (_dir, storage) = local();
    storage.put("a", vec![1].into()).await.unwrap();
    let err = storage.put("a/b", vec![2].into()).await.unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::Io {
                operation: "put",
                ..
            }
        ),
        "{err:?}"
    );
    expect_not_found(storage.get("a/b").await);
    storage.delete("a/b").await.unwrap();
    assert_eq!(storage.get("a").await.unwrap(), &[1][..]);

    storage.put("d/x", vec![1].into()).await.unwrap();
    let err = storage.put("d", vec![2].into()).await.unwrap_err();
    assert!(matches!(err, StorageError::Io { .. }), "{err:?}");
    expect_not_found(storage.get("d").await);
    expect_not_found(storage.head("d").await);
    assert!(files_under(storage.root())
        .iter()
        .all(|p| !p.to_str().unwrap().contains(".tmp-")));
}

#[tokio::test]
async fn temp_files_are_not_listed_and_are_cleaned_up() {
    let (_dir, storage) = local();
    storage.put("run/a", vec![1; 10].into()).await.unwrap();
    // Leftovers of writes interrupted by a crash, made by hand.
    let stale = storage.root().join("run/.a.tmp-4242-00000000deadbeef");
    let stale_nested = storage
        .root()
        .join("crashed/dir/.b.tmp-17-0123456789abcdef");
    fs::write(&stale, vec![0; 100]).unwrap();
    fs::create_dir_all(stale_nested.parent().unwrap()).unwrap();
    fs::write(&stale_nested, vec![0; 50]).unwrap();
    // A file that only looks like one is an ordinary object.
    storage.put("run/.a.tmp-old", vec![2].into()).await.unwrap();

    let listed: Vec<String> = storage
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(listed, ["run/.a.tmp-old", "run/a"]);

    // Fresh temp files are kept by an age-based cleanup...
    let report = storage
        .cleanup_temp_files(Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(report.kept, 2);
    assert!(report.removed.is_empty());
    assert!(stale.exists());

    // ... and removed once they are old enough.
    let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
    for path in [&stale, &stale_nested] {
        fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(two_hours_ago)
            .unwrap();
    }
    let mut report = storage
        .cleanup_temp_files(Duration::from_secs(3600))
        .await
        .unwrap();
    report.removed.sort();
    let mut expected = vec![stale.clone(), stale_nested.clone()];
    expected.sort();
    assert_eq!(report.removed, expected);
    assert_eq!(report.bytes_removed, 150);
    assert_eq!(report.kept, 0);
    assert!(!stale.exists());
    assert!(
        !storage.root().join("crashed").exists(),
        "directories emptied by the cleanup are removed"
    );
    assert_eq!(storage.get("run/a").await.unwrap(), vec![1; 10]);
    assert_eq!(storage.get("run/.a.tmp-old").await.unwrap(), &[2][..]);
}

#[tokio::test]
async fn cleanup_temporary_removes_stale_temp_files_through_the_trait() {
    let (_dir, storage) = local();
    storage.put("run/a", vec![1; 10].into()).await.unwrap();
    let stale = storage.root().join("run/.a.tmp-4242-00000000deadbeef");
    fs::write(&stale, vec![0; 100]).unwrap();
    let shared: Arc<dyn CheckpointStorage> = Arc::new(storage.clone());
    // Fresh: kept.
    assert_eq!(
        shared
            .cleanup_temporary(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    assert!(stale.exists());
    fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(7200))
        .unwrap();
    assert_eq!(
        shared
            .cleanup_temporary(Duration::from_secs(3600))
            .await
            .unwrap(),
        1
    );
    assert!(!stale.exists());
    assert_eq!(storage.get("run/a").await.unwrap(), vec![1; 10]);
}

#[tokio::test]
async fn the_longest_segment_round_trips_on_every_storage() {
    conformance::longest_segment_round_trips(&MemoryStorage::new()).await;
    let (_dir, storage) = local();
    conformance::longest_segment_round_trips(&storage).await;
    let shared: Arc<dyn CheckpointStorage> = Arc::new(storage.clone());
    conformance::longest_segment_round_trips(shared.as_ref()).await;
    assert!(storage.list("").await.unwrap().is_empty());
}

#[tokio::test]
async fn cleanup_temporary_defaults_to_nothing_removed() {
    let storage = MemoryStorage::new();
    storage.put("a", vec![1].into()).await.unwrap();
    assert_eq!(storage.cleanup_temporary(Duration::ZERO).await.unwrap(), 0);
    assert_eq!(storage.get("a").await.unwrap(), vec![1]);
}

#[tokio::test]
async fn the_cleanup_removes_empty_directories_left_by_an_interrupted_delete() {
    let (_dir, storage) = local();
    storage.put("run/kept/a", vec![1].into()).await.unwrap();
    // What a delete killed between removing the object and its directories
    // leaves behind: empty directories, some nested.
    let root = storage.root().to_path_buf();
    fs::create_dir_all(root.join("run/deleted/deeper")).unwrap();
    fs::create_dir_all(root.join("gone/x/y")).unwrap();
    fs::create_dir_all(root.join("run/kept/empty")).unwrap();
    fs::create_dir_all(root.join("fresh")).unwrap();
    let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
    for dir in [
        "run/deleted/deeper",
        "run/deleted",
        "gone/x/y",
        "gone/x",
        "gone",
        "run/kept/empty",
    ] {
        fs::File::open(root.join(dir))
            .unwrap()
            .set_modified(two_hours_ago)
            .unwrap();
    }

    let report = storage
        .cleanup_temp_files(Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(report.removed.is_empty());
    assert_eq!(report.dirs_removed, 6);
    for gone in ["run/deleted", "gone", "run/kept/empty"] {
        assert!(!root.join(gone).exists(), "{gone} was left behind");
    }
    assert!(
        root.join("fresh").is_dir(),
        "a directory younger than the age asked for stays: a write may be about to use it"
    );
    assert_eq!(storage.get("run/kept/a").await.unwrap(), &[1][..]);
    // Through the trait too; the root itself always stays.
    fs::create_dir_all(root.join("again/and/again")).unwrap();
    storage.delete("run/kept/a").await.unwrap();
    assert_eq!(storage.cleanup_temporary(Duration::ZERO).await.unwrap(), 0);
    assert!(!root.join("again").exists());
    assert!(root.is_dir());
    assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
}

#[tokio::test]
async fn a_delete_removes_the_empty_directories_of_its_key_even_when_the_object_is_gone() {
    let (_dir, storage) = local();
    let root = storage.root().to_path_buf();
    storage.put("run/shard/a", vec![1].into()).await.unwrap();
    storage.put("run/other", vec![2].into()).await.unwrap();
    storage.delete("run/shard/a").await.unwrap();
    assert!(!root.join("run/shard").exists());
    assert!(
        root.join("run").is_dir(),
        "a directory that is not empty stays"
    );

    // A delete killed after removing the object: retrying it reclaims the
    // directories.
    fs::create_dir_all(root.join("killed/mid/delete")).unwrap();
    storage.delete("killed/mid/delete/obj").await.unwrap();
    assert!(!root.join("killed").exists());
    assert!(root.is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn puts_never_fail_while_the_cleanup_removes_empty_directories() {
    let (_dir, storage) = local();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let storage = storage.clone();
            tokio::spawn(async move {
                for i in 0..100 {
                    let key = format!("d{}/e/f/obj-{w}-{i}", i % 3);
                    storage.put(&key, vec![w as u8; 10].into()).await.unwrap();
                    assert_eq!(storage.get(&key).await.unwrap(), vec![w as u8; 10]);
                    storage.delete(&key).await.unwrap();
                }
            })
        })
        .collect();
    let cleaner = {
        let storage = storage.clone();
        tokio::spawn(async move {
            for _ in 0..200 {
                storage
                    .cleanup_temp_files(Duration::from_secs(3600))
                    .await
                    .unwrap();
            }
        })
    };
    for writer in writers {
        writer.await.unwrap();
    }
    cleaner.await.unwrap();
    storage.cleanup_temp_files(Duration::ZERO).await.unwrap();
    assert_eq!(fs::read_dir(storage.root()).unwrap().count(), 0);
}

#[tokio::test]
async fn remove_all_temp_files_ignores_age() {
    let (_dir, storage) = local();
    let leftover = storage.root().join(".x.tmp-1-00000000000000ff");
    fs::write(&leftover, b"partial").unwrap();
    let report = storage.remove_all_temp_files().await.unwrap();
    assert_eq!(report.removed, std::slice::from_ref(&leftover));
    assert!(!leftover.exists());
}

#[tokio::test]
async fn a_streamed_write_lives_in_a_temp_file_until_commit() {
    let (_dir, storage) = local();
    let mut writer = storage.put_stream("dir/obj").await.unwrap();
    writer.write(&[3; 100_000]).await.unwrap();
    let temps = temp_files_under(storage.root());
    assert_eq!(temps.len(), 1, "{temps:?}");
    assert_eq!(
        temps[0].parent().unwrap(),
        Path::new("dir"),
        "same directory as the target"
    );
    assert!(storage.list("").await.unwrap().is_empty());
    writer.commit().await.unwrap();
    assert!(temp_files_under(storage.root()).is_empty());
    assert_eq!(files_under(storage.root()), [PathBuf::from("dir/obj")]);
}

#[tokio::test]
async fn an_aborted_streamed_write_removes_its_temp_file() {
    let (_dir, storage) = local();
    let mut writer = storage.put_stream("obj").await.unwrap();
    writer.write(&[3; 1000]).await.unwrap();
    writer.abort().await.unwrap();
    assert!(files_under(storage.root()).is_empty());
}

#[test]
fn a_dropped_streamed_write_removes_its_temp_file() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_dir, storage) = local();
    let writer = runtime.block_on(async {
        let mut writer = storage.put_stream("obj").await.unwrap();
        writer.write(&[3; 1000]).await.unwrap();
        writer
    });
    assert_eq!(temp_files_under(storage.root()).len(), 1);
    // Dropped outside the runtime, the removal runs at once.
    drop(writer);
    assert!(files_under(storage.root()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_fs_storage_conforms_with_a_flush_after_every_write_and_with_none() {
    for every in [Some(1), None] {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalFsStorage::new(dir.path())
            .unwrap()
            .with_background_sync(every);
        assert_eq!(storage.background_sync(), every);
        conformance::run_all(&storage).await;
        assert!(files_under(storage.root()).is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_write_with_background_flushes_keeps_every_byte_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let storage = LocalFsStorage::new(dir.path())
        .unwrap()
        .with_background_sync(Some(64 * 1024));
    let mut writer = storage.put_stream("run/shard").await.unwrap();
    let mut expected = Vec::new();
    for i in 0..200u32 {
        // Chunks of uneven sizes, so that flushes start in the middle of
        // the writer's buffer and of the chunks.
        let chunk: Vec<u8> = (0..(i * 997 % 30_000 + 1))
            .map(|j| (i.wrapping_mul(31) ^ j) as u8)
            .collect();
        writer.write(&chunk).await.unwrap();
        expected.extend_from_slice(&chunk);
    }
    let meta = writer.commit().await.unwrap();
    assert_eq!(meta.size, expected.len() as u64);
    assert!(temp_files_under(storage.root()).is_empty());
    assert_eq!(
        fs::read(storage.root().join("run/shard")).unwrap(),
        expected
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_aborted_or_dropped_while_flushing_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let storage = LocalFsStorage::new(dir.path())
        .unwrap()
        .with_background_sync(Some(1));
    storage
        .put("obj", Bytes::from_static(b"previous"))
        .await
        .unwrap();
    // Each write starts a flush, so one is (very likely) running when the
    // write ends; whether or not it is, nothing may be left behind.
    let mut aborted = storage.put_stream("obj").await.unwrap();
    aborted.write(&[1; 300_000]).await.unwrap();
    aborted.abort().await.unwrap();
    assert!(temp_files_under(storage.root()).is_empty());
    let mut dropped = storage.put_stream("obj").await.unwrap();
    dropped.write(&[2; 300_000]).await.unwrap();
    drop(dropped);
    // The removal is a task of the runtime that waits for the flush: let
    // it run (a bounded number of times, so that a removal that never comes
    // fails the test instead of hanging it).
    let mut turns = 0;
    while !temp_files_under(storage.root()).is_empty() {
        turns += 1;
        assert!(turns < 10_000, "the temporary file stayed");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(storage.get("obj").await.unwrap(), &b"previous"[..]);
}

#[tokio::test]
async fn get_sized_refuses_a_file_of_another_size_before_reading_it() {
    let (_dir, storage) = local();
    storage.put("obj", vec![5; 1000].into()).await.unwrap();
    assert_eq!(storage.get_sized("obj", 1000).await.unwrap(), vec![5; 1000]);
    // A file grown on disk (say by a bad copy) is refused by its size.
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(storage.root().join("obj"))
        .unwrap();
    std::io::Write::write_all(&mut file, &[6; 10]).unwrap();
    match storage.get_sized("obj", 1000).await {
        Err(StorageError::LengthMismatch {
            key,
            expected: 1000,
            actual: 1010,
        }) => assert_eq!(key, "obj"),
        other => panic!("expected a length mismatch, got {other:?}"),
    }
}

#[tokio::test]
async fn a_commit_after_cleanup_removed_the_temp_file_fails_cleanly() {
    let (_dir, storage) = local();
    storage
        .put("obj", Bytes::from_static(b"previous"))
        .await
        .unwrap();
    let mut writer = storage.put_stream("obj").await.unwrap();
    writer.write(b"new bytes").await.unwrap();
    storage.remove_all_temp_files().await.unwrap();
    let err = writer.commit().await.unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::Io {
                operation: "put_stream",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(storage.get("obj").await.unwrap(), &b"previous"[..]);
}

#[tokio::test]
async fn get_stream_of_a_file_truncated_after_open_fails() {
    let (_dir, storage) = local();
    storage.put("obj", vec![5; 100_000].into()).await.unwrap();
    let mut stream = storage.get_stream("obj").await.unwrap();
    assert_eq!(stream.meta.size, 100_000);
    fs::OpenOptions::new()
        .write(true)
        .open(storage.root().join("obj"))
        .unwrap()
        .set_len(60_000)
        .unwrap();
    let err = stream
        .reader
        .read_to_end(&mut Vec::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof, "{err}");
}

#[tokio::test]
async fn get_stream_of_a_file_grown_after_open_fails() {
    let (_dir, storage) = local();
    storage.put("obj", vec![5; 1000].into()).await.unwrap();
    let mut stream = storage.get_stream("obj").await.unwrap();
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(storage.root().join("obj"))
        .unwrap();
    std::io::Write::write_all(&mut file, &[6; 10]).unwrap();
    let err = stream
        .reader
        .read_to_end(&mut Vec::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
}

#[tokio::test]
async fn get_returns_what_is_on_disk_after_a_truncation() {
    // A file truncated between two calls is a shorter object to the file
    // system: `head` and `get` agree on it. Detecting it is the job of the
    // checkpoint manifest, which records each shard's size and digest; the
    // length check of `get` catches a file that changes while it is read
    // (see the unit tests of the local storage).
    let (_dir, storage) = local();
    storage.put("obj", vec![5; 1000].into()).await.unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(storage.root().join("obj"))
        .unwrap()
        .set_len(400)
        .unwrap();
    assert_eq!(storage.head("obj").await.unwrap().size, 400);
    assert_eq!(storage.get("obj").await.unwrap(), vec![5; 400]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_put_if_absent_from_many_tasks_has_one_winner() {
    let (_dir, storage) = local();
    let storage = Arc::new(storage);
    for round in 0..5 {
        let key = format!("race/{round}");
        let tasks: Vec<_> = (0..16u8)
            .map(|i| {
                let storage = Arc::clone(&storage);
                let key = key.clone();
                tokio::spawn(async move { storage.put_if_absent(&key, vec![i; 4096].into()).await })
            })
            .collect();
        let mut winners = Vec::new();
        for (i, task) in tasks.into_iter().enumerate() {
            match task.await.unwrap() {
                Ok(()) => winners.push(i as u8),
                Err(StorageError::AlreadyExists { .. }) => {}
                Err(e) => panic!("unexpected error {e:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        assert_eq!(storage.get(&key).await.unwrap(), vec![winners[0]; 4096]);
    }
    assert!(temp_files_under(storage.root()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_puts_and_deletes_in_one_directory_do_not_fail() {
    // Deletes remove directories they leave empty; a put racing with them
    // recreates its directory instead of failing.
    let (_dir, storage) = local();
    let storage = Arc::new(storage);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let storage = Arc::clone(&storage);
        tasks.push(tokio::spawn(async move {
            for round in 0..50 {
                let key = format!("shared/deep/er/{i}-{round}");
                storage.put(&key, vec![1; 64].into()).await.unwrap();
                storage.delete(&key).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(storage.list("").await.unwrap().is_empty());
    assert!(files_under(storage.root()).is_empty());
}

#[tokio::test]
async fn io_errors_name_the_key_and_operation() {
    let (_dir, storage) = local();
    storage.put("blocker", vec![].into()).await.unwrap();
    match storage.put_stream("blocker/child").await {
        Err(StorageError::Io { key, operation, .. }) => {
            assert_eq!(key, "blocker/child");
            assert_eq!(operation, "put_stream");
        }
        Err(other) => panic!("expected an I/O error, got {other:?}"),
        Ok(_) => panic!("expected an I/O error"),
    }
}

// ---------------------------------------------------------------------------
// Types

#[test]
fn public_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<MemoryStorage>();
    send_sync::<LocalFsStorage>();
    send_sync::<steadfast::storage::testing::StorageFaults>();
    send_sync::<steadfast::storage::testing::FaultRule>();
    send_sync::<Call>();
    send_sync::<Operation>();
    send_sync::<steadfast::storage::TempCleanupReport>();
    send_sync::<StorageError>();
    send_sync::<steadfast::storage::ObjectMeta>();
    send_sync::<Arc<dyn CheckpointStorage>>();
    fn send<T: Send>() {}
    send::<steadfast::storage::ObjectStream>();
    send::<Box<dyn steadfast::storage::ObjectWriter>>();
}

#[test]
fn storage_traits_are_object_safe() {
    fn takes_dyn(_: &dyn CheckpointStorage) {}
    fn takes_writer(_: Option<Box<dyn steadfast::storage::ObjectWriter>>) {}
    let (_dir, local) = local();
    let storages: Vec<Box<dyn CheckpointStorage>> =
        vec![Box::new(MemoryStorage::new()), Box::new(local)];
    for storage in &storages {
        takes_dyn(storage.as_ref());
    }
    takes_writer(None);
}
