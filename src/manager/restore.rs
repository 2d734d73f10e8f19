//! Point-in-time recovery: the manager's checkpoints as
//! [`RecoveryPoint`]s, and restores from one of them ([`restore`]), from
//! the newest that verifies ([`restore_latest`], falling back past any that
//! does not), from the newest before a time ([`restore_before`]) or at a
//! step ([`restore_step`]).
//!
//! A restore loads every registered state's bytes from the point (each
//! shard's size and digest checked), runs the integrity checks on them, and
//! only when all of that succeeded, and every other rank said the same
//! (the vote in `coordination.rs`), hands the bytes to
//! [`Stateful::restore`](super::Stateful::restore). A state whose bytes
//! were not verified is never touched. The load can be bounded by the
//! manager's load timeout.
//!
//! At another world size (a resharded load), rank `r` restores each state
//! from old rank `r`'s entry when the checkpoint has one, otherwise from
//! old rank 0's.
//!
//! [`restore`]: CheckpointManager::restore
//! [`restore_latest`]: CheckpointManager::restore_latest
//! [`restore_before`]: CheckpointManager::restore_before
//! [`restore_step`]: CheckpointManager::restore_step

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use crate::checkpoint::{CheckpointError, MANIFEST_FILE_NAME};
use crate::coordinator::Coordinator;
use crate::retry::RetryPolicy;
use crate::storage::CheckpointStorage;
use tracing::Instrument;

use super::error::ManagerError;
use super::manager::{CheckpointManager, TARGET};
use super::names::{entry_name, is_managed};
use super::points::{sort_newest_first, RecoveryFilter, RecoveryPoint};
use super::stateful::Stateful;
use super::trace;

/// How many manifests a scan of the manager's checkpoints reads at once.
const MANIFEST_READS_AT_ONCE: usize = 16;

/// What a restore did.
///
/// # Examples
///
/// ```
/// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
/// # use steadfast::coordinator::InMemoryCoordinator;
/// # use steadfast::retry::RetryPolicy;
/// # use steadfast::storage::MemoryStorage;
/// use steadfast::manager::{CheckpointManager, JsonState};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let rank = InMemoryCoordinator::new(1).remove(0);
/// # let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
/// let manager = CheckpointManager::builder(ckpt).build()?;
/// manager.register_state("s", JsonState::new(5))?;
/// manager.create_checkpoint(None).await?.wait().await?;
/// let report = manager.restore_latest().await?.expect("one checkpoint");
/// assert_eq!(report.states, ["s"]);
/// assert_eq!(report.sources, [("s".to_string(), 0)]);
/// assert!(report.skipped.is_empty() && !report.resharded && report.warnings.is_empty());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// The checkpoint restored.
    pub point: RecoveryPoint,
    /// Newer checkpoints passed over, newest first, each with why (corrupt,
    /// incomplete, a state missing, an integrity check's refusal, a load
    /// timeout, another rank's failure).
    pub skipped: Vec<(String, String)>,
    /// Whether the checkpoint was saved at another world size.
    pub resharded: bool,
    /// What the integrity checks warned about (`check: state: warning`).
    pub warnings: Vec<String>,
    /// The states restored, in name order.
    pub states: Vec<String>,
    /// For each state restored, the old rank whose entry it came from.
    pub sources: Vec<(String, usize)>,
}

/// A state to restore: its name, the state, its bytes, the old rank they
/// came from.
type LoadedState = (String, Arc<dyn Stateful>, Vec<u8>, usize);

/// One point's states, loaded and checked, not yet restored.
struct Loaded {
    point: RecoveryPoint,
    resharded: bool,
    warnings: Vec<String>,
    states: Vec<LoadedState>,
}

/// Whether a failed candidate can be passed over for an older one.
fn falls_back(error: &ManagerError) -> bool {
    !matches!(
        error,
        ManagerError::Coordination { .. } | ManagerError::OutOfStep { .. }
    )
}

/// The sequence a managed name carries (`.../ckpt-{sequence:010}...`).
fn name_sequence(name: &str) -> Option<u64> {
    let rest = &name[name.rfind("ckpt-")? + 5..];
    rest.get(..10)?.parse().ok()
}

