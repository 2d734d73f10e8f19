//! [`DistributedCheckpoint`]: a sharded checkpoint saved by every rank of a
//! job and committed by rank 0's manifest; its constructor and accessors.
//!
//! The save protocol is described on [`DistributedCheckpoint`]; it lives in
//! `save.rs` (the protocol), `tally.rs` (the decision every rank takes from
//! the gathered reports) and `commit.rs` (rank 0's commit). Loading is in
//! `load.rs`; listing, deletion, retention and cleanup in `catalog.rs`; the
//! hashing of shards in `hashing.rs`.

use std::sync::Arc;

use crate::coordinator::Coordinator;
use crate::retry::RetryPolicy;
use crate::storage::CheckpointStorage;

use super::clock::{SystemClock, WallClock};
use super::config::CheckpointOptions;
use super::fencing::CommitFence;
#[cfg(doc)]
use super::{error::CheckpointError, options::SaveOptions};

/// Sharded checkpoints of a distributed job: each rank saves and loads its
/// own shard; rank 0 commits (or, under a [fence](Self::with_fence), the
/// rank the fence names).
///
/// Build one per rank, with that rank's [`Coordinator`] handle and a storage
/// every rank can reach. Every rank must call [`save`](Self::save) (or
/// [`save_stream`](Self::save_stream)) with the same name and options, in the
/// same order as its other collective operations. Loading, listing and
/// deleting need no coordination.
///
/// # The save protocol
///
/// 1. Each rank checks that no checkpoint of that name is committed (rank 0
///    also checks that the name does not nest inside, or around, another
///    checkpoint), then writes its shard through
///    [`put_stream`](crate::storage::CheckpointStorage::put_stream) under the
///    retry policy, computing the SHA-256 in the same pass. The shard key
///    carries a random token, so that no save ever overwrites another save's
///    shard. A chunked save ([`SaveOptions::chunking`]) first takes a save
///    lock in `chunks/locks/` (it waits while a chunk collection runs), lists
///    `chunks/` once, writes the chunks the storage lacks (each with `put`,
///    under retry), then its chunk index as its shard object; it checks that
///    its lock is still fresh before it reports, and holds the lock until the
///    commit outcome is known (see [`DistributedCheckpoint::collect_chunks`]).
/// 2. The ranks exchange what they wrote, or why they failed
///    ([`all_gather`](crate::coordinator::Coordinator::all_gather)). Every rank
///    decides from the same gathered reports, so every rank reaches the same
///    decision: if any rank failed, all roll back and return the same error,
///    naming the failed ranks.
/// 3. Rank 0 checks that every shard is in storage with its size, records
///    the commit sequence (one more than the highest committed in the
///    storage, found by listing the manifests; see
///    [`list`](DistributedCheckpoint::list) for the order it gives), and
///    writes the manifest with
///    [`put_if_absent`](crate::storage::CheckpointStorage::put_if_absent): the
///    commit point. An existing checkpoint of that name is never overwritten.
///    If checking the shards took longer than [`SaveOptions::timeout`], the
///    other ranks may have stopped waiting, so rank 0 does not write the
///    manifest and the save fails.
///    A write that fails may still have stored the manifest (the answer was
///    lost after the write landed), so rank 0 reads the key back before
///    calling the save failed: its own manifest there is a commit. If that
///    read fails too, the outcome is unknown: every rank returns
///    [`CheckpointError::SaveFailed`] saying so and keeps its shard, so that
///    the storage holds either a whole checkpoint or leftovers for
///    [`DistributedCheckpoint::cleanup_uncommitted`], never a manifest whose
///    shards were deleted.
/// 4. The ranks exchange the commit outcome, and all return it.
///
/// Under a [fence](Self::with_fence) (see
/// [`CommitFence`](super::CommitFence)), the rank the fence names plays rank
/// 0's part, stamps the manifest with its epoch and leadership, and
/// confirms the commit through the fence right after writing the manifest;
/// a fenced committer deletes its manifest and the save fails on every
/// rank. Only confirmed commits are listed and loaded.
///
/// A rank that does not arrive at an exchange within
/// [`SaveOptions::timeout`] is named by the others'
/// [`CheckpointError::Timeout`]; they roll back. Rolling back deletes each
/// rank's own shard, and rank 0 also deletes every object found by listing
/// the checkpoint's prefix (unless a manifest is there). Only the objects
/// directly under `NAME/` are the checkpoint's: keys further down belong to
/// other names (a save of `NAME/x` in progress, say) and are never deleted.
///
/// Should the final exchange fail (a rank vanished at that very moment, or
/// rank 0's commit took longer than the timeout), a rank that did not hear
/// the outcome reads the manifest from storage, and when the exchange failed
/// because a rank was late, keeps reading it for up to
/// [`SaveOptions::timeout`] more while it is absent: if it is there and lists
/// this rank's shard, the save succeeded. Otherwise the outcome is unknown to
/// that rank; it returns the timeout and leaves its shard in place (never
/// deleting a shard that a manifest may reference), for
/// [`DistributedCheckpoint::cleanup_uncommitted`] to remove should no
/// manifest ever appear. Only a commit slower than twice the timeout can
/// leave rank 0 returning success while such a rank returns the timeout; the
/// checkpoint is then whole, since no rank deleted anything.
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint, LoadOptions, SaveOptions, ShardData};
/// use steadfast::coordinator::InMemoryCoordinator;
/// use steadfast::retry::RetryPolicy;
/// use steadfast::storage::MemoryStorage;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), steadfast::checkpoint::CheckpointError> {
/// let storage = MemoryStorage::new();
/// let mut tasks = Vec::new();
/// for coordinator in InMemoryCoordinator::new(2) {
///     let ckpt = DistributedCheckpoint::new(
///         storage.clone(),
///         coordinator,
///         RetryPolicy::default(),
///         CheckpointOptions::default(),
///     );
///     tasks.push(tokio::spawn(async move {
///         let rank = ckpt.rank();
///         let shard = ShardData::new().with_entry(format!("weights.{rank}"), vec![rank as u8; 8]);
///         ckpt.save("step-100", &shard, SaveOptions::new().step(100)).await?;
///         ckpt.load("step-100", LoadOptions::default()).await
///     }));
/// }
/// for (rank, task) in tasks.into_iter().enumerate() {
///     assert_eq!(task.await.unwrap()?, vec![rank as u8; 8]);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct DistributedCheckpoint<S, C> {
    pub(super) storage: S,
    pub(super) coordinator: C,
    pub(super) retry: RetryPolicy,
    pub(super) options: CheckpointOptions,
    /// Where a commit reads the wall-clock time it records.
    pub(super) clock: Arc<dyn WallClock>,
    /// Who commits, and the confirmation of each commit; `None`: rank 0
    /// commits and a manifest alone is a commit.
    pub(super) fence: Option<Arc<dyn CommitFence>>,
    /// Saves by outcome and their durations, for the metrics.
    #[cfg(feature = "metrics")]
    pub(super) metrics: crate::metrics::CheckpointMetrics,
}

