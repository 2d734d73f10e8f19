//! What to inject, and how often: [`ChaosConfig`] (any async operation, a
//! pipeline, a coordinator) with its validating builder, and the checks it
//! shares with [`StorageChaosConfig`](super::StorageChaosConfig) (a
//! storage).
//!
//! Both are plain data, validated when built and when deserialized: every
//! rate is a probability in `0.0..=1.0`, and a latency range does not end
//! before it starts. Durations read as `"250ms"`, `"1s"`, `"1m30s"`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// Checks that `rate` is a probability.
pub(super) fn check_rate(field: &'static str, rate: f64) -> Result<(), ConfigError> {
    if !(rate.is_finite() && (0.0..=1.0).contains(&rate)) {
        return Err(ConfigError::new(
            field,
            format!("must be a rate in 0.0..=1.0, got {rate}"),
        ));
    }
    Ok(())
}

/// Checks that a latency range does not end before it starts.
pub(super) fn check_latency(min: Duration, max: Duration) -> Result<(), ConfigError> {
    if max < min {
        return Err(ConfigError::new(
            "max_latency",
            format!("must be at least min_latency ({min:?}), got {max:?}"),
        ));
    }
    Ok(())
}

/// What [`Chaos`](super::Chaos) injects into an async operation (or a
/// pipeline's call), and [`ChaosCoordinator`](super::ChaosCoordinator) into
/// a coordinator's calls.
///
/// Each fault has a rate, the probability that one call suffers it:
///
/// - `latency_rate`: the call waits first, for a delay drawn in
///   `min_latency..=max_latency` (equal bounds: a fixed delay), on tokio's
///   clock;
/// - `error_rate`: the call fails with an injected error and does not run;
/// - `wrong_result_rate`: the call runs, and a success has its value
///   altered (operations only);
/// - `drop_rate`: the call is cancelled: its future is polled for
///   `drop_after` (zero: never polled) and dropped, and the caller sees a
///   typed error (operations only).
///
/// `seed` seeds the wrapper's random generator: the same seed and the same
/// order of calls give the same faults. `enabled` is the initial position
/// of the wrapper's [`ChaosSwitch`](super::ChaosSwitch).
///
/// In JSON: `{"seed": 7, "latency_rate": 0.5, "min_latency": "10ms",
/// "max_latency": "50ms", "error_rate": 0.1}`; every field may be left out.
///
/// # Default
///
/// - `seed`: 0, `enabled`: true
/// - every rate: 0.0 (nothing injected)
/// - `min_latency`, `max_latency`, `drop_after`: 0s
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::chaos::ChaosConfig;
///
/// let config = ChaosConfig::builder()
///     .seed(1234)
///     .latency_between(0.5, Duration::from_millis(10), Duration::from_millis(50))
///     .errors(0.1)
///     .build()?;
/// assert_eq!(config.error_rate(), 0.1);
///
/// let json = serde_json::to_string(&config).unwrap();
/// let back: ChaosConfig = serde_json::from_str(&json).unwrap();
/// assert_eq!(back, config);
/// assert!(serde_json::from_str::<ChaosConfig>(r#"{"error_rate": 1.5}"#).is_err());
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ChaosConfigRepr", into = "ChaosConfigRepr")]
pub struct ChaosConfig {
    seed: u64,
    enabled: bool,
    latency_rate: f64,
    min_latency: Duration,
    max_latency: Duration,
    error_rate: f64,
    wrong_result_rate: f64,
    drop_rate: f64,
    drop_after: Duration,
}

impl Default for ChaosConfig {
    /// The documented defaults: nothing is injected.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::chaos::ChaosConfig;
    /// assert_eq!(ChaosConfig::default(), ChaosConfig::builder().build()?);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    fn default() -> Self {
        ChaosConfig {
            seed: 0,
            enabled: true,
            latency_rate: 0.0,
            min_latency: Duration::ZERO,
            max_latency: Duration::ZERO,
            error_rate: 0.0,
            wrong_result_rate: 0.0,
            drop_rate: 0.0,
            drop_after: Duration::ZERO,
        }
    }
}

