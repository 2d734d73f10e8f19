//! How strategies nest: the [`Strategy`] trait, [`Next`] (the rest of the
//! pipeline, as a strategy sees it), and the static stack a
//! [`PipelineBuilder`](super::PipelineBuilder) builds.
//!
//! A pipeline is a chain of strategies known at compile time: `Then<A,
//! Then<B, Then<C, Innermost>>>`, the first added outermost. Running it is a
//! chain of calls the compiler sees through and inlines, with no boxing and
//! no dynamic dispatch, so that a pipeline costs what the same strategies
//! cost when nested by hand, and a strategy it does not hold costs nothing
//! at all.

use std::future::Future;

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;

use super::error::PipelineError;

/// The rest of a pipeline, as the strategy in front of it sees it: calling
/// it runs every strategy further in and, innermost, the operation.
///
/// It may be called several times (a retry) and several calls may be alive
/// at once (hedging). It is a handle of a few references, hence `Copy`;
/// each call takes a copy, so the future it returns borrows nothing from
/// the strategy's own locals.
///
/// # Examples
///
/// A strategy that runs the rest of the pipeline twice and keeps the second
/// answer:
///
/// ```
/// use steadfast::pipeline::{Next, PipelineError, Strategy};
///
/// #[derive(Clone)]
/// struct Twice;
///
/// impl<T, E> Strategy<T, E> for Twice {
///     async fn execute<N: Next<T, E>>(&self, next: N) -> Result<T, PipelineError<E>> {
///         let _ = next.call().await;
///         next.call().await
///     }
/// }
/// # let _ = Twice;
/// ```
pub trait Next<T, E>: Copy + Send + Sync {
    /// Runs the rest of the pipeline once.
    fn call(self) -> impl Future<Output = Result<T, PipelineError<E>>> + Send;
}

/// One strategy of a pipeline: it decides whether, when and how often the
/// rest of the pipeline runs.
///
/// Implemented by the crate for every strategy a
/// [`PipelineBuilder`](super::PipelineBuilder) adds
/// ([`CircuitBreaker`](crate::breaker::CircuitBreaker),
/// [`Bulkhead`](super::Bulkhead), [`Timeout`](super::Timeout),
/// [`RetryStrategy`](super::RetryStrategy), [`Fallback`](super::Fallback),
/// …); implement it for a strategy of your own and add it with
/// [`PipelineBuilder::strategy`](super::PipelineBuilder::strategy).
///
/// A strategy must be cancel-safe: when the future `execute` returns is
/// dropped at any `.await`, whatever it holds (a permit, a slot, a place in
/// a queue) is given back. Its future is `Send`, as is every future of a
/// pipeline, so that a pipeline's call can be spawned and served by
/// multi-threaded servers.
///
/// # Examples
///
/// A strategy that refuses calls while a switch is off:
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use steadfast::pipeline::{Next, Pipeline, PipelineError, Strategy};
///
/// #[derive(Clone)]
/// struct Switch(Arc<AtomicBool>);
///
/// impl<T, E: From<&'static str>> Strategy<T, E> for Switch {
///     async fn execute<N: Next<T, E>>(&self, next: N) -> Result<T, PipelineError<E>> {
///         if self.0.load(Ordering::Relaxed) {
///             next.call().await
///         } else {
///             Err(PipelineError::Operation(E::from("switched off")))
///         }
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), steadfast::ConfigError> {
/// let on = Arc::new(AtomicBool::new(false));
/// let pipeline = Pipeline::builder().strategy(Switch(on.clone())).build()?;
/// let refused = pipeline.execute(|| async { Ok::<_, String>(1) }).await;
/// assert!(refused.is_err());
/// on.store(true, Ordering::Relaxed);
/// assert_eq!(pipeline.execute(|| async { Ok::<_, String>(1) }).await.unwrap(), 1);
/// # Ok(())
/// # }
/// ```
pub trait Strategy<T, E> {
    /// Runs `next` (the rest of the pipeline) under this strategy.
    fn execute<N: Next<T, E>>(
        &self,
        next: N,
    ) -> impl Future<Output = Result<T, PipelineError<E>>> + Send;
}

/// Two strategies, `outer` around `inner`: the links of a pipeline's chain.
///
/// Built by [`PipelineBuilder`](super::PipelineBuilder); its type shows in
/// the type of a [`Pipeline`](super::Pipeline).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::pipeline::{Innermost, Pipeline, Then, Timeout};
///
/// let pipeline: Pipeline<Then<Timeout, Innermost>> = Pipeline::builder()
///     .timeout(Duration::from_secs(1))
///     .build()?;
/// # let _ = pipeline;
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Then<Outer, Inner> {
    pub(super) outer: Outer,
    pub(super) inner: Inner,
}

/// The end of a pipeline's chain: it runs the operation itself.
///
/// # Examples
///
/// ```
/// use steadfast::pipeline::{Innermost, PipelineBuilder};
///
/// let empty: PipelineBuilder<Innermost> = steadfast::pipeline::Pipeline::builder();
/// assert!(empty.build().is_err()); // a pipeline needs at least one strategy
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Innermost;

impl<T, E> Strategy<T, E> for Innermost {
    #[inline]
    fn execute<N: Next<T, E>>(
        &self,
        next: N,
    ) -> impl Future<Output = Result<T, PipelineError<E>>> + Send {
        next.call()
    }
}

/// The rest of a chain, from `inner` on: what the outer strategy of a
/// [`Then`] is given as its [`Next`].
pub struct Rest<'a, Inner, N> {
    inner: &'a Inner,
    next: N,
}

