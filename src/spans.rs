//! The `tracing` spans steadfast opens: their names, fields, levels and
//! parentage, in one place, so that a subscriber (an OpenTelemetry layer, a
//! log formatter, a test) can rely on them. This module holds no code.
//!
//! Every span is named `steadfast.<area>[.<part>]`, has the target
//! `steadfast::<area>` (as the crate's events do), and is made with the
//! `tracing` macros: without a subscriber that wants it, a span costs a
//! load of the maximum level and allocates nothing. The spans of a whole
//! operation are `INFO`; the spans of its attempts and phases are `DEBUG`,
//! so that a filter at `INFO` keeps one span per operation. The `outcome`
//! field is recorded with [`Span::record`](tracing::Span::record) when the
//! operation ends: `ok`, or what went wrong in snake case (a variant of the
//! area's error enum, or the words listed below). A span left without an
//! `outcome` was dropped (cancelled) before it ended, except where noted.
//!
//! # Retry
//!
//! | span | level | fields | parent |
//! |---|---|---|---|
//! | `steadfast.retry` | INFO | `name` (see [`Retry::named`](crate::retry::Retry::named) and [`RetryStrategy::name`](crate::pipeline::RetryStrategy::name)), `attempts`, `outcome` | the current span |
//! | `steadfast.retry.attempt` | DEBUG | `attempt` (1 for the first), `outcome`, `delay_ms` (the wait before the next attempt) | `steadfast.retry` |
//!
//! A [`Retry`](crate::retry::Retry), and a pipeline's
//! [`RetryStrategy`](crate::pipeline::RetryStrategy) alike, opens its spans
//! at its **first failure**: a call whose first attempt succeeds is not a retry sequence
//! and opens no span, so the happy path costs exactly what it did without
//! tracing. When attempt 1 fails, the sequence span opens with the span of
//! attempt 1 (already ended, so its duration is not the attempt's); every
//! later attempt runs inside its own span, so the operation's own spans and
//! events nest under it. Outcomes of an attempt: `retry`, `ok`, or the
//! reason the sequence stops; of the sequence: `ok`, `not_retryable`,
//! `exhausted`, `elapsed_budget` (the policy's `max_elapsed`),
//! `retry_budget` (a shared [`RetryBudget`](crate::retry::RetryBudget)
//! refused), or `cancelled` (the future was dropped).
//!
//! # Checkpoints
//!
//! | span | level | fields | parent |
//! |---|---|---|---|
//! | `steadfast.checkpoint.save` | INFO | `name`, `step`, `rank`, `world_size`, `bytes` (the committed checkpoint's total size), `outcome` | the current span |
//! | `steadfast.checkpoint.save.write` | DEBUG | `rank`, `bytes` (this rank's shard as stored), `outcome` (`ok`, `already_exists`, `failed`) | the save |
//! | `steadfast.checkpoint.save.gather` | DEBUG | `rank`, `world_size` | the save |
//! | `steadfast.checkpoint.save.commit` | DEBUG | `rank`, `committer`, `fenced` | the save |
//! | `steadfast.checkpoint.rollback` | INFO | `name`, `rank`, `sweep`, `deleted`, `failed` | the save it undoes |
//! | `steadfast.checkpoint.load` | INFO | `name`, `rank`, `world_size`, `entries` (named entries rather than this rank's shard), `bytes`, `outcome` | the current span |
//!
//! [`FaultToleranceHandler::rollback`](crate::handler::FaultToleranceHandler::rollback)
//! opens the same rollback span (with `target`, `object` or `checkpoint`,
//! in place of `rank` and `sweep`, under the current span), and
//! [`CheckpointRollbackManager::save_with_rollback`](crate::handler::CheckpointRollbackManager::save_with_rollback)
//! the same save span (with `name` the object's key, and no phases).
//!
//! Every rank of a [`DistributedCheckpoint`](crate::DistributedCheckpoint)
//! save opens its own save span; their phases follow the save protocol:
//! `write` (the name check and the shard write, with the retry spans of its
//! storage calls), `gather` (the all-gather of what each rank wrote),
//! `commit` (on the committer: the shard checks, the manifest write and,
//! under a fence, its confirmation; on every rank: hearing the outcome).
//! Work the save hands to other tasks (hashing and compression on the
//! blocking pool, a [`ReplicatedStorage`](crate::storage::ReplicatedStorage)'s
//! replica writes) runs inside the phase's span, so the save stays one tree.
//! An OpenTelemetry layer puts the ranks of one save in one trace when the
//! ranks' save calls share a parent (a span whose context the job
//! propagates to its ranks); otherwise each rank's save is its own trace.
//! The outcome is `ok` or a [`CheckpointError`](crate::checkpoint::CheckpointError)
//! variant (`save_failed`, `already_exists`, `timeout`, `corrupted`,
//! `not_found`, …). [`load_entry`](crate::DistributedCheckpoint::load_entry)
//! and [`load_entries`](crate::DistributedCheckpoint::load_entries) open
//! a load span with `entries = true`.
//!
//! # Checkpoint manager
//!
//! | span | level | fields | parent |
//! |---|---|---|---|
//! | `steadfast.manager.save` | INFO | `name`, `step`, `rank`, `outcome` | the span current when the save was decided ([`step`](crate::manager::CheckpointManager::step), [`create_checkpoint`](crate::manager::CheckpointManager::create_checkpoint)) |
//! | `steadfast.manager.restore` | INFO | `name`, `step`, `rank`, `states`, `outcome` | the current span |
//!
//! A [`CheckpointManager`](crate::manager::CheckpointManager) save runs on
//! a spawned task, which carries the manager's save span: its
//! `steadfast.checkpoint.save` is a child. A restore opens one restore span
//! per checkpoint it tries (a corrupt one is passed over with its
//! outcome). The saves of a running schedule are roots: a schedule lives as
//! long as the job, and a trace per save is what one wants to read.
//!
//! # Recovery
//!
//! | span | level | fields | parent |
//! |---|---|---|---|
//! | `steadfast.recovery` | INFO | `epoch`, `previous_epoch`, `failed_ranks`, `strategy`, `attempt`, `member`, `rank` (this member's rank in the new epoch), `outcome` | root (the recovery task's) |
//! | `steadfast.recovery.plan` | DEBUG | `epoch` (the failed one), `attempt`, `failed_ranks`, `outcome` (`proposed`, `superseded`, or a [`RecoveryError`](crate::recovery::RecoveryError) variant) | root |
//! | `steadfast.recovery.act` | DEBUG | `outcome` (`ok`, `handler_failed`) | `steadfast.recovery` |
//! | `steadfast.recovery.confirm` | DEBUG | — | `steadfast.recovery` |
//! | `steadfast.recovery.error` | INFO | `operation`, `kind`, `severity`, `occurrence`, `strategy`, `action` | the current span |
//!
//! Each member of a [`RecoveryCoordinator`](crate::recovery::RecoveryCoordinator)
//! opens a recovery span for each plan it adopts: entering the epoch (the
//! agreement), `act` (its handlers) and `confirm` (the exchange of every
//! rank's outcome). Its outcome is `recovered`, `not_carried_out`,
//! `ranks_failed`, `fenced`, `superseded`, `not_a_member` or
//! `coordinator`. The leader's `plan` span covers its campaign, the
//! answers, the plan and its proposal; it stays open while the leader waits
//! for the epoch it proposed to arrive. An
//! [`ErrorRecoveryManager`](crate::recovery::ErrorRecoveryManager) opens a
//! `steadfast.recovery.error` span around each error it records and the
//! action it decides.
//!
//! # Examples
//!
//! A retry that fails once opens its sequence span and two attempt spans:
//!
//! ```
//! use std::io;
//! use tracing_subscriber::layer::SubscriberExt;
//! use steadfast::retry::RetryPolicy;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! // Any subscriber works: an OpenTelemetry layer, a formatter that
//! // prints span events. This one prints each span as it closes.
//! let subscriber = tracing_subscriber::registry().with(
//!     tracing_subscriber::fmt::layer()
//!         .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
//!         .with_test_writer(),
//! );
//! let _guard = tracing::subscriber::set_default(subscriber);
//!
//! let mut calls = 0;
//! let value = RetryPolicy::default()
//!     .retry(|| {
//!         calls += 1;
//!         let n = calls;
//!         async move {
//!             if n == 1 {
//!                 Err(io::Error::from(io::ErrorKind::TimedOut))
//!             } else {
//!                 Ok(n)
//!             }
//!         }
//!     })
//!     .named("fetch")
//!     .await
//!     .unwrap();
//! assert_eq!(value, 2);
//! # }
//! ```
