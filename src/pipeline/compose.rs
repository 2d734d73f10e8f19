//! [`Pipeline`] and its [`PipelineBuilder`]: strategies composed once, in
//! the order given, and run around each call.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::error::PipelineError;
use super::fallback::Fallback;
use super::retry::RetryStrategy;
use super::strategy::{Append, Innermost, Operation, Strategy, Then};
use super::timeout::Timeout;
use super::Bulkhead;
use crate::breaker::CircuitBreaker;
use crate::error::ConfigError;
use crate::retry::RetryPolicy;

/// Strategies composed around a call, built once and run with
/// [`execute`](Self::execute).
///
/// The first strategy added is the outermost: in
/// `fallback → total timeout → retry → circuit breaker → attempt timeout →
/// bulkhead`, the fallback sees what the whole rest produced, the total
/// timeout bounds every attempt and every wait between them, the breaker
/// counts each attempt, and the attempt timeout bounds one attempt.
///
/// The composition is static (the strategies are nested types, see
/// [`Then`](super::Then)), so a pipeline costs what the same strategies
/// nested by hand cost, and a strategy it does not hold costs nothing. It is
/// `Clone` (clones share the breaker's, the bulkhead's, … state, as clones of
/// those do), and `Send + Sync` when its strategies are.
///
/// The operation is a `Fn + Sync` returning a `Send` future: a retry calls
/// it again, a hedge calls it while an earlier attempt still runs, and the
/// call's future is `Send`, so that it can be spawned or served by hyper,
/// axum or tonic. Keep what an attempt changes in an atomic or behind a
/// lock, or clone what each attempt needs.
///
/// # Errors and events
///
/// Every failure is a [`PipelineError`] that says which strategy stopped
/// the call and wraps the operation's own error. A pipeline can carry a
/// name ([`PipelineBuilder::name`]); a failed call then logs a `DEBUG`
/// event (target `steadfast::pipeline`, fields `pipeline`, `stopped_by`,
/// `attempts`).
///
/// # Examples
///
/// ```
/// use std::io;
/// use std::time::Duration;
/// use steadfast::breaker::CircuitBreaker;
/// use steadfast::pipeline::{Fallback, Pipeline};
/// use steadfast::retry::RetryPolicy;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), steadfast::ConfigError> {
/// let pipeline = Pipeline::builder()
///     .name("inventory")
///     .fallback(Fallback::value(0)) // the last known count, say
///     .timeout(Duration::from_secs(10)) // the whole call, waits included
///     .retry(RetryPolicy::builder().max_retries(3).build()?)
///     .circuit_breaker(CircuitBreaker::builder().failure_threshold(5).build()?)
///     .timeout(Duration::from_secs(2)) // one attempt
///     .build()?;
///
/// let count = pipeline
///     .execute(|| async { Ok::<u32, io::Error>(42) })
///     .await
///     .unwrap();
/// assert_eq!(count, 42);
///
/// let count = pipeline
///     .execute(|| async { Err::<u32, _>(io::Error::from(io::ErrorKind::ConnectionReset)) })
///     .await
///     .unwrap();
/// assert_eq!(count, 0); // the fallback's value, after 4 attempts
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a pipeline does nothing until `execute` is awaited"]
pub struct Pipeline<S> {
    name: Option<Arc<str>>,
    strategies: S,
    /// The handles of a named pipeline's metrics.
    #[cfg(feature = "metrics")]
    metrics: Option<Arc<crate::metrics::PipelineMetrics>>,
}

impl Pipeline<Innermost> {
    /// A builder with no strategy yet; add them outermost first.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::pipeline::Pipeline;
    ///
    /// let pipeline = Pipeline::builder().timeout(Duration::from_secs(1)).build()?;
    /// # let _ = pipeline;
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn builder() -> PipelineBuilder<Innermost> {
        PipelineBuilder {
            name: None,
            strategies: Innermost,
            added: 0,
            error: None,
        }
    }
}

impl<X> Pipeline<Then<X, Innermost>> {
    /// A pipeline of one strategy, without a name (it cannot fail to build).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::{Fallback, Pipeline};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let pipeline = Pipeline::of(Fallback::value(0u8));
    /// assert_eq!(pipeline.execute(|| async { Err::<u8, _>("down") }).await.unwrap(), 0);
    /// # }
    /// ```
    pub fn of(strategy: X) -> Self {
        Pipeline {
            name: None,
            strategies: Innermost.append(strategy),
            #[cfg(feature = "metrics")]
            metrics: None,
        }
    }
}

impl<S> Pipeline<S> {
    /// The name given with [`PipelineBuilder::name`], if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::pipeline::Pipeline;
    ///
    /// let pipeline = Pipeline::builder()
    ///     .name("billing")
    ///     .timeout(Duration::from_secs(1))
    ///     .build()?;
    /// assert_eq!(pipeline.name(), Some("billing"));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The composed strategies, outermost first.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::pipeline::Pipeline;
    ///
    /// let pipeline = Pipeline::builder().timeout(Duration::from_secs(1)).build()?;
    /// let _chain = pipeline.strategies();
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn strategies(&self) -> &S {
        &self.strategies
    }

