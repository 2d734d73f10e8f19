//! Chunked checkpoints (content-defined chunks under `chunks/`) beside the
//! plain saves and raw writes they replace.
//!
//! - `chunks_save`: four ranks each save a quarter of the checkpoint to a
//!   `LocalFsStorage` at once, every chunk new (the chunks are removed
//!   between samples, outside the timing): `plain_sha256` is today's save
//!   (one shard object per rank, SHA-256); `chunked_sha256` and
//!   `chunked_blake3` cut the same bytes into 1 MiB chunks, each written as
//!   its own object; `raw_tokio_write_fsync` is four tasks that each write
//!   their bytes with `tokio::fs` and fsync the file.
//! - `chunks_reuse`: the same state held as 100 entries (25 per rank) of
//!   which one changed since a base checkpoint: `reuse_99_unchanged`
//!   reports the 99 others unchanged (stored by reference, neither read nor
//!   hashed), `full_plain` saves all 100 as a plain save does,
//!   `full_chunked` as a chunked save with every chunk already stored.
//! - Bytes written (printed, not timed): after a full chunked save, 1% of
//!   the state is changed in 16 contiguous regions, or scattered in 64 KiB
//!   regions, and saved again at 1 MiB and at 64 KiB average chunks; the
//!   bytes the incremental save wrote are printed against the full save's.
//!
//! The checkpoint is 1 GiB unless `STEADFAST_BENCH_CKPT_MB` says otherwise
//! (a multiple of 4). `STEADFAST_BENCH_CHUNKS` picks the parts to run, out
//! of `bytes,save,reuse` (all by default). Run with
//! `cargo bench --bench chunks`, or for a quick run
//! `STEADFAST_BENCH_CKPT_MB=256 cargo bench --bench chunks`.
//!
//! `chunks_save` also prints `chunked_blake3_memory`: the same chunked save
//! into a `MemoryStorage`, which writes nothing to disk: the cost of cutting,
//! hashing and copying alone.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use steadfast::checkpoint::{
    CheckpointOptions, ChunkStats, Chunking, DigestAlgorithm, DistributedCheckpoint, SaveOptions,
    ShardData,
};
use steadfast::coordinator::InMemoryCoordinator;
use steadfast::retry::RetryPolicy;
use steadfast::storage::{CheckpointStorage, LocalFsStorage, MemoryStorage};
use tokio::io::AsyncWriteExt;

const RANKS: usize = 4;
/// Entries of the reuse bench, in all.
const ENTRIES: usize = 100;

