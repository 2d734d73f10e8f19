//! The preemptive-migration hooks (a handler called once per member that
//! crosses a probability threshold) and [`PredictionHandle`], the handle of
//! the periodic evaluation task.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::oneshot;
use tokio::task::{AbortHandle, JoinHandle};

use super::predictor::PredictedFailure;
use super::PredictionError;
use crate::health::MemberId;

/// Refuses a threshold outside `0..=1` (or NaN).
pub(crate) fn check_threshold(threshold: f64) -> Result<(), PredictionError> {
    if (0.0..=1.0).contains(&threshold) {
        Ok(())
    } else {
        Err(PredictionError::InvalidThreshold { threshold })
    }
}

/// A registered handler, boxed.
pub(crate) type Handler = Arc<dyn Fn(PredictedFailure) -> BoxFuture<'static, ()> + Send + Sync>;

/// A handler and the members currently at or above its threshold.
pub(crate) struct Hook {
    pub(crate) threshold: f64,
    pub(crate) handler: Handler,
    above: HashSet<MemberId>,
}

impl Hook {
    pub(crate) fn new<F, Fut>(threshold: f64, handler: F) -> Hook
    where
        F: Fn(PredictedFailure) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Hook {
            threshold,
            handler: Arc::new(move |p| Box::pin(handler(p))),
            above: HashSet::new(),
        }
    }

    /// Whether `prediction` crosses the threshold upwards now (and records
    /// it as above); a member below the threshold is re-armed.
    pub(crate) fn crosses(&mut self, prediction: &PredictedFailure) -> bool {
        if prediction.probability >= self.threshold {
            self.above.insert(prediction.member.clone())
        } else {
            self.above.remove(&prediction.member);
            false
        }
    }

    /// Forgets a member (removed, failed, or no longer judged).
    pub(crate) fn forget(&mut self, member: &MemberId) {
        self.above.remove(member);
    }

    /// Keeps only the members `keep` says are still judged.
    pub(crate) fn retain(&mut self, keep: impl Fn(&MemberId) -> bool) {
        self.above.retain(|m| keep(m));
    }
}

/// The handle of the predictor's periodic evaluation task
/// ([`FailurePredictor::start`](super::FailurePredictor::start)).
///
/// [`stop`](PredictionHandle::stop) asks the task to end and waits until it
/// has; dropping the handle aborts the task at its next await point.
///
/// # Examples
///
/// ```
/// use steadfast::recovery::prediction::FailurePredictor;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), steadfast::recovery::prediction::PredictionError> {
/// let predictor = FailurePredictor::default();
/// let handle = predictor.start()?;
/// assert!(!handle.is_finished());
/// handle.stop().await;
/// # Ok(())
/// # }
/// ```
pub struct PredictionHandle {
    stop: Option<oneshot::Sender<()>>,
    join: Option<JoinHandle<()>>,
    abort: AbortHandle,
}

impl fmt::Debug for PredictionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PredictionHandle")
            .field("finished", &self.abort.is_finished())
            .finish()
    }
}

impl PredictionHandle {
    /// Spawns `body` on the current runtime; it receives the stop signal.
    pub(crate) fn spawn<F, Fut>(body: F) -> Result<PredictionHandle, PredictionError>
    where
        F: FnOnce(oneshot::Receiver<()>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|source| PredictionError::NoRuntime { source })?;
        let (stop, stopped) = oneshot::channel();
        let join = runtime.spawn(body(stopped));
        let abort = join.abort_handle();
        tracing::debug!(target: "steadfast::prediction", "evaluation task started");
        Ok(PredictionHandle {
            stop: Some(stop),
            join: Some(join),
            abort,
        })
    }

    /// Asks the task to stop and waits until it has ended (a handler in
    /// progress is finished first).
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
    /// # async fn main() -> Result<(), steadfast::recovery::prediction::PredictionError> {
    /// let handle = steadfast::recovery::prediction::FailurePredictor::default().start()?;
    /// handle.stop().await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(join) = self.join.take() {
            let _ = join.await;
        }
        tracing::debug!(target: "steadfast::prediction", "evaluation task stopped");
    }

    /// Whether the task has ended.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::recovery::prediction::PredictionError> {
    /// let handle = steadfast::recovery::prediction::FailurePredictor::default().start()?;
    /// assert!(!handle.is_finished());
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_finished(&self) -> bool {
        self.abort.is_finished()
    }
}

impl Drop for PredictionHandle {
    fn drop(&mut self) {
        if self.join.is_some() {
            self.abort.abort();
        }
    }
}
