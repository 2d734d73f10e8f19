//! # steadfast
//!
//! Async fault tolerance for tokio: the pieces a service or a distributed job
//! needs to survive faults.
//!
//! # The map
//!
//! Resilience of a single call:
//!
//! - [`retry`] — [`RetryPolicy`] retries transient errors with exponential
//!   backoff, a cap, jitter and a time budget; `(|| op()).retry(&policy)`
//!   through the [`Retryable`](retry::Retryable) extension trait. Which
//!   errors are transient is said by the [`Transient`](retry::Transient)
//!   trait.
//! - [`breaker`] — [`CircuitBreaker`] stops calling a dependency that keeps
//!   failing, probes it with a few trial calls, and closes again once it
//!   recovers. Its closed-state path is lock-free.
//! - [`timeout`] — [`TimeoutHandler`] bounds any future, barrier or wait for a
//!   peer; [`TimeoutManager`] keeps per-operation deadlines that can be
//!   extended or cancelled.
//! - [`pipeline`] — a [`Pipeline`] composes strategies once, outermost
//!   first, and runs each call under them, with one error that says which
//!   strategy stopped the call; its strategies besides the three above: a
//!   [`Bulkhead`] (at most N calls at once, a bounded queue), hedging (a
//!   second attempt when the first is slow), a fallback, a rate limiter
//!   (feature `rate-limit`), and your own.
//!
//! Checkpoints of a distributed job:
//!
//! - [`storage`] — the [`CheckpointStorage`] trait, where bytes live;
//!   [`MemoryStorage`] (the mock, with fault injection) and
//!   [`LocalFsStorage`] (atomic and durable writes).
//! - [`coordinator`] — the [`Coordinator`] trait, how ranks meet (barrier,
//!   all-gather, signals); [`InMemoryCoordinator`] runs `n` ranks in one
//!   process; [`FaultTolerant`](coordinator::FaultTolerant) adds timeouts
//!   and retries to any coordinator. Its companion
//!   [`Membership`](coordinator::Membership) adds what recovery needs:
//!   standbys, epochs, leader election, fenced writes, and rounds that fail
//!   at once when a rank dies.
//! - [`checkpoint`] — [`DistributedCheckpoint`] saves one shard per rank and
//!   commits them with a manifest written last; a failed save is rolled back
//!   on every rank; a load verifies sizes and SHA-256 digests before
//!   returning bytes, also at another world size; under a fence, only
//!   commits the coordinator confirms are read.
//! - [`manager`] — a [`CheckpointManager`](manager::CheckpointManager) makes
//!   checkpoints automatic: registered [`Stateful`](manager::Stateful)
//!   states saved every interval or every `n` steps, in the background
//!   (the caller waits only for a snapshot in memory), named by the commit
//!   sequence, decided by rank 0 for every rank, pruned by a retention
//!   policy, and restored from the newest checkpoint that verifies (or any
//!   point in time).
//! - [`handler`] — [`FaultToleranceHandler`](handler::FaultToleranceHandler)
//!   runs operations with retry or timeout and rolls back a failed file or
//!   checkpoint; [`CheckpointRollbackManager`](handler::CheckpointRollbackManager)
//!   saves one object under retry and keeps the previous version on failure.
//!
//! Noticing faults and deciding what to do:
//!
//! - [`health`] — [`HealthMonitor`] turns heartbeats of ranks, components,
//!   nodes, agents and services into Healthy / Unresponsive / Failed (fixed
//!   timeout, phi accrual, or missed heartbeats within a detection window), a
//!   stream of changes, and a stream of typed failures (node crash, agent or
//!   service failure, suspected partition) with their evidence.
//! - [`recovery`] — [`RecoveryCoordinator`](recovery::RecoveryCoordinator):
//!   after a rank fails, the survivors agree on one plan through the
//!   coordinator (a standby takes over, or the work is redistributed) and
//!   every member acts on it; [`prediction`](recovery::prediction) turns
//!   health signals into a probability of failure, to migrate a member
//!   before it fails; [`ErrorRecoveryManager`](recovery::ErrorRecoveryManager)
//!   picks a strategy per kind of error and keeps a bounded history and
//!   statistics.
//! - [`degradation`] — [`DegradationManager`](degradation::DegradationManager)
//!   lowers a component or the whole service from Normal to ReadOnly,
//!   EssentialOnly or Offline as health and breakers say.
//!
//! Operating it:
//!
//! - [`spans`] — the `tracing` spans every retry sequence, checkpoint save
//!   (with its write, gather and commit phases), load, rollback and
//!   recovery opens, with their fields.
//! - `metrics` (feature `metrics`) — counters, gauges and histograms of
//!   named instances, checkpoints and recoveries, for any exporter.
//! - `config` (feature `config`) — one `FaultToleranceConfig` from a TOML
//!   or JSON file and the environment, with named instances and presets.
//! - `chaos` (feature `chaos`) — seeded fault injection in operations,
//!   storage and coordinators, for your own tests.
//! - the `steadfast` command-line tool (feature `cli`) — list, show,
//!   verify, delete, retain, clean up and collect the chunks of the
//!   checkpoints in a directory or bucket.
//!
//! # Design
//!
//! - Time comes only from [`tokio::time`], so tests run on paused time.
//! - Config structs are plain data with validating builders (a
//!   [`ConfigError`] names the field) and readable `serde` durations.
//! - Each area has its own `#[non_exhaustive]` error enum with `source()`
//!   chains; nothing panics on bad input; there is no `unsafe` code.
//! - Every state change, attempt and rollback is a `tracing` event with a
//!   `steadfast::<area>` target; with the `metrics` feature, a count too.
//!
//! # Tracing
//!
//! Besides its events, steadfast opens a `tracing` span per retry sequence
//! and attempt, per checkpoint save (with its write, gather and commit
//! phases), load and rollback, per manager save and restore, and per
//! recovery, with the name, rank, attempt and outcome as fields: an
//! OpenTelemetry subscriber shows a save as one trace across its phases.
//! The names, fields, levels and parentage are listed in [`spans`].
//!
//! # Cargo features
//!
//! The default build holds everything above and depends on tokio and a few
//! small crates. Integrations with outside systems are opt-in:
//!
//! | feature | adds |
//! |---|---|
//! | `etcd` | `coordinator::EtcdCoordinator`: ranks as separate processes on separate machines, meeting through an etcd cluster, with leases as liveness |
//! | `object-store` | `storage::ObjectStoreStorage`: checkpoints in S3, GCS, Azure or any `object_store::ObjectStore`, manifests committed with a conditional create |
//! | `tower` | `steadfast::tower`: each strategy as a tower `Layer`, for `tower::ServiceBuilder`, hyper, axum and tonic |
//! | `metrics` | `steadfast::metrics`: counters, gauges and histograms of named breakers, retries, pipelines, bulkheads and rate limiters, of health, checkpoints and recovery, through the `metrics` facade (any exporter) |
//! | `rate-limit` | `pipeline::RateLimiter` and `pipeline::KeyedRateLimiter`: rate limits, global or per key, through `governor` (GCRA) on tokio's clock; a refused call says when to come back, or waits in wait mode |
//! | `chaos` | `steadfast::chaos`: fault injection for your own tests — latency, errors, wrong results and dropped futures in any async operation or pipeline, failures, corrupt and torn reads in any `CheckpointStorage`, latency, errors and partitions in any `Coordinator` — seeded, so that a failing run replays |
//! | `config` | `steadfast::config`: one `config::FaultToleranceConfig` read from a TOML or JSON file and `STEADFAST_...` environment variables, with named breakers, retries and timeouts, presets, and errors that name the key and its line |
//! | `cli` | the `steadfast` binary: `list`, `show`, `verify`, `delete`, `retain`, `cleanup` and `gc` on a checkpoint directory or (with `object-store`) a storage URL, human or `--json` output |
//! | `testing` | `storage::conformance` and `coordinator::conformance`: the contract suites, to run on your own `CheckpointStorage` or `Coordinator` |
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use steadfast::{CircuitBreaker, RetryPolicy, TimeoutHandler};
//! use steadfast::retry::Retryable;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let policy = RetryPolicy::builder().initial_delay(Duration::from_millis(50)).build()?;
//! let breaker = CircuitBreaker::default();
//! let timeouts = TimeoutHandler::default();
//!
//! let answer = (|| breaker.call(|| async {
//!     timeouts
//!         .run(Duration::from_secs(1), async { Ok::<_, std::io::Error>("pong") })
//!         .await
//!         .unwrap_or_else(|elapsed| Err(std::io::Error::new(std::io::ErrorKind::TimedOut, elapsed)))
//! }))
//! .retry(&policy)
//! .await?;
//! assert_eq!(answer, "pong");
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// On docs.rs (`--cfg docsrs`), every item gated by a feature is shown with the
// feature it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod breaker;
#[cfg(feature = "chaos")]
#[cfg_attr(docsrs, doc(cfg(feature = "chaos")))]
pub mod chaos;
pub mod checkpoint;
#[cfg(feature = "config")]
#[cfg_attr(docsrs, doc(cfg(feature = "config")))]
pub mod config;
pub mod coordinator;
pub mod degradation;
mod error;
pub mod handler;
pub mod health;
pub mod manager;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
pub mod pipeline;
pub mod recovery;
pub mod retry;
mod serde_duration;
mod serde_text;
pub mod spans;
pub mod storage;
pub mod timeout;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;

pub use breaker::CircuitBreaker;
pub use checkpoint::DistributedCheckpoint;
pub use coordinator::{Coordinator, InMemoryCoordinator};
pub use error::ConfigError;
pub use health::HealthMonitor;
pub use pipeline::{Bulkhead, Pipeline};
pub use retry::RetryPolicy;
pub use storage::{CheckpointStorage, LocalFsStorage, MemoryStorage};
pub use timeout::{TimeoutHandler, TimeoutManager};

/// The README's examples, compiled as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
