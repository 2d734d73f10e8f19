//! The strategies a resilience pipeline composes around a call.
//!
//! A resilience pipeline wraps an operation in strategies, each of which
//! decides whether, when and how often the operation runs. This module holds
//! those strategies; for now the [`Bulkhead`]:
//!
//! - [`Bulkhead`] limits how many calls run at once: at most
//!   `max_concurrent` hold a slot, at most `max_queued` wait for one (each
//!   for at most `queue_timeout`), and the rest are refused at once with a
//!   [`BulkheadRejected`] that says why (`Full`, `QueueTimeout`). It is
//!   cancel-safe: a dropped waiter gives its queue place back, a dropped
//!   call frees its slot. With a free slot, admission is one
//!   compare-and-swap on a tokio semaphore.
//!
//! Each strategy is a plain value with a validated, `serde`
//! (de)serializable config ([`BulkheadConfig`]), is cheap to clone (clones
//! share their state), takes time only from [`tokio::time`], and wraps the
//! operation's own error in its error type ([`BulkheadError`]) with
//! `Display` and [`source`](std::error::Error::source).
//!
//! # Examples
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

mod bulkhead;
mod config;
mod error;
mod hedge;

pub use bulkhead::{Bulkhead, BulkheadPermit, BulkheadSnapshot};
pub use config::{BulkheadConfig, BulkheadConfigBuilder};
pub use error::{BulkheadError, BulkheadRejected};
pub use hedge::{Hedge, HedgeConfig, HedgeConfigBuilder, HedgeSnapshot};
