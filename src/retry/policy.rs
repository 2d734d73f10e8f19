//! [`RetryPolicy`]: how many times, how long between, and for how long in
//! all.

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use tokio::time::Instant;

use super::backoff::{Backoff, Jitter};
use super::budget::Budget;
use super::error::GiveUp;
use super::future::{NoHook, Retry};
use super::verdict::{ByTransient, Verdict};
use crate::error::{check_finite_at_least, ConfigError};

/// How an operation is retried: the number of retries, an exponential
/// backoff with a cap and jitter, and an optional budget for the whole
/// operation.
///
/// # Default
///
/// - `max_retries`: 3 (so up to 4 attempts)
/// - `initial_delay`: 1 s
/// - `max_delay`: 30 s
/// - `factor`: 2.0
/// - `jitter`: [`Jitter::None`]
/// - `max_elapsed`: none
///
/// A policy is plain data: it is `Clone`, cheap to copy into tasks, and
/// (de)serializes with readable durations (`"1s"`, `"250ms"`), validated
/// when read.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::retry::{Jitter, RetryPolicy};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let policy = RetryPolicy::builder()
///     .max_retries(5)
///     .initial_delay(Duration::from_millis(100))
///     .jitter(Jitter::Equal)
///     .build()?;
///
/// let mut calls = 0;
/// let value = policy
///     .retry(|| {
///         calls += 1;
///         let fail = calls < 3;
///         async move {
///             if fail {
///                 Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset))
///             } else {
///                 Ok("connected")
///             }
///         }
///     })
///     .await?;
/// assert_eq!(value, "connected");
/// assert_eq!(calls, 3);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RetryPolicyRepr", into = "RetryPolicyRepr")]
pub struct RetryPolicy {
    max_retries: u32,
    initial_delay: Duration,
    max_delay: Duration,
    factor: f64,
    jitter: Jitter,
    max_elapsed: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            factor: 2.0,
            jitter: Jitter::None,
            max_elapsed: None,
        }
    }
}

