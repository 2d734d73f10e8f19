//! One call through the breaker: the [`Permit`] that admission hands out
//! and that records the call's outcome, and the future of
//! [`CircuitBreaker::call_with`](super::CircuitBreaker::call_with), which
//! takes a permit, runs the operation and records what it returned.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::shared::Shared;
use super::{BreakerError, Rejected};

/// What a [`CallWith`] answers with: the breaker's own
/// `Result<T, BreakerError<E>>` ([`AsBreakerError`]), or another shape (a
/// pipeline's error), built where the outcome is known so that no nested
/// `Result` is moved and mapped afterwards.
pub(crate) trait CallOutput<T, E> {
    /// The future's output.
    type Output;
    /// The operation's value.
    fn value(value: T) -> Self::Output;
    /// The breaker refused the call.
    fn rejected(rejected: Rejected) -> Self::Output;
    /// The operation's error.
    fn error(error: E) -> Self::Output;
}

/// The output of [`CircuitBreaker::call_with`](super::CircuitBreaker::call_with).
pub(crate) struct AsBreakerError;

impl<T, E> CallOutput<T, E> for AsBreakerError {
    type Output = Result<T, BreakerError<E>>;

    #[inline]
    fn value(value: T) -> Self::Output {
        Ok(value)
    }

    #[inline]
    fn rejected(rejected: Rejected) -> Self::Output {
        Err(rejected.into())
    }

    #[inline]
    fn error(error: E) -> Self::Output {
        Err(BreakerError::Inner(error))
    }
}

pin_project! {
    /// The future of
    /// [`CircuitBreaker::call_with`](super::CircuitBreaker::call_with)
    /// (and of [`CircuitBreaker::call`](super::CircuitBreaker::call)).
    ///
    /// Its first poll takes a permit and starts the operation; when the
    /// operation is ready at once the permit never leaves the stack, and it
    /// is stored here only when the operation has to wait. Dropping the
    /// future drops the operation and then the permit (which frees a trial
    /// place, and records nothing), as dropping an `async fn`'s future would.
    ///
    /// Fields are dropped in the order they are declared, so `fut` comes
    /// before `permit`: a trial's place is freed only once its operation is
    /// gone, and while the operation's destructor runs no other trial is
    /// admitted (never more than `half_open_permits` operations alive).
    pub(crate) struct CallWith<'a, P, F, Fut, O = AsBreakerError> {
        shared: &'a Shared,
        is_failure: Option<P>,
        // `Some` until the first poll.
        f: Option<F>,
        // The operation, from the first poll until it completes. Declared
        // before `permit` so that it is dropped first (see above).
        #[pin]
        fut: Option<Fut>,
        // The permit of an operation that is waiting.
        permit: Option<Permit<'a>>,
        output: PhantomData<fn() -> O>,
    }
}

impl<'a, P, F, Fut, O> CallWith<'a, P, F, Fut, O> {
    /// The call of `f`, not started until first polled.
    pub(super) fn new(shared: &'a Shared, is_failure: P, f: F) -> Self {
        CallWith {
            shared,
            is_failure: Some(is_failure),
            f: Some(f),
            fut: None,
            permit: None,
            output: PhantomData,
        }
    }
}

impl<P, F, Fut, T, E, O> Future for CallWith<'_, P, F, Fut, O>
where
    P: FnOnce(&E) -> bool,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    O: CallOutput<T, E>,
{
    type Output = O::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let mut admitted = None;
        if let Some(f) = this.f.take() {
            match this.shared.try_acquire() {
                Ok(permit) => admitted = Some(permit),
                Err(rejected) => return Poll::Ready(O::rejected(rejected)),
            }
            this.fut.set(Some(f()));
        }
        // Polled again after it completed: nothing is left to do, and, as
        // a fused future does, it stays pending.
        let Some(fut) = this.fut.as_mut().as_pin_mut() else {
            return Poll::Pending;
        };
        let result = match fut.poll(cx) {
            Poll::Ready(result) => result,
            Poll::Pending => {
                if admitted.is_some() {
                    *this.permit = admitted;
                }
                return Poll::Pending;
            }
        };
        // The finished operation goes first, as `.await` drops it.
        this.fut.set(None);
        let permit = admitted.or_else(|| this.permit.take());
        match result {
            Ok(value) => {
                if let Some(permit) = permit {
                    permit.success();
                }
                Poll::Ready(O::value(value))
            }
            Err(error) => {
                let failed = this.is_failure.take().is_none_or(|p| p(&error));
                if let Some(permit) = permit {
                    if failed {
                        permit.failure();
                    } else {
                        permit.success();
                    }
                }
                Poll::Ready(O::error(error))
            }
        }
    }
}

/// Permission to make one call, from
/// [`CircuitBreaker::try_acquire`](super::CircuitBreaker::try_acquire).
///
/// Record the outcome with [`success`](Self::success) or
/// [`failure`](Self::failure). Dropping a permit without recording counts as
/// nothing: a half-open trial permit frees its place for another trial call
/// and is not a success. A permit issued before a transition (the circuit
/// opened, closed, was reset) is stale: what it records is ignored.
///
/// A permit that is leaked (`std::mem::forget`) never returns its trial
/// place; if every place is leaked that way, the circuit stays HalfOpen,
/// refusing calls, until
/// [`CircuitBreaker::reset`](super::CircuitBreaker::reset) or
/// [`CircuitBreaker::force_open`](super::CircuitBreaker::force_open).
///
/// # Examples
///
/// ```
/// use steadfast::breaker::{CircuitBreaker, State};
///
/// let breaker = CircuitBreaker::builder().failure_threshold(1).build()?;
/// let permit = breaker.try_acquire().unwrap();
/// assert!(!permit.is_trial());
/// permit.failure();
/// assert_eq!(breaker.state(), State::Open);
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[must_use = "a permit records nothing unless `success()` or `failure()` is called"]
pub struct Permit<'a> {
    shared: &'a Shared,
    pub(super) generation: u32,
    pub(super) trial: bool,
    started: Option<Instant>,
    settled: bool,
}

