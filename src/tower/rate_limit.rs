//! The [`RateLimiter`] as a tower layer: [`RateLimitLayer`] and
//! [`RateLimitService`], whose `poll_ready` takes a permit, and waits for
//! one (on tokio's clock) when the rate is spent: back-pressure, not a
//! queue.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_layer::Layer;
use tower_service::Service;

use crate::pipeline::{RateLimitError, RateLimited, RateLimiter};

/// Applies a [`RateLimiter`] to a service: its calls (and those of every
/// other service sharing the limiter) stay within the limiter's rate.
///
/// See [`RateLimitService`] for how readiness works.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::pipeline::RateLimiter;
/// use steadfast::tower::RateLimitLayer;
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let limiter = RateLimiter::builder().permits(10).period(Duration::from_secs(1)).build()?;
/// let service = ServiceBuilder::new()
///     .layer(RateLimitLayer::new(limiter))
///     .service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n * 2) });
/// assert_eq!(service.oneshot(21).await?, 42);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    limiter: RateLimiter,
}

impl RateLimitLayer {
    /// A layer that takes its permits from `limiter` (shared, not copied).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::RateLimiter;
    /// use steadfast::tower::RateLimitLayer;
    ///
    /// let layer = RateLimitLayer::new(RateLimiter::builder().permits(5).build()?);
    /// assert_eq!(layer.limiter().config().permits(), 5);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn new(limiter: RateLimiter) -> Self {
        RateLimitLayer { limiter }
    }

    /// The limiter the layer's services share.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::RateLimiter;
    /// use steadfast::tower::RateLimitLayer;
    ///
    /// let layer = RateLimitLayer::new(RateLimiter::builder().build()?);
    /// assert!(layer.limiter().check().is_ok());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService::new(inner, self.limiter.clone())
    }
}

/// A service whose calls stay within a [`RateLimiter`]'s rate; made by
/// [`RateLimitLayer`].
///
/// # Readiness
///
/// - `poll_ready` takes a permit and holds it for the next `call`, then asks
///   the inner service. When the rate is spent it returns `Pending` and
///   arms a tokio timer for the moment the limiter names, which wakes the
///   task: the caller is held back rather than queued or refused. (The
///   limiter's mode and `max_wait` are for
///   [`RateLimiter::acquire`](crate::pipeline::RateLimiter::acquire); to
///   refuse instead of waiting, put tower's `load_shed` above this layer,
///   and to bound the wait, a timeout.)
/// - A permit is spent when taken: one taken by `poll_ready` and never used
///   is not given back (the limiter's GCRA has no way to return one).
/// - `call` without a permit from `poll_ready` breaks tower's contract; it
///   does not panic: it asks the limiter once more, and a refusal is
///   [`RateLimitError::Rejected`] without calling the inner service.
///
/// # Errors
///
/// [`RateLimitError::Inner`] with the inner service's error,
/// [`RateLimitError::Rejected`] for a `call` made without readiness that the
/// limiter refuses.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::pipeline::RateLimiter;
/// use steadfast::tower::RateLimitService;
/// use tower::{service_fn, Service, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let limiter = RateLimiter::builder().permits(1).period(Duration::from_secs(1)).build()?;
/// let mut service = RateLimitService::new(
///     service_fn(|()| async { Ok::<_, std::io::Error>(()) }),
///     limiter,
/// );
/// let start = tokio::time::Instant::now();
/// service.ready().await?.call(()).await?;
/// service.ready().await?.call(()).await?; // waits for the next permit
/// assert_eq!(start.elapsed(), Duration::from_secs(1));
/// # Ok(())
/// # }
/// ```
pub struct RateLimitService<S> {
    inner: S,
    limiter: RateLimiter,
    permit: bool,
    waiting: Option<Pin<Box<Sleep>>>,
}

