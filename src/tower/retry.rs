//! The [`RetryPolicy`] as a tower layer: [`RetryLayer`] and
//! [`RetryService`], which call the inner service again after a transient
//! error, waiting for the policy's backoff and for the service's readiness
//! before each attempt.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_layer::Layer;
use tower_service::Service;

use crate::retry::{
    Backoff, ByTransient, Classifier, GiveUp, NoBudget, RetryError, RetryPolicy, When,
};

/// Retries the calls of a service with a [`RetryPolicy`]: an error the
/// classifier calls transient (by default, the error's
/// [`Transient`](crate::retry::Transient) implementation, `Retry-After`
/// included) is retried after the policy's backoff, until the policy's
/// retries or its `max_elapsed` budget run out.
///
/// The request must be `Clone` (each attempt sends a clone) and so must
/// the service (the call takes the readied service with it, and waits for
/// its `poll_ready` before each retry).
///
/// # Examples
///
/// ```
/// use std::io;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use steadfast::RetryPolicy;
/// use steadfast::tower::RetryLayer;
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let policy = RetryPolicy::builder().initial_delay(Duration::from_millis(10)).build()?;
/// let calls = Arc::new(AtomicU32::new(0));
/// let counted = calls.clone();
/// let flaky = ServiceBuilder::new()
///     .layer(RetryLayer::new(policy))
///     .service_fn(move |()| {
///         let n = counted.fetch_add(1, Ordering::SeqCst);
///         async move {
///             if n < 2 { Err(io::Error::from(io::ErrorKind::ConnectionReset)) } else { Ok("third time") }
///         }
///     });
/// assert_eq!(flaky.oneshot(()).await?, "third time");
/// assert_eq!(calls.load(Ordering::SeqCst), 3);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RetryLayer<C = ByTransient> {
    policy: RetryPolicy,
    classifier: C,
}

impl RetryLayer {
    /// A layer that retries transient errors (by their
    /// [`Transient`](crate::retry::Transient) implementation) under
    /// `policy`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::RetryPolicy;
    /// use steadfast::tower::RetryLayer;
    ///
    /// let layer = RetryLayer::new(RetryPolicy::default());
    /// assert_eq!(layer.policy().max_retries(), 3);
    /// ```
    pub fn new(policy: RetryPolicy) -> Self {
        RetryLayer {
            policy,
            classifier: ByTransient,
        }
    }
}

impl<C> RetryLayer<C> {
    /// The same layer, retrying the errors for which `predicate` says so: a
    /// `bool`, or a [`Verdict`](crate::retry::Verdict) (which keeps a `Retry-After`:
    /// `Verdict::of(error)` for an error that implements
    /// [`Transient`](crate::retry::Transient)).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::RetryPolicy;
    /// use steadfast::tower::RetryLayer;
    ///
    /// let layer = RetryLayer::new(RetryPolicy::default()).when(|e: &String| e.contains("busy"));
    /// # let _ = layer;
    /// ```
    pub fn when<P>(self, predicate: P) -> RetryLayer<When<P>> {
        self.classify(When(predicate))
    }

    /// The same layer with another [`Classifier`].
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::retry::ByTransient;
    /// use steadfast::RetryPolicy;
    /// use steadfast::tower::RetryLayer;
    ///
    /// let layer = RetryLayer::new(RetryPolicy::default()).classify(ByTransient);
    /// # let _ = layer;
    /// ```
    pub fn classify<C2>(self, classifier: C2) -> RetryLayer<C2> {
        RetryLayer {
            policy: self.policy,
            classifier,
        }
    }

    /// The policy of the layer's services.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::RetryPolicy;
    /// use steadfast::tower::RetryLayer;
    ///
    /// assert_eq!(RetryLayer::new(RetryPolicy::no_retry()).policy().max_retries(), 0);
    /// ```
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }
}

