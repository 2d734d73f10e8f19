//! Incremental (chunked) checkpoints and chunk collection under SIGKILL: a
//! real child process saves chunked checkpoints with two ranks to a local
//! directory, a few percent of its state changing at each step, applies
//! retention (which collects the chunks of what it deleted) after each save
//! and runs a collection on its own every few steps; the parent kills it at
//! seeded random moments, many times over the same directory.
//!
//! Half the kills are aimed at a collection (just after the child says one
//! starts), the others land anywhere in the cycle of saves. After every
//! kill the parent checks that every visible checkpoint loads, verifies and
//! holds exactly the state of its step (so that no chunk a visible
//! checkpoint needs is missing), and the next child must be able to go on
//! saving. At the end, once the locks the kills left have turned stale, a
//! clean-up and a collection leave exactly the chunks the visible
//! checkpoints need: what the killed saves and collections left is gone.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use steadfast::checkpoint::{
    CheckpointOptions, Chunking, DistributedCheckpoint, ManualClock, SaveOptions, ShardData,
};
use steadfast::coordinator::{Coordinator, InMemoryCoordinator};
use steadfast::retry::RetryPolicy;
use steadfast::storage::{CheckpointStorage, LocalFsStorage};

const DIR_VAR: &str = "STEADFAST_CHUNKS_CRASH_DIR";
const CHILD: &str = "child_saves_and_collects_until_killed";
const ROUNDS: u32 = 50;
const RANKS: usize = 2;
const SEED: u64 = 0x0c4a_2b5e_ed00;
/// Each rank's changing entry: 64 regions of 32 KiB.
const REGIONS: usize = 64;
const REGION: usize = 32 * 1024;
/// The entry that never changes after the first save, saved by reference.
const FROZEN_LEN: usize = 256 * 1024;

/// Region `i` of rank `rank` changes every `8 + i` steps: a few percent of
/// the bytes change at each step, in a few places.
fn weights_at(rank: usize, step: u64) -> Vec<u8> {
    let mut out = vec![0u8; REGIONS * REGION];
    for (i, region) in out.chunks_mut(REGION).enumerate() {
        let version = step / (8 + i as u64);
        let seed = (rank as u64) << 48 | (i as u64) << 32 | version;
        SmallRng::seed_from_u64(seed).fill_bytes(region);
    }
    out
}

fn frozen(rank: usize) -> Vec<u8> {
    let mut out = vec![0u8; FROZEN_LEN];
    SmallRng::seed_from_u64(0xf202e2 ^ rank as u64).fill_bytes(&mut out);
    out
}

fn policy() -> RetryPolicy {
    RetryPolicy::builder()
        .max_retries(2)
        .initial_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(5))
        .build()
        .unwrap()
}

fn options() -> CheckpointOptions {
    CheckpointOptions::builder()
        // The shortest lifetime: a killed collection holds up the next
        // child's first save, and a killed save the collections, until its
        // lock turns stale.
        .chunk_lock_lifetime(Duration::from_secs(1))
        .build()
        .unwrap()
}

fn handle(
    dir: &Path,
    coordinator: InMemoryCoordinator,
) -> DistributedCheckpoint<LocalFsStorage, InMemoryCoordinator> {
    DistributedCheckpoint::new(
        LocalFsStorage::new(dir).unwrap(),
        coordinator,
        policy(),
        options(),
    )
}

fn name_of(step: u64) -> String {
    format!("run/step-{step:06}")
}

/// The child: saves a chunked checkpoint at every step, the frozen entry by
/// reference to the previous checkpoint; rank 0 applies retention after
/// each save and collects chunks every third step. Does nothing unless run
/// by the parent.
#[test]
#[ignore = "run by chunked_saves_and_collections_survive_sigkill as a child process"]
fn child_saves_and_collects_until_killed() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut ranks = Vec::new();
        for coordinator in InMemoryCoordinator::new(RANKS) {
            let dir = dir.clone();
            ranks.push(tokio::spawn(async move {
                let rank = coordinator.rank();
                let ckpt = handle(Path::new(&dir), coordinator);
                // Start after the newest committed checkpoint, as a job
                // restarting after a crash does.
                let latest = ckpt.latest().await.unwrap();
                let mut step = latest.as_ref().and_then(|i| i.step).unwrap_or(0);
                let mut base = latest.map(|i| i.name);
                let chunking = Chunking::with_average_size(64 * 1024).unwrap();
                for _ in 0..100_000 {
                    step += 1;
                    let mut shard = ShardData::new()
                        .with_entry(format!("weights.{rank}"), weights_at(rank, step));
                    let mut options = SaveOptions::new().step(step).chunking(chunking);
                    match &base {
                        Some(base) => {
                            shard = shard.with_unchanged_entry(format!("frozen.{rank}"));
                            options = options.base(base.clone());
                        }
                        None => shard.push(format!("frozen.{rank}"), frozen(rank)),
                    }
                    let name = name_of(step);
                    let info = ckpt.save(&name, &shard, options).await.unwrap();
                    base = Some(info.name);
                    if rank == 0 {
                        println!("SAVED {step}");
                        let report = ckpt.retain_last(3).await.unwrap();
                        assert!(report.chunks.stopped.is_none(), "{:?}", report.chunks);
                        if step % 3 == 0 {
                            println!("COLLECTING {step}");
                            let report = ckpt.collect_chunks().await.unwrap();
                            println!("COLLECTED {step} {}", report.deleted.len());
                        }
                    }
                    // The next save starts on both ranks together.
                    ckpt.coordinator()
                        .barrier(Duration::from_secs(60))
                        .await
                        .unwrap();
                }
            }));
        }
        for rank in ranks {
            rank.await.unwrap();
        }
    });
}

