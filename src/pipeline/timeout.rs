//! [`Timeout`]: a pipeline strategy that bounds the rest of the pipeline.

use std::future::Future;
use std::time::Duration;

use futures::FutureExt;

use super::error::PipelineError;
use super::strategy::{Next, Strategy};
use crate::error::ConfigError;
use crate::timeout::{TimeoutError, TimeoutHandler};

/// Bounds the rest of the pipeline: when it has not answered within
/// `after`, it is dropped (cancelled) and the call fails with
/// [`PipelineError::TimedOut`].
///
/// Placed outside a retry it is the whole call's budget, waits between
/// attempts included; inside, one attempt's. It costs what
/// [`TimeoutHandler::run`] costs: no allocation, and a timer only once the
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
        TimeoutHandler::default()
            .run(self.after, next.call())
            .map(|timed| match timed {
                Ok(result) => result,
                Err(TimeoutError::Elapsed { after, .. }) => Err(PipelineError::TimedOut { after }),
                Err(_) => Err(PipelineError::TimedOut {
                    after: Duration::ZERO,
                }),
            })
    }
}
