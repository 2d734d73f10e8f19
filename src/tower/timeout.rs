//! steadfast's timeout as a tower layer: [`TimeoutLayer`] and
//! [`TimeoutService`], which bound each call with a [`Timed`] future.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::TimeoutError;
use crate::timeout::{self, Timed, TimeoutHandler};

/// Bounds each call of a service by a timeout: a call still running when
/// it passes is dropped (cancelled) and fails with
/// [`TimeoutError::Elapsed`].
///
/// The deadline is set when `call` is made and covers the call alone, not
/// the wait in `poll_ready` (bound that by a layer above, if needed). The
/// timer is made only if the call does not complete at its first poll, as
/// for [`TimeoutHandler::run`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::tower::{TimeoutError, TimeoutLayer};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let slow = ServiceBuilder::new()
///     .layer(TimeoutLayer::new(Duration::from_millis(100)))
///     .service_fn(|()| async {
///         tokio::time::sleep(Duration::from_secs(1)).await;
///         Ok::<_, std::io::Error>(())
///     });
/// let err = slow.oneshot(()).await.unwrap_err();
/// assert!(matches!(err, TimeoutError::Elapsed { after } if after == Duration::from_millis(100)));
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer {
    after: Duration,
}

impl TimeoutLayer {
    /// A layer that gives each call `after` to complete.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::tower::TimeoutLayer;
    ///
    /// let layer = TimeoutLayer::new(Duration::from_secs(2));
    /// assert_eq!(layer.timeout(), Duration::from_secs(2));
    /// ```
    pub fn new(after: Duration) -> Self {
        TimeoutLayer { after }
    }

    /// The timeout of each call.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::tower::TimeoutLayer;
    ///
    /// assert_eq!(TimeoutLayer::new(Duration::from_millis(5)).timeout(), Duration::from_millis(5));
    /// ```
    pub fn timeout(&self) -> Duration {
        self.after
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = TimeoutService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TimeoutService {
            inner,
            after: self.after,
        }
    }
}

/// A service whose calls are bounded by a timeout; made by
/// [`TimeoutLayer`].
///
/// `poll_ready` is the inner service's; each `call` returns a
/// [`TimeoutFuture`] that fails with [`TimeoutError::Elapsed`] when the
/// timeout passes first (and emits the `warn` event of
/// [`TimeoutHandler::run`], target `"steadfast::timeout"`).
///
/// # Errors
///
/// [`TimeoutError::Elapsed`] when the call took too long,
/// [`TimeoutError::Inner`] with the inner service's error.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::tower::TimeoutLayer;
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let service = TimeoutLayer::new(Duration::from_secs(1))
///     .layer(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n) }));
/// assert_eq!(service.oneshot(3).await.unwrap(), 3);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TimeoutService<S> {
    inner: S,
    after: Duration,
}

impl<S> TimeoutService<S> {
    /// The inner service.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::tower::TimeoutLayer;
    /// use tower::Layer;
    ///
    /// let service = TimeoutLayer::new(Duration::from_secs(1)).layer("inner");
    /// assert_eq!(*service.get_ref(), "inner");
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, Req> Service<Req> for TimeoutService<S>
where
    S: Service<Req>,
{
    type Response = S::Response;
    type Error = TimeoutError<S::Error>;
    type Future = TimeoutFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(TimeoutError::Inner)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        TimeoutFuture {
            timed: TimeoutHandler::default().run(self.after, self.inner.call(req)),
            after: self.after,
        }
    }
}

pin_project! {
    /// The response future of a [`TimeoutService`]: the inner call under a
    /// [`Timed`] deadline.
    ///
    /// # Cancellation
    ///
    /// Dropping it drops the inner call.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::tower::{TimeoutFuture, TimeoutLayer};
    /// use tower::{Layer, Service, ServiceExt, service_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let mut service = TimeoutLayer::new(Duration::from_secs(1))
    ///     .layer(service_fn(|()| async { Ok::<_, std::io::Error>(1) }));
    /// let call: TimeoutFuture<_> = service.ready().await.unwrap().call(());
    /// assert_eq!(call.await.unwrap(), 1);
    /// # }
    /// ```
    #[derive(Debug)]
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct TimeoutFuture<F> {
        #[pin]
        timed: Timed<F>,
        after: Duration,
    }
}

impl<F, T, E> Future for TimeoutFuture<F>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<T, TimeoutError<E>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        Poll::Ready(match ready!(this.timed.poll(cx)) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(TimeoutError::Inner(error)),
            Err(timeout::TimeoutError::Elapsed { after, .. }) => {
                Err(TimeoutError::Elapsed { after })
            }
            // `Timed` fails with `Elapsed` alone.
            Err(_) => Err(TimeoutError::Elapsed { after: *this.after }),
        })
    }
}