/// The checkpoint's size in bytes, from `STEADFAST_BENCH_CKPT_MB`.
fn checkpoint_bytes() -> usize {
    let mb = std::env::var("STEADFAST_BENCH_CKPT_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&mb| mb >= RANKS)
        .unwrap_or(1024);
    mb / RANKS * RANKS * (1 << 20)
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

/// Whether the part `name` of the bench is to run (`STEADFAST_BENCH_CHUNKS`).
fn part(name: &str) -> bool {
    std::env::var("STEADFAST_BENCH_CHUNKS")
        .map(|parts| parts.split(',').any(|p| p.trim() == name))
        .unwrap_or(true)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn ranks<S: CheckpointStorage + Clone>(
    storage: &S,
) -> Vec<Arc<DistributedCheckpoint<S, InMemoryCoordinator>>> {
    InMemoryCoordinator::new(RANKS)
        .into_iter()
        .map(|rank| {
            Arc::new(DistributedCheckpoint::new(
                storage.clone(),
                rank,
                RetryPolicy::no_retry(),
                CheckpointOptions::default(),
            ))
        })
        .collect()
}

/// Saves `shards` (one per rank) as `name` from every rank at once;
/// returns the time and the statistics summed over the ranks.
fn save_all<S: CheckpointStorage + Clone>(
    rt: &tokio::runtime::Runtime,
    ranks: &[Arc<DistributedCheckpoint<S, InMemoryCoordinator>>],
    shards: &[Arc<ShardData>],
    name: &str,
    options: &SaveOptions,
) -> (Duration, ChunkStats) {
    rt.block_on(async {
        let began = Instant::now();
        let saves: Vec<_> = ranks
            .iter()
            .zip(shards)
            .map(|(rank, shard)| {
                let (rank, shard, name, options) = (
                    rank.clone(),
                    shard.clone(),
                    name.to_string(),
                    options.clone(),
                );
                tokio::spawn(async move { rank.save_with_stats(&name, &shard, options).await })
            })
            .collect();
        let mut sum = ChunkStats::default();
        for save in saves {
            let (_, stats) = save
                .await
                .expect("a save task panicked")
                .expect("a checkpoint save failed");
            sum.chunks_total += stats.chunks_total;
            sum.chunks_written += stats.chunks_written;
            sum.bytes_total += stats.bytes_total;
            sum.bytes_stored_total += stats.bytes_stored_total;
            sum.bytes_written += stats.bytes_written;
        }
        (began.elapsed(), sum)
    })
}

fn chunked(average: u32, digest: DigestAlgorithm) -> SaveOptions {
    SaveOptions::new()
        .chunking(Chunking::with_average_size(average).expect("a valid chunk size"))
        .digest(digest)
}

struct Disk {
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    ranks: Vec<Arc<DistributedCheckpoint<LocalFsStorage, InMemoryCoordinator>>>,
    shards: Vec<Arc<ShardData>>,
}

impl Disk {
    fn new() -> Disk {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let storage = LocalFsStorage::new(dir.path().join("checkpoints")).expect("a local storage");
        let shard_len = checkpoint_bytes() / RANKS;
        let shards = (0..RANKS)
            .map(|r| {
                Arc::new(
                    ShardData::new().with_entry(format!("rank.{r}"), noise(shard_len, r as u64)),
                )
            })
            .collect();
        std::fs::create_dir_all(dir.path().join("raw")).expect("a directory for raw files");
        Disk {
            rt: runtime(),
            ranks: ranks(&storage),
            dir,
            shards,
        }
    }

    fn save(&self, name: &str, options: &SaveOptions) -> (Duration, ChunkStats) {
        save_all(&self.rt, &self.ranks, &self.shards, name, options)
    }

    fn delete(&self, name: &str) {
        let report = self
            .rt
            .block_on(self.ranks[0].delete(name))
            .expect("deleting a checkpoint failed");
        assert!(report.failed.is_empty(), "{:?}", report.failed);
    }

    /// Removes every chunk, so that the next chunked save writes them all.
    fn clear_chunks(&self) {
        let _ = std::fs::remove_dir_all(self.dir.path().join("checkpoints").join("chunks"));
    }

    fn raw_path(&self, rank: usize) -> PathBuf {
        self.dir.path().join("raw").join(format!("rank-{rank}.bin"))
    }

    /// Four tasks each write their shard's bytes with `tokio::fs` and fsync.
    fn raw_write(&self) -> Duration {
        self.rt.block_on(async {
            let began = Instant::now();
            let writes: Vec<_> = (0..RANKS)
                .map(|rank| {
                    let path = self.raw_path(rank);
                    let shard = self.shards[rank].clone();
                    tokio::spawn(async move {
                        let bytes = &shard.entries()[0].1;
                        let mut file = tokio::fs::File::create(&path)
                            .await
                            .expect("creating a raw file");
                        file.write_all(bytes).await.expect("writing a raw file");
                        file.sync_all().await.expect("syncing a raw file");
                    })
                })
                .collect();
            for write in writes {
                write.await.expect("a raw write panicked");
            }
            began.elapsed()
        })
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn saves(c: &mut Criterion) {
    if !part("save") {
        return;
    }
    let disk = Disk::new();
    let total = checkpoint_bytes() as u64;
    let mut serial = 0u64;
    let mut group = c.benchmark_group("chunks_save");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Bytes(total));
    group.bench_function("raw_tokio_write_fsync", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| disk.raw_write()).sum())
    });
    let variants = [
        ("plain_sha256", SaveOptions::new()),
        ("chunked_sha256", chunked(1 << 20, DigestAlgorithm::Sha256)),
        ("chunked_blake3", chunked(1 << 20, DigestAlgorithm::Blake3)),
    ];
    for (label, options) in &variants {
        group.bench_function(*label, |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    serial += 1;
                    let name = format!("save-{serial}");
                    let (time, stats) = disk.save(&name, options);
                    assert_eq!(stats.bytes_written, total, "{label}: {stats:?}");
                    spent += time;
                    disk.delete(&name);
                    disk.clear_chunks();
                }
                spent
            })
        });
    }
    group.finish();

    // The same comparison once more, as medians of a few runs, so that the
    // ratios the issue asks for print side by side.
    let times = |label: &str, run: &mut dyn FnMut() -> Duration| {
        let t = median((0..5).map(|_| run()).collect());
        println!(
            "chunks_save {label}: {:.0} MiB/s",
            total as f64 / t.as_secs_f64() / (1 << 20) as f64
        );
        t
    };
    let raw = times("raw_tokio_write_fsync", &mut || disk.raw_write());
    let mut timed_save = |options: &SaveOptions| {
        let times: Vec<Duration> = (0..5)
            .map(|_| {
                serial += 1;
                let name = format!("ratio-{serial}");
                let (time, _) = disk.save(&name, options);
                disk.delete(&name);
                disk.clear_chunks();
                time
            })
            .collect();
        median(times)
    };
    let plain = timed_save(&variants[0].1);
    let sha = timed_save(&variants[1].1);
    let blake = timed_save(&variants[2].1);
    // The same chunked save with no disk under it.
    let memory = {
        let storage = MemoryStorage::new();
        let ranks = ranks(&storage);
        let times: Vec<Duration> = (0..5)
            .map(|i| {
                let name = format!("memory-{i}");
                let (time, _) = save_all(&disk.rt, &ranks, &disk.shards, &name, &variants[2].1);
                for key in storage.keys() {
                    let _ = disk.rt.block_on(storage.delete(&key));
                }
                time
            })
            .collect();
        median(times)
    };
    for (label, t) in [
        ("plain_sha256", plain),
        ("chunked_sha256", sha),
        ("chunked_blake3", blake),
        ("chunked_blake3_memory", memory),
    ] {
        println!(
            "chunks_save {label}: {:.0} MiB/s",
            total as f64 / t.as_secs_f64() / (1 << 20) as f64
        );
    }
    println!(
        "chunks_save ratios: chunked_sha256 / plain_sha256 throughput = {:.2}; chunked_blake3 / raw write+fsync throughput = {:.2}; chunked_blake3 / plain_sha256 = {:.2}",
        plain.as_secs_f64() / sha.as_secs_f64(),
        raw.as_secs_f64() / blake.as_secs_f64(),
        plain.as_secs_f64() / blake.as_secs_f64(),
    );
}

