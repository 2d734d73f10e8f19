//! A stack of tower layers around a service that answers at once: the cost
//! of the layers when nothing fails (feature `tower`).
//!
//! - `bare`: the inner service alone (`poll_ready`, `call`, the future
//!   polled once).
//! - `tower_retry_timeout_resilience_breaker`: tower's own `Retry` (a
//!   policy of three attempts) and `Timeout` (1 s) layers, with the
//!   `tower-resilience` circuit breaker between them: retry → breaker →
//!   timeout → service.
//! - `steadfast_layers`: steadfast's `RetryLayer`, `CircuitBreakerLayer` and
//!   `TimeoutLayer` in the same order.
//! - `steadfast_layers_with_bulkhead`: the same with a `BulkheadLayer`
//!   below the timeout.
//! - `steadfast_pipeline_layer`: one `PipelineLayer` holding a pipeline of
//!   the same retry, breaker and timeout (its response future is boxed, and
//!   each attempt calls a clone of the service).
//! - `steadfast_retry_layer`, `steadfast_breaker_layer`,
//!   `steadfast_timeout_layer`, `steadfast_bulkhead_layer`: each layer
//!   alone around the service, to see what each adds.
//!
//! Each iteration asks `poll_ready` and makes one call on the same service,
//! and polls the response future once with a no-op waker, inside a tokio
//! runtime (the timeouts need its timer).
//!
//! Run with `cargo bench --features tower --bench tower_stack`; add
//! `-- --warm-up-time 1 --measurement-time 3` for a quick run.

mod common;

use std::future::{ready, Ready};
use std::hint::black_box;
use std::io;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use steadfast::pipeline::{Bulkhead, Pipeline};
use steadfast::tower::{
    BulkheadLayer, CircuitBreakerLayer, PipelineLayer, RetryLayer, TimeoutLayer,
};
use steadfast::{CircuitBreaker, RetryPolicy};
use tower::{service_fn, Layer, Service, ServiceBuilder};

use common::poll_once;

/// The inner service: answers at once.
fn inner(
) -> impl Service<u64, Response = u64, Error = io::Error, Future = Ready<Result<u64, io::Error>>>
       + Clone
       + Send
       + 'static {
    service_fn(|x: u64| ready(Ok::<_, io::Error>(black_box(x))))
}

/// tower's retry policy for the peer stack: up to three attempts, no wait.
#[derive(Clone)]
struct Attempts(u32);

impl<E> tower::retry::Policy<u64, u64, E> for Attempts {
    type Future = Ready<()>;

    fn retry(&mut self, _: &mut u64, result: &mut Result<u64, E>) -> Option<Self::Future> {
        match result {
            Err(_) if self.0 > 1 => {
                self.0 -= 1;
                Some(ready(()))
            }
            _ => None,
        }
    }

    fn clone_request(&mut self, req: &u64) -> Option<u64> {
        Some(*req)
    }
}

/// One `poll_ready` and one call, its future polled once.
#[inline(always)]
fn ready_and_call<S: Service<u64>>(service: &mut S, x: u64) -> Result<S::Response, S::Error> {
    let mut cx = Context::from_waker(Waker::noop());
    match service.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        Poll::Ready(Err(e)) => return Err(e),
        Poll::Pending => panic!("expected a ready service"),
    }
    poll_once(service.call(x))
}

fn tower_stack(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let _entered = runtime.enter();

    let mut bare = inner();

    let resilience_breaker = tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
        .build()
        .expect("a valid tower-resilience breaker");
    let mut peer = ServiceBuilder::new()
        .layer(tower::retry::RetryLayer::new(Attempts(3)))
        .layer(resilience_breaker)
        .layer(tower::timeout::TimeoutLayer::new(Duration::from_secs(1)))
        .service(inner());

    let policy = RetryPolicy::default();
    let breaker = CircuitBreaker::default();
    let mut steadfast = ServiceBuilder::new()
        .layer(RetryLayer::new(policy.clone()))
        .layer(CircuitBreakerLayer::new(breaker.clone()))
        .layer(TimeoutLayer::new(Duration::from_secs(1)))
        .service(inner());

    let bulkhead = Bulkhead::builder()
        .max_concurrent(10)
        .build()
        .expect("a valid bulkhead");
    let mut with_bulkhead = ServiceBuilder::new()
        .layer(RetryLayer::new(policy))
        .layer(CircuitBreakerLayer::new(breaker))
        .layer(TimeoutLayer::new(Duration::from_secs(1)))
        .layer(BulkheadLayer::new(bulkhead))
        .service(inner());

    let pipeline = Pipeline::builder()
        .retry(RetryPolicy::default())
        .circuit_breaker(CircuitBreaker::default())
        .timeout(Duration::from_secs(1))
        .build()
        .expect("a valid pipeline");
    let mut pipeline_layer = PipelineLayer::new(pipeline).layer(inner());

    let mut retry_alone = RetryLayer::new(RetryPolicy::default()).layer(inner());
    let mut breaker_alone = CircuitBreakerLayer::new(CircuitBreaker::default()).layer(inner());
    let mut timeout_alone = TimeoutLayer::new(Duration::from_secs(1)).layer(inner());
    let mut bulkhead_alone = BulkheadLayer::new(Bulkhead::default()).layer(inner());

    let mut group = c.benchmark_group("tower_stack");
    group.bench_function("bare", |b| {
        b.iter(|| ready_and_call(&mut bare, black_box(1)).unwrap_or(0))
    });
    group.bench_function("tower_retry_timeout_resilience_breaker", |b| {
        b.iter(|| ready_and_call(&mut peer, black_box(1)).unwrap_or(0))
    });
    group.bench_function("steadfast_layers", |b| {
        b.iter(|| ready_and_call(&mut steadfast, black_box(1)).unwrap_or(0))
    });
    group.bench_function("steadfast_layers_with_bulkhead", |b| {
        b.iter(|| ready_and_call(&mut with_bulkhead, black_box(1)).unwrap_or(0))
    });
    group.bench_function("steadfast_pipeline_layer", |b| {
        b.iter(|| ready_and_call(&mut pipeline_layer, black_box(1)).unwrap_or(0))
    });
    group.bench_function("steadfast_retry_layer", |b| {
        b.iter(|| ready_and_call(&mut retry_alone, black_box(1)).unwrap_or(0))
    });
    group.bench_function("steadfast_breaker_layer", |b| {
        b.iter(|| ready_and_call(&mut breaker_alone, black_box(1)).unwrap_or(0))
    });
    group.bench_function("steadfast_timeout_layer", |b| {
        b.iter(|| ready_and_call(&mut timeout_alone, black_box(1)).unwrap_or(0))
    });
    group.bench_function("steadfast_bulkhead_layer", |b| {
        b.iter(|| ready_and_call(&mut bulkhead_alone, black_box(1)).unwrap_or(0))
    });
    group.finish();
}

criterion_group!(benches, tower_stack);
criterion_main!(benches);
