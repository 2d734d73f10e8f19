//! Checkpoints on the local file system, beside the raw file operations
//! they are made of.
//!
//! - `checkpoint_save`: four ranks each save a quarter of the checkpoint as
//!   one shard to a `LocalFsStorage`, at once (a `DistributedCheckpoint` per
//!   rank over an `InMemoryCoordinator` of four): temporary file, write,
//!   SHA-256, fsync, rename, fsync of the directory, then the manifest. The
//!   baseline is four threads that each write the same bytes to a file and
//!   fsync it; a second one also computes the bytes' SHA-256 as it writes
//!   them (1 MiB at a time), the least work a save that records digests
//!   can do.
//! - `checkpoint_load_verify`: the four ranks each load their shard, whose
//!   size and SHA-256 are checked against the manifest before the bytes are
//!   returned. The baseline is four threads that each read their file and
//!   compute its SHA-256 (and compare it with the expected one).
//!
//! - `checkpoint_save_zstd_random` and `checkpoint_save_zstd_compressible`:
//!   the same four-rank save, uncompressed and with zstd level 1, in the
//!   same run, on bytes that do not compress and on bytes half of which are
//!   zeros (64 KiB of zeros, then 64 KiB of noise, and so on); the bytes
//!   each writes are printed beside the ratio of the two.
//!
//! Both sides read files that the page cache holds (they were just
//! written), so the load figures measure reading from memory and hashing,
//! not the disk.
//!
//! The checkpoint is 1 GiB unless `STEADFAST_BENCH_CKPT_MB` says otherwise
//! (a multiple of 4); each sample is one whole save or load, and files are
//! removed between samples, outside the timing.
//!
//! Run with `cargo bench --bench checkpoint`, or for a quick run
//! `STEADFAST_BENCH_CKPT_MB=128 cargo bench --bench checkpoint`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use sha2::{Digest, Sha256};
use steadfast::checkpoint::{
    CheckpointInfo, CheckpointOptions, Compression, DistributedCheckpoint, LoadOptions,
    SaveOptions, ShardData,
};
use steadfast::coordinator::InMemoryCoordinator;
use steadfast::retry::RetryPolicy;
use steadfast::storage::LocalFsStorage;

const RANKS: usize = 4;

