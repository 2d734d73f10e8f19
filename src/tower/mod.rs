//! steadfast's strategies as [tower](https://docs.rs/tower) layers (feature
//! `tower`), to stack in a `tower::ServiceBuilder` around any
//! `tower::Service`: a hyper or reqwest-style client, an axum or tonic
//! service.
//!
//! | layer | service | error | what it does |
//! |---|---|---|---|
//! | [`RetryLayer`] | [`RetryService`] | [`RetryError<E>`](crate::retry::RetryError) | retries transient errors with a [`RetryPolicy`](crate::RetryPolicy), waiting for the inner service's `poll_ready` before each attempt |
//! | [`CircuitBreakerLayer`] | [`CircuitBreakerService`] | [`BreakerError<E>`](crate::breaker::BreakerError) | refuses calls while a [`CircuitBreaker`](crate::CircuitBreaker) is open, records each outcome |
//! | [`TimeoutLayer`] | [`TimeoutService`] | [`TimeoutError<E>`] | bounds each call |
//! | [`BulkheadLayer`] | [`BulkheadService`] | [`BulkheadError<E>`](crate::pipeline::BulkheadError) | at most N calls at once; a full bulkhead is `Pending` in `poll_ready` |
//! | `RateLimitLayer` (feature `rate-limit`) | `RateLimitService` | `RateLimitError<E>` | calls within a rate; a spent rate is `Pending` in `poll_ready` until the next permit |
//! | [`PipelineLayer`] | [`PipelineService`] | [`PipelineError<E>`](crate::pipeline::PipelineError) | a whole [`Pipeline`](crate::pipeline::Pipeline) (retry, breaker, timeouts, hedging, fallback, …) around each call; [`PipelineLayer::of`] makes a layer of any one strategy (a `Hedge`, a `Fallback`) |
//!
//! Each layer is a thin adapter over the strategy it is given: the layer
//! shares the strategy's state (a breaker, a bulkhead) with every service it
//! makes and with code that uses the strategy directly. Each service's error
//! wraps the inner service's error, so a stack's error nests, outermost
//! first (`RetryError<BreakerError<TimeoutError<E>>>` for the stack below),
//! and each wrapper implements [`Transient`](crate::retry::Transient) when
//! the inner error does, so a retry layer on top classifies a timeout, a
//! rejection or the service's own error.
//!
//! # Back-pressure
//!
//! tower asks a caller to wait for `poll_ready` before each `call`. The
//! [`BulkheadService`] takes its slot in `poll_ready` and holds it for the
//! next `call`: when every slot is taken, `poll_ready` is `Pending` and the
//! task is woken when one frees, so callers are held back rather than
//! queued without bound. Readiness that is not used is given back when the
//! service (or the response future) is dropped. The `RateLimitService`
//! (feature `rate-limit`) takes a permit of its rate limiter the same way,
//! and is `Pending` until the next permit when the rate is spent. The other
//! layers pass `poll_ready` through, and the [`RetryService`] and the
//! [`PipelineService`] ask it again before each attempt.
//!
//! # Examples
//!
//! ```
//! use std::io;
//! use std::time::Duration;
//! use steadfast::pipeline::Bulkhead;
//! use steadfast::tower::{BulkheadLayer, CircuitBreakerLayer, RetryLayer, TimeoutLayer};
//! use steadfast::{CircuitBreaker, RetryPolicy};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let policy = RetryPolicy::builder().initial_delay(Duration::from_millis(50)).build()?;
//! let breaker = CircuitBreaker::builder().failure_threshold(5).build()?;
//! let bulkhead = Bulkhead::builder().max_concurrent(16).build()?;
//!
//! let service = ServiceBuilder::new()
//!     .layer(RetryLayer::new(policy)) // outermost: retries what comes out below
//!     .layer(CircuitBreakerLayer::new(breaker.clone()))
//!     .layer(TimeoutLayer::new(Duration::from_secs(1)))
//!     .layer(BulkheadLayer::new(bulkhead))
//!     .service_fn(|name: String| async move { Ok::<_, io::Error>(format!("hello, {name}")) });
//!
//! let answer = service.oneshot("steadfast".to_string()).await?;
//! assert_eq!(answer, "hello, steadfast");
//! # Ok(())
//! # }
//! ```

mod breaker;
mod bulkhead;
mod error;
mod pipeline;
#[cfg(feature = "rate-limit")]
mod rate_limit;
mod retry;
mod timeout;

pub use breaker::{
    BreakerFuture, CircuitBreakerLayer, CircuitBreakerService, EveryError, FailurePredicate,
};
pub use bulkhead::{BulkheadFuture, BulkheadLayer, BulkheadService};
pub use error::TimeoutError;
pub use pipeline::{PipelineFuture, PipelineLayer, PipelineService};
#[cfg(feature = "rate-limit")]
#[cfg_attr(docsrs, doc(cfg(feature = "rate-limit")))]
pub use rate_limit::{RateLimitFuture, RateLimitLayer, RateLimitService};
pub use retry::{RetryFuture, RetryLayer, RetryService};
pub use timeout::{TimeoutFuture, TimeoutLayer, TimeoutService};
