//! A chaos test of a job's checkpoints: three ranks save a checkpoint at
//! every step while chaos makes the storage slow, fail, lie about writes
//! and return damaged bytes, and a partition cuts a rank off for a while.
//! At the end chaos stops and every committed checkpoint must load and
//! verify, byte for byte; the example exits non-zero if one does not.
//!
//! The faults come from a seed, printed first: pass it again to replay the
//! same run.
//!
//! ```text
//! cargo run --example chaos_test --features chaos            # a fresh seed
//! cargo run --example chaos_test --features chaos -- 1234    # replay seed 1234
//! CHAOS_SEED=1234 cargo run --example chaos_test --features chaos
//! ```
//!
//! Time is tokio's paused clock, so the run's minutes of simulated delays,
//! timeouts and partition take a fraction of a second.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use steadfast::chaos::{
    ChaosConfig, ChaosCoordinator, ChaosRecorder, ChaosStorage, ChaosSwitch, Partition,
    StorageChaosConfig,
};
use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint, SaveOptions, ShardData};
use steadfast::coordinator::InMemoryCoordinator;
use steadfast::retry::RetryPolicy;
use steadfast::storage::MemoryStorage;

const RANKS: usize = 3;
const STEPS: u64 = 12;

type Ckpt =
    DistributedCheckpoint<ChaosStorage<MemoryStorage>, ChaosCoordinator<InMemoryCoordinator>>;

/// The seed: the first argument, else `CHAOS_SEED`, else a fresh one.
fn seed() -> Result<u64, String> {
    let given = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("CHAOS_SEED").ok());
    match given {
        Some(text) => text
            .parse()
            .map_err(|e| format!("the seed {text:?} is not a number: {e}")),
        None => Ok(SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)),
    }
}

/// What rank `rank` saves at `step`.
fn shard(step: u64, rank: usize) -> Vec<u8> {
    format!("step {step} of rank {rank}; ")
        .repeat(64)
        .into_bytes()
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> ExitCode {
    let seed = match seed() {
        Ok(seed) => seed,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "chaos seed {seed} (replay: cargo run --example chaos_test --features chaos -- {seed})"
    );

    let memory = MemoryStorage::new();
    let switch = ChaosSwitch::new(true);
    let recorder = ChaosRecorder::with_log(10_000).seed(seed);
    let partition = Partition::new();
    let mut ranks: Vec<Arc<Ckpt>> = Vec::new();
    for (rank, handle) in InMemoryCoordinator::new(RANKS).into_iter().enumerate() {
        let storage_faults = StorageChaosConfig::builder()
            .seed(seed.wrapping_add(rank as u64))
            .latency_between(0.3, Duration::from_millis(1), Duration::from_millis(200))
            .errors(0.05)
            .failed_writes(0.05)
            .corrupt_reads(0.05)
            .torn_reads(0.02)
            .build();
        let coordinator_faults = ChaosConfig::builder()
            .seed(seed.wrapping_add(100 + rank as u64))
            .latency_between(0.3, Duration::from_millis(1), Duration::from_millis(100))
            .build();
        let (storage_faults, coordinator_faults) = match (storage_faults, coordinator_faults) {
            (Ok(s), Ok(c)) => (s, c),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let storage = ChaosStorage::builder(memory.clone(), storage_faults)
            .switch(switch.clone())
            .recorder(recorder.clone())
            .build();
        let coordinator = ChaosCoordinator::builder(handle, coordinator_faults)
            .switch(switch.clone())
            .recorder(recorder.clone())
            .partition(partition.clone())
            .build();
        let (storage, coordinator) = match (storage, coordinator) {
            (Ok(s), Ok(c)) => (s, c),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        ranks.push(Arc::new(DistributedCheckpoint::new(
            storage,
            coordinator,
            RetryPolicy::default(),
            CheckpointOptions::default(),
        )));
    }

    let mut saved: BTreeMap<String, u64> = BTreeMap::new();
    let mut committed = BTreeSet::new();
    for step in 1..=STEPS {
        if step == 5 {
            println!("step {step}: rank 2 is cut off from the others for 45 s");
            partition.cut([2], Duration::from_secs(45));
        }
        let name = format!("step-{step:03}");
        saved.insert(name.clone(), step);
        let tasks: Vec<_> = ranks
            .iter()
            .map(|ckpt| {
                let (ckpt, name) = (Arc::clone(ckpt), name.clone());
                tokio::spawn(async move {
                    let rank = ckpt.rank();
                    let data =
                        ShardData::new().with_entry(format!("state.{rank}"), shard(step, rank));
                    let options = SaveOptions::new()
                        .step(step)
                        .timeout(Duration::from_secs(20));
                    ckpt.save(&name, &data, options).await.map(|_| ())
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(match task.await {
                Ok(outcome) => outcome,
                Err(e) => {
                    eprintln!("a rank's task failed: {e}");
                    return ExitCode::FAILURE;
                }
            });
        }
        if outcomes.iter().any(Result::is_ok) {
            committed.insert(name.clone());
            println!("step {step}: {name} committed");
        } else if let Some(Err(e)) = outcomes.first() {
            println!("step {step}: {name} failed: {e}");
        }
    }

    // Chaos stops: everything committed must be there, and whatever is
    // there must verify and hold what was saved.
    switch.turn_off();
    partition.heal();
    let stats = recorder.stats();
    println!("injected: {stats}");
    let check = &ranks[0];
    let listed = match check.list().await {
        Ok(list) => list,
        Err(e) => {
            eprintln!("listing the checkpoints failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut problems = Vec::new();
    let visible: BTreeSet<String> = listed.iter().map(|info| info.name.clone()).collect();
    for name in committed.difference(&visible) {
        problems.push(format!("committed checkpoint {name} is lost"));
    }
    for name in &visible {
        if let Err(e) = check.verify(name).await {
            problems.push(format!("{name} does not verify: {e}"));
            continue;
        }
        let Some(step) = saved.get(name) else {
            problems.push(format!("{name} is listed but was never saved"));
            continue;
        };
        for rank in 0..RANKS {
            match check.load_entry(name, &format!("state.{rank}")).await {
                Ok(bytes) if bytes == shard(*step, rank) => {}
                Ok(_) => problems.push(format!("{name}: rank {rank} holds other bytes")),
                Err(e) => problems.push(format!("{name}: rank {rank}: {e}")),
            }
        }
    }
    println!(
        "{} of {STEPS} saves committed; {} checkpoints visible, each verified",
        committed.len(),
        visible.len()
    );
    if problems.is_empty() {
        println!("ok: no committed checkpoint lost, every visible one verifies");
        ExitCode::SUCCESS
    } else {
        for problem in &problems {
            eprintln!("FAILED: {problem}");
        }
        eprintln!("replay with: cargo run --example chaos_test --features chaos -- {seed}");
        ExitCode::FAILURE
    }
}
