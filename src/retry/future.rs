//! The retry combinator: [`Retry`], the future that runs attempts and waits
//! between them, returning [`RetryError`] when it gives up.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::backoff::Backoff;
use super::classify::Transient;
use super::error::{GiveUp, RetryError};
use super::policy::RetryPolicy;

/// Decides whether an error is retried and how long to wait first.
///
/// [`ByTransient`] (the default) asks the error's [`Transient`]
/// implementation; [`When`] asks a predicate. Implement it to combine both.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::retry::{Classifier, RetryPolicy};
///
/// /// Retries every error, waiting 5 s after a "busy" one.
/// struct BusyAware;
/// impl Classifier<String> for BusyAware {
///     fn is_transient(&mut self, _: &String) -> bool {
///         true
///     }
///     fn retry_after(&mut self, e: &String) -> Option<Duration> {
///         (e == "busy").then(|| Duration::from_secs(5))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let result = RetryPolicy::default()
///     .retry(|| async { Err::<(), _>("busy".to_string()) })
///     .classify(BusyAware)
///     .await;
/// assert_eq!(result.unwrap_err().attempts(), 4);
/// # }
/// ```
pub trait Classifier<E> {
    /// Whether `error` is worth another attempt.
    fn is_transient(&mut self, error: &E) -> bool;

    /// A delay `error` asks for before the next attempt, instead of the
    /// policy's backoff.
    fn retry_after(&mut self, error: &E) -> Option<Duration>;
}

/// The default [`Classifier`]: the error's own [`Transient`] implementation,
/// `Retry-After` included.
///
/// # Examples
///
/// ```
/// use std::io;
/// use steadfast::retry::{ByTransient, Classifier};
///
/// assert!(ByTransient.is_transient(&io::Error::from(io::ErrorKind::TimedOut)));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ByTransient;

impl<E: Transient> Classifier<E> for ByTransient {
    fn is_transient(&mut self, error: &E) -> bool {
        error.is_transient()
    }

    fn retry_after(&mut self, error: &E) -> Option<Duration> {
        error.retry_after()
    }
}

/// A [`Classifier`] made from a predicate, set with [`Retry::when`].
///
/// # Examples
///
/// ```
/// use steadfast::retry::{Classifier, When};
///
/// let mut only_busy = When(|e: &&str| *e == "busy");
/// assert!(only_busy.is_transient(&"busy"));
/// assert!(!only_busy.is_transient(&"denied"));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct When<P>(pub P);

impl<E, P: FnMut(&E) -> bool> Classifier<E> for When<P> {
    fn is_transient(&mut self, error: &E) -> bool {
        (self.0)(error)
    }

    fn retry_after(&mut self, _: &E) -> Option<Duration> {
        None
    }
}

/// Hears about each retry: the retry's number (1 for the first retry), the
/// error that caused it and the delay before it.
///
/// Implemented for closures `FnMut(u32, &E, Duration)` and for [`NoHook`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::retry::OnRetry;
///
/// let mut seen = Vec::new();
/// let mut hook = |attempt: u32, _: &&str, delay: Duration| seen.push((attempt, delay));
/// hook.on_retry(1, &"busy", Duration::from_secs(1));
/// assert_eq!(seen, [(1, Duration::from_secs(1))]);
/// ```
pub trait OnRetry<E> {
    /// Called before waiting `delay` for retry number `attempt`.
    fn on_retry(&mut self, attempt: u32, error: &E, delay: Duration);
}

/// The [`OnRetry`] hook that does nothing (the default).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::retry::{NoHook, OnRetry};
/// OnRetry::<()>::on_retry(&mut NoHook, 1, &(), Duration::ZERO);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHook;

impl<E> OnRetry<E> for NoHook {
    #[inline]
    fn on_retry(&mut self, _: u32, _: &E, _: Duration) {}
}

impl<E, F: FnMut(u32, &E, Duration)> OnRetry<E> for F {
    fn on_retry(&mut self, attempt: u32, error: &E, delay: Duration) {
        self(attempt, error, delay)
    }
}