    /// Runs `operation` under every strategy of the pipeline.
    ///
    /// # Errors
    ///
    /// A [`PipelineError`]: the operation's error
    /// ([`Operation`](PipelineError::Operation)) when no strategy stopped
    /// the call, or the strategy that stopped it.
    ///
    /// # Cancellation
    ///
    /// Dropping the future drops the attempts in flight and gives back what
    /// each strategy holds (a bulkhead slot, a breaker's trial place, a
    /// queue place).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::pipeline::{Pipeline, StoppedBy};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::ConfigError> {
    /// let pipeline = Pipeline::builder().timeout(Duration::from_millis(100)).build()?;
    /// let slow = pipeline
    ///     .execute(|| async {
    ///         tokio::time::sleep(Duration::from_secs(1)).await;
    ///         Ok::<_, std::io::Error>(())
    ///     })
    ///     .await;
    /// assert_eq!(slow.unwrap_err().stopped_by(), StoppedBy::Timeout);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn execute<F, Fut, T, E>(&self, operation: F) -> Result<T, PipelineError<E>>
    where
        S: Strategy<T, E>,
        F: Fn() -> Fut + Sync,
        Fut: Future<Output = Result<T, E>> + Send,
    {
        let result = self.strategies.execute(Operation(&operation)).await;
        #[cfg(feature = "metrics")]
        if let Some(metrics) = &self.metrics {
            metrics.record(&result);
        }
        if let (Err(error), Some(name)) = (&result, &self.name) {
            report_failure(name, error);
        }
        result
    }
}

/// The event of a named pipeline's failed call.
#[cold]
#[inline(never)]
fn report_failure<E>(name: &str, error: &PipelineError<E>) {
    tracing::debug!(
        target: "steadfast::pipeline",
        pipeline = name,
        stopped_by = %error.stopped_by(),
        attempts = error.attempts(),
        "call failed"
    );
}

/// Builds a [`Pipeline`]: each method adds a strategy inside the ones added
/// before it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::pipeline::{Bulkhead, Pipeline};
/// use steadfast::retry::RetryPolicy;
///
/// let pipeline = Pipeline::builder()
///     .retry(RetryPolicy::default())
///     .bulkhead(Bulkhead::builder().max_concurrent(8).build()?)
///     .timeout(Duration::from_secs(2))
///     .build()?;
/// # let _ = pipeline;
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct PipelineBuilder<S> {
    name: Option<Arc<str>>,
    strategies: S,
    added: usize,
    error: Option<ConfigError>,
}

impl<S> PipelineBuilder<S> {
    /// Names the pipeline, for its events (see [`Pipeline`]) and, with the
    /// `metrics` feature, its metrics: calls by what ended them and
    /// timeouts, labelled `name` (see `steadfast::metrics`). The
    /// strategies inside are named on their own.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::pipeline::Pipeline;
    ///
    /// let pipeline = Pipeline::builder()
    ///     .name("search")
    ///     .timeout(Duration::from_secs(1))
    ///     .build()?;
    /// assert_eq!(pipeline.name(), Some("search"));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Adds any [`Strategy`], inside the ones added before.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::pipeline::{Pipeline, Timeout};
    ///
    /// let pipeline = Pipeline::builder()
    ///     .strategy(Timeout::new(Duration::from_secs(1))?)
    ///     .build()?;
    /// # let _ = pipeline;
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn strategy<X>(self, strategy: X) -> PipelineBuilder<S::Output>
    where
        S: Append<X>,
    {
        PipelineBuilder {
            name: self.name,
            strategies: self.strategies.append(strategy),
            added: self.added + 1,
            error: self.error,
        }
    }

    /// Adds a [`Timeout`]: the rest of the pipeline must answer within
    /// `after`. Outside a retry it bounds the whole call, waits included;
    /// inside, one attempt.
    ///
    /// A zero timeout makes [`build`](Self::build) fail.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::pipeline::Pipeline;
    ///
    /// let err = Pipeline::builder().timeout(Duration::ZERO).build().unwrap_err();
    /// assert_eq!(err.field(), "timeout");
    /// ```
    pub fn timeout(mut self, after: Duration) -> PipelineBuilder<S::Output>
    where
        S: Append<Timeout>,
    {
        let timeout = match Timeout::new(after) {
            Ok(timeout) => timeout,
            Err(error) => {
                self.error.get_or_insert(error);
                Timeout::unchecked(after)
            }
        };
        self.strategy(timeout)
    }

