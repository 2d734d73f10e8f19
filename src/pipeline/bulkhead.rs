//! The bulkhead: at most `max_concurrent` calls at once, a bounded queue of
//! waiters with a queue timeout, and the permits that hold a slot: the
//! borrowing [`BulkheadPermit`] and the [`OwnedBulkheadPermit`].

use std::fmt;
use std::future::Future;
#[cfg(feature = "tower")]
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

use super::{BulkheadConfig, BulkheadConfigBuilder, BulkheadError, BulkheadRejected};

/// The `tracing` target of the bulkhead's events.
const TARGET: &str = "steadfast::bulkhead";

/// Limits how many calls run at once: at most `max_concurrent` hold a slot,
/// at most `max_queued` wait for one, each for at most `queue_timeout`;
/// everyone else is refused at once.
///
/// A bulkhead keeps a slow or failing dependency from taking every task,
/// connection or thread of its caller: once the dependency holds its slots,
/// further calls wait a bounded time in a bounded queue, or are refused with
/// a [`BulkheadRejected`] that says why.
///
/// - [`try_acquire`](Self::try_acquire) takes a slot if one is free and
///   never waits;
/// - [`acquire`](Self::acquire) waits in the queue for a slot;
/// - [`call`](Self::call) runs an operation in a slot.
///
/// A slot is held by a [`BulkheadPermit`] and freed when the permit is
/// dropped. A `Bulkhead` is cheap to clone; clones share the slots and the
/// queue. Configure it with [`Bulkhead::builder`] or a [`BulkheadConfig`]
/// (the defaults are listed there).
///
/// # How it works
///
/// - The slots are a tokio [`Semaphore`] with `max_concurrent` permits.
///   Its waiters are served in the order they arrived, and a freed slot is
///   handed to the first waiter before anyone else can take it, so
///   [`try_acquire`](Self::try_acquire) never overtakes the queue: the
///   order is first come, first served.
/// - The queue bound is a separate atomic counter of waiters. A caller that
///   finds no free slot reserves a queue place with a compare-and-swap that
///   never takes the counter past `max_queued` (it is refused with
///   [`Full`](BulkheadRejected::Full) otherwise), then waits on the
///   semaphore, under `tokio::time::timeout` when a queue timeout is set.
/// - The place is held by a guard that gives it back when dropped, and the
///   guard is dropped on each way out of the wait: a slot acquired, the
///   timeout elapsed, or the waiting future dropped. Dropping tokio's
///   semaphore wait removes the waiter from the semaphore's list and hands
///   back a slot already assigned to it. So every increment of the counter
///   has exactly one decrement and every slot exactly one release, however
///   a caller leaves: the counts stay exact under cancellation.
/// - [`try_acquire`](Self::try_acquire) with a free slot is one
///   compare-and-swap on the semaphore and, when the permit is dropped, the
///   semaphore's release; the queue counter and the clock are touched only
///   when every slot is taken.
///
/// [`in_use`](Self::in_use) is `max_concurrent` minus the semaphore's free
/// permits: a slot freed while callers wait is handed at once to the first
/// waiter, so it counts as in use, and the waiter as queued, until the
/// waiter's task runs and leaves the queue. The counts are read without a
/// lock and may be stale by the time they are returned.
///
/// Every rejection is a `tracing` event at debug level with target
/// `"steadfast::bulkhead"` and the fields `reason` (`"full"` or
/// `"queue_timeout"`) and the limits, and is counted in
/// [`snapshot`](Self::snapshot).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::pipeline::{Bulkhead, BulkheadError, BulkheadRejected};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), steadfast::ConfigError> {
/// let bulkhead = Bulkhead::builder()
///     .max_concurrent(2)
///     .max_queued(1)
///     .queue_timeout(Duration::from_millis(100))
///     .build()?;
///
/// let a = bulkhead.try_acquire().unwrap();
/// let b = bulkhead.try_acquire().unwrap();
/// assert_eq!(bulkhead.in_use(), 2);
///
/// // Every slot is taken: a call waits in the queue for 100 ms, then gives up.
/// let err = bulkhead.call(|| async { Ok::<_, std::io::Error>(()) }).await.unwrap_err();
/// assert!(matches!(
///     err,
///     BulkheadError::Rejected(BulkheadRejected::QueueTimeout { waited })
///         if waited == Duration::from_millis(100)
/// ));
///
/// drop((a, b));
/// let n = bulkhead.call(|| async { Ok::<_, std::io::Error>(7) }).await.unwrap();
/// assert_eq!(n, 7);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Bulkhead {
    shared: Arc<Shared>,
}

