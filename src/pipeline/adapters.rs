//! The crate's primitives as pipeline strategies: a
//! [`CircuitBreaker`], a [`Bulkhead`], a [`Hedge`] and a rate limiter wrap
//! the rest of a pipeline as they wrap a single call.

use std::future::Future;

use super::error::{BulkheadError, PipelineError};
use super::strategy::{Mapped, Next, Strategy};
use super::{Bulkhead, Hedge};
use crate::breaker::{CallOutput, CircuitBreaker, Rejected};

/// Whether an error from further in a pipeline is a failure of the
/// dependency, for a circuit breaker: the operation's errors and timeouts
/// are; refusals of local strategies (a bulkhead, a rate limiter, another
/// breaker) are not, since the dependency was not reached.
fn is_dependency_failure<E>(error: &PipelineError<E>) -> bool {
    match error {
        PipelineError::RetriesExhausted { last, .. } => is_dependency_failure(last),
        other => !other.is_rejection(),
    }
}

/// A circuit breaker in a pipeline: each call that reaches it is one call
/// of the breaker; see
/// [`PipelineBuilder::circuit_breaker`](super::PipelineBuilder::circuit_breaker).
impl<T, E> Strategy<T, E> for CircuitBreaker {
    #[inline]
    fn execute<N: Next<T, E>>(
        &self,
        next: N,
    ) -> impl Future<Output = Result<T, PipelineError<E>>> + Send {
        self.call_shaped::<AsPipelineError, _, _, _, _, _>(is_dependency_failure::<E>, move || {
            next.call()
        })
    }
}

/// A breaker's outcome as a pipeline's result: the rest of the pipeline's
/// error as it is, a refusal as [`PipelineError::CircuitOpen`].
struct AsPipelineError;

impl<T, E> CallOutput<T, PipelineError<E>> for AsPipelineError {
    type Output = Result<T, PipelineError<E>>;

    #[inline]
    fn value(value: T) -> Self::Output {
        Ok(value)
    }

    #[inline]
    fn rejected(rejected: Rejected) -> Self::Output {
        Err(PipelineError::CircuitOpen(rejected))
    }

    #[inline]
    fn error(error: PipelineError<E>) -> Self::Output {
        Err(error)
    }
}

/// A bulkhead in a pipeline: at most its `max_concurrent` calls run the
/// rest of the pipeline at once; see
/// [`PipelineBuilder::bulkhead`](super::PipelineBuilder::bulkhead).
impl<T, E> Strategy<T, E> for Bulkhead {
    fn execute<N: Next<T, E>>(
        &self,
        next: N,
    ) -> impl Future<Output = Result<T, PipelineError<E>>> + Send {
        Mapped::new(self.call(move || next.call()), |outcome| match outcome {
            Ok(value) => Ok(value),
            Err(BulkheadError::Inner(error)) => Err(error),
            Err(BulkheadError::Rejected(rejected)) => {
                Err(PipelineError::BulkheadRejected(rejected))
            }
        })
    }
}

/// A rate limiter in a pipeline: each call that reaches it takes a permit
/// (waiting for one in wait mode) before the rest of the pipeline runs; see
/// [`PipelineBuilder::rate_limiter`](super::PipelineBuilder::rate_limiter).
#[cfg(feature = "rate-limit")]
#[cfg_attr(docsrs, doc(cfg(feature = "rate-limit")))]
impl<T, E> Strategy<T, E> for super::RateLimiter {
    async fn execute<N: Next<T, E>>(&self, next: N) -> Result<T, PipelineError<E>> {
        self.acquire().await.map_err(PipelineError::RateLimited)?;
        next.call().await
    }
}

/// Hedging in a pipeline: the rest of the pipeline is started again when it
/// has not answered after the hedge's delay, and the first success wins;
/// see [`PipelineBuilder::hedge`](super::PipelineBuilder::hedge).
impl<T: Send, E: Send> Strategy<T, E> for Hedge {
    fn execute<N: Next<T, E>>(
        &self,
        next: N,
    ) -> impl Future<Output = Result<T, PipelineError<E>>> + Send {
        self.call(move || next.call())
    }
}
