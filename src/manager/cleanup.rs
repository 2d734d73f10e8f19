//! Retention as the manager applies it: after each commit on rank 0, and on
//! demand ([`CheckpointManager::apply_retention`]). The
//! [`RetentionPolicy`](super::RetentionPolicy) plans which of the manager's
//! checkpoints go (ages from the commit time a manifest records, read
//! against the checkpoint's wall clock; order from the commit sequence);
//! each goes through [`DistributedCheckpoint::delete`], the existing
//! rollback path (manifest first, then the shards found by listing). The
//! newest checkpoint, and any this manager is writing or loading, are never
//! deleted. Once a checkpoint is deleted, the chunks no committed checkpoint
//! refers to any more are collected
//! ([`DistributedCheckpoint::collect_chunks`]).

use std::sync::Arc;

#[cfg(doc)]
use crate::checkpoint::DistributedCheckpoint;
use crate::checkpoint::{manifest_key, CheckpointError, RetentionReport};
use crate::coordinator::Coordinator;
use crate::storage::CheckpointStorage;

use super::error::ManagerError;
use super::events::CheckpointEvent;
use super::manager::{CheckpointManager, TARGET};
use super::names::is_managed;

impl<S: CheckpointStorage, C: Coordinator> CheckpointManager<S, C> {
    /// Applies the retention policy now: deletes the manager's checkpoints
    /// it does not keep (never the newest, nor one this manager is writing
    /// or loading), emits [`CheckpointEvent::Deleted`], and reports what was
    /// kept (newest first) and removed (oldest first). Needs no
    /// coordination: call it on one rank (rank 0 applies it after each
    /// commit by itself).
    ///
    /// # Errors
    ///
    /// [`ManagerError::Checkpoint`] when the checkpoints cannot be listed.
    /// A checkpoint that cannot be deleted is in the report's
    /// `objects.failed` (and stays whole and visible when its manifest could
    /// not be deleted).
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// use steadfast::manager::{CheckpointManager, JsonState, RetentionPolicy};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// # let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// let manager = CheckpointManager::builder(ckpt)
    ///     .prefix("run")
    ///     .retention(RetentionPolicy::keep_all().keep_last(2))
    ///     .build()?;
    /// manager.register_state("s", JsonState::new(0))?;
    /// for _ in 0..3 {
    ///     manager.create_checkpoint(None).await?.wait().await?;
    /// }
    /// // Applied after each commit already: only the two newest are left.
    /// let report = manager.apply_retention().await?;
    /// assert_eq!(report.kept, ["run/ckpt-0000000003", "run/ckpt-0000000002"]);
    /// assert!(report.removed.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn apply_retention(&self) -> Result<RetentionReport, ManagerError> {
        let ckpt = &self.inner.ckpt;
        let prefix = &self.inner.config.prefix;
        let infos: Vec<_> = ckpt
            .list()
            .await?
            .into_iter()
            .filter(|info| is_managed(prefix, &info.name))
            .collect();
        let plan = self.inner.config.retention.plan(
            &infos,
            ckpt.wall_clock().now(),
            &self.protected_names(),
        );
        // `list` gives newest first; the report keeps that order.
        let kept = infos
            .iter()
            .filter(|info| plan.keep.iter().any(|(kept, _)| kept.name == info.name))
            .map(|info| info.name.clone())
            .collect();
        let mut report = RetentionReport {
            kept,
            ..RetentionReport::default()
        };
        for info in &plan.delete {
            match ckpt.delete(&info.name).await {
                Ok(objects) => {
                    report.objects.merge(objects);
                    report.removed.push(info.name.clone());
                }
                // Deleted meanwhile (by another rank's call, say).
                Err(CheckpointError::NotFound { .. }) => {}
                Err(CheckpointError::Storage(e)) => {
                    report.objects.failed.push((manifest_key(&info.name), e));
                }
                Err(e) => return Err(e.into()),
            }
        }
        tracing::info!(
            target: TARGET,
            kept = report.kept.len(),
            removed = report.removed.len(),
            failed = report.objects.failed.len(),
            "retention applied"
        );
        if !report.removed.is_empty() {
            self.emit(CheckpointEvent::Deleted {
                names: report.removed.clone(),
            });
            report.chunks = ckpt.collect_chunks_after_retention().await;
        }
        Ok(report)
    }

    /// Rank 0, after a commit: retention, its failure recorded.
    pub(crate) async fn retain_after_commit(&self) {
        if self.inner.config.retention.keeps_everything() {
            return;
        }
        match self.apply_retention().await {
            Ok(report) => {
                if let Some((key, error)) = report.objects.failed.into_iter().next() {
                    tracing::warn!(target: TARGET, key, error = %error, "retention could not delete everything");
                    self.record_error(Arc::new(CheckpointError::Storage(error).into()));
                }
            }
            Err(e) => self.record_error(Arc::new(e)),
        }
    }
}