pin_project! {
    /// Where the retry loop is. The wait before a retry is not held here but
    /// in [`Retrying`], so that a [`Retry`] that never retries carries no
    /// timer.
    #[project = StateProj]
    enum State<Fut> {
        Idle,
        Running { #[pin] attempt: Fut },
        Sleeping,
    }
}

pin_project! {
    /// What only a retry needs: the delay sequence and the timer of the wait
    /// before the next attempt. Allocated once, at the first retry, and reused
    /// by every later one.
    struct Retrying {
        backoff: Backoff,
        #[pin]
        sleep: Sleep,
    }
}

/// The [`Retrying`] of a [`Retry`] that has retried, freed out of line.
///
/// Its drop is a few instructions and a call to a cold function, so the
/// drop code of a whole `Retry` stays small enough to be inlined where the
/// future is dropped, and for a `Retry` that never retried it folds away to
/// nothing. (Were the box dropped in place, the timer's drop code would make
/// the `Retry`'s drop glue too large to inline, and every drop would be a
/// call.)
struct Armed(Option<Pin<Box<Retrying>>>);

impl Armed {
    fn get(&mut self) -> Option<Pin<&mut Retrying>> {
        self.0.as_mut().map(Pin::as_mut)
    }
}

impl Drop for Armed {
    #[inline]
    fn drop(&mut self) {
        if let Some(retrying) = self.0.take() {
            release(retrying);
        }
    }
}

#[cold]
#[inline(never)]
fn release(retrying: Pin<Box<Retrying>>) {
    drop(retrying);
}

/// The retry machinery of a [`Retry`]: nothing but an optional seed until
/// the first retry, then the allocated [`Retrying`]. Two words.
enum Retries {
    /// No retry yet; jitter will draw from the thread's random source.
    Unseeded,
    /// No retry yet; jitter will draw from a generator seeded with this.
    Seeded(u64),
    /// At least one retry was armed.
    Armed(Armed),
}

impl Retries {
    fn armed(&mut self) -> Option<Pin<&mut Retrying>> {
        match self {
            Retries::Armed(armed) => armed.get(),
            _ => None,
        }
    }

    /// Polls the wait before the next attempt; ready at once if none was
    /// armed. Out of line, so that `Retry::poll` stays small enough for the
    /// compiler to inline into its caller.
    #[inline(never)]
    fn poll_wait(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match self.armed() {
            Some(retrying) => retrying.project().sleep.poll(cx),
            None => Poll::Ready(()),
        }
    }
}

pin_project! {
    /// A retrying operation: await it for the result.
    ///
    /// Made by [`RetryPolicy::retry`] or [`Retryable::retry`]. Before
    /// awaiting, [`when`](Self::when) sets which errors are retried and
    /// [`notify`](Self::notify) sets a hook called before each retry.
    ///
    /// Each retry logs a `WARN` event (target `steadfast::retry`, fields
    /// `attempt`, `max_retries`, `delay`, `error`); giving up after retries
    /// logs an `ERROR` event.
    ///
    /// An attempt that succeeds at once allocates nothing and reads no
    /// clock unless the policy has a `max_elapsed` budget. The backoff and
    /// the timer for the waits are allocated together at the first retry and
    /// reused by every later one, so the future stays small (the policy,
    /// the operation, the attempt in flight and four words besides), which
    /// keeps moving it into `pin!`, an `async` block or a task cheap.
    ///
    /// # Cancellation
    ///
    /// Dropping it cancels the attempt in flight, or the wait before the next
    /// attempt.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::retry::{RetryPolicy, Retryable};
    ///
    /// async fn fetch() -> Result<u32, std::io::Error> {
    ///     Ok(42)
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let policy = RetryPolicy::default();
    /// let value = fetch
    ///     .retry(&policy)
    ///     .notify(|attempt, err: &std::io::Error, delay: Duration| {
    ///         eprintln!("retry {attempt} in {delay:?} after {err}");
    ///     })
    ///     .await?;
    /// assert_eq!(value, 42);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use = "a retry does nothing unless awaited"]
    pub struct Retry<F, Fut, C, N> {
        // Layout, chosen so that the future is cheap to move: the policy
        // (64 bytes; only its `max_elapsed` is read until an attempt
        // fails), the start time (16 bytes, written only under a budget),
        // the retry machinery (16 bytes: a seed or a pointer to the
        // `Retrying` allocated at the first retry), the attempt count, and
        // the state, which holds the attempt in flight and nothing else: no
        // timer, no backoff. Around 120 bytes plus the caller's own
        // operation and attempt future.
        policy: RetryPolicy,
        operation: F,
        classifier: C,
        hook: N,
        attempts: u32,
        started: Option<Instant>,
        retries: Retries,
        #[pin]
        state: State<Fut>,
    }
}

impl<F, Fut> Retry<F, Fut, ByTransient, NoHook> {
    pub(crate) fn new(policy: RetryPolicy, operation: F) -> Self {
        Retry {
            policy,
            operation,
            classifier: ByTransient,
            hook: NoHook,
            attempts: 0,
            started: None,
            retries: Retries::Unseeded,
            state: State::Idle,
        }
    }
}

impl<F, Fut, C, N> Retry<F, Fut, C, N> {
    /// Retries the errors for which `predicate` returns `true`, instead of
    /// asking [`Transient`]. The error type then need not implement
    /// [`Transient`].
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::retry::RetryPolicy;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let err = RetryPolicy::default()
    ///     .retry(|| async { Err::<(), _>("denied") })
    ///     .when(|e| *e != "denied")
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.attempts(), 1);
    /// # }
    /// ```
    pub fn when<P, T, E>(self, predicate: P) -> Retry<F, Fut, When<P>, N>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        P: FnMut(&E) -> bool,
    {
        self.classify(When(predicate))
    }

    /// Uses `classifier` to decide which errors are retried and how long to
    /// wait first.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::retry::{RetryPolicy, When};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let result = RetryPolicy::default()
    ///     .retry(|| async { Ok::<_, String>(1) })
    ///     .classify(When(|_: &String| true))
    ///     .await;
    /// assert_eq!(result.unwrap(), 1);
    /// # }
    /// ```
    pub fn classify<C2>(self, classifier: C2) -> Retry<F, Fut, C2, N> {
        Retry {
            policy: self.policy,
            operation: self.operation,
            classifier,
            hook: self.hook,
            attempts: self.attempts,
            started: self.started,
            retries: self.retries,
            state: State::Idle,
        }
    }

    /// Calls `hook(attempt, &error, delay)` before waiting for each retry.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::retry::RetryPolicy;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let mut retries = Vec::new();
    /// let _ = RetryPolicy::builder()
    ///     .max_retries(2)
    ///     .build()
    ///     .unwrap()
    ///     .retry(|| async { Err::<(), _>("busy") })
    ///     .when(|_| true)
    ///     .notify(|attempt, _: &&str, delay| retries.push((attempt, delay)))
    ///     .await;
    /// assert_eq!(retries, [(1, Duration::from_secs(1)), (2, Duration::from_secs(2))]);
    /// # }
    /// ```
    pub fn notify<H, T, E>(self, hook: H) -> Retry<F, Fut, C, H>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        H: FnMut(u32, &E, Duration),
    {
        Retry {
            policy: self.policy,
            operation: self.operation,
            classifier: self.classifier,
            hook,
            attempts: self.attempts,
            started: self.started,
            retries: self.retries,
            state: State::Idle,
        }
    }

    /// Uses a seeded random source for jitter, so that the delays are
    /// reproducible.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::retry::{Jitter, RetryPolicy};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let policy = RetryPolicy::builder().jitter(Jitter::Full).build().unwrap();
    /// let ok = policy.retry(|| async { Ok::<_, std::io::Error>(()) }).seeded(1).await;
    /// assert!(ok.is_ok());
    /// # }
    /// ```
    pub fn seeded(mut self, seed: u64) -> Self {
        match &mut self.retries {
            Retries::Armed(armed) => {
                if let Some(retrying) = armed.get() {
                    *retrying.project().backoff = self.policy.backoff().seeded(seed);
                }
            }
            unarmed => *unarmed = Retries::Seeded(seed),
        }
        self
    }
}

