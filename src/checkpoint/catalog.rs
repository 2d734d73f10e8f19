//! The catalog of committed checkpoints: listing, the newest, deletion,
//! retention, and the cleanup of what saves that never committed left
//! behind.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::coordinator::Coordinator;
use crate::storage::{CheckpointStorage, ObjectMeta};

#[cfg(doc)]
use super::config::CheckpointOptions;
use super::distributed::DistributedCheckpoint;
use super::error::{CheckpointError, Result};
use super::load::{confirms, fence_failure, ManifestRead, MANIFEST_READS};
use super::manifest::{
    is_shard_file_name, manifest_key, validate_name, CheckpointInfo, MANIFEST_FILE_NAME,
};
use super::rollback::{
    delete_object, remove_checkpoint, CleanupReport, RetentionReport, RollbackReport,
};
use super::TARGET;

/// What [`DistributedCheckpoint::list_committed`] does with a manifest that
/// never read as a valid one but read differently each time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unusable {
    /// Skip it, as a checkpoint that cannot be used now.
    Skip,
    /// Fail the listing: the caller needs every committed checkpoint (the
    /// commit sequence must exceed every stored one).
    Refuse,
}

/// How many manifests [`DistributedCheckpoint::list`] reads at once.
const MANIFEST_READS_AT_ONCE: usize = 16;

/// Where a checkpoint stands in the order of commits, oldest lowest: first
/// the checkpoints without a sequence (committed before sequences existed),
/// by step, then commit time; then every checkpoint with one, by sequence,
/// then step (a checkpoint without one lowest). The name breaks the
/// remaining ties, so that the order is total and the same for every caller
/// (two saves of different names committed at the same moment may share a
/// sequence).
fn commit_order(info: &CheckpointInfo) -> (bool, u64, Option<u64>, SystemTime, &str) {
    match info.sequence {
        Some(sequence) => (
            true,
            sequence,
            info.step,
            SystemTime::UNIX_EPOCH,
            &info.name,
        ),
        None => (false, 0, info.step, info.created_at, &info.name),
    }
}

fn sort_newest_first(infos: &mut [CheckpointInfo]) {
    infos.sort_by(|a, b| commit_order(b).cmp(&commit_order(a)));
}

