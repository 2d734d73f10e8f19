//! [`RetryStrategy`]: retries inside a pipeline, on errors and on `Ok`
//! values a predicate rejects.

use std::time::Duration;

use tokio::time::Instant;

use super::error::PipelineError;
use super::strategy::{Next, Strategy};
use crate::retry::{Backoff, ByTransient, Classifier, GiveUp, RetryPolicy, When};

/// What a [`RetryStrategy`] makes of an `Ok` value: accept it, or retry
/// (after the backoff's delay, or after a delay the value asks for, as an
/// HTTP 503 with a `Retry-After` header does).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::pipeline::ResultVerdict;
///
/// let busy = ResultVerdict::RetryAfter(Duration::from_secs(2));
/// assert_ne!(busy, ResultVerdict::Accept);
/// assert_eq!(ResultVerdict::from(true), ResultVerdict::Retry);
/// assert_eq!(ResultVerdict::from(false), ResultVerdict::Accept);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResultVerdict {
    /// The value is the answer.
    Accept,
    /// Retry after the policy's backoff delay.
    Retry,
    /// Retry after this delay instead of the backoff's.
    RetryAfter(Duration),
}

/// `true` retries (after the backoff's delay), `false` accepts.
impl From<bool> for ResultVerdict {
    fn from(retry: bool) -> Self {
        if retry {
            ResultVerdict::Retry
        } else {
            ResultVerdict::Accept
        }
    }
}

/// Decides which `Ok` values a [`RetryStrategy`] retries.
///
/// [`AcceptAll`] (the default) accepts every value and costs nothing;
/// [`RetryIfOk`] asks a predicate.
///
/// # Examples
///
/// ```
/// use steadfast::pipeline::{AcceptAll, ResultCheck, ResultVerdict};
/// assert_eq!(AcceptAll.check(&503), ResultVerdict::Accept);
/// ```
pub trait ResultCheck<T> {
    /// What to make of `value`.
    fn check(&self, value: &T) -> ResultVerdict;
}

/// The [`ResultCheck`] that accepts every `Ok` value (the default).
///
/// # Examples
///
/// ```
/// use steadfast::pipeline::{AcceptAll, ResultCheck, ResultVerdict};
/// assert_eq!(AcceptAll.check(&"anything"), ResultVerdict::Accept);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct AcceptAll;

impl<T> ResultCheck<T> for AcceptAll {
    #[inline(always)]
    fn check(&self, _: &T) -> ResultVerdict {
        ResultVerdict::Accept
    }
}

/// A [`ResultCheck`] made from a predicate, set with
/// [`RetryStrategy::retry_if_ok`]: the predicate returns a `bool` (retry or
/// not) or a [`ResultVerdict`].
///
/// # Examples
///
/// ```
/// use steadfast::pipeline::{ResultCheck, ResultVerdict, RetryIfOk};
///
/// let unavailable = RetryIfOk(|status: &u16| *status == 503);
/// assert_eq!(unavailable.check(&503), ResultVerdict::Retry);
/// assert_eq!(unavailable.check(&200), ResultVerdict::Accept);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RetryIfOk<P>(pub P);

impl<T, P, V> ResultCheck<T> for RetryIfOk<P>
where
    P: Fn(&T) -> V,
    V: Into<ResultVerdict>,
{
    fn check(&self, value: &T) -> ResultVerdict {
        (self.0)(value).into()
    }
}

