//! A resilience pipeline: strategies composed once around a call, and the
//! strategies themselves.
//!
//! A [`Pipeline`] wraps an operation in strategies, each of which decides
//! whether, when and how often the rest runs. It is built once, outermost
//! first (`fallback → total timeout → retry → circuit breaker → attempt
//! timeout → bulkhead`, say), cloned freely, and run with
//! [`execute`](Pipeline::execute). The composition is static: a pipeline
//! costs what the same strategies nested by hand cost, and a strategy it
//! does not hold costs nothing. Every failure is one [`PipelineError`] that
//! says which strategy stopped the call ([`StoppedBy`]) and wraps the
//! operation's own error.
//!
//! The strategies:
//!
//! - [`Timeout`] bounds the rest of the pipeline: a whole call when placed
//!   outside a retry, one attempt inside.
//! - [`RetryStrategy`] retries under a [`RetryPolicy`](crate::retry::RetryPolicy),
//!   on errors (by [`Transient`](crate::retry::Transient) or a predicate)
//!   and on `Ok` values a check rejects (an HTTP 503 returned as a value),
//!   with a `Retry-After` from either.
//! - A [`CircuitBreaker`](crate::breaker::CircuitBreaker) counts each call
//!   that reaches it; refusals of strategies further in are not failures.
//! - [`Bulkhead`] limits how many calls run at once: at most
//!   `max_concurrent` hold a slot, at most `max_queued` wait for one (each
//!   for at most `queue_timeout`), and the rest are refused at once with a
//!   [`BulkheadRejected`] that says why (`Full`, `QueueTimeout`). It is
//!   cancel-safe: a dropped waiter gives its queue place back, a dropped
//!   call frees its slot. With a free slot, admission is one
//!   compare-and-swap on a tokio semaphore.
//! - [`Fallback`] answers when the rest fails: a value, or an async closure
//!   that receives the error; it never hides a panic.
//! - Any type implementing [`Strategy`].
//!
//! Each strategy is a plain value, usable on its own too, cheap to clone
//! (clones share their state), takes time only from [`tokio::time`], and is
//! cancel-safe: a call dropped at any `.await` gives back what it held.
//!
//! # Examples
//!
//! A pipeline that sheds load, bounds attempts and falls back:
//!
//! ```
//! use std::io;
//! use std::time::Duration;
//! use steadfast::pipeline::{Bulkhead, Fallback, Pipeline, StoppedBy};
//! use steadfast::retry::RetryPolicy;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), steadfast::ConfigError> {
//! let pipeline = Pipeline::builder()
//!     .name("search")
//!     .retry(RetryPolicy::builder().max_retries(2).build()?)
//!     .bulkhead(Bulkhead::builder().max_concurrent(16).build()?)
//!     .timeout(Duration::from_millis(300))
//!     .build()?;
//!
//! let slow = pipeline
//!     .execute(|| async {
//!         tokio::time::sleep(Duration::from_secs(1)).await;
//!         Ok::<_, io::Error>("hits")
//!     })
//!     .await
//!     .unwrap_err();
//! assert_eq!(slow.stopped_by(), StoppedBy::Retry);
//! assert_eq!(slow.attempts(), 3);
//!
//! // The same pipeline, serving an empty answer instead of an error.
//! let lenient = Pipeline::builder()
//!     .fallback(Fallback::value("no hits"))
//!     .timeout(Duration::from_millis(300))
//!     .build()?;
//! let answer = lenient
//!     .execute(|| async {
//!         tokio::time::sleep(Duration::from_secs(1)).await;
//!         Ok::<_, io::Error>("hits")
//!     })
//!     .await
//!     .unwrap();
//! assert_eq!(answer, "no hits");
//! # Ok(())
//! # }
//! ```
//!
//! A strategy on its own:
//!
//! ```
//! use std::time::Duration;
//! use steadfast::pipeline::{Bulkhead, BulkheadError};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), steadfast::ConfigError> {
//! let bulkhead = Bulkhead::builder()
//!     .max_concurrent(4)
//!     .max_queued(16)
//!     .queue_timeout(Duration::from_millis(250))
//!     .build()?;
//!
//! match bulkhead.call(|| async { Ok::<_, std::io::Error>("pong") }).await {
//!     Ok(answer) => assert_eq!(answer, "pong"),
//!     Err(BulkheadError::Rejected(rejected)) => println!("shed: {rejected}"),
//!     Err(err) => println!("failed: {err}"),
//! }
//! # Ok(())
//! # }
//! ```

mod adapters;
mod bulkhead;
mod compose;
mod config;
mod error;
mod fallback;
mod hedge;
#[cfg(feature = "rate-limit")]
mod rate_limit;
mod retry;
mod strategy;
mod timeout;

#[cfg(feature = "tower")]
pub(crate) use bulkhead::SlotWait;
pub use bulkhead::{Bulkhead, BulkheadPermit, BulkheadSnapshot, OwnedBulkheadPermit};
pub use compose::{Pipeline, PipelineBuilder};
pub use config::{BulkheadConfig, BulkheadConfigBuilder};
pub use error::{BulkheadError, BulkheadRejected, PipelineError, StoppedBy};
pub use fallback::{AnyError, Fallback, FallbackFilter, FallbackValue, FallbackWith};
pub use retry::RetryStrategy;
pub use strategy::{Append, Innermost, Next, Strategy, Then};
pub use timeout::Timeout;

#[cfg(feature = "rate-limit")]
pub use rate_limit::{
    KeyedRateLimiter, RateLimitError, RateLimitMode, RateLimited, RateLimiter, RateLimiterConfig,
    RateLimiterConfigBuilder, TokioClock,
};

pub use hedge::{Hedge, HedgeConfig, HedgeConfigBuilder, HedgeSnapshot};
