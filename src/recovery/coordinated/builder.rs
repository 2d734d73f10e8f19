//! [`RecoveryCoordinatorBuilder`]: the handlers, the checkpoint source and
//! the fence of a [`RecoveryCoordinator`]; and [`RecoveryHandle`], its
//! running task.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::checkpoint::MembershipFence;
use crate::coordinator::Membership;

use super::config::RecoveryCoordinatorConfig;
use super::events::RecoveryContext;
use super::plan::FailureCause;
use super::runner::{Handler, HandlerError, Inner, LeaderHook, RecoveryCoordinator, Registered};
use super::source::CheckpointSource;

/// Builds a [`RecoveryCoordinator`].
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::InMemoryCoordinator;
/// use steadfast::recovery::{FailureCause, RecoveryCoordinator, RecoveryCoordinatorConfig};
///
/// let rank = InMemoryCoordinator::new(1).remove(0);
/// let recovery = RecoveryCoordinator::builder(rank)
///     .config(RecoveryCoordinatorConfig::default())
///     .on_failure_of(FailureCause::Predicted, |ctx| async move {
///         println!("migrating away from {:?}", ctx.plan.failed);
///         Ok(())
///     })
///     .build();
/// # drop(recovery);
/// ```
pub struct RecoveryCoordinatorBuilder<M> {
    membership: M,
    config: RecoveryCoordinatorConfig,
    handlers: Vec<Registered>,
    source: Option<Arc<dyn CheckpointSource>>,
    on_leader: Option<LeaderHook>,
}

impl<M> fmt::Debug for RecoveryCoordinatorBuilder<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecoveryCoordinatorBuilder")
            .field("config", &self.config)
            .field("handlers", &self.handlers.len())
            .finish_non_exhaustive()
    }
}

impl<M: Membership> RecoveryCoordinatorBuilder<M> {
    pub(super) fn new(membership: M) -> Self {
        RecoveryCoordinatorBuilder {
            membership,
            config: RecoveryCoordinatorConfig::default(),
            handlers: Vec::new(),
            source: None,
            on_leader: None,
        }
    }

    /// Sets the configuration (strategy, quorum, timeout, attempts).
    ///
    /// # Examples
    ///
    /// See [`RecoveryCoordinatorBuilder`].
    pub fn config(mut self, config: RecoveryCoordinatorConfig) -> Self {
        self.config = config;
        self
    }

    /// Where the leader finds the checkpoint to restore from (a
    /// [`DistributedCheckpoint`](crate::checkpoint::DistributedCheckpoint)
    /// in an `Arc`); without one, plans name no checkpoint.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// use steadfast::coordinator::InMemoryCoordinator;
    /// use steadfast::recovery::RecoveryCoordinator;
    /// use steadfast::retry::RetryPolicy;
    /// use steadfast::storage::MemoryStorage;
    ///
    /// let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = Arc::new(DistributedCheckpoint::new(MemoryStorage::new(), rank.clone(), RetryPolicy::default(), CheckpointOptions::default()));
    /// let recovery = RecoveryCoordinator::builder(rank).checkpoints(ckpt).build();
    /// # drop(recovery);
    /// ```
    pub fn checkpoints(mut self, source: impl CheckpointSource) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// Keeps `fence` (the one this member's checkpoints commit under) set
    /// to the leader of each epoch, so that the leader commits and its
    /// commits are confirmed under its leadership.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::MembershipFence;
    /// use steadfast::coordinator::InMemoryCoordinator;
    /// use steadfast::recovery::RecoveryCoordinator;
    ///
    /// let rank = InMemoryCoordinator::new(1).remove(0);
    /// let fence = MembershipFence::new(rank.clone());
    /// let recovery = RecoveryCoordinator::builder(rank).fence(fence.clone()).build();
    /// # drop(recovery);
    /// ```
    pub fn fence<F: Membership>(mut self, fence: MembershipFence<F>) -> Self {
        self.on_leader = Some(Arc::new(move |leadership, committer| {
            fence.set_leader(leadership, committer)
        }));
        self
    }

    /// Registers a handler run on every member with a part in a plan,
    /// whatever the kind of failure: restore the checkpoint, load the
    /// assigned shards, resume. An error makes the plan fail everywhere,
    /// and the next attempt follows.
    ///
    /// # Examples
    ///
    /// See [`RecoveryCoordinator`].
    pub fn on_failure<F, Fut>(self, handler: F) -> Self
    where
        F: Fn(RecoveryContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        self.register(None, handler)
    }

    /// Registers a handler run only for plans that recover a failure of
    /// `kind`.
    ///
    /// # Examples
    ///
    /// See [`RecoveryCoordinatorBuilder`].
    pub fn on_failure_of<F, Fut>(self, kind: FailureCause, handler: F) -> Self
    where
        F: Fn(RecoveryContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        self.register(Some(kind), handler)
    }

    fn register<F, Fut>(mut self, kind: Option<FailureCause>, handler: F) -> Self
    where
        F: Fn(RecoveryContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |ctx| Box::pin(handler(ctx)));
        self.handlers.push(Registered { kind, handler });
        self
    }

    /// The coordinator.
    ///
    /// # Examples
    ///
    /// See [`RecoveryCoordinatorBuilder`].
    pub fn build(self) -> RecoveryCoordinator<M> {
        let (events, _) = broadcast::channel(256);
        RecoveryCoordinator {
            inner: Arc::new(Inner {
                membership: self.membership,
                config: self.config,
                handlers: self.handlers,
                source: self.source,
                on_leader: self.on_leader,
                events,
                #[cfg(feature = "metrics")]
                metrics: crate::metrics::RecoveryMetrics::new(),
            }),
        }
    }
}

/// The running task of a [`RecoveryCoordinator`]; stop it with
/// [`stop`](Self::stop). Dropping the handle stops the task too.
///
/// # Examples
///
/// See [`RecoveryCoordinator`].
#[derive(Debug)]
pub struct RecoveryHandle {
    task: Option<JoinHandle<()>>,
}

impl RecoveryHandle {
    pub(super) fn new(task: JoinHandle<()>) -> Self {
        RecoveryHandle { task: Some(task) }
    }

    /// Stops the task and waits for it to end.
    ///
    /// # Examples
    ///
    /// See [`RecoveryCoordinator`].
    pub async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Whether the task has ended (it gave up, or was stopped).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::InMemoryCoordinator;
    /// use steadfast::recovery::RecoveryCoordinator;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let handle = RecoveryCoordinator::builder(InMemoryCoordinator::new(1).remove(0)).build().start();
    /// assert!(!handle.is_finished());
    /// handle.stop().await;
    /// # }
    /// ```
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }
}

impl Drop for RecoveryHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
