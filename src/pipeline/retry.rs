//! [`RetryStrategy`]: retries inside a pipeline, on errors and on `Ok`
//! values a predicate rejects.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument;

use super::error::PipelineError;
use super::strategy::{Next, Strategy};
use crate::retry::spans::Spans;
use crate::retry::{
    AcceptOk, Backoff, Budget, ByTransient, Classifier, GiveUp, NoBudget, OkClassifier,
    RetryBudget, RetryPolicy, Verdict, When, WhenOk,
};

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
/// - `Ok` values are accepted, unless [`when_ok`](Self::when_ok) sets a
///   check. When the retries run out on a rejected value, the call returns
///   that last value: it is the best answer there is, and the caller can
///   look at it.
/// - A [`RetryBudget`] ([`budget`](Self::budget)), shared with other calls,
///   caps retries at a share of the calls: each call through the strategy
///   deposits, each retry withdraws, and a retry the budget refuses ends the
///   call with [`GiveUp::BudgetExhausted`].
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
///             .when_ok(|status: &u16| *status == 503),
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
pub struct RetryStrategy<C = ByTransient, R = AcceptOk, B = NoBudget> {
    policy: RetryPolicy,
    classifier: C,
    results: R,
    budget: B,
    name: Option<Arc<str>>,
    /// The handles of a named retry's metrics.
    #[cfg(feature = "metrics")]
    metrics: Option<crate::metrics::RetryMetrics>,
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
            results: AcceptOk,
            budget: NoBudget,
            name: None,
            #[cfg(feature = "metrics")]
            metrics: None,
        }
    }
}

impl<C, R, B> RetryStrategy<C, R, B> {
    /// Names the retry. With the `metrics` feature its attempts and
    /// give-ups are recorded under the name (label `name`; see
    /// `steadfast::metrics`): every attempt, and every sequence the policy
    /// stopped (retries exhausted, a budget spent, an error not transient
    /// after a retry, a value still rejected at the end). The policy
    /// itself stays plain data, without a name.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::RetryStrategy;
    /// use steadfast::retry::RetryPolicy;
    /// let retry = RetryStrategy::new(RetryPolicy::default()).name("rpc");
    /// assert_eq!(retry.retry_name(), Some("rpc"));
    /// ```
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        let name: Arc<str> = name.into();
        #[cfg(feature = "metrics")]
        {
            self.metrics = Some(crate::metrics::RetryMetrics::new(Arc::clone(&name)));
        }
        self.name = Some(name);
        self
    }

    /// The name given with [`name`](Self::name), if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::RetryStrategy;
    /// use steadfast::retry::RetryPolicy;
    /// assert_eq!(RetryStrategy::new(RetryPolicy::default()).retry_name(), None);
    /// ```
    pub fn retry_name(&self) -> Option<&str> {
        self.name.as_deref()
    }

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

    /// Retries the operation's errors for which `predicate` says so: a
    /// `bool`, or a [`Verdict`] (which can carry the delay the error asks
    /// for: `Verdict::of(error)` keeps a [`Transient`](crate::retry::Transient) error's own
    /// `Retry-After`). The error type then need not implement
    /// [`Transient`](crate::retry::Transient).
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
    pub fn when<P>(self, predicate: P) -> RetryStrategy<When<P>, R, B> {
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
    pub fn classify<C2>(self, classifier: C2) -> RetryStrategy<C2, R, B> {
        RetryStrategy {
            policy: self.policy,
            classifier,
            results: self.results,
            budget: self.budget,
            name: self.name,
            #[cfg(feature = "metrics")]
            metrics: self.metrics,
        }
    }

    /// Retries `Ok` values for which `predicate` says so: a `bool`, or a
    /// [`Verdict`] (`RetryAfter` for a value that asks for a delay, as an
    /// HTTP 503 with a `Retry-After` header does).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::pipeline::RetryStrategy;
    /// use steadfast::retry::{RetryPolicy, Verdict};
    ///
    /// struct Response { status: u16, retry_after: Option<Duration> }
    ///
    /// let retry = RetryStrategy::new(RetryPolicy::default()).when_ok(|r: &Response| {
    ///     match (r.status, r.retry_after) {
    ///         (503, Some(after)) => Verdict::RetryAfter(after),
    ///         (503, None) => Verdict::Retry,
    ///         _ => Verdict::Stop,
    ///     }
    /// });
    /// # let _ = retry;
    /// ```
    pub fn when_ok<P>(self, predicate: P) -> RetryStrategy<C, WhenOk<P>, B> {
        RetryStrategy {
            policy: self.policy,
            classifier: self.classifier,
            results: WhenOk(predicate),
            budget: self.budget,
            name: self.name,
            #[cfg(feature = "metrics")]
            metrics: self.metrics,
        }
    }

    /// Limits the retries to what `budget` allows; the budget is shared
    /// (clones share it), so one budget can cap the retries of many
    /// pipelines calling the same dependency.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::{Pipeline, RetryStrategy, StoppedBy};
    /// use steadfast::retry::{GiveUp, RetryBudget, RetryPolicy};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::ConfigError> {
    /// // No floor, and 10% of the calls: a single call gets no retry.
    /// let budget = RetryBudget::builder().ratio(0.1).min_retries_per_second(0).build()?;
    /// let pipeline = Pipeline::builder()
    ///     .strategy(RetryStrategy::new(RetryPolicy::default()).budget(&budget))
    ///     .build()?;
    /// let err = pipeline
    ///     .execute(|| async { Err::<(), _>(std::io::Error::from(std::io::ErrorKind::TimedOut)) })
    ///     .await
    ///     .unwrap_err();
    /// assert!(matches!(
    ///     err,
    ///     steadfast::pipeline::PipelineError::RetriesExhausted {
    ///         reason: GiveUp::BudgetExhausted,
    ///         attempts: 1,
    ///         ..
    ///     }
    /// ));
    /// assert_eq!(err.stopped_by(), StoppedBy::Retry);
    /// # Ok(())
    /// # }
    /// ```
    pub fn budget(self, budget: &RetryBudget) -> RetryStrategy<C, R, RetryBudget> {
        RetryStrategy {
            policy: self.policy,
            classifier: self.classifier,
            results: self.results,
            budget: budget.clone(),
            name: self.name,
            #[cfg(feature = "metrics")]
            metrics: self.metrics,
        }
    }
}

