//! The checkpoint manager: automatic, asynchronous checkpoints of a job's
//! registered state on top of [`DistributedCheckpoint`](crate::DistributedCheckpoint),
//! with retention and point-in-time recovery.
//!
//! This module holds the manager's policies, which need no runtime: which
//! checkpoints to keep ([`RetentionPolicy`]), the user's checks of a restore
//! ([`IntegrityCheck`], [`IntegrityChecks`]), the checkpoints a job can go
//! back to ([`RecoveryPoint`], [`RecoveryFilter`]), and the serde
//! configuration ([`CheckpointManagerConfig`]). Checkpoints are ordered by
//! the commit sequence their manifests record, never by a wall clock or a
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

mod config;
mod error;
mod integrity;
mod location;
mod points;
mod retention;

pub use config::{CheckpointManagerConfig, CheckpointManagerConfigBuilder, OverlapPolicy};
pub use error::{IntegrityRejection, ManagerError};
pub use integrity::{
    FnCheck, IntegrityCheck, IntegrityChecks, IntegrityVerdict, NonEmpty, RequireMetadata,
};
pub use location::StorageLocation;
pub use points::{sort_newest_first, RecoveryFilter, RecoveryPoint, LABEL_KEY};
pub use retention::{KeepReason, RetentionPlan, RetentionPolicy};
