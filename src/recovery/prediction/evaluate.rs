//! [`evaluate`]: precision, recall and lead time of a model on labelled
//! traces it was not trained on ([`EvaluationReport`]).

use std::time::Duration;

use super::hook::check_threshold;
use super::model::LogisticModel;
use super::trace::Trace;
use super::PredictionError;

/// What [`evaluate`] measured.
///
/// A trace raises an *alarm* at the first heartbeat interval at which the
/// model's probability of failure within its horizon reaches the threshold.
///
/// - A failing trace whose first alarm comes after its onset (if known) and
///   before its failure is a **true positive**; its **lead time** is the
///   time from that alarm to the failure, in heartbeat intervals.
/// - A failing trace without an alarm is a **false negative**; one whose
///   first alarm comes before its onset counts as a false positive *and* a
///   false negative (the alarm was not about the failure).
/// - A trace that does not fail is a **false positive** if it raises an
///   alarm, a **true negative** otherwise.
///
/// `precision = tp / (tp + fp)` (1 when there is no alarm at all),
/// `recall = tp / (tp + fn)` (1 when no trace fails). With the `metrics`
/// feature, [`evaluate`] sets the gauge
/// `fault_tolerance_prediction_accuracy` to both (label `measure`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::recovery::prediction::{evaluate, LogisticModel, TraceGenerator};
///
/// let mut model = LogisticModel::new(Duration::from_secs(10))?;
/// model.train(&TraceGenerator::new(1).batch(12))?;
/// let report = evaluate(&model, &TraceGenerator::new(2).batch(6), 0.5)?;
/// assert_eq!(report.traces, 6);
/// assert_eq!(report.true_positives + report.false_negatives, 3);
/// # Ok::<(), steadfast::recovery::prediction::PredictionError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluationReport {
    /// Traces evaluated.
    pub traces: usize,
    /// The probability threshold of an alarm.
    pub threshold: f64,
    /// The model's horizon.
    pub horizon: Duration,
    /// Failing traces alarmed in time.
    pub true_positives: usize,
    /// Alarms that were not about a failure.
    pub false_positives: usize,
    /// Failing traces not alarmed in time.
    pub false_negatives: usize,
    /// Traces that do not fail and raised no alarm.
    pub true_negatives: usize,
    /// `tp / (tp + fp)`.
    pub precision: f64,
    /// `tp / (tp + fn)`.
    pub recall: f64,
    /// The lead time of every true positive, in heartbeat intervals, sorted.
    pub lead_intervals: Vec<f64>,
    /// The median of [`lead_intervals`](Self::lead_intervals), `None`
    /// without a true positive.
    pub median_lead_intervals: Option<f64>,
}

/// Replays every trace through `model` and measures its alarms at
/// `threshold` (see [`EvaluationReport`] for the definitions). An untrained
/// model raises no alarm.
///
/// # Errors
///
/// [`PredictionError::InvalidThreshold`] for a threshold outside `0..=1`,
/// [`PredictionError::MalformedTrace`] for a trace that cannot be replayed.
///
/// # Examples
///
/// ```
/// use steadfast::recovery::prediction::{evaluate, LogisticModel, TraceGenerator};
/// let traces = TraceGenerator::new(2).batch(6);
/// let report = evaluate(&LogisticModel::default(), &traces, 0.5)?;
/// assert_eq!((report.true_positives, report.false_positives), (0, 0)); // untrained
/// assert_eq!(report.recall, 0.0);
/// assert!(evaluate(&LogisticModel::default(), &traces, 1.5).is_err());
/// # Ok::<(), steadfast::recovery::prediction::PredictionError>(())
/// ```
pub fn evaluate(
    model: &LogisticModel,
    traces: &[Trace],
    threshold: f64,
) -> Result<EvaluationReport, PredictionError> {
    check_threshold(threshold)?;
    let horizon = model.horizon();
    let (mut tp, mut fp, mut fneg, mut tn) = (0, 0, 0, 0);
    let mut leads = Vec::new();
    for (index, trace) in traces.iter().enumerate() {
        trace.check(index)?;
        let mut first_alarm = None;
        for (at, features) in trace.replay() {
            if model
                .probability(&features, horizon)?
                .is_some_and(|p| p >= threshold)
            {
                first_alarm = Some(at);
                break;
            }
        }
        match (trace.failure_at, first_alarm) {
            (Some(failure), Some(alarm)) if trace.onset.is_none_or(|onset| alarm >= onset) => {
                tp += 1;
                leads.push(
                    failure.saturating_sub(alarm).as_secs_f64()
                        / trace.heartbeat_interval.as_secs_f64(),
                );
            }
            (Some(_), Some(_)) => {
                fp += 1;
                fneg += 1;
            }
            (Some(_), None) => fneg += 1,
            (None, Some(_)) => fp += 1,
            (None, None) => tn += 1,
        }
    }
    leads.sort_by(f64::total_cmp);
    let median = match leads.len() {
        0 => None,
        n if n % 2 == 1 => Some(leads[n / 2]),
        n => Some((leads[n / 2 - 1] + leads[n / 2]) / 2.0),
    };
    let ratio = |num: usize, den: usize, empty: f64| {
        if den == 0 {
            empty
        } else {
            num as f64 / den as f64
        }
    };
    let report = EvaluationReport {
        traces: traces.len(),
        threshold,
        horizon,
        true_positives: tp,
        false_positives: fp,
        false_negatives: fneg,
        true_negatives: tn,
        precision: ratio(tp, tp + fp, 1.0),
        recall: ratio(tp, tp + fneg, 1.0),
        lead_intervals: leads,
        median_lead_intervals: median,
    };
    #[cfg(feature = "metrics")]
    crate::metrics::record_prediction(&report);
    Ok(report)
}
