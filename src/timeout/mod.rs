//! Timeouts: bound any future, any barrier and any wait for a peer rank, and
//! keep per-operation deadlines that can be extended or cancelled.
//!
//! Two tools, for two kinds of deadline:
//!
//! - [`TimeoutHandler`] gives a call a fixed time budget.
//!   [`run`](TimeoutHandler::run) bounds any future with the semantics of
//!   [`tokio::time::timeout`], no allocation and no task, and creates its
//!   timer only once the future has to wait;
//!   [`barrier`](TimeoutHandler::barrier),
//!   [`all_gather`](TimeoutHandler::all_gather) and
//!   [`wait_for_rank`](TimeoutHandler::wait_for_rank) bound the meeting
//!   points of a distributed job, so that a rank that never arrives is
//!   reported by number instead of being waited for forever.
//! - [`TimeoutManager`] keeps deadlines for named operations that live a
//!   while: an upload, a shard write, a peer's heartbeat window. Each
//!   [`start`](TimeoutManager::start) returns an [`OperationGuard`] that runs
//!   the operation's future against its deadline; others can
//!   [`extend`](TimeoutManager::extend) the deadline while the operation
//!   makes progress, or [`cancel`](TimeoutManager::cancel) it.
//!
//! Errors are [`TimeoutError`]s. A passed deadline
//! ([`Elapsed`](TimeoutError::Elapsed), which says after how long) is
//! transient for [`retry`](crate::retry); a cancellation
//! ([`Cancelled`](TimeoutError::Cancelled)) is the caller's own decision and
//! is not. A coordinator failure keeps the coordinator's error, with the
//! ranks that did not arrive, as its source.
//!
//! All time comes from [`tokio::time`], so tests run on paused time.
//!
//! # Examples
//!
//! Bound a call, and a barrier where one rank never arrives:
//!
//! ```
//! use std::time::Duration;
//! use steadfast::coordinator::InMemoryCoordinator;
//! use steadfast::timeout::{TimeoutError, TimeoutHandler};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let timeouts = TimeoutHandler::default(); // default timeout: 10 minutes
//!
//! let slow = timeouts
//!     .run(Duration::from_secs(1), tokio::time::sleep(Duration::from_secs(60)))
//!     .await;
//! assert!(matches!(slow, Err(TimeoutError::Elapsed { .. })));
//!
//! let ranks = InMemoryCoordinator::new(3);
//! ranks[0].faults().set_absent(2, true);
//! let mut waits = Vec::new();
//! for rank in ranks.into_iter().take(2) {
//!     waits.push(tokio::spawn(async move {
//!         timeouts.barrier(&rank, Some(Duration::from_secs(5))).await
//!     }));
//! }
//! for wait in waits {
//!     let err = wait.await.unwrap().unwrap_err();
//!     assert_eq!(err.missing_ranks(), &[2]);
//! }
//! # }
//! ```
//!
//! Keep a deadline that moves while an operation makes progress, and cancel
//! what is left on shutdown:
//!
//! ```
//! use std::time::Duration;
//! use steadfast::timeout::{TimeoutError, TimeoutManager};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let manager = TimeoutManager::new();
//!
//! let upload = manager.start("shard-3".to_string(), Duration::from_secs(5));
//! let progress = manager.clone();
//! let uploading = tokio::spawn(async move {
//!     upload
//!         .run(async {
//!             for _ in 0..3 {
//!                 tokio::time::sleep(Duration::from_secs(3)).await;
//!                 // Each chunk that arrives buys three more seconds.
//!                 progress.extend("shard-3", Duration::from_secs(3)).unwrap();
//!             }
//!         })
//!         .await
//! });
//! assert!(uploading.await.unwrap().is_ok()); // 9 s, well past the first 5 s
//!
//! let stuck = manager.start("shard-4".to_string(), Duration::from_secs(60));
//! let shutdown = manager.clone();
//! tokio::spawn(async move { shutdown.cancel_all() });
//! let err = stuck.run(std::future::pending::<()>()).await.unwrap_err();
//! assert!(matches!(err, TimeoutError::Cancelled { .. }));
//! # }
//! ```

mod error;
mod handler;
pub(crate) use handler::{poll_timer, report_elapsed};
mod manager;

pub use error::TimeoutError;
pub use handler::{Timed, TimeoutConfig, TimeoutConfigBuilder, TimeoutHandler};
pub use manager::{OperationGuard, OperationId, TimeoutManager};
