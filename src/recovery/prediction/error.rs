//! [`PredictionError`]: what the failure predictor refuses, and why.

use std::path::PathBuf;
use std::time::Duration;

/// An error of the [failure predictor](super::FailurePredictor), its
/// [model](super::LogisticModel) or its [evaluation](super::evaluate).
///
/// # Examples
///
/// ```
/// use steadfast::recovery::prediction::{FailurePredictor, PredictionError};
///
/// let predictor = FailurePredictor::default();
/// let now = tokio::time::Instant::now();
/// let err = predictor.observe_gauge(0usize, "cpu_temperature", f64::NAN, now).unwrap_err();
/// assert!(matches!(err, PredictionError::NotFinite { .. }));
/// assert_eq!(err.to_string(), "gauge cpu_temperature of rank 0 is not a finite number: NaN");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PredictionError {
    /// A fed value (a gauge, a phi, a feature) is NaN or infinite.
    #[error("{what} is not a finite number: {value}")]
    NotFinite {
        /// What the value was (for example `gauge cpu_temperature of rank 0`).
        what: String,
        /// The value.
        value: f64,
    },
    /// A value outside the range it must lie in (a negative phi, a latency
    /// that does not fit, ...).
    #[error("{what} must be {expected}, got {value}")]
    OutOfRange {
        /// What the value was.
        what: String,
        /// The range it must lie in.
        expected: &'static str,
        /// The value.
        value: f64,
    },
    /// A probability threshold outside `0..=1` (or NaN).
    #[error("probability threshold must be within 0..=1, got {threshold}")]
    InvalidThreshold {
        /// The threshold given.
        threshold: f64,
    },
    /// A prediction horizon of zero: a failure "within no time" has no
    /// probability to speak of.
    #[error("prediction horizon must be greater than zero, got {horizon:?}")]
    ZeroHorizon {
        /// The horizon given.
        horizon: Duration,
    },
    /// A member fed more distinct gauges than one member keeps.
    #[error("{member} already has {limit} gauges; gauge {name} is refused")]
    TooManyGauges {
        /// The member.
        member: String,
        /// The gauge refused.
        name: String,
        /// The most gauges a member keeps.
        limit: usize,
    },
    /// A model parameter that cannot work (a learning rate of zero, a
    /// negative L2 weight, ...).
    #[error("model parameter {parameter} {reason}")]
    InvalidModel {
        /// The parameter.
        parameter: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A labelled trace whose events are out of order, or that has events
    /// after its failure.
    #[error("trace {index} is malformed: {reason}")]
    MalformedTrace {
        /// Its position in the history given.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A saved model could not be read or written.
    #[error("cannot {action} model file {}", path.display())]
    ModelFile {
        /// `"read"` or `"write"`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A saved model's content is not a model of this version.
    #[error("model file {} does not hold a model", path.display())]
    ModelFormat {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// [`FailurePredictor::start`](super::FailurePredictor::start) was
    /// called outside a tokio runtime.
    #[error("the failure predictor's evaluation task needs a tokio runtime")]
    NoRuntime {
        /// Why no runtime was found.
        #[source]
        source: tokio::runtime::TryCurrentError,
    },
}
