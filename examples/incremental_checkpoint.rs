//! Incremental checkpoints on replicated storage.
//!
//! Four ranks save their state as content-defined chunks to three
//! directories (the replicas of a `ReplicatedStorage`: a write is
//! acknowledged once two hold it). 1% of the weights then changes, in a few
//! places, and the embeddings not at all: the second save writes only the
//! chunks around the changes, and stores the embeddings by reference to the
//! first checkpoint without reading or hashing them. Then one directory is
//! lost: every entry still loads, verified, from the other two, and a repair
//! writes the lost copies back once the directory is replaced. Last,
//! retention deletes the first checkpoint and collects the chunks only it
//! needed.
//!
//! Run it with `cargo run --example incremental_checkpoint`.

use std::path::{Path, PathBuf};

use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use steadfast::checkpoint::{
    CheckpointOptions, ChunkStats, Chunking, DistributedCheckpoint, SaveOptions, ShardData,
};
use steadfast::coordinator::{Coordinator, InMemoryCoordinator};
use steadfast::retry::RetryPolicy;
use steadfast::storage::{ConsistencyLevel, LocalFsStorage, Replica, ReplicatedStorage};

type Error = Box<dyn std::error::Error + Send + Sync>;

const RANKS: usize = 4;
const WEIGHTS: usize = 8 << 20;
const EMBEDDINGS: usize = 2 << 20;
const MIB: f64 = (1 << 20) as f64;

/// Three directories, on three disks in production; a write needs two.
fn replicated(dirs: &[PathBuf]) -> Result<ReplicatedStorage, Error> {
    let mut replicas = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        replicas.push(Replica::new(LocalFsStorage::new(dir)?).domain(format!("disk-{i}")));
    }
    Ok(ReplicatedStorage::builder()
        .replicas(replicas)
        .consistency(ConsistencyLevel::Quorum)
        .build()?)
}

fn random(seed: u64, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    SmallRng::seed_from_u64(seed).fill_bytes(&mut bytes);
    bytes
}

/// Rank `rank`'s weights at step 100, and at step 200 with 1% of them
/// changed in four places.
fn weights(rank: usize, step: u64) -> Vec<u8> {
    let mut bytes = random(rank as u64, WEIGHTS);
    if step >= 200 {
        let region = WEIGHTS / 100 / 4;
        for place in 0..4 {
            let at = place * WEIGHTS / 4 + 12_345;
            let new = random(1000 + (rank * 4 + place) as u64, region);
            bytes[at..at + region].copy_from_slice(&new);
        }
    }
    bytes
}

fn embeddings(rank: usize) -> Vec<u8> {
    random(500 + rank as u64, EMBEDDINGS)
}

fn chunked() -> Result<SaveOptions, Error> {
    Ok(SaveOptions::new().chunking(Chunking::with_average_size(64 * 1024)?))
}

/// Every rank saves; returns the chunk counts of all ranks added up.
async fn save_everywhere(storage: &ReplicatedStorage, step: u64) -> Result<ChunkStats, Error> {
    let mut saves = Vec::new();
    for coordinator in InMemoryCoordinator::new(RANKS) {
        let ckpt = handle(storage, coordinator);
        saves.push(tokio::spawn(async move {
            let rank = ckpt.rank();
            let mut shard =
                ShardData::new().with_entry(format!("weights.{rank}"), weights(rank, step));
            let mut options = chunked()?.step(step);
            if step == 100 {
                shard.push(format!("embeddings.{rank}"), embeddings(rank));
            } else {
                // Unchanged since step 100: stored by reference.
                shard = shard.with_unchanged_entry(format!("embeddings.{rank}"));
                options = options.base("step-100");
            }
            let (_, stats) = ckpt
                .save_with_stats(&format!("step-{step}"), &shard, options)
                .await?;
            Ok::<_, Error>(stats)
        }));
    }
    let mut total = ChunkStats::default();
    for save in saves {
        let stats = save.await??;
        total.chunks_total += stats.chunks_total;
        total.chunks_written += stats.chunks_written;
        total.bytes_total += stats.bytes_total;
        total.bytes_written += stats.bytes_written;
    }
    Ok(total)
}

