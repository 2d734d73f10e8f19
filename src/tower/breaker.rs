//! The [`CircuitBreaker`] as a tower layer: [`CircuitBreakerLayer`] and
//! [`CircuitBreakerService`], which refuse calls while the circuit is open
//! and record the outcome of each call they let through, with a
//! [`FailurePredicate`] saying which errors count.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;

use tower_layer::Layer;
use tower_service::Service;

use crate::breaker::{BreakerError, CircuitBreaker, OwnedPermit, Rejected};

/// Says which errors of the inner service count as failures in the
/// breaker; the others count as successes (a "not found" is no sign of a
/// broken dependency).
///
/// Implemented for [`EveryError`] (the default) and for every
/// `Fn(&E) -> bool`.
///
/// # Examples
///
/// ```
/// use std::io::{Error, ErrorKind};
/// use steadfast::tower::{EveryError, FailurePredicate};
///
/// let only_timeouts = |e: &Error| e.kind() == ErrorKind::TimedOut;
/// assert!(!only_timeouts.is_failure(&Error::from(ErrorKind::NotFound)));
/// assert!(EveryError.is_failure(&Error::from(ErrorKind::NotFound)));
/// ```
pub trait FailurePredicate<E> {
    /// Whether `error` counts as a failure.
    fn is_failure(&self, error: &E) -> bool;
}

/// The default [`FailurePredicate`]: every error of the inner service is a
/// failure.
///
/// # Examples
///
/// ```
/// use steadfast::tower::{EveryError, FailurePredicate};
/// assert!(EveryError.is_failure(&"any error"));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct EveryError;

impl<E> FailurePredicate<E> for EveryError {
    #[inline]
    fn is_failure(&self, _: &E) -> bool {
        true
    }
}

impl<E, F: Fn(&E) -> bool> FailurePredicate<E> for F {
    #[inline]
    fn is_failure(&self, error: &E) -> bool {
        self(error)
    }
}

/// Applies a [`CircuitBreaker`] to a service: while the circuit is open,
/// calls are refused without reaching the service; every call let through
/// is recorded as a success or a failure.
///
/// The layer shares the breaker it is given: every service it makes (and
/// every clone) records into, and is refused by, the same breaker.
///
/// See [`CircuitBreakerService`] for when a call is refused.
///
/// # Examples
///
/// ```
/// use std::io;
/// use steadfast::breaker::{BreakerError, CircuitBreaker, State};
/// use steadfast::tower::CircuitBreakerLayer;
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let breaker = CircuitBreaker::builder().failure_threshold(1).build()?;
/// let failing = ServiceBuilder::new()
///     .layer(CircuitBreakerLayer::new(breaker.clone()))
///     .service_fn(|()| async { Err::<(), _>(io::Error::from(io::ErrorKind::ConnectionReset)) });
///
/// let first = failing.clone().oneshot(()).await.unwrap_err();
/// assert!(matches!(first, BreakerError::Inner(_)));
/// assert_eq!(breaker.state(), State::Open);
///
/// let second = failing.oneshot(()).await.unwrap_err();
/// assert!(second.is_rejected()); // the service was not called
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct CircuitBreakerLayer<P = EveryError> {
    breaker: CircuitBreaker,
    is_failure: P,
}

impl CircuitBreakerLayer {
    /// A layer on `breaker` (shared, not copied) that counts every error as
    /// a failure.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::{CircuitBreaker, State};
    /// use steadfast::tower::CircuitBreakerLayer;
    ///
    /// let layer = CircuitBreakerLayer::new(CircuitBreaker::default());
    /// assert_eq!(layer.breaker().state(), State::Closed);
    /// ```
    pub fn new(breaker: CircuitBreaker) -> Self {
        CircuitBreakerLayer {
            breaker,
            is_failure: EveryError,
        }
    }
}

impl<P> CircuitBreakerLayer<P> {
    /// The same layer, counting as failures only the errors for which
    /// `predicate` says so; the other errors count as successes.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Error, ErrorKind};
    /// use steadfast::breaker::{CircuitBreaker, State};
    /// use steadfast::tower::CircuitBreakerLayer;
    /// use tower::{ServiceBuilder, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::ConfigError> {
    /// let breaker = CircuitBreaker::builder().failure_threshold(1).build()?;
    /// let layer = CircuitBreakerLayer::new(breaker.clone())
    ///     .failure_when(|e: &Error| e.kind() == ErrorKind::TimedOut);
    /// let not_found = ServiceBuilder::new()
    ///     .layer(layer)
    ///     .service_fn(|()| async { Err::<(), _>(Error::from(ErrorKind::NotFound)) });
    /// let _ = not_found.oneshot(()).await;
    /// assert_eq!(breaker.state(), State::Closed); // not a failure
    /// # Ok(())
    /// # }
    /// ```
    pub fn failure_when<Q>(self, predicate: Q) -> CircuitBreakerLayer<Q> {
        CircuitBreakerLayer {
            breaker: self.breaker,
            is_failure: predicate,
        }
    }

    /// The breaker the layer's services share.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::CircuitBreaker;
    /// use steadfast::tower::CircuitBreakerLayer;
    ///
    /// let layer = CircuitBreakerLayer::new(CircuitBreaker::default());
    /// layer.breaker().force_open();
    /// ```
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }
}

impl<S, P: Clone> Layer<S> for CircuitBreakerLayer<P> {
    type Service = CircuitBreakerService<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService {
            inner,
            breaker: self.breaker.clone(),
            is_failure: self.is_failure.clone(),
        }
    }
}

