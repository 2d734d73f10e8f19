//! The tracing spans of checkpoint saves, loads and rollbacks, and the
//! `outcome` each records (the scheme is documented in [`crate::spans`]).
//!
//! A save is one `steadfast.checkpoint.save` span per rank with a child per
//! phase (`write`, `gather`, `commit`) and a `steadfast.checkpoint.rollback`
//! child when the save is rolled back; a load is one
//! `steadfast.checkpoint.load` span. Spans are made with the macros, so
//! without a subscriber that wants them they cost a load of the maximum
//! level and allocate nothing.

use tracing::field::Empty;
use tracing::Span;

use super::error::{CheckpointError, LocalFailure};
use super::rollback::RollbackReport;
use super::tally::{FailureKind, Written};

/// The span of one rank's part of a save.
pub(super) fn save_span(name: &str, rank: usize, world_size: usize, step: Option<u64>) -> Span {
    tracing::info_span!(
        target: "steadfast::checkpoint",
        "steadfast.checkpoint.save",
        name,
        step,
        rank,
        world_size,
        bytes = Empty,
        outcome = Empty,
    )
}

/// Phase 1 of a save: checking the name and writing this rank's shard.
pub(super) fn write_span(rank: usize) -> Span {
    tracing::debug_span!(
        target: "steadfast::checkpoint",
        "steadfast.checkpoint.save.write",
        rank,
        bytes = Empty,
        outcome = Empty,
    )
}

/// Phase 2 of a save: the all-gather of what each rank wrote.
pub(super) fn gather_span(rank: usize, world_size: usize) -> Span {
    tracing::debug_span!(
        target: "steadfast::checkpoint",
        "steadfast.checkpoint.save.gather",
        rank,
        world_size,
    )
}

/// Phase 3 of a save: the committer's commit (shard checks, manifest write,
/// fenced confirmation) and the exchange of its outcome.
pub(super) fn commit_span(rank: usize, committer: usize) -> Span {
    tracing::debug_span!(
        target: "steadfast::checkpoint",
        "steadfast.checkpoint.save.commit",
        rank,
        committer,
        fenced = Empty,
    )
}

/// The rollback of this rank's part of a failed save.
pub(super) fn rollback_span(name: &str, rank: usize, sweep: bool) -> Span {
    tracing::info_span!(
        target: "steadfast::checkpoint",
        "steadfast.checkpoint.rollback",
        name,
        rank,
        sweep,
        deleted = Empty,
        failed = Empty,
    )
}

/// The span of a load (`entries`: whether named entries are loaded rather
/// than this rank's shard).
pub(super) fn load_span(name: &str, rank: usize, world_size: usize, entries: bool) -> Span {
    tracing::info_span!(
        target: "steadfast::checkpoint",
        "steadfast.checkpoint.load",
        name,
        rank,
        world_size,
        entries,
        bytes = Empty,
        outcome = Empty,
    )
}

/// Records `outcome` (`ok` or the error's kind) and, on success, `bytes`.
pub(crate) fn record_outcome<T>(
    span: &Span,
    result: &Result<T, CheckpointError>,
    bytes: impl FnOnce(&T) -> u64,
) {
    match result {
        Ok(value) => {
            span.record("bytes", bytes(value));
            span.record("outcome", "ok");
        }
        Err(error) => {
            span.record("outcome", error_kind(error));
        }
    }
}

/// Records what this rank's write came to: its bytes, or why it failed.
pub(super) fn record_written(span: &Span, local: &Result<Written, LocalFailure>) {
    match local {
        Ok(written) => {
            span.record("bytes", written.size);
            span.record("outcome", "ok");
        }
        Err(failure) => {
            span.record(
                "outcome",
                match failure.kind {
                    FailureKind::AlreadyExists => "already_exists",
                    FailureKind::Failed => "failed",
                },
            );
        }
    }
}

/// Records what a rollback deleted and how many deletes failed.
pub(crate) fn record_rollback(span: &Span, report: &RollbackReport) {
    span.record("deleted", report.deleted.len());
    span.record("failed", report.failed.len());
}

/// The `outcome` of a span that ended with `error`: its variant, in
/// snake case.
pub(crate) fn error_kind(error: &CheckpointError) -> &'static str {
    match error {
        CheckpointError::SaveFailed { .. } => "save_failed",
        CheckpointError::LoadFailed { .. } => "load_failed",
        CheckpointError::ValidationFailed { .. } => "validation_failed",
        CheckpointError::Corrupted { .. } => "corrupted",
        CheckpointError::IncompatibleVersion { .. } => "incompatible_version",
        CheckpointError::Timeout { .. } => "timeout",
        CheckpointError::Storage(_) => "storage",
        CheckpointError::Coordinator(_) => "coordinator",
        CheckpointError::NotFound { .. } => "not_found",
        CheckpointError::AlreadyExists { .. } => "already_exists",
        CheckpointError::EntryNotFound { .. } => "entry_not_found",
        CheckpointError::CollectionRefused { .. } => "collection_refused",
        CheckpointError::Fenced { .. } => "fenced",
        CheckpointError::Unconfirmed { .. } => "unconfirmed",
        CheckpointError::InvalidName { .. } => "invalid_name",
    }
}
