//! [`MonitorHandle`]: the handle of a background task that stops on drop.

use std::fmt;
use std::future::Future;

use tokio::sync::oneshot;
use tokio::task::{AbortHandle, JoinHandle};

use crate::health::HealthError;

/// The handle of a background task of this crate: a monitor's sweep, a
/// [`CoordinatorHeartbeat`](crate::health::CoordinatorHeartbeat) publisher,
/// a [`DegradationManager`](crate::degradation::DegradationManager) watcher.
///
/// [`stop`](MonitorHandle::stop) asks the task to end and waits until it has;
/// dropping the handle aborts the task at its next await point. Either way
/// no task outlives its handle.
///
/// # Examples
///
/// ```
/// use steadfast::health::HealthMonitor;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), steadfast::health::HealthError> {
/// let monitor = HealthMonitor::default();
/// let handle = monitor.start()?;
/// assert!(!handle.is_finished());
/// let task = handle.abort_handle();
/// handle.stop().await;
/// assert!(task.is_finished());
/// # Ok(())
/// # }
/// ```
pub struct MonitorHandle {
    task: &'static str,
    stop: Option<oneshot::Sender<()>>,
    join: Option<JoinHandle<()>>,
    abort: AbortHandle,
}

impl fmt::Debug for MonitorHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitorHandle")
            .field("task", &self.task)
            .field("finished", &self.abort.is_finished())
            .finish()
    }
}

impl MonitorHandle {
    /// Spawns `body` on the current tokio runtime. The body receives the stop
    /// signal and must end soon after it fires (or its sender is dropped).
    pub(crate) fn spawn<F, Fut>(task: &'static str, body: F) -> Result<MonitorHandle, HealthError>
    where
        F: FnOnce(oneshot::Receiver<()>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|source| HealthError::NoRuntime { task, source })?;
        let (stop, stopped) = oneshot::channel();
        let join = runtime.spawn(body(stopped));
        let abort = join.abort_handle();
        tracing::debug!(target: "steadfast::health", task, "background task started");
        Ok(MonitorHandle {
            task,
            stop: Some(stop),
            join: Some(join),
            abort,
        })
    }

    /// Asks the task to stop and waits until it has ended.
    ///
    /// # Cancellation
    ///
    /// Dropping the returned future before it completes drops the handle,
    /// which aborts the task.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::health::HealthError> {
    /// let handle = steadfast::health::HealthMonitor::default().start()?;
    /// handle.stop().await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(join) = self.join.take() {
            // A task that panicked or was aborted has ended all the same.
            let _ = join.await;
        }
        tracing::debug!(target: "steadfast::health", task = self.task, "background task stopped");
    }

    /// Whether the task has ended.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::health::HealthError> {
    /// let handle = steadfast::health::HealthMonitor::default().start()?;
    /// assert!(!handle.is_finished());
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_finished(&self) -> bool {
        self.abort.is_finished()
    }

    /// A handle that tells whether the task has ended (and can abort it),
    /// usable after this handle is gone.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::health::HealthError> {
    /// let handle = steadfast::health::HealthMonitor::default().start()?;
    /// let task = handle.abort_handle();
    /// drop(handle);
    /// tokio::task::yield_now().await;
    /// assert!(task.is_finished());
    /// # Ok(())
    /// # }
    /// ```
    pub fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }
}

impl Drop for MonitorHandle {
    fn drop(&mut self) {
        if self.join.is_some() {
            self.abort.abort();
        }
    }
}