/// Retries the rest of a pipeline under a [`RetryPolicy`]: after an error
/// the classifier calls transient, and after an `Ok` value the result check
/// rejects.
///
/// - Errors of the operation are classified by `C`: the error's own
///   [`Transient`](crate::retry::Transient) implementation by default
///   ([`ByTransient`]), or a predicate ([`when`](Self::when)), or any
///   [`Classifier`] ([`classify`](Self::classify)). Errors of strategies
///   further in are classified as [`PipelineError`]'s `Transient`
///   implementation says: a timeout, a bulkhead's refusal and an open
///   circuit are retried (an open circuit after the time it asks for), a
///   circuit forced open is not.
/// - `Ok` values are accepted, unless [`retry_if_ok`](Self::retry_if_ok)
///   sets a check. When the retries run out on a rejected value, the call
///   returns that last value: it is the best answer there is, and the caller
///   can look at it.
///
/// When it gives up after retrying, the error is
/// [`PipelineError::RetriesExhausted`] with the attempts and the last error;
/// an error that is not transient at the first attempt comes through as it
/// is. An attempt that succeeds at once allocates nothing and reads no clock
/// (unless the policy has a `max_elapsed` budget).
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use steadfast::pipeline::{Pipeline, RetryStrategy};
/// use steadfast::retry::RetryPolicy;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), steadfast::ConfigError> {
/// let pipeline = Pipeline::builder()
///     .strategy(
///         RetryStrategy::new(RetryPolicy::default())
///             .when(|error: &String| error.as_str() != "forbidden")
///             .retry_if_ok(|status: &u16| *status == 503),
///     )
///     .build()?;
///
/// let calls = AtomicU32::new(0);
/// let status = pipeline
///     .execute(|| async {
///         // 503, then 200.
///         let n = calls.fetch_add(1, Ordering::Relaxed);
///         Ok::<u16, String>(if n == 0 { 503 } else { 200 })
///     })
///     .await
///     .unwrap();
/// assert_eq!(status, 200);
/// assert_eq!(calls.load(Ordering::Relaxed), 2);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RetryStrategy<C = ByTransient, R = AcceptAll> {
    policy: RetryPolicy,
    classifier: C,
    results: R,
}

impl RetryStrategy {
    /// Retries under `policy` the errors that are
    /// [`Transient`](crate::retry::Transient), accepting every `Ok` value.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::RetryStrategy;
    /// use steadfast::retry::RetryPolicy;
    ///
    /// let retry = RetryStrategy::new(RetryPolicy::default());
    /// assert_eq!(retry.policy().max_retries(), 3);
    /// ```
    pub fn new(policy: RetryPolicy) -> Self {
        RetryStrategy {
            policy,
            classifier: ByTransient,
            results: AcceptAll,
        }
    }
}

impl<C, R> RetryStrategy<C, R> {
    /// The policy: how many retries, and the delays between them.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::RetryStrategy;
    /// use steadfast::retry::RetryPolicy;
    /// let retry = RetryStrategy::new(RetryPolicy::no_retry());
    /// assert_eq!(retry.policy().max_retries(), 0);
    /// ```
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Retries the operation's errors for which `predicate` returns `true`,
    /// instead of asking [`Transient`](crate::retry::Transient). The error
    /// type then need not implement it.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::RetryStrategy;
    /// use steadfast::retry::RetryPolicy;
    ///
    /// let retry = RetryStrategy::new(RetryPolicy::default()).when(|e: &&str| *e == "busy");
    /// # let _ = retry;
    /// ```
    pub fn when<P>(self, predicate: P) -> RetryStrategy<When<P>, R> {
        self.classify(When(predicate))
    }

    /// Classifies the operation's errors with `classifier` (which may also
    /// say how long to wait: `Retry-After`).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::RetryStrategy;
    /// use steadfast::retry::{ByTransient, RetryPolicy};
    /// let retry = RetryStrategy::new(RetryPolicy::default()).classify(ByTransient);
    /// # let _ = retry;
    /// ```
    pub fn classify<C2>(self, classifier: C2) -> RetryStrategy<C2, R> {
        RetryStrategy {
            policy: self.policy,
            classifier,
            results: self.results,
        }
    }

    /// Retries `Ok` values for which `predicate` returns `true` (or a
    /// [`ResultVerdict`] that says to retry, possibly after a delay the
    /// value asks for).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::pipeline::{ResultVerdict, RetryStrategy};
    /// use steadfast::retry::RetryPolicy;
    ///
    /// struct Response { status: u16, retry_after: Option<Duration> }
    ///
    /// let retry = RetryStrategy::new(RetryPolicy::default()).retry_if_ok(|r: &Response| {
    ///     match (r.status, r.retry_after) {
    ///         (503, Some(after)) => ResultVerdict::RetryAfter(after),
    ///         (503, None) => ResultVerdict::Retry,
    ///         _ => ResultVerdict::Accept,
    ///     }
    /// });
    /// # let _ = retry;
    /// ```
    pub fn retry_if_ok<P>(self, predicate: P) -> RetryStrategy<C, RetryIfOk<P>> {
        RetryStrategy {
            policy: self.policy,
            classifier: self.classifier,
            results: RetryIfOk(predicate),
        }
    }
}