/// What the clones of a bulkhead share.
struct Shared {
    /// One permit per slot.
    slots: Semaphore,
    /// Callers that reserved a queue place and have not left the queue;
    /// never above `max_queued` (see [`Shared::enter_queue`]).
    queued: AtomicUsize,
    max_concurrent: u32,
    max_queued: u32,
    queue_timeout: Option<Duration>,
    config: BulkheadConfig,
    rejected_full: AtomicU64,
    queue_timeouts: AtomicU64,
    name: Option<Arc<str>>,
    /// The handles of a named bulkhead's metrics.
    #[cfg(feature = "metrics")]
    metrics: Option<crate::metrics::BulkheadMetrics>,
}

impl Shared {
    /// Reserves a queue place, or `None` when `max_queued` waiters already
    /// hold one.
    ///
    /// The counter guards nothing but its own value (the slots are the
    /// semaphore's), and read-modify-write operations on one atomic are
    /// totally ordered whatever their ordering, so `Relaxed` suffices: two
    /// callers can never both take the last place.
    fn enter_queue(&self) -> Option<QueuePlace<'_>> {
        // `u32` always fits in `usize` on the targets tokio supports; the
        // fallback only keeps the bound if it did not.
        let max = usize::try_from(self.max_queued).unwrap_or(usize::MAX);
        let mut current = self.queued.load(Ordering::Relaxed);
        loop {
            if current >= max {
                return None;
            }
            match self.queued.compare_exchange_weak(
                current,
                current + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Some(QueuePlace {
                        queued: &self.queued,
                    })
                }
                Err(actual) => current = actual,
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn reject_full(&self) -> BulkheadRejected {
        self.rejected_full.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        if let Some(metrics) = &self.metrics {
            metrics.full();
        }
        tracing::debug!(
            target: TARGET,
            reason = "full",
            max_concurrent = self.max_concurrent,
            max_queued = self.max_queued,
            "bulkhead refused a call"
        );
        BulkheadRejected::Full {
            max_concurrent: self.max_concurrent,
            max_queued: self.max_queued,
        }
    }

    #[cold]
    #[inline(never)]
    fn reject_timeout(&self, waited: Duration) -> BulkheadRejected {
        self.queue_timeouts.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        if let Some(metrics) = &self.metrics {
            metrics.queue_timeout();
        }
        tracing::debug!(
            target: TARGET,
            reason = "queue_timeout",
            waited = ?waited,
            max_concurrent = self.max_concurrent,
            max_queued = self.max_queued,
            "bulkhead refused a call"
        );
        BulkheadRejected::QueueTimeout { waited }
    }

    /// The permit of a slot just taken.
    #[inline]
    fn permit<'a>(&'a self, slot: SemaphorePermit<'a>) -> BulkheadPermit<'a> {
        self.taken();
        BulkheadPermit {
            _slot: slot,
            #[cfg(feature = "metrics")]
            metrics: self.metrics.as_ref(),
        }
    }

    /// A slot was taken: one more in use, for a named bulkhead's gauge.
    #[inline]
    fn taken(&self) {
        #[cfg(feature = "metrics")]
        if let Some(metrics) = &self.metrics {
            metrics.taken();
        }
    }

    fn in_use(&self) -> u32 {
        let free = u32::try_from(self.slots.available_permits()).unwrap_or(u32::MAX);
        self.max_concurrent.saturating_sub(free)
    }

    fn queued(&self) -> u32 {
        u32::try_from(self.queued.load(Ordering::Relaxed)).unwrap_or(u32::MAX)
    }
}

/// A reserved queue place; dropping it gives the place back.
struct QueuePlace<'a> {
    queued: &'a AtomicUsize,
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Bulkhead {
    /// A bulkhead with the given configuration, every slot free.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::{Bulkhead, BulkheadConfig};
    ///
    /// let config = BulkheadConfig::builder().max_concurrent(3).build()?;
    /// let bulkhead = Bulkhead::new(config);
    /// assert_eq!(bulkhead.config().max_concurrent(), 3);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn new(config: BulkheadConfig) -> Self {
        Bulkhead::with_name(config, None)
    }

