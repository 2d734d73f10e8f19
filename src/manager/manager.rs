//! [`CheckpointManager`]: the handle a job keeps, and the inner state its
//! clones share (the checkpoint handle, the settings, the registered
//! states, the event channel, the last background error and the names no
//! retention may delete).
//!
//! The handle's operations live beside the mechanism they belong to:
//! saving in `saving.rs`, the decisions of rank 0 in `coordination.rs`, the
//! schedule in `schedule.rs`, retention in `cleanup.rs`, restores in
//! `restore.rs`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures::Stream;
use tokio::sync::broadcast;

use crate::checkpoint::DistributedCheckpoint;
use crate::coordinator::Coordinator;
use crate::storage::CheckpointStorage;

use super::builder::CheckpointManagerBuilder;
use super::config::CheckpointManagerConfig;
use super::coordination::Coordination;
use super::error::ManagerError;
use super::events::{self, CheckpointEvent, EVENT_CAPACITY};
use super::integrity::IntegrityChecks;
use super::names::validate_state_name;
use super::saving::Saving;
use super::stateful::Stateful;
#[cfg(doc)]
use super::OverlapPolicy;

/// The `tracing` target of every event of this module.
pub(crate) const TARGET: &str = "steadfast::manager";

/// Locks a std mutex, whether or not a panic poisoned it (the manager's
/// own critical sections never leave its data half-changed).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Automatic, asynchronous checkpoints of registered state over a
/// [`DistributedCheckpoint`], with retention and point-in-time recovery.
///
/// Build one per rank with [`CheckpointManager::builder`], register the
/// same states under the same names on every rank
/// ([`register_state`](Self::register_state)), then either call
/// [`step`](Self::step) from the job's loop (a checkpoint every
/// [`every_n_steps`](CheckpointManagerBuilder::every_n_steps) steps), run the
/// [`interval`](CheckpointManagerBuilder::interval) schedule on a task with
/// [`start`](Self::start), or save now with
/// [`create_checkpoint`](Self::create_checkpoint). On start-up,
/// [`restore_latest`](Self::restore_latest) brings the states back from the
/// newest checkpoint that verifies.
///
/// # Saves
///
/// A save blocks its caller only while the states are
/// [snapshotted](Stateful::snapshot) into memory; the write, the hashing,
/// the compression and the commit run on a spawned task (see
/// [`PendingSave`](super::PendingSave), [`events`](Self::events),
/// [`last_error`](Self::last_error),
/// [`wait_for_pending`](Self::wait_for_pending)). At most one save is in
/// flight; a save due while one runs is handled by the [`OverlapPolicy`].
///
/// # Ranks
///
/// Rank 0 decides every due save (save or skip, its name and step) and
/// sends the decision to the other ranks as a coordinator
/// [signal](Coordinator::signal), so that every rank saves the same
/// checkpoints and no rank waits for a save another skipped. Every rank
/// must therefore make the same calls of [`step`](Self::step),
/// [`create_checkpoint`](Self::create_checkpoint) and
/// [`ScheduleHandle::stop`](super::ScheduleHandle::stop) in the same order;
/// the interval schedule is driven by rank 0 alone, and restores are agreed
/// by a vote (every rank restores the same checkpoint, or none does). The
/// manager uses the coordinator's `all_gather` for its saves (and once, to
/// agree on a token for its signal keys): do not use the same coordinator
/// for other collectives while the manager runs.
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
/// use steadfast::coordinator::InMemoryCoordinator;
/// use steadfast::manager::{CheckpointManager, JsonState};
/// use steadfast::retry::RetryPolicy;
/// use steadfast::storage::MemoryStorage;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let rank = InMemoryCoordinator::new(1).remove(0);
/// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
/// let manager = CheckpointManager::builder(ckpt).prefix("run-1").every_n_steps(2).build()?;
/// let progress = JsonState::new(0u64);
/// manager.register_state("progress", progress.clone())?;
///
/// for _ in 0..4 {
///     progress.update(|p| *p += 1);
///     if let Some(pending) = manager.step().await? {
///         pending.wait().await?;
///     }
/// }
/// progress.set(0);
/// let report = manager.restore_latest().await?.expect("a checkpoint");
/// assert_eq!(report.point.step, Some(4));
/// assert_eq!(progress.get(), 4);
/// # Ok(())
/// # }
/// ```
pub struct CheckpointManager<S, C> {
    pub(crate) inner: Arc<Inner<S, C>>,
}