impl<Inner, N: Copy> Clone for Rest<'_, Inner, N> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<Inner, N: Copy> Copy for Rest<'_, Inner, N> {}

impl<T, E, Inner, N> Next<T, E> for Rest<'_, Inner, N>
where
    Inner: Strategy<T, E> + Sync,
    N: Next<T, E>,
{
    #[inline]
    fn call(self) -> impl Future<Output = Result<T, PipelineError<E>>> + Send {
        self.inner.execute(self.next)
    }
}

impl<T, E, Outer, Inner> Strategy<T, E> for Then<Outer, Inner>
where
    Outer: Strategy<T, E>,
    Inner: Strategy<T, E> + Sync,
{
    #[inline]
    fn execute<N: Next<T, E>>(
        &self,
        next: N,
    ) -> impl Future<Output = Result<T, PipelineError<E>>> + Send {
        self.outer.execute(Rest {
            inner: &self.inner,
            next,
        })
    }
}

/// The operation itself, as the innermost [`Next`]: its error becomes
/// [`PipelineError::Operation`].
pub(super) struct Operation<'a, F>(pub(super) &'a F);

impl<F> Clone for Operation<'_, F> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<F> Copy for Operation<'_, F> {}

impl<T, E, F, Fut> Next<T, E> for Operation<'_, F>
where
    F: Fn() -> Fut + Sync,
    Fut: Future<Output = Result<T, E>> + Send,
{
    #[inline]
    fn call(self) -> impl Future<Output = Result<T, PipelineError<E>>> + Send {
        Mapped::new((self.0)(), |outcome: Result<T, E>| {
            outcome.map_err(PipelineError::Operation)
        })
    }
}

/// Appends a strategy at the inner end of a chain (the builder adds each
/// new strategy inside the ones added before).
pub trait Append<S> {
    /// The chain with `S` innermost.
    type Output;

    /// Puts `strategy` at the inner end.
    fn append(self, strategy: S) -> Self::Output;
}

impl<S> Append<S> for Innermost {
    type Output = Then<S, Innermost>;

    fn append(self, strategy: S) -> Self::Output {
        Then {
            outer: strategy,
            inner: Innermost,
        }
    }
}

impl<S, Outer, Inner: Append<S>> Append<S> for Then<Outer, Inner> {
    type Output = Then<Outer, Inner::Output>;

    fn append(self, strategy: S) -> Self::Output {
        Then {
            outer: self.outer,
            inner: self.inner.append(strategy),
        }
    }
}

pin_project! {
    /// A future whose output goes through `map` when it is ready.
    ///
    /// Unlike `futures`' `map`, which moves the whole finished future out of
    /// itself to reach the closure, this one only takes the closure (often
    /// of size zero), so that mapping a large future (a timeout with its
    /// timer, a breaker's call) costs nothing on the way out.
    pub(super) struct Mapped<Fut, F> {
        #[pin]
        future: Fut,
        map: Option<F>,
    }
}

impl<Fut, F> Mapped<Fut, F> {
    /// `future`, with its output mapped by `map`.
    #[inline]
    pub(super) fn new(future: Fut, map: F) -> Self {
        Mapped {
            future,
            map: Some(map),
        }
    }
}

impl<Fut: Future, F: FnOnce(Fut::Output) -> O, O> Future for Mapped<Fut, F> {
    type Output = O;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<O> {
        let this = self.project();
        let output = ready!(this.future.poll(cx));
        match this.map.take() {
            Some(map) => Poll::Ready(map(output)),
            // Polled again after it finished: as a fused future would, it
            // never finishes twice.
            None => Poll::Pending,
        }
    }
}
