//! The [`Bulkhead`] as a tower layer: [`BulkheadLayer`] and
//! [`BulkheadService`], whose `poll_ready` takes a slot and holds it for the
//! next `call`, so that a full bulkhead is back-pressure (`Pending`), not a
//! queue.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::pipeline::{Bulkhead, BulkheadError, BulkheadRejected, OwnedBulkheadPermit, SlotWait};

/// Applies a [`Bulkhead`] to a service: at most `max_concurrent` calls of
/// the service (and of every other service sharing the bulkhead) run at
/// once.
///
/// The layer shares the bulkhead it is given: every service it makes, and
/// every clone of them, takes its slots from the same bulkhead, and so does
/// code that calls [`Bulkhead::call`] on it directly.
///
/// See [`BulkheadService`] for how readiness works.
///
/// # Examples
///
/// ```
/// use steadfast::pipeline::Bulkhead;
/// use steadfast::tower::BulkheadLayer;
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let bulkhead = Bulkhead::builder().max_concurrent(8).build()?;
/// let service = ServiceBuilder::new()
///     .layer(BulkheadLayer::new(bulkhead.clone()))
///     .service_fn(|name: &'static str| async move { Ok::<_, std::io::Error>(name.len()) });
/// assert_eq!(service.oneshot("steadfast").await?, 9);
/// assert_eq!(bulkhead.in_use(), 0);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct BulkheadLayer {
    bulkhead: Bulkhead,
}

impl BulkheadLayer {
    /// A layer that takes its slots from `bulkhead` (shared, not copied).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::Bulkhead;
    /// use steadfast::tower::BulkheadLayer;
    ///
    /// let layer = BulkheadLayer::new(Bulkhead::default());
    /// assert_eq!(layer.bulkhead().config().max_concurrent(), 10);
    /// ```
    pub fn new(bulkhead: Bulkhead) -> Self {
        BulkheadLayer { bulkhead }
    }

    /// The bulkhead the layer's services share.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::Bulkhead;
    /// use steadfast::tower::BulkheadLayer;
    ///
    /// let layer = BulkheadLayer::new(Bulkhead::default());
    /// assert_eq!(layer.bulkhead().in_use(), 0);
    /// ```
    pub fn bulkhead(&self) -> &Bulkhead {
        &self.bulkhead
    }
}

impl<S> Layer<S> for BulkheadLayer {
    type Service = BulkheadService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BulkheadService::new(inner, self.bulkhead.clone())
    }
}

/// A service whose calls run in slots of a [`Bulkhead`]; made by
/// [`BulkheadLayer`].
///
/// # Readiness
///
/// - `poll_ready` takes a slot (with a free one, one compare-and-swap) and
///   holds it for the next `call`, then asks the inner service. When every
///   slot is taken it returns `Pending` and the task is woken when a slot
///   frees: the caller is held back rather than queued. Each service (each
///   clone) waits for at most one slot, in the order of arrival, so the
///   waiting is bounded by the callers' own services. These waits do not
///   take the bulkhead's queue places (`max_queued`, `queue_timeout` and
///   [`Bulkhead::queued`] are for [`Bulkhead::call`] and
///   [`Bulkhead::acquire`]); to refuse instead of waiting, put tower's
///   `load_shed` above this layer, and to bound the wait, a timeout.
/// - `call` moves the slot into the response future, which frees it when
///   the inner call completes or the future is dropped.
/// - A slot taken by `poll_ready` and never used is freed when the service
///   is dropped; a clone starts without one. A wait in progress is given up
///   when the service is dropped.
/// - `call` without a slot from `poll_ready` breaks tower's contract; it
///   does not panic: the call is refused as [`BulkheadRejected::Full`] and
///   the inner service is not called.
///
/// # Errors
///
/// [`BulkheadError::Inner`] with the inner service's error (from
/// `poll_ready` or from the call), [`BulkheadError::Rejected`] for a `call`
/// made without readiness.
///
/// # Examples
///
/// ```
/// use std::future::poll_fn;
/// use steadfast::pipeline::Bulkhead;
/// use steadfast::tower::BulkheadService;
/// use tower::{service_fn, Service};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let bulkhead = Bulkhead::builder().max_concurrent(1).build()?;
/// let echo = service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n) });
/// let mut service = BulkheadService::new(echo, bulkhead.clone());
///
/// poll_fn(|cx| service.poll_ready(cx)).await?;
/// assert_eq!(bulkhead.in_use(), 1); // held for the next call
/// assert_eq!(service.call(7).await?, 7);
/// assert_eq!(bulkhead.in_use(), 0);
/// # Ok(())
/// # }
/// ```
pub struct BulkheadService<S> {
    inner: S,
    bulkhead: Bulkhead,
    /// The slot taken by `poll_ready` for the next `call`.
    permit: Option<OwnedBulkheadPermit>,
    /// The wait for a slot, while every slot is taken.
    waiting: Option<SlotWait>,
}