    /// A bulkhead named `name`, with the given configuration: the
    /// shorthand of [`BulkheadConfigBuilder::name`](super::BulkheadConfigBuilder::name)
    /// for a configuration read from a file.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::{Bulkhead, BulkheadConfig};
    ///
    /// let config = BulkheadConfig::builder().max_concurrent(8).build()?;
    /// let bulkhead = Bulkhead::named("db", config);
    /// assert_eq!(bulkhead.name(), Some("db"));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn named(name: impl Into<Arc<str>>, config: BulkheadConfig) -> Self {
        Bulkhead::with_name(config, Some(name.into()))
    }

    /// The name given when the bulkhead was built, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::Bulkhead;
    /// assert_eq!(Bulkhead::default().name(), None);
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.shared.name.as_deref()
    }

    pub(super) fn with_name(config: BulkheadConfig, name: Option<Arc<str>>) -> Self {
        // A validated config never exceeds the semaphore's maximum; `min`
        // keeps `Semaphore::new` from panicking all the same.
        let permits = usize::try_from(config.max_concurrent())
            .unwrap_or(Semaphore::MAX_PERMITS)
            .min(Semaphore::MAX_PERMITS);
        let shared = Shared {
            slots: Semaphore::new(permits),
            queued: AtomicUsize::new(0),
            max_concurrent: config.max_concurrent(),
            max_queued: config.max_queued(),
            queue_timeout: config.queue_timeout(),
            config,
            rejected_full: AtomicU64::new(0),
            queue_timeouts: AtomicU64::new(0),
            #[cfg(feature = "metrics")]
            metrics: name.as_deref().map(crate::metrics::BulkheadMetrics::new),
            name,
        };
        Bulkhead {
            shared: Arc::new(shared),
        }
    }

    /// A builder for a bulkhead, starting from the defaults listed on
    /// [`BulkheadConfig`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::pipeline::Bulkhead;
    ///
    /// let bulkhead = Bulkhead::builder()
    ///     .max_concurrent(16)
    ///     .max_queued(64)
    ///     .queue_timeout(Duration::from_millis(500))
    ///     .build()?;
    /// assert_eq!(bulkhead.config().max_concurrent(), 16);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn builder() -> BulkheadConfigBuilder<Bulkhead> {
        BulkheadConfigBuilder::default()
    }

    /// The configuration this bulkhead was built with.
    ///
    /// # Examples
    ///
    /// ```
    /// let bulkhead = steadfast::pipeline::Bulkhead::default();
    /// assert_eq!(bulkhead.config().max_concurrent(), 10);
    /// ```
    pub fn config(&self) -> &BulkheadConfig {
        &self.shared.config
    }

    /// Takes a slot if one is free; never waits and never queues.
    ///
    /// With a free slot this is one compare-and-swap; the slot is freed when
    /// the permit is dropped.
    ///
    /// # Errors
    ///
    /// [`BulkheadRejected::Full`] when every slot is taken (or handed to a
    /// waiter: a caller of `try_acquire` never overtakes the queue).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::Bulkhead;
    ///
    /// let bulkhead = Bulkhead::builder().max_concurrent(1).build()?;
    /// let permit = bulkhead.try_acquire().unwrap();
    /// assert!(bulkhead.try_acquire().unwrap_err().is_full());
    /// drop(permit);
    /// assert!(bulkhead.try_acquire().is_ok());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    #[inline]
    pub fn try_acquire(&self) -> Result<BulkheadPermit<'_>, BulkheadRejected> {
        match self.shared.slots.try_acquire() {
            Ok(permit) => Ok(self.shared.permit(permit)),
            // `NoPermits`; the semaphore is never closed.
            Err(_) => Err(self.shared.reject_full()),
        }
    }

    /// Takes a slot if one is free, as [`try_acquire`](Self::try_acquire)
    /// does, with a permit that holds a handle to the bulkhead instead of
    /// borrowing it: it can be stored in a struct, moved into a task or a
    /// `'static` future.
    ///
    /// Costs what `try_acquire` costs, and one reference count more (taken
    /// when the slot is, given back when it is freed).
    ///
    /// # Errors
    ///
    /// [`BulkheadRejected::Full`] when every slot is taken, as for
    /// [`try_acquire`](Self::try_acquire).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::Bulkhead;
    ///
    /// let bulkhead = Bulkhead::builder().max_concurrent(1).build()?;
    /// let permit = bulkhead.try_acquire_owned().unwrap();
    /// let task = std::thread::spawn(move || drop(permit));
    /// task.join().unwrap();
    /// assert_eq!(bulkhead.in_use(), 0);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    #[inline]
    pub fn try_acquire_owned(&self) -> Result<OwnedBulkheadPermit, BulkheadRejected> {
        self.try_take_owned()
            .ok_or_else(|| self.shared.reject_full())
    }

    /// A free slot as an owned permit, or `None`; counts no rejection.
    #[inline]
    pub(crate) fn try_take_owned(&self) -> Option<OwnedBulkheadPermit> {
        // The semaphore's permit is forgotten and its slot given back by
        // `OwnedBulkheadPermit`'s drop, which needs no borrow of the
        // semaphore.
        let permit = self.shared.slots.try_acquire().ok()?;
        permit.forget();
        self.shared.taken();
        Some(OwnedBulkheadPermit {
            shared: Arc::clone(&self.shared),
        })
    }

    /// Waits for a slot in the semaphore's order of arrival, without a
    /// queue place, a queue bound or a queue timeout: for a caller that
    /// bounds its waiting itself (a tower service, whose caller waits on
    /// `poll_ready` and holds at most one such wait per service).
    ///
    /// The wait does not count in [`queued`](Self::queued). Dropping the
    /// future leaves the semaphore's queue and hands back a slot already
    /// assigned to it. `None` only if the semaphore were closed, which it
    /// never is. Allocates the future (only a caller that has to wait calls
    /// this).
    #[cfg(feature = "tower")]
    pub(crate) fn wait_for_slot(&self) -> SlotWait {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            // No await between the acquire and the permit that owns the
            // slot, so a drop of this future never loses a slot.
            let acquired = shared.slots.acquire().await.map(SemaphorePermit::forget);
            acquired.is_ok().then(|| {
                shared.taken();
                OwnedBulkheadPermit { shared }
            })
        })
    }

    /// Refuses a call as [`BulkheadRejected::Full`], counted and traced as
    /// every such refusal is.
    #[cfg(feature = "tower")]
    pub(crate) fn refuse_full(&self) -> BulkheadRejected {
        self.shared.reject_full()
    }

    /// Takes a slot, waiting in the queue for one if none is free.
    ///
    /// A free slot is taken at once. Otherwise the caller takes a queue
    /// place, if fewer than `max_queued` callers wait, and waits for a slot
    /// in the order of arrival, for at most `queue_timeout` when one is set.
    ///
    /// # Cancellation
    ///
    /// Dropping the future while it waits gives its queue place back at once
    /// (and a slot already handed to it, which goes to the next waiter):
    /// [`queued`](Self::queued) goes down by one and nothing leaks.
    ///
    /// # Errors
    ///
    /// [`BulkheadRejected::Full`] at once when no slot and no queue place is
    /// free; [`BulkheadRejected::QueueTimeout`] when the queue timeout
    /// elapsed before a slot freed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::pipeline::Bulkhead;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::ConfigError> {
    /// let bulkhead = Bulkhead::builder().max_concurrent(1).max_queued(1).build()?;
    /// let first = bulkhead.acquire().await.unwrap();
    ///
    /// let other = bulkhead.clone();
    /// let waiter = tokio::spawn(async move {
    ///     let _slot = other.acquire().await.unwrap();
    ///     "got a slot"
    /// });
    /// tokio::task::yield_now().await;
    /// assert_eq!(bulkhead.queued(), 1);
    ///
    /// drop(first);
    /// assert_eq!(waiter.await.unwrap(), "got a slot");
    /// assert_eq!(bulkhead.queued(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn acquire(&self) -> Result<BulkheadPermit<'_>, BulkheadRejected> {
        let shared = &*self.shared;
        if let Ok(permit) = shared.slots.try_acquire() {
            return Ok(shared.permit(permit));
        }
        let Some(place) = shared.enter_queue() else {
            return Err(shared.reject_full());
        };
        let acquired = match shared.queue_timeout {
            None => shared.slots.acquire().await,
            Some(limit) => match tokio::time::timeout(limit, shared.slots.acquire()).await {
                Ok(acquired) => acquired,
                Err(_elapsed) => {
                    drop(place);
                    return Err(shared.reject_timeout(limit));
                }
            },
        };
        drop(place);
        match acquired {
            Ok(permit) => Ok(shared.permit(permit)),
            // The semaphore is never closed, so this does not happen; a
            // refusal is the answer that keeps every count right if it did.
            Err(_closed) => Err(shared.reject_full()),
        }
    }

    /// Runs `f` in a slot: takes one as [`acquire`](Self::acquire) does
    /// (waiting in the queue if needed), runs the operation, and frees the
    /// slot when it completes.
    ///
    /// A rejected call never invokes `f`.
    ///
    /// # Cancellation
    ///
    /// Dropping the returned future while it waits in the queue gives the
    /// queue place back; dropping it while the operation runs drops the
    /// operation and then frees the slot.
    ///
    /// # Errors
    ///
    /// [`BulkheadError::Rejected`] with the [`BulkheadRejected`] when
    /// refused, [`BulkheadError::Inner`] with the operation's own error.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::Bulkhead;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let bulkhead = Bulkhead::default();
    /// let body = bulkhead.call(|| async { Ok::<_, std::io::Error>("hello") }).await.unwrap();
    /// assert_eq!(body, "hello");
    /// assert_eq!(bulkhead.in_use(), 0);
    /// # }
    /// ```
    pub async fn call<F, Fut, T, E>(&self, f: F) -> Result<T, BulkheadError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let permit = self.acquire().await?;
        let result = f().await;
        drop(permit);
        result.map_err(BulkheadError::Inner)
    }

    /// Slots held now: at most `max_concurrent`.
    ///
    /// A slot freed while callers wait is handed to the first of them at
    /// once and counts as in use from then on.
    ///
    /// # Examples
    ///
    /// ```
    /// let bulkhead = steadfast::pipeline::Bulkhead::default();
    /// let _permit = bulkhead.try_acquire().unwrap();
    /// assert_eq!(bulkhead.in_use(), 1);
    /// ```
    pub fn in_use(&self) -> u32 {
        self.shared.in_use()
    }

    /// Callers waiting in the queue now: at most `max_queued`.
    ///
    /// # Examples
    ///
    /// ```
    /// let bulkhead = steadfast::pipeline::Bulkhead::default();
    /// assert_eq!(bulkhead.queued(), 0);
    /// ```
    pub fn queued(&self) -> u32 {
        self.shared.queued()
    }

    /// The counts and limits at one moment, and the rejections since the
    /// bulkhead was built.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::Bulkhead;
    ///
    /// let bulkhead = Bulkhead::builder().max_concurrent(1).build()?;
    /// let _permit = bulkhead.try_acquire().unwrap();
    /// let _ = bulkhead.try_acquire();
    /// let snap = bulkhead.snapshot();
    /// assert_eq!(snap.in_use, 1);
    /// assert_eq!(snap.rejected_full, 1);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn snapshot(&self) -> BulkheadSnapshot {
        let shared = &*self.shared;
        BulkheadSnapshot {
            in_use: shared.in_use(),
            queued: shared.queued(),
            max_concurrent: shared.max_concurrent,
            max_queued: shared.max_queued,
            rejected_full: shared.rejected_full.load(Ordering::Relaxed),
            queue_timeouts: shared.queue_timeouts.load(Ordering::Relaxed),
        }
    }
}