impl<S: CheckpointStorage, C: Coordinator> DistributedCheckpoint<S, C> {
    /// A checkpoint handle for the rank of `coordinator`, on `storage`,
    /// retrying storage operations under `retry`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// use steadfast::coordinator::InMemoryCoordinator;
    /// use steadfast::retry::RetryPolicy;
    /// use steadfast::storage::MemoryStorage;
    ///
    /// let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// assert_eq!(ckpt.world_size(), 1);
    /// ```
    pub fn new(storage: S, coordinator: C, retry: RetryPolicy, options: CheckpointOptions) -> Self {
        DistributedCheckpoint {
            storage,
            coordinator,
            retry,
            options,
            clock: Arc::new(SystemClock),
            fence: None,
            #[cfg(feature = "metrics")]
            metrics: crate::metrics::CheckpointMetrics::new(),
        }
    }

    /// Reads the commit time a manifest records from `clock` rather than
    /// from the host's clock ([`SystemClock`]). The time is for people and
    /// for retention by age; it never orders checkpoints.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint, ManualClock, SaveOptions, ShardData};
    /// use steadfast::coordinator::InMemoryCoordinator;
    /// use steadfast::retry::RetryPolicy;
    /// use steadfast::storage::MemoryStorage;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::checkpoint::CheckpointError> {
    /// let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    /// let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default())
    ///     .with_wall_clock(ManualClock::new(at));
    /// let info = ckpt.save("c", &ShardData::new(), SaveOptions::new()).await?;
    /// assert_eq!(info.created_at, at);
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_wall_clock(mut self, clock: impl WallClock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The clock a commit reads its time from.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// use std::time::UNIX_EPOCH;
    /// use steadfast::checkpoint::WallClock;
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// assert!(ckpt.wall_clock().now() > UNIX_EPOCH);
    /// ```
    pub fn wall_clock(&self) -> &Arc<dyn WallClock> {
        &self.clock
    }

    /// Commits under `fence`: the rank it names commits, each commit is
    /// confirmed through it, and the job's reads accept only confirmed
    /// commits. See [`fencing`](crate::checkpoint::CommitFence) for the
    /// protocol; every rank of the job must use a fence.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint, MembershipFence, SaveOptions, ShardData};
    /// use steadfast::coordinator::InMemoryCoordinator;
    /// use steadfast::retry::RetryPolicy;
    /// use steadfast::storage::MemoryStorage;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::checkpoint::CheckpointError> {
    /// let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank.clone(), RetryPolicy::default(), CheckpointOptions::default())
    ///     .with_fence(MembershipFence::new(rank));
    /// ckpt.save("step-1", &ShardData::new(), SaveOptions::new().step(1)).await?;
    /// let manifest = ckpt.manifest("step-1").await?;
    /// assert_eq!(manifest.commit.map(|stamp| stamp.epoch), Some(0));
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_fence(mut self, fence: impl CommitFence) -> Self {
        self.fence = Some(Arc::new(fence));
        self
    }

    /// The fence commits go through, if one is set.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// assert!(ckpt.fence().is_none());
    /// ```
    pub fn fence(&self) -> Option<&Arc<dyn CommitFence>> {
        self.fence.as_ref()
    }

    /// The rank that commits saves and runs the clean-ups: the one the
    /// fence names, rank 0 without a fence.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # let rank = InMemoryCoordinator::new(2).remove(1);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// assert_eq!(ckpt.committer(), 0);
    /// ```
    pub fn committer(&self) -> usize {
        self.fence.as_ref().map_or(0, |fence| fence.committer())
    }

    /// The storage.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// assert!(ckpt.storage().is_empty());
    /// ```
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// The coordinator.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::{Coordinator, InMemoryCoordinator};
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// assert_eq!(ckpt.coordinator().name(), "in-memory");
    /// ```
    pub fn coordinator(&self) -> &C {
        &self.coordinator
    }

    /// This rank's number.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// let rank = InMemoryCoordinator::new(3).remove(2);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// assert_eq!(ckpt.rank(), 2);
    /// ```
    pub fn rank(&self) -> usize {
        self.coordinator.rank()
    }

    /// How many ranks the job has.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// let rank = InMemoryCoordinator::new(3).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// assert_eq!(ckpt.world_size(), 3);
    /// ```
    pub fn world_size(&self) -> usize {
        self.coordinator.world_size()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::checkpoint::{LoadOptions, SaveOptions, ShardData};
    use crate::coordinator::InMemoryCoordinator;
    use crate::storage::MemoryStorage;

    #[test]
    fn handles_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<DistributedCheckpoint<MemoryStorage, InMemoryCoordinator>>();
        check::<
            DistributedCheckpoint<
                std::sync::Arc<dyn CheckpointStorage>,
                std::sync::Arc<dyn Coordinator>,
            >,
        >();
    }

    #[test]
    fn save_futures_are_send() {
        fn check<T: Send>(_: T) {}
        let rank = InMemoryCoordinator::new(1).remove(0);
        let ckpt = DistributedCheckpoint::new(
            MemoryStorage::new(),
            rank,
            RetryPolicy::default(),
            CheckpointOptions::default(),
        );
        let shard = ShardData::new();
        check(ckpt.save("a", &shard, SaveOptions::new()));
        check(ckpt.save_stream(
            "a",
            || async { Ok(std::io::Cursor::new(vec![1u8])) },
            SaveOptions::new(),
        ));
        check(ckpt.load("a", LoadOptions::new()));
        check(ckpt.load_entries("a", |_| true));
        check(ckpt.list());
        check(ckpt.retain_last(1));
        check(ckpt.cleanup_uncommitted(Duration::ZERO));
        check(ckpt.cleanup_on_start());
    }
}