/// A service behind a [`CircuitBreaker`]; made by [`CircuitBreakerLayer`].
///
/// - `poll_ready` is the inner service's: an open circuit does not hold
///   callers back (it does not know when the next call comes, and a
///   half-open circuit admits some calls and not others).
/// - `call` asks the breaker: an open circuit (or a half-open one with
///   every trial place taken) refuses with [`BreakerError::Rejected`] (the
///   response future answers it at its first poll), carrying the breaker's
///   [`Rejected`](crate::breaker::Rejected) facts, and the inner service is
///   not called; an admitted call is made at once and its outcome recorded
///   when it completes: `Ok` as a success, an error as the
///   [`FailurePredicate`] says.
/// - Dropping the response future before the inner call completes records
///   nothing (and frees a half-open trial place at once).
///
/// # Cost
///
/// `call` asks the breaker for a permit that holds a handle on it (one
/// reference count), and the response future carries it with the inner
/// call: no allocation, and no clone of the inner service.
///
/// # Errors
///
/// [`BreakerError::Inner`] with the inner service's error (from
/// `poll_ready` or from the call), [`BreakerError::Rejected`] when the
/// breaker refused the call.
///
/// # Examples
///
/// ```
/// use steadfast::breaker::CircuitBreaker;
/// use steadfast::tower::CircuitBreakerLayer;
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let breaker = CircuitBreaker::default();
/// let service = CircuitBreakerLayer::new(breaker.clone())
///     .layer(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n + 1) }));
/// assert_eq!(service.oneshot(1).await.unwrap(), 2);
/// assert_eq!(breaker.snapshot().consecutive_failures, 0);
/// # }
/// ```
#[derive(Clone)]
pub struct CircuitBreakerService<S, P = EveryError> {
    inner: S,
    breaker: CircuitBreaker,
    is_failure: P,
}

impl<S, P> CircuitBreakerService<S, P> {
    /// The breaker this service asks and records into.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::CircuitBreaker;
    /// use steadfast::tower::CircuitBreakerLayer;
    /// use tower::Layer;
    ///
    /// let service = CircuitBreakerLayer::new(CircuitBreaker::default()).layer(());
    /// assert_eq!(service.breaker().snapshot().consecutive_failures, 0);
    /// ```
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// The inner service.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::CircuitBreaker;
    /// use steadfast::tower::CircuitBreakerLayer;
    /// use tower::Layer;
    ///
    /// let service = CircuitBreakerLayer::new(CircuitBreaker::default()).layer("inner");
    /// assert_eq!(*service.get_ref(), "inner");
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: fmt::Debug, P> fmt::Debug for CircuitBreakerService<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerService")
            .field("inner", &self.inner)
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// The response future of a [`CircuitBreakerService`]: the inner call
    /// with the breaker's permit, which records its outcome, or the
    /// breaker's refusal.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::CircuitBreaker;
    /// use steadfast::tower::{BreakerFuture, CircuitBreakerLayer};
    /// use tower::{Layer, Service, ServiceExt, service_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let mut service = CircuitBreakerLayer::new(CircuitBreaker::default())
    ///     .layer(service_fn(|()| async { Ok::<_, std::io::Error>("up") }));
    /// let call: BreakerFuture<_, _> = service.ready().await.unwrap().call(());
    /// assert_eq!(call.await.unwrap(), "up");
    /// # }
    /// ```
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct BreakerFuture<F, P> {
        // Declared before `permit`, so dropped first: a trial place is freed
        // only once the call is gone.
        #[pin]
        future: Option<F>,
        permit: Option<OwnedPermit>,
        is_failure: P,
        rejected: Option<Rejected>,
    }
}

impl<F: fmt::Debug, P> fmt::Debug for BreakerFuture<F, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerFuture")
            .field("future", &self.future)
            .field("rejected", &self.rejected)
            .finish_non_exhaustive()
    }
}

impl<F, P, T, E> Future for BreakerFuture<F, P>
where
    F: Future<Output = Result<T, E>>,
    P: FailurePredicate<E>,
{
    type Output = Result<T, BreakerError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(future) = this.future.as_mut().as_pin_mut() else {
            return match this.rejected.take() {
                Some(rejected) => Poll::Ready(Err(rejected.into())),
                // Polled after it completed.
                None => Poll::Pending,
            };
        };
        let result = ready!(future.poll(cx));
        // The finished call goes first, as `.await` drops it.
        this.future.set(None);
        let permit = this.permit.take();
        match result {
            Ok(value) => {
                if let Some(permit) = permit {
                    permit.success();
                }
                Poll::Ready(Ok(value))
            }
            Err(error) => {
                if let Some(permit) = permit {
                    if this.is_failure.is_failure(&error) {
                        permit.failure();
                    } else {
                        permit.success();
                    }
                }
                Poll::Ready(Err(BreakerError::Inner(error)))
            }
        }
    }
}

impl<S, P, Req> Service<Req> for CircuitBreakerService<S, P>
where
    S: Service<Req>,
    P: FailurePredicate<S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BreakerError<S::Error>;
    type Future = BreakerFuture<S::Future, P>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(BreakerError::Inner)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match self.breaker.try_acquire_owned() {
            Ok(permit) => BreakerFuture {
                future: Some(self.inner.call(req)),
                permit: Some(permit),
                is_failure: self.is_failure.clone(),
                rejected: None,
            },
            Err(rejected) => BreakerFuture {
                future: None,
                permit: None,
                is_failure: self.is_failure.clone(),
                rejected: Some(rejected),
            },
        }
    }
}
