//! Retries with exponential backoff, a delay cap, jitter and a time budget.
//!
//! A [`RetryPolicy`] says how an operation is retried. Running an operation
//! under it gives a [`Retry`] future, either from the policy
//! (`policy.retry(|| fetch())`) or from the operation itself through the
//! [`Retryable`] extension trait (`(|| fetch()).retry(&policy)`).
//!
//! Which errors are retried is decided by the [`Transient`] trait, which this
//! crate implements for [`std::io::Error`] (by kind) and for its own errors;
//! [`Retry::when`] takes a predicate instead, answering a `bool` or a
//! [`Verdict`]. An error may ask for a specific delay (`Retry-After`)
//! through [`Transient::retry_after`] or [`Verdict::RetryAfter`]. Values
//! can be retried too ([`Retry::when_ok`]: an HTTP 503 returned as a
//! response). The error type need not implement `Display` or `Debug`.
//!
//! A [`RetryBudget`] shared across calls bounds their retries together to a
//! share of the calls, so that a failing dependency is not hit with a retry
//! storm ([`Retry::budget`]).
//!
//! The delays form a [`Backoff`], an `Iterator<Item = Duration>` that can be
//! inspected: `initial_delay × factor^n`, capped at `max_delay`, randomised by
//! a [`Jitter`]. When the retries run out, the caller gets its own error back
//! in a [`RetryError`] that says how many attempts ran and why it stopped.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use steadfast::retry::{Jitter, RetryPolicy, Retryable};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let policy = RetryPolicy::builder()
//!     .max_retries(4)
//!     .initial_delay(Duration::from_millis(200))
//!     .max_delay(Duration::from_secs(5))
//!     .jitter(Jitter::Full)
//!     .max_elapsed(Duration::from_secs(30))
//!     .build()?;
//!
//! let mut attempts = 0;
//! let value = (|| {
//!     attempts += 1;
//!     let n = attempts;
//!     async move {
//!         if n < 3 {
//!             Err(std::io::Error::from(std::io::ErrorKind::TimedOut))
//!         } else {
//!             Ok(n)
//!         }
//!     }
//! })
//! .retry(&policy)
//! .await?;
//! assert_eq!(value, 3);
//! # Ok(())
//! # }
//! ```

mod backoff;
mod budget;
mod classify;
mod error;
mod future;
mod policy;
pub(crate) mod spans;
mod verdict;

pub use backoff::{Backoff, Jitter};
pub use budget::{Budget, NoBudget, RetryBudget, RetryBudgetConfig, RetryBudgetConfigBuilder};
pub use classify::{is_transient_io_kind, Transient};
pub use error::{GiveUp, RetryError};
pub use future::{NoHook, OnRetry, Retry, Retryable};
pub use policy::{RetryPolicy, RetryPolicyBuilder};
pub use verdict::{AcceptOk, ByTransient, Classifier, OkClassifier, Verdict, When, WhenOk};
