//! Coordinated recovery: after a rank fails, the surviving members agree on
//! one plan through the coordinator, and every member acts on it.
//! The protocol is written down on [`RecoveryCoordinator`].

mod bridges;
mod builder;
mod config;
mod error;
mod events;
mod plan;
mod runner;
mod source;
mod trace;

pub use builder::{RecoveryCoordinatorBuilder, RecoveryHandle};
pub use config::{RecoveryCoordinatorConfig, RecoveryCoordinatorConfigBuilder};
pub use error::RecoveryError;
pub use events::{RecoveryContext, RecoveryEvent};
pub use plan::{
    FailedRank, FailureCause, RankAssignment, RecoveryPlan, RecoveryStrategyKind, PREDICTED_PREFIX,
};
pub use runner::{HandlerError, RecoveryCoordinator};
pub use source::{CheckpointSource, SourceError};

const TARGET: &str = "steadfast::recovery";
