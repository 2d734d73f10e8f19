//! [`Timeout`]: a pipeline strategy that bounds the rest of the pipeline.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::task::coop;
use tokio::time::{Instant, Sleep};

use super::error::PipelineError;
use super::strategy::{Next, Strategy};
use crate::error::ConfigError;
use crate::timeout::{poll_timer, report_elapsed};

/// Bounds the rest of the pipeline: when it has not answered within
/// `after`, it is dropped (cancelled) and the call fails with
/// [`PipelineError::TimedOut`].
///
/// Placed outside a retry it is the whole call's budget, waits between
/// attempts included; inside, one attempt's. It costs what
/// [`TimeoutHandler::run`](crate::timeout::TimeoutHandler::run) costs: no allocation, and a timer only once the
/// rest of the pipeline has to wait.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::pipeline::{Pipeline, PipelineError, Timeout};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), steadfast::ConfigError> {
/// let pipeline = Pipeline::builder()
///     .strategy(Timeout::new(Duration::from_millis(500))?)
///     .build()?;
/// let err = pipeline
///     .execute(|| std::future::pending::<Result<(), std::io::Error>>())
///     .await
///     .unwrap_err();
/// assert!(matches!(err, PipelineError::TimedOut { after } if after == Duration::from_millis(500)));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout {
    after: Duration,
}

impl Timeout {
    /// A timeout of `after`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] for field `timeout` when `after` is zero: every
    /// call would fail without being tried.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::pipeline::Timeout;
    ///
    /// assert_eq!(Timeout::new(Duration::from_secs(3))?.after(), Duration::from_secs(3));
    /// assert!(Timeout::new(Duration::ZERO).is_err());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn new(after: Duration) -> Result<Self, ConfigError> {
        if after.is_zero() {
            return Err(ConfigError::new(
                "timeout",
                "must be greater than zero: every call would time out untried",
            ));
        }
        Ok(Timeout { after })
    }

    /// A timeout the builder reports as invalid when it is built.
    pub(super) fn unchecked(after: Duration) -> Self {
        Timeout { after }
    }

    /// The time the rest of the pipeline is given.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::pipeline::Timeout;
    /// assert_eq!(Timeout::new(Duration::from_secs(1))?.after(), Duration::from_secs(1));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn after(&self) -> Duration {
        self.after
    }
}

impl<T, E> Strategy<T, E> for Timeout {
    #[inline]
    fn execute<N: Next<T, E>>(
        &self,
        next: N,
    ) -> impl Future<Output = Result<T, PipelineError<E>>> + Send {
        Bounded {
            future: next.call(),
            deadline: Instant::now().checked_add(self.after),
            after: self.after,
            timer: None,
        }
    }
}

pin_project! {
    /// The rest of a pipeline bounded by a [`Timeout`]: what
    /// [`TimeoutHandler::run`](crate::timeout::TimeoutHandler::run) does, answering with the pipeline's own
    /// result type, so that an `Ok` is handed on as it is rather than
    /// through a nested `Result`.
    struct Bounded<F> {
        #[pin]
        future: F,
        // `None` when the deadline would overflow the clock: never times
        // out.
        deadline: Option<Instant>,
        after: Duration,
        // Created at the first poll at which `future` is not ready.
        #[pin]
        timer: Option<Sleep>,
    }
}

impl<F, T, E> Future for Bounded<F>
where
    F: Future<Output = Result<T, PipelineError<E>>>,
{
    type Output = Result<T, PipelineError<E>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let had_budget = coop::has_budget_remaining();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(output);
        }
        let Some(deadline) = *this.deadline else {
            return Poll::Pending;
        };
        ready!(poll_timer(this.timer, deadline, had_budget, cx));
        Poll::Ready(Err(timed_out(*this.after)))
    }
}

/// The error of a [`Bounded`] whose deadline passed, and the event that
/// says so.
#[cold]
fn timed_out<E>(after: Duration) -> PipelineError<E> {
    report_elapsed(after);
    PipelineError::TimedOut { after }
}
