//! What to do about an error, and about a failed rank.
//!
//! - **Coordinated recovery** of a distributed job: the
//!   [`RecoveryCoordinator`] each member runs, with which the surviving
//!   ranks agree on one [`RecoveryPlan`] through the coordinator (a standby
//!   taking over, work redistributed, or everything to the fastest node)
//!   and all act on it. Its protocol is written down on the type.
//! - **Errors of one process**: the [`ErrorRecoveryManager`], its per-kind
//!   [`RecoveryStrategy`], a bounded error history and statistics,
//!   described below.
//!
//! Each error is recorded with the operation it happened in (an id the
//! caller chooses), a *kind* (a short name such as `"db.query"` or
//! `"coordinator.barrier"`) and a [`Severity`]. The manager looks up the
//! strategy registered for the kind (Abort when none is) and answers with a
//! [`RecoveryAction`]: retry after a delay, fall back, or abort. It counts
//! the errors of each operation, so that a Retry strategy stops after its
//! `max_retries`, until the operation is [`reset`](ErrorRecoveryManager::reset).
//!
//! Every error joins a history of the last `history_capacity` errors (a ring
//! buffer: the oldest is dropped), and all-time statistics by kind and by
//! severity. The manager is a handle (`Clone` shares it) that any task may
//! use: its state sits behind one mutex, held only for bookkeeping; a
//! [`RecoveryStrategy::Custom`] function runs after the lock is released.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use steadfast::recovery::{ErrorRecoveryManager, RecoveryAction, RecoveryStrategy, Severity};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let recovery = ErrorRecoveryManager::default();
//! recovery.set_strategy("db.query", RecoveryStrategy::retry(2, Duration::from_millis(100)));
//! recovery.set_strategy("cache.get", RecoveryStrategy::Fallback);
//!
//! let first = recovery.record("q-1", "db.query", Severity::Medium, "connection reset");
//! assert_eq!(first, RecoveryAction::Retry { attempt: 1, delay: Duration::from_millis(100) });
//! recovery.record("q-1", "db.query", Severity::Medium, "connection reset");
//! let third = recovery.record("q-1", "db.query", Severity::Medium, "connection reset");
//! assert_eq!(third, RecoveryAction::Abort); // two retries were allowed
//!
//! assert_eq!(recovery.record("c-1", "cache.get", Severity::Low, "miss"), RecoveryAction::Fallback);
//! assert_eq!(recovery.record("x-1", "disk.write", Severity::High, "full"), RecoveryAction::Abort);
//! assert_eq!(recovery.statistics().total, 5);
//! # }
//! ```

mod config;
mod coordinated;
mod error;
mod manager;
pub mod prediction;
mod strategy;

pub use config::{RecoveryConfig, RecoveryConfigBuilder};
pub use coordinated::{
    CheckpointSource, FailedRank, FailureCause, HandlerError, RankAssignment, RecoveryContext,
    RecoveryCoordinator, RecoveryCoordinatorBuilder, RecoveryCoordinatorConfig,
    RecoveryCoordinatorConfigBuilder, RecoveryError, RecoveryEvent, RecoveryHandle, RecoveryPlan,
    RecoveryStrategyKind, SourceError, PREDICTED_PREFIX,
};
pub use error::{Classify, ErrorRecord, Severity};
pub use manager::{ErrorRecoveryManager, ErrorStatistics};
pub use strategy::{CustomStrategy, RecoveryAction, RecoveryStrategy, RetryDelay};