impl ChaosConfig {
    /// A builder starting from the defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = steadfast::chaos::ChaosConfig::builder().seed(9).build()?;
    /// assert_eq!(config.seed(), 9);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn builder() -> ChaosConfigBuilder {
        ChaosConfigBuilder {
            config: ChaosConfig::default(),
        }
    }

    /// Checks every rule: each rate in `0.0..=1.0`, `max_latency` at least
    /// `min_latency`. Called by [`ChaosConfigBuilder::build`] and by
    /// deserialization.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = steadfast::chaos::ChaosConfig::default();
    /// assert!(config.validate().is_ok());
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_rate("latency_rate", self.latency_rate)?;
        check_rate("error_rate", self.error_rate)?;
        check_rate("wrong_result_rate", self.wrong_result_rate)?;
        check_rate("drop_rate", self.drop_rate)?;
        check_latency(self.min_latency, self.max_latency)
    }

    /// The seed of the random generator.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::chaos::ChaosConfig::default().seed(), 0);
    /// ```
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Whether injection starts on.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::chaos::ChaosConfig::default().enabled());
    /// ```
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The probability that a call is delayed.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::chaos::ChaosConfig::default().latency_rate(), 0.0);
    /// ```
    pub fn latency_rate(&self) -> f64 {
        self.latency_rate
    }

    /// The shortest and the longest injected delay.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = steadfast::chaos::ChaosConfig::builder()
    ///     .latency(1.0, Duration::from_millis(5))
    ///     .build()?;
    /// assert_eq!(config.latency_range(), (Duration::from_millis(5), Duration::from_millis(5)));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn latency_range(&self) -> (Duration, Duration) {
        (self.min_latency, self.max_latency)
    }

    /// The probability that a call fails with an injected error.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::chaos::ChaosConfig::default().error_rate(), 0.0);
    /// ```
    pub fn error_rate(&self) -> f64 {
        self.error_rate
    }

    /// The probability that a success has its value altered.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::chaos::ChaosConfig::default().wrong_result_rate(), 0.0);
    /// ```
    pub fn wrong_result_rate(&self) -> f64 {
        self.wrong_result_rate
    }

    /// The probability that a call is cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::chaos::ChaosConfig::default().drop_rate(), 0.0);
    /// ```
    pub fn drop_rate(&self) -> f64 {
        self.drop_rate
    }

    /// How long a cancelled call is polled before it is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// assert_eq!(steadfast::chaos::ChaosConfig::default().drop_after(), Duration::ZERO);
    /// ```
    pub fn drop_after(&self) -> Duration {
        self.drop_after
    }
}

#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ChaosConfigRepr {
    seed: u64,
    enabled: bool,
    latency_rate: f64,
    #[serde(with = "crate::serde_duration")]
    min_latency: Duration,
    #[serde(with = "crate::serde_duration")]
    max_latency: Duration,
    error_rate: f64,
    wrong_result_rate: f64,
    drop_rate: f64,
    #[serde(with = "crate::serde_duration")]
    drop_after: Duration,
}

impl Default for ChaosConfigRepr {
    fn default() -> Self {
        ChaosConfig::default().into()
    }
}

impl From<ChaosConfig> for ChaosConfigRepr {
    fn from(c: ChaosConfig) -> Self {
        ChaosConfigRepr {
            seed: c.seed,
            enabled: c.enabled,
            latency_rate: c.latency_rate,
            min_latency: c.min_latency,
            max_latency: c.max_latency,
            error_rate: c.error_rate,
            wrong_result_rate: c.wrong_result_rate,
            drop_rate: c.drop_rate,
            drop_after: c.drop_after,
        }
    }
}

impl TryFrom<ChaosConfigRepr> for ChaosConfig {
    type Error = ConfigError;