impl<S> RateLimitService<S> {
    /// A service that calls `inner` within `limiter`'s rate.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::RateLimiter;
    /// use steadfast::tower::RateLimitService;
    /// use tower::service_fn;
    ///
    /// let service = RateLimitService::new(
    ///     service_fn(|()| async { Ok::<_, std::io::Error>(()) }),
    ///     RateLimiter::builder().build()?,
    /// );
    /// # let _ = service;
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn new(inner: S, limiter: RateLimiter) -> Self {
        RateLimitService {
            inner,
            limiter,
            permit: false,
            waiting: None,
        }
    }

    /// The limiter this service takes its permits from.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::RateLimiter;
    /// use steadfast::tower::RateLimitService;
    ///
    /// let service = RateLimitService::new((), RateLimiter::builder().permits(3).build()?);
    /// assert_eq!(service.limiter().config().permits(), 3);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    /// The inner service.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::RateLimiter;
    /// use steadfast::tower::RateLimitService;
    ///
    /// let service = RateLimitService::new(7u8, RateLimiter::builder().build()?);
    /// assert_eq!(*service.get_ref(), 7);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Takes a permit, or arms the timer for the next one.
    fn poll_permit(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.permit {
                return Poll::Ready(());
            }
            if let Some(wait) = self.waiting.as_mut() {
                ready!(wait.as_mut().poll(cx));
                self.waiting = None;
            }
            match self.limiter.check() {
                Ok(()) => self.permit = true,
                Err(refused) => {
                    let at = Instant::now() + refused.retry_after;
                    match self.waiting.as_mut() {
                        Some(wait) => wait.as_mut().reset(at),
                        None => self.waiting = Some(Box::pin(tokio::time::sleep_until(at))),
                    }
                }
            }
        }
    }
}

impl<S: Clone> Clone for RateLimitService<S> {
    fn clone(&self) -> Self {
        RateLimitService::new(self.inner.clone(), self.limiter.clone())
    }
}

impl<S: fmt::Debug> fmt::Debug for RateLimitService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitService")
            .field("inner", &self.inner)
            .field("limiter", &self.limiter)
            .field("ready", &self.permit)
            .finish()
    }
}

impl<S, Req> Service<Req> for RateLimitService<S>
where
    S: Service<Req>,
{
    type Response = S::Response;
    type Error = RateLimitError<S::Error>;
    type Future = RateLimitFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        ready!(self.poll_permit(cx));
        self.inner.poll_ready(cx).map_err(RateLimitError::Inner)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let admitted = if std::mem::take(&mut self.permit) {
            Ok(())
        } else {
            self.limiter.check()
        };
        match admitted {
            Ok(()) => RateLimitFuture {
                future: Some(self.inner.call(req)),
                rejected: None,
            },
            Err(refused) => RateLimitFuture {
                future: None,
                rejected: Some(refused),
            },
        }
    }
}

pin_project! {
    /// The response future of a [`RateLimitService`]: the inner call, or a
    /// refusal for a call made without readiness.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::RateLimiter;
    /// use steadfast::tower::{RateLimitFuture, RateLimitService};
    /// use tower::{service_fn, Service, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut service = RateLimitService::new(
    ///     service_fn(|()| async { Ok::<_, std::io::Error>(1) }),
    ///     RateLimiter::builder().build()?,
    /// );
    /// let future: RateLimitFuture<_> = service.ready().await?.call(());
    /// assert_eq!(future.await?, 1);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct RateLimitFuture<F> {
        #[pin]
        future: Option<F>,
        rejected: Option<RateLimited>,
    }
}

impl<F: fmt::Debug> fmt::Debug for RateLimitFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitFuture")
            .field("future", &self.future)
            .field("rejected", &self.rejected)
            .finish()
    }
}

impl<F, T, E> Future for RateLimitFuture<F>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<T, RateLimitError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.future.as_pin_mut() {
            Some(future) => future.poll(cx).map_err(RateLimitError::Inner),
            None => match this.rejected.take() {
                Some(refused) => Poll::Ready(Err(RateLimitError::Rejected(refused))),
                // Polled after it completed.
                None => Poll::Pending,
            },
        }
    }
}