impl<F, Fut, T, E, C, N> Future for Retry<F, Fut, C, N>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    C: Classifier<E>,
    N: OnRetry<E>,
    E: fmt::Display,
{
    type Output = Result<T, RetryError<E>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Idle => {
                    if this.started.is_none() && this.policy.max_elapsed().is_some() {
                        *this.started = Some(Instant::now());
                    }
                    let attempt = (this.operation)();
                    this.state.set(State::Running { attempt });
                }
                StateProj::Running { attempt } => {
                    let error = match ready!(attempt.poll(cx)) {
                        Ok(value) => return Poll::Ready(Ok(value)),
                        Err(error) => error,
                    };
                    *this.attempts = this.attempts.saturating_add(1);
                    let plan = plan_retry(
                        this.policy,
                        this.classifier,
                        this.hook,
                        *this.attempts,
                        *this.started,
                        this.retries,
                        &error,
                    );
                    match plan {
                        Ok(()) => this.state.set(State::Sleeping),
                        Err(reason) => {
                            return Poll::Ready(Err(give_up(error, *this.attempts, reason)))
                        }
                    }
                }
                StateProj::Sleeping => {
                    ready!(this.retries.poll_wait(cx));
                    this.state.set(State::Idle);
                }
            }
        }
    }
}

/// After attempt number `attempts` failed with `error`: either arms the wait
/// before the next attempt (and says so), or says why the loop stops.
///
/// Kept out of `poll` so that the path of an attempt that succeeds stays
/// short. Asks the classifier, then the backoff, then the classifier again
/// for a `Retry-After`, in that order, before the budget check, the `WARN`
/// event and the hook.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn plan_retry<E, C, N>(
    policy: &RetryPolicy,
    classifier: &mut C,
    hook: &mut N,
    attempts: u32,
    started: Option<Instant>,
    retries: &mut Retries,
    error: &E,
) -> Result<(), GiveUp>
where
    C: Classifier<E>,
    N: OnRetry<E>,
    E: fmt::Display,
{
    if !classifier.is_transient(error) {
        return Err(GiveUp::NotTransient);
    }
    // The first retry builds the backoff here; it moves into `retrying`
    // only once a wait is armed.
    let mut fresh = None;
    let computed = match retries {
        Retries::Armed(armed) => armed.get().and_then(|r| r.project().backoff.next()),
        Retries::Unseeded => fresh.insert(policy.backoff()).next(),
        Retries::Seeded(seed) => fresh.insert(policy.backoff().seeded(*seed)).next(),
    };
    let Some(computed) = computed else {
        return Err(GiveUp::Exhausted);
    };
    let delay = classifier.retry_after(error).unwrap_or(computed);
    if let (Some(budget), Some(started)) = (policy.max_elapsed(), started)
        && started.elapsed().saturating_add(delay) > budget
    {
        return Err(GiveUp::ElapsedBudget);
    }
    tracing::warn!(
        target: "steadfast::retry",
        attempt = attempts,
        max_retries = policy.max_retries(),
        delay = ?delay,
        error = %error,
        "transient error; retrying"
    );
    hook.on_retry(attempts, error, delay);
    let sleep = tokio::time::sleep(delay);
    match retries.armed() {
        Some(retrying) => retrying.project().sleep.set(sleep),
        None => {
            if let Some(backoff) = fresh {
                let retrying = Box::pin(Retrying { backoff, sleep });
                *retries = Retries::Armed(Armed(Some(retrying)));
            }
        }
    }
    Ok(())
}

