//! Asynchronous saves: the registered states are snapshotted into memory
//! on the caller, then a spawned task saves them through
//! [`DistributedCheckpoint::save`](crate::checkpoint::DistributedCheckpoint::save)
//! (hashing, compression, writing, the commit), reports the outcome
//! (events, [`last_error`](CheckpointManager::last_error), the
//! [`PendingSave`]) and, on rank 0, applies retention.
//!
//! At most one save writes at a time: each save has an ordinal (rank 0's
//! count of saves, sent in the decision) and its task first waits until the
//! save before it has finished, so a queued save starts when the one in
//! flight ends, and the collectives of the saves meet in the same order on
//! every rank. How many are in flight (writing or queued) is what rank 0's
//! [`OverlapPolicy`](super::OverlapPolicy) looks at.
//!
//! A manager that saves in chunks remembers the last committed save: its
//! checkpoint, and the [`revision`](super::Stateful::revision) each state
//! had when it was snapshotted for it. A state whose revision is still that
//! one is stored by reference to that checkpoint's chunks
//! ([`ShardData::with_unchanged_entry`]), without a snapshot; should the
//! save fail because they cannot be reused (the checkpoint deleted, a chunk
//! lost), every rank makes it again at once with every state snapshotted.
//! A restore forgets what was remembered.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;

use crate::checkpoint::{
    CheckpointError, CheckpointInfo, Chunking, DigestAlgorithm, SaveOptions, ShardData,
    REUSE_FAILED,
};
use crate::coordinator::Coordinator;
use crate::storage::CheckpointStorage;

use super::coordination::Action;
use super::error::ManagerError;
use super::events::{CheckpointEvent, SaveTimings};
use super::manager::{lock, CheckpointManager, TARGET};
use super::names::entry_name;
use super::points::LABEL_KEY;
use super::stateful::StateError;
use super::trace;

/// How a save ended.
type Outcome = Result<CheckpointInfo, Arc<ManagerError>>;

/// The saves of one manager.
#[derive(Debug)]
pub(crate) struct Saving {
    state: Mutex<SaveState>,
    /// The highest ordinal whose save has finished (saves finish in order).
    done: watch::Sender<u64>,
    /// What chunked saves remember to skip unchanged states.
    reuse: Mutex<Reuse>,
}

#[derive(Debug, Default)]
struct Reuse {
    /// The last committed save: its checkpoint and the revision of each
    /// state (that reported one) snapshotted for it.
    last: Option<(String, HashMap<String, u64>)>,
}

#[derive(Debug, Default)]
struct SaveState {
    /// Saves writing or queued.
    in_flight: usize,
    /// The outcomes of the saves not yet waited for, oldest first.
    pending: Vec<(String, watch::Receiver<Option<Outcome>>)>,
}

impl Saving {
    pub(crate) fn new() -> Self {
        Saving {
            state: Mutex::new(SaveState::default()),
            done: watch::Sender::new(0),
            reuse: Mutex::new(Reuse::default()),
        }
    }

    /// Forgets the last committed save's revisions (after a restore, the
    /// states hold other bytes).
    pub(crate) fn forget_revisions(&self) {
        lock(&self.reuse).last = None;
    }

    /// How many saves are writing or queued.
    pub(crate) fn in_flight(&self) -> usize {
        lock(&self.state).in_flight
    }

    /// Waits until no save is in flight.
    pub(crate) async fn wait_idle(&self) {
        let pending: Vec<_> = lock(&self.state).pending.clone();
        for (_, mut outcome) in pending {
            let _ = outcome.wait_for(Option::is_some).await;
        }
    }
}

/// A save started in the background: its name, and its outcome to wait
/// for. Dropping it does not stop the save.
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
/// let manager = CheckpointManager::builder(ckpt).prefix("p").build()?;
/// manager.register_state("s", JsonState::new(1))?;
/// let pending = manager.create_checkpoint(None).await?;
/// assert_eq!(pending.name(), "p/ckpt-0000000001");
/// assert_eq!(pending.wait().await?.name, "p/ckpt-0000000001");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use = "a save runs whether or not it is waited for; wait() gives its outcome"]
pub struct PendingSave {
    name: String,
    outcome: watch::Receiver<Option<Outcome>>,
}

