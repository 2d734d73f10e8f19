//! The retry combinator: [`Retry`], the future that runs attempts and waits
//! between them, returning [`RetryError`] when it gives up.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::backoff::Backoff;
use super::budget::{Budget, NoBudget, RetryBudget};
use super::error::{GiveUp, RetryError};
use super::policy::RetryPolicy;
use super::spans::Spans;
use super::verdict::{AcceptOk, ByTransient, Classifier, OkClassifier, Verdict, When, WhenOk};

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
        // The tracing spans of the sequence, when a subscriber traces it.
        spans: Spans,
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
    #[inline]
    fn armed(&mut self) -> Option<Pin<&mut Retrying>> {
        match self {
            Retries::Armed(armed) => armed.get(),
            _ => None,
        }
    }

    /// The tracing spans of the sequence, once it is armed and traced.
    #[inline]
    fn spans(&mut self) -> Option<&mut Spans> {
        self.armed()
            .map(|retrying| retrying.project().spans)
            .filter(|spans| spans.is_open())
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
    /// awaiting, [`when`](Self::when) sets which errors are retried,
    /// [`when_ok`](Self::when_ok) which values are retried,
    /// [`notify`](Self::notify) sets a hook called before each retry of an
    /// error and [`budget`](Self::budget) shares a [`RetryBudget`] with
    /// other calls.
    ///
    /// Each retry logs a `WARN` event (target `steadfast::retry`, fields
    /// `attempt`, `max_retries`, `delay`); giving up after retries logs an
    /// `ERROR` event (fields `attempts`, `reason`). The events do not carry
    /// the error itself, so that the error type need not implement
    /// `Display` or `Debug`: the [`notify`](Self::notify) hook sees each
    /// error, and the [`RetryError`] returned holds the last one. From its
    /// first failure on, a traced retry also opens the `steadfast.retry`
    /// and `steadfast.retry.attempt` spans (see [`spans`](crate::spans)).
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
    #[project = RetryProj]
    #[must_use = "a retry does nothing unless awaited"]
    pub struct Retry<F, Fut, C, N, R = AcceptOk, B = NoBudget> {
        // Layout, chosen so that the future is cheap to move: the policy
        // (64 bytes; only its `max_elapsed` is read until an attempt
        // fails), the start time (16 bytes, written only under a budget),
        // the retry machinery (16 bytes: a seed or a pointer to the
        // `Retrying` allocated at the first retry), the attempt count, and
        // the state, which holds the attempt in flight and nothing else: no
        // timer, no backoff, no span (the spans live in `Retrying`; only
        // the optional name, 16 bytes, is here). Around 136 bytes plus the
        // caller's own operation and attempt future. The value classifier
        // and the budget take no room unless set.
        policy: RetryPolicy,
        operation: F,
        classifier: C,
        hook: N,
        accept: R,
        budget: B,
        attempts: u32,
        started: Option<Instant>,
        retries: Retries,
        // The name the tracing spans carry. The spans themselves live in
        // `Retrying` (see `spans.rs`), so that the future's drop glue
        // stays that of one field.
        name: Option<&'static str>,
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
            accept: AcceptOk,
            budget: NoBudget,
            attempts: 0,
            started: None,
            retries: Retries::Unseeded,
            name: None,
            state: State::Idle,
        }
    }
}

impl<F, Fut, C, N, R, B> Retry<F, Fut, C, N, R, B> {
    /// Retries the errors for which `predicate` says so, instead of asking
    /// [`Transient`](super::Transient). The error type then need not
    /// implement `Transient`.
    ///
    /// The predicate returns a `bool` (`true` retries at the policy's
    /// backoff) or a [`Verdict`], which can keep a `Retry-After` hint:
    /// [`Verdict::RetryAfter`] waits that long instead of the backoff, and
    /// `.when(|e| Verdict::of(e))` keeps the error's own
    /// [`retry_after`](super::Transient::retry_after). It is called once per
    /// failed attempt.
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
    pub fn when<P, V, T, E>(self, predicate: P) -> Retry<F, Fut, When<P>, N, R, B>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        P: FnMut(&E) -> V,
        V: Into<Verdict>,
    {
        self.classify(When(predicate))
    }

