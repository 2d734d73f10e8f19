//! The failure predictor's periodic work for 1,000 members, each with full
//! signal windows (64 heartbeats, 256 outcomes, two gauges of 64 samples):
//!
//! - `prediction_1000/predict_failures`: features and a prediction for every
//!   member (`predict_failures_at`).
//! - `prediction_1000/check_now`: what the evaluation task does every
//!   `prediction_interval`: the same, plus a snapshot of the features of
//!   every member and the hooks (one registered, never crossed).
//!
//! At the default interval (1 minute), 0.5% of one core is 300 ms per
//! evaluation. Run with `cargo bench --bench prediction`; add
//! `-- --warm-up-time 1 --measurement-time 3` for a quick run.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use steadfast::recovery::prediction::{
    FailurePredictor, LogisticModel, PredictionConfig, TraceGenerator,
};
use tokio::time::Instant;

const MEMBERS: usize = 1_000;

fn predictor() -> (FailurePredictor, Instant) {
    let mut model = LogisticModel::new(Duration::from_secs(10)).unwrap();
    model.train(&TraceGenerator::new(1).batch(60)).unwrap();
    let predictor = FailurePredictor::new(PredictionConfig::default(), model);
    // Learning would grow nothing here (no snapshot ripens within a run),
    // but keep the model fixed so every iteration does the same work.
    predictor.set_learning(false);
    predictor.on_predicted_failure(1.0, |_| async {}).unwrap();
    let start = Instant::now();
    for member in 0..MEMBERS {
        for s in 0..64u64 {
            let at = start + Duration::from_secs(s);
            predictor.observe_heartbeat(member, at);
            for op in 0..4u64 {
                predictor.observe_outcome(
                    member,
                    op != 0 || s % 7 != 0,
                    Duration::from_millis(10 + op),
                    at,
                );
            }
            predictor
                .observe_gauge(member, "cpu_temperature", 60.0 + (s % 5) as f64, at)
                .unwrap();
            predictor
                .observe_gauge(member, "memory_pressure", 0.4 + (s % 3) as f64 * 0.01, at)
                .unwrap();
        }
    }
    (predictor, start + Duration::from_secs(64))
}

fn prediction(c: &mut Criterion) {
    let (predictor, now) = predictor();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("prediction_1000");
    group.throughput(Throughput::Elements(MEMBERS as u64));
    group.bench_function("predict_failures", |b| {
        b.iter(|| {
            black_box(
                predictor
                    .predict_failures_at(Duration::from_secs(10), now)
                    .unwrap(),
            )
        })
    });
    group.bench_function("check_now", |b| {
        b.iter(|| black_box(runtime.block_on(predictor.check_now())))
    });
    group.finish();
}

criterion_group!(benches, prediction);
criterion_main!(benches);
