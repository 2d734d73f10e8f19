//! The tracing spans of the manager's saves and restores (the scheme is
//! documented in [`crate::spans`]): `steadfast.manager.save` around one
//! save, opened when the save is decided and carried into the task that
//! runs it, so that the checkpoint's own `steadfast.checkpoint.save` is its
//! child; `steadfast.manager.restore` around each checkpoint a restore
//! tries.

use std::borrow::Borrow;

use tracing::field::Empty;
use tracing::Span;

use crate::checkpoint::error_kind;

use super::error::ManagerError;

/// The span of one save by this rank.
pub(super) fn save_span(name: &str, step: Option<u64>, rank: usize) -> Span {
    tracing::info_span!(
        target: "steadfast::manager",
        "steadfast.manager.save",
        name,
        step,
        rank,
        outcome = Empty,
    )
}

/// The span of restoring one checkpoint on this rank.
pub(super) fn restore_span(name: &str, step: Option<u64>, rank: usize) -> Span {
    tracing::info_span!(
        target: "steadfast::manager",
        "steadfast.manager.restore",
        name,
        step,
        rank,
        states = Empty,
        outcome = Empty,
    )
}

/// Records `outcome`: `ok`, or the error's kind.
pub(super) fn record_outcome<T, E: Borrow<ManagerError>>(span: &Span, result: &Result<T, E>) {
    match result {
        Ok(_) => span.record("outcome", "ok"),
        Err(error) => span.record("outcome", manager_error_kind(error.borrow())),
    };
}

/// The `outcome` of a span that ended with `error`: its variant in snake
/// case, or the checkpoint error's kind.
fn manager_error_kind(error: &ManagerError) -> &'static str {
    match error {
        ManagerError::Checkpoint(e) => error_kind(e),
        ManagerError::Config(_) => "config",
        ManagerError::InvalidStateName { .. } => "invalid_state_name",
        ManagerError::State(_) => "state",
        ManagerError::DuplicateState { .. } => "duplicate_state",
        ManagerError::InvalidLabel { .. } => "invalid_label",
        ManagerError::StateMissing { .. } => "state_missing",
        ManagerError::LoadTimeout { .. } => "load_timeout",
        ManagerError::Coordination { .. } => "coordination",
        ManagerError::OutOfStep { .. } => "out_of_step",
        ManagerError::SaveFailed { .. } => "save_failed",
        ManagerError::Abandoned { .. } => "abandoned",
        ManagerError::NotRestorableEverywhere { .. } => "not_restorable_everywhere",
        ManagerError::NothingRestorable { .. } => "nothing_restorable",
        ManagerError::IntegrityRejected(_) => "integrity_rejected",
        ManagerError::StorageOpen { .. } => "storage_open",
    }
}
