//! [`RetryMetrics`]: the attempts and give-ups of a named retry, for a
//! [`Retry`] run on its own (a [`RetryStrategy`] in a pipeline records
//! through its own name).
//!
//! A [`RetryPolicy`] is plain data, read from configuration files, so it
//! carries no name and no handles: the name is given where the retry runs.
//!
//! [`RetryStrategy`]: crate::pipeline::RetryStrategy

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use ::metrics::{counter, Counter};
use pin_project_lite::pin_project;

use super::names;
use crate::retry::{ByTransient, GiveUp, NoHook, Retry, RetryError, RetryPolicy, Retryable};

/// The metrics of one named retry: `fault_tolerance_retry_attempts_total`
/// and `fault_tolerance_retry_give_ups_total`, labelled `name`.
///
/// Build it once (its handles are registered then) and run each retry
/// sequence through it: [`retry`](Self::retry) for the common case, or
/// [`count`](Self::count) around the operation and
/// [`instrument`](Self::instrument) around a [`Retry`] configured further
/// (`when`, `budget`, `notify`). Clones share the handles.
///
/// A give-up is a sequence that ended in an error because the policy
/// stopped retrying: retries exhausted, the time budget or the retry budget
/// spent, or an error found not transient after at least one retry. An
/// error not retried at all is not one; neither is a value a
/// [`when_ok`](Retry::when_ok) check still rejected at the end (it is
/// returned as `Ok`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::metrics::RetryMetrics;
/// use steadfast::retry::RetryPolicy;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let policy = RetryPolicy::builder().initial_delay(Duration::from_millis(10)).build()?;
/// let metrics = RetryMetrics::new("rpc");
///
/// let mut calls = 0;
/// let value = metrics
///     .retry(&policy, || {
///         calls += 1;
///         let n = calls;
///         async move {
///             if n < 2 { Err(std::io::Error::from(std::io::ErrorKind::TimedOut)) } else { Ok(n) }
///         }
///     })
///     .await?;
/// assert_eq!(value, 2); // 2 attempts recorded, no give-up
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RetryMetrics {
    inner: Arc<Handles>,
}

struct Handles {
    name: Arc<str>,
    attempts: Counter,
    give_ups: Counter,
}

impl RetryMetrics {
    /// The metrics of the retry `name`, registered now with the installed
    /// recorder.
    ///
    /// # Examples
    ///
    /// ```
    /// let metrics = steadfast::metrics::RetryMetrics::new("rpc");
    /// assert_eq!(metrics.name(), "rpc");
    /// ```
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        let name: Arc<str> = name.into();
        let label = name.to_string();
        RetryMetrics {
            inner: Arc::new(Handles {
                attempts: counter!(names::RETRY_ATTEMPTS, "name" => label.clone()),
                give_ups: counter!(names::RETRY_GIVE_UPS, "name" => label),
                name,
            }),
        }
    }

    /// The name the metrics are labelled with.
    ///
    /// # Examples
    ///
    /// ```
    /// let metrics = steadfast::metrics::RetryMetrics::new("rpc");
    /// assert_eq!(metrics.name(), "rpc");
    /// ```
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// One attempt ran.
    #[inline]
    pub(crate) fn attempt(&self) {
        self.inner.attempts.increment(1);
    }

    /// A sequence gave up.
    pub(crate) fn give_up(&self) {
        self.inner.give_ups.increment(1);
    }

    /// Records the end of a sequence that stopped for `reason` after
    /// `attempts` attempts, as the type documentation defines a give-up.
    pub(crate) fn stopped(&self, attempts: u32, reason: GiveUp) {
        if reason != GiveUp::NotTransient || attempts > 1 {
            self.give_up();
        }
    }

    /// `operation`, counting an attempt each time it is called: the
    /// operation to hand to a [`Retry`] wrapped in
    /// [`instrument`](Self::instrument).
    ///
    /// # Examples
    ///
    /// See [`instrument`](Self::instrument).
    pub fn count<F, Fut>(&self, mut operation: F) -> impl FnMut() -> Fut + use<'_, F, Fut>
    where
        F: FnMut() -> Fut,
    {
        move || {
            self.attempt();
            operation()
        }
    }

    /// `retry`, recording a give-up when it ends as one. Pair it with
    /// [`count`](Self::count) around the operation for the attempts.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::metrics::RetryMetrics;
    /// use steadfast::retry::{RetryPolicy, Retryable};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::ConfigError> {
    /// let policy = RetryPolicy::builder().max_retries(2).build()?;
    /// let metrics = RetryMetrics::new("search");
    /// let result = metrics
    ///     .instrument(
    ///         metrics
    ///             .count(|| async { Err::<(), _>("unavailable") })
    ///             .retry(&policy)
    ///             .when(|_: &&str| true),
    ///     )
    ///     .await;
    /// assert_eq!(result.unwrap_err().attempts(), 3); // 3 attempts, 1 give-up
    /// # Ok(())
    /// # }
    /// ```
    pub fn instrument<Fut>(&self, retry: Fut) -> InstrumentedRetry<'_, Fut> {
        InstrumentedRetry {
            retry,
            metrics: self,
        }
    }

    /// Runs `operation` under `policy` (retrying the errors
    /// [`Transient`](crate::retry::Transient) calls transient), recording
    /// its attempts and give-ups.
    ///
    /// # Examples
    ///
    /// See [`RetryMetrics`].
    pub fn retry<F, Fut, T, E>(
        &self,
        policy: &RetryPolicy,
        operation: F,
    ) -> InstrumentedRetry<
        '_,
        Retry<impl FnMut() -> Fut + use<'_, F, Fut, T, E>, Fut, ByTransient, NoHook>,
    >
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.instrument(self.count(operation).retry(policy))
    }
}

impl fmt::Debug for RetryMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryMetrics")
            .field("name", &self.inner.name)
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// A retry future that records a give-up when it ends as one; made by
    /// [`RetryMetrics::instrument`] and [`RetryMetrics::retry`].
    ///
    /// # Examples
    ///
    /// See [`RetryMetrics::instrument`].
    #[must_use = "futures do nothing unless polled"]
    pub struct InstrumentedRetry<'a, Fut> {
        #[pin]
        retry: Fut,
        metrics: &'a RetryMetrics,
    }
}

impl<Fut, T, E> Future for InstrumentedRetry<'_, Fut>
where
    Fut: Future<Output = Result<T, RetryError<E>>>,
{
    type Output = Result<T, RetryError<E>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = ready!(this.retry.poll(cx));
        if let Err(error) = &output {
            this.metrics.stopped(error.attempts(), error.reason());
        }
        Poll::Ready(output)
    }
}

impl<Fut> fmt::Debug for InstrumentedRetry<'_, Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedRetry")
            .field("metrics", self.metrics)
            .finish_non_exhaustive()
    }
}
