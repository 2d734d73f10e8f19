//! A checkpoint saved to and loaded from three local directories through a
//! `ReplicatedStorage` (W = 2 of 3, quorum), beside the same checkpoint on
//! each directory alone.
//!
//! - `replicated_save`: one rank (a `DistributedCheckpoint` over an
//!   `InMemoryCoordinator` of one) saves one shard, on each directory
//!   alone (`single_dir_a`, `_b`, `_c`) and on the three replicated
//!   (`replicated_w2`). The replicated save returns once two replicas
//!   acknowledged each write; the third finishes in the background and is
//!   waited for between samples, outside the timing (so that it does not
//!   run into the next sample).
//! - `replicated_load`: the same rank loads and verifies the checkpoint
//!   from one directory alone, and through the replicated storage (which
//!   verifies each copy's footer digest, then the checkpoint verifies its
//!   own).
//!
//! After each group the ratio of throughputs is printed: the replicated
//! save against the slowest single-directory save, the replicated load
//! against the single-directory load. The three directories share one disk
//! here (and the page cache), so the figures measure the work the
//! replication adds, not three disks working at once.
//!
//! The shard is 64 MiB unless `STEADFAST_BENCH_REPL_MB` says otherwise.
//! Run with `cargo bench --bench replicated`, or for a quick run
//! `cargo bench --bench replicated -- --warm-up-time 1 --measurement-time 2`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use steadfast::checkpoint::{
    CheckpointOptions, DistributedCheckpoint, LoadOptions, SaveOptions, ShardData,
};
use steadfast::coordinator::InMemoryCoordinator;
use steadfast::retry::RetryPolicy;
use steadfast::storage::{
    CheckpointStorage, ConsistencyLevel, LocalFsStorage, Replica, ReplicatedStorage,
};

type Checkpoint = DistributedCheckpoint<Arc<dyn CheckpointStorage>, InMemoryCoordinator>;

/// The shard's size in bytes, from `STEADFAST_BENCH_REPL_MB`.
fn shard_len() -> usize {
    let mb = std::env::var("STEADFAST_BENCH_REPL_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&mb| mb >= 1)
        .unwrap_or(64);
    mb << 20
}

/// Bytes that do not compress: a xorshift sequence.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut bytes = Vec::with_capacity(len);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
    /// One checkpoint handle per directory alone, then the replicated one.
    singles: Vec<Checkpoint>,
    replicated: Checkpoint,
    replicas: ReplicatedStorage,
    shard: ShardData,
}

fn checkpoint_on(storage: Arc<dyn CheckpointStorage>) -> Checkpoint {
    let rank = InMemoryCoordinator::new(1).remove(0);
    DistributedCheckpoint::new(
        storage,
        rank,
        RetryPolicy::no_retry(),
        CheckpointOptions::default(),
    )
}

impl Fixture {
    fn new() -> Fixture {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let open =
            |name: &str| LocalFsStorage::new(dir.path().join(name)).expect("a local storage");
        let singles = ["single-a", "single-b", "single-c"]
            .iter()
            .map(|name| checkpoint_on(Arc::new(open(name))))
            .collect();
        let replicas = ReplicatedStorage::builder()
            .replicas(
                ["replica-a", "replica-b", "replica-c"]
                    .iter()
                    .map(|name| Replica::new(open(name)).domain(*name)),
            )
            .consistency(ConsistencyLevel::Quorum)
            .build()
            .expect("a replicated storage");
        let replicated = checkpoint_on(Arc::new(replicas.clone()));
        let shard = ShardData::new().with_entry("state", noise(shard_len(), 7));
        Fixture {
            rt,
            _dir: dir,
            singles,
            replicated,
            replicas,
            shard,
        }
    }

    /// Saves checkpoint `name` through `ckpt`; returns the time.
    fn save(&self, ckpt: &Checkpoint, name: &str) -> Duration {
        self.rt.block_on(async {
            let began = Instant::now();
            ckpt.save(name, &self.shard, SaveOptions::new())
                .await
                .expect("a checkpoint save failed");
            began.elapsed()
        })
    }

