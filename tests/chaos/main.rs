//! The crate's own flows under chaos (feature `chaos`), on the in-memory
//! coordinator and storage, on paused time: distributed checkpoints, the
//! checkpoint manager, coordinated recovery, retries and breakers, under
//! single faults, several at once, partitions and cascading failures. Each
//! flow ends by turning chaos off and checking that no committed checkpoint
//! was lost and that every visible one loads and verifies, byte for byte.
//!
//! And the wrappers themselves: the same seed gives the same faults, a
//! wrapper switched off (or at rate 0) is transparent, rates are validated,
//! and the switch flips at run time from another task.
//!
//! Every failure message starts with the recorder's stats, which name the
//! seed: set `CHAOS_SEED` to replay a run with another seed.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use steadfast::breaker::CircuitBreaker;
use steadfast::chaos::{
    Chaos, ChaosConfig, ChaosCoordinator, ChaosError, ChaosRecorder, ChaosStorage, ChaosSwitch,
    FaultKind, Partition, StorageChaosConfig,
};
use steadfast::checkpoint::{
    CheckpointError, CheckpointOptions, DistributedCheckpoint, LoadOptions, MembershipFence,
    SaveOptions, ShardData,
};
use steadfast::coordinator::{
    Coordinator, CoordinatorError, InMemoryCoordinator, Membership, Role,
};
use steadfast::manager::{CheckpointManager, JsonState, RecoveryFilter};
use steadfast::pipeline::{Pipeline, PipelineError, StoppedBy};
use steadfast::recovery::{
    RecoveryCoordinator, RecoveryCoordinatorConfig, RecoveryEvent, RecoveryStrategyKind,
};
use steadfast::retry::RetryPolicy;
use steadfast::storage::testing::Operation;
use steadfast::storage::{CheckpointStorage, MemoryStorage, StorageError};
use tokio::sync::broadcast;
use tokio::time::Instant;

mod checkpoints;
mod manager;
mod recovery;
mod wrappers;

type Store = ChaosStorage<MemoryStorage>;
type Coord = ChaosCoordinator<InMemoryCoordinator>;
type Ckpt = Arc<DistributedCheckpoint<Store, Coord>>;

/// The seed of this run: `CHAOS_SEED`, or a fixed one.
fn seed() -> u64 {
    std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1234)
}

fn policy() -> RetryPolicy {
    RetryPolicy::builder()
        .max_retries(3)
        .initial_delay(Duration::from_millis(10))
        .build()
        .unwrap()
}

/// Storage chaos of every kind, at moderate rates.
fn every_storage_fault(seed: u64) -> StorageChaosConfig {
    StorageChaosConfig::builder()
        .seed(seed)
        .latency_between(0.3, Duration::from_millis(1), Duration::from_millis(40))
        .errors(0.05)
        .drops(0.02, Duration::from_millis(1))
        .failed_writes(0.05)
        .corrupt_reads(0.05)
        .torn_reads(0.05)
        .build()
        .unwrap()
}

/// The bytes rank `rank` saves in checkpoint `name`.
fn shard_bytes(name: &str, rank: usize) -> Vec<u8> {
    format!("{name}:{rank};").repeat(40).into_bytes()
}

/// A job of `world` ranks, each with its own chaos storage (over one
/// `MemoryStorage`) and chaos coordinator, sharing one switch, one
/// recorder and one partition controller.
struct Job {
    storage: MemoryStorage,
    switch: ChaosSwitch,
    recorder: ChaosRecorder,
    partition: Partition,
    ckpts: Vec<Ckpt>,
    /// What each attempted save wrote, by name, by rank.
    attempts: BTreeMap<String, Vec<Vec<u8>>>,
    /// The saves that returned success on some rank.
    committed: BTreeSet<String>,
}

impl Job {
    fn new(world: usize, storage: impl Fn(u64) -> StorageChaosConfig, coord: ChaosConfig) -> Job {
        let seed = seed();
        let memory = MemoryStorage::new();
        let switch = ChaosSwitch::new(true);
        let recorder = ChaosRecorder::with_log(10_000).seed(seed);
        let partition = Partition::new();
        let ckpts = InMemoryCoordinator::new(world)
            .into_iter()
            .enumerate()
            .map(|(rank, handle)| {
                let store = ChaosStorage::builder(memory.clone(), storage(seed + rank as u64))
                    .switch(switch.clone())
                    .recorder(recorder.clone())
                    .build()
                    .unwrap();
                let coord = ChaosCoordinator::builder(handle, coord.clone())
                    .switch(switch.clone())
                    .recorder(recorder.clone())
                    .partition(partition.clone())
                    .build()
                    .unwrap();
                Arc::new(DistributedCheckpoint::new(
                    store,
                    coord,
                    policy(),
                    CheckpointOptions::default(),
                ))
            })
            .collect();
        Job {
            storage: memory,
            switch,
            recorder,
            partition,
            ckpts,
            attempts: BTreeMap::new(),
            committed: BTreeSet::new(),
        }
    }