    /// Retries the values (`Ok`) for which `predicate` says so, as if they
    /// were transient errors: an HTTP 503 returned as a response, an empty
    /// answer. By default every value is accepted.
    ///
    /// The predicate returns a `bool` (`true` retries at the policy's
    /// backoff) or a [`Verdict`]; a [`Verdict::RetryAfter`] from a value
    /// (a response's `Retry-After` header) is honoured as one from an
    /// error. A value retry counts against `max_retries`, `max_elapsed` and
    /// the [`budget`](Self::budget) as an error retry does, and logs the
    /// same `WARN` event; the [`notify`](Self::notify) hook hears only
    /// about errors.
    ///
    /// # Running out of retries on a value
    ///
    /// When the retries run out (or the time budget or the retry budget
    /// refuses one more) on a value the predicate still refuses, the future
    /// returns that last value as `Ok`, as Polly's result handling does:
    /// the caller gets the 503 response itself, body and headers included,
    /// rather than an error that hides it. The loop logs an `ERROR` event
    /// ("giving up; returning the last value", with `attempts` and
    /// `reason`). To tell an accepted value from a refused one, ask the
    /// value as the predicate did (`response.status() == 503`): a value that
    /// comes back is either accepted or the last one refused.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::retry::RetryPolicy;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let mut statuses = vec![200, 503, 503];
    /// let status = RetryPolicy::default()
    ///     .retry(|| {
    ///         let status = statuses.pop().unwrap_or(200);
    ///         async move { Ok::<u16, std::io::Error>(status) }
    ///     })
    ///     .when_ok(|status| *status == 503)
    ///     .await
    ///     .unwrap();
    /// assert_eq!(status, 200);
    ///
    /// // Out of retries: the last 503 comes back.
    /// let status = RetryPolicy::builder()
    ///     .max_retries(2)
    ///     .build()
    ///     .unwrap()
    ///     .retry(|| async { Ok::<u16, std::io::Error>(503) })
    ///     .when_ok(|status| *status == 503)
    ///     .await
    ///     .unwrap();
    /// assert_eq!(status, 503);
    /// # }
    /// ```
    pub fn when_ok<P, V, T, E>(self, predicate: P) -> Retry<F, Fut, C, N, WhenOk<P>, B>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        P: FnMut(&T) -> V,
        V: Into<Verdict>,
    {
        self.accept(WhenOk(predicate))
    }

    /// Uses `accept` to decide which values (`Ok`) are retried; see
    /// [`when_ok`](Self::when_ok).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::retry::{RetryPolicy, WhenOk};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let mut answers = vec![vec![1], vec![]];
    /// let answer = RetryPolicy::default()
    ///     .retry(|| {
    ///         let answer = answers.pop().unwrap_or_default();
    ///         async move { Ok::<_, std::io::Error>(answer) }
    ///     })
    ///     .accept(WhenOk(|answer: &Vec<u8>| answer.is_empty()))
    ///     .await
    ///     .unwrap();
    /// assert_eq!(answer, [1]);
    /// # }
    /// ```
    pub fn accept<R2>(self, accept: R2) -> Retry<F, Fut, C, N, R2, B> {
        Retry {
            policy: self.policy,
            operation: self.operation,
            classifier: self.classifier,
            hook: self.hook,
            accept,
            budget: self.budget,
            attempts: self.attempts,
            started: self.started,
            retries: self.retries,
            name: self.name,
            state: State::Idle,
        }
    }

