//! What a recovery handler is told ([`RecoveryContext`]) and what a
//! [`RecoveryCoordinator`](super::RecoveryCoordinator) reports
//! ([`RecoveryEvent`]).

use std::sync::Arc;
use std::time::Duration;

use super::plan::{FailureCause, RankAssignment, RecoveryPlan};
#[cfg(doc)]
use super::RecoveryCoordinator;

/// What a recovery handler is told: the agreed plan and this member's part
/// in it.
///
/// # Examples
///
/// ```
/// # use std::sync::Arc;
/// use steadfast::recovery::{RankAssignment, RecoveryContext, RecoveryPlan};
/// # let plan: RecoveryPlan = serde_json::from_str(r#"{"epoch":1,"previous_epoch":0,"previous_world_size":2,"attempt":1,
/// #   "strategy":"redistribute_work","leader":{"member":"rank-0","term":1},
/// #   "failed":[{"rank":1,"member":"rank-1","kind":"crashed","reason":"lease expired"}],"checkpoint":"step-3",
/// #   "assignments":[{"rank":0,"member":"rank-0","previous_rank":0,"shards":[0,1]}]}"#).unwrap();
/// fn describe(ctx: &RecoveryContext) -> String {
///     format!(
///         "epoch {}: restore {:?}, load shards {:?} as rank {}",
///         ctx.plan.epoch, ctx.plan.checkpoint, ctx.assignment.shards, ctx.assignment.rank
///     )
/// }
/// # let ctx = RecoveryContext { assignment: plan.assignments[0].clone(), plan: Arc::new(plan), member: "rank-0".into() };
/// assert_eq!(describe(&ctx), "epoch 1: restore Some(\"step-3\"), load shards [0, 1] as rank 0");
/// ```
#[derive(Debug, Clone)]
pub struct RecoveryContext {
    /// The plan every member adopted.
    pub plan: Arc<RecoveryPlan>,
    /// This member's part: its rank in the new epoch and the shards it loads.
    pub assignment: RankAssignment,
    /// This member's id.
    pub member: String,
}

/// What a [`RecoveryCoordinator`] reports, to its
/// [`subscribe`](RecoveryCoordinator::subscribe)rs.
///
/// # Examples
///
/// ```
/// use steadfast::recovery::{FailureCause, RecoveryEvent};
/// let event = RecoveryEvent::FailureDetected { epoch: 0, rank: 2, member: "rank-2".into(), kind: FailureCause::Crashed, reason: "left".into() };
/// assert!(matches!(event, RecoveryEvent::FailureDetected { rank: 2, .. }));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum RecoveryEvent {
    /// A rank of this member's epoch failed.
    FailureDetected {
        /// The epoch.
        epoch: u64,
        /// The rank.
        rank: usize,
        /// The member that held it.
        member: String,
        /// The kind of failure.
        kind: FailureCause,
        /// What is known.
        reason: String,
    },
    /// This member, as leader, could not gather a quorum of answers: it
    /// does not plan (the minority side of a partition stops here).
    NoQuorum {
        /// The epoch the failure happened in.
        epoch: u64,
        /// How many answered.
        answered: usize,
        /// The quorum.
        quorum: usize,
    },
    /// This member, as leader, proposed a plan and it was accepted.
    PlanProposed(Arc<RecoveryPlan>),
    /// This member adopted a plan: it entered its epoch and runs the
    /// handlers.
    PlanAdopted(Arc<RecoveryPlan>),
    /// A plan was ignored: unreadable, from an older epoch, or proposed by a
    /// member that held no rank.
    PlanIgnored {
        /// The epoch of the record.
        epoch: u64,
        /// Why.
        reason: String,
    },
    /// Every rank of the new epoch carried the plan out.
    Recovered {
        /// The plan.
        plan: Arc<RecoveryPlan>,
        /// From the first failure noticed by this member to the
        /// confirmation.
        took: Duration,
    },
    /// The plan was not carried out everywhere; the next attempt follows.
    NotCarriedOut {
        /// The epoch of the plan.
        epoch: u64,
        /// Why.
        reason: String,
    },
    /// The job moved to an epoch that gives this member no rank.
    Fenced {
        /// That epoch.
        epoch: u64,
    },
    /// The recovery gave up; the coordinator stops.
    GaveUp {
        /// Why.
        reason: String,
    },
}
