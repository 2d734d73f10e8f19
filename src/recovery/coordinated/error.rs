//! [`RecoveryError`]: why a coordinated recovery could not be planned,
//! agreed on or carried out.

use crate::coordinator::CoordinatorError;

/// Why a coordinated recovery failed.
///
/// # Examples
///
/// ```
/// use steadfast::recovery::RecoveryError;
/// let err = RecoveryError::NoQuorum { epoch: 4, answered: 1, quorum: 2 };
/// assert!(err.to_string().contains("quorum of 2"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecoveryError {
    /// Too few members answered the recovery call: this side of a partition
    /// (or what is left of the job) may not decide, and stops.
    #[error("epoch {epoch}: {answered} members answered, short of the quorum of {quorum}; not recovering")]
    NoQuorum {
        /// The epoch the failure happened in.
        epoch: u64,
        /// How many live members answered.
        answered: usize,
        /// The quorum configured.
        quorum: usize,
    },
    /// A plan that cannot be made or read.
    #[error("invalid recovery plan: {reason}")]
    InvalidPlan {
        /// What is wrong.
        reason: String,
    },
    /// A recovery handler failed on this member.
    #[error("the recovery handler failed on member {member:?} in epoch {epoch}: {reason}")]
    HandlerFailed {
        /// This member.
        member: String,
        /// The new epoch.
        epoch: u64,
        /// What the handler said.
        reason: String,
    },
    /// A member reported that it could not carry out the plan, or the
    /// confirmation round failed: the plan is superseded by the next.
    #[error("epoch {epoch}: the plan was not carried out everywhere: {reason}")]
    NotCarriedOut {
        /// The epoch of the plan.
        epoch: u64,
        /// Which members failed and why.
        reason: String,
    },
    /// The recovery gave up after its attempts.
    #[error("recovery gave up after {attempts} attempts: {last}")]
    AttemptsExhausted {
        /// How many attempts were made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// Recovery did not finish within its timeout.
    #[error("recovery did not finish within {after:?}")]
    TimedOut {
        /// The timeout.
        after: std::time::Duration,
    },
    /// This member may no longer act for the job (a newer epoch left it
    /// out, or it lost its liveness).
    #[error("this member is fenced: {0}")]
    Fenced(#[source] CoordinatorError),
    /// A coordinator operation failed.
    #[error("coordination failed during recovery: {0}")]
    Coordinator(#[source] CoordinatorError),
}

impl From<CoordinatorError> for RecoveryError {
    fn from(e: CoordinatorError) -> Self {
        match e {
            CoordinatorError::Fenced { .. } | CoordinatorError::NotAMember { .. } => {
                RecoveryError::Fenced(e)
            }
            other => RecoveryError::Coordinator(other),
        }
    }
}