/// The reuse bench's shards: 25 entries per rank, the one changed entry
/// (rank 0's first) carrying `serial` in its first bytes.
fn entry_shards(entries: &[Vec<Vec<u8>>], serial: u64, unchanged: bool) -> Vec<Arc<ShardData>> {
    entries
        .iter()
        .enumerate()
        .map(|(rank, list)| {
            let mut shard = ShardData::new();
            for (i, bytes) in list.iter().enumerate() {
                let name = format!("r{rank}.e{i}");
                if rank == 0 && i == 0 {
                    let mut changed = bytes.clone();
                    changed[..8].copy_from_slice(&serial.to_le_bytes());
                    shard.push(name, changed);
                } else if unchanged {
                    shard.push_unchanged(name);
                } else {
                    shard.push(name, bytes.clone());
                }
            }
            Arc::new(shard)
        })
        .collect()
}

fn reuse(c: &mut Criterion) {
    if !part("reuse") {
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let storage = LocalFsStorage::new(dir.path()).expect("a local storage");
    let rt = runtime();
    let ranks = ranks(&storage);
    let total = checkpoint_bytes();
    let per_entry = total / ENTRIES;
    let entries: Vec<Vec<Vec<u8>>> = (0..RANKS)
        .map(|rank| {
            (0..ENTRIES / RANKS)
                .map(|i| noise(per_entry, (rank * 1000 + i) as u64))
                .collect()
        })
        .collect();
    let options = chunked(1 << 20, DigestAlgorithm::Sha256);
    let base = entry_shards(&entries, 0, false);
    save_all(&rt, &ranks, &base, "base", &options);
    let mut serial = 0u64;
    let mut run = |label: &str, unchanged: bool, options: &SaveOptions| {
        serial += 1;
        let shards = entry_shards(&entries, serial, unchanged);
        let name = format!("{label}-{serial}");
        let (time, stats) = save_all(&rt, &ranks, &shards, &name, options);
        let report = rt
            .block_on(ranks[0].delete(&name))
            .expect("deleting a checkpoint failed");
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        (time, stats)
    };
    let reused = options.clone().base("base");
    let mut group = c.benchmark_group("chunks_reuse");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Bytes(total as u64));
    for (label, unchanged, options) in [
        ("reuse_99_unchanged", true, &reused),
        ("full_plain", false, &SaveOptions::new()),
        ("full_chunked", false, &options),
    ] {
        group.bench_function(label, |b| {
            b.iter_custom(|iters| (0..iters).map(|_| run(label, unchanged, options).0).sum())
        });
    }
    group.finish();
    let mut median_of = |label: &str, unchanged: bool, options: &SaveOptions| {
        let times: Vec<Duration> = (0..5).map(|_| run(label, unchanged, options).0).collect();
        median(times)
    };
    let reuse = median_of("reuse", true, &reused);
    let plain = median_of("plain", false, &SaveOptions::new());
    let full = median_of("full", false, &options);
    let (_, stats) = run("stats", true, &reused);
    println!(
        "chunks_reuse: 1 of {ENTRIES} entries changed: reuse {:?}, full plain save {:?} (ratio {:.3}), full chunked save {:?} (ratio {:.3}); the reuse save wrote {} of {} bytes",
        reuse,
        plain,
        reuse.as_secs_f64() / plain.as_secs_f64(),
        full,
        reuse.as_secs_f64() / full.as_secs_f64(),
        stats.bytes_written,
        stats.bytes_total,
    );
}

