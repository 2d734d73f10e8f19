//! The handles each instrumented mechanism registers once and keeps: one
//! struct per mechanism, built when the instance is built (or named), so
//! that recording is an increment of a handle already held.

use std::sync::Arc;
use std::time::Duration;

use ::metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};

use super::names;
use crate::breaker::State;
use crate::health::HealthStatus;
use crate::pipeline::{PipelineError, StoppedBy};
use crate::recovery::prediction::EvaluationReport;
use crate::recovery::RecoveryAction;

/// The handles of one named circuit breaker.
#[derive(Debug)]
pub(crate) struct BreakerMetrics {
    state: Gauge,
    successes: Counter,
    failures: Counter,
    rejections: Counter,
    slow: Counter,
}

impl BreakerMetrics {
    /// Registers the breaker `name`'s handles; its state gauge reads Closed.
    pub(crate) fn new(name: &str) -> Self {
        let metrics = BreakerMetrics {
            state: gauge!(names::BREAKER_STATE, "name" => name.to_owned()),
            successes: counter!(names::BREAKER_CALLS, "name" => name.to_owned(), "outcome" => "success"),
            failures: counter!(names::BREAKER_CALLS, "name" => name.to_owned(), "outcome" => "failure"),
            rejections: counter!(names::BREAKER_REJECTIONS, "name" => name.to_owned()),
            slow: counter!(names::BREAKER_SLOW_CALLS, "name" => name.to_owned()),
        };
        metrics.state(State::Closed);
        metrics
    }

    #[inline]
    pub(crate) fn success(&self) {
        self.successes.increment(1);
    }

    #[inline]
    pub(crate) fn failure(&self) {
        self.failures.increment(1);
    }

    pub(crate) fn rejection(&self) {
        self.rejections.increment(1);
    }

    pub(crate) fn slow_call(&self) {
        self.slow.increment(1);
    }

    pub(crate) fn state(&self, state: State) {
        self.state.set(match state {
            State::Closed => 0.0,
            State::Open => 1.0,
            State::HalfOpen => 2.0,
        });
    }
}

/// The handles of one named pipeline: its calls by what ended them, and
/// its timeouts.
#[derive(Debug)]
pub(crate) struct PipelineMetrics {
    success: Counter,
    operation: Counter,
    timeout: Counter,
    circuit_breaker: Counter,
    bulkhead: Counter,
    rate_limiter: Counter,
    retry: Counter,
    fallback: Counter,
    timeouts: Counter,
}

impl PipelineMetrics {
    /// Registers the pipeline `name`'s handles.
    pub(crate) fn new(name: &str) -> Arc<Self> {
        let calls = |outcome: &'static str| counter!(names::PIPELINE_CALLS, "name" => name.to_owned(), "outcome" => outcome);
        Arc::new(PipelineMetrics {
            success: calls("success"),
            operation: calls("operation"),
            timeout: calls("timeout"),
            circuit_breaker: calls("circuit_breaker"),
            bulkhead: calls("bulkhead"),
            rate_limiter: calls("rate_limiter"),
            retry: calls("retry"),
            fallback: calls("fallback"),
            timeouts: counter!(names::TIMEOUTS, "name" => name.to_owned()),
        })
    }

    /// Records how a call ended.
    #[inline]
    pub(crate) fn record<T, E>(&self, result: &Result<T, PipelineError<E>>) {
        let Err(error) = result else {
            self.success.increment(1);
            return;
        };
        let counter = match error.stopped_by() {
            StoppedBy::Operation => &self.operation,
            StoppedBy::Timeout => {
                self.timeouts.increment(1);
                &self.timeout
            }
            StoppedBy::CircuitBreaker => &self.circuit_breaker,
            StoppedBy::Bulkhead => &self.bulkhead,
            StoppedBy::RateLimiter => &self.rate_limiter,
            StoppedBy::Retry => &self.retry,
            StoppedBy::Fallback => &self.fallback,
        };
        counter.increment(1);
    }
}

/// The handles of one named bulkhead.
#[derive(Debug)]
pub(crate) struct BulkheadMetrics {
    in_use: Gauge,
    full: Counter,
    queue_timeout: Counter,
}

impl BulkheadMetrics {
    /// Registers the bulkhead `name`'s handles.
    pub(crate) fn new(name: &str) -> Self {
        BulkheadMetrics {
            in_use: gauge!(names::BULKHEAD_IN_USE, "name" => name.to_owned()),
            full: counter!(names::BULKHEAD_REJECTIONS, "name" => name.to_owned(), "reason" => "full"),
            queue_timeout: counter!(names::BULKHEAD_REJECTIONS, "name" => name.to_owned(), "reason" => "queue_timeout"),
        }
    }

    /// A slot was taken.
    #[inline]
    pub(crate) fn taken(&self) {
        self.in_use.increment(1.0);
    }

    /// A slot was given back.
    #[inline]
    pub(crate) fn released(&self) {
        self.in_use.decrement(1.0);
    }

    pub(crate) fn full(&self) {
        self.full.increment(1);
    }

    pub(crate) fn queue_timeout(&self) {
        self.queue_timeout.increment(1);
    }
}

/// The handles of one named rate limiter.
#[cfg(feature = "rate-limit")]
#[derive(Debug)]
pub(crate) struct RateLimiterMetrics {
    permitted: Counter,
    rejected: Counter,
}

#[cfg(feature = "rate-limit")]
impl RateLimiterMetrics {
    /// Registers the rate limiter `name`'s handles.
    pub(crate) fn new(name: &str) -> Self {
        RateLimiterMetrics {
            permitted: counter!(names::RATE_LIMITER_CALLS, "name" => name.to_owned(), "outcome" => "permitted"),
            rejected: counter!(names::RATE_LIMITER_CALLS, "name" => name.to_owned(), "outcome" => "rejected"),
        }
    }