impl PendingSave {
    /// The checkpoint's name.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # use steadfast::manager::{CheckpointManager, JsonState};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// # let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// let manager = CheckpointManager::builder(ckpt).prefix("p").every_n_steps(1).build()?;
    /// manager.register_state("s", JsonState::new(1))?;
    /// let pending = manager.step().await?.expect("due at every step");
    /// assert_eq!(pending.name(), "p/ckpt-0000000001-step-1");
    /// # Ok(())
    /// # }
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits for the save to commit or fail.
    ///
    /// # Errors
    ///
    /// [`ManagerError::SaveFailed`] with the save's error (the same on every
    /// rank), or when the save's task ended without an outcome (the runtime
    /// shut down).
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # use steadfast::manager::{CheckpointManager, JsonState};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// # let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// let manager = CheckpointManager::builder(ckpt).build()?;
    /// manager.register_state("s", JsonState::new(1))?;
    /// let info = manager.create_checkpoint(Some("manual")).await?.wait().await?;
    /// assert_eq!(info.sequence, Some(1));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn wait(self) -> Result<CheckpointInfo, ManagerError> {
        wait_outcome(&self.name, self.outcome).await
    }
}

async fn wait_outcome(
    name: &str,
    mut outcome: watch::Receiver<Option<Outcome>>,
) -> Result<CheckpointInfo, ManagerError> {
    let result = match outcome.wait_for(Option::is_some).await {
        Ok(value) => value.clone(),
        Err(_) => None,
    };
    match result {
        Some(Ok(info)) => Ok(info),
        Some(Err(error)) => Err(ManagerError::SaveFailed {
            name: name.to_string(),
            source: error,
        }),
        None => Err(ManagerError::SaveFailed {
            name: name.to_string(),
            source: Arc::new(ManagerError::Abandoned {
                name: name.to_string(),
            }),
        }),
    }
}

/// A rank's snapshot for one save.
struct Snapshot {
    shard: ShardData,
    /// The checkpoint the unchanged states refer to, if any.
    base: Option<String>,
    /// The revision of each state (that reported one).
    revisions: HashMap<String, u64>,
}

/// What a save task needs.
struct Job {
    ordinal: u64,
    sequence: u64,
    name: String,
    step: Option<u64>,
    label: Option<String>,
    /// The snapshot, or why it could not be taken.
    shard: Result<ShardData, String>,
    /// The checkpoint the unchanged states refer to, if any.
    base: Option<String>,
    /// The revision of each state snapshotted (that reported one).
    revisions: HashMap<String, u64>,
    snapshot: std::time::Duration,
    outcome: watch::Sender<Option<Outcome>>,
}