/// What to do after `error`: the operation's errors by `classifier`, the
/// strategies' by their own classification.
fn classify<E, C: Classifier<E>>(classifier: &mut C, error: &PipelineError<E>) -> Verdict {
    match error {
        PipelineError::Operation(error) | PipelineError::FallbackFailed { error, .. } => {
            classifier.verdict(error)
        }
        PipelineError::TimedOut { .. } | PipelineError::BulkheadRejected(_) => Verdict::Retry,
        PipelineError::CircuitOpen(rejected) => Verdict::of(rejected),
        #[cfg(feature = "rate-limit")]
        PipelineError::RateLimited(limited) => Verdict::of(limited),
        PipelineError::RetriesExhausted { .. } => Verdict::Stop,
    }
}

impl<T, E, C, R, B> Strategy<T, E> for RetryStrategy<C, R, B>
where
    T: Send,
    E: Send,
    C: Classifier<E> + Clone + Send + Sync,
    R: OkClassifier<T> + Clone + Send + Sync,
    B: Budget + Sync,
{
    async fn execute<N: Next<T, E>>(&self, next: N) -> Result<T, PipelineError<E>> {
        let started = self.policy.max_elapsed().map(|_| Instant::now());
        self.budget.deposit();
        let mut classifier = self.classifier.clone();
        let mut results = self.results.clone();
        // Made at the first retry, boxed: the future of a call that succeeds
        // at once stays small and allocates nothing.
        let mut backoff: Option<Box<Backoff>> = None;
        let mut attempts: u32 = 0;
        // Opened at the first failure, when a subscriber wants them: a call
        // that succeeds at once has no span (`crate::spans`).
        let mut spans = Spans::default();
        loop {
            let outcome = match spans.begin_attempt(attempts.saturating_add(1)) {
                Some(span) => next.call().instrument(span).await,
                None => next.call().await,
            };
            attempts = attempts.saturating_add(1);
            #[cfg(feature = "metrics")]
            if let Some(metrics) = &self.metrics {
                metrics.attempt();
            }
            let verdict = match &outcome {
                Ok(value) => results.verdict(value),
                Err(error) => classify(&mut classifier, error),
            };
            if outcome.is_ok() && !verdict.is_retry() {
                spans.succeeded(attempts.saturating_sub(1));
                return outcome;
            }
            if attempts == 1 {
                spans = Spans::failed(self.name.as_deref(), attempts);
            }
            let delay = match plan(
                &self.policy,
                &self.budget,
                &mut backoff,
                started,
                verdict,
                attempts,
            ) {
                Ok(delay) => delay,
                Err(reason) => {
                    spans.gave_up(attempts, reason);
                    #[cfg(feature = "metrics")]
                    if let Some(metrics) = &self.metrics {
                        metrics.stopped(attempts, reason);
                    }
                    return give_up(outcome, attempts, reason);
                }
            };
            spans.retrying(delay);
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

/// The delay before the next attempt, or why there is none (by
/// [`RetryPolicy::next_delay`], the rule every retry loop shares), and the
/// event that says so.
#[inline(never)]
fn plan<B: Budget>(
    policy: &RetryPolicy,
    budget: &B,
    backoff: &mut Option<Box<Backoff>>,
    started: Option<Instant>,
    verdict: Verdict,
    attempts: u32,
) -> Result<Duration, GiveUp> {
    let delay = policy.next_delay(
        verdict,
        || {
            backoff
                .get_or_insert_with(|| Box::new(policy.backoff()))
                .next()
        },
        started,
        budget,
    )?;
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
