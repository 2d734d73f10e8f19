//! [`CheckpointManagerBuilder`]: sets up a
//! [`CheckpointManager`] over a [`DistributedCheckpoint`], key by key or
//! from a [`CheckpointManagerConfig`], and validates the whole when built.

use std::time::Duration;

use crate::checkpoint::{Chunking, Compression, DigestAlgorithm, DistributedCheckpoint};
use crate::coordinator::Coordinator;
use crate::error::ConfigError;
use crate::storage::CheckpointStorage;

use super::config::{CheckpointManagerConfig, OverlapPolicy};
use super::integrity::{IntegrityCheck, IntegrityChecks};
use super::manager::CheckpointManager;
use super::retention::RetentionPolicy;

/// Builds a [`CheckpointManager`]; from
/// [`CheckpointManager::builder`].
///
/// # Default
///
/// The defaults of [`CheckpointManagerConfig`]:
///
/// - no interval and no step schedule (saves only when asked);
/// - retention keeps everything;
/// - no compression;
/// - no chunking (each rank's shard is one object), chunks addressed by
///   SHA-256 when chunking;
/// - prefix `"checkpoints"`;
/// - [`OverlapPolicy::Skip`];
/// - save timeout 5 minutes (also the bound, times three, of a rank's wait
///   for rank 0's decision);
/// - no load timeout;
/// - no integrity checks beyond the sizes and digests every load checks.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::checkpoint::{CheckpointOptions, Compression, DistributedCheckpoint};
/// use steadfast::coordinator::InMemoryCoordinator;
/// use steadfast::manager::{CheckpointManager, NonEmpty, OverlapPolicy, RetentionPolicy};
/// use steadfast::retry::RetryPolicy;
/// use steadfast::storage::MemoryStorage;
///
/// let rank = InMemoryCoordinator::new(1).remove(0);
/// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
/// let manager = CheckpointManager::builder(ckpt)
///     .prefix("run-1")
///     .interval(Duration::from_secs(300))
///     .every_n_steps(1000)
///     .compression(Compression::Zstd { level: 1 })
///     .retention(RetentionPolicy::keep_all().keep_last(5))
///     .overlap(OverlapPolicy::Queue)
///     .load_timeout(Duration::from_secs(600))
///     .integrity_check(NonEmpty)
///     .build()?;
/// assert_eq!(manager.config().every_n_steps, Some(1000));
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[must_use]
pub struct CheckpointManagerBuilder<S, C> {
    ckpt: DistributedCheckpoint<S, C>,
    config: CheckpointManagerConfig,
    checks: IntegrityChecks,
}

impl<S: CheckpointStorage, C: Coordinator> CheckpointManagerBuilder<S, C> {
    pub(crate) fn new(ckpt: DistributedCheckpoint<S, C>) -> Self {
        CheckpointManagerBuilder {
            ckpt,
            config: CheckpointManagerConfig::default(),
            checks: IntegrityChecks::new(),
        }
    }