impl<S: CheckpointStorage, C: Coordinator> CheckpointManager<S, C> {
    /// The manager's checkpoints that `filter` matches, newest first (by
    /// the commit sequence the manifests record, never by time or step).
    /// Checkpoints of other prefixes in the same storage are not listed, nor
    /// are those whose manifest cannot be read.
    ///
    /// # Errors
    ///
    /// [`ManagerError::Checkpoint`] when the storage cannot be listed or a
    /// manifest cannot be read because the storage fails.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// use steadfast::manager::{CheckpointManager, JsonState, RecoveryFilter};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// # let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// let manager = CheckpointManager::builder(ckpt).every_n_steps(10).build()?;
    /// manager.register_state("s", JsonState::new(0))?;
    /// for _ in 0..30 {
    ///     if let Some(p) = manager.step().await? { p.wait().await?; }
    /// }
    /// let points = manager.recovery_points(&RecoveryFilter::all().steps(15..)).await?;
    /// let steps: Vec<_> = points.iter().map(|p| p.step).collect();
    /// assert_eq!(steps, [Some(30), Some(20)]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recovery_points(
        &self,
        filter: &RecoveryFilter,
    ) -> Result<Vec<RecoveryPoint>, ManagerError> {
        let (mut points, _) = self.scan().await?;
        points.retain(|p| filter.matches(p));
        Ok(points)
    }

    /// Every managed checkpoint: the readable ones as points, newest first,
    /// and those whose manifest is damaged, with why.
    async fn scan(&self) -> Result<(Vec<RecoveryPoint>, Vec<(String, String)>), ManagerError> {
        let ckpt = &self.inner.ckpt;
        let prefix = &self.inner.config.prefix;
        let listed = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        // Retried as the checkpoint's own listing is, under the default
        // policy (the checkpoint's policy is its own).
        let objects = RetryPolicy::default()
            .retry(|| ckpt.storage().list(&listed))
            .await
            .map_err(|e| CheckpointError::Storage(e.into_inner()))?;
        let suffix = format!("/{MANIFEST_FILE_NAME}");
        let names: BTreeSet<&str> = objects
            .iter()
            .filter_map(|o| o.key.strip_suffix(&suffix))
            .filter(|name| is_managed(prefix, name))
            .collect();
        let mut points = Vec::new();
        let mut broken = Vec::new();
        let names: Vec<&str> = names.into_iter().collect();
        // A few manifests at a time, as the checkpoint's own listing reads
        // them: a storage with latency must not cost a round trip each.
        for group in names.chunks(MANIFEST_READS_AT_ONCE) {
            let read =
                futures::future::join_all(group.iter().map(|name| ckpt.manifest(name))).await;
            for (name, manifest) in group.iter().zip(read) {
                match manifest {
                    Ok(manifest) => points.push(RecoveryPoint::from_manifest(&manifest)),
                    Err(CheckpointError::NotFound { .. }) => {}
                    Err(e @ CheckpointError::LoadFailed { .. }) => return Err(e.into()),
                    Err(e) => broken.push((name.to_string(), e.to_string())),
                }
            }
        }
        sort_newest_first(&mut points);
        broken.sort_by_key(|(name, _)| std::cmp::Reverse(name_sequence(name)));
        Ok((points, broken))
    }

    /// Restores every registered state from `point`; a collective when the
    /// job has several ranks (each restores its own states, and none does
    /// unless every rank loaded and verified its part). Nothing is restored
    /// into any state before every state's bytes are loaded and verified
    /// and every integrity check accepted them. The manager's step becomes
    /// the point's.
    ///
    /// # Errors
    ///
    /// [`ManagerError::Checkpoint`] when the point cannot be loaded or
    /// verified, [`ManagerError::StateMissing`],
    /// [`ManagerError::IntegrityRejected`], [`ManagerError::LoadTimeout`],
    /// [`ManagerError::NotRestorableEverywhere`] (another rank failed), and
    /// [`ManagerError::State`] when a state refuses its bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// use steadfast::manager::{CheckpointManager, JsonState, RecoveryFilter};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// # let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// let manager = CheckpointManager::builder(ckpt).build()?;
    /// let value = JsonState::new(1);
    /// manager.register_state("v", value.clone())?;
    /// manager.create_checkpoint(Some("one")).await?.wait().await?;
    /// value.set(2);
    /// manager.create_checkpoint(Some("two")).await?.wait().await?;
    /// let one = manager.recovery_points(&RecoveryFilter::all().label("one")).await?.remove(0);
    /// manager.restore(&one).await?;
    /// assert_eq!(value.get(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn restore(&self, point: &RecoveryPoint) -> Result<RestoreReport, ManagerError> {
        self.try_restore(point).await
    }

    /// Restores from the newest checkpoint that loads and verifies, passing
    /// over (and reporting, in [`RestoreReport::skipped`]) every newer one
    /// that is corrupt, incomplete, lacks a state, is refused by an
    /// integrity check or takes longer than the load timeout. `None` when
    /// the manager has no checkpoint. What to call when a job starts (after
    /// [`DistributedCheckpoint::cleanup_on_start`](crate::checkpoint::DistributedCheckpoint::cleanup_on_start),
    /// which removes what a killed save left behind).
    ///
    /// # Cancellation
    ///
    /// Dropping the future before it restores writes nothing to any state;
    /// dropped while it restores, some states may hold the point's bytes and
    /// others not: call it again. With several ranks, every rank must call
    /// it, and none may drop it (the others would wait for its vote).
    ///
    /// # Errors
    ///
    /// [`ManagerError::NothingRestorable`], listing each checkpoint tried
    /// and why, when none could be restored; [`ManagerError::Coordination`]
    /// or [`ManagerError::OutOfStep`] when the ranks cannot agree; the
    /// errors of [`recovery_points`](Self::recovery_points).
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// use steadfast::manager::{CheckpointManager, JsonState};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// # let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// let manager = CheckpointManager::builder(ckpt).build()?;
    /// manager.register_state("v", JsonState::new(1))?;
    /// assert!(manager.restore_latest().await?.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn restore_latest(&self) -> Result<Option<RestoreReport>, ManagerError> {
        let (points, broken) = self.scan().await?;
        self.restore_first(points, broken).await
    }

    /// Restores from the newest checkpoint committed before `t` (by the
    /// commit time its manifest records) that loads and verifies, falling
    /// back as [`restore_latest`](Self::restore_latest) does. `None` when
    /// there is none.
    ///
    /// # Errors
    ///
    /// As [`restore_latest`](Self::restore_latest).
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint, ManualClock};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use steadfast::manager::{CheckpointManager, JsonState};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_000));
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default())
    ///     .with_wall_clock(clock.clone());
    /// let manager = CheckpointManager::builder(ckpt).build()?;
    /// let value = JsonState::new(1);
    /// manager.register_state("v", value.clone())?;
    /// manager.create_checkpoint(None).await?.wait().await?;
    /// clock.advance(Duration::from_secs(60));
    /// value.set(2);
    /// manager.create_checkpoint(None).await?.wait().await?;
    /// manager.restore_before(UNIX_EPOCH + Duration::from_secs(1_030)).await?;
    /// assert_eq!(value.get(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn restore_before(
        &self,
        t: SystemTime,
    ) -> Result<Option<RestoreReport>, ManagerError> {
        let points = self
            .recovery_points(&RecoveryFilter::all().committed_before(t))
            .await?;
        self.restore_first(points, Vec::new()).await
    }

    /// Restores from the newest checkpoint of step `step` that loads and
    /// verifies, falling back as [`restore_latest`](Self::restore_latest)
    /// does. `None` when there is none.
    ///
    /// # Errors
    ///
    /// As [`restore_latest`](Self::restore_latest).
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// use steadfast::manager::{CheckpointManager, JsonState};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// # let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// let manager = CheckpointManager::builder(ckpt).every_n_steps(1).build()?;
    /// let value = JsonState::new(0u64);
    /// manager.register_state("v", value.clone())?;
    /// for i in 1..=3 {
    ///     value.set(i * 10);
    ///     manager.step().await?.expect("due").wait().await?;
    /// }
    /// let report = manager.restore_step(2).await?.expect("step 2 was saved");
    /// assert_eq!(value.get(), 20);
    /// assert_eq!(manager.current_step(), 2);
    /// assert!(manager.restore_step(7).await?.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn restore_step(&self, step: u64) -> Result<Option<RestoreReport>, ManagerError> {
        let points = self
            .recovery_points(&RecoveryFilter::all().steps(step..=step))
            .await?;
        self.restore_first(points, Vec::new()).await
    }

    /// Tries `points` newest first; `broken` are damaged checkpoints to
    /// report as skipped when newer than the one restored.
    async fn restore_first(
        &self,
        points: Vec<RecoveryPoint>,
        broken: Vec<(String, String)>,
    ) -> Result<Option<RestoreReport>, ManagerError> {
        if points.is_empty() && broken.is_empty() {
            return Ok(None);
        }
        let mut skipped = Vec::new();
        for point in points {
            match self.try_restore(&point).await {
                Ok(mut report) => {
                    // Names carry the sequence rank 0 gave them: damaged
                    // checkpoints named after this one are newer.
                    let restored = name_sequence(&point.name);
                    let mut all: Vec<_> = broken
                        .iter()
                        .filter(|(name, _)| name_sequence(name) > restored)
                        .cloned()
                        .collect();
                    all.extend(skipped);
                    all.sort_by_key(|(name, _)| std::cmp::Reverse(name_sequence(name)));
                    report.skipped = all;
                    return Ok(Some(report));
                }
                Err(e) if falls_back(&e) => {
                    tracing::warn!(target: TARGET, checkpoint = %point.name, error = %e, "checkpoint not restorable; trying the one before");
                    skipped.push((point.name.clone(), e.to_string()));
                }
                Err(e) => return Err(e),
            }
        }
        let mut all = broken;
        all.extend(skipped);
        all.sort_by_key(|(name, _)| std::cmp::Reverse(name_sequence(name)));
        Err(ManagerError::NothingRestorable { skipped: all })
    }

    /// Restores one point inside its `steadfast.manager.restore` span.
    async fn try_restore(&self, point: &RecoveryPoint) -> Result<RestoreReport, ManagerError> {
        let span = trace::restore_span(&point.name, point.step, self.inner.ckpt.rank());
        let restored = self.restore_point(point).instrument(span.clone()).await;
        if let Ok(report) = &restored {
            span.record("states", report.states.len());
        }
        trace::record_outcome(&span, &restored);
        restored
    }

    /// Loads, checks, votes, then restores one point.
    async fn restore_point(&self, point: &RecoveryPoint) -> Result<RestoreReport, ManagerError> {
        let _guard = self.protect(&point.name);
        let loading = self.load_point(point);
        let loaded = match self.inner.config.load_timeout {
            Some(after) => tokio::time::timeout(after, loading)
                .await
                .unwrap_or_else(|_| {
                    Err(ManagerError::LoadTimeout {
                        checkpoint: point.name.clone(),
                        after,
                    })
                }),
            None => loading.await,
        };
        let refusals = self
            .vote(&point.name, loaded.as_ref().err().map(ToString::to_string))
            .await?;
        let loaded = loaded?;
        if !refusals.is_empty() {
            let reason: Vec<String> = refusals
                .iter()
                .map(|(rank, why)| format!("rank {rank}: {why}"))
                .collect();
            return Err(ManagerError::NotRestorableEverywhere {
                checkpoint: point.name.clone(),
                reason: reason.join("; "),
            });
        }
        let mut report = RestoreReport {
            point: loaded.point,
            skipped: Vec::new(),
            resharded: loaded.resharded,
            warnings: loaded.warnings,
            states: Vec::new(),
            sources: Vec::new(),
        };
        // The states are about to hold other bytes: no state is unchanged
        // since the last save any more.
        self.inner.saving.forget_revisions();
        for (name, state, bytes, source) in loaded.states {
            state.restore(&bytes).map_err(|e| e.in_state(&name))?;
            report.states.push(name.clone());
            report.sources.push((name, source));
        }
        if let Some(step) = report.point.step {
            self.inner.step.store(step, Ordering::SeqCst);
        }
        tracing::info!(target: TARGET, checkpoint = %report.point.name, resharded = report.resharded, "states restored");
        Ok(report)
    }

    /// Reads and verifies this rank's states of `point`, and runs the
    /// integrity checks on them.
    async fn load_point(&self, point: &RecoveryPoint) -> Result<Loaded, ManagerError> {
        let ckpt = &self.inner.ckpt;
        let manifest = ckpt.manifest(&point.name).await?;
        let point = RecoveryPoint::from_manifest(&manifest);
        let rank = ckpt.rank();
        let resharded = manifest.world_size != ckpt.world_size();
        let mut wanted = Vec::new();
        for (name, state) in self.registered() {
            let own = entry_name(rank, &name);
            let first = entry_name(0, &name);
            let source = if manifest.entries.contains_key(&own) {
                rank
            } else if resharded && manifest.entries.contains_key(&first) {
                0
            } else {
                let mut looked_for = vec![own];
                if resharded && rank != 0 {
                    looked_for.push(first);
                }
                return Err(ManagerError::StateMissing {
                    checkpoint: point.name.clone(),
                    state: name,
                    looked_for,
                });
            };
            let entry = entry_name(source, &name);
            wanted.push((name, state, entry, source));
        }
        let entries: BTreeSet<&str> = wanted.iter().map(|w| w.2.as_str()).collect();
        let mut bytes = ckpt
            .load_entries(&point.name, |e| entries.contains(e))
            .await?;
        let mut warnings = Vec::new();
        let mut states = Vec::new();
        for (name, state, entry, source) in wanted {
            let Some(data) = bytes.remove(&entry) else {
                return Err(ManagerError::StateMissing {
                    checkpoint: point.name.clone(),
                    state: name,
                    looked_for: vec![entry],
                });
            };
            warnings.extend(self.inner.checks.run(&point, &name, &data)?);
            states.push((name, state, data, source));
        }
        Ok(Loaded {
            point,
            resharded,
            warnings,
            states,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sequence_is_read_back_from_a_managed_name() {
        assert_eq!(name_sequence("run/ckpt-0000000042-step-7-final"), Some(42));
        assert_eq!(name_sequence("ckpt-0000000001"), Some(1));
        assert_eq!(name_sequence("run/ckpt-12"), None);
        assert_eq!(name_sequence("other"), None);
    }

    #[test]
    fn only_coordination_failures_stop_the_fallback() {
        assert!(falls_back(&ManagerError::LoadTimeout {
            checkpoint: "c".into(),
            after: std::time::Duration::from_secs(1),
        }));
        assert!(!falls_back(&ManagerError::OutOfStep {
            rank: 1,
            reason: "r".into(),
        }));
    }
}
