//! A whole [`Pipeline`] as a tower layer: [`PipelineLayer`] and
//! [`PipelineService`], which run every call of a service under the
//! pipeline's strategies.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;

use crate::pipeline::{Innermost, Pipeline, PipelineError, Strategy, Then};

/// Runs each call of a service through a [`Pipeline`]: a retry in the
/// pipeline calls the service again (with a clone of the request, after
/// the service's `poll_ready`), a hedge calls it while an earlier call
/// still runs, a timeout drops a call that takes too long.
///
/// The request and the service must be `Clone` (each attempt takes a clone
/// of both) and `Sync` (attempts may run at once).
///
/// The pipeline's own strategies (a bulkhead, a rate limiter) admit or
/// queue each attempt inside the call; for back-pressure in `poll_ready`,
/// stack a [`BulkheadLayer`](super::BulkheadLayer) or a
/// [`RateLimitLayer`](super::RateLimitLayer) above this layer instead.
///
/// # Examples
///
/// ```
/// use std::io;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use steadfast::pipeline::Pipeline;
/// use steadfast::tower::PipelineLayer;
/// use steadfast::{CircuitBreaker, RetryPolicy};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pipeline = Pipeline::builder()
///     .retry(RetryPolicy::builder().initial_delay(Duration::from_millis(10)).build()?)
///     .circuit_breaker(CircuitBreaker::default())
///     .timeout(Duration::from_secs(1))
///     .build()?;
///
/// let calls = Arc::new(AtomicU32::new(0));
/// let counted = calls.clone();
/// let service = ServiceBuilder::new()
///     .layer(PipelineLayer::new(pipeline))
///     .service_fn(move |name: String| {
///         let n = counted.fetch_add(1, Ordering::SeqCst);
///         async move {
///             if n == 0 {
///                 Err(io::Error::from(io::ErrorKind::ConnectionReset))
///             } else {
///                 Ok(format!("hello, {name}"))
///             }
///         }
///     });
/// assert_eq!(service.oneshot("steadfast".to_string()).await?, "hello, steadfast");
/// assert_eq!(calls.load(Ordering::SeqCst), 2);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PipelineLayer<S> {
    pipeline: Pipeline<S>,
}

impl<S> PipelineLayer<S> {
    /// A layer that runs each call under `pipeline` (shared: clones of a
    /// pipeline share its breaker's, bulkhead's, … state).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::pipeline::Pipeline;
    /// use steadfast::tower::PipelineLayer;
    ///
    /// let layer = PipelineLayer::new(
    ///     Pipeline::builder().name("api").timeout(Duration::from_secs(1)).build()?,
    /// );
    /// assert_eq!(layer.pipeline().name(), Some("api"));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn new(pipeline: Pipeline<S>) -> Self {
        PipelineLayer { pipeline }
    }

    /// The pipeline each call runs under.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::pipeline::Pipeline;
    /// use steadfast::tower::PipelineLayer;
    ///
    /// let layer = PipelineLayer::new(Pipeline::builder().timeout(Duration::from_secs(1)).build()?);
    /// assert_eq!(layer.pipeline().name(), None);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn pipeline(&self) -> &Pipeline<S> {
        &self.pipeline
    }
}

impl<X> PipelineLayer<Then<X, Innermost>> {
    /// A layer of one strategy, for those with no layer of their own:
    /// hedging, a fallback, a strategy of yours.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::pipeline::Hedge;
    /// use steadfast::tower::PipelineLayer;
    /// use tower::{ServiceBuilder, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let hedge = Hedge::builder().max_attempts(2).delay(Duration::from_millis(50)).build()?;
    /// let service = ServiceBuilder::new()
    ///     .layer(PipelineLayer::of(hedge))
    ///     .service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n + 1) });
    /// assert_eq!(service.oneshot(1).await?, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn of(strategy: X) -> Self {
        PipelineLayer {
            pipeline: Pipeline::of(strategy),
        }
    }
}

impl<S: Clone, Svc> Layer<Svc> for PipelineLayer<S> {
    type Service = PipelineService<S, Svc>;

    fn layer(&self, inner: Svc) -> Self::Service {
        PipelineService {
            pipeline: self.pipeline.clone(),
            inner,
        }
    }
}

/// A service whose calls run under a [`Pipeline`]; made by
/// [`PipelineLayer`].
///
/// `poll_ready` is the inner service's. Each call takes the readied
/// service and leaves a clone in its place, as tower's retry does; every
/// attempt of the pipeline calls a clone of the taken service after its
/// `poll_ready`. The response future is boxed (`Send`), since the
/// pipeline's future has no name.
///
/// # Errors
///
/// A [`PipelineError`] wrapping the inner service's error: which strategy
/// stopped the call, or [`PipelineError::Operation`] with the service's own
/// error. An error of the inner `poll_ready` is
/// [`PipelineError::Operation`] too.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::pipeline::{Pipeline, StoppedBy};
/// use steadfast::tower::PipelineLayer;
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let layer = PipelineLayer::new(Pipeline::builder().timeout(Duration::from_millis(100)).build()?);
/// let slow = layer.layer(service_fn(|()| async {
///     tokio::time::sleep(Duration::from_secs(1)).await;
///     Ok::<_, std::io::Error>(())
/// }));
/// let err = slow.oneshot(()).await.unwrap_err();
/// assert_eq!(err.stopped_by(), StoppedBy::Timeout);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PipelineService<S, Svc> {
    pipeline: Pipeline<S>,
    inner: Svc,
}

impl<S, Svc> PipelineService<S, Svc> {
    /// The inner service.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::pipeline::Pipeline;
    /// use steadfast::tower::PipelineLayer;
    /// use tower::Layer;
    ///
    /// let layer = PipelineLayer::new(Pipeline::builder().timeout(Duration::from_secs(1)).build()?);
    /// let service = layer.layer(5u8);
    /// assert_eq!(*service.get_ref(), 5);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn get_ref(&self) -> &Svc {
        &self.inner
    }
}

impl<S, Svc: fmt::Debug> fmt::Debug for PipelineService<S, Svc> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineService")
            .field("pipeline", &self.pipeline.name())
            .field("inner", &self.inner)
            .finish()
    }
}

/// The response future of a [`PipelineService`].
pub type PipelineFuture<T, E> =
    Pin<Box<dyn Future<Output = Result<T, PipelineError<E>>> + Send + 'static>>;

impl<S, Svc, Req> Service<Req> for PipelineService<S, Svc>
where
    S: Strategy<Svc::Response, Svc::Error> + Clone + Send + Sync + 'static,
    Svc: Service<Req> + Clone + Send + Sync + 'static,
    Svc::Future: Send,
    Svc::Response: Send + 'static,
    Svc::Error: Send + 'static,
    Req: Clone + Send + Sync + 'static,
{
    type Response = Svc::Response;
    type Error = PipelineError<Svc::Error>;
    type Future = PipelineFuture<Svc::Response, Svc::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(PipelineError::Operation)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let pipeline = self.pipeline.clone();
        let clone = self.inner.clone();
        let service = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            pipeline
                .execute(|| {
                    let mut service = service.clone();
                    let request = request.clone();
                    async move {
                        std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
                        service.call(request).await
                    }
                })
                .await
        })
    }
}
