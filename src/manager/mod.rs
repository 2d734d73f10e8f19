//! The checkpoint manager: automatic, asynchronous checkpoints of a job's
//! registered state on top of [`DistributedCheckpoint`](crate::DistributedCheckpoint),
//! with retention and point-in-time recovery.
//!
//! A job registers its state ([`Stateful`], [`JsonState`]) with a
//! [`CheckpointManager`], which snapshots it into memory when a checkpoint
//! is due (every [`interval`](CheckpointManagerBuilder::interval) on a
//! task, every [`every_n_steps`](CheckpointManagerBuilder::every_n_steps)
//! calls of [`step`](CheckpointManager::step), or now with
//! [`create_checkpoint`](CheckpointManager::create_checkpoint)) and saves it
//! in the background, reporting every outcome ([`CheckpointEvent`],
//! [`PendingSave`]). Rank 0 decides every save and the other ranks follow,
//! so the ranks never drift apart. After each commit rank 0 applies the
//! [`RetentionPolicy`]; on start-up
//! [`restore_latest`](CheckpointManager::restore_latest) restores the newest
//! checkpoint that verifies, passing over damaged ones and saying why.
//!
//! The pure parts need no runtime: which checkpoints to keep
//! ([`RetentionPolicy`]), the user's checks of a restore
//! ([`IntegrityCheck`], [`IntegrityChecks`]), the checkpoints a job can go
//! back to ([`RecoveryPoint`], [`RecoveryFilter`]), and the serde
//! configuration ([`CheckpointManagerConfig`]; its storage is opened by the
//! user with [`StorageLocation::open`]). Checkpoints are ordered by the
//! commit sequence their manifests record, never by a wall clock or a
//! step.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use steadfast::manager::{CheckpointManagerConfig, RetentionPolicy};
//!
//! let config = CheckpointManagerConfig::builder()
//!     .interval(Duration::from_secs(300))
//!     .retention(RetentionPolicy::keep_all().keep_last(3).keep_for(Duration::from_secs(7 * 86_400)))
//!     .build()?;
//! assert_eq!(config.retention.last(), Some(3));
//! # Ok::<(), steadfast::ConfigError>(())
//! ```
//!
//! ```
//! use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
//! use steadfast::coordinator::InMemoryCoordinator;
//! use steadfast::manager::{CheckpointManager, JsonState};
//! use steadfast::retry::RetryPolicy;
//! use steadfast::storage::MemoryStorage;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let storage = MemoryStorage::new();
//! let rank = InMemoryCoordinator::new(1).remove(0);
//! let ckpt = DistributedCheckpoint::new(storage, rank, RetryPolicy::default(), CheckpointOptions::default());
//! let manager = CheckpointManager::builder(ckpt).prefix("run-1").every_n_steps(100).build()?;
//! let progress = JsonState::new(0u64);
//! manager.register_state("evolution_progress", progress.clone())?;
//! manager.restore_latest().await?; // nothing yet
//! for _ in 0..250 {
//!     progress.update(|p| *p += 1);
//!     if let Some(save) = manager.step().await? {
//!         save.wait().await?; // or let it run on, and read the events
//!     }
//! }
//! progress.set(0);
//! let report = manager.restore_latest().await?.expect("saved at steps 100 and 200");
//! assert_eq!(report.point.step, Some(200));
//! assert_eq!(progress.get(), 200);
//! # Ok(())
//! # }
//! ```

mod builder;
mod cleanup;
mod config;
// `ManagerError` holds a `CheckpointError` (128 bytes) whole, as the
// checkpoint calls it wraps return it; boxing it would cost every caller.
#[allow(clippy::result_large_err)]
mod coordination;
mod error;
mod events;
mod integrity;
mod location;
// `ManagerError` holds a `CheckpointError` (128 bytes) whole, as the
// checkpoint calls it wraps return it; boxing it would cost every caller.
#[allow(clippy::module_inception, clippy::result_large_err)]
mod manager;
// `ManagerError` holds a `CheckpointError` (128 bytes) whole, as the
// checkpoint calls it wraps return it; boxing it would cost every caller.
#[allow(clippy::result_large_err)]
mod names;
mod points;
// `ManagerError` holds a `CheckpointError` (128 bytes) whole, as the
// checkpoint calls it wraps return it; boxing it would cost every caller.
#[allow(clippy::result_large_err)]
mod restore;
mod retention;
// `ManagerError` holds a `CheckpointError` (128 bytes) whole, as the
// checkpoint calls it wraps return it; boxing it would cost every caller.
#[allow(clippy::result_large_err)]
mod saving;
// `ManagerError` holds a `CheckpointError` (128 bytes) whole, as the
// checkpoint calls it wraps return it; boxing it would cost every caller.
#[allow(clippy::result_large_err)]
mod schedule;
mod stateful;
mod trace;

pub use crate::checkpoint::RetentionReport;
pub use builder::CheckpointManagerBuilder;
pub use config::{CheckpointManagerConfig, CheckpointManagerConfigBuilder, OverlapPolicy};
pub use error::{IntegrityRejection, ManagerError};
pub use events::{CheckpointEvent, SaveTimings, SkipReason, EVENT_CAPACITY};
pub use integrity::{
    FnCheck, IntegrityCheck, IntegrityChecks, IntegrityVerdict, NonEmpty, RequireMetadata,
};
pub use location::{ReplicaLocation, StorageLocation};
pub use manager::CheckpointManager;
pub use points::{sort_newest_first, RecoveryFilter, RecoveryPoint, LABEL_KEY};
pub use restore::RestoreReport;
pub use retention::{KeepReason, RetentionPlan, RetentionPolicy};
pub use saving::PendingSave;
pub use schedule::ScheduleHandle;
pub use stateful::{JsonState, StateError, Stateful};