impl Default for Bulkhead {
    /// A bulkhead with the defaults listed on [`BulkheadConfig`].
    ///
    /// # Examples
    ///
    /// ```
    /// let bulkhead = steadfast::pipeline::Bulkhead::default();
    /// assert_eq!(bulkhead.config().max_queued(), 0);
    /// ```
    fn default() -> Self {
        Bulkhead::new(BulkheadConfig::default())
    }
}

impl fmt::Debug for Bulkhead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("name", &self.shared.name)
            .field("config", &self.shared.config)
            .field("in_use", &self.in_use())
            .field("queued", &self.queued())
            .finish()
    }
}

/// A slot of a [`Bulkhead`], from [`Bulkhead::try_acquire`] or
/// [`Bulkhead::acquire`]; dropping it frees the slot for the next caller.
///
/// # Examples
///
/// ```
/// use steadfast::pipeline::Bulkhead;
///
/// let bulkhead = Bulkhead::default();
/// {
///     let _permit = bulkhead.try_acquire().unwrap();
///     assert_eq!(bulkhead.in_use(), 1);
/// }
/// assert_eq!(bulkhead.in_use(), 0);
/// ```
#[must_use = "the slot is freed as soon as the permit is dropped"]
pub struct BulkheadPermit<'a> {
    _slot: SemaphorePermit<'a>,
    #[cfg(feature = "metrics")]
    metrics: Option<&'a crate::metrics::BulkheadMetrics>,
}