/// Loads every entry of every visible checkpoint and checks it against the
/// state of its step; returns the visible checkpoints.
async fn check_every_visible_checkpoint(dir: &Path, round: u32) -> Vec<String> {
    let reader = handle(dir, InMemoryCoordinator::new(1).remove(0));
    let mut names = Vec::new();
    for info in reader.list().await.unwrap() {
        let step = info.step.unwrap();
        for rank in 0..RANKS {
            let weights = reader
                .load_entry(&info.name, &format!("weights.{rank}"))
                .await
                .unwrap_or_else(|e| panic!("round {round}: {}: {e}", info.name));
            assert!(
                weights == weights_at(rank, step),
                "round {round}: {} rank {rank}: wrong weights",
                info.name
            );
            let kept = reader
                .load_entry(&info.name, &format!("frozen.{rank}"))
                .await
                .unwrap_or_else(|e| panic!("round {round}: {}: {e}", info.name));
            assert!(
                kept == frozen(rank),
                "round {round}: {} rank {rank}",
                info.name
            );
        }
        names.push(info.name);
    }
    names
}

#[test]
fn chunked_saves_and_collections_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = SmallRng::seed_from_u64(SEED);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut kills_in_collections = 0;

    for round in 0..ROUNDS {
        let aim_at_a_collection = round % 2 == 0;
        let saves_before_kill = rng.random_range(1..=3);
        let extra = if aim_at_a_collection {
            Duration::from_micros(rng.random_range(0..3_000))
        } else {
            Duration::from_micros(rng.random_range(0..40_000))
        };
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                CHILD,
                "--nocapture",
                "--ignored",
                "--test-threads=1",
            ])
            .env(DIR_VAR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut next_line = || {
            lines
                .next()
                .unwrap_or_else(|| panic!("round {round}: the child stopped early"))
                .unwrap()
        };
        let mut saves = 0;
        while saves < saves_before_kill {
            saves += usize::from(next_line().starts_with("SAVED "));
        }
        let mut collecting = false;
        if aim_at_a_collection {
            while !next_line().starts_with("COLLECTING ") {}
            collecting = true;
        }
        std::thread::sleep(extra);
        child.kill().unwrap();
        child.wait().unwrap();
        if collecting {
            // Whether the kill landed before the collection reported.
            let finished = lines
                .map_while(Result::ok)
                .any(|line| line.starts_with("COLLECTED "));
            kills_in_collections += usize::from(!finished);
        }
        let visible = runtime.block_on(check_every_visible_checkpoint(dir.path(), round));
        assert!(!visible.is_empty(), "round {round}: nothing visible");
    }
    // A good share of the kills aimed at a collection landed inside one.
    println!(
        "{kills_in_collections} of {} kills landed inside a collection",
        ROUNDS / 2
    );
    assert!(
        kills_in_collections >= 5,
        "only {kills_in_collections} kills landed inside a collection"
    );

    runtime.block_on(async {
        // An hour later every lock the kills left is stale.
        let clock = ManualClock::new(SystemTime::now() + Duration::from_secs(3600));
        let ckpt = handle(dir.path(), InMemoryCoordinator::new(1).remove(0)).with_wall_clock(clock);
        let cleanup = ckpt.cleanup_uncommitted(Duration::ZERO).await.unwrap();
        assert!(cleanup.objects.failed.is_empty(), "{cleanup:?}");
        let report = ckpt.collect_chunks().await.unwrap();
        assert!(
            !report.is_deferred() && report.stopped.is_none(),
            "{report:?}"
        );
        assert!(report.failed.is_empty(), "{report:?}");
        // What is left is exactly what the visible checkpoints need.
        let again = ckpt.collect_chunks().await.unwrap();
        assert!(again.deleted.is_empty(), "{again:?}");
        let stored: HashSet<String> = ckpt
            .storage()
            .list("chunks/")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert!(
            !stored.iter().any(|k| k.starts_with("chunks/locks/")),
            "{stored:?}"
        );
        assert_eq!(
            stored.len(),
            again.kept,
            "chunks no checkpoint needs are left"
        );
        check_every_visible_checkpoint(dir.path(), ROUNDS).await;
    });
}