impl<S, C: Clone> Layer<S> for RetryLayer<C> {
    type Service = RetryService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        RetryService {
            inner,
            policy: self.policy.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

/// A service whose failed calls are retried; made by [`RetryLayer`].
///
/// - `poll_ready` is the inner service's.
/// - `call` takes the readied inner service with it (a clone stays in its
///   place) and makes the first attempt at once. After a transient error it
///   waits for the backoff (or the error's `Retry-After`), then for the
///   service's `poll_ready`, then sends a clone of the request; so a
///   bulkhead or rate limiter below holds the retry back as it does any
///   call.
/// - Each retry logs a `WARN` event (target `"steadfast::retry"`, fields
///   `attempt`, `max_retries`, `delay`); the error itself is not logged, so
///   it needs no `Display`.
///
/// # Errors
///
/// [`RetryError`] with the last error, the attempts made and why it gave
/// up ([`GiveUp`]). An error from the inner service's `poll_ready` is not
/// retried (tower says the service is then unusable): it comes back with
/// the attempts made so far (0 when it came from this service's own
/// `poll_ready`) and [`GiveUp::NotTransient`].
///
/// # Cancellation
///
/// Dropping the response future drops the attempt in flight, or the wait
/// before the next one.
///
/// # Examples
///
/// ```
/// use steadfast::RetryPolicy;
/// use steadfast::retry::GiveUp;
/// use steadfast::tower::RetryLayer;
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let denied = RetryLayer::new(RetryPolicy::default()).layer(service_fn(|()| async {
///     Err::<(), _>(std::io::Error::from(std::io::ErrorKind::PermissionDenied))
/// }));
/// let err = denied.oneshot(()).await.unwrap_err();
/// assert_eq!((err.attempts(), err.reason()), (1, GiveUp::NotTransient));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RetryService<S, C = ByTransient> {
    inner: S,
    policy: RetryPolicy,
    classifier: C,
}

impl<S, C> RetryService<S, C> {
    /// The inner service.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::RetryPolicy;
    /// use steadfast::tower::RetryLayer;
    /// use tower::Layer;
    ///
    /// let service = RetryLayer::new(RetryPolicy::default()).layer("inner");
    /// assert_eq!(*service.get_ref(), "inner");
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, C, Req> Service<Req> for RetryService<S, C>
where
    S: Service<Req> + Clone,
    C: Classifier<S::Error> + Clone,
    Req: Clone,
{
    type Response = S::Response;
    type Error = RetryError<S::Error>;
    type Future = RetryFuture<S, Req, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(|error| RetryError::new(error, 0, GiveUp::NotTransient))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let fresh = self.inner.clone();
        let mut service = std::mem::replace(&mut self.inner, fresh);
        let started = self.policy.max_elapsed().map(|_| Instant::now());
        let attempt = service.call(req.clone());
        RetryFuture {
            service,
            request: req,
            policy: self.policy.clone(),
            classifier: self.classifier.clone(),
            backoff: None,
            attempts: 0,
            started,
            state: State::Calling { attempt },
        }
    }
}

pin_project! {
    /// Where the retry loop of a [`RetryFuture`] is.
    #[project = StateProj]
    enum State<F> {
        Calling { #[pin] attempt: F },
        Sleeping { #[pin] sleep: Sleep },
        Readying,
    }
}

pin_project! {
    /// The response future of a [`RetryService`]: the attempt in flight,
    /// or the wait before the next one.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::RetryPolicy;
    /// use steadfast::tower::{RetryFuture, RetryLayer};
    /// use tower::{Layer, Service, ServiceExt, service_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let mut service = RetryLayer::new(RetryPolicy::default())
    ///     .layer(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n) }));
    /// let call: RetryFuture<_, u32, _> = service.ready().await.unwrap().call(5);
    /// assert_eq!(call.await.unwrap(), 5);
    /// # }
    /// ```
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct RetryFuture<S, Req, C>
    where
        S: Service<Req>,
    {
        service: S,
        request: Req,
        policy: RetryPolicy,
        classifier: C,
        // Made at the first retry.
        backoff: Option<Backoff>,
        attempts: u32,
        // Set when the policy has a `max_elapsed` budget.
        started: Option<Instant>,
        #[pin]
        state: State<S::Future>,
    }
}

impl<S, Req, C> fmt::Debug for RetryFuture<S, Req, C>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryFuture")
            .field("policy", &self.policy)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl<S, Req, C> Future for RetryFuture<S, Req, C>
where
    S: Service<Req>,
    C: Classifier<S::Error>,
    Req: Clone,
{
    type Output = Result<S::Response, RetryError<S::Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { attempt } => {
                    let error = match ready!(attempt.poll(cx)) {
                        Ok(response) => return Poll::Ready(Ok(response)),
                        Err(error) => error,
                    };
                    *this.attempts = this.attempts.saturating_add(1);
                    let plan = plan_retry(
                        this.policy,
                        this.classifier,
                        this.backoff,
                        *this.attempts,
                        *this.started,
                        &error,
                    );
                    match plan {
                        Ok(delay) => this.state.set(State::Sleeping {
                            sleep: tokio::time::sleep(delay),
                        }),
                        Err(reason) => {
                            return Poll::Ready(Err(RetryError::new(
                                error,
                                *this.attempts,
                                reason,
                            )));
                        }
                    }
                }
                StateProj::Sleeping { sleep } => {
                    ready!(sleep.poll(cx));
                    this.state.set(State::Readying);
                }
                StateProj::Readying => {
                    if let Err(error) = ready!(this.service.poll_ready(cx)) {
                        let attempts = *this.attempts;
                        return Poll::Ready(Err(RetryError::new(
                            error,
                            attempts,
                            GiveUp::NotTransient,
                        )));
                    }
                    let attempt = this.service.call(this.request.clone());
                    this.state.set(State::Calling { attempt });
                }
            }
        }
    }
}

/// After attempt number `attempts` failed with `error`: the delay before
/// the next attempt, or why the loop stops, by
/// [`RetryPolicy::next_delay`], the rule every retry loop shares.
#[inline(never)]
fn plan_retry<E, C: Classifier<E>>(
    policy: &RetryPolicy,
    classifier: &mut C,
    backoff: &mut Option<Backoff>,
    attempts: u32,
    started: Option<Instant>,
    error: &E,
) -> Result<Duration, GiveUp> {
    let delay = policy.next_delay(
        classifier.verdict(error),
        || backoff.get_or_insert_with(|| policy.backoff()).next(),
        started,
        &NoBudget,
    )?;
    tracing::warn!(
        target: "steadfast::retry",
        attempt = attempts,
        max_retries = policy.max_retries(),
        delay = ?delay,
        "transient error from the service; retrying"
    );
    Ok(delay)
}
