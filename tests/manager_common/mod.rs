//! What the manager tests share: managers over one `MemoryStorage`, one per
//! rank of an `InMemoryCoordinator`, each rank run as a task.

#![allow(dead_code)]

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{FutureExt, Stream, StreamExt};
use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint, ManualClock};
use steadfast::coordinator::InMemoryCoordinator;
use steadfast::manager::{
    CheckpointEvent, CheckpointManager, CheckpointManagerBuilder, StateError, Stateful,
};
use steadfast::retry::RetryPolicy;
use steadfast::storage::MemoryStorage;

pub type Manager = CheckpointManager<MemoryStorage, InMemoryCoordinator>;
pub type Builder = CheckpointManagerBuilder<MemoryStorage, InMemoryCoordinator>;

/// How long a write takes when a test slows the storage down.
pub const SLOW_WRITE: Duration = Duration::from_secs(100);

/// The wall time a manual clock starts at.
pub fn wall_start() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

pub fn policy() -> RetryPolicy {
    RetryPolicy::builder()
        .max_retries(2)
        .initial_delay(Duration::from_millis(10))
        .build()
        .unwrap()
}

pub fn checkpoint(
    storage: MemoryStorage,
    rank: InMemoryCoordinator,
    clock: Option<ManualClock>,
) -> DistributedCheckpoint<MemoryStorage, InMemoryCoordinator> {
    let ckpt = DistributedCheckpoint::new(storage, rank, policy(), CheckpointOptions::default());
    match clock {
        Some(clock) => ckpt.with_wall_clock(clock),
        None => ckpt,
    }
}

/// One manager per rank of a job of `world` ranks.
pub fn managers(
    storage: &MemoryStorage,
    world: usize,
    clock: Option<ManualClock>,
    setup: impl Fn(Builder) -> Builder,
) -> Vec<Manager> {
    InMemoryCoordinator::new(world)
        .into_iter()
        .map(|rank| {
            let ckpt = checkpoint(storage.clone(), rank, clock.clone());
            setup(CheckpointManager::builder(ckpt)).build().unwrap()
        })
        .collect()
}

/// The manager of a job of one rank.
pub fn one(
    storage: &MemoryStorage,
    clock: Option<ManualClock>,
    setup: impl Fn(Builder) -> Builder,
) -> Manager {
    managers(storage, 1, clock, setup).remove(0)
}

/// Runs `body` on every rank's manager, each on its own task; the results
/// by rank.
pub async fn on_ranks<F, Fut, T>(managers: Vec<Manager>, body: F) -> Vec<T>
where
    F: Fn(Manager) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let tasks: Vec<_> = managers
        .into_iter()
        .map(|m| tokio::spawn(body(m)))
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

/// The events already delivered.
pub fn drain(events: &mut (impl Stream<Item = CheckpointEvent> + Unpin)) -> Vec<CheckpointEvent> {
    let mut out = Vec::new();
    while let Some(Some(event)) = events.next().now_or_never() {
        out.push(event);
    }
    out
}

/// A state whose snapshot fails while its flag is set.
pub struct Failing(pub Arc<Mutex<bool>>);

impl Stateful for Failing {
    fn snapshot(&self) -> Result<Vec<u8>, StateError> {
        if *self.0.lock().unwrap() {
            Err(StateError::new("the device is busy"))
        } else {
            Ok(b"ok".to_vec())
        }
    }

    fn restore(&self, _: &[u8]) -> Result<(), StateError> {
        Ok(())
    }
}