    #[inline]
    pub(crate) fn record(&self, permitted: bool) {
        if permitted {
            self.permitted.increment(1);
        } else {
            self.rejected.increment(1);
        }
    }
}

/// The handles of a health monitor: members by status, failures detected.
#[derive(Debug)]
pub(crate) struct HealthMetrics {
    healthy: Gauge,
    unresponsive: Gauge,
    failed: Gauge,
    member_failed: Counter,
    partition: Counter,
}

impl HealthMetrics {
    pub(crate) fn new() -> Self {
        let members = |status: &'static str| gauge!(names::HEALTH_MEMBERS, "status" => status);
        let detected = |kind: &'static str| counter!(names::FAILURES_DETECTED, "source" => "health", "kind" => kind);
        HealthMetrics {
            healthy: members("healthy"),
            unresponsive: members("unresponsive"),
            failed: members("failed"),
            member_failed: detected("member_failed"),
            partition: detected("suspected_partition"),
        }
    }

    fn gauge(&self, status: HealthStatus) -> &Gauge {
        match status {
            HealthStatus::Healthy => &self.healthy,
            HealthStatus::Unresponsive => &self.unresponsive,
            HealthStatus::Failed => &self.failed,
        }
    }

    /// A member was added with `status`.
    pub(crate) fn added(&self, status: HealthStatus) {
        self.gauge(status).increment(1.0);
    }

    /// A member with `status` was removed.
    pub(crate) fn removed(&self, status: HealthStatus) {
        self.gauge(status).decrement(1.0);
    }

    /// A member moved from `old` to `new`; a move into Failed is a
    /// detected failure.
    pub(crate) fn moved(&self, old: HealthStatus, new: HealthStatus) {
        self.gauge(old).decrement(1.0);
        self.gauge(new).increment(1.0);
        if new == HealthStatus::Failed {
            self.member_failed.increment(1);
        }
    }

    /// A suspected partition was reported.
    pub(crate) fn partition(&self) {
        self.partition.increment(1);
    }
}

/// The handles of a checkpoint handle's saves.
#[derive(Debug, Clone)]
pub(crate) struct CheckpointMetrics {
    succeeded: Counter,
    failed: Counter,
    succeeded_seconds: Histogram,
    failed_seconds: Histogram,
}

impl CheckpointMetrics {
    pub(crate) fn new() -> Self {
        CheckpointMetrics {
            succeeded: counter!(names::CHECKPOINTS, "outcome" => "success"),
            failed: counter!(names::CHECKPOINTS, "outcome" => "failure"),
            succeeded_seconds: histogram!(names::CHECKPOINT_DURATION, "outcome" => "success"),
            failed_seconds: histogram!(names::CHECKPOINT_DURATION, "outcome" => "failure"),
        }
    }

    /// A save that took `took` ended, committed or not.
    pub(crate) fn saved(&self, took: Duration, committed: bool) {
        if committed {
            self.succeeded.increment(1);
            self.succeeded_seconds.record(took.as_secs_f64());
        } else {
            self.failed.increment(1);
            self.failed_seconds.record(took.as_secs_f64());
        }
    }
}

/// The handles of a recovery coordinator.
#[derive(Debug)]
pub(crate) struct RecoveryMetrics {
    succeeded: Counter,
    failed: Counter,
    seconds: Histogram,
    detected: Counter,
}

impl RecoveryMetrics {
    pub(crate) fn new() -> Self {
        RecoveryMetrics {
            succeeded: counter!(names::RECOVERIES, "outcome" => "success"),
            failed: counter!(names::RECOVERIES, "outcome" => "failure"),
            seconds: histogram!(names::RECOVERY_DURATION),
            detected: counter!(names::FAILURES_DETECTED, "source" => "recovery", "kind" => "rank_failed"),
        }
    }

    /// A recovery was carried out by every rank, `took` after the failure.
    pub(crate) fn recovered(&self, took: Duration) {
        self.succeeded.increment(1);
        self.seconds.record(took.as_secs_f64());
    }

    /// A recovery was not carried out.
    pub(crate) fn not_recovered(&self) {
        self.failed.increment(1);
    }

    /// A failed rank was detected.
    pub(crate) fn detected(&self) {
        self.detected.increment(1);
    }
}

/// The handles of an error recovery manager.
#[derive(Debug)]
pub(crate) struct ErrorActionMetrics {
    retry: Counter,
    fallback: Counter,
    abort: Counter,
}

impl ErrorActionMetrics {
    pub(crate) fn new() -> Self {
        ErrorActionMetrics {
            retry: counter!(names::ERROR_ACTIONS, "action" => "retry"),
            fallback: counter!(names::ERROR_ACTIONS, "action" => "fallback"),
            abort: counter!(names::ERROR_ACTIONS, "action" => "abort"),
        }
    }

    /// An error was recorded and `action` decided.
    pub(crate) fn decided(&self, action: &RecoveryAction) {
        match action {
            RecoveryAction::Retry { .. } => &self.retry,
            RecoveryAction::Fallback => &self.fallback,
            RecoveryAction::Abort => &self.abort,
        }
        .increment(1);
    }
}

/// Sets the prediction accuracy gauges from an evaluation. An evaluation
/// replays whole traces: registering its two handles costs nothing beside
/// it.
pub(crate) fn record_prediction(report: &EvaluationReport) {
    gauge!(names::PREDICTION_ACCURACY, "measure" => "precision").set(report.precision);
    gauge!(names::PREDICTION_ACCURACY, "measure" => "recall").set(report.recall);
}