    /// Takes every key of `config`: interval, steps, retention,
    /// compression, chunking and its digest, prefix, overlap, save and load
    /// timeouts. The storage
    /// key is not the builder's: open it with
    /// [`StorageLocation::open`](super::StorageLocation::open) and build the
    /// [`DistributedCheckpoint`] on it. Integrity checks added to the
    /// builder are kept.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// use std::time::Duration;
    /// use steadfast::manager::{CheckpointManager, CheckpointManagerConfig};
    ///
    /// let mut config = CheckpointManagerConfig::default();
    /// config.interval = Some(Duration::from_secs(60));
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// # let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// let manager = CheckpointManager::builder(ckpt).config(&config).build()?;
    /// assert_eq!(manager.config(), &config);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn config(mut self, config: &CheckpointManagerConfig) -> Self {
        self.config = config.clone();
        self
    }

    /// Where the manager's checkpoints are named: `{prefix}/ckpt-...`.
    /// Checkpoints of other prefixes in the same storage are not the
    /// manager's: it never lists, restores or deletes them.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # use steadfast::manager::CheckpointManager;
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// # let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// assert!(CheckpointManager::builder(ckpt).prefix("../up").build().is_err());
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.prefix = prefix.into();
        self
    }

    /// Saves every `interval` on the schedule's task
    /// ([`start`](CheckpointManager::start), called once per manager on
    /// every rank). Zero is refused by [`build`](Self::build).
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # use steadfast::manager::CheckpointManager;
    /// use std::time::Duration;
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// # let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// let err = CheckpointManager::builder(ckpt).interval(Duration::ZERO).build().unwrap_err();
    /// assert_eq!(err.field(), "checkpoint_interval");
    /// ```
    pub fn interval(mut self, interval: Duration) -> Self {
        self.config.interval = Some(interval);
        self
    }

    /// Saves on every `n`-th call of [`step`](CheckpointManager::step).
    /// Zero is refused by [`build`](Self::build).
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # use steadfast::manager::CheckpointManager;
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// # let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// assert!(CheckpointManager::builder(ckpt).every_n_steps(0).build().is_err());
    /// ```
    pub fn every_n_steps(mut self, n: u64) -> Self {
        self.config.every_n_steps = Some(n);
        self
    }

    /// How shards are compressed.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # use steadfast::manager::CheckpointManager;
    /// use steadfast::checkpoint::Compression;
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// # let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// let manager = CheckpointManager::builder(ckpt).compression(Compression::Zstd { level: 3 }).build()?;
    /// assert_eq!(manager.config().compression, Compression::Zstd { level: 3 });
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn compression(mut self, compression: Compression) -> Self {
        self.config.compression = compression;
        self
    }

    /// Saves each rank's shard as content-defined chunks
    /// ([`SaveOptions::chunking`](crate::checkpoint::SaveOptions::chunking)):
    /// a save writes only the chunks the storage lacks, and a state whose
    /// [`revision`](super::Stateful::revision) is the one it had at the last
    /// committed save is stored by reference to that checkpoint's chunks,
    /// without being snapshotted. Should such a save fail because the
    /// earlier checkpoint or its chunks are gone, it is made again at once
    /// with every state snapshotted.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # use steadfast::manager::{CheckpointManager, JsonState};
    /// use steadfast::checkpoint::Chunking;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// # let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// let manager = CheckpointManager::builder(ckpt).chunking(Chunking::default()).build()?;
    /// manager.register_state("s", JsonState::new(1))?;
    /// let info = manager.create_checkpoint(None).await?.wait().await?;
    /// let manifest = manager.checkpoint().manifest(&info.name).await?;
    /// assert!(manifest.shards[0].chunks.is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub fn chunking(mut self, chunking: Chunking) -> Self {
        self.config.chunking = Some(chunking);
        self
    }

    /// The digest that addresses chunks when saving in chunks
    /// ([`chunking`](Self::chunking)); SHA-256 by default.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # use steadfast::manager::CheckpointManager;
    /// use steadfast::checkpoint::{Chunking, DigestAlgorithm};
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// # let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// let manager = CheckpointManager::builder(ckpt)
    ///     .chunking(Chunking::default())
    ///     .digest(DigestAlgorithm::Blake3)
    ///     .build()?;
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn digest(mut self, digest: DigestAlgorithm) -> Self {
        self.config.digest = digest;
        self
    }

    /// Which checkpoints rank 0 keeps after each commit (and on
    /// [`apply_retention`](CheckpointManager::apply_retention)).
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # use steadfast::manager::CheckpointManager;
    /// use steadfast::manager::RetentionPolicy;
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// # let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// assert!(CheckpointManager::builder(ckpt).retention(RetentionPolicy::keep_all().keep_last(0)).build().is_err());
    /// ```
    pub fn retention(mut self, retention: RetentionPolicy) -> Self {
        self.config.retention = retention;
        self
    }

    /// What happens to a save due while one is in flight.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # use steadfast::manager::CheckpointManager;
    /// use steadfast::manager::OverlapPolicy;
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// # let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// let manager = CheckpointManager::builder(ckpt).overlap(OverlapPolicy::Wait).build()?;
    /// assert_eq!(manager.config().overlap, OverlapPolicy::Wait);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn overlap(mut self, overlap: OverlapPolicy) -> Self {
        self.config.overlap = overlap;
        self
    }

    /// The timeout of each save ([`SaveOptions::timeout`](crate::checkpoint::SaveOptions::timeout)),
    /// which also bounds how long a rank waits for rank 0's decision.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # use steadfast::manager::CheckpointManager;
    /// use std::time::Duration;
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// # let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// assert!(CheckpointManager::builder(ckpt).save_timeout(Duration::ZERO).build().is_err());
    /// ```
    pub fn save_timeout(mut self, timeout: Duration) -> Self {
        self.config.save_timeout = timeout;
        self
    }

    /// Bounds each restore's load (reading and verifying one
    /// checkpoint's states); a load that takes longer fails with
    /// [`ManagerError::LoadTimeout`](super::ManagerError::LoadTimeout).
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # use steadfast::manager::CheckpointManager;
    /// use std::time::Duration;
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// # let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// let manager = CheckpointManager::builder(ckpt).load_timeout(Duration::from_secs(30)).build()?;
    /// assert_eq!(manager.config().load_timeout, Some(Duration::from_secs(30)));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn load_timeout(mut self, timeout: Duration) -> Self {
        self.config.load_timeout = Some(timeout);
        self
    }

    /// Adds a check run on each state's bytes before a restore is
    /// accepted; checks run in the order added.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # use steadfast::manager::CheckpointManager;
    /// use steadfast::manager::NonEmpty;
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// # let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// let manager = CheckpointManager::builder(ckpt).integrity_check(NonEmpty).build()?;
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn integrity_check(mut self, check: impl IntegrityCheck) -> Self {
        self.checks.push(check);
        self
    }

    /// Validates the settings and builds the manager.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the key: a zero interval, step count, save
    /// or load timeout, an invalid prefix, or a retention rule with a zero
    /// count, age, step or period.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # use steadfast::manager::CheckpointManager;
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// # let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// let err = CheckpointManager::builder(ckpt).every_n_steps(0).build().unwrap_err();
    /// assert_eq!(err.field(), "checkpoint_every_n_steps");
    /// ```
    pub fn build(self) -> Result<CheckpointManager<S, C>, ConfigError> {
        // One set of rules for a config built here, by its own builder or
        // read from a file.
        self.config.validate()?;
        Ok(CheckpointManager::from_parts(
            self.ckpt,
            self.config,
            self.checks,
        ))
    }
}
