//! [`CircuitBreakerBuilder`]: the one builder of a breaker's configuration
//! and of a breaker itself, which checks every value when it builds.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use super::config::{CircuitBreakerConfig, SlidingWindow};
use super::CircuitBreaker;
use crate::ConfigError;

/// Builds a [`CircuitBreakerConfig`] (from [`CircuitBreakerConfig::builder`])
/// or a [`CircuitBreaker`] (from [`CircuitBreaker::builder`]).
///
/// Every setter takes the value as is; [`build`](Self::build) checks them all
/// and returns a [`ConfigError`] naming the first field that is wrong. The
/// type parameter only says what `build` returns.
///
/// # Default
///
/// The builder starts from the defaults listed on [`CircuitBreakerConfig`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::breaker::{CircuitBreaker, SlidingWindow};
///
/// let breaker = CircuitBreaker::builder()
///     .failure_threshold(3)
///     .sliding_window(SlidingWindow::time(Duration::from_secs(60)))
///     .minimum_calls(20)
///     .failure_rate_threshold(0.5)
///     .slow_call_duration(Duration::from_secs(2))
///     .slow_call_rate_threshold(0.8)
///     .build()?;
/// assert_eq!(breaker.config().minimum_calls(), 20);
///
/// let err = CircuitBreaker::builder().failure_threshold(0).build().unwrap_err();
/// assert_eq!(err.field(), "failure_threshold");
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[must_use]
pub struct CircuitBreakerBuilder<T = CircuitBreakerConfig> {
    config: CircuitBreakerConfig,
    /// The breaker's name (only a breaker has one, not its config).
    name: Option<Arc<str>>,
    target: PhantomData<fn() -> T>,
}

impl<T> Clone for CircuitBreakerBuilder<T> {
    fn clone(&self) -> Self {
        CircuitBreakerBuilder {
            config: self.config.clone(),
            name: self.name.clone(),
            target: PhantomData,
        }
    }
}

impl<T> fmt::Debug for CircuitBreakerBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerBuilder")
            .field("config", &self.config)
            .field("name", &self.name)
            .finish()
    }
}

impl<T> Default for CircuitBreakerBuilder<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> CircuitBreakerBuilder<T> {
    pub(super) fn new() -> Self {
        CircuitBreakerBuilder {
            config: CircuitBreakerConfig::default(),
            name: None,
            target: PhantomData,
        }
    }

