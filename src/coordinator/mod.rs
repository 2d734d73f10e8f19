//! How the ranks of a distributed job meet: the [`Coordinator`] trait.
//!
//! A distributed job runs `world_size` ranks, numbered `0..world_size`. To
//! save a sharded checkpoint they must agree: every rank writes its shard,
//! they exchange what they wrote ([`Coordinator::all_gather`]), rank 0
//! commits, and they wait for each other ([`Coordinator::barrier`]). A rank
//! can also raise a named signal that others wait for
//! ([`Coordinator::signal`], [`Coordinator::wait_for_rank`]).
//!
//! Every waiting operation takes a timeout, and a timeout names the ranks that
//! did not arrive, so that a dead rank is reported rather than waited on
//! forever.
//!
//! Implementations:
//! - [`InMemoryCoordinator`]: `n` ranks as tasks of one process, for tests and
//!   examples, with fault injection (a rank that never arrives, a delayed
//!   rank, transient failures).
//! - [`FaultTolerant`]: wraps any coordinator, bounds each operation with a
//!   timeout and retries the failures that are safe to retry.
//! - `EtcdCoordinator` (feature `etcd`): ranks as separate processes on
//!   separate machines, meeting through an etcd cluster; each rank's lease is
//!   its liveness, and waits use etcd watches.
//!
//! The trait is object-safe: `Arc<dyn Coordinator>` works wherever a
//! coordinator is expected.

#[cfg(feature = "etcd")]
mod etcd;
mod fault_tolerant;
mod memory;

#[cfg(feature = "etcd")]
pub use etcd::{
    EtcdConfig, EtcdConfigBuilder, EtcdCoordinator, LivenessReporter, MemberEvent, MemberWatch,
};
pub use fault_tolerant::{FaultTolerant, FaultTolerantConfig, FaultTolerantConfigBuilder};
pub use memory::{CoordinatorFaults, InMemoryCoordinator};

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::retry::Transient;

/// The result type of coordinator operations.
pub type Result<T, E = CoordinatorError> = std::result::Result<T, E>;

/// A signal raised by a rank: its sequence number and payload.
///
/// Sequence numbers start at 1 for the first signal a rank raises under a key
/// and grow by one with each new signal under that key. A `seq` of 0 means the
/// rank has not signalled yet.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::Signal;
///
/// let s = Signal { seq: 1, payload: b"ready".to_vec() };
/// assert!(s.is_raised());
/// assert!(!Signal::default().is_raised());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signal {
    /// The sequence number of this signal (0: never signalled).
    pub seq: u64,
    /// The bytes sent with the signal.
    pub payload: Vec<u8>,
}

impl Signal {
    /// Whether the rank has raised this signal at least once.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::Signal;
    /// assert!(Signal { seq: 3, payload: vec![] }.is_raised());
    /// ```
    pub fn is_raised(&self) -> bool {
        self.seq > 0
    }
}

/// How the ranks of a distributed job meet.
///
/// Collective operations ([`barrier`](Coordinator::barrier) and
/// [`all_gather`](Coordinator::all_gather)) must be called by every rank in the
/// same order. Each takes a timeout; when it expires the operation fails with
/// [`CoordinatorError::Timeout`], which names the ranks that did not arrive,
/// and that round of the collective is broken for every rank.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::coordinator::{Coordinator, InMemoryCoordinator};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), steadfast::coordinator::CoordinatorError> {
/// let ranks = InMemoryCoordinator::new(2);
/// let mut tasks = Vec::new();
/// for rank in ranks {
///     tasks.push(tokio::spawn(async move {
///         let all = rank
///             .all_gather(vec![rank.rank() as u8], Duration::from_secs(5))
///             .await?;
///         assert_eq!(all, vec![vec![0], vec![1]]);
///         rank.barrier(Duration::from_secs(5)).await
///     }));
/// }
/// for t in tasks {
///     t.await.expect("rank task panicked")?;
/// }
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait Coordinator: Send + Sync + Debug + 'static {
    /// This rank's number, in `0..world_size()`.
    fn rank(&self) -> usize;

    /// How many ranks the job has.
    fn world_size(&self) -> usize;

    /// A short name of the implementation, for logs and errors
    /// (`"in-memory"`, `"etcd"`).
    fn name(&self) -> &str;

    /// Waits until every rank has reached this barrier, or fails after
    /// `timeout` naming the ranks that did not arrive.
    async fn barrier(&self, timeout: Duration) -> Result<()>;

    /// Sends `data` to every rank and returns what every rank sent, indexed by
    /// rank. Fails after `timeout` naming the ranks that did not send.
    ///
    /// Messages are meant to be small (descriptors, votes, digests).
    async fn all_gather(&self, data: Vec<u8>, timeout: Duration) -> Result<Vec<Vec<u8>>>;

    /// Raises this rank's signal `key` with `payload`, and returns its new
    /// sequence number. Raising it again replaces the payload.
    async fn signal(&self, key: &str, payload: Vec<u8>) -> Result<u64>;

    /// Waits until `rank` has raised signal `key` with a sequence number of at
    /// least `min_seq`, and returns that signal; fails after `timeout`.
    ///
    /// With `min_seq == 0` it returns at once with the rank's current signal
    /// (sequence 0 and an empty payload if it never signalled).
    async fn wait_for_rank(
        &self,
        rank: usize,
        key: &str,
        min_seq: u64,
        timeout: Duration,
    ) -> Result<Signal>;
}

