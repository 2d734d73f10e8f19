//! Removing what a checkpoint wrote: reports of what was deleted and what
//! could not be, and the one routine that removes a checkpoint.
//!
//! A checkpoint is removed manifest first, so that it stops being visible
//! before any shard goes; then every object found by listing its prefix is
//! deleted, whatever its name (never by guessing rank numbers). A
//! checkpoint's objects are those directly under `NAME/`: a key further down
//! (`NAME/x/...`) belongs to another name, such as a save of `NAME/x` in
//! progress, and is never touched. Deletes are
//! retried under the caller's [`RetryPolicy`]. A delete that still fails is
//! recorded in the [`RollbackReport`] and logged at error level with target
//! `"steadfast::checkpoint"`: nothing fails silently. When the manifest itself
//! cannot be deleted the shards are left alone, so that a checkpoint that is
//! still visible stays loadable.

use crate::retry::RetryPolicy;
use crate::storage::{CheckpointStorage, ObjectMeta, StorageError};

use super::chunks::ChunkCollectionReport;
use super::manifest::{check_name, manifest_key};

/// What a rollback or a delete removed, and what it could not.
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::RollbackReport;
/// use steadfast::storage::StorageError;
///
/// let mut report = RollbackReport::default();
/// report.deleted.push("ckpt/metadata.json".into());
/// assert!(report.is_complete());
/// report.failed.push(("ckpt/shard-00000-of-00001-0000000000000001.bin".into(),
///     StorageError::Injected { operation: "delete", key: "ckpt/x".into(), transient: false }));
/// assert!(!report.is_complete());
/// ```
#[derive(Debug, Default)]
#[must_use = "a rollback report lists the objects that could not be deleted"]
pub struct RollbackReport {
    /// The keys deleted, in the order they were deleted.
    pub deleted: Vec<String>,
    /// The keys (or list prefixes) that could not be deleted (or listed),
    /// with the error of the last attempt.
    pub failed: Vec<(String, StorageError)>,
}

impl RollbackReport {
    /// Whether nothing failed.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::checkpoint::RollbackReport::default().is_complete());
    /// ```
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty()
    }

    /// Appends another report to this one.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::RollbackReport;
    /// let mut a = RollbackReport::default();
    /// let mut b = RollbackReport::default();
    /// b.deleted.push("x".into());
    /// a.merge(b);
    /// assert_eq!(a.deleted, ["x"]);
    /// ```
    pub fn merge(&mut self, other: RollbackReport) {
        self.deleted.extend(other.deleted);
        self.failed.extend(other.failed);
    }
}

/// What [`retain_last`](crate::checkpoint::DistributedCheckpoint::retain_last)
/// kept and removed: committed checkpoints, and (on the committing rank)
/// uncommitted leftovers older than the grace period.
///
/// # Examples
///
/// ```
/// let report = steadfast::checkpoint::RetentionReport::default();
/// assert!(report.kept.is_empty() && report.removed.is_empty());
/// ```
#[derive(Debug, Default)]
#[must_use = "a retention report lists the objects that could not be deleted"]
pub struct RetentionReport {
    /// The committed checkpoints kept, newest first.
    pub kept: Vec<String>,
    /// The checkpoints removed (their manifests are gone), newest first.
    pub removed: Vec<String>,
    /// Every object of the removed checkpoints deleted or that could not be
    /// deleted.
    pub objects: RollbackReport,
    /// The uncommitted leftovers removed after the retention (always empty
    /// on a rank other than the committing rank 0).
    pub leftovers: CleanupReport,
    /// The chunks collected after the retention removed a checkpoint (see
    /// [`collect_chunks`](crate::checkpoint::DistributedCheckpoint::collect_chunks);
    /// empty when nothing was removed, or on a rank other than rank 0 for
    /// [`retain_last`](crate::checkpoint::DistributedCheckpoint::retain_last)).
    pub chunks: ChunkCollectionReport,
}

/// What [`cleanup_uncommitted`](crate::checkpoint::DistributedCheckpoint::cleanup_uncommitted)
/// and [`cleanup_on_start`](crate::checkpoint::DistributedCheckpoint::cleanup_on_start)
/// removed.
///
/// # Examples
///
/// ```
/// let report = steadfast::checkpoint::CleanupReport::default();
/// assert!(report.removed.is_empty());
/// ```
#[derive(Debug, Default)]
#[must_use = "a cleanup report lists the objects that could not be deleted"]
pub struct CleanupReport {
    /// The uncommitted prefixes (checkpoint names) whose objects were
    /// removed.
    pub removed: Vec<String>,
    /// Uncommitted prefixes left alone because they were written to within
    /// the grace period (a save may still be in progress there).
    pub recent: Vec<String>,
    /// Every object deleted or that could not be deleted. When the
    /// storage's removal of temporary objects fails, its error is here
    /// under the empty key `""` (the whole storage).
    pub objects: RollbackReport,
    /// How many temporary objects of interrupted writes the storage removed
    /// ([`CheckpointStorage::cleanup_temporary`]); always 0 from
    /// `cleanup_uncommitted`, which leaves them to the storage.
    pub temporary: u64,
}

