//! The [`CircuitBreaker`] as a tower layer: [`CircuitBreakerLayer`] and
//! [`CircuitBreakerService`], which refuse calls while the circuit is open
//! and record the outcome of each call they let through, with a
//! [`FailurePredicate`] saying which errors count.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;

use crate::breaker::{BreakerError, CircuitBreaker};

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
/// - `call` asks the breaker, when the response future is first polled: an
///   open circuit (or a half-open one with every trial place taken) refuses
///   with [`BreakerError::Rejected`], carrying the breaker's
///   [`Rejected`](crate::breaker::Rejected) facts, and the inner service is
///   not called; an admitted call is made and its outcome recorded: `Ok` as
///   a success, an error as the [`FailurePredicate`] says.
/// - Dropping the response future before the inner call completes records
///   nothing (and frees a half-open trial place at once).
///
/// # Cost
///
/// The breaker's permit borrows the breaker, so the response future owns
/// a clone of the breaker and of the (readied) inner service, and is boxed:
/// one allocation and one clone of the inner service per call. The inner
/// service, its future, the request and the response must be `Send` and
/// `'static`, as for most tower stacks (hyper, axum, tonic).
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

/// The response future of a [`CircuitBreakerService`]: boxed (see the
/// service's "Cost").
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
/// let call: BreakerFuture<&str, std::io::Error> = service.ready().await.unwrap().call(());
/// assert_eq!(call.await.unwrap(), "up");
/// # }
/// ```
pub type BreakerFuture<T, E> =
    Pin<Box<dyn Future<Output = Result<T, BreakerError<E>>> + Send + 'static>>;

impl<S, P, Req> Service<Req> for CircuitBreakerService<S, P>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
    P: FailurePredicate<S::Error> + Clone + Send + 'static,
    Req: Send + 'static,
{
    type Response = S::Response;
    type Error = BreakerError<S::Error>;
    type Future = BreakerFuture<S::Response, S::Error>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(BreakerError::Inner)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        // The readied service goes with the call, a fresh clone stays (the
        // call is made only if the breaker admits it, on the first poll).
        let fresh = self.inner.clone();
        let mut readied = std::mem::replace(&mut self.inner, fresh);
        let breaker = self.breaker.clone();
        let is_failure = self.is_failure.clone();
        Box::pin(async move {
            breaker
                .call_with(
                    move |error: &S::Error| is_failure.is_failure(error),
                    move || readied.call(req),
                )
                .await
        })
    }
}
