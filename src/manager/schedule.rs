//! The interval schedule: [`CheckpointManager::start`] runs it on a task,
//! and [`ScheduleHandle::stop`] ends it, waits for the save in flight and
//! can take a final checkpoint.
//!
//! Rank 0's task ticks every [`interval`](super::CheckpointManagerBuilder::interval)
//! (on tokio's clock, so paused time drives it in tests) and decides each
//! tick's save; the other ranks' tasks follow its decisions (see
//! `coordination.rs`), so the ranks never drift apart even if their clocks
//! do. A tick whose decision is still being carried out when the next one is
//! due is delayed, never doubled.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::checkpoint::CheckpointInfo;
use crate::coordinator::{Coordinator, CoordinatorError};
use crate::storage::CheckpointStorage;

use super::coordination::Stream;
use super::error::ManagerError;
use super::manager::CheckpointManager;

type Finish = Box<
    dyn FnOnce(
            bool,
        )
            -> Pin<Box<dyn Future<Output = Result<Option<CheckpointInfo>, ManagerError>> + Send>>
        + Send
        + Sync,
>;

/// The running schedule of a manager, from
/// [`CheckpointManager::start`]. Dropping it stops the schedule (without
/// waiting); [`stop`](Self::stop) stops it and waits.
///
/// # Examples
///
/// ```
/// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
/// # use steadfast::coordinator::InMemoryCoordinator;
/// # use steadfast::retry::RetryPolicy;
/// # use steadfast::storage::MemoryStorage;
/// use std::time::Duration;
/// use steadfast::manager::{CheckpointManager, JsonState, RecoveryFilter};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let rank = InMemoryCoordinator::new(1).remove(0);
/// # let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
/// let manager = CheckpointManager::builder(ckpt).interval(Duration::from_secs(60)).build()?;
/// manager.register_state("s", JsonState::new(0))?;
/// let schedule = manager.start();
/// tokio::time::sleep(Duration::from_secs(150)).await; // two ticks
/// let last = schedule.stop(true).await?.expect("a final checkpoint");
/// assert!(last.name.ends_with("-final"));
/// assert_eq!(manager.recovery_points(&RecoveryFilter::all()).await?.len(), 3);
/// # Ok(())
/// # }
/// ```
#[must_use = "dropping the handle stops the schedule"]
pub struct ScheduleHandle {
    finish: Finish,
}

impl fmt::Debug for ScheduleHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScheduleHandle").finish_non_exhaustive()
    }
}

impl ScheduleHandle {
    /// Stops the schedule: no tick starts after it is called (one being
    /// carried out finishes), then waits for the saves in flight, then, with
    /// `final_checkpoint`, takes one more checkpoint (labelled `final`, a
    /// collective: every rank stops the same way) and waits for it. Returns
    /// that checkpoint, or else the newest save waited for.
    ///
    /// # Errors
    ///
    /// The error of the final checkpoint, or of the newest save waited for
    /// ([`ManagerError::SaveFailed`]).
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
    /// let manager = CheckpointManager::builder(ckpt).interval(std::time::Duration::from_secs(60)).build()?;
    /// manager.register_state("s", JsonState::new(1))?;
    /// let schedule = manager.start();
    /// // Stopped before the first tick, without a final checkpoint: nothing saved.
    /// assert!(schedule.stop(false).await?.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn stop(
        self,
        final_checkpoint: bool,
    ) -> Result<Option<CheckpointInfo>, ManagerError> {
        (self.finish)(final_checkpoint).await
    }
}

impl<S: CheckpointStorage, C: Coordinator> CheckpointManager<S, C> {
    /// Runs the interval schedule on a spawned task (nothing is scheduled
    /// when the manager has no interval), until the handle is stopped or
    /// dropped. Call it once per manager, on every rank: rank 0's task
    /// decides each tick, the others' follow.
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
    /// use std::time::Duration;
    /// use futures::StreamExt;
    /// use steadfast::manager::CheckpointEvent;
    ///
    /// let manager = CheckpointManager::builder(ckpt).interval(Duration::from_secs(300)).build()?;
    /// manager.register_state("s", JsonState::new(1))?;
    /// let mut events = manager.events();
    /// let _schedule = manager.start();
    /// tokio::time::sleep(Duration::from_secs(301)).await;
    /// assert!(matches!(events.next().await, Some(CheckpointEvent::Started { .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub fn start(&self) -> ScheduleHandle {
        let (stop, stopped) = oneshot::channel::<()>();
        let manager = self.clone();
        let task: JoinHandle<()> = tokio::spawn(async move { manager.run_schedule(stopped).await });
        let manager = self.clone();
        ScheduleHandle {
            finish: Box::new(move |final_checkpoint| {
                Box::pin(async move {
                    drop(stop);
                    let _ = task.await;
                    let pending = manager.wait_for_pending().await;
                    if final_checkpoint {
                        let saved = manager.create_checkpoint(Some("final")).await?;
                        return saved.wait().await.map(Some);
                    }
                    pending
                })
            }),
        }
    }

    async fn run_schedule(self, mut stopped: oneshot::Receiver<()>) {
        let Some(interval) = self.inner.config.interval else {
            let _ = stopped.await;
            return;
        };
        let ckpt = &self.inner.ckpt;
        if ckpt.world_size() > 1 {
            // The token is exchanged here on every rank, before any tick.
            if let Err(e) = self.token().await {
                self.record_error(Arc::new(e));
            }
        }
        if ckpt.rank() == 0 {
            let mut ticker = tokio::time::interval_at(Instant::now() + interval, interval);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    _ = &mut stopped => break,
                    _ = ticker.tick() => {
                        if let Err(e) = self.due(Stream::Tick, None, false).await {
                            self.record_error(Arc::new(e));
                        }
                    }
                }
            }
        } else {
            let wait = interval
                .saturating_mul(2)
                .saturating_add(self.inner.config.save_timeout);
            loop {
                tokio::select! {
                    biased;
                    _ = &mut stopped => break,
                    decision = self.follow(Stream::Tick, wait) => match decision {
                        Ok(action) => {
                            if let Err(e) = self.execute(action) {
                                self.record_error(Arc::new(e));
                            }
                        }
                        // Rank 0 has not ticked yet (or was slow to): wait on.
                        Err(ManagerError::Coordination {
                            source: CoordinatorError::Timeout { .. },
                            ..
                        }) => {}
                        Err(e) => {
                            self.record_error(Arc::new(e));
                            tokio::select! {
                                _ = &mut stopped => break,
                                _ = tokio::time::sleep(interval) => {}
                            }
                        }
                    }
                }
            }
            // Carry out the decisions rank 0 already made, so that this rank
            // joins every save rank 0 started.
            while let Ok(action) = self.follow(Stream::Tick, Duration::from_millis(1)).await {
                if let Err(e) = self.execute(action) {
                    self.record_error(Arc::new(e));
                }
            }
        }
    }
}
