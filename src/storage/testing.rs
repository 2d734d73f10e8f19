//! The types with which a test drives a [`MemoryStorage`]: its fault rules
//! and its record of the calls it received.
//!
//! [`MemoryStorage`] itself is a first-class storage, at
//! `steadfast::storage::MemoryStorage`; these types are the part of its API
//! that only tests use: [`StorageFaults`] (from [`MemoryStorage::faults`])
//! adds [`FaultRule`]s that fail, tear or slow down calls of one
//! [`Operation`], and [`MemoryStorage::calls`] returns the [`Call`]s
//! received. They are always compiled, so that a user's own tests can inject
//! faults without a feature; the conformance suite, which only tests run, is
//! behind the `testing` feature.
//!
//! # Examples
//!
//! ```
//! use steadfast::storage::testing::{Call, Operation};
//! use steadfast::storage::{CheckpointStorage, MemoryStorage};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> steadfast::storage::Result<()> {
//! let storage = MemoryStorage::new();
//! storage.faults().fail_nth(Operation::Put, 1);
//! assert!(storage.put("a", vec![1].into()).await.is_err());
//! storage.put("a", vec![1].into()).await?;
//! assert_eq!(storage.calls()[1], Call { operation: Operation::Put, key: "a".into() });
//! # Ok(())
//! # }
//! ```

#[cfg(doc)]
use super::MemoryStorage;

pub use super::memory::{Call, FaultRule, Operation, StorageFaults};