    fn try_from(r: ChaosConfigRepr) -> Result<Self, ConfigError> {
        let config = ChaosConfig {
            seed: r.seed,
            enabled: r.enabled,
            latency_rate: r.latency_rate,
            min_latency: r.min_latency,
            max_latency: r.max_latency,
            error_rate: r.error_rate,
            wrong_result_rate: r.wrong_result_rate,
            drop_rate: r.drop_rate,
            drop_after: r.drop_after,
        };
        config.validate()?;
        Ok(config)
    }
}

/// Builds a [`ChaosConfig`]; [`build`](Self::build) checks every value.
///
/// # Default
///
/// The defaults listed on [`ChaosConfig`]: nothing injected.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::chaos::ChaosConfig;
///
/// let config = ChaosConfig::builder()
///     .seed(42)
///     .latency(0.25, Duration::from_millis(100))
///     .wrong_results(0.05)
///     .drops(0.01, Duration::from_millis(20))
///     .build()?;
/// assert_eq!(config.drop_after(), Duration::from_millis(20));
///
/// let err = ChaosConfig::builder().errors(-0.1).build().unwrap_err();
/// assert_eq!(err.field(), "error_rate");
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ChaosConfigBuilder {
    config: ChaosConfig,
}

impl ChaosConfigBuilder {
    /// The seed of the random generator (default 0).
    ///
    /// # Examples
    ///
    /// ```
    /// let c = steadfast::chaos::ChaosConfig::builder().seed(5).build()?;
    /// assert_eq!(c.seed(), 5);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }

    /// Whether injection starts on (default true).
    ///
    /// # Examples
    ///
    /// ```
    /// let c = steadfast::chaos::ChaosConfig::builder().enabled(false).build()?;
    /// assert!(!c.enabled());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.config.enabled = enabled;
        self
    }

    /// Delays a call with probability `rate`, by `delay`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = steadfast::chaos::ChaosConfig::builder().latency(0.5, Duration::from_secs(1)).build()?;
    /// assert_eq!(c.latency_rate(), 0.5);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn latency(self, rate: f64, delay: Duration) -> Self {
        self.latency_between(rate, delay, delay)
    }

    /// Delays a call with probability `rate`, by a delay drawn in
    /// `min..=max`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let err = steadfast::chaos::ChaosConfig::builder()
    ///     .latency_between(1.0, Duration::from_secs(2), Duration::from_secs(1))
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.field(), "max_latency");
    /// ```
    pub fn latency_between(mut self, rate: f64, min: Duration, max: Duration) -> Self {
        self.config.latency_rate = rate;
        self.config.min_latency = min;
        self.config.max_latency = max;
        self
    }

    /// Fails a call with probability `rate`.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = steadfast::chaos::ChaosConfig::builder().errors(0.2).build()?;
    /// assert_eq!(c.error_rate(), 0.2);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn errors(mut self, rate: f64) -> Self {
        self.config.error_rate = rate;
        self
    }

    /// Alters a success's value with probability `rate`.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = steadfast::chaos::ChaosConfig::builder().wrong_results(1.0).build()?;
    /// assert_eq!(c.wrong_result_rate(), 1.0);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn wrong_results(mut self, rate: f64) -> Self {
        self.config.wrong_result_rate = rate;
        self
    }

    /// Cancels a call with probability `rate`, after polling it for
    /// `after` (zero: it is never polled).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = steadfast::chaos::ChaosConfig::builder().drops(0.1, Duration::ZERO).build()?;
    /// assert_eq!(c.drop_rate(), 0.1);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn drops(mut self, rate: f64, after: Duration) -> Self {
        self.config.drop_rate = rate;
        self.config.drop_after = after;
        self
    }

    /// Checks every value and returns the configuration.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field: a rate outside `0.0..=1.0` (or
    /// NaN), a `max_latency` below `min_latency`.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = steadfast::chaos::ChaosConfig::builder().drops(f64::NAN, Default::default()).build();
    /// assert_eq!(err.unwrap_err().field(), "drop_rate");
    /// ```
    pub fn build(self) -> Result<ChaosConfig, ConfigError> {
        self.config.validate()?;
        Ok(self.config)
    }
}