impl<S: CheckpointStorage, C: Coordinator> DistributedCheckpoint<S, C> {
    /// The committed checkpoints (those with a valid manifest), newest first.
    ///
    /// # Order
    ///
    /// Newest is last committed, as the manifests record it: by commit
    /// [`sequence`](CheckpointInfo::sequence), highest first, never by a wall
    /// clock (which can step back, or differ between hosts) and not by step
    /// (after a restore to an earlier step, the work saved since is newer
    /// than the abandoned branch). The committing rank assigns one more than
    /// the highest sequence committed in the storage. Two saves of different
    /// names committed at the same moment may read the same highest sequence
    /// and record the same one: they are then ordered by step (the higher
    /// first; a checkpoint without a step last), then by name (the greater
    /// name first), the same for every caller, and neither save fails.
    /// Checkpoints committed before sequences existed (manifest format
    /// version 1) come after all others, by step, then commit time, then
    /// name, all descending.
    ///
    /// A manifest that does not read as a valid one (damaged, invalid or of
    /// a newer format) is read again (a read may be damaged on the way),
    /// until two reads return the same bytes or after ten reads, and then
    /// skipped with a warning (its checkpoint is not a usable committed checkpoint);
    /// prefixes without a manifest are not checkpoints. Under a
    /// [fence](DistributedCheckpoint::with_fence), a checkpoint whose commit
    /// the fence does not confirm is skipped too.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Storage`] when listing fails, and
    /// [`CheckpointError::LoadFailed`] when a manifest cannot be read because
    /// the storage fails (rather than omitting a checkpoint that may be
    /// fine); under a fence, [`CheckpointError::Coordinator`] when the fence
    /// cannot be consulted.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint, SaveOptions, ShardData};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::checkpoint::CheckpointError> {
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// for step in [1, 2] {
    ///     ckpt.save(&format!("step-{step}"), &ShardData::new(), SaveOptions::new().step(step)).await?;
    /// }
    /// let names: Vec<_> = ckpt.list().await?.into_iter().map(|i| i.name).collect();
    /// assert_eq!(names, ["step-2", "step-1"]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list(&self) -> Result<Vec<CheckpointInfo>> {
        self.list_committed(Unusable::Skip).await
    }

    /// [`list`](Self::list), with `unusable` saying what becomes of a
    /// manifest that never read as a valid one, but read differently each
    /// time (damaged on the way, so possibly a valid committed checkpoint).
    pub(super) async fn list_committed(&self, unusable: Unusable) -> Result<Vec<CheckpointInfo>> {
        let objects = self.list_all().await?;
        let suffix = format!("/{MANIFEST_FILE_NAME}");
        let names: Vec<&str> = objects
            .iter()
            .filter_map(|object| object.key.strip_suffix(&suffix))
            .collect();
        let confirmations = match &self.fence {
            Some(fence) => Some(fence.confirmations().await.map_err(fence_failure)?),
            None => None,
        };
        let mut infos = Vec::new();
        // A few manifests at a time: every commit lists the checkpoints (for
        // its sequence), and a storage with some latency must not make that
        // take one round trip per checkpoint.
        for group in names.chunks(MANIFEST_READS_AT_ONCE) {
            let read =
                futures::future::join_all(group.iter().map(|name| self.read_manifest(name))).await;
            for (name, manifest) in group.iter().zip(read) {
                match manifest {
                    Ok(ManifestRead::Valid(manifest)) => match &confirmations {
                        Some(confirmed) if !confirms(confirmed.get(*name), &manifest) => {
                            tracing::debug!(target: TARGET, name, "skipping a checkpoint whose commit is not confirmed");
                        }
                        _ => infos.push(manifest.info()),
                    },
                    Ok(ManifestRead::Unusable {
                        error,
                        in_transit: true,
                    }) if unusable == Unusable::Refuse => {
                        return Err(CheckpointError::LoadFailed {
                            name: (*name).to_string(),
                            reason: format!(
                                "its manifest was read {MANIFEST_READS} times, never as a valid \
                                 one and differently each time (damaged on the way: the stored \
                                 one may be valid); last: {error}"
                            ),
                            source: None,
                        });
                    }
                    Ok(ManifestRead::Unusable { error, in_transit }) => {
                        tracing::warn!(target: TARGET, name, error = %error, in_transit, "skipping a checkpoint whose manifest is not usable");
                    }
                    Err(e @ CheckpointError::LoadFailed { .. }) => return Err(e),
                    Err(CheckpointError::NotFound { .. }) => {}
                    Err(e) => {
                        tracing::warn!(target: TARGET, name, error = %e, "skipping a checkpoint whose manifest is not usable");
                    }
                }
            }
        }
        sort_newest_first(&mut infos);
        Ok(infos)
    }

    async fn list_all(&self) -> Result<Vec<ObjectMeta>> {
        self.retry
            .retry(|| self.storage.list(""))
            .await
            .map_err(|e| CheckpointError::Storage(e.into_inner()))
    }

    /// The newest committed checkpoint, if any (the first of
    /// [`list`](Self::list)).
    ///
    /// # Errors
    ///
    /// As [`list`](Self::list).
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint, SaveOptions, ShardData};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::checkpoint::CheckpointError> {
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// assert!(ckpt.latest().await?.is_none());
    /// ckpt.save("only", &ShardData::new(), SaveOptions::new()).await?;
    /// assert_eq!(ckpt.latest().await?.unwrap().name, "only");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn latest(&self) -> Result<Option<CheckpointInfo>> {
        Ok(self.list().await?.into_iter().next())
    }

    /// Deletes checkpoint `name`: the manifest first (the checkpoint stops
    /// being visible), then every object found by listing its prefix that
    /// lies directly under `NAME/` (keys further down belong to other names
    /// and are left alone). Needs no coordination; call it on one rank.
    ///
    /// Objects that cannot be deleted after retries are listed in the
    /// report's `failed` (and logged at error level).
    ///
    /// # Errors
    ///
    /// - [`CheckpointError::NotFound`] when nothing is stored under the name;
    /// - [`CheckpointError::Storage`] when the manifest cannot be deleted (the
    ///   checkpoint is then left whole, still visible and loadable).
    ///
    /// # Cancellation
    ///
    /// Dropping the future stops the deletes where they are. The manifest
    /// goes first, so the checkpoint is either still whole or no longer
    /// visible; shards left behind are removed by
    /// [`cleanup_uncommitted`](Self::cleanup_uncommitted) or by deleting the
    /// name again.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointError, CheckpointOptions, DistributedCheckpoint, SaveOptions, ShardData};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), CheckpointError> {
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// ckpt.save("old", &ShardData::new().with_entry("a", vec![1]), SaveOptions::new()).await?;
    /// let report = ckpt.delete("old").await?;
    /// assert_eq!(report.deleted.len(), 2);
    /// assert!(ckpt.storage().is_empty());
    /// assert!(matches!(ckpt.delete("old").await, Err(CheckpointError::NotFound { .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete(&self, name: &str) -> Result<RollbackReport> {
        validate_name(name)?;
        let mut report = RollbackReport::default();
        let removal = remove_checkpoint(&self.storage, &self.retry, name, &mut report).await;
        if !removal.manifest_gone {
            let manifest = manifest_key(name);
            if let Some(at) = report.failed.iter().position(|(k, _)| *k == manifest) {
                let (_, error) = report.failed.swap_remove(at);
                return Err(CheckpointError::Storage(error));
            }
        }
        if removal.listed == 0 && report.is_complete() {
            return Err(CheckpointError::NotFound {
                name: name.to_string(),
            });
        }
        Ok(report)
    }

    /// Keeps the newest `keep` committed checkpoints (in the order of
    /// [`list`](Self::list)) and deletes the older ones (as
    /// [`delete`](Self::delete) does); then, on the committing rank (rank 0)
    /// only, removes the leftovers of saves that never committed, as
    /// [`cleanup_on_start`](Self::cleanup_on_start) does, and, when it
    /// deleted a checkpoint, the chunks no committed checkpoint refers to any
    /// more ([`collect_chunks`](Self::collect_chunks); in `report.chunks`).
    ///
    /// `keep` is clamped to at least 1: retention never deletes the newest
    /// committed checkpoint. A prefix without a manifest is not a committed
    /// checkpoint: it is removed only when every object in it is older than
    /// [`CheckpointOptions::cleanup_grace`] (10 minutes by default), so that
    /// a save in progress keeps its shards, and only by rank 0, so that
    /// ranks calling retention at once do not race over leftovers. The
    /// other ranks' reports have empty `leftovers`.
    ///
    /// # Errors
    ///
    /// As [`list`](Self::list). Objects that cannot be deleted are in the
    /// report; a failure to list or clean up the leftovers is in
    /// `report.leftovers.objects.failed`.
    ///
    /// # Cancellation
    ///
    /// Dropping the future stops it between or inside removals; each
    /// checkpoint is left whole or invisible, as with [`delete`](Self::delete).
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint, SaveOptions, ShardData};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::checkpoint::CheckpointError> {
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// for step in 1..=4 {
    ///     ckpt.save(&format!("step-{step}"), &ShardData::new(), SaveOptions::new().step(step)).await?;
    /// }
    /// let report = ckpt.retain_last(2).await?;
    /// assert_eq!(report.kept, ["step-4", "step-3"]);
    /// assert_eq!(report.removed, ["step-2", "step-1"]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn retain_last(&self, keep: usize) -> Result<RetentionReport> {
        let keep = keep.max(1);
        let mut report = RetentionReport::default();
        for (i, info) in self.list().await?.into_iter().enumerate() {
            if i < keep {
                report.kept.push(info.name);
                continue;
            }
            let removal =
                remove_checkpoint(&self.storage, &self.retry, &info.name, &mut report.objects)
                    .await;
            if removal.manifest_gone {
                report.removed.push(info.name);
            }
        }
        tracing::info!(
            target: TARGET,
            kept = report.kept.len(),
            removed = report.removed.len(),
            failed = report.objects.failed.len(),
            "retention applied"
        );
        if self.is_committing_rank() {
            report.leftovers = match self.remove_leftovers().await {
                Ok(leftovers) => leftovers,
                Err(CheckpointError::Storage(e)) => {
                    tracing::error!(target: TARGET, error = %e, "listing the storage for leftovers failed");
                    let mut leftovers = CleanupReport::default();
                    leftovers.objects.failed.push((String::new(), e));
                    leftovers
                }
                Err(e) => return Err(e),
            };
            if !report.removed.is_empty() {
                report.chunks = self.collect_chunks_after_retention().await;
            }
        }
        Ok(report)
    }

    /// The one clean-up to call when a job starts (or restarts after a
    /// crash), on every rank: removes what interrupted saves left behind.
    ///
    /// On the committing rank (rank 0) it removes
    /// - every checkpoint prefix that holds shards but no manifest, as
    ///   [`cleanup_uncommitted`](Self::cleanup_uncommitted) does, when its
    ///   newest object is older than [`CheckpointOptions::cleanup_grace`];
    /// - the temporary objects of interrupted writes older than the same
    ///   grace, through the storage's
    ///   [`cleanup_temporary`](crate::storage::CheckpointStorage::cleanup_temporary)
    ///   (the temporary files of [`LocalFsStorage`](crate::storage::LocalFsStorage);
    ///   nothing for a storage that leaves none).
    ///
    /// Every other rank returns an empty report at once: a clean-up runs in
    /// one place, and never removes a shard another rank is still writing,
    /// since the grace (10 minutes by default) protects every prefix and
    /// temporary object written to recently. Choose a grace longer than the
    /// longest save. [`retain_last`](Self::retain_last) runs the same
    /// clean-up after each retention, so a job that saves and applies
    /// retention does not accumulate leftovers between restarts either.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Storage`] when listing the storage fails. Objects
    /// that cannot be deleted are in the report, and so is a failure of the
    /// storage's clean-up of temporary objects (under the key `""`).
    ///
    /// # Cancellation
    ///
    /// Dropping the future stops the deletes where they are; what is left is
    /// still uncommitted, and the next clean-up removes it.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint, SaveOptions, ShardData};
    /// use steadfast::coordinator::InMemoryCoordinator;
    /// use steadfast::retry::RetryPolicy;
    /// use steadfast::storage::MemoryStorage;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::checkpoint::CheckpointError> {
    /// let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// // First thing after start-up, before resuming from the latest checkpoint:
    /// let cleaned = ckpt.cleanup_on_start().await?;
    /// assert!(cleaned.removed.is_empty());
    /// let resume_from = ckpt.latest().await?;
    /// assert!(resume_from.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn cleanup_on_start(&self) -> Result<CleanupReport> {
        if !self.is_committing_rank() {
            return Ok(CleanupReport::default());
        }
        self.remove_leftovers().await
    }

    /// Whether this rank commits saves (rank 0, or the rank the fence
    /// names), and so runs the clean-ups.
    fn is_committing_rank(&self) -> bool {
        self.rank() == self.committer()
    }

    /// Removes uncommitted prefixes and the storage's temporary objects older
    /// than the grace.
    async fn remove_leftovers(&self) -> Result<CleanupReport> {
        let grace = self.options.cleanup_grace();
        let mut report = self.cleanup_uncommitted(grace).await?;
        match self
            .retry
            .retry(|| self.storage.cleanup_temporary(grace))
            .await
        {
            Ok(removed) => report.temporary = removed,
            Err(e) => {
                let error = e.into_inner();
                tracing::error!(target: TARGET, error = %error, "removing the storage's temporary objects failed");
                report.objects.failed.push((String::new(), error));
            }
        }
        tracing::info!(
            target: TARGET,
            prefixes = report.removed.len(),
            recent = report.recent.len(),
            temporary = report.temporary,
            failed = report.objects.failed.len(),
            "uncommitted leftovers cleaned up"
        );
        Ok(report)
    }

    /// Removes the leftovers of saves that never committed: every prefix that
    /// holds shard objects (`shard-*.bin`) but no manifest, and whose newest
    /// object was written more than `grace` ago.
    ///
    /// This runs on whichever rank calls it, with the grace given; at
    /// start-up, call [`cleanup_on_start`](Self::cleanup_on_start) instead,
    /// which runs on the committing rank only, with the configured grace, and
    /// also removes the storage's temporary objects.
    ///
    /// The age comes from the storage's
    /// [`last_modified`](crate::storage::ObjectMeta::last_modified) times,
    /// compared with the wall clock (the only clock such times can be compared
    /// with). A prefix whose times the storage does not record is removed only
    /// with a zero grace. Choose a grace longer than the longest save: a
    /// prefix written to within the grace may be a save in progress, and is
    /// left alone. A prefix that holds a manifest (even one that cannot be
    /// read: it may be a committed checkpoint worth inspecting), prefixes
    /// inside it, and prefixes with no shard objects are never touched.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Storage`] when listing fails. Objects that cannot be
    /// deleted are in the report.
    ///
    /// # Cancellation
    ///
    /// Dropping the future stops the deletes where they are; what is left is
    /// still uncommitted, and the next cleanup removes it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::storage::CheckpointStorage;
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// // A save that crashed before its commit left a shard behind.
    /// ckpt.storage().put("crashed/shard-00000-of-00001-0000000000000001.bin", vec![0; 8].into()).await?;
    /// let report = ckpt.cleanup_uncommitted(Duration::ZERO).await?;
    /// assert_eq!(report.removed, ["crashed"]);
    /// assert!(ckpt.storage().is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn cleanup_uncommitted(&self, grace: Duration) -> Result<CleanupReport> {
        let objects = self.list_all().await?;
        let mut groups: BTreeMap<&str, Vec<&ObjectMeta>> = BTreeMap::new();
        for object in &objects {
            if let Some((prefix, _)) = object.key.rsplit_once('/') {
                groups.entry(prefix).or_default().push(object);
            }
        }
        let committed: Vec<&str> = groups
            .iter()
            .filter(|(_, objs)| objs.iter().any(|o| file_name(&o.key) == MANIFEST_FILE_NAME))
            .map(|(prefix, _)| *prefix)
            .collect();
        let now = SystemTime::now();
        let mut report = CleanupReport::default();
        for (prefix, objs) in &groups {
            let inside_committed = committed.iter().any(|c| {
                *prefix == *c
                    || prefix
                        .strip_prefix(c)
                        .is_some_and(|rest| rest.starts_with('/'))
            });
            if inside_committed || !objs.iter().any(|o| is_shard_file_name(file_name(&o.key))) {
                continue;
            }
            if !grace.is_zero() {
                let times: Option<Vec<SystemTime>> = objs.iter().map(|o| o.last_modified).collect();
                let old_enough = times
                    .and_then(|t| t.into_iter().max())
                    .is_some_and(|newest| {
                        now.duration_since(newest).unwrap_or(Duration::ZERO) >= grace
                    });
                if !old_enough {
                    report.recent.push(prefix.to_string());
                    continue;
                }
            }
            // A save may have committed since the listing.
            let manifest = manifest_key(prefix);
            match self.retry.retry(|| self.storage.exists(&manifest)).await {
                Ok(false) => {}
                Ok(true) => continue,
                Err(e) => {
                    report.objects.failed.push((manifest, e.into_inner()));
                    continue;
                }
            }
            for object in objs {
                delete_object(&self.storage, &self.retry, &object.key, &mut report.objects).await;
            }
            tracing::info!(target: TARGET, prefix, objects = objs.len(), "uncommitted checkpoint leftovers removed");
            report.removed.push(prefix.to_string());
        }
        Ok(report)
    }
}

