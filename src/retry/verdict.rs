//! Which outcomes are retried: [`Verdict`], what a retry predicate answers
//! (retry at the backoff, retry after a given delay, or stop), and the
//! classifiers that give it for an error ([`Classifier`]: [`ByTransient`],
//! [`When`]) and for a value ([`OkClassifier`]: [`AcceptOk`], [`WhenOk`]).

use std::time::Duration;

use super::classify::Transient;

/// The answer of a retry predicate about one outcome: retry it at the
/// policy's backoff, retry it after a given delay (a `Retry-After` hint), or
/// stop.
///
/// A predicate given to [`Retry::when`](crate::retry::Retry::when) or
/// [`Retry::when_ok`](crate::retry::Retry::when_ok) returns anything that
/// converts into a verdict: a `bool` (`true` is [`Verdict::Retry`], `false`
/// is [`Verdict::Stop`]) or a `Verdict` itself, so that a predicate can keep
/// the wait an error or a response asks for. [`Verdict::of`] builds the
/// verdict of an error that implements [`Transient`], its
/// [`retry_after`](Transient::retry_after) included.
///
/// As with [`Transient::retry_after`], the delay of a
/// [`RetryAfter`](Verdict::RetryAfter) replaces the computed backoff and is
/// not capped by the policy's `max_delay`; it still counts as a retry, and a
/// wait that would overrun the policy's `max_elapsed` ends the loop.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::retry::{RetryPolicy, Transient, Verdict};
///
/// struct Busy;
/// impl Transient for Busy {
///     fn is_transient(&self) -> bool {
///         true
///     }
///     fn retry_after(&self) -> Option<Duration> {
///         Some(Duration::from_secs(7))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// assert_eq!(Verdict::of(&Busy), Verdict::RetryAfter(Duration::from_secs(7)));
/// assert_eq!(Verdict::from(true), Verdict::Retry);
/// assert_eq!(Verdict::from(false), Verdict::Stop);
///
/// let started = tokio::time::Instant::now();
/// let err = RetryPolicy::builder()
///     .max_retries(1)
///     .build()
///     .unwrap()
///     .retry(|| async { Err::<(), _>(Busy) })
///     .when(Verdict::of)
///     .await
///     .unwrap_err();
/// assert_eq!(err.attempts(), 2);
/// assert_eq!(started.elapsed(), Duration::from_secs(7));
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Retry after the policy's backoff delay.
    Retry,
    /// Retry after this delay instead of the backoff (`Retry-After`).
    RetryAfter(Duration),
    /// Do not retry: an error is returned as it is, a value is accepted.
    Stop,
}

impl Verdict {
    /// The verdict of the error's own [`Transient`] classification:
    /// [`Stop`](Verdict::Stop) when it is not transient, otherwise
    /// [`RetryAfter`](Verdict::RetryAfter) with its
    /// [`retry_after`](Transient::retry_after) if it has one, else
    /// [`Retry`](Verdict::Retry).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io;
    /// use steadfast::retry::Verdict;
    ///
    /// assert_eq!(Verdict::of(&io::Error::from(io::ErrorKind::TimedOut)), Verdict::Retry);
    /// assert_eq!(Verdict::of(&io::Error::from(io::ErrorKind::NotFound)), Verdict::Stop);
    /// ```
    pub fn of<E: Transient + ?Sized>(error: &E) -> Verdict {
        if !error.is_transient() {
            return Verdict::Stop;
        }
        match error.retry_after() {
            Some(after) => Verdict::RetryAfter(after),
            None => Verdict::Retry,
        }
    }

    /// Whether this verdict asks for another attempt.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::retry::Verdict;
    ///
    /// assert!(Verdict::RetryAfter(Duration::from_secs(1)).is_retry());
    /// assert!(!Verdict::Stop.is_retry());
    /// ```
    #[inline]
    pub fn is_retry(self) -> bool {
        !matches!(self, Verdict::Stop)
    }

    /// The delay asked for, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::retry::Verdict;
    ///
    /// assert_eq!(Verdict::RetryAfter(Duration::from_secs(2)).retry_after(), Some(Duration::from_secs(2)));
    /// assert_eq!(Verdict::Retry.retry_after(), None);
    /// ```
    #[inline]
    pub fn retry_after(self) -> Option<Duration> {
        match self {
            Verdict::RetryAfter(after) => Some(after),
            Verdict::Retry | Verdict::Stop => None,
        }
    }
}

