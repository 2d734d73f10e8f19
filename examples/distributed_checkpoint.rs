//! A distributed checkpoint, end to end: a job starts by cleaning up what an
//! earlier crash left, four ranks save sharded checkpoints to a directory
//! through a flaky storage, a save fails on one rank and is rolled back
//! everywhere, a two-rank job reads what the four ranks saved, and retention
//! keeps the newest.
//!
//! Run it with `cargo run --example distributed_checkpoint`. Retries and
//! rollbacks show up as `tracing` lines; set `RUST_LOG=steadfast=info` for
//! every step of the protocol.

use std::collections::BTreeSet;
use std::io::{self, IsTerminal};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use steadfast::checkpoint::{
    CheckpointError, CheckpointOptions, DistributedCheckpoint, LoadOptions, SaveOptions, ShardData,
};
use steadfast::coordinator::InMemoryCoordinator;
use steadfast::retry::RetryPolicy;
use steadfast::storage::Bytes;
use steadfast::storage::{
    CheckpointStorage, LocalFsStorage, ObjectMeta, ObjectStream, ObjectWriter, Result, StorageError,
};
use tracing_subscriber::EnvFilter;

/// A storage that wraps another and makes some writes fail: every
/// `fail_every`-th streamed write fails with a transient "connection reset",
/// and every write to a key containing a "broken" marker fails for good.
#[derive(Debug, Clone)]
struct FlakyStorage<S> {
    inner: S,
    writes: Arc<AtomicU64>,
    fail_every: Arc<AtomicU64>,
    broken: Arc<Mutex<Option<String>>>,
}

impl<S> FlakyStorage<S> {
    fn new(inner: S) -> Self {
        FlakyStorage {
            inner,
            writes: Arc::new(AtomicU64::new(0)),
            fail_every: Arc::new(AtomicU64::new(0)),
            broken: Arc::new(Mutex::new(None)),
        }
    }

    /// Fails every `n`-th streamed write (0: none).
    fn fail_every(&self, n: u64) {
        self.fail_every.store(n, Ordering::SeqCst);
    }

    /// Fails every write to a key containing `marker`, for good.
    fn break_keys_containing(&self, marker: Option<&str>) {
        *self.broken.lock().unwrap() = marker.map(str::to_string);
    }

    fn injected(&self, key: &str) -> Option<StorageError> {
        let broken = self.broken.lock().unwrap().clone();
        if broken.is_some_and(|m| key.contains(&m)) {
            return Some(StorageError::Io {
                key: key.to_string(),
                operation: "put_stream",
                source: io::Error::new(io::ErrorKind::PermissionDenied, "volume is read-only"),
            });
        }
        let n = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        let every = self.fail_every.load(Ordering::SeqCst);
        (every > 0 && n.is_multiple_of(every)).then(|| StorageError::Io {
            key: key.to_string(),
            operation: "put_stream",
            source: io::Error::new(io::ErrorKind::ConnectionReset, "connection reset by peer"),
        })
    }
}

#[async_trait]
impl<S: CheckpointStorage> CheckpointStorage for FlakyStorage<S> {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        self.inner.put(key, data).await
    }
    async fn put_if_absent(&self, key: &str, data: Bytes) -> Result<()> {
        self.inner.put_if_absent(key, data).await
    }
    async fn get(&self, key: &str) -> Result<Bytes> {
        self.inner.get(key).await
    }
    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        self.inner.head(key).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.inner.list(prefix).await
    }
    async fn put_stream(&self, key: &str) -> Result<Box<dyn ObjectWriter>> {
        match self.injected(key) {
            Some(error) => Err(error),
            None => self.inner.put_stream(key).await,
        }
    }
    async fn get_stream(&self, key: &str) -> Result<ObjectStream> {
        self.inner.get_stream(key).await
    }
    async fn cleanup_temporary(&self, older_than: Duration) -> Result<u64> {
        self.inner.cleanup_temporary(older_than).await
    }
}

type Storage = FlakyStorage<LocalFsStorage>;
type Ckpt = DistributedCheckpoint<Storage, InMemoryCoordinator>;

fn retry_policy() -> RetryPolicy {
    RetryPolicy::builder()
        .max_retries(4)
        .initial_delay(Duration::from_millis(20))
        .max_delay(Duration::from_millis(200))
        .build()
        .expect("a valid retry policy")
}

/// One handle per rank of a `world`-rank job.
fn job(storage: &Storage, world: usize) -> Vec<Ckpt> {
    InMemoryCoordinator::new(world)
        .into_iter()
        .map(|rank| {
            DistributedCheckpoint::new(
                storage.clone(),
                rank,
                retry_policy(),
                CheckpointOptions::default(),
            )
        })
        .collect()
}

/// What rank `rank` holds at `step`: its layer's weights and biases.
fn shard(rank: usize, step: u64) -> ShardData {
    let fill = (rank as u64 * 31 + step) as u8;
    ShardData::new()
        .with_entry(format!("layer.{rank}.weight"), vec![fill; 48 * 1024])
        .with_entry(
            format!("layer.{rank}.bias"),
            vec![fill.wrapping_add(1); 512],
        )
}

