//! What a retry returns when it gives up: [`RetryError`], the caller's own
//! error with the number of attempts, and [`GiveUp`], why it stopped.

use std::fmt;

use super::classify::Transient;

/// Why the retry loop stopped.
///
/// # Examples
///
/// ```
/// use steadfast::retry::GiveUp;
/// assert_eq!(GiveUp::Exhausted.to_string(), "retries exhausted");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GiveUp {
    /// The error was not transient: retrying would not help.
    NotTransient,
    /// Every retry the policy allows was used.
    Exhausted,
    /// The next delay would have gone past the policy's `max_elapsed` budget.
    ElapsedBudget,
    /// The shared [`RetryBudget`](super::RetryBudget) refused the retry:
    /// the calls sharing it retried as much as it allows.
    BudgetExhausted,
}

impl fmt::Display for GiveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GiveUp::NotTransient => "error is not transient",
            GiveUp::Exhausted => "retries exhausted",
            GiveUp::ElapsedBudget => "time budget exhausted",
            GiveUp::BudgetExhausted => "retry budget exhausted",
        })
    }
}

/// The caller's own error, returned when the retry loop gives up, with the
/// number of attempts made and why it stopped.
///
/// # Examples
///
/// ```
/// use std::io;
/// use steadfast::retry::{GiveUp, RetryPolicy};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let err = RetryPolicy::default()
///     .retry(|| async { Err::<(), _>(io::Error::from(io::ErrorKind::NotFound)) })
///     .await
///     .unwrap_err();
/// assert_eq!(err.attempts(), 1);
/// assert_eq!(err.reason(), GiveUp::NotTransient);
/// assert_eq!(err.inner().kind(), io::ErrorKind::NotFound);
/// # }
/// ```
#[derive(Debug)]
pub struct RetryError<E> {
    error: E,
    attempts: u32,
    reason: GiveUp,
}

impl<E> RetryError<E> {
    /// A retry error, for code that runs its own attempts and reports them
    /// the same way.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::retry::{GiveUp, RetryError};
    /// let err = RetryError::new("refused", 4, GiveUp::Exhausted);
    /// assert_eq!(err.attempts(), 4);
    /// ```
    pub fn new(error: E, attempts: u32, reason: GiveUp) -> Self {
        RetryError {
            error,
            attempts,
            reason,
        }
    }

    /// How many attempts ran, the first one included.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::retry::{GiveUp, RetryError};
    /// assert_eq!(RetryError::new((), 2, GiveUp::NotTransient).attempts(), 2);
    /// ```
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Why the loop stopped.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::retry::{GiveUp, RetryError};
    /// assert_eq!(RetryError::new((), 1, GiveUp::ElapsedBudget).reason(), GiveUp::ElapsedBudget);
    /// ```
    pub fn reason(&self) -> GiveUp {
        self.reason
    }

    /// The last attempt's error.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::retry::{GiveUp, RetryError};
    /// assert_eq!(*RetryError::new("busy", 1, GiveUp::Exhausted).inner(), "busy");
    /// ```
    pub fn inner(&self) -> &E {
        &self.error
    }

    /// The last attempt's error, by value.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::retry::{GiveUp, RetryError};
    /// assert_eq!(RetryError::new("busy", 1, GiveUp::Exhausted).into_inner(), "busy");
    /// ```
    pub fn into_inner(self) -> E {
        self.error
    }
}

impl<E: fmt::Display> fmt::Display for RetryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gave up after {} attempt{} ({}): {}",
            self.attempts,
            if self.attempts == 1 { "" } else { "s" },
            self.reason,
            self.error
        )
    }
}

impl<E: std::error::Error + 'static> std::error::Error for RetryError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Retries already ran out, so a retry error is never transient.
impl<E> Transient for RetryError<E> {
    fn is_transient(&self) -> bool {
        false
    }
}