#[cfg(feature = "metrics")]
impl Drop for BulkheadPermit<'_> {
    #[inline]
    fn drop(&mut self) {
        if let Some(metrics) = self.metrics {
            metrics.released();
        }
    }
}

impl fmt::Debug for BulkheadPermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkheadPermit").finish_non_exhaustive()
    }
}

/// A wait for a slot of a [`Bulkhead`], from `Bulkhead::wait_for_slot`.
#[cfg(feature = "tower")]
pub(crate) type SlotWait =
    Pin<Box<dyn Future<Output = Option<OwnedBulkheadPermit>> + Send + Sync + 'static>>;

/// A slot of a [`Bulkhead`] that owns a handle to it, from
/// [`Bulkhead::try_acquire_owned`] (and held by the tower layer between
/// `poll_ready` and the end of the call); dropping it frees the slot for the
/// next caller.
///
/// Unlike [`BulkheadPermit`] it borrows nothing: it can be stored, moved
/// into a task or sent to another thread.
///
/// # Examples
///
/// ```
/// use steadfast::pipeline::{Bulkhead, OwnedBulkheadPermit};
///
/// struct Job {
///     _slot: OwnedBulkheadPermit,
/// }
///
/// let bulkhead = Bulkhead::builder().max_concurrent(1).build()?;
/// let job = Job { _slot: bulkhead.try_acquire_owned().unwrap() };
/// assert_eq!(bulkhead.in_use(), 1);
/// drop(job);
/// assert_eq!(bulkhead.in_use(), 0);
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[must_use = "the slot is freed as soon as the permit is dropped"]
pub struct OwnedBulkheadPermit {
    shared: Arc<Shared>,
}

