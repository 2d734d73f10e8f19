//! The collection of chunks that no committed checkpoint refers to
//! ([`DistributedCheckpoint::collect_chunks`]), and its report.

use std::collections::HashSet;
use std::time::Duration;

use super::super::distributed::DistributedCheckpoint;
use super::super::error::{CheckpointError, Result};
use super::super::manifest::MANIFEST_FILE_NAME;
use super::super::TARGET;
use super::locks::{HeldLock, SeenLock};
use super::{chunk_digest_of, CHUNKS_PREFIX};
use crate::coordinator::Coordinator;
use crate::storage::{CheckpointStorage, StorageError};

/// How long a collection waits at most for saves in progress before it
/// gives way.
const MAX_GIVE_WAY: Duration = Duration::from_secs(5);

/// What a chunk collection did, and what it kept and why.
///
/// # Examples
///
/// ```
/// let report = steadfast::checkpoint::ChunkCollectionReport::default();
/// assert!(report.deleted.is_empty() && !report.is_deferred());
/// ```
#[derive(Debug, Default)]
#[non_exhaustive]
#[must_use = "a collection report lists the chunks that could not be deleted"]
pub struct ChunkCollectionReport {
    /// The committed checkpoints whose chunks were kept, by name.
    pub checkpoints: Vec<String>,
    /// How many stored chunks were kept because a committed checkpoint
    /// refers to them.
    pub kept: usize,
    /// The digests of the chunks deleted.
    pub deleted: Vec<String>,
    /// The stored bytes of the chunks deleted.
    pub bytes_deleted: u64,
    /// The locks of saves in progress that made the collection give way:
    /// when not empty, nothing was deleted.
    pub deferred_by: Vec<String>,
    /// Stale locks removed: leftovers of saves or collections whose process
    /// died.
    pub stale_locks_removed: Vec<String>,
    /// Why the collection stopped before its end, if it did: its own lock
    /// was not refreshed in time, or (in a collection run by retention,
    /// which reports rather than fails) it could not list the chunks or
    /// read a committed checkpoint's manifest or chunk index. What it had
    /// not deleted yet is kept.
    pub stopped: Option<String>,
    /// Objects that could not be deleted, with the error.
    pub failed: Vec<(String, StorageError)>,
}

impl ChunkCollectionReport {
    /// Whether the collection gave way to saves in progress and deleted
    /// nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut report = steadfast::checkpoint::ChunkCollectionReport::default();
    /// report.deferred_by.push("chunks/locks/save-0000000000000001".into());
    /// assert!(report.is_deferred());
    /// ```
    pub fn is_deferred(&self) -> bool {
        !self.deferred_by.is_empty()
    }
}