    /// Limits this call's retries by a [`RetryBudget`] shared with other
    /// calls: the call deposits into it when it starts, and each retry
    /// withdraws from it first. A retry the budget refuses ends the loop
    /// with the last error and [`GiveUp::BudgetExhausted`] (or, for a
    /// value refused by [`when_ok`](Self::when_ok), with the last value).
    ///
    /// The budget is shared (an `Arc` inside): this clones a pointer.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::retry::{GiveUp, RetryBudget, RetryPolicy};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::ConfigError> {
    /// // No floor and no ratio: no retry is ever allowed.
    /// let budget = RetryBudget::builder().ratio(0.0).min_retries_per_second(0).build()?;
    /// let err = RetryPolicy::default()
    ///     .retry(|| async { Err::<(), _>("busy") })
    ///     .when(|_| true)
    ///     .budget(&budget)
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.attempts(), 1);
    /// assert_eq!(err.reason(), GiveUp::BudgetExhausted);
    /// # Ok(())
    /// # }
    /// ```
    pub fn budget(self, budget: &RetryBudget) -> Retry<F, Fut, C, N, R, RetryBudget> {
        Retry {
            policy: self.policy,
            operation: self.operation,
            classifier: self.classifier,
            hook: self.hook,
            accept: self.accept,
            budget: budget.clone(),
            attempts: self.attempts,
            started: self.started,
            retries: self.retries,
            name: self.name,
            state: State::Idle,
        }
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
    pub fn classify<C2>(self, classifier: C2) -> Retry<F, Fut, C2, N, R, B> {
        Retry {
            policy: self.policy,
            operation: self.operation,
            classifier,
            hook: self.hook,
            accept: self.accept,
            budget: self.budget,
            attempts: self.attempts,
            started: self.started,
            retries: self.retries,
            name: self.name,
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
    pub fn notify<H, T, E>(self, hook: H) -> Retry<F, Fut, C, H, R, B>
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
            accept: self.accept,
            budget: self.budget,
            attempts: self.attempts,
            started: self.started,
            retries: self.retries,
            name: self.name,
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

    /// Names this retry in its tracing spans (the `name` field of the
    /// `steadfast.retry` span; see [`spans`](crate::spans)). A `'static`
    /// name costs no allocation and nothing to drop; without one the field
    /// is left out.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::retry::RetryPolicy;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let value = RetryPolicy::default()
    ///     .retry(|| async { Ok::<_, std::io::Error>(7) })
    ///     .named("fetch_user")
    ///     .await;
    /// assert_eq!(value.unwrap(), 7);
    /// # }
    /// ```
    pub fn named(mut self, name: &'static str) -> Self {
        self.name = Some(name);
        self
    }
}

impl<F, Fut, T, E, C, N, R, B> Future for Retry<F, Fut, C, N, R, B>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    C: Classifier<E>,
    N: OnRetry<E>,
    R: OkClassifier<T>,
    B: Budget,
{
    type Output = Result<T, RetryError<E>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        // Spans exist only once an attempt failed and a subscriber wants
        // them; the first poll knows there are none, so that the untraced
        // loop, free of span code, is all a retry that succeeds at once
        // runs.
        if this.retries.spans().is_some() {
            return poll_traced(&mut this, cx);
        }
        poll_loop::<false, _, _, _, _, _, _, _, _>(&mut this, cx)
    }
}

/// The loop of a traced [`Retry`], out of line.
#[inline(never)]
fn poll_traced<F, Fut, T, E, C, N, R, B>(
    this: &mut RetryProj<'_, F, Fut, C, N, R, B>,
    cx: &mut Context<'_>,
) -> Poll<Result<T, RetryError<E>>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    C: Classifier<E>,
    N: OnRetry<E>,
    R: OkClassifier<T>,
    B: Budget,
{
    poll_loop::<true, _, _, _, _, _, _, _, _>(this, cx)
}

/// The retry loop: runs attempts and waits between them. With `TRACED`
/// false, the loop holds no span code but opening the spans at the first
/// failure (a cold path); once they are open, the next attempt runs in the
/// `TRACED` loop, inside its span.
#[inline(always)]
fn poll_loop<const TRACED: bool, F, Fut, T, E, C, N, R, B>(
    this: &mut RetryProj<'_, F, Fut, C, N, R, B>,
    cx: &mut Context<'_>,
) -> Poll<Result<T, RetryError<E>>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    C: Classifier<E>,
    N: OnRetry<E>,
    R: OkClassifier<T>,
    B: Budget,
{
    loop {
        match this.state.as_mut().project() {
            StateProj::Idle => {
                if *this.attempts == 0 {
                    // A no-op, compiled away, without a budget.
                    this.budget.deposit();
                }
                if this.started.is_none() && this.policy.max_elapsed().is_some() {
                    *this.started = Some(Instant::now());
                }
                // Untraced, no span local at all: not even a `None` for
                // the optimizer to keep through the operation's code.
                let attempt = if TRACED {
                    let attempt = this.attempts.saturating_add(1);
                    let span = this
                        .retries
                        .spans()
                        .and_then(|spans| spans.begin_attempt(attempt));
                    let _entered = span.as_ref().map(tracing::Span::enter);
                    (this.operation)()
                } else {
                    (this.operation)()
                };
                this.state.set(State::Running { attempt });
            }
            StateProj::Running { attempt } => {
                let polled = if TRACED {
                    let span = this.retries.spans().and_then(|spans| spans.attempt());
                    let _entered = span.as_ref().map(tracing::Span::enter);
                    attempt.poll(cx)
                } else {
                    attempt.poll(cx)
                };
                let error = match ready!(polled) {
                    Ok(value) => {
                        // A constant `Stop` without a value predicate:
                        // this branch is all the success path costs.
                        let verdict = this.accept.verdict(&value);
                        if !verdict.is_retry() {
                            if TRACED && let Some(spans) = this.retries.spans() {
                                spans.succeeded(*this.attempts);
                            }
                            return Poll::Ready(Ok(value));
                        }
                        *this.attempts = this.attempts.saturating_add(1);
                        let mut fresh = Spans::failed(*this.name, *this.attempts);
                        let span = fresh
                            .attempt()
                            .or_else(|| this.retries.spans().and_then(|spans| spans.attempt()));
                        let entered = span.as_ref().map(tracing::Span::enter);
                        let plan = plan_retry(
                            this.policy,
                            this.budget,
                            *this.attempts,
                            *this.started,
                            this.retries,
                            verdict,
                            Outcome::Value,
                        );
                        match plan {
                            Ok(delay) => {
                                drop(entered);
                                if let Some(spans) = settle(&mut fresh, this.retries) {
                                    spans.retrying(delay);
                                }
                                this.state.set(State::Sleeping);
                                continue;
                            }
                            Err(reason) => {
                                give_up_value(*this.attempts, reason);
                                drop(entered);
                                if let Some(spans) = settle(&mut fresh, this.retries) {
                                    spans.gave_up(*this.attempts, reason);
                                }
                                return Poll::Ready(Ok(value));
                            }
                        }
                    }
                    Err(error) => error,
                };
                *this.attempts = this.attempts.saturating_add(1);
                let mut fresh = Spans::failed(*this.name, *this.attempts);
                let span = fresh
                    .attempt()
                    .or_else(|| this.retries.spans().and_then(|spans| spans.attempt()));
                let entered = span.as_ref().map(tracing::Span::enter);
                let verdict = this.classifier.verdict(&error);
                let plan = plan_retry(
                    this.policy,
                    this.budget,
                    *this.attempts,
                    *this.started,
                    this.retries,
                    verdict,
                    Outcome::Error,
                );
                match plan {
                    Ok(delay) => {
                        this.hook.on_retry(*this.attempts, &error, delay);
                        drop(entered);
                        if let Some(spans) = settle(&mut fresh, this.retries) {
                            spans.retrying(delay);
                        }
                        this.state.set(State::Sleeping);
                    }
                    Err(reason) => {
                        let error = give_up(error, *this.attempts, reason);
                        drop(entered);
                        if let Some(spans) = settle(&mut fresh, this.retries) {
                            spans.gave_up(*this.attempts, reason);
                        }
                        return Poll::Ready(Err(error));
                    }
                }
            }
            StateProj::Sleeping => {
                ready!(this.retries.poll_wait(cx));
                this.state.set(State::Idle);
                // A retry traced from this failure on: the next
                // attempt runs in the traced loop.
                if !TRACED && this.retries.spans().is_some() {
                    return poll_traced(this, cx);
                }
            }
        }
    }
}

/// The spans of a sequence after a failure: those opened at this failure
/// (`fresh`, attempt 1's) move into the armed [`Retrying`], where later
/// attempts find them; a sequence that gave up at once keeps them in
/// `fresh` until they are closed.
#[cold]
#[inline(never)]
fn settle<'a>(fresh: &'a mut Spans, retries: &'a mut Retries) -> Option<&'a mut Spans> {
    if fresh.is_open() {
        match retries.armed() {
            Some(retrying) => *retrying.project().spans = std::mem::take(fresh),
            None => return Some(fresh),
        }
    }
    retries.spans()
}

/// What an attempt that is retried returned, for the events.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Error,
    Value,
}