/// Whether `error` is worth another attempt, and the delay it asks for:
/// the operation's errors by `classifier`, the strategies' by their own
/// classification.
fn classify<E, C: Classifier<E>>(
    classifier: &mut C,
    error: &PipelineError<E>,
) -> Option<Option<Duration>> {
    let (transient, hint) = match error {
        PipelineError::Operation(error) | PipelineError::FallbackFailed { error, .. } => {
            let transient = classifier.is_transient(error);
            (
                transient,
                transient.then(|| classifier.retry_after(error)).flatten(),
            )
        }
        PipelineError::TimedOut { .. } | PipelineError::BulkheadRejected(_) => (true, None),
        PipelineError::CircuitOpen(rejected) => (
            crate::retry::Transient::is_transient(rejected),
            rejected.retry_after,
        ),
        PipelineError::RetriesExhausted { .. } => (false, None),
    };
    transient.then_some(hint)
}

impl<T, E, C, R> Strategy<T, E> for RetryStrategy<C, R>
where
    C: Classifier<E> + Clone,
    R: ResultCheck<T>,
{
    async fn execute<N: Next<T, E>>(&self, next: N) -> Result<T, PipelineError<E>> {
        let started = self.policy.max_elapsed().map(|_| Instant::now());
        let mut classifier = self.classifier.clone();
        // Made at the first retry, boxed: the future of a call that succeeds
        // at once stays small and allocates nothing.
        let mut backoff: Option<Box<Backoff>> = None;
        let mut attempts: u32 = 0;
        loop {
            let outcome = next.call().await;
            attempts = attempts.saturating_add(1);
            let hint = match &outcome {
                Ok(value) => match self.results.check(value) {
                    ResultVerdict::Accept => return outcome,
                    ResultVerdict::Retry => None,
                    ResultVerdict::RetryAfter(after) => Some(after),
                },
                Err(error) => match classify(&mut classifier, error) {
                    Some(hint) => hint,
                    None => return give_up(outcome, attempts, GiveUp::NotTransient),
                },
            };
            let delay = match plan(&self.policy, &mut backoff, started, hint, attempts) {
                Ok(delay) => delay,
                Err(reason) => return give_up(outcome, attempts, reason),
            };
            // Not held across the wait: the future stays small.
            drop(outcome);
            // A zero delay retries at once: a timer would still wait for the
            // driver's next tick.
            if !delay.is_zero() {
                Box::pin(tokio::time::sleep(delay)).await;
            }
        }
    }
}

/// The delay before the next attempt, or why there is none.
#[inline(never)]
fn plan(
    policy: &RetryPolicy,
    backoff: &mut Option<Box<Backoff>>,
    started: Option<Instant>,
    hint: Option<Duration>,
    attempts: u32,
) -> Result<Duration, GiveUp> {
    let computed = backoff
        .get_or_insert_with(|| Box::new(policy.backoff()))
        .next()
        .ok_or(GiveUp::Exhausted)?;
    let delay = hint.unwrap_or(computed);
    if let (Some(budget), Some(started)) = (policy.max_elapsed(), started)
        && started.elapsed().saturating_add(delay) > budget
    {
        return Err(GiveUp::ElapsedBudget);
    }
    tracing::debug!(
        target: "steadfast::pipeline",
        attempt = attempts,
        max_retries = policy.max_retries(),
        delay = ?delay,
        "retrying"
    );
    Ok(delay)
}

/// What the call returns when the retry stops: a rejected value as it is;
/// an error as it is when nothing was retried, else wrapped in
/// [`PipelineError::RetriesExhausted`].
#[cold]
fn give_up<T, E>(
    outcome: Result<T, PipelineError<E>>,
    attempts: u32,
    reason: GiveUp,
) -> Result<T, PipelineError<E>> {
    let error = match outcome {
        Ok(value) => {
            tracing::debug!(
                target: "steadfast::pipeline",
                attempts,
                reason = %reason,
                "retry stopped; returning the last value"
            );
            return Ok(value);
        }
        Err(error) => error,
    };
    if attempts <= 1 && reason == GiveUp::NotTransient {
        return Err(error);
    }
    tracing::debug!(
        target: "steadfast::pipeline",
        attempts,
        reason = %reason,
        "retry gave up"
    );
    Err(PipelineError::RetriesExhausted {
        attempts,
        reason,
        last: Box::new(error),
    })
}