impl<S: CheckpointStorage, C: Coordinator> CheckpointManager<S, C> {
    /// Waits for every save in flight (or queued) to end, and returns the
    /// newest one's checkpoint; `None` when none was pending.
    ///
    /// # Errors
    ///
    /// [`ManagerError::SaveFailed`] when the newest save failed.
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
    /// manager.register_state("s", JsonState::new(1))?;
    /// assert!(manager.wait_for_pending().await?.is_none());
    /// let _ = manager.create_checkpoint(None).await?;
    /// assert!(manager.wait_for_pending().await?.is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn wait_for_pending(&self) -> Result<Option<CheckpointInfo>, ManagerError> {
        let pending = lock(&self.inner.saving.state).pending.clone();
        let mut last = None;
        for (name, outcome) in pending {
            last = Some(wait_outcome(&name, outcome).await);
        }
        lock(&self.inner.saving.state)
            .pending
            .retain(|(_, outcome)| outcome.borrow().is_none());
        last.transpose()
    }

    /// Snapshots every registered state into this rank's shard; with
    /// `reuse`, a state unchanged since the last committed save (same
    /// revision) is marked unchanged instead, and the base checkpoint is
    /// returned.
    fn snapshot(&self, reuse: bool) -> Result<Snapshot, StateError> {
        let rank = self.inner.ckpt.rank();
        let last = if reuse {
            lock(&self.inner.saving.reuse).last.clone()
        } else {
            None
        };
        let mut shard = ShardData::new();
        let mut revisions = HashMap::new();
        let mut base = None;
        for (name, state) in self.registered() {
            // Read before the snapshot: a change racing with it is then
            // seen as a change at the next save.
            let revision = state.revision();
            if let Some(revision) = revision {
                revisions.insert(name.clone(), revision);
            }
            let unchanged = last.as_ref().and_then(|(checkpoint, seen)| {
                (revision.is_some() && seen.get(&name).copied() == revision).then_some(checkpoint)
            });
            match unchanged {
                Some(checkpoint) => {
                    shard.push_unchanged(entry_name(rank, &name));
                    base = Some(checkpoint.clone());
                }
                None => {
                    let bytes = state.snapshot().map_err(|e| e.in_state(&name))?;
                    shard.push(entry_name(rank, &name), bytes);
                }
            }
        }
        Ok(Snapshot {
            shard,
            base,
            revisions,
        })
    }

    /// Whether saves are chunked, and how (from the config).
    fn chunking(&self) -> Option<(Chunking, DigestAlgorithm)> {
        let config = &self.inner.config;
        config.chunking.map(|c| (c, config.digest))
    }

    /// Carries out rank 0's decision on this rank: a skip is reported; a
    /// save snapshots the states and starts its task.
    pub(crate) fn execute(&self, action: Action) -> Result<Option<PendingSave>, ManagerError> {
        let (ordinal, sequence, name, step, label) = match action {
            Action::Skip { step, code } => {
                tracing::debug!(target: TARGET, ?step, reason = %code.reason(), "checkpoint skipped");
                self.emit(CheckpointEvent::Skipped {
                    step,
                    reason: code.reason(),
                });
                return Ok(None);
            }
            Action::Save {
                ordinal,
                sequence,
                name,
                step,
                label,
            } => (ordinal, sequence, name, step, label),
        };
        let started = Instant::now();
        let snapshot = self.snapshot(self.chunking().is_some());
        let elapsed = started.elapsed();
        let (sender, receiver) = watch::channel(None);
        {
            let mut state = lock(&self.inner.saving.state);
            state.in_flight += 1;
            state
                .pending
                .retain(|(_, outcome)| outcome.borrow().is_none());
            state.pending.push((name.clone(), receiver.clone()));
        }
        let (shard, base, revisions, result) = match snapshot {
            Ok(s) => (Ok(s.shard), s.base, s.revisions, Ok(())),
            Err(e) => (Err(e.to_string()), None, HashMap::new(), Err(e)),
        };
        let job = Job {
            ordinal,
            sequence,
            name: name.clone(),
            step,
            label,
            shard,
            base,
            revisions,
            snapshot: elapsed,
            outcome: sender,
        };
        let manager = self.clone();
        // Opened here, in the caller's context, and carried into the task.
        let span = trace::save_span(&name, step, self.inner.ckpt.rank());
        tokio::spawn(async move { manager.run(job).await }.instrument(span));
        result?;
        Ok(Some(PendingSave {
            name,
            outcome: receiver,
        }))
    }

    /// Saves this rank's shard, or, when its snapshot failed, takes part
    /// in the save as a rank that failed (so that the checkpoint fails on
    /// every rank exactly as a failed write does).
    async fn save_shard(
        &self,
        name: &str,
        shard: Result<ShardData, String>,
        options: SaveOptions,
    ) -> Result<CheckpointInfo, CheckpointError> {
        let ckpt = &self.inner.ckpt;
        match shard {
            Ok(shard) => ckpt.save(name, &shard, options).await,
            Err(reason) => {
                ckpt.save_stream(
                    name,
                    || {
                        let reason = format!("the snapshot failed: {reason}");
                        async move {
                            Err::<io::Cursor<Vec<u8>>, _>(io::Error::new(
                                io::ErrorKind::InvalidInput,
                                reason,
                            ))
                        }
                    },
                    options,
                )
                .await
            }
        }
    }

    /// The background task of one save.
    async fn run(self, job: Job) {
        let Job {
            ordinal,
            sequence,
            name,
            step,
            label,
            shard,
            base,
            mut revisions,
            snapshot,
            outcome,
        } = job;
        let config = &self.inner.config;
        let queued_at = Instant::now();
        // The save before this one finishes first (bounded, so that a save a
        // rank never received cannot hold this one forever: then it runs,
        // and the checkpoint's own protocol sorts out the ranks).
        let mut done = self.inner.saving.done.subscribe();
        let bound = config.save_timeout.saturating_mul(3);
        let _ =
            tokio::time::timeout(bound, done.wait_for(|d| d.saturating_add(1) >= ordinal)).await;
        let queued = queued_at.elapsed();
        self.emit(CheckpointEvent::Started {
            name: name.clone(),
            step,
            sequence,
        });
        let guard = self.protect(&name);
        let mut options = SaveOptions::new()
            .timeout(config.save_timeout)
            .compression(config.compression);
        if let Some(step) = step {
            options = options.step(step);
        }
        if let Some(label) = &label {
            options = options.metadata(LABEL_KEY, label.clone());
        }
        if let Some((chunking, digest)) = self.chunking() {
            options = options.chunking(chunking).digest(digest);
        }
        let saving_at = Instant::now();
        let ckpt = &self.inner.ckpt;
        let full = options.clone();
        // The base stays out of this manager's retention while the save
        // refers to it.
        let base_guard = base.as_ref().map(|base| self.protect(base));
        if let Some(base) = base {
            options = options.base(base);
        }
        let mut saved = self.save_shard(&name, shard, options).await;
        // The reason is the same on every rank, so every rank makes the
        // save again (its name was rolled back), each with full snapshots.
        if let Err(CheckpointError::SaveFailed { reason, .. }) = &saved
            && reason.contains(REUSE_FAILED)
        {
            {
                tracing::warn!(target: TARGET, name = %name, reason = %reason, "unchanged states could not be reused; saving every state again");
                let shard = match self.snapshot(false) {
                    Ok(again) => {
                        revisions = again.revisions;
                        Ok(again.shard)
                    }
                    Err(e) => Err(e.to_string()),
                };
                saved = self.save_shard(&name, shard, full).await;
            }
        }
        drop(base_guard);
        let timings = SaveTimings {
            snapshot,
            queued,
            save: saving_at.elapsed(),
        };
        drop(guard);
        let result: Outcome = match saved {
            Ok(info) => {
                tracing::info!(target: TARGET, name = %info.name, sequence = ?info.sequence, "checkpoint committed");
                lock(&self.inner.saving.reuse).last = Some((info.name.clone(), revisions));
                if ckpt.rank() == 0 {
                    self.committed_sequence(info.sequence);
                }
                self.emit(CheckpointEvent::Committed {
                    info: info.clone(),
                    timings,
                });
                if ckpt.rank() == 0 {
                    self.retain_after_commit().await;
                }
                Ok(info)
            }
            Err(e) => {
                let error = Arc::new(ManagerError::from(e));
                self.record_error(Arc::clone(&error));
                self.emit(CheckpointEvent::Failed {
                    name: name.clone(),
                    error: Arc::clone(&error),
                });
                Err(error)
            }
        };
        trace::record_outcome(&tracing::Span::current(), &result);
        self.inner
            .saving
            .done
            .send_modify(|d| *d = (*d).max(ordinal));
        {
            let mut state = lock(&self.inner.saving.state);
            state.in_flight = state.in_flight.saturating_sub(1);
        }
        outcome.send_replace(Some(result));
    }
}