type Checkpoint = DistributedCheckpoint<LocalFsStorage, InMemoryCoordinator>;

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
fn shard_bytes(len: usize, seed: u64) -> Vec<u8> {
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

/// Half zeros: 64 KiB of zeros, then 64 KiB of noise, and so on.
fn half_zeros(len: usize, seed: u64) -> Vec<u8> {
    let mut bytes = shard_bytes(len, seed);
    for block in bytes.chunks_mut(128 * 1024) {
        let zeros = block.len().min(64 * 1024);
        block[..zeros].fill(0);
    }
    bytes
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    ranks: Vec<Arc<Checkpoint>>,
    shards: Vec<Arc<ShardData>>,
    /// The same sizes, half of each zeros.
    compressible: Vec<Arc<ShardData>>,
}

impl Fixture {
    fn new() -> Fixture {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let storage = LocalFsStorage::new(dir.path().join("checkpoints")).expect("a local storage");
        let ranks = InMemoryCoordinator::new(RANKS)
            .into_iter()
            .map(|rank| {
                Arc::new(DistributedCheckpoint::new(
                    storage.clone(),
                    rank,
                    RetryPolicy::no_retry(),
                    CheckpointOptions::default(),
                ))
            })
            .collect();
        let shard_len = checkpoint_bytes() / RANKS;
        let shards = (0..RANKS)
            .map(|r| {
                let bytes = shard_bytes(shard_len, r as u64 + 1);
                Arc::new(ShardData::new().with_entry(format!("rank.{r}"), bytes))
            })
            .collect();
        let compressible = (0..RANKS)
            .map(|r| {
                let bytes = half_zeros(shard_len, r as u64 + 1);
                Arc::new(ShardData::new().with_entry(format!("rank.{r}"), bytes))
            })
            .collect();
        std::fs::create_dir_all(dir.path().join("raw")).expect("a directory for raw files");
        Fixture {
            rt,
            dir,
            ranks,
            shards,
            compressible,
        }
    }

    /// The bytes of rank `rank`'s shard (its only entry).
    fn bytes(&self, rank: usize) -> &[u8] {
        self.shards[rank]
            .entries()
            .first()
            .map_or(&[][..], |(_, bytes)| bytes.as_slice())
    }

    /// Saves checkpoint `name` from every rank at once; returns the time.
    fn save(&self, name: &str) -> Duration {
        self.save_with(name, &self.shards, Compression::None).0
    }

    /// Saves `shards` as checkpoint `name` from every rank at once with
    /// `compression`; returns the time and the bytes written.
    fn save_with(
        &self,
        name: &str,
        shards: &[Arc<ShardData>],
        compression: Compression,
    ) -> (Duration, u64) {
        self.rt.block_on(async {
            let began = Instant::now();
            let saves: Vec<_> = self
                .ranks
                .iter()
                .zip(shards)
                .map(|(rank, shard)| {
                    let (rank, shard, name) = (rank.clone(), shard.clone(), name.to_string());
                    let options = SaveOptions::new().compression(compression);
                    tokio::spawn(async move { rank.save(&name, &shard, options).await })
                })
                .collect();
            let mut info: Option<CheckpointInfo> = None;
            for save in saves {
                info = Some(
                    save.await
                        .expect("a save task panicked")
                        .expect("a checkpoint save failed"),
                );
            }
            (began.elapsed(), info.map_or(0, |i| i.total_size))
        })
    }

    /// Loads and verifies checkpoint `name` on every rank at once; returns
    /// the time.
    fn load(&self, name: &str) -> Duration {
        self.rt.block_on(async {
            let began = Instant::now();
            let loads: Vec<_> = self
                .ranks
                .iter()
                .map(|rank| {
                    let (rank, name) = (rank.clone(), name.to_string());
                    tokio::spawn(async move { rank.load(&name, LoadOptions::default()).await })
                })
                .collect();
            for (rank, load) in loads.into_iter().enumerate() {
                let bytes = load
                    .await
                    .expect("a load task panicked")
                    .expect("a checkpoint load failed");
                assert_eq!(bytes.len(), self.bytes(rank).len());
            }
            began.elapsed()
        })
    }

    fn delete(&self, name: &str) {
        let report = self
            .rt
            .block_on(self.ranks[0].delete(name))
            .expect("deleting a checkpoint failed");
        assert!(report.failed.is_empty(), "{:?}", report.failed);
    }

    fn raw_path(&self, rank: usize) -> PathBuf {
        self.dir.path().join("raw").join(format!("rank-{rank}.bin"))
    }

    /// Four threads each write their shard's bytes to a file and fsync it.
    fn raw_write(&self) -> Duration {
        let began = Instant::now();
        std::thread::scope(|s| {
            for rank in 0..RANKS {
                let (path, bytes) = (self.raw_path(rank), self.bytes(rank));
                s.spawn(move || write_and_sync(&path, bytes));
            }
        });
        began.elapsed()
    }

    /// Four threads each write their shard's bytes to a file 1 MiB at a
    /// time, hashing each piece, and fsync it.
    fn raw_write_hashed(&self) -> Duration {
        let began = Instant::now();
        std::thread::scope(|s| {
            for rank in 0..RANKS {
                let (path, bytes) = (self.raw_path(rank), self.bytes(rank));
                s.spawn(move || {
                    let mut file = std::fs::File::create(path).expect("creating a raw file");
                    let mut hasher = Sha256::new();
                    for chunk in bytes.chunks(1 << 20) {
                        file.write_all(chunk).expect("writing a raw file");
                        hasher.update(chunk);
                    }
                    file.sync_all().expect("syncing a raw file");
                    hasher.finalize()
                });
            }
        });
        began.elapsed()
    }

    /// Four threads each read their file and check its SHA-256.
    fn raw_read_verify(&self, digests: &[Vec<u8>]) -> Duration {
        let began = Instant::now();
        std::thread::scope(|s| {
            for (rank, digest) in digests.iter().enumerate() {
                let path = self.raw_path(rank);
                s.spawn(move || {
                    let bytes = std::fs::read(&path).expect("reading a raw file");
                    assert_eq!(Sha256::digest(&bytes).as_slice(), digest.as_slice());
                    bytes.len()
                });
            }
        });
        began.elapsed()
    }

    fn raw_remove(&self) {
        for rank in 0..RANKS {
            let _ = std::fs::remove_file(self.raw_path(rank));
        }
    }
}

fn write_and_sync(path: &Path, bytes: &[u8]) {
    let mut file = std::fs::File::create(path).expect("creating a raw file");
    file.write_all(bytes).expect("writing a raw file");
    file.sync_all().expect("syncing a raw file");
}

fn checkpoint(c: &mut Criterion) {
    let fixture = Fixture::new();
    let total = checkpoint_bytes() as u64;
    let mut serial = 0u64;

    let mut group = c.benchmark_group("checkpoint_save");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.throughput(Throughput::Bytes(total));
    group.bench_function("raw_write_fsync", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                spent += fixture.raw_write();
                fixture.raw_remove();
            }
            spent
        })
    });
    group.bench_function("raw_write_sha256_fsync", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                spent += fixture.raw_write_hashed();
                fixture.raw_remove();
            }
            spent
        })
    });
    group.bench_function("steadfast_local_fs", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                serial += 1;
                let name = format!("save-{serial}");
                spent += fixture.save(&name);
                fixture.delete(&name);
            }
            spent
        })
    });
    group.finish();

    // Uncompressed against zstd level 1, on data that does not compress and
    // on data half of which is zeros.
    for (label, shards) in [
        ("random", &fixture.shards),
        ("compressible", &fixture.compressible),
    ] {
        let mut group = c.benchmark_group(format!("checkpoint_save_zstd_{label}"));
        group.sampling_mode(SamplingMode::Flat);
        group.sample_size(10);
        group.throughput(Throughput::Bytes(total));
        let mut written = [0u64; 2];
        for (slot, (id, compression)) in [
            ("uncompressed", Compression::None),
            ("zstd_1", Compression::zstd_level(1)),
        ]
        .into_iter()
        .enumerate()
        {
            group.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        serial += 1;
                        let name = format!("save-{serial}");
                        let (time, bytes) = fixture.save_with(&name, shards, compression);
                        spent += time;
                        written[slot] = bytes;
                        fixture.delete(&name);
                    }
                    spent
                })
            });
        }
        group.finish();
        println!(
            "checkpoint_save_zstd_{label}: bytes written {} uncompressed, {} with zstd level 1 \
             ({:.3}x)",
            written[0],
            written[1],
            written[1] as f64 / written[0].max(1) as f64
        );
    }

    // One checkpoint and one set of raw files, read back again and again.
    fixture.save("loaded");
    fixture.raw_write();
    let digests: Vec<Vec<u8>> = (0..RANKS)
        .map(|rank| Sha256::digest(fixture.bytes(rank)).to_vec())
        .collect();
    let mut group = c.benchmark_group("checkpoint_load_verify");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.throughput(Throughput::Bytes(total));
    group.bench_function("raw_read_sha256", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| fixture.raw_read_verify(&digests)).sum())
    });
    group.bench_function("steadfast_local_fs", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| fixture.load("loaded")).sum())
    });
    group.finish();
    fixture.delete("loaded");
    fixture.raw_remove();
}

criterion_group!(benches, checkpoint);
criterion_main!(benches);
