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
//!   rank, transient failures; a member killed, expired or cut off by a
//!   partition: [`CoordinatorFaults`]); it implements [`Membership`] too,
//!   with standbys ([`InMemoryCoordinator::add_standby`]).
//! - [`FaultTolerant`]: wraps any coordinator, bounds each operation with a
//!   timeout and retries the failures that are safe to retry (for
//!   [`Membership`], the reads only).
//! - `EtcdCoordinator` (feature `etcd`): ranks as separate processes on
//!   separate machines, meeting through an etcd cluster; each rank's lease is
//!   its liveness, and waits use etcd watches.
//!
//! The trait is object-safe: `Arc<dyn Coordinator>` works wherever a
//! coordinator is expected.
//!
//! What every implementation shares, so that they do not drift apart:
//! - [`validate_signal_key`], the one rule for signal keys;
//! - [`deadline_after`], the deadline of a waiting operation, fixed when the
//!   call starts;
//! - [`bound_call`], the one way to bound a coordinator call from outside
//!   (its docs say when to call a coordinator directly, through
//!   [`TimeoutHandler`](crate::timeout::TimeoutHandler) or through
//!   [`FaultTolerant`]);
//! - [`MemberEvent`], how a coordinator that tracks liveness reports joins
//!   and departures (a health monitor follows them:
//!   `HealthMonitor::follow_members`);
//! - the conformance suite, `conformance` (feature `testing`), which checks
//!   the trait's contract on an implementation (yours too) and runs on
//!   every coordinator of this crate, through `Arc<dyn Coordinator>` too.

#[cfg(any(test, feature = "testing"))]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod conformance;
mod deadline;
mod error;
#[cfg(feature = "etcd")]
mod etcd;
mod fault_tolerant;
mod members;
mod membership;
mod memory;
mod signal;

pub use deadline::{bound_call, deadline_after};
pub use error::{Abandoned, CoordinatorError, Result};
#[cfg(feature = "etcd")]
pub use etcd::{EtcdConfig, EtcdConfigBuilder, EtcdCoordinator, MemberWatch};
pub use fault_tolerant::{FaultTolerant, FaultTolerantConfig, FaultTolerantConfigBuilder};
pub use members::MemberEvent;
pub use membership::{
    validate_member_id, validate_record_key, validate_record_value, CasOutcome, EpochOutcome,
    EpochRecord, Leadership, LiveMember, Membership, MembershipEvent, MembershipWatch, Role,
    Versioned, MAX_EPOCH_RANKS, MAX_RECORD_SIZE,
};
pub use memory::{CoordinatorFaults, InMemoryCoordinator};
pub use signal::{validate_signal_key, Signal};

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

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