    /// Every rank saves `name`; returns each rank's outcome.
    async fn save(&mut self, name: &str, step: u64) -> Vec<Result<(), CheckpointError>> {
        let world = self.ckpts.len();
        self.attempts.insert(
            name.to_string(),
            (0..world).map(|r| shard_bytes(name, r)).collect(),
        );
        let tasks: Vec<_> = self
            .ckpts
            .iter()
            .map(|ckpt| {
                let (ckpt, name) = (Arc::clone(ckpt), name.to_string());
                tokio::spawn(async move {
                    let rank = ckpt.rank();
                    let shard = ShardData::new()
                        .with_entry(format!("state.{rank}"), shard_bytes(&name, rank));
                    ckpt.save(
                        &name,
                        &shard,
                        SaveOptions::new()
                            .step(step)
                            .timeout(Duration::from_secs(30)),
                    )
                    .await
                    .map(|_| ())
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap());
        }
        if outcomes.iter().any(Result::is_ok) {
            self.committed.insert(name.to_string());
        }
        outcomes
    }

    /// Under chaos, a load of any checkpoint either fails or returns the
    /// bytes that were saved: never other bytes.
    async fn load_under_chaos(&self, name: &str) {
        for ckpt in &self.ckpts {
            let rank = ckpt.rank();
            if let Ok(bytes) = ckpt.load(name, LoadOptions::default()).await {
                assert_eq!(
                    bytes,
                    self.attempts[name][rank],
                    "{}: rank {rank} loaded other bytes than it saved in {name}",
                    self.recorder.stats()
                );
            }
            if let Ok(bytes) = ckpt.load_entry(name, &format!("state.{rank}")).await {
                assert_eq!(
                    bytes,
                    self.attempts[name][rank],
                    "{}",
                    self.recorder.stats()
                );
            }
        }
    }

    /// Chaos off: every committed checkpoint is listed, and every listed
    /// one verifies and holds exactly the bytes its save wrote.
    async fn check_no_loss(&self) {
        self.switch.turn_off();
        self.partition.heal();
        check_visible(
            &self.ckpts[0],
            &self.attempts,
            &self.committed,
            &self.recorder,
        )
        .await;
    }
}

/// Every committed name is listed, and every listed checkpoint verifies and
/// holds, for each rank, the bytes its save wrote.
async fn check_visible<S: CheckpointStorage, C: Coordinator>(
    ckpt: &DistributedCheckpoint<S, C>,
    attempts: &BTreeMap<String, Vec<Vec<u8>>>,
    committed: &BTreeSet<String>,
    recorder: &ChaosRecorder,
) {
    let stats = recorder.stats();
    let listed: BTreeSet<String> = ckpt
        .list()
        .await
        .unwrap_or_else(|e| panic!("{stats}: list failed: {e}"))
        .into_iter()
        .map(|info| info.name)
        .collect();
    for name in committed {
        assert!(
            listed.contains(name),
            "{stats}: committed checkpoint {name} is lost; listed: {listed:?}"
        );
    }
    for name in &listed {
        let manifest = ckpt
            .verify(name)
            .await
            .unwrap_or_else(|e| panic!("{stats}: visible checkpoint {name} does not verify: {e}"));
        let saved = attempts
            .get(name)
            .unwrap_or_else(|| panic!("{stats}: {name} is listed but was never saved"));
        assert_eq!(manifest.world_size, saved.len(), "{stats}");
        for (rank, bytes) in saved.iter().enumerate() {
            let loaded = ckpt
                .load_entry(name, &format!("state.{rank}"))
                .await
                .unwrap_or_else(|e| panic!("{stats}: {name} rank {rank}: {e}"));
            assert_eq!(
                &loaded, bytes,
                "{stats}: {name} rank {rank} holds other bytes"
            );
        }
    }
}
