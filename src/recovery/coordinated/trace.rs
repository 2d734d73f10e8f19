//! The tracing spans of coordinated recovery (the scheme is documented in
//! [`crate::spans`]): `steadfast.recovery` on each member for one plan it
//! adopts (enter the epoch, act, confirm), with the phases `act` (the
//! handlers) and `confirm` (the exchange of outcomes) as children; and
//! `steadfast.recovery.plan` on the leader, from its campaign to the
//! proposal of the plan (the agreement: a compare-and-set of the epoch).

use tracing::field::Empty;
use tracing::Span;

use super::error::RecoveryError;
use super::plan::{FailedRank, RecoveryPlan};

/// The span of this member's part in carrying out `plan`.
pub(super) fn recovery_span(plan: &RecoveryPlan, member: &str) -> Span {
    let failed: Vec<usize> = plan.failed.iter().map(|f| f.rank).collect();
    tracing::info_span!(
        target: "steadfast::recovery",
        "steadfast.recovery",
        epoch = plan.epoch,
        previous_epoch = plan.previous_epoch,
        failed_ranks = ?failed,
        strategy = plan.strategy.as_str(),
        attempt = plan.attempt,
        member,
        rank = plan.assignment_of(member).map(|a| a.rank),
        outcome = Empty,
    )
}

/// The leader's planning of a recovery, from the epoch `epoch`.
pub(super) fn plan_span<'a>(
    epoch: u64,
    attempt: u32,
    failed: impl Iterator<Item = &'a FailedRank>,
) -> Span {
    let failed: Vec<usize> = failed.map(|f| f.rank).collect();
    tracing::debug_span!(
        target: "steadfast::recovery",
        "steadfast.recovery.plan",
        epoch,
        attempt,
        failed_ranks = ?failed,
        outcome = Empty,
    )
}

/// The handlers of this member, under `recovery`.
pub(super) fn act_span(recovery: &Span) -> Span {
    tracing::debug_span!(
        target: "steadfast::recovery",
        parent: recovery,
        "steadfast.recovery.act",
        outcome = Empty,
    )
}

/// The exchange of every rank's outcome, under `recovery`.
pub(super) fn confirm_span(recovery: &Span) -> Span {
    tracing::debug_span!(
        target: "steadfast::recovery",
        parent: recovery,
        "steadfast.recovery.confirm",
    )
}

/// The `outcome` of a span that ended with `error`.
pub(super) fn error_kind(error: &RecoveryError) -> &'static str {
    match error {
        RecoveryError::NoQuorum { .. } => "no_quorum",
        RecoveryError::InvalidPlan { .. } => "invalid_plan",
        RecoveryError::HandlerFailed { .. } => "handler_failed",
        RecoveryError::NotCarriedOut { .. } => "not_carried_out",
        RecoveryError::AttemptsExhausted { .. } => "attempts_exhausted",
        RecoveryError::TimedOut { .. } => "timed_out",
        RecoveryError::Fenced(_) => "fenced",
        RecoveryError::Coordinator(_) => "coordinator",
    }
}