/// Every rank of a four-rank job saves its shard of `name` at `step`.
async fn save_step(
    storage: &Storage,
    name: &'static str,
    step: u64,
) -> Vec<std::result::Result<steadfast::checkpoint::CheckpointInfo, CheckpointError>> {
    let tasks: Vec<_> = job(storage, 4)
        .into_iter()
        .map(|ckpt| {
            tokio::spawn(async move {
                let shard = shard(ckpt.rank(), step);
                let options = SaveOptions::new()
                    .step(step)
                    .timeout(Duration::from_secs(10))
                    .metadata("model", "tiny-transformer");
                ckpt.save(name, &shard, options).await
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("a rank task panicked"));
    }
    results
}

fn show_tree(root: &Path) {
    let mut files = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(meta) = entry.metadata() {
                let rel = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .display()
                    .to_string();
                files.insert((rel, meta.len()));
            }
        }
    }
    for (file, len) in files {
        println!("    {file}  ({len} bytes)");
    }
}

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("steadfast=warn")),
        )
        .with_target(true)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .init();

    let dir = tempfile::tempdir()?;
    let storage = FlakyStorage::new(LocalFsStorage::new(dir.path())?);
    println!("Checkpoints go to {}", dir.path().display());

    println!("\n0. Start-up: every rank calls cleanup_on_start before resuming.");
    // An earlier run was killed an hour ago in the middle of a save: its
    // shard is on disk, its manifest never was.
    let crashed = dir.path().join("run-0/step-50");
    std::fs::create_dir_all(&crashed)?;
    let shard_file = crashed.join("shard-00000-of-00004-00000000000000aa.bin");
    std::fs::write(&shard_file, vec![0u8; 4096])?;
    std::fs::File::options()
        .write(true)
        .open(&shard_file)?
        .set_modified(SystemTime::now() - Duration::from_secs(3600))?;
    for ckpt in job(&storage, 4) {
        // Rank 0 removes uncommitted prefixes and temporary files older than
        // CheckpointOptions::cleanup_grace (10 minutes); the other ranks
        // return an empty report, so nothing another rank writes is touched.
        let report = ckpt.cleanup_on_start().await?;
        println!(
            "   rank {}: removed {:?}, {} temporary files",
            ckpt.rank(),
            report.removed,
            report.temporary
        );
    }
    if let Some(resume) = job(&storage, 1).remove(0).latest().await? {
        println!("   resuming from {}", resume.name);
    } else {
        println!("   no checkpoint yet: starting from scratch");
    }

    println!("\n1. Four ranks save step 100; every third shard write hits a connection reset.");
    storage.fail_every(3);
    for (rank, result) in save_step(&storage, "run-1/step-100", 100)
        .await
        .into_iter()
        .enumerate()
    {
        let info = result?;
        println!(
            "   rank {rank}: committed {} ({} ranks, {} bytes)",
            info.name, info.world_size, info.total_size
        );
    }

    println!("\n2. Rank 2's volume turns read-only during the save of step 200.");
    storage.break_keys_containing(Some("shard-00002-"));
    let mut reasons = BTreeSet::new();
    for (rank, result) in save_step(&storage, "run-1/step-200", 200)
        .await
        .into_iter()
        .enumerate()
    {
        match result {
            Err(CheckpointError::SaveFailed {
                failed_ranks,
                reason,
                source,
                ..
            }) => {
                let own = if source.is_some() {
                    " (its own write)"
                } else {
                    ""
                };
                println!("   rank {rank}: save failed; failed ranks {failed_ranks:?}{own}");
                reasons.insert(reason);
            }
            other => {
                return Err(format!("rank {rank}: expected a failed save, got {other:?}").into())
            }
        }
    }
    for reason in &reasons {
        println!("   every rank's reason: {reason}");
    }
    let leftovers = storage.list("run-1/step-200/").await?;
    println!(
        "   rolled back on every rank: {} objects left under run-1/step-200/",
        leftovers.len()
    );
    storage.break_keys_containing(None);

    println!("\n3. The volume is back: steps 200 and 300 save.");
    for (name, step) in [("run-1/step-200", 200), ("run-1/step-300", 300)] {
        for result in save_step(&storage, name, step).await {
            result?;
        }
        println!("   committed {name}");
    }
    storage.fail_every(0);

    let observer = job(&storage, 1).remove(0);
    println!("\n4. Committed checkpoints, newest (last committed) first:");
    for info in observer.list().await? {
        println!(
            "   {:<16} commit #{}  step {:>3}  {} ranks  {} bytes",
            info.name,
            info.sequence.unwrap_or_default(),
            info.step.unwrap_or_default(),
            info.world_size,
            info.total_size
        );
    }

    println!("\n5. The job restarts with two ranks and reads step 300 by entry name.");
    let tasks: Vec<_> = job(&storage, 2)
        .into_iter()
        .map(|ckpt| {
            tokio::spawn(async move {
                let rank = ckpt.rank();
                // Rank r of 2 takes over the layers of old ranks 2r and 2r + 1.
                let old = [2 * rank, 2 * rank + 1];
                let strict = ckpt.load("run-1/step-300", LoadOptions::default()).await;
                let entries = ckpt
                    .load_entries("run-1/step-300", |entry| {
                        old.iter()
                            .any(|r| entry.starts_with(&format!("layer.{r}.")))
                    })
                    .await?;
                Ok::<_, CheckpointError>((rank, old, strict.is_err(), entries))
            })
        })
        .collect();
    for task in tasks {
        let (rank, old, refused_whole_shard, entries) = task.await??;
        for r in old {
            for (name, data) in shard(r, 300).entries() {
                if entries.get(name) != Some(data) {
                    return Err(format!("rank {rank}: entry {name} differs").into());
                }
            }
        }
        let names: Vec<&String> = entries.keys().collect();
        println!(
            "   rank {rank}: verified and loaded {names:?} (whole-shard load at the new world size refused: {refused_whole_shard})"
        );
    }

    println!("\n6. Retention keeps the newest two.");
    let report = observer.retain_last(2).await?;
    println!("   kept {:?}, removed {:?}", report.kept, report.removed);
    println!(
        "   and, older than the grace, uncommitted leftovers removed: {:?}",
        report.leftovers.removed
    );

    println!("\nOn disk now:");
    show_tree(dir.path());
    Ok(())
}
