//! Failure prediction: the predictor, its model, the trace generator and
//! the evaluation on held-out seeds.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use steadfast::health::MemberId;
use steadfast::recovery::prediction::{
    evaluate, FailurePredictor, Features, LogisticModel, PredictedFailure, PredictionConfig,
    PredictionError, Signal, Trace, TraceEvent, TraceFamily, TraceGenerator, FEATURE_COUNT,
};
use tokio::time::Instant;

const HORIZON: Duration = Duration::from_secs(10);

/// The model every test trains the same way: on seeds 1..=5, 60 traces
/// each (ten of each family).
fn trained_model() -> LogisticModel {
    let history: Vec<Trace> = (1..=5u64)
        .flat_map(|seed| TraceGenerator::new(seed).batch(60))
        .collect();
    let mut model = LogisticModel::new(HORIZON).unwrap();
    model.train(&history).unwrap();
    model
}

#[test]
fn held_out_seeds_meet_recall_precision_and_lead_time() {
    let model = trained_model();
    // seeds 1001..=1005 were never trained on
    let held_out: Vec<Trace> = (1001..=1005u64)
        .flat_map(|seed| TraceGenerator::new(seed).batch(60))
        .collect();
    let report = evaluate(&model, &held_out, 0.5).unwrap();
    println!(
        "precision {:.3} recall {:.3} median lead {:?} intervals (tp {} fp {} fn {} tn {})",
        report.precision,
        report.recall,
        report.median_lead_intervals,
        report.true_positives,
        report.false_positives,
        report.false_negatives,
        report.true_negatives
    );
    assert_eq!(report.traces, 300);
    assert_eq!(
        report.true_positives + report.false_negatives,
        150,
        "every failing trace is counted once"
    );
    assert!(report.recall >= 0.8, "recall {}", report.recall);
    assert!(report.precision >= 0.8, "precision {}", report.precision);
    let lead = report.median_lead_intervals.unwrap();
    assert!(lead >= 2.0, "median lead {lead} intervals");
}

#[test]
fn each_failing_family_is_caught_on_held_out_seeds() {
    let model = trained_model();
    for family in TraceFamily::ALL {
        let traces: Vec<Trace> = (2001..=2020u64)
            .map(|seed| TraceGenerator::new(seed).generate(family))
            .collect();
        let report = evaluate(&model, &traces, 0.5).unwrap();
        println!(
            "{family:?}: recall {:.2}, false alarms {}/20, median lead {:?} intervals",
            report.recall, report.false_positives, report.median_lead_intervals
        );
        if family.fails() {
            assert!(report.recall >= 0.8, "{family:?}: {report:?}");
        } else {
            assert!(report.false_positives <= 4, "{family:?}: {report:?}");
        }
    }
}