impl RetryPolicy {
    /// A builder starting from the defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::retry::RetryPolicy;
    /// let policy = RetryPolicy::builder().max_retries(10).build()?;
    /// assert_eq!(policy.max_retries(), 10);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn builder() -> RetryPolicyBuilder {
        RetryPolicyBuilder {
            policy: RetryPolicy::default(),
        }
    }

    /// A policy that never retries: one attempt.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::retry::RetryPolicy;
    /// assert_eq!(RetryPolicy::no_retry().max_retries(), 0);
    /// ```
    pub fn no_retry() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        }
    }

    /// How many retries after the first attempt.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::retry::RetryPolicy::default().max_retries(), 3);
    /// ```
    pub fn max_retries(&self) -> u32 {
        self.max_retries
    }

    /// The delay before the first retry.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// assert_eq!(steadfast::retry::RetryPolicy::default().initial_delay(), Duration::from_secs(1));
    /// ```
    pub fn initial_delay(&self) -> Duration {
        self.initial_delay
    }

    /// The cap on any computed delay.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// assert_eq!(steadfast::retry::RetryPolicy::default().max_delay(), Duration::from_secs(30));
    /// ```
    pub fn max_delay(&self) -> Duration {
        self.max_delay
    }

    /// The growth factor of the delay between retries.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::retry::RetryPolicy::default().factor(), 2.0);
    /// ```
    pub fn factor(&self) -> f64 {
        self.factor
    }

    /// How delays are randomised.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::retry::{Jitter, RetryPolicy};
    /// assert_eq!(RetryPolicy::default().jitter(), Jitter::None);
    /// ```
    pub fn jitter(&self) -> Jitter {
        self.jitter
    }

    /// The budget for the whole operation, attempts and delays together: no
    /// retry starts whose delay would end past it.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::retry::RetryPolicy::default().max_elapsed(), None);
    /// ```
    pub fn max_elapsed(&self) -> Option<Duration> {
        self.max_elapsed
    }

    /// The delays this policy waits before each retry, as an iterator.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::retry::RetryPolicy;
    ///
    /// let delays: Vec<_> = RetryPolicy::default().backoff().collect();
    /// assert_eq!(delays, [1, 2, 4].map(Duration::from_secs));
    /// ```
    pub fn backoff(&self) -> Backoff {
        Backoff::new(
            self.initial_delay,
            self.max_delay,
            self.factor,
            self.jitter,
            self.max_retries,
        )
    }

    /// The one rule of every retry loop (the [`Retry`] future, the
    /// pipeline's retry, the tower layer): after an outcome judged
    /// `verdict`, the delay before the next attempt, or why the loop stops.
    ///
    /// Asks, in this order: the verdict; the backoff's next delay
    /// (`next_backoff`, called only for a verdict that retries), which a
    /// `Retry-After` replaces; the `max_elapsed` budget, counted from
    /// `started`; and last the retry budget, so that a retry refused for
    /// another reason takes nothing from it.
    pub(crate) fn next_delay(
        &self,
        verdict: Verdict,
        next_backoff: impl FnOnce() -> Option<Duration>,
        started: Option<Instant>,
        budget: &impl Budget,
    ) -> Result<Duration, GiveUp> {
        if !verdict.is_retry() {
            return Err(GiveUp::NotTransient);
        }
        let computed = next_backoff().ok_or(GiveUp::Exhausted)?;
        let delay = verdict.retry_after().unwrap_or(computed);
        if let (Some(limit), Some(started)) = (self.max_elapsed, started)
            && started.elapsed().saturating_add(delay) > limit
        {
            return Err(GiveUp::ElapsedBudget);
        }
        if !budget.try_withdraw() {
            return Err(GiveUp::BudgetExhausted);
        }
        Ok(delay)
    }

    /// Runs `operation`, retrying transient errors as this policy says.
    ///
    /// `operation` is called once per attempt and returns the attempt's
    /// future. By default an error is retried when it is
    /// [`Transient`](super::Transient); use [`Retry::when`] to decide
    /// otherwise, and [`Retry::notify`] to hear about each retry. The result
    /// is the operation's value, or a [`RetryError`](super::RetryError) with
    /// the last error and the number of attempts.
    ///
    /// # Cancellation
    ///
    /// Dropping the returned future cancels the attempt in flight (or the
    /// wait before the next one); no further attempt starts.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::retry::{GiveUp, RetryPolicy};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let policy = RetryPolicy::builder().max_retries(2).build().unwrap();
    /// let err = policy
    ///     .retry(|| async { Err::<(), _>(std::io::Error::from(std::io::ErrorKind::TimedOut)) })
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.attempts(), 3);
    /// assert_eq!(err.reason(), GiveUp::Exhausted);
    /// # }
    /// ```
    pub fn retry<F, Fut, T, E>(&self, operation: F) -> Retry<F, Fut, ByTransient, NoHook>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        Retry::new(self.clone(), operation)
    }
}

/// Builds a [`RetryPolicy`], validating it in [`build`](Self::build).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::retry::RetryPolicy;
///
/// let err = RetryPolicy::builder()
///     .initial_delay(Duration::from_secs(10))
///     .max_delay(Duration::from_secs(1))
///     .build()
///     .unwrap_err();
/// assert_eq!(err.field(), "max_delay");
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct RetryPolicyBuilder {
    policy: RetryPolicy,
}

