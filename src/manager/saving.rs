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

use std::io;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::time::Instant;

use crate::checkpoint::{CheckpointInfo, SaveOptions, ShardData};
use crate::coordinator::Coordinator;
use crate::storage::CheckpointStorage;

use super::coordination::Action;
use super::error::ManagerError;
use super::events::{CheckpointEvent, SaveTimings};
use super::manager::{lock, CheckpointManager, TARGET};
use super::names::entry_name;
use super::points::LABEL_KEY;
use super::stateful::StateError;

/// How a save ended.
type Outcome = Result<CheckpointInfo, Arc<ManagerError>>;

/// The saves of one manager.
#[derive(Debug)]
pub(crate) struct Saving {
    state: Mutex<SaveState>,
    /// The highest ordinal whose save has finished (saves finish in order).
    done: watch::Sender<u64>,
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
        }
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

/// What a save task needs.
struct Job {
    ordinal: u64,
    sequence: u64,
    name: String,
    step: Option<u64>,
    label: Option<String>,
    /// The snapshot, or why it could not be taken.
    shard: Result<ShardData, String>,
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

    /// Snapshots every registered state into this rank's shard.
    fn snapshot(&self) -> Result<ShardData, StateError> {
        let rank = self.inner.ckpt.rank();
        let mut shard = ShardData::new();
        for (name, state) in self.registered() {
            let bytes = state.snapshot().map_err(|e| e.in_state(&name))?;
            shard.push(entry_name(rank, &name), bytes);
        }
        Ok(shard)
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
        let snapshot = self.snapshot();
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
        let (shard, result) = match snapshot {
            Ok(shard) => (Ok(shard), Ok(())),
            Err(e) => (Err(e.to_string()), Err(e)),
        };
        let job = Job {
            ordinal,
            sequence,
            name: name.clone(),
            step,
            label,
            shard,
            snapshot: elapsed,
            outcome: sender,
        };
        let manager = self.clone();
        tokio::spawn(async move { manager.run(job).await });
        result?;
        Ok(Some(PendingSave {
            name,
            outcome: receiver,
        }))
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
        let saving_at = Instant::now();
        let ckpt = &self.inner.ckpt;
        let saved = match shard {
            Ok(shard) => ckpt.save(&name, &shard, options).await,
            // This rank's part fails, so the checkpoint fails on every rank
            // exactly as a failed write does.
            Err(reason) => {
                ckpt.save_stream(
                    &name,
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
        };
        let timings = SaveTimings {
            snapshot,
            queued,
            save: saving_at.elapsed(),
        };
        drop(guard);
        let result: Outcome = match saved {
            Ok(info) => {
                tracing::info!(target: TARGET, name = %info.name, sequence = ?info.sequence, "checkpoint committed");
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