#[test]
fn an_untrained_model_predicts_nothing() {
    let traces = TraceGenerator::new(7).batch(12);
    let report = evaluate(&LogisticModel::default(), &traces, 0.0).unwrap();
    assert_eq!(report.true_positives + report.false_positives, 0);
    assert_eq!(report.recall, 0.0);

    let model = LogisticModel::new(HORIZON).unwrap();
    let features = Features::new([3.0; FEATURE_COUNT]).unwrap();
    assert_eq!(model.probability(&features, HORIZON).unwrap(), None);
    // one class alone is not training data enough
    let mut one_class = model.clone();
    one_class.learn(&features, false);
    assert_eq!(one_class.probability(&features, HORIZON).unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn an_untrained_predictor_predicts_nothing_and_calls_no_hook() {
    let predictor = FailurePredictor::default();
    let calls = Arc::new(Mutex::new(0));
    let seen = calls.clone();
    predictor
        .on_predicted_failure(0.0, move |_| {
            let seen = seen.clone();
            async move { *seen.lock().unwrap() += 1 }
        })
        .unwrap();
    let start = Instant::now();
    for s in 0..30u64 {
        predictor.observe_heartbeat(0usize, start + Duration::from_secs(s));
        predictor.observe_outcome(0usize, false, Duration::from_secs(5), start);
    }
    tokio::time::advance(Duration::from_secs(600)).await;
    assert!(predictor.predict_failures(HORIZON).unwrap().is_empty());
    assert!(predictor.check_now().await.is_empty());
    assert_eq!(*calls.lock().unwrap(), 0);
}

/// Feeds `member` a heartbeat every second from `from` for `seconds`.
fn beat(predictor: &FailurePredictor, member: usize, from: Instant, seconds: u64) {
    for s in 0..seconds {
        predictor.observe_heartbeat(member, from + Duration::from_secs(s));
    }
}

/// Runs for `seconds`, feeding each member, every second as time goes: a
/// heartbeat and ten operations, of which a share `error_rate(member,
/// second)` fail.
async fn operate(
    predictor: &FailurePredictor,
    members: &[usize],
    seconds: u64,
    error_rate: impl Fn(usize, u64) -> f64,
) {
    for s in 0..seconds {
        let at = Instant::now();
        for &member in members {
            predictor.observe_heartbeat(member, at);
            let errors = (error_rate(member, s) * 10.0).round() as u32;
            for op in 0..10 {
                predictor.observe_outcome(member, op >= errors, Duration::from_millis(20), at);
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn the_hook_fires_once_per_crossing() {
    let config = PredictionConfig::builder()
        .prediction_interval(Duration::from_secs(1))
        .build()
        .unwrap();
    let predictor = FailurePredictor::new(config, trained_model());
    // rank 1 does not fail: learning from that would change the model
    // between the two crossings (see `a_false_alarm_is_learnt_from`)
    predictor.set_learning(false);
    let fired: Arc<Mutex<Vec<PredictedFailure>>> = Arc::default();
    let sink = fired.clone();
    predictor
        .on_predicted_failure(0.9, move |prediction| {
            let sink = sink.clone();
            async move { sink.lock().unwrap().push(prediction) }
        })
        .unwrap();
    let task = predictor.start().unwrap();
    let healthy = |_, _| 0.0;
    // the error rate of rank 1 climbs to 70% over 20 s, and stays there
    let rising = |member, s: u64| {
        if member == 1 {
            (s as f64 / 20.0).min(1.0) * 0.7
        } else {
            0.0
        }
    };

    operate(&predictor, &[0, 1], 60, healthy).await;
    assert!(
        fired.lock().unwrap().is_empty(),
        "healthy members raise no alarm"
    );
    operate(&predictor, &[0, 1], 40, rising).await;
    {
        let fired = fired.lock().unwrap();
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(fired[0].member, MemberId::Rank(1));
        assert!(fired[0].probability >= 0.9);
        assert_eq!(fired[0].horizon, HORIZON);
        assert!(
            fired[0]
                .evidence
                .iter()
                .any(|e| e.feature.starts_with("error_rate")),
            "{:?}",
            fired[0].evidence
        );
    }

    // rank 1 recovers: it drops below the threshold, without another call
    operate(&predictor, &[0, 1], 60, healthy).await;
    assert_eq!(
        fired.lock().unwrap().len(),
        1,
        "no second call while it recovers"
    );
    let p = predictor.predict_failures(HORIZON).unwrap();
    let rank1 = p.iter().find(|p| p.member == MemberId::Rank(1)).unwrap();
    assert!(rank1.probability < 0.9, "{rank1:?}");

    // ... and degrades again: a second crossing, a second call
    operate(&predictor, &[0, 1], 40, rising).await;
    assert_eq!(fired.lock().unwrap().len(), 2);
    assert!(fired
        .lock()
        .unwrap()
        .iter()
        .all(|p| p.member == MemberId::Rank(1)));
    task.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_false_alarm_is_learnt_from() {
    let config = PredictionConfig::builder()
        .prediction_interval(Duration::from_secs(1))
        .build()
        .unwrap();
    let predictor = FailurePredictor::new(config, trained_model());
    let task = predictor.start().unwrap();
    let rising = |_, s: u64| (s as f64 / 20.0).min(1.0) * 0.7;
    operate(&predictor, &[1], 60, |_, _| 0.0).await;
    let before = predictor.model().examples();
    operate(&predictor, &[1], 22, rising).await;
    let at_peak = predictor.predict_failures(HORIZON).unwrap()[0].probability;
    assert!(at_peak >= 0.9, "{at_peak}");
    // the member lives on at 70% errors: the snapshots that alarmed are
    // learnt as "did not fail", and the probability falls
    operate(&predictor, &[1], 60, |_, _| 0.7).await;
    let after = predictor.predict_failures(HORIZON).unwrap()[0].probability;
    assert!(after < at_peak, "{after} vs {at_peak}");
    let (failed, lived) = predictor.model().examples();
    assert_eq!(failed, before.0);
    assert!(lived >= before.1 + 60, "{lived} vs {}", before.1);
    task.stop().await;
}

#[tokio::test(start_paused = true)]
async fn two_hooks_with_their_own_thresholds_fire_independently() {
    let predictor = FailurePredictor::new(PredictionConfig::default(), trained_model());
    let low = Arc::new(Mutex::new(0));
    let high = Arc::new(Mutex::new(0));
    for (threshold, counter) in [(0.01, low.clone()), (1.0, high.clone())] {
        predictor
            .on_predicted_failure(threshold, move |_| {
                let counter = counter.clone();
                async move { *counter.lock().unwrap() += 1 }
            })
            .unwrap();
    }
    let start = Instant::now();
    beat(&predictor, 3, start, 30);
    tokio::time::advance(Duration::from_secs(120)).await;
    predictor.check_now().await;
    predictor.check_now().await;
    assert_eq!(*low.lock().unwrap(), 1);
    // a probability of exactly 1 is never reached by the logistic model
    assert_eq!(*high.lock().unwrap(), 0);
}

#[test]
fn the_same_seed_gives_the_same_traces() {
    for family in TraceFamily::ALL {
        let a = TraceGenerator::new(11).generate(family);
        let b = TraceGenerator::new(11).generate(family);
        let c = TraceGenerator::new(12).generate(family);
        assert_eq!(a, b, "{family:?}");
        assert_ne!(a, c, "{family:?}: another seed, other parameters");
        assert_eq!(a.family, Some(family));
        assert_eq!(a.fails(), family.fails());
    }
    assert_eq!(
        TraceGenerator::new(5).batch(18),
        TraceGenerator::new(5).batch(18)
    );
}

#[test]
fn generated_traces_are_ordered_and_end_at_their_failure() {
    for trace in TraceGenerator::new(21).batch(60) {
        assert!(trace.events.windows(2).all(|w| w[0].at <= w[1].at));
        match (trace.failure_at, trace.onset) {
            (Some(failure), Some(onset)) => {
                assert!(onset < failure);
                assert!(trace.events.iter().all(|e| e.at < failure));
            }
            (None, None) => {
                let beats = trace
                    .events
                    .iter()
                    .filter(|e| e.signal == Signal::Heartbeat)
                    .count();
                assert_eq!(beats, 100, "a noise trace lasts 100 intervals");
            }
            other => panic!("{:?}: {other:?}", trace.family),
        }
    }
}

#[test]
fn bad_input_is_a_clear_error() {
    let predictor = FailurePredictor::default();
    let now = Instant::now();
    let err = predictor
        .observe_gauge("db", "memory_pressure", f64::NAN, now)
        .unwrap_err();
    assert!(matches!(err, PredictionError::NotFinite { .. }), "{err}");
    assert!(err.to_string().contains("memory_pressure"), "{err}");

    let err = predictor
        .predict_failures_at(Duration::ZERO, now)
        .unwrap_err();
    assert!(matches!(err, PredictionError::ZeroHorizon { .. }), "{err}");
    assert!(LogisticModel::new(Duration::ZERO).is_err());

    for threshold in [-0.1, 1.01, f64::NAN, f64::INFINITY] {
        let err = predictor
            .on_predicted_failure(threshold, |_| async {})
            .unwrap_err();
        assert!(
            matches!(err, PredictionError::InvalidThreshold { .. }),
            "{err}"
        );
        assert!(evaluate(&LogisticModel::default(), &[], threshold).is_err());
    }
    predictor.on_predicted_failure(0.0, |_| async {}).unwrap();
    predictor.on_predicted_failure(1.0, |_| async {}).unwrap();

    assert!(predictor.observe_phi(0usize, f64::NAN, now).is_err());
    assert!(predictor.observe_phi(0usize, -0.5, now).is_err());
    assert!(Features::new([f64::INFINITY; FEATURE_COUNT]).is_err());

    for i in 0..16 {
        predictor
            .observe_gauge(1usize, &format!("g{i}"), 1.0, now)
            .unwrap();
    }
    let err = predictor
        .observe_gauge(1usize, "g16", 1.0, now)
        .unwrap_err();
    assert!(
        matches!(err, PredictionError::TooManyGauges { limit: 16, .. }),
        "{err}"
    );
    // an existing gauge is still taken
    predictor.observe_gauge(1usize, "g3", 2.0, now).unwrap();

    assert!(LogisticModel::default()
        .with_learning_rate(f64::NAN)
        .is_err());
    assert!(LogisticModel::default().with_l2(f64::INFINITY).is_err());
}

#[test]
fn a_malformed_trace_is_refused_and_leaves_the_model_as_it_was() {
    let mut trace = TraceGenerator::new(3).generate(TraceFamily::GaugeDrift);
    trace.events.push(TraceEvent {
        at: trace.failure_at.unwrap() + Duration::from_secs(1),
        signal: Signal::Heartbeat,
    });
    let predictor = FailurePredictor::default();
    let err = predictor.train(&[trace]).unwrap_err();
    assert!(
        matches!(err, PredictionError::MalformedTrace { index: 0, .. }),
        "{err}"
    );
    assert_eq!(predictor.model().examples(), (0, 0));

    let mut nan = TraceGenerator::new(3).generate(TraceFamily::Jitter);
    nan.events[5].signal = Signal::Gauge {
        name: "t".into(),
        value: f64::NAN,
    };
    assert!(LogisticModel::default().train(&[nan]).is_err());
}

/// JSON keeps every float to within its last digit: the same model, up to
/// rounding.
fn assert_same_model(a: &LogisticModel, b: &LogisticModel) {
    assert_eq!(a.examples(), b.examples());
    assert_eq!(a.horizon(), b.horizon());
    for ((name, wa), (_, wb)) in a.weights().iter().zip(b.weights()) {
        assert!((wa - wb).abs() < 1e-12, "{name}: {wa} vs {wb}");
    }
    for trace in TraceGenerator::new(99).batch(6) {
        let report_a = evaluate(a, std::slice::from_ref(&trace), 0.5).unwrap();
        let report_b = evaluate(b, &[trace], 0.5).unwrap();
        assert_eq!(report_a, report_b);
    }
}

#[tokio::test]
async fn a_trained_model_is_saved_and_loaded_through_the_config() {
    let model = trained_model();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("failures.json");
    model.save(&path).await.unwrap();
    let loaded = LogisticModel::load(&path).await.unwrap();
    assert_same_model(&loaded, &model);

    let config: PredictionConfig = serde_json::from_value(serde_json::json!({
        "prediction_enabled": true,
        "prediction_model": path.to_str().unwrap(),
        "prediction_interval": "30s",
    }))
    .unwrap();
    let predictor = FailurePredictor::from_config(&config).await.unwrap();
    assert_same_model(&predictor.model(), &model);
    assert_eq!(
        predictor.config().prediction_interval(),
        Duration::from_secs(30)
    );

    tokio::fs::write(&path, b"{\"weights\": 3}").await.unwrap();
    let err = LogisticModel::load(&path).await.unwrap_err();
    assert!(matches!(err, PredictionError::ModelFormat { .. }), "{err}");

    // a model with a NaN weight is refused on load
    let mut json = serde_json::to_value(&model).unwrap();
    json["l2"] = serde_json::json!(-1.0);
    assert!(serde_json::from_value::<LogisticModel>(json).is_err());
}

#[test]
fn the_config_keys_deserialize_with_their_defaults() {
    let config: PredictionConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(config, PredictionConfig::default());
    assert!(!config.prediction_enabled());
    assert_eq!(config.prediction_model(), "logistic");
    assert_eq!(config.prediction_interval(), Duration::from_secs(60));
    let json = serde_json::to_value(&config).unwrap();
    assert_eq!(json["prediction_interval"], "1m");
    assert_eq!(
        serde_json::from_value::<PredictionConfig>(json).unwrap(),
        config
    );
    let err =
        serde_json::from_str::<PredictionConfig>(r#"{"prediction_interval": "0s"}"#).unwrap_err();
    assert!(err.to_string().contains("prediction_interval"), "{err}");
    assert!(serde_json::from_str::<PredictionConfig>(r#"{"prediction_horizon": "1m"}"#).is_err());
}

#[tokio::test(start_paused = true)]
async fn labels_are_derived_as_members_live_and_fail() {
    let model = LogisticModel::new(HORIZON).unwrap();
    let config = PredictionConfig::builder()
        .prediction_interval(Duration::from_secs(1))
        .build()
        .unwrap();
    let predictor = FailurePredictor::new(config, model);
    let start = Instant::now();
    beat(&predictor, 0, start, 30);
    beat(&predictor, 1, start, 30);
    for _ in 0..30 {
        predictor.check_now().await;
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    // snapshots older than the horizon plus one interval were learnt as
    // "did not fail": 30 snapshots each, the last 11 not yet ripe
    assert_eq!(predictor.model().examples(), (0, 2 * 19));
    // rank 1 fails now: its 11 recent snapshots were within the horizon
    // of the failure (10 s) or just past it
    let learnt = predictor.report_failure(1usize, Instant::now());
    assert_eq!(learnt, 11);
    let (failed, lived) = predictor.model().examples();
    assert_eq!(failed + lived, 2 * 19 + 11);
    assert_eq!(failed, 10);
    assert!(predictor.model().is_trained());
    assert_eq!(predictor.members(), vec![MemberId::Rank(0)]);
}

#[test]
fn public_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<FailurePredictor>();
    assert_send_sync::<LogisticModel>();
    assert_send_sync::<PredictedFailure>();
    assert_send_sync::<PredictionError>();
    assert_send_sync::<PredictionConfig>();
    assert_send_sync::<steadfast::recovery::prediction::PredictionHandle>();
    fn assert_send<T: Send>() {}
    assert_send::<TraceGenerator>();
}
