//! Metrics of every mechanism through the [`metrics`](https://docs.rs/metrics)
//! facade (feature `metrics`): counters, gauges and histograms of named
//! breakers, retries, pipelines, bulkheads and rate limiters, of health,
//! checkpoints and recovery, for whatever exporter the application installs
//! (Prometheus, StatsD, OpenTelemetry...).
//!
//! # How it works
//!
//! Install a recorder (an exporter) first, then build the instances: each
//! one registers its handles ([`metrics::Counter`], [`metrics::Gauge`],
//! [`metrics::Histogram`]) once, when it is built, and keeps them. A call
//! then costs an increment of a handle it already holds: no lookup of a
//! name or labels, no allocation, no formatting. An instance built before
//! the recorder was installed keeps the no-op handles it got.
//!
//! - Strategies are measured per **name**: a breaker, bulkhead, rate
//!   limiter, pipeline or [`RetryStrategy`](crate::pipeline::RetryStrategy)
//!   given a name when it is built (`.name("payments")`) records under the
//!   label `name`; one without a name records nothing, and its call path
//!   costs one check of an `Option` more than without the feature. A
//!   standalone [`Retry`](crate::retry::Retry) is measured by a
//!   [`RetryMetrics`] wrapped around it.
//! - Health, checkpoints and recovery are not per call: every
//!   [`HealthMonitor`](crate::health::HealthMonitor),
//!   [`DistributedCheckpoint`](crate::checkpoint::DistributedCheckpoint)
//!   (and so every
//!   [`CheckpointManager`](crate::manager::CheckpointManager)),
//!   [`RecoveryCoordinator`](crate::recovery::RecoveryCoordinator) and
//!   [`ErrorRecoveryManager`](crate::recovery::ErrorRecoveryManager)
//!   records, without a name. In a job of several ranks every rank records
//!   its own part (its save, its recovery).
//! - [`describe`] sends every metric's description and unit to the
//!   installed recorder (the `# HELP` lines of Prometheus).
//!
//! # The metrics
//!
//! Every name starts with `fault_tolerance_`; counters end in `_total`,
//! durations are seconds.
//!
//! | name | type | labels | unit: what it counts |
//! |---|---|---|---|
//! | `fault_tolerance_breaker_state` | gauge | `name` | state of the breaker: 0 Closed, 1 Open, 2 HalfOpen |
//! | `fault_tolerance_breaker_calls_total` | counter | `name`, `outcome` = `success` \| `failure` | calls admitted whose outcome was recorded (a predicate's non-failure is a success; a dropped call counts nothing) |
//! | `fault_tolerance_breaker_rejections_total` | counter | `name` | calls refused (Open, HalfOpen full, forced open) |
//! | `fault_tolerance_breaker_slow_calls_total` | counter | `name` | calls in Closed slower than `slow_call_duration` (only with the slow-call rule) |
//! | `fault_tolerance_retry_attempts_total` | counter | `name` | attempts run, the first included |
//! | `fault_tolerance_retry_give_ups_total` | counter | `name` | retry sequences that ended because the policy stopped retrying (retries exhausted, time or retry budget spent); an error not retried at all is not a give-up |
//! | `fault_tolerance_pipeline_calls_total` | counter | `name`, `outcome` = `success` \| `operation` \| `timeout` \| `circuit_breaker` \| `bulkhead` \| `rate_limiter` \| `retry` \| `fallback` | calls of a named pipeline, by what ended them |
//! | `fault_tolerance_timeouts_total` | counter | `name` | calls of a named pipeline that ended timed out (a timeout a retry recovered from is not one) |
//! | `fault_tolerance_bulkhead_in_use` | gauge | `name` | slots held now |
//! | `fault_tolerance_bulkhead_rejections_total` | counter | `name`, `reason` = `full` \| `queue_timeout` | calls refused |
//! | `fault_tolerance_rate_limiter_calls_total` | counter | `name`, `outcome` = `permitted` \| `rejected` | calls asking for a permit (feature `rate-limit`) |
//! | `fault_tolerance_health_members` | gauge | `status` = `healthy` \| `unresponsive` \| `failed` | members of the health monitors of the process, by status |
//! | `fault_tolerance_failures_detected_total` | counter | `source` = `health` \| `recovery`, `kind` = `member_failed` \| `suspected_partition` \| `rank_failed` | failures detected: a monitored member moving to Failed, a suspected partition, a rank the recovery coordinator found failed |
//! | `fault_tolerance_checkpoints_total` | counter | `outcome` = `success` \| `failure` | checkpoint saves of this rank (a committed save is a success) |
//! | `fault_tolerance_checkpoint_duration_seconds` | histogram | `outcome` | seconds: one save, from its call to its commit or failure |
//! | `fault_tolerance_recoveries_total` | counter | `outcome` = `success` \| `failure` | coordinated recoveries this member took part in: carried out by every rank, or not |
//! | `fault_tolerance_recovery_duration_seconds` | histogram | none | seconds: from the detected failure to the recovery carried out |
//! | `fault_tolerance_prediction_accuracy` | gauge | `measure` = `precision` \| `recall` | ratio 0..1: the last [`evaluate`](crate::recovery::prediction::evaluate) of a failure model on labelled traces |
//! | `fault_tolerance_error_actions_total` | counter | `action` = `retry` \| `fallback` \| `abort` | errors recorded by an [`ErrorRecoveryManager`](crate::recovery::ErrorRecoveryManager), by the action it decided |
//!
//! The prediction gauge is an honest measure of a model, not of the
//! future: `precision` is the share of alarms that came before a real
//! failure, `recall` the share of failures alarmed in time, on the traces
//! given to `evaluate` (see
//! [`EvaluationReport`](crate::recovery::prediction::EvaluationReport)).
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use steadfast::breaker::CircuitBreaker;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), steadfast::ConfigError> {
//! // An exporter installed first (for example
//! // `metrics_exporter_prometheus::PrometheusBuilder::new().install()`), then:
//! steadfast::metrics::describe();
//! let breaker = CircuitBreaker::builder()
//!     .name("payments")
//!     .failure_threshold(5)
//!     .recovery_timeout(Duration::from_secs(30))
//!     .build()?;
//! // fault_tolerance_breaker_calls_total{name="payments",outcome="success"} += 1
//! breaker.call(|| async { Ok::<_, std::io::Error>(()) }).await.unwrap();
//! # Ok(())
//! # }
//! ```

mod handles;
mod retry;

#[cfg(feature = "rate-limit")]
pub(crate) use handles::RateLimiterMetrics;
pub(crate) use handles::{
    record_prediction, BreakerMetrics, BulkheadMetrics, CheckpointMetrics, ErrorActionMetrics,
    HealthMetrics, PipelineMetrics, RecoveryMetrics,
};
pub use retry::{InstrumentedRetry, RetryMetrics};

use ::metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

/// The names of the metrics, as constants (see the table in the [module
/// documentation](self)).
///
/// # Examples
///
/// ```
/// use steadfast::metrics::names;
/// assert_eq!(names::CHECKPOINTS, "fault_tolerance_checkpoints_total");
/// ```
pub mod names {
    /// Gauge, label `name`: 0 Closed, 1 Open, 2 HalfOpen.
    pub const BREAKER_STATE: &str = "fault_tolerance_breaker_state";
    /// Counter, labels `name`, `outcome` (`success`, `failure`).
    pub const BREAKER_CALLS: &str = "fault_tolerance_breaker_calls_total";
    /// Counter, label `name`.
    pub const BREAKER_REJECTIONS: &str = "fault_tolerance_breaker_rejections_total";
    /// Counter, label `name`.
    pub const BREAKER_SLOW_CALLS: &str = "fault_tolerance_breaker_slow_calls_total";
    /// Counter, label `name`.
    pub const RETRY_ATTEMPTS: &str = "fault_tolerance_retry_attempts_total";
    /// Counter, label `name`.
    pub const RETRY_GIVE_UPS: &str = "fault_tolerance_retry_give_ups_total";
    /// Counter, labels `name`, `outcome`.
    pub const PIPELINE_CALLS: &str = "fault_tolerance_pipeline_calls_total";
    /// Counter, label `name`.
    pub const TIMEOUTS: &str = "fault_tolerance_timeouts_total";
    /// Gauge, label `name`.
    pub const BULKHEAD_IN_USE: &str = "fault_tolerance_bulkhead_in_use";
    /// Counter, labels `name`, `reason` (`full`, `queue_timeout`).
    pub const BULKHEAD_REJECTIONS: &str = "fault_tolerance_bulkhead_rejections_total";
    /// Counter, labels `name`, `outcome` (`permitted`, `rejected`).
    pub const RATE_LIMITER_CALLS: &str = "fault_tolerance_rate_limiter_calls_total";
    /// Gauge, label `status` (`healthy`, `unresponsive`, `failed`).
    pub const HEALTH_MEMBERS: &str = "fault_tolerance_health_members";
    /// Counter, labels `source`, `kind`.
    pub const FAILURES_DETECTED: &str = "fault_tolerance_failures_detected_total";
    /// Counter, label `outcome` (`success`, `failure`).
    pub const CHECKPOINTS: &str = "fault_tolerance_checkpoints_total";
    /// Histogram in seconds, label `outcome`.
    pub const CHECKPOINT_DURATION: &str = "fault_tolerance_checkpoint_duration_seconds";
    /// Counter, label `outcome` (`success`, `failure`).
    pub const RECOVERIES: &str = "fault_tolerance_recoveries_total";
    /// Histogram in seconds.
    pub const RECOVERY_DURATION: &str = "fault_tolerance_recovery_duration_seconds";
    /// Gauge, label `measure` (`precision`, `recall`).
    pub const PREDICTION_ACCURACY: &str = "fault_tolerance_prediction_accuracy";
    /// Counter, label `action`.
    pub const ERROR_ACTIONS: &str = "fault_tolerance_error_actions_total";
}

/// Sends the description and unit of every metric of this crate to the
/// installed recorder, which shows them (Prometheus: the `# HELP` lines).
/// Call it once, after installing the recorder; without one it does
/// nothing.
///
/// # Examples
///
/// ```
/// steadfast::metrics::describe();
/// ```
pub fn describe() {
    use names::*;
    describe_gauge!(
        BREAKER_STATE,
        "Circuit breaker state: 0 closed, 1 open, 2 half-open."
    );
    describe_counter!(
        BREAKER_CALLS,
        Unit::Count,
        "Calls through a circuit breaker, by outcome."
    );
    describe_counter!(
        BREAKER_REJECTIONS,
        Unit::Count,
        "Calls a circuit breaker refused."
    );
    describe_counter!(
        BREAKER_SLOW_CALLS,
        Unit::Count,
        "Calls slower than the breaker's slow-call duration."
    );
    describe_counter!(
        RETRY_ATTEMPTS,
        Unit::Count,
        "Attempts run under a retry policy, the first included."
    );
    describe_counter!(
        RETRY_GIVE_UPS,
        Unit::Count,
        "Retry sequences that ended because the policy stopped retrying."
    );
    describe_counter!(
        PIPELINE_CALLS,
        Unit::Count,
        "Calls of a pipeline, by what ended them."
    );
    describe_counter!(
        TIMEOUTS,
        Unit::Count,
        "Calls of a pipeline that ended timed out."
    );
    describe_gauge!(BULKHEAD_IN_USE, Unit::Count, "Bulkhead slots held now.");
    describe_counter!(
        BULKHEAD_REJECTIONS,
        Unit::Count,
        "Calls a bulkhead refused, by reason."
    );
    describe_counter!(
        RATE_LIMITER_CALLS,
        Unit::Count,
        "Calls asking a rate limiter for a permit, by outcome."
    );
    describe_gauge!(
        HEALTH_MEMBERS,
        Unit::Count,
        "Monitored members, by health status."
    );
    describe_counter!(
        FAILURES_DETECTED,
        Unit::Count,
        "Failures detected, by source and kind."
    );
    describe_counter!(
        CHECKPOINTS,
        Unit::Count,
        "Checkpoint saves of this rank, by outcome."
    );
    describe_histogram!(
        CHECKPOINT_DURATION,
        Unit::Seconds,
        "Duration of a checkpoint save, by outcome."
    );
    describe_counter!(
        RECOVERIES,
        Unit::Count,
        "Coordinated recoveries, by outcome."
    );
    describe_histogram!(
        RECOVERY_DURATION,
        Unit::Seconds,
        "Time from a detected failure to the recovery carried out."
    );
    describe_gauge!(
        PREDICTION_ACCURACY,
        "Precision and recall of the last evaluation of a failure model."
    );
    describe_counter!(
        ERROR_ACTIONS,
        Unit::Count,
        "Errors recorded by an error recovery manager, by the action decided."
    );
}
