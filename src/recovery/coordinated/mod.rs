//! Coordinated recovery: after a rank fails, the surviving members agree on
//! one plan through the coordinator, and every member acts on it.
//!
//! Built on the [`Membership`](crate::coordinator::Membership) companion of
//! the coordinator, so that it runs in one process on
//! [`InMemoryCoordinator`](crate::coordinator::InMemoryCoordinator) and
//! across machines on `EtcdCoordinator`. The coordinator's store (etcd's
//! Raft) is the only source of truth; nothing here votes or keeps a log of
//! its own.
//!
//! # The protocol
//!
//! Every member of the job (each rank, each standby) runs a
//! [`RecoveryCoordinator`]:
//!
//! 1. **Detect.** A rank of the member's epoch fails: its member leaves
//!    without shutting down (for etcd, its lease expired) or someone
//!    declares it failed (the health monitor, an operator, a failure
//!    predictor through [`RecoveryCoordinator::migrate`]). The same event
//!    makes every collective waiting for that rank fail at once, so a save
//!    in progress fails cleanly on every rank.
//! 2. **Answer.** Each surviving rank writes an answer record for the
//!    epoch; the coordinator orders the answers (their versions), so the
//!    first one names the fastest node.
//! 3. **Elect.** Every surviving rank campaigns; the current leader keeps
//!    its leadership if it survived, otherwise exactly one survivor wins a
//!    new term.
//! 4. **Plan.** The leader waits up to `answer_window` for the survivors'
//!    answers and plans only with a quorum (`quorum_size`, itself
//!    included): so the side of a partition without a quorum stops, says
//!    so ([`RecoveryEvent::NoQuorum`]) and commits nothing. The plan names
//!    the checkpoint to restore (the newest one that verifies), the new
//!    membership and world size, and each rank's part (a standby taking a
//!    dead rank's number; shards redistributed; everything to the fastest
//!    node), following the configured [`RecoveryStrategyKind`].
//! 5. **Agree.** The leader proposes the plan as the job's next epoch, with
//!    a compare-and-set on the current epoch: of two leaders of the same
//!    epoch (a leadership that changed hands meanwhile) at most one plan
//!    wins. Each plan's epoch is one more than the last.
//! 6. **Act.** Every member reads the same epoch record. A member the plan
//!    includes enters the epoch (its rank and the world size become the
//!    plan's), points its commit fence at the plan's leader, and runs the
//!    registered handlers; a member the plan leaves out is fenced
//!    ([`RecoveryEvent::Fenced`]). Plans that cannot be read, of an epoch
//!    not newer than the member's, or proposed by a member that held no
//!    rank are ignored and logged ([`RecoveryEvent::PlanIgnored`]).
//! 7. **Confirm.** The ranks of the new epoch exchange their outcomes in
//!    that epoch's first collective. If every handler succeeded the
//!    recovery is done ([`RecoveryEvent::Recovered`]). Otherwise (a handler
//!    failed, or another rank failed during recovery) the next attempt
//!    follows from step 2, up to `max_recovery_attempts`, within
//!    `recovery_timeout`.
//!
//! "Every survivor acts on the same plan or none does" holds in this
//! sense: the plan is committed (step 5) before anyone acts on it, every
//! member reads that one record, and a plan is only *done* once every rank
//! of its epoch confirmed it; one that is not done is superseded by the
//! next epoch, and a member still acting on it is fenced from every
//! collective and every commit of the newer epoch.
//!
//! A member that was cut off (a partition, a pause) and comes back reads
//! the current epoch when it starts its task and enters it if it holds a
//! rank there; otherwise it is fenced.

mod builder;
mod config;
mod error;
mod events;
mod plan;
mod runner;
mod source;

pub use builder::{RecoveryCoordinatorBuilder, RecoveryHandle};
pub use config::{RecoveryCoordinatorConfig, RecoveryCoordinatorConfigBuilder};
pub use error::RecoveryError;
pub use events::{RecoveryContext, RecoveryEvent};
pub use plan::{
    FailedRank, FailureKind, RankAssignment, RecoveryPlan, RecoveryStrategyKind, PREDICTED_PREFIX,
};
pub use runner::{HandlerError, RecoveryCoordinator};
pub use source::{CheckpointSource, SourceError};

const TARGET: &str = "steadfast::recovery";
