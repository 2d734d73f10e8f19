//! Chaos for your own tests (feature `chaos`): faults injected into any
//! async operation, any [`CheckpointStorage`](crate::storage::CheckpointStorage)
//! and any [`Coordinator`](crate::coordinator::Coordinator), at chosen
//! rates, from a seed, so that a failing run can be replayed.
//!
//! What Polly's Simmy does for calls, and the faults a distributed job
//! meets besides:
//!
//! - [`Chaos`] wraps an async operation ([`Chaos::run`]) or sits in a
//!   [`Pipeline`](crate::pipeline::Pipeline) as a strategy: latency (fixed
//!   or a range, on tokio's clock), errors made by your error factory,
//!   wrong results made by your mutation of the `Ok` value, and cancelled
//!   calls (the future dropped unpolled or mid-way, the caller told with a
//!   typed [`Dropped`]).
//! - [`ChaosStorage`] wraps a storage: latency, errors, cancelled calls,
//!   writes that land but are reported failed, reads with a flipped bit or
//!   cut short; per operation ([`StorageChaosConfig::targets`]).
//! - [`ChaosCoordinator`] wraps a coordinator (and a
//!   [`Membership`](crate::coordinator::Membership), by delegation):
//!   latency, transient errors, and partitions from a shared [`Partition`]
//!   controller: a set of ranks cut off from the others for a while, then
//!   healed.
//!
//! Every wrapper has a config ([`ChaosConfig`], [`StorageChaosConfig`]:
//! plain data, validated, serde), a [`ChaosSwitch`] to turn injection on
//! and off at run time from any task (share one switch between wrappers to
//! flip them all), and a [`ChaosRecorder`] counting what was injected per
//! [`FaultKind`], with an optional log of each [`InjectedFault`]; share
//! one recorder to count a whole job. With the switch off, or every rate
//! at zero, a wrapper is transparent: the same results, no delay, no
//! random draw.
//!
//! # Replaying a failing run
//!
//! Each wrapper draws its faults from its own generator
//! ([`rand::rngs::SmallRng`]), seeded with its config's seed, one call at a
//! time, in a fixed order of draws per call. So the same seed and the same
//! order of calls give the same faults. To make a failing run replayable:
//!
//! 1. take the seed from outside (an environment variable, an argument),
//!    and pick a fresh one when none is given;
//! 2. print it, or let the recorder print it: [`ChaosStats`]'s `Display`
//!    starts with it (`"seed 1234: 3 latency, 2 errors"`), so put the stats
//!    in the assertion message;
//! 3. run the test on paused time (`#[tokio::test(start_paused = true)]`)
//!    and on one thread (`flavor = "current_thread"`, the default), so that
//!    the order of calls is the same on every run;
//! 4. rerun with that seed.
//!
//! Calls that race (two ranks' tasks, spawned work) reach a shared wrapper
//! in an order the scheduler picks; give each rank a wrapper of its own
//! (seeded with, say, the job's seed plus the rank) so that each rank's
//! faults depend only on its own calls.
//!
//! # Examples
//!
//! A test that saves under chaos, then checks that what is visible
//! verifies:
//!
//! ```
//! use std::time::Duration;
//! use steadfast::chaos::{ChaosStorage, StorageChaosConfig};
//! use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint, LoadOptions, SaveOptions, ShardData};
//! use steadfast::coordinator::InMemoryCoordinator;
//! use steadfast::retry::RetryPolicy;
//! use steadfast::storage::MemoryStorage;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let seed = std::env::var("CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1234);
//! let config = StorageChaosConfig::builder()
//!     .seed(seed)
//!     .errors(0.1)
//!     .corrupt_reads(0.2)
//!     .latency_between(0.5, Duration::from_millis(1), Duration::from_millis(50))
//!     .build()?;
//! let storage = ChaosStorage::builder(MemoryStorage::new(), config).build()?;
//! let rank = InMemoryCoordinator::new(1).remove(0);
//! let ckpt = DistributedCheckpoint::new(storage.clone(), rank, RetryPolicy::default(), CheckpointOptions::default());
//!
//! let mut saved = Vec::new();
//! for step in 0..5u8 {
//!     let name = format!("step-{step}");
//!     let shard = ShardData::new().with_entry("w", vec![step; 64]);
//!     if ckpt.save(&name, &shard, SaveOptions::new().step(step.into())).await.is_ok() {
//!         saved.push((name, vec![step; 64]));
//!     }
//!     // A load under chaos either verifies or fails: never wrong bytes.
//!     if let Ok(bytes) = ckpt.load(&format!("step-{step}"), LoadOptions::default()).await {
//!         assert_eq!(bytes, vec![step; 64]);
//!     }
//! }
//! storage.switch().turn_off();
//! for (name, bytes) in &saved {
//!     assert_eq!(&ckpt.load(name, LoadOptions::default()).await?, bytes, "{}", storage.recorder().stats());
//! }
//! # Ok(())
//! # }
//! ```

mod config;
mod coordinator;
mod error;
mod operation;
mod partition;
mod record;
mod storage;
mod storage_config;
mod switch;

/// The `tracing` target of every event of this module.
const TARGET: &str = "steadfast::chaos";

pub use config::{ChaosConfig, ChaosConfigBuilder};
pub use coordinator::{ChaosCoordinator, ChaosCoordinatorBuilder};
pub use error::{ChaosError, Dropped};
pub use operation::{Chaos, ChaosBuilder};
pub use partition::Partition;
pub use record::{ChaosRecorder, ChaosStats, FaultKind, InjectedFault};
pub use storage::{ChaosStorage, ChaosStorageBuilder};
pub use storage_config::{StorageChaosConfig, StorageChaosConfigBuilder};
pub use switch::ChaosSwitch;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::{Coordinator, InMemoryCoordinator, Membership};
    use crate::storage::{CheckpointStorage, MemoryStorage};

    #[test]
    fn wrappers_are_send_sync_and_pluggable() {
        fn check<T: Send + Sync>() {}
        check::<Chaos<u8, std::io::Error>>();
        check::<ChaosStorage<MemoryStorage>>();
        check::<ChaosCoordinator<InMemoryCoordinator>>();
        check::<ChaosSwitch>();
        check::<ChaosRecorder>();
        check::<Partition>();
        fn storage<S: CheckpointStorage>() {}
        storage::<ChaosStorage<MemoryStorage>>();
        storage::<ChaosStorage<std::sync::Arc<dyn CheckpointStorage>>>();
        fn membership<M: Membership>() {}
        membership::<ChaosCoordinator<InMemoryCoordinator>>();
        fn coordinator<C: Coordinator>() {}
        coordinator::<ChaosCoordinator<std::sync::Arc<dyn Coordinator>>>();
    }
}