fn file_name(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, at: u64, step: Option<u64>, sequence: Option<u64>) -> CheckpointInfo {
        CheckpointInfo {
            name: name.into(),
            step,
            sequence,
            created_at: std::time::UNIX_EPOCH + Duration::from_millis(at),
            world_size: 1,
            total_size: 0,
        }
    }

    fn sorted(mut infos: Vec<CheckpointInfo>) -> Vec<String> {
        sort_newest_first(&mut infos);
        infos.into_iter().map(|i| i.name).collect()
    }

    #[test]
    fn without_sequences_newest_first_by_step_then_time_then_name() {
        let infos = vec![
            info("a", 1, Some(1), None),
            info("b", 2, None, None),
            info("c", 2, Some(1), None),
            info("d", 2, Some(1), None),
            info("e", 0, Some(2), None),
        ];
        assert_eq!(sorted(infos), ["e", "d", "c", "a", "b"]);
    }

    #[test]
    fn the_sequence_decides_never_the_clock_nor_the_step() {
        let infos = vec![
            // Committed last, after the clock stepped back and a restore to
            // an earlier step.
            info("restored", 5, Some(15), Some(3)),
            info("abandoned", 90, Some(20), Some(2)),
            info("first", 99, Some(10), Some(1)),
            // Older than every sequenced checkpoint, whatever its time.
            info("legacy", 1_000, Some(99), None),
        ];
        assert_eq!(sorted(infos), ["restored", "abandoned", "first", "legacy"]);
    }

    #[test]
    fn a_shared_sequence_is_ordered_by_name() {
        let infos = vec![
            info("b", 1, None, Some(4)),
            info("c", 3, None, Some(4)),
            info("a", 2, None, Some(5)),
        ];
        assert_eq!(sorted(infos.clone()), ["a", "c", "b"]);
        let mut reversed = infos;
        reversed.reverse();
        assert_eq!(sorted(reversed), ["a", "c", "b"]);
    }

    #[test]
    fn a_shared_sequence_favours_the_higher_step_then_the_name() {
        let infos = vec![
            info("run/ckpt-10", 1, Some(10), Some(7)),
            info("run/ckpt-9", 2, Some(9), Some(7)),
            info("z-no-step", 3, None, Some(7)),
            info("a", 0, Some(10), Some(7)),
        ];
        assert_eq!(
            sorted(infos.clone()),
            ["run/ckpt-10", "a", "run/ckpt-9", "z-no-step"]
        );
        let mut reversed = infos;
        reversed.reverse();
        assert_eq!(
            sorted(reversed),
            ["run/ckpt-10", "a", "run/ckpt-9", "z-no-step"]
        );
    }
}