/// The error the loop ends with, and the event that says so: `DEBUG` for a
/// first error that is not transient (nothing was retried), `ERROR` after
/// retries.
#[cold]
#[inline(never)]
fn give_up<E: fmt::Display>(error: E, attempts: u32, reason: GiveUp) -> RetryError<E> {
    if reason == GiveUp::NotTransient && attempts == 1 {
        tracing::debug!(
            target: "steadfast::retry",
            error = %error,
            "error is not transient; not retrying"
        );
    } else {
        tracing::error!(
            target: "steadfast::retry",
            attempts,
            reason = %reason,
            error = %error,
            "giving up"
        );
    }
    RetryError::new(error, attempts, reason)
}

/// Retry as a method on the operation: `(|| fetch()).retry(&policy).await`.
///
/// Implemented for every `FnMut() -> Future<Output = Result<T, E>>`.
///
/// # Examples
///
/// ```
/// use steadfast::retry::{RetryPolicy, Retryable};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let policy = RetryPolicy::default();
/// let value = (|| async { Ok::<_, std::io::Error>("done") }).retry(&policy).await;
/// assert_eq!(value.unwrap(), "done");
/// # }
/// ```
pub trait Retryable<T, E, Fut>: FnMut() -> Fut + Sized
where
    Fut: Future<Output = Result<T, E>>,
{
    /// Runs this operation under `policy`; see [`RetryPolicy::retry`].
    fn retry(self, policy: &RetryPolicy) -> Retry<Self, Fut, ByTransient, NoHook> {
        Retry::new(policy.clone(), self)
    }
}

impl<F, Fut, T, E> Retryable<T, E, Fut> for F
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
}