impl<'a> Permit<'a> {
    /// A permit of `generation`, a trial or not, for a call that started at
    /// `started` (when the slow-call rule needs the time).
    #[inline]
    pub(super) fn new(
        shared: &'a Shared,
        generation: u32,
        trial: bool,
        started: Option<Instant>,
    ) -> Self {
        Permit {
            shared,
            generation,
            trial,
            started,
            settled: false,
        }
    }
}

impl Permit<'_> {
    /// Records a successful call.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::CircuitBreaker;
    ///
    /// let breaker = CircuitBreaker::default();
    /// breaker.try_acquire().unwrap().failure();
    /// breaker.try_acquire().unwrap().success();
    /// assert_eq!(breaker.snapshot().consecutive_failures, 0);
    /// ```
    #[inline]
    pub fn success(mut self) {
        self.settled = true;
        self.shared
            .on_success(self.generation, self.trial, self.started);
    }

    /// Records a failed call.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::CircuitBreaker;
    ///
    /// let breaker = CircuitBreaker::default();
    /// breaker.try_acquire().unwrap().failure();
    /// assert_eq!(breaker.snapshot().consecutive_failures, 1);
    /// ```
    #[inline]
    pub fn failure(mut self) {
        self.settled = true;
        self.shared
            .on_failure(self.generation, self.trial, self.started);
    }

    /// Whether this is a half-open trial permit.
    ///
    /// # Examples
    ///
    /// ```
    /// let breaker = steadfast::breaker::CircuitBreaker::default();
    /// assert!(!breaker.try_acquire().unwrap().is_trial());
    /// ```
    pub fn is_trial(&self) -> bool {
        self.trial
    }
}

impl Drop for Permit<'_> {
    #[inline]
    fn drop(&mut self) {
        if !self.settled && self.trial {
            self.shared.release_trial(self.generation);
        }
    }
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("generation", &self.generation)
            .field("trial", &self.trial)
            .finish_non_exhaustive()
    }
}

/// A [`Permit`] that owns a handle on its breaker, from
/// [`CircuitBreaker::try_acquire_owned`](super::CircuitBreaker::try_acquire_owned):
/// for a call that outlives the borrow of the breaker (a tower response
/// future, a spawned task).
///
/// It records and releases exactly as a [`Permit`] does: `success`,
/// `failure`, or a drop that counts as nothing (and frees a half-open trial
/// place).
///
/// # Examples
///
/// ```
/// use steadfast::breaker::{CircuitBreaker, OwnedPermit};
///
/// let breaker = CircuitBreaker::builder().failure_threshold(1).build()?;
/// let permit: OwnedPermit = breaker.try_acquire_owned().unwrap();
/// let task = std::thread::spawn(move || permit.failure());
/// task.join().unwrap();
/// assert!(breaker.try_acquire_owned().is_err()); // open
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[must_use = "a permit records nothing unless `success` or `failure` is called"]
pub struct OwnedPermit {
    shared: Arc<Shared>,
    generation: u32,
    trial: bool,
    started: Option<Instant>,
    settled: bool,
}

impl OwnedPermit {
    /// Takes over `permit` (which then neither records nor releases
    /// anything) with a handle on its breaker.
    pub(super) fn from_permit(permit: Permit<'_>, shared: Arc<Shared>) -> Self {
        let permit = ManuallyDrop::new(permit);
        OwnedPermit {
            shared,
            generation: permit.generation,
            trial: permit.trial,
            started: permit.started,
            settled: permit.settled,
        }
    }

    /// The borrowed permit this one stands for, which records or releases;
    /// this one is settled from then on.
    fn settle(&mut self) -> Permit<'_> {
        self.settled = true;
        Permit::new(&self.shared, self.generation, self.trial, self.started)
    }

    /// Records a successful call; see [`Permit::success`].
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::CircuitBreaker;
    /// let breaker = CircuitBreaker::default();
    /// breaker.try_acquire_owned().unwrap().success();
    /// ```
    #[inline]
    pub fn success(mut self) {
        self.settle().success();
    }

    /// Records a failed call; see [`Permit::failure`].
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::{CircuitBreaker, State};
    /// let breaker = CircuitBreaker::builder().failure_threshold(1).build()?;
    /// breaker.try_acquire_owned().unwrap().failure();
    /// assert_eq!(breaker.state(), State::Open);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    #[inline]
    pub fn failure(mut self) {
        self.settle().failure();
    }

    /// Whether this is a half-open trial call.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::CircuitBreaker;
    /// let breaker = CircuitBreaker::default();
    /// assert!(!breaker.try_acquire_owned().unwrap().is_trial());
    /// ```
    pub fn is_trial(&self) -> bool {
        self.trial
    }
}

impl Drop for OwnedPermit {
    #[inline]
    fn drop(&mut self) {
        if !self.settled {
            // The borrowed permit's drop frees a trial place, records nothing.
            drop(self.settle());
        }
    }
}

impl fmt::Debug for OwnedPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPermit")
            .field("generation", &self.generation)
            .field("trial", &self.trial)
            .finish_non_exhaustive()
    }
}