impl<S: CheckpointStorage, C: Coordinator> DistributedCheckpoint<S, C> {
    /// Deletes the chunks under `chunks/` that no committed checkpoint
    /// refers to, and reports what it deleted and what it kept and why.
    /// Retention ([`retain_last`](Self::retain_last) and the manager's) runs
    /// it after it has deleted a checkpoint; call it on demand on any one
    /// rank or process. A storage without chunks costs one listing.
    ///
    /// # The protocol
    ///
    /// A chunked save lists `chunks/` and does not write again the chunks it
    /// finds, so a chunk can be needed by a checkpoint that is not committed
    /// yet. The collection never deletes such a chunk:
    ///
    /// 1. It writes its lock `chunks/locks/collection-<token>`, then lists
    ///    the locks. If a fresh save lock is listed (a save between its
    ///    listing of `chunks/` and its commit), it removes its own lock and
    ///    tries again a little later; after a quarter of
    ///    [`chunk_lock_lifetime`](crate::checkpoint::CheckpointOptions::chunk_lock_lifetime)
    ///    (5 seconds at most) it gives up and reports the saves it gave way to
    ///    ([`ChunkCollectionReport::deferred_by`]), having deleted nothing.
    ///    A save writes its own lock before it lists the locks, and waits
    ///    while a fresh collection lock is listed: of the two, the second to
    ///    write its lock sees the first's (see the lock protocol in
    ///    `chunks/locks.rs`).
    /// 2. Holding its lock (refreshed every quarter of the lifetime), it
    ///    removes stale locks, lists `chunks/`, then reads every committed
    ///    manifest and the chunk index of every chunked shard: the chunks
    ///    they list are kept. A manifest or an index that cannot be read or
    ///    does not verify stops the collection before anything is deleted
    ///    ([`CheckpointError::CollectionRefused`]): the chunks it refers to
    ///    are unknown.
    /// 3. It deletes the other chunks one by one, checking before each that
    ///    its own lock is still fresh (else it stops:
    ///    [`ChunkCollectionReport::stopped`]), then removes its lock.
    ///
    /// It is safe to kill at any moment: it deletes only chunks no committed
    /// checkpoint refers to, so every visible checkpoint stays loadable; the
    /// next collection removes what it left, and its lock turns stale. Chunks
    /// written by saves that died before their commit are collected once
    /// their locks turn stale. Uncommitted chunk indexes (shard objects) are
    /// removed by [`cleanup_uncommitted`](Self::cleanup_uncommitted), like
    /// any uncommitted shard.
    ///
    /// # Errors
    ///
    /// - [`CheckpointError::Storage`] when listing or reading fails (nothing
    ///   was deleted if it failed before the deletes; objects that cannot be
    ///   deleted are in the report's `failed`);
    /// - [`CheckpointError::CollectionRefused`] when a committed checkpoint's
    ///   manifest or chunk index cannot be read or verified: repair or
    ///   delete that checkpoint.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// use steadfast::coordinator::InMemoryCoordinator;
    /// use steadfast::retry::RetryPolicy;
    /// use steadfast::storage::{CheckpointStorage, MemoryStorage};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// // A chunk no checkpoint refers to, left by a save that died.
    /// let digest = steadfast::checkpoint::DigestAlgorithm::Sha256.hex(b"orphan");
    /// ckpt.storage().put(&steadfast::checkpoint::chunk_key(&digest), b"orphan".to_vec().into()).await?;
    /// let report = ckpt.collect_chunks().await?;
    /// assert_eq!(report.deleted, [digest]);
    /// assert!(ckpt.storage().is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn collect_chunks(&self) -> Result<ChunkCollectionReport> {
        let mut report = ChunkCollectionReport::default();
        if self.list_chunk_prefix().await?.is_empty() {
            return Ok(report);
        }
        // Long enough for the ranks of a save that has just committed to
        // release their locks; a save that holds its lock for longer is
        // given way to, and the next collection collects.
        let wait = (self.options.chunk_lock_lifetime() / 4).min(MAX_GIVE_WAY);
        let (lock, stale) = match self
            .acquire_collection_lock(wait)
            .await
            .map_err(CheckpointError::Storage)?
        {
            Ok(held) => held,
            Err(saves) => {
                tracing::info!(target: TARGET, saves = ?saves, "chunk collection deferred: saves in progress");
                report.deferred_by = saves;
                return Ok(report);
            }
        };
        let collected = self
            .hold_lock(&lock, self.collect_holding(&lock, stale, &mut report))
            .await;
        self.release_lock(lock).await;
        collected?;
        tracing::info!(
            target: TARGET,
            checkpoints = report.checkpoints.len(),
            kept = report.kept,
            deleted = report.deleted.len(),
            bytes_deleted = report.bytes_deleted,
            stale_locks = report.stale_locks_removed.len(),
            failed = report.failed.len(),
            stopped = report.stopped.is_some(),
            "chunks collected"
        );
        Ok(report)
    }

    /// The collection that retention runs after deleting checkpoints: its
    /// failure is reported in [`ChunkCollectionReport::stopped`] rather than
    /// returned, since the retention itself has happened.
    pub(crate) async fn collect_chunks_after_retention(&self) -> ChunkCollectionReport {
        match self.collect_chunks().await {
            Ok(report) => report,
            Err(e) => {
                tracing::error!(target: TARGET, error = %e, "collecting chunks after retention failed");
                ChunkCollectionReport {
                    stopped: Some(e.to_string()),
                    ..ChunkCollectionReport::default()
                }
            }
        }
    }

    async fn list_chunk_prefix(&self) -> Result<Vec<crate::storage::ObjectMeta>> {
        let prefix = format!("{CHUNKS_PREFIX}/");
        self.retry
            .retry(|| self.storage.list(&prefix))
            .await
            .map_err(|e| CheckpointError::Storage(e.into_inner()))
    }

    async fn collect_holding(
        &self,
        lock: &HeldLock,
        stale: Vec<SeenLock>,
        report: &mut ChunkCollectionReport,
    ) -> Result<()> {
        for seen in stale {
            match self.retry.retry(|| self.storage.delete(&seen.key)).await {
                Ok(()) => {
                    tracing::info!(target: TARGET, lock = %seen.key, kind = ?seen.kind, "stale chunk lock removed");
                    report.stale_locks_removed.push(seen.key);
                }
                Err(e) if matches!(e.inner(), StorageError::NotFound { .. }) => {}
                Err(e) => report.failed.push((seen.key, e.into_inner())),
            }
        }
        // Chunks first, manifests second: a chunk written after this
        // listing is not a candidate, whatever refers to it.
        let stored: Vec<(String, u64)> = self
            .list_chunk_prefix()
            .await?
            .into_iter()
            .filter_map(|o| chunk_digest_of(&o.key).map(|d| (d.to_string(), o.size)))
            .collect();
        let referenced = self.referenced_chunks(report).await?;
        for (digest, size) in stored {
            if referenced.contains(&digest) {
                report.kept += 1;
                continue;
            }
            if let Err(reason) = self.ensure_fresh(lock) {
                tracing::warn!(target: TARGET, reason = %reason, "chunk collection stopped");
                report.stopped = Some(reason);
                break;
            }
            let key = super::chunk_key(&digest);
            match self.retry.retry(|| self.storage.delete(&key)).await {
                Ok(()) => {
                    report.bytes_deleted += size;
                    report.deleted.push(digest);
                }
                Err(e) if matches!(e.inner(), StorageError::NotFound { .. }) => {}
                Err(e) => report.failed.push((key, e.into_inner())),
            }
        }
        Ok(())
    }

    /// The digests of every chunk a committed checkpoint refers to; records
    /// the checkpoints in the report.
    async fn referenced_chunks(
        &self,
        report: &mut ChunkCollectionReport,
    ) -> Result<HashSet<String>> {
        let objects = self
            .retry
            .retry(|| self.storage.list(""))
            .await
            .map_err(|e| CheckpointError::Storage(e.into_inner()))?;
        let suffix = format!("/{MANIFEST_FILE_NAME}");
        let names: Vec<&str> = objects
            .iter()
            .filter_map(|o| o.key.strip_suffix(&suffix))
            .filter(|name| name.split('/').next() != Some(CHUNKS_PREFIX))
            .collect();
        let mut referenced = HashSet::new();
        for name in names {
            let refused = |what: String, e: &CheckpointError| CheckpointError::CollectionRefused {
                reason: format!(
                    "{what} of checkpoint {name:?} cannot be read ({e}); the chunks it refers to \
                     are unknown, so none was deleted: repair or delete that checkpoint"
                ),
            };
            let manifest = match self.stored_manifest(name).await {
                Ok(manifest) => manifest,
                // Deleted since the listing.
                Err(CheckpointError::NotFound { .. }) => continue,
                Err(e) => return Err(refused("the manifest".into(), &e)),
            };
            for shard in &manifest.shards {
                let Some(summary) = &shard.chunks else {
                    continue;
                };
                let index = self
                    .chunk_index(name, shard, summary)
                    .await
                    .map_err(|e| refused(format!("the chunk index {:?}", shard.key), &e))?;
                referenced.extend(index.chunks.into_iter().map(|c| c.digest));
            }
            report.checkpoints.push(name.to_string());
        }
        Ok(referenced)
    }
}