/// What the clones of a manager share.
pub(crate) struct Inner<S, C> {
    pub(crate) ckpt: Arc<DistributedCheckpoint<S, C>>,
    pub(crate) config: CheckpointManagerConfig,
    pub(crate) checks: IntegrityChecks,
    pub(crate) states: Mutex<BTreeMap<String, Arc<dyn Stateful>>>,
    /// How many times [`CheckpointManager::step`] was called (or the step
    /// a restore went back to).
    pub(crate) step: AtomicU64,
    pub(crate) coordination: Coordination,
    pub(crate) saving: Saving,
    pub(crate) events: broadcast::Sender<CheckpointEvent>,
    pub(crate) last_error: Mutex<Option<Arc<ManagerError>>>,
    /// Checkpoints being written or loaded by this manager: never deleted
    /// by its retention (each with how many hold it).
    pub(crate) protected: Mutex<HashMap<String, usize>>,
}

impl<S, C> Clone for CheckpointManager<S, C> {
    fn clone(&self) -> Self {
        CheckpointManager {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S: fmt::Debug, C: fmt::Debug> fmt::Debug for CheckpointManager<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointManager")
            .field("checkpoint", &self.inner.ckpt)
            .field("config", &self.inner.config)
            .field("checks", &self.inner.checks)
            .field(
                "states",
                &lock(&self.inner.states).keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl<S: CheckpointStorage, C: Coordinator> CheckpointManager<S, C> {
    /// A builder of a manager over `ckpt` (one per rank).
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// use std::time::Duration;
    /// use steadfast::manager::CheckpointManager;
    ///
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// let manager = CheckpointManager::builder(ckpt).interval(Duration::from_secs(300)).build()?;
    /// assert_eq!(manager.config().interval, Some(Duration::from_secs(300)));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn builder(ckpt: DistributedCheckpoint<S, C>) -> CheckpointManagerBuilder<S, C> {
        CheckpointManagerBuilder::new(ckpt)
    }

    pub(crate) fn from_parts(
        ckpt: DistributedCheckpoint<S, C>,
        config: CheckpointManagerConfig,
        checks: IntegrityChecks,
    ) -> Self {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        CheckpointManager {
            inner: Arc::new(Inner {
                ckpt: Arc::new(ckpt),
                config,
                checks,
                states: Mutex::new(BTreeMap::new()),
                step: AtomicU64::new(0),
                coordination: Coordination::new(),
                saving: Saving::new(),
                events,
                last_error: Mutex::new(None),
                protected: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Registers `state` under `name`; every checkpoint from now on holds
    /// it, and every restore restores it. Register the same names on every
    /// rank (each rank's state is its own entry, `rank-{rank:05}/{name}`).
    ///
    /// # Errors
    ///
    /// [`ManagerError::InvalidStateName`] when `name` is not a valid key
    /// segment (letters, digits, `-`, `_`, `.`), and
    /// [`ManagerError::DuplicateState`] when a state of that name is
    /// registered already; nothing is registered then.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// use std::sync::Mutex;
    /// use steadfast::manager::{CheckpointManager, ManagerError};
    ///
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// # let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// let manager = CheckpointManager::builder(ckpt).build()?;
    /// manager.register_state("agent_state", Mutex::new(vec![0u32; 4]))?;
    /// assert!(matches!(manager.register_state("agent_state", Mutex::new(0)), Err(ManagerError::DuplicateState { .. })));
    /// assert!(matches!(manager.register_state("agent state", Mutex::new(0)), Err(ManagerError::InvalidStateName { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn register_state(
        &self,
        name: &str,
        state: impl Stateful + 'static,
    ) -> Result<(), ManagerError> {
        validate_state_name(name)?;
        let mut states = lock(&self.inner.states);
        if states.contains_key(name) {
            return Err(ManagerError::DuplicateState {
                name: name.to_string(),
            });
        }
        states.insert(name.to_string(), Arc::new(state));
        Ok(())
    }

    /// The names of the registered states, in order.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # use steadfast::manager::{CheckpointManager, JsonState};
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// # let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// let manager = CheckpointManager::builder(ckpt).build()?;
    /// manager.register_state("b", JsonState::new(1))?;
    /// manager.register_state("a", JsonState::new(2))?;
    /// assert_eq!(manager.states(), ["a", "b"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn states(&self) -> Vec<String> {
        lock(&self.inner.states).keys().cloned().collect()
    }

    /// The registered states, in name order.
    pub(crate) fn registered(&self) -> Vec<(String, Arc<dyn Stateful>)> {
        lock(&self.inner.states)
            .iter()
            .map(|(name, state)| (name.clone(), Arc::clone(state)))
            .collect()
    }

    /// The settings the manager was built with.
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
    /// let manager = CheckpointManager::builder(ckpt).prefix("job-7").build()?;
    /// assert_eq!(manager.config().prefix, "job-7");
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn config(&self) -> &CheckpointManagerConfig {
        &self.inner.config
    }

    /// The checkpoint handle the manager saves through.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # use steadfast::manager::CheckpointManager;
    /// # let rank = InMemoryCoordinator::new(2).remove(1);
    /// # let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// let manager = CheckpointManager::builder(ckpt).build()?;
    /// assert_eq!(manager.checkpoint().rank(), 1);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn checkpoint(&self) -> &DistributedCheckpoint<S, C> {
        &self.inner.ckpt
    }

    /// The current step: how many times [`step`](Self::step) was called,
    /// or the step of the checkpoint last restored and the steps since.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # use steadfast::manager::CheckpointManager;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// # let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// let manager = CheckpointManager::builder(ckpt).build()?;
    /// manager.step().await?;
    /// assert_eq!(manager.current_step(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn current_step(&self) -> u64 {
        self.inner.step.load(Ordering::SeqCst)
    }

    /// The step a save taken now records: none before the first
    /// [`step`](Self::step) (and no restore).
    pub(crate) fn step_for_save(&self) -> Option<u64> {
        Some(self.current_step()).filter(|s| *s > 0)
    }

    /// The manager's events from now on: saves started, committed and
    /// failed, due saves skipped, checkpoints deleted by retention. A
    /// stream that falls behind by more than
    /// [`EVENT_CAPACITY`](super::EVENT_CAPACITY) events gets one
    /// [`CheckpointEvent::Lagged`] saying how many it missed. The stream is
    /// `Unpin` and ends when the manager and its tasks are gone.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// use futures::StreamExt;
    /// use steadfast::manager::{CheckpointEvent, CheckpointManager, JsonState};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// # let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// let manager = CheckpointManager::builder(ckpt).build()?;
    /// manager.register_state("s", JsonState::new(1))?;
    /// let mut events = manager.events();
    /// manager.create_checkpoint(None).await?.wait().await?;
    /// assert!(matches!(events.next().await, Some(CheckpointEvent::Started { .. })));
    /// assert!(matches!(events.next().await, Some(CheckpointEvent::Committed { .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub fn events(&self) -> impl Stream<Item = CheckpointEvent> + Unpin + Send + 'static {
        events::stream(self.inner.events.subscribe())
    }

    /// The error of the last background operation that failed (a save, a
    /// scheduled decision, retention), if any.
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
    /// let manager = CheckpointManager::builder(ckpt).build()?;
    /// assert!(manager.last_error().is_none());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn last_error(&self) -> Option<Arc<ManagerError>> {
        lock(&self.inner.last_error).clone()
    }

    /// Sends an event to every stream (none listening is fine).
    pub(crate) fn emit(&self, event: CheckpointEvent) {
        let _ = self.inner.events.send(event);
    }

    /// Records the error of a background operation.
    pub(crate) fn record_error(&self, error: Arc<ManagerError>) {
        tracing::warn!(target: TARGET, rank = self.inner.ckpt.rank(), error = %error, "background checkpoint work failed");
        *lock(&self.inner.last_error) = Some(error);
    }

    /// Keeps `name` from retention until the guard is dropped.
    pub(crate) fn protect(&self, name: &str) -> Protected<S, C> {
        *lock(&self.inner.protected)
            .entry(name.to_string())
            .or_insert(0) += 1;
        Protected {
            manager: self.clone(),
            name: name.to_string(),
        }
    }
}

impl<S, C> CheckpointManager<S, C> {
    /// The names retention must not delete now.
    pub(crate) fn protected_names(&self) -> HashSet<String> {
        lock(&self.inner.protected).keys().cloned().collect()
    }
}

/// A name protected from retention while it lives.
pub(crate) struct Protected<S, C> {
    manager: CheckpointManager<S, C>,
    name: String,
}

impl<S, C> Drop for Protected<S, C> {
    fn drop(&mut self) {
        let mut protected = lock(&self.manager.inner.protected);
        if let Some(count) = protected.get_mut(&self.name) {
            *count -= 1;
            if *count == 0 {
                protected.remove(&self.name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::InMemoryCoordinator;
    use crate::storage::MemoryStorage;

    #[test]
    fn handles_are_send_sync_and_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<CheckpointManager<MemoryStorage, InMemoryCoordinator>>();
        check::<CheckpointManager<Arc<dyn CheckpointStorage>, Arc<dyn Coordinator>>>();
        fn shared<T: Send + Sync + 'static>() {}
        shared::<super::super::PendingSave>();
        shared::<super::super::ScheduleHandle>();
        shared::<super::super::CheckpointEvent>();
        shared::<super::super::RestoreReport>();
        shared::<super::super::JsonState<Vec<u8>>>();
        shared::<super::super::StateError>();
    }
}