macro_rules! forward_coordinator {
    ($ty:ty) => {
        #[async_trait]
        impl<T: Coordinator + ?Sized> Coordinator for $ty {
            fn rank(&self) -> usize {
                (**self).rank()
            }
            fn world_size(&self) -> usize {
                (**self).world_size()
            }
            fn name(&self) -> &str {
                (**self).name()
            }
            async fn barrier(&self, timeout: Duration) -> Result<()> {
                (**self).barrier(timeout).await
            }
            async fn all_gather(&self, data: Vec<u8>, timeout: Duration) -> Result<Vec<Vec<u8>>> {
                (**self).all_gather(data, timeout).await
            }
            async fn signal(&self, key: &str, payload: Vec<u8>) -> Result<u64> {
                (**self).signal(key, payload).await
            }
            async fn wait_for_rank(
                &self,
                rank: usize,
                key: &str,
                min_seq: u64,
                timeout: Duration,
            ) -> Result<Signal> {
                (**self).wait_for_rank(rank, key, min_seq, timeout).await
            }
        }
    };
}

forward_coordinator!(Arc<T>);
forward_coordinator!(Box<T>);

/// What went wrong in a coordinator operation.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::coordinator::CoordinatorError;
///
/// let err = CoordinatorError::Timeout {
///     operation: "barrier",
///     after: Duration::from_secs(5),
///     missing: vec![2, 3],
/// };
/// assert_eq!(err.missing_ranks(), &[2, 3]);
/// assert!(err.to_string().contains("[2, 3]"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoordinatorError {
    /// The operation did not complete in time; `missing` lists the ranks that
    /// did not arrive (empty when the operation waited on no specific rank).
    #[error("{operation} timed out after {after:?}; ranks that did not arrive: {missing:?}")]
    Timeout {
        /// The operation that timed out (`"barrier"`, `"all_gather"`, ...).
        operation: &'static str,
        /// How long it waited.
        after: Duration,
        /// The ranks that did not arrive.
        missing: Vec<usize>,
    },
    /// A round of a collective failed for another rank (it timed out there),
    /// so it cannot complete here either.
    #[error("{operation} round {round} is broken; ranks that did not arrive: {missing:?}")]
    Broken {
        /// The collective operation.
        operation: &'static str,
        /// The round (generation) of the collective.
        round: u64,
        /// The ranks that did not arrive in that round.
        missing: Vec<usize>,
    },
    /// A rank number outside `0..world_size`.
    #[error("rank {rank} is out of range for a world of {world_size} ranks")]
    InvalidRank {
        /// The rank asked for.
        rank: usize,
        /// The world size.
        world_size: usize,
    },
    /// An argument was refused (an empty signal key, say).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The coordination service could not be reached or answered with a
    /// transient failure; retrying may succeed.
    #[error("coordinator unavailable: {message}")]
    Unavailable {
        /// What the backend said.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A permanent failure of the backend.
    #[error("coordinator backend error: {message}")]
    Backend {
        /// What went wrong.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl CoordinatorError {
    /// The ranks that did not arrive, for a timeout or a broken round; empty
    /// otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::CoordinatorError;
    /// let err = CoordinatorError::InvalidRank { rank: 9, world_size: 4 };
    /// assert!(err.missing_ranks().is_empty());
    /// ```
    pub fn missing_ranks(&self) -> &[usize] {
        match self {
            CoordinatorError::Timeout { missing, .. }
            | CoordinatorError::Broken { missing, .. } => missing,
            _ => &[],
        }
    }

    /// A transient "unavailable" error with a message, for implementations
    /// and fault injection.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::CoordinatorError;
    /// use steadfast::retry::Transient;
    /// assert!(CoordinatorError::unavailable("connection reset").is_transient());
    /// ```
    pub fn unavailable(message: impl Into<String>) -> Self {
        CoordinatorError::Unavailable {
            message: message.into(),
            source: None,
        }
    }
}

/// Timeouts, broken rounds and unavailability are transient; invalid ranks,
/// invalid arguments and backend errors are not.
impl Transient for CoordinatorError {
    fn is_transient(&self) -> bool {
        matches!(
            self,
            CoordinatorError::Timeout { .. }
                | CoordinatorError::Broken { .. }
                | CoordinatorError::Unavailable { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinator_is_object_safe() {
        fn takes(_: &dyn Coordinator) {}
        let ranks = InMemoryCoordinator::new(1);
        takes(&ranks[0]);
        let shared: Arc<dyn Coordinator> = Arc::new(ranks[0].clone());
        takes(&shared);
        let boxed: Box<dyn Coordinator> = Box::new(ranks[0].clone());
        takes(&boxed);
    }
}
