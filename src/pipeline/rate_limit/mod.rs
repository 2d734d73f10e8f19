//! Rate limiting: at most `permits` calls per `period`, in bursts of at most
//! `burst`, for every caller together ([`RateLimiter`]) or per key
//! ([`KeyedRateLimiter`]).
//!
//! The limit is the generic cell rate algorithm (GCRA) of the [`governor`]
//! crate: one atomic word of state per limit, no lock, no background task.
//! Time is [`tokio::time`], through [`TokioClock`] (governor's clock trait
//! over tokio's instant), and waits are [`tokio::time::sleep_until`], never
//! governor's own real-time waits: a limiter follows paused and advanced
//! time in tests like every other timer of the crate.
//!
//! A call that finds no permit is refused at once with a [`RateLimited`]
//! that says how long until the next permit frees (`retry_after`, which a
//! retry policy honours through [`Transient`](crate::retry::Transient)), or,
//! in [`RateLimitMode::Wait`], waits for that permit if it frees within
//! `max_wait`. Waiting reserves nothing, so a dropped wait leaves the
//! limiter as it was. The configuration, [`RateLimiterConfig`], is validated
//! and (de)serializable like every other of the crate.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use steadfast::pipeline::{RateLimitError, RateLimiter};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), steadfast::ConfigError> {
//! let limiter = RateLimiter::builder().rate(100, Duration::from_secs(1)).burst(10).build()?;
//!
//! match limiter.call(|| async { Ok::<_, std::io::Error>("pong") }).await {
//!     Ok(answer) => assert_eq!(answer, "pong"),
//!     Err(RateLimitError::Rejected(limited)) => println!("retry in {:?}", limited.retry_after),
//!     Err(err) => println!("failed: {err}"),
//! }
//! # Ok(())
//! # }
//! ```

mod clock;
mod config;
mod error;
mod keyed;
mod limiter;

pub use clock::TokioClock;
pub use config::{RateLimitMode, RateLimiterConfig, RateLimiterConfigBuilder};
pub use error::{RateLimitError, RateLimited};
pub use keyed::KeyedRateLimiter;
pub use limiter::RateLimiter;