impl From<bool> for Verdict {
    /// `true` is [`Verdict::Retry`], `false` is [`Verdict::Stop`].
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::retry::Verdict;
    /// assert_eq!(Verdict::from(true), Verdict::Retry);
    /// ```
    #[inline]
    fn from(retry: bool) -> Self {
        if retry {
            Verdict::Retry
        } else {
            Verdict::Stop
        }
    }
}

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

    /// Both answers at once; the retry loop asks only this. The default
    /// asks [`is_transient`](Self::is_transient), then, for a transient
    /// error, [`retry_after`](Self::retry_after).
    fn verdict(&mut self, error: &E) -> Verdict {
        if !self.is_transient(error) {
            return Verdict::Stop;
        }
        match self.retry_after(error) {
            Some(after) => Verdict::RetryAfter(after),
            None => Verdict::Retry,
        }
    }
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

/// A [`Classifier`] made from a predicate, set with
/// [`Retry::when`](crate::retry::Retry::when).
///
/// The predicate returns a `bool` or a [`Verdict`] (anything
/// `Into<Verdict>`): a [`Verdict::RetryAfter`] keeps the delay the error
/// asks for. The retry loop calls it once per error.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::retry::{Classifier, Verdict, When};
///
/// let mut only_busy = When(|e: &&str| *e == "busy");
/// assert!(only_busy.is_transient(&"busy"));
/// assert!(!only_busy.is_transient(&"denied"));
///
/// let mut hinted = When(|_: &&str| Verdict::RetryAfter(Duration::from_secs(2)));
/// assert_eq!(hinted.retry_after(&"busy"), Some(Duration::from_secs(2)));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct When<P>(pub P);

impl<E, P, V> Classifier<E> for When<P>
where
    P: FnMut(&E) -> V,
    V: Into<Verdict>,
{
    fn is_transient(&mut self, error: &E) -> bool {
        (self.0)(error).into().is_retry()
    }

    fn retry_after(&mut self, error: &E) -> Option<Duration> {
        (self.0)(error).into().retry_after()
    }

    #[inline]
    fn verdict(&mut self, error: &E) -> Verdict {
        (self.0)(error).into()
    }
}

/// Decides whether a value an attempt returned (`Ok`) is accepted or
/// retried, and how long to wait first: an HTTP 503 returned as a response,
/// an empty answer.
///
/// [`AcceptOk`] (the default) accepts every value and costs nothing;
/// [`WhenOk`] asks a predicate, set with
/// [`Retry::when_ok`](crate::retry::Retry::when_ok).
///
/// # Examples
///
/// ```
/// use steadfast::retry::{OkClassifier, Verdict};
///
/// /// Retries an empty answer.
/// struct NonEmpty;
/// impl OkClassifier<Vec<u8>> for NonEmpty {
///     fn verdict(&mut self, value: &Vec<u8>) -> Verdict {
///         value.is_empty().into()
///     }
/// }
/// assert_eq!(NonEmpty.verdict(&Vec::new()), Verdict::Retry);
/// ```
pub trait OkClassifier<T> {
    /// [`Verdict::Stop`] accepts `value`; any other verdict retries it.
    fn verdict(&mut self, value: &T) -> Verdict;
}

/// The default [`OkClassifier`]: every value is accepted. Its verdict is a
/// constant, so the check disappears from the compiled retry loop.
///
/// # Examples
///
/// ```
/// use steadfast::retry::{AcceptOk, OkClassifier, Verdict};
/// assert_eq!(AcceptOk.verdict(&503), Verdict::Stop);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct AcceptOk;

impl<T> OkClassifier<T> for AcceptOk {
    #[inline(always)]
    fn verdict(&mut self, _: &T) -> Verdict {
        Verdict::Stop
    }
}

/// An [`OkClassifier`] made from a predicate on values, set with
/// [`Retry::when_ok`](crate::retry::Retry::when_ok): `true` (or a retrying
/// [`Verdict`]) retries the value.
///
/// # Examples
///
/// ```
/// use steadfast::retry::{OkClassifier, Verdict, WhenOk};
///
/// let mut unavailable = WhenOk(|status: &u16| *status == 503);
/// assert_eq!(unavailable.verdict(&503), Verdict::Retry);
/// assert_eq!(unavailable.verdict(&200), Verdict::Stop);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct WhenOk<P>(pub P);

impl<T, P, V> OkClassifier<T> for WhenOk<P>
where
    P: FnMut(&T) -> V,
    V: Into<Verdict>,
{
    #[inline]
    fn verdict(&mut self, value: &T) -> Verdict {
        (self.0)(value).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Hinted(Option<Duration>, bool);
    impl Transient for Hinted {
        fn is_transient(&self) -> bool {
            self.1
        }
        fn retry_after(&self) -> Option<Duration> {
            self.0
        }
    }

    #[test]
    fn of_keeps_the_hint_and_a_permanent_error_stops() {
        let s = Duration::from_secs(3);
        assert_eq!(Verdict::of(&Hinted(Some(s), true)), Verdict::RetryAfter(s));
        assert_eq!(Verdict::of(&Hinted(None, true)), Verdict::Retry);
        assert_eq!(Verdict::of(&Hinted(Some(s), false)), Verdict::Stop);
    }
}