fn handle<C: Coordinator>(
    storage: &ReplicatedStorage,
    coordinator: C,
) -> DistributedCheckpoint<ReplicatedStorage, C> {
    DistributedCheckpoint::new(
        storage.clone(),
        coordinator,
        RetryPolicy::default(),
        CheckpointOptions::default(),
    )
}

fn report(what: &str, stats: &ChunkStats) {
    println!(
        "{what:<12} state {:>6.1} MiB in {:>4} chunks, wrote {:>6.2} MiB in {:>4} chunks ({:.1}% of the state)",
        stats.bytes_total as f64 / MIB,
        stats.chunks_total,
        stats.bytes_written as f64 / MIB,
        stats.chunks_written,
        100.0 * stats.bytes_written as f64 / stats.bytes_total.max(1) as f64,
    );
}

/// Loads every entry of `step-200` on a one-rank reader and checks it.
async fn load_everything(storage: &ReplicatedStorage) -> Result<(), Error> {
    let reader = handle(storage, InMemoryCoordinator::new(1).remove(0));
    for rank in 0..RANKS {
        let loaded = reader
            .load_entry("step-200", &format!("weights.{rank}"))
            .await?;
        assert!(loaded == weights(rank, 200), "rank {rank}: wrong weights");
        let loaded = reader
            .load_entry("step-200", &format!("embeddings.{rank}"))
            .await?;
        assert!(loaded == embeddings(rank), "rank {rank}: wrong embeddings");
    }
    Ok(())
}

fn files_in(dir: &Path) -> usize {
    walk(dir).unwrap_or(0)
}

fn walk(dir: &Path) -> std::io::Result<usize> {
    let mut n = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        n += if entry.file_type()?.is_dir() {
            walk(&entry.path())?
        } else {
            1
        };
    }
    Ok(n)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let root = tempfile::tempdir()?;
    let dirs: Vec<PathBuf> = ["a", "b", "c"]
        .iter()
        .map(|d| root.path().join(d))
        .collect();
    let storage = replicated(&dirs)?;

    let full = save_everywhere(&storage, 100).await?;
    report("full save", &full);
    let incremental = save_everywhere(&storage, 200).await?;
    report("incremental", &incremental);
    assert!(incremental.bytes_written * 20 < full.bytes_written);
    // Copies still on their way to the third replica land.
    storage.wait_for_writes().await;

    // One disk is lost.
    std::fs::remove_dir_all(&dirs[1])?;
    load_everything(&storage).await?;
    println!(
        "lost {}: every entry of step-200 still loads, verified",
        dirs[1].display()
    );

    // The disk is replaced; a scrub writes its copies back.
    std::fs::create_dir_all(&dirs[1])?;
    let repair = storage.repair().await?;
    storage.wait_for_writes().await;
    println!(
        "repair: {} copies rewritten; {} files on the new disk, as many as on the others ({})",
        repair.copies_rewritten(),
        files_in(&dirs[1]),
        files_in(&dirs[0]),
    );
    assert_eq!(files_in(&dirs[1]), files_in(&dirs[0]));

    // Retention keeps step-200; the chunks only step-100 needed are collected.
    let ckpt = handle(&storage, InMemoryCoordinator::new(1).remove(0));
    let retention = ckpt.retain_last(1).await?;
    println!(
        "retention removed {:?}; collected {} chunks ({:.2} MiB) that only it needed, kept {}",
        retention.removed,
        retention.chunks.deleted.len(),
        retention.chunks.bytes_deleted as f64 / MIB,
        retention.chunks.kept,
    );
    load_everything(&storage).await?;
    Ok(())
}