/// Deletes `key` under `retry`, recording the outcome in `report`.
pub(crate) async fn delete_object<S: CheckpointStorage + ?Sized>(
    storage: &S,
    retry: &RetryPolicy,
    key: &str,
    report: &mut RollbackReport,
) -> bool {
    match retry.retry(|| storage.delete(key)).await {
        Ok(()) => {
            tracing::debug!(target: "steadfast::checkpoint", key, "deleted");
            report.deleted.push(key.to_string());
            true
        }
        Err(e) => {
            let attempts = e.attempts();
            let error = e.into_inner();
            tracing::error!(
                target: "steadfast::checkpoint",
                key,
                attempts,
                error = %error,
                "could not delete a checkpoint object"
            );
            report.failed.push((key.to_string(), error));
            false
        }
    }
}

/// How a removal went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Removal {
    /// How many objects the listing found under the prefix (0 when the
    /// listing failed).
    pub(crate) listed: usize,
    /// Whether the manifest is gone (deleted, or there was none).
    pub(crate) manifest_gone: bool,
}

/// Removes checkpoint `name`: the manifest first, then every object found by
/// listing `NAME/` directly under it. Objects further down belong to other
/// names and are left alone.
pub(crate) async fn remove_checkpoint<S: CheckpointStorage + ?Sized>(
    storage: &S,
    retry: &RetryPolicy,
    name: &str,
    report: &mut RollbackReport,
) -> Removal {
    if let Err(error) = check_name(name) {
        tracing::error!(target: "steadfast::checkpoint", name, error = %error, "refusing to remove");
        report.failed.push((name.to_string(), error));
        return Removal {
            listed: 0,
            manifest_gone: false,
        };
    }
    let prefix = format!("{name}/");
    let manifest = manifest_key(name);
    let listing = retry.retry(|| storage.list(&prefix)).await;

    // The manifest goes first, whether or not the listing worked: a
    // checkpoint that cannot be listed can still be made invisible.
    let listed_manifest = match &listing {
        Ok(objects) => objects.iter().any(|o| o.key == manifest),
        Err(_) => false,
    };
    let manifest_gone = if listed_manifest || listing.is_err() {
        let mut attempt = RollbackReport::default();
        let gone = delete_object(storage, retry, &manifest, &mut attempt).await;
        if !listed_manifest {
            // The listing failed, so whether a manifest was there is unknown:
            // report only a failure to delete it.
            attempt.deleted.clear();
        }
        report.merge(attempt);
        gone
    } else {
        true
    };

    let objects = match listing {
        Ok(objects) => own_objects(objects, &prefix),
        Err(e) => {
            let error = e.into_inner();
            tracing::error!(
                target: "steadfast::checkpoint",
                prefix = %prefix,
                error = %error,
                "could not list a checkpoint's objects"
            );
            report.failed.push((prefix, error));
            return Removal {
                listed: 0,
                manifest_gone,
            };
        }
    };
    if !manifest_gone {
        tracing::error!(
            target: "steadfast::checkpoint",
            name,
            "the manifest could not be deleted; leaving the shards of the still-visible checkpoint"
        );
        return Removal {
            listed: objects.len(),
            manifest_gone,
        };
    }
    delete_listed(storage, retry, &objects, &manifest, report).await;
    tracing::info!(
        target: "steadfast::checkpoint",
        name,
        listed = objects.len(),
        failed = report.failed.len(),
        "checkpoint objects removed"
    );
    Removal {
        listed: objects.len(),
        manifest_gone,
    }
}

/// The objects of a listing of `prefix` (`NAME/`) that belong to checkpoint
/// `NAME`: those directly under the prefix. A key further down
/// (`NAME/x/...`) is another name's (a nested checkpoint, or a save of one in
/// progress), whatever its state.
fn own_objects(objects: Vec<ObjectMeta>, prefix: &str) -> Vec<ObjectMeta> {
    let (own, others): (Vec<_>, Vec<_>) = objects.into_iter().partition(|o| {
        o.key
            .strip_prefix(prefix)
            .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
    });
    if !others.is_empty() {
        tracing::debug!(
            target: "steadfast::checkpoint",
            prefix,
            left = others.len(),
            "leaving the objects of other names below the prefix"
        );
    }
    own
}

/// Deletes the listed objects, except `manifest`.
async fn delete_listed<S: CheckpointStorage + ?Sized>(
    storage: &S,
    retry: &RetryPolicy,
    objects: &[ObjectMeta],
    manifest: &str,
    report: &mut RollbackReport,
) {
    for object in objects.iter().filter(|o| o.key != manifest) {
        delete_object(storage, retry, &object.key, report).await;
    }
}

/// Removes every object directly under `NAME/` after a failed save, unless
/// a manifest is there (a committed checkpoint of that name is never
/// touched). Objects further down belong to other names and are left alone.
pub(crate) async fn sweep_uncommitted<S: CheckpointStorage + ?Sized>(
    storage: &S,
    retry: &RetryPolicy,
    name: &str,
    report: &mut RollbackReport,
) {
    let prefix = format!("{name}/");
    let manifest = manifest_key(name);
    match retry.retry(|| storage.list(&prefix)).await {
        Ok(objects) if objects.iter().any(|o| o.key == manifest) => {
            tracing::warn!(
                target: "steadfast::checkpoint",
                name,
                "a manifest exists; not sweeping the prefix"
            );
        }
        Ok(objects) => {
            let objects = own_objects(objects, &prefix);
            delete_listed(storage, retry, &objects, &manifest, report).await;
        }
        Err(e) => {
            let error = e.into_inner();
            tracing::error!(
                target: "steadfast::checkpoint",
                name,
                error = %error,
                "could not list the prefix to roll back"
            );
            report.failed.push((prefix, error));
        }
    }
}
