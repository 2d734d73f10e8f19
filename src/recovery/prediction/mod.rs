//! Failure prediction: a [`FailurePredictor`] turns health signals per
//! member into a probability of failure within a horizon, learns as members
//! live and fail, and hands the members it expects to fail to a hook (for
//! preemptive migration), before they actually fail.
//!
//! # Signals and features
//!
//! The caller feeds, per member, with the instant of each observation:
//! heartbeat arrivals ([`FailurePredictor::observe_heartbeat`]), the outcome
//! and latency of operations ([`FailurePredictor::observe_outcome`]),
//! optionally the phi of its own failure detector
//! ([`FailurePredictor::observe_phi`]), and named gauges such as a cpu
//! temperature or a memory pressure ([`FailurePredictor::observe_gauge`]).
//! Each member keeps bounded windows of them (ring buffers), from which
//! [`Features`] are computed, every one relative to the member's own
//! baseline (see [`FEATURE_NAMES`] for the exact definitions):
//!
//! - the heartbeat **inter-arrival trend**: the ratio of the recent mean
//!   interval to the baseline, the slope of the intervals over a window,
//!   the current silence;
//! - **phi**, fed by the caller or computed from the intervals as the
//!   phi-accrual detector of [`health`](crate::health) does;
//! - the **error rate** over a recent and a medium window, and its rise
//!   over the baseline;
//! - the **latency** p50 and p99 over the recent windows, against the
//!   baseline's;
//! - the **drift of the gauges**: the largest level shift and the largest
//!   change along a slope, in baseline standard deviations.
//!
//! # The model
//!
//! A [`LogisticModel`]: logistic regression on the standardized features,
//! learnt online by stochastic gradient descent with L2 regularisation and
//! a learning rate; its output is an estimate of how often members with
//! such features failed within the horizon. It is
//! trained in batch from labelled [`Trace`]s ([`LogisticModel::train`]),
//! and kept current as it runs: the predictor labels its own snapshots of
//! the features, "failed" when a member is reported failed within the
//! horizon after the snapshot ([`FailurePredictor::report_failure`]), "did
//! not fail" when the horizon has passed without. The weights say which
//! signals matter, and each prediction names its strongest
//! [`Evidence`]. **A model with no training data predicts nothing**: until
//! it has seen a failure and a non-failure, predictions are empty rather
//! than guesses. The model is `serde`-serializable, to be saved once trained
//! and loaded at start ([`PredictionConfig`]'s `prediction_model`).
//!
//! Gradient-boosted trees capture interactions that a linear model does
//! not, but no well-kept Rust crate trains them online (see `Cargo.toml`);
//! the features are built so that one signal out of its range is enough to
//! raise the log-odds, which a linear model captures well.
//!
//! # Hooks and the evaluation task
//!
//! [`FailurePredictor::on_predicted_failure`] registers an async handler
//! called once per member whose probability crosses a threshold;
//! [`FailurePredictor::start`] evaluates every `prediction_interval`
//! (1 minute by default) until its [`PredictionHandle`] is stopped.
//!
//! # Measuring
//!
//! [`TraceGenerator`] makes labelled traces from a seed, in six documented
//! [`TraceFamily`]s (three degradations that end in a failure, three kinds
//! of noise that do not), and [`evaluate`] reports precision, recall and
//! lead time on traces the model was not trained on.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use steadfast::recovery::prediction::{evaluate, LogisticModel, TraceGenerator};
//!
//! let mut model = LogisticModel::new(Duration::from_secs(10))?;
//! model.train(&TraceGenerator::new(1).batch(60))?;
//! let report = evaluate(&model, &TraceGenerator::new(1000).batch(30), 0.5)?;
//! assert!(report.recall >= 0.8 && report.precision >= 0.8, "{report:?}");
//! # Ok::<(), steadfast::recovery::prediction::PredictionError>(())
//! ```

mod config;
mod error;
mod evaluate;
mod features;
mod hook;
mod model;
mod predictor;
mod trace;

pub use config::{PredictionConfig, PredictionConfigBuilder, LOGISTIC_MODEL};
pub use error::PredictionError;
pub use evaluate::{evaluate, EvaluationReport};
pub use features::{Features, FEATURE_COUNT, FEATURE_NAMES};
pub use hook::PredictionHandle;
pub use model::{Evidence, LogisticModel};
pub use predictor::{FailurePredictor, PredictedFailure};
pub use trace::{Signal, Trace, TraceEvent, TraceFamily, TraceGenerator};