    /// Adds a retry under `policy`, retrying the errors that are
    /// [`Transient`](crate::retry::Transient); for a predicate, a check of
    /// `Ok` values or a retry budget, add a [`RetryStrategy`] with
    /// [`strategy`](Self::strategy).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::Pipeline;
    /// use steadfast::retry::RetryPolicy;
    ///
    /// let pipeline = Pipeline::builder().retry(RetryPolicy::default()).build()?;
    /// # let _ = pipeline;
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn retry(self, policy: RetryPolicy) -> PipelineBuilder<S::Output>
    where
        S: Append<RetryStrategy>,
    {
        self.strategy(RetryStrategy::new(policy))
    }

    /// Adds a circuit breaker: each call that reaches it is one call of the
    /// breaker. Errors of the operation and timeouts further in count as
    /// failures; a refusal of a bulkhead or rate limiter further in counts
    /// as nothing (the dependency was not reached).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::CircuitBreaker;
    /// use steadfast::pipeline::Pipeline;
    ///
    /// let pipeline = Pipeline::builder()
    ///     .circuit_breaker(CircuitBreaker::default())
    ///     .build()?;
    /// # let _ = pipeline;
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn circuit_breaker(self, breaker: CircuitBreaker) -> PipelineBuilder<S::Output>
    where
        S: Append<CircuitBreaker>,
    {
        self.strategy(breaker)
    }

    /// Adds a [`Bulkhead`]: at most its `max_concurrent` calls run the rest
    /// of the pipeline at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::{Bulkhead, Pipeline};
    ///
    /// let pipeline = Pipeline::builder()
    ///     .bulkhead(Bulkhead::builder().max_concurrent(4).build()?)
    ///     .build()?;
    /// # let _ = pipeline;
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn bulkhead(self, bulkhead: Bulkhead) -> PipelineBuilder<S::Output>
    where
        S: Append<Bulkhead>,
    {
        self.strategy(bulkhead)
    }

    /// Adds a [`RateLimiter`](super::RateLimiter): each call that reaches it
    /// takes a permit first (or waits for one, in wait mode), and a refusal
    /// says when to come back ([`PipelineError::RateLimited`]), which a
    /// retry outside honours.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::pipeline::{Pipeline, RateLimiter};
    ///
    /// let pipeline = Pipeline::builder()
    ///     .rate_limiter(
    ///         RateLimiter::builder()
    ///             .permits(100)
    ///             .period(Duration::from_secs(1))
    ///             .build()?,
    ///     )
    ///     .build()?;
    /// # let _ = pipeline;
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    #[cfg(feature = "rate-limit")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rate-limit")))]
    pub fn rate_limiter(self, limiter: super::RateLimiter) -> PipelineBuilder<S::Output>
    where
        S: Append<super::RateLimiter>,
    {
        self.strategy(limiter)
    }

    /// Adds a [`Hedge`](super::Hedge): when the rest of the pipeline has not
    /// answered after the hedge's delay, it is started again (up to the
    /// hedge's `max_attempts` at once), and the first success wins; the
    /// others are dropped.
    ///
    /// Put a circuit breaker outside the hedge to count a hedged call once,
    /// inside to count each attempt.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::pipeline::{Hedge, Pipeline};
    ///
    /// let pipeline = Pipeline::builder()
    ///     .hedge(Hedge::builder().max_attempts(2).delay(Duration::from_millis(50)).build()?)
    ///     .timeout(Duration::from_secs(1))
    ///     .build()?;
    /// # let _ = pipeline;
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn hedge(self, hedge: super::Hedge) -> PipelineBuilder<S::Output>
    where
        S: Append<super::Hedge>,
    {
        self.strategy(hedge)
    }

    /// Adds a [`Fallback`]: what the call returns when the rest of the
    /// pipeline fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::{Fallback, Pipeline};
    ///
    /// let pipeline = Pipeline::builder().fallback(Fallback::value("cached")).build()?;
    /// # let _ = pipeline;
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn fallback<K, P>(self, fallback: Fallback<K, P>) -> PipelineBuilder<S::Output>
    where
        S: Append<Fallback<K, P>>,
    {
        self.strategy(fallback)
    }

    /// The pipeline.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field: `strategies` when none was added,
    /// `timeout` for a zero timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::Pipeline;
    ///
    /// let err = Pipeline::builder().build().unwrap_err();
    /// assert_eq!(err.field(), "strategies");
    /// ```
    pub fn build(self) -> Result<Pipeline<S>, ConfigError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        if self.added == 0 {
            return Err(ConfigError::new(
                "strategies",
                "must hold at least one strategy: an empty pipeline would only call the operation",
            ));
        }
        Ok(Pipeline {
            #[cfg(feature = "metrics")]
            metrics: self
                .name
                .as_deref()
                .map(crate::metrics::PipelineMetrics::new),
            name: self.name,
            strategies: self.strategies,
        })
    }
}