    /// Starts from an existing configuration instead of the defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::{CircuitBreakerBuilder, CircuitBreakerConfig};
    ///
    /// let base = CircuitBreakerConfig::builder().failure_threshold(9).build()?;
    /// let tweaked = CircuitBreakerBuilder::<CircuitBreakerConfig>::from_config(&base)
    ///     .half_open_permits(4)
    ///     .build()?;
    /// assert_eq!(tweaked.failure_threshold(), 9);
    /// assert_eq!(tweaked.half_open_permits(), 4);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn from_config(config: &CircuitBreakerConfig) -> Self {
        CircuitBreakerBuilder {
            config: config.clone(),
            name: None,
            target: PhantomData,
        }
    }

    /// Consecutive failures in Closed that open the circuit (at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// let c = steadfast::breaker::CircuitBreakerConfig::builder().failure_threshold(2).build()?;
    /// assert_eq!(c.failure_threshold(), 2);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn failure_threshold(mut self, failures: u32) -> Self {
        self.config.failure_threshold = failures;
        self
    }

    /// How long the circuit stays Open before trial calls (greater than zero).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = steadfast::breaker::CircuitBreakerConfig::builder()
    ///     .recovery_timeout(Duration::from_secs(5))
    ///     .build()?;
    /// assert_eq!(c.recovery_timeout(), Duration::from_secs(5));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn recovery_timeout(mut self, timeout: Duration) -> Self {
        self.config.recovery_timeout = timeout;
        self
    }

    /// The most trial calls in flight at once while HalfOpen (1 to 65,535).
    ///
    /// # Examples
    ///
    /// ```
    /// let c = steadfast::breaker::CircuitBreakerConfig::builder().half_open_permits(3).build()?;
    /// assert_eq!(c.half_open_permits(), 3);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn half_open_permits(mut self, permits: u32) -> Self {
        self.config.half_open_permits = permits;
        self
    }

    /// Trial successes needed to close the circuit (1 to 65,535).
    ///
    /// # Examples
    ///
    /// ```
    /// let c = steadfast::breaker::CircuitBreakerConfig::builder().success_threshold(3).build()?;
    /// assert_eq!(c.success_threshold(), 3);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn success_threshold(mut self, successes: u32) -> Self {
        self.config.success_threshold = successes;
        self
    }

    /// The window the rate rules look at.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::{CircuitBreakerConfig, SlidingWindow};
    /// let c = CircuitBreakerConfig::builder().sliding_window(SlidingWindow::count(10)).build()?;
    /// assert_eq!(c.sliding_window(), Some(SlidingWindow::count(10)));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn sliding_window(mut self, window: SlidingWindow) -> Self {
        self.config.sliding_window = Some(window);
        self
    }

    /// Calls the window must hold before a rate is evaluated (at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// let c = steadfast::breaker::CircuitBreakerConfig::builder().minimum_calls(50).build()?;
    /// assert_eq!(c.minimum_calls(), 50);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn minimum_calls(mut self, calls: u32) -> Self {
        self.config.minimum_calls = calls;
        self
    }

    /// Turns on the failure-rate rule: a rate in `(0, 1]` at or above which
    /// the circuit opens. Needs a [`sliding_window`](Self::sliding_window).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::{CircuitBreakerConfig, SlidingWindow};
    /// let c = CircuitBreakerConfig::builder()
    ///     .sliding_window(SlidingWindow::count(10))
    ///     .failure_rate_threshold(0.5)
    ///     .build()?;
    /// assert_eq!(c.failure_rate_threshold(), Some(0.5));
    ///
    /// let err = CircuitBreakerConfig::builder().failure_rate_threshold(0.5).build().unwrap_err();
    /// assert_eq!(err.field(), "sliding_window");
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn failure_rate_threshold(mut self, rate: f64) -> Self {
        self.config.failure_rate_threshold = Some(rate);
        self
    }

    /// The duration beyond which a call is slow (greater than zero). Turns
    /// on the slow-call rule together with
    /// [`slow_call_rate_threshold`](Self::slow_call_rate_threshold).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::breaker::{CircuitBreakerConfig, SlidingWindow};
    /// let c = CircuitBreakerConfig::builder()
    ///     .sliding_window(SlidingWindow::count(10))
    ///     .slow_call_duration(Duration::from_millis(500))
    ///     .slow_call_rate_threshold(0.5)
    ///     .build()?;
    /// assert_eq!(c.slow_call_duration(), Some(Duration::from_millis(500)));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn slow_call_duration(mut self, duration: Duration) -> Self {
        self.config.slow_call_duration = Some(duration);
        self
    }

    /// The slow-call rate in `(0, 1]` at or above which the circuit opens.
    /// Turns on the slow-call rule together with
    /// [`slow_call_duration`](Self::slow_call_duration).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::breaker::{CircuitBreakerConfig, SlidingWindow};
    /// let err = CircuitBreakerConfig::builder()
    ///     .sliding_window(SlidingWindow::count(10))
    ///     .slow_call_duration(Duration::from_millis(500))
    ///     .slow_call_rate_threshold(1.5)
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.field(), "slow_call_rate_threshold");
    /// ```
    pub fn slow_call_rate_threshold(mut self, rate: f64) -> Self {
        self.config.slow_call_rate_threshold = Some(rate);
        self
    }
}

impl CircuitBreakerBuilder<CircuitBreakerConfig> {
    /// Checks every value and returns the configuration.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first field that is wrong: a zero
    /// threshold, a zero duration, a rate that is NaN or outside `(0, 1]`, a
    /// rate rule without a window, an empty window.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::CircuitBreakerConfig;
    /// let err = CircuitBreakerConfig::builder().half_open_permits(0).build().unwrap_err();
    /// assert_eq!(err.field(), "half_open_permits");
    /// ```
    pub fn build(self) -> Result<CircuitBreakerConfig, ConfigError> {
        self.config.validate()?;
        Ok(self.config)
    }
}

impl CircuitBreakerBuilder<CircuitBreaker> {
    /// Names the breaker: its state-change events carry the name (field
    /// `name`), and with the `metrics` feature its metrics are registered
    /// under it when it is built (label `name`; see
    /// `steadfast::metrics`). A breaker without a name records no metrics.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::CircuitBreaker;
    /// let breaker = CircuitBreaker::builder().name("payments").build()?;
    /// assert_eq!(breaker.name(), Some("payments"));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Checks every value and returns a new breaker, Closed.
    ///
    /// # Errors
    ///
    /// The same [`ConfigError`]s as building a [`CircuitBreakerConfig`].
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::{CircuitBreaker, State};
    /// let breaker = CircuitBreaker::builder().failure_threshold(2).build()?;
    /// assert_eq!(breaker.state(), State::Closed);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn build(self) -> Result<CircuitBreaker, ConfigError> {
        self.config.validate()?;
        Ok(CircuitBreaker::with_name(self.config, self.name))
    }
}