/// After attempt number `attempts` ended with an outcome judged `verdict`:
/// either arms the wait before the next attempt (and says so, returning the
/// delay), or says why the loop stops.
///
/// Kept out of `poll` so that the path of an attempt that succeeds stays
/// short. Takes the verdict, then the backoff's next delay (which a
/// `Retry-After` replaces), then checks the time budget, then withdraws
/// from the retry budget, in that order, before the `WARN` event; the
/// caller then calls the hook.
#[inline(never)]
fn plan_retry<B: Budget>(
    policy: &RetryPolicy,
    budget: &B,
    attempts: u32,
    started: Option<Instant>,
    retries: &mut Retries,
    verdict: Verdict,
    outcome: Outcome,
) -> Result<Duration, GiveUp> {
    // The first retry builds the backoff here; it moves into `retrying`
    // only once a wait is armed.
    let mut fresh = None;
    let delay = policy.next_delay(
        verdict,
        || match retries {
            Retries::Armed(armed) => armed.get().and_then(|r| r.project().backoff.next()),
            Retries::Unseeded => fresh.insert(policy.backoff()).next(),
            Retries::Seeded(seed) => fresh.insert(policy.backoff().seeded(*seed)).next(),
        },
        started,
        budget,
    )?;
    match outcome {
        Outcome::Error => tracing::warn!(
            target: "steadfast::retry",
            attempt = attempts,
            max_retries = policy.max_retries(),
            delay = ?delay,
            "transient error; retrying"
        ),
        Outcome::Value => tracing::warn!(
            target: "steadfast::retry",
            attempt = attempts,
            max_retries = policy.max_retries(),
            delay = ?delay,
            "value not accepted; retrying"
        ),
    }
    let sleep = tokio::time::sleep(delay);
    match retries.armed() {
        Some(retrying) => retrying.project().sleep.set(sleep),
        None => {
            if let Some(backoff) = fresh {
                let retrying = Box::pin(Retrying {
                    backoff,
                    spans: Spans::default(),
                    sleep,
                });
                *retries = Retries::Armed(Armed(Some(retrying)));
            }
        }
    }
    Ok(delay)
}

/// The error the loop ends with, and the event that says so: `DEBUG` for a
/// first error that is not transient (nothing was retried), `ERROR` after
/// retries. The error is not in the event: it need not be `Display`.
#[cold]
#[inline(never)]
fn give_up<E>(error: E, attempts: u32, reason: GiveUp) -> RetryError<E> {
    if reason == GiveUp::NotTransient && attempts == 1 {
        tracing::debug!(
            target: "steadfast::retry",
            "error is not transient; not retrying"
        );
    } else {
        tracing::error!(
            target: "steadfast::retry",
            attempts,
            reason = %reason,
            "giving up"
        );
    }
    RetryError::new(error, attempts, reason)
}

/// The event of a loop that ends on a value its value predicate still
/// refuses; the value itself is returned.
#[cold]
#[inline(never)]
fn give_up_value(attempts: u32, reason: GiveUp) {
    tracing::error!(
        target: "steadfast::retry",
        attempts,
        reason = %reason,
        "giving up; returning the last value"
    );
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