/// Flips the bytes of `regions` (offset, length) of the state, counted
/// across the ranks' shards one after the other.
fn change(state: &mut [Vec<u8>], regions: &[(usize, usize)]) {
    let shard_len = state[0].len();
    for &(offset, len) in regions {
        for at in offset..offset + len {
            let byte = &mut state[at / shard_len][at % shard_len];
            *byte = !*byte;
        }
    }
}

fn bytes_written(_c: &mut Criterion) {
    if !part("bytes") {
        return;
    }
    let total = checkpoint_bytes();
    let rt = runtime();
    let changed = total / 100;
    // 16 contiguous regions, evenly spread.
    let contiguous: Vec<(usize, usize)> = (0..16)
        .map(|i| (i * (total / 16) + total / 64, changed / 16))
        .collect();
    // 64 KiB regions, scattered (evenly spaced, not aligned to anything).
    let count = changed / (64 << 10);
    let scattered: Vec<(usize, usize)> = (0..count)
        .map(|i| (i * (total / count) + 12_345, 64 << 10))
        .collect();
    for (label, regions) in [
        ("16 contiguous", &contiguous),
        ("scattered 64 KiB", &scattered),
    ] {
        for average in [1u32 << 20, 64 << 10] {
            let storage = MemoryStorage::new();
            let ranks = ranks(&storage);
            let mut state: Vec<Vec<u8>> = (0..RANKS)
                .map(|r| noise(total / RANKS, 77 + r as u64))
                .collect();
            let shards = |state: &[Vec<u8>]| -> Vec<Arc<ShardData>> {
                state
                    .iter()
                    .enumerate()
                    .map(|(r, b)| Arc::new(ShardData::new().with_entry(format!("r{r}"), b.clone())))
                    .collect()
            };
            let options = chunked(average, DigestAlgorithm::Blake3);
            let (_, full) = save_all(&rt, &ranks, &shards(&state), "full", &options);
            change(&mut state, regions);
            let (_, incremental) = save_all(&rt, &ranks, &shards(&state), "incremental", &options);
            println!(
                "chunks_bytes_written: 1% changed in {label} regions, {} KiB average chunks: {} of {} bytes ({:.2}% of a full save)",
                average >> 10,
                incremental.bytes_written,
                full.bytes_written,
                100.0 * incremental.bytes_written as f64 / full.bytes_written as f64,
            );
        }
    }
}

criterion_group!(benches, bytes_written, saves, reuse);
criterion_main!(benches);