impl RetryPolicyBuilder {
    /// Retries after the first attempt (default 3; 0 means one attempt).
    ///
    /// # Examples
    ///
    /// ```
    /// let p = steadfast::retry::RetryPolicy::builder().max_retries(0).build()?;
    /// assert_eq!(p.backoff().count(), 0);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.policy.max_retries = retries;
        self
    }

    /// The delay before the first retry (default 1 s).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let p = steadfast::retry::RetryPolicy::builder().initial_delay(Duration::from_millis(50)).build()?;
    /// assert_eq!(p.initial_delay(), Duration::from_millis(50));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.policy.initial_delay = delay;
        self
    }

    /// The cap on any computed delay (default 30 s); must not be below the
    /// initial delay.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let p = steadfast::retry::RetryPolicy::builder().max_delay(Duration::from_secs(5)).build()?;
    /// assert_eq!(p.max_delay(), Duration::from_secs(5));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.policy.max_delay = delay;
        self
    }

    /// The growth factor (default 2.0); must be finite and at least 1.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::retry::RetryPolicy::builder().factor(0.5).build().is_err());
    /// assert!(steadfast::retry::RetryPolicy::builder().factor(f64::NAN).build().is_err());
    /// ```
    pub fn factor(mut self, factor: f64) -> Self {
        self.policy.factor = factor;
        self
    }

    /// How delays are randomised (default [`Jitter::None`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::retry::{Jitter, RetryPolicy};
    /// let p = RetryPolicy::builder().jitter(Jitter::Decorrelated).build()?;
    /// assert_eq!(p.jitter(), Jitter::Decorrelated);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.policy.jitter = jitter;
        self
    }

    /// A budget for the whole operation (default none): once the time spent
    /// plus the next delay would exceed it, the retry loop gives up.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let p = steadfast::retry::RetryPolicy::builder().max_elapsed(Duration::from_secs(60)).build()?;
    /// assert_eq!(p.max_elapsed(), Some(Duration::from_secs(60)));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn max_elapsed(mut self, budget: Duration) -> Self {
        self.policy.max_elapsed = Some(budget);
        self
    }

    /// Removes the budget set by [`max_elapsed`](Self::max_elapsed).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let p = steadfast::retry::RetryPolicy::builder()
    ///     .max_elapsed(Duration::from_secs(1))
    ///     .no_max_elapsed()
    ///     .build()?;
    /// assert_eq!(p.max_elapsed(), None);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn no_max_elapsed(mut self) -> Self {
        self.policy.max_elapsed = None;
        self
    }

    /// Validates and returns the policy.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when the factor is below 1 or not finite, when
    /// `max_delay` is below `initial_delay`, or when `max_elapsed` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// let policy = steadfast::retry::RetryPolicy::builder().build()?;
    /// assert_eq!(policy, steadfast::retry::RetryPolicy::default());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn build(self) -> Result<RetryPolicy, ConfigError> {
        self.policy.validate()?;
        Ok(self.policy)
    }
}

impl RetryPolicy {
    /// Checks every rule of the policy; called by
    /// [`RetryPolicyBuilder::build`] and by deserialization.
    fn validate(&self) -> Result<(), ConfigError> {
        check_finite_at_least("factor", self.factor, 1.0)?;
        if self.max_delay < self.initial_delay {
            return Err(ConfigError::new(
                "max_delay",
                format!(
                    "must not be below initial_delay ({:?} < {:?})",
                    self.max_delay, self.initial_delay
                ),
            ));
        }
        if self.max_elapsed == Some(Duration::ZERO) {
            return Err(ConfigError::new(
                "max_elapsed",
                "must be greater than zero when set",
            ));
        }
        Ok(())
    }
}

/// The serialized form of a [`RetryPolicy`]; every field is optional and
/// defaults as the builder does.
#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RetryPolicyRepr {
    max_retries: u32,
    #[serde(with = "crate::serde_duration")]
    initial_delay: Duration,
    #[serde(with = "crate::serde_duration")]
    max_delay: Duration,
    factor: f64,
    jitter: Jitter,
    #[serde(
        with = "crate::serde_duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    max_elapsed: Option<Duration>,
}

impl Default for RetryPolicyRepr {
    fn default() -> Self {
        RetryPolicy::default().into()
    }
}

impl From<RetryPolicy> for RetryPolicyRepr {
    fn from(p: RetryPolicy) -> Self {
        RetryPolicyRepr {
            max_retries: p.max_retries,
            initial_delay: p.initial_delay,
            max_delay: p.max_delay,
            factor: p.factor,
            jitter: p.jitter,
            max_elapsed: p.max_elapsed,
        }
    }
}

impl TryFrom<RetryPolicyRepr> for RetryPolicy {
    type Error = ConfigError;

    fn try_from(r: RetryPolicyRepr) -> Result<Self, ConfigError> {
        let policy = RetryPolicy {
            max_retries: r.max_retries,
            initial_delay: r.initial_delay,
            max_delay: r.max_delay,
            factor: r.factor,
            jitter: r.jitter,
            max_elapsed: r.max_elapsed,
        };
        policy.validate()?;
        Ok(policy)
    }
}