impl Drop for OwnedBulkheadPermit {
    #[inline]
    fn drop(&mut self) {
        // The slot taken (and its semaphore permit forgotten) when this
        // permit was made; handed to the first waiter if there is one, as a
        // `SemaphorePermit`'s drop does.
        self.shared.slots.add_permits(1);
        #[cfg(feature = "metrics")]
        if let Some(metrics) = &self.shared.metrics {
            metrics.released();
        }
    }
}

impl fmt::Debug for OwnedBulkheadPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedBulkheadPermit")
            .finish_non_exhaustive()
    }
}

/// What a [`Bulkhead`] holds at one moment, from [`Bulkhead::snapshot`].
///
/// The two counts are read one after the other without a lock, so under
/// load they may not be from the same instant.
///
/// # Examples
///
/// ```
/// use steadfast::pipeline::Bulkhead;
///
/// let bulkhead = Bulkhead::builder().max_concurrent(4).max_queued(2).build()?;
/// let snap = bulkhead.snapshot();
/// assert_eq!((snap.in_use, snap.queued), (0, 0));
/// assert_eq!((snap.max_concurrent, snap.max_queued), (4, 2));
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BulkheadSnapshot {
    /// Slots held (see [`Bulkhead::in_use`]).
    pub in_use: u32,
    /// Callers waiting for a slot.
    pub queued: u32,
    /// The limit on slots.
    pub max_concurrent: u32,
    /// The limit on waiters.
    pub max_queued: u32,
    /// Calls refused with [`BulkheadRejected::Full`] since the bulkhead was
    /// built.
    pub rejected_full: u64,
    /// Calls refused with [`BulkheadRejected::QueueTimeout`] since the
    /// bulkhead was built.
    pub queue_timeouts: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulkhead(max_concurrent: u32, max_queued: u32) -> Bulkhead {
        Bulkhead::builder()
            .max_concurrent(max_concurrent)
            .max_queued(max_queued)
            .build()
            .unwrap()
    }

    #[test]
    fn the_queue_counter_never_passes_its_bound() {
        let b = bulkhead(1, 2);
        let first = b.shared.enter_queue().unwrap();
        let second = b.shared.enter_queue().unwrap();
        assert!(b.shared.enter_queue().is_none());
        assert_eq!(b.queued(), 2);
        drop(first);
        assert_eq!(b.queued(), 1);
        let third = b.shared.enter_queue().unwrap();
        drop((second, third));
        assert_eq!(b.queued(), 0);
    }

    #[test]
    fn no_queue_refuses_at_once() {
        let b = bulkhead(1, 0);
        assert!(b.shared.enter_queue().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn acquire_without_a_queue_is_full_at_once() {
        let b = bulkhead(1, 0);
        let _held = b.try_acquire().unwrap();
        let start = tokio::time::Instant::now();
        let err = b.acquire().await.unwrap_err();
        assert!(err.is_full());
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(b.snapshot().rejected_full, 1);
    }

    #[test]
    fn clones_share_the_slots() {
        let a = bulkhead(1, 0);
        let b = a.clone();
        let _held = a.try_acquire().unwrap();
        assert_eq!(b.in_use(), 1);
        assert!(b.try_acquire().is_err());
        assert!(format!("{b:?}").contains("in_use: 1"));
    }
}