impl<S> BulkheadService<S> {
    /// `inner` behind `bulkhead` (shared, not copied).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::Bulkhead;
    /// use steadfast::tower::BulkheadService;
    ///
    /// let service = BulkheadService::new(tower::service_fn(|()| async { Ok::<_, ()>(()) }), Bulkhead::default());
    /// assert_eq!(service.bulkhead().in_use(), 0);
    /// ```
    pub fn new(inner: S, bulkhead: Bulkhead) -> Self {
        BulkheadService {
            inner,
            bulkhead,
            permit: None,
            waiting: None,
        }
    }

    /// The bulkhead this service takes its slots from.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::Bulkhead;
    /// use steadfast::tower::BulkheadService;
    ///
    /// let service = BulkheadService::new((), Bulkhead::default());
    /// assert_eq!(service.bulkhead().config().max_concurrent(), 10);
    /// ```
    pub fn bulkhead(&self) -> &Bulkhead {
        &self.bulkhead
    }

    /// The inner service.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::Bulkhead;
    /// use steadfast::tower::BulkheadService;
    ///
    /// let service = BulkheadService::new("inner", Bulkhead::default());
    /// assert_eq!(*service.get_ref(), "inner");
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Takes a slot, or waits for one; `Ready` once `self.permit` holds one.
    fn poll_slot(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BulkheadRejected>> {
        if self.permit.is_some() {
            return Poll::Ready(Ok(()));
        }
        // A service already waiting keeps its place in the order of arrival.
        if self.waiting.is_none()
            && let Some(permit) = self.bulkhead.try_take_owned()
        {
            self.permit = Some(permit);
            return Poll::Ready(Ok(()));
        }
        let bulkhead = &self.bulkhead;
        let wait = self.waiting.get_or_insert_with(|| bulkhead.wait_for_slot());
        let permit = ready!(wait.as_mut().poll(cx));
        self.waiting = None;
        match permit {
            Some(permit) => {
                self.permit = Some(permit);
                Poll::Ready(Ok(()))
            }
            // The semaphore is never closed; a refusal keeps every count
            // right if it were.
            None => Poll::Ready(Err(self.bulkhead.refuse_full())),
        }
    }
}

impl<S: Clone> Clone for BulkheadService<S> {
    /// A service on the same bulkhead, without a slot: readiness is not
    /// cloned.
    fn clone(&self) -> Self {
        BulkheadService::new(self.inner.clone(), self.bulkhead.clone())
    }
}

impl<S: fmt::Debug> fmt::Debug for BulkheadService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkheadService")
            .field("inner", &self.inner)
            .field("bulkhead", &self.bulkhead)
            .field("ready", &self.permit.is_some())
            .finish()
    }
}

impl<S, Req> Service<Req> for BulkheadService<S>
where
    S: Service<Req>,
{
    type Response = S::Response;
    type Error = BulkheadError<S::Error>;
    type Future = BulkheadFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        ready!(self.poll_slot(cx)).map_err(BulkheadError::Rejected)?;
        self.inner.poll_ready(cx).map_err(BulkheadError::Inner)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match self.permit.take() {
            Some(permit) => BulkheadFuture {
                future: Some(self.inner.call(req)),
                permit: Some(permit),
                rejected: None,
            },
            None => BulkheadFuture {
                future: None,
                permit: None,
                rejected: Some(self.bulkhead.refuse_full()),
            },
        }
    }
}

pin_project! {
    /// The response future of a [`BulkheadService`]: the inner call and the
    /// slot it runs in, freed when the call completes or the future is
    /// dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::future::poll_fn;
    /// use steadfast::pipeline::Bulkhead;
    /// use steadfast::tower::{BulkheadFuture, BulkheadService};
    /// use tower::{service_fn, Service};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let bulkhead = Bulkhead::default();
    /// let mut service = BulkheadService::new(service_fn(|()| async { Ok::<_, ()>(1) }), bulkhead.clone());
    /// poll_fn(|cx| service.poll_ready(cx)).await.unwrap();
    /// let call: BulkheadFuture<_> = service.call(());
    /// assert_eq!(bulkhead.in_use(), 1);
    /// drop(call); // never polled: the slot is freed all the same
    /// assert_eq!(bulkhead.in_use(), 0);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct BulkheadFuture<F> {
        // Declared before `permit`, so dropped first: the slot is freed
        // only once the call is gone.
        #[pin]
        future: Option<F>,
        permit: Option<OwnedBulkheadPermit>,
        rejected: Option<BulkheadRejected>,
    }
}

impl<F: fmt::Debug> fmt::Debug for BulkheadFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkheadFuture")
            .field("future", &self.future)
            .field("rejected", &self.rejected)
            .finish_non_exhaustive()
    }
}

impl<F, T, E> Future for BulkheadFuture<F>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<T, BulkheadError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(future) = this.future.as_mut().as_pin_mut() else {
            return match this.rejected.take() {
                Some(rejected) => Poll::Ready(Err(BulkheadError::Rejected(rejected))),
                // Polled after it completed.
                None => Poll::Pending,
            };
        };
        let result = ready!(future.poll(cx));
        this.future.set(None);
        drop(this.permit.take());
        Poll::Ready(result.map_err(BulkheadError::Inner))
    }
}