    /// Loads and verifies checkpoint `name` through `ckpt`; returns the time.
    fn load(&self, ckpt: &Checkpoint, name: &str) -> Duration {
        self.rt.block_on(async {
            let began = Instant::now();
            let bytes = ckpt
                .load(name, LoadOptions::default())
                .await
                .expect("a checkpoint load failed");
            assert_eq!(bytes.len(), shard_len());
            began.elapsed()
        })
    }

    /// Deletes checkpoint `name`, after the background writes of the
    /// replicated storage.
    fn delete(&self, ckpt: &Checkpoint, name: &str) {
        self.rt.block_on(async {
            self.replicas.wait_for_writes().await;
            let report = ckpt
                .delete(name)
                .await
                .expect("deleting a checkpoint failed");
            assert!(report.failed.is_empty(), "{:?}", report.failed);
            self.replicas.wait_for_writes().await;
        })
    }
}

/// Mean seconds per iteration of each function, as measured by the group.
#[derive(Default)]
struct Means(Vec<(String, Duration, u64)>);

impl Means {
    fn add(&mut self, id: &str, spent: Duration, iters: u64) {
        match self.0.iter_mut().find(|(name, _, _)| name == id) {
            Some((_, total, n)) => {
                *total += spent;
                *n += iters;
            }
            None => self.0.push((id.to_string(), spent, iters)),
        }
    }

    fn mean(&self, id: &str) -> f64 {
        self.0
            .iter()
            .find(|(name, _, _)| name == id)
            .map_or(f64::NAN, |(_, total, n)| total.as_secs_f64() / *n as f64)
    }
}

fn replicated(c: &mut Criterion) {
    let fixture = Fixture::new();
    let bytes = shard_len() as u64;
    let mut serial = 0u64;
    let mut means = Means::default();

    let mut group = c.benchmark_group("replicated_save");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.throughput(Throughput::Bytes(bytes));
    let cases: Vec<(&str, &Checkpoint)> = vec![
        ("single_dir_a", &fixture.singles[0]),
        ("single_dir_b", &fixture.singles[1]),
        ("single_dir_c", &fixture.singles[2]),
        ("replicated_w2", &fixture.replicated),
    ];
    for (id, ckpt) in &cases {
        group.bench_function(*id, |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    serial += 1;
                    let name = format!("save-{serial}");
                    spent += fixture.save(ckpt, &name);
                    fixture.delete(ckpt, &name);
                }
                means.add(id, spent, iters);
                spent
            })
        });
    }
    group.finish();
    let slowest = ["single_dir_a", "single_dir_b", "single_dir_c"]
        .iter()
        .map(|id| means.mean(id))
        .fold(0.0, f64::max);
    let replicated_save = means.mean("replicated_w2");
    println!(
        "replicated_save: replicated (W = 2 of 3) {:.1} ms, slowest single directory {:.1} ms: \
         {:.3}x the slowest single-directory throughput (three directories on one disk)",
        replicated_save * 1e3,
        slowest * 1e3,
        slowest / replicated_save
    );

    // One checkpoint on a single directory and one replicated, read back
    // again and again.
    fixture.save(&fixture.singles[0], "loaded");
    fixture.save(&fixture.replicated, "loaded");
    fixture.rt.block_on(fixture.replicas.wait_for_writes());
    let mut group = c.benchmark_group("replicated_load");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.throughput(Throughput::Bytes(bytes));
    for (id, ckpt) in [
        ("single_dir", &fixture.singles[0]),
        ("replicated_w2", &fixture.replicated),
    ] {
        group.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let spent: Duration = (0..iters).map(|_| fixture.load(ckpt, "loaded")).sum();
                means.add(&format!("load_{id}"), spent, iters);
                spent
            })
        });
    }
    group.finish();
    let (single, replicated) = (
        means.mean("load_single_dir"),
        means.mean("load_replicated_w2"),
    );
    println!(
        "replicated_load: replicated {:.1} ms, single directory {:.1} ms: {:.3}x the \
         single-directory throughput",
        replicated * 1e3,
        single * 1e3,
        single / replicated
    );
    fixture.delete(&fixture.singles[0], "loaded");
    fixture.delete(&fixture.replicated, "loaded");
}

criterion_group!(benches, replicated);
criterion_main!(benches);
