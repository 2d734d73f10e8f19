//! The circuit breaker's configuration: [`CircuitBreakerConfig`] and the
//! [`SlidingWindow`] the rate rules are evaluated over; its builder is in
//! `builder.rs`.
//!
//! A configuration is validated when it is built and when it is
//! deserialized, so a [`CircuitBreakerConfig`] value is always usable: the
//! fields are private and read through getters.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::builder::CircuitBreakerBuilder;
use super::word::MAX_TRIAL_COUNT;
#[cfg(doc)]
use super::CircuitBreaker;
use crate::error::check_ratio;
use crate::ConfigError;

/// The largest count-based window, in calls.
pub(crate) const MAX_COUNT_WINDOW: u32 = 1 << 20;
/// The largest number of buckets in a time-based window.
pub(crate) const MAX_TIME_BUCKETS: u64 = 1 << 16;
/// The smallest bucket of a time-based window.
pub(crate) const MIN_BUCKET: Duration = Duration::from_millis(1);

/// The calls a failure-rate or slow-call-rate rule looks at.
///
/// - [`SlidingWindow::Count`]: the last `size` calls.
/// - [`SlidingWindow::Time`]: the calls that ended in the last `duration`,
///   counted in buckets of `bucket` (one second unless set otherwise). The
///   window always covers `duration / bucket` whole buckets, the newest of
///   them still filling, so a call leaves the window between
///   `duration - bucket` and `duration` after it ended.
///
/// In JSON a window reads `{"kind": "count", "size": 100}` or
/// `{"kind": "time", "duration": "1m", "bucket": "1s"}` (`bucket` may be
/// left out).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::breaker::SlidingWindow;
///
/// let last_100_calls = SlidingWindow::count(100);
/// let last_minute = SlidingWindow::time(Duration::from_secs(60));
/// assert_eq!(
///     last_minute,
///     SlidingWindow::Time { duration: Duration::from_secs(60), bucket: Duration::from_secs(1) }
/// );
/// assert_ne!(last_100_calls, last_minute);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum SlidingWindow {
    /// The last `size` calls (1 to 1,048,576).
    Count {
        /// How many of the most recent calls the window holds.
        size: u32,
    },
    /// The calls of the last `duration`, in buckets of `bucket`.
    ///
    /// `duration` must be a whole multiple of `bucket`, `bucket` at least one
    /// millisecond, and there may be at most 65,536 buckets.
    Time {
        /// How far back the window reaches.
        #[serde(with = "crate::serde_duration")]
        duration: Duration,
        /// The width of one bucket (default one second).
        #[serde(with = "crate::serde_duration", default = "one_second")]
        bucket: Duration,
    },
}

fn one_second() -> Duration {
    Duration::from_secs(1)
}

impl SlidingWindow {
    /// A window over the last `size` calls.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::SlidingWindow;
    /// assert_eq!(SlidingWindow::count(50), SlidingWindow::Count { size: 50 });
    /// ```
    pub fn count(size: u32) -> Self {
        SlidingWindow::Count { size }
    }

    /// A window over the last `duration`, in one-second buckets.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::breaker::SlidingWindow;
    /// let w = SlidingWindow::time(Duration::from_secs(30));
    /// assert!(matches!(w, SlidingWindow::Time { bucket, .. } if bucket == Duration::from_secs(1)));
    /// ```
    pub fn time(duration: Duration) -> Self {
        SlidingWindow::Time {
            duration,
            bucket: one_second(),
        }
    }

    /// A window over the last `duration`, in buckets of `bucket`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::breaker::SlidingWindow;
    /// let w = SlidingWindow::time_with_bucket(Duration::from_secs(1), Duration::from_millis(100));
    /// assert!(matches!(w, SlidingWindow::Time { .. }));
    /// ```
    pub fn time_with_bucket(duration: Duration, bucket: Duration) -> Self {
        SlidingWindow::Time { duration, bucket }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        match *self {
            SlidingWindow::Count { size } => {
                if size == 0 || size > MAX_COUNT_WINDOW {
                    return Err(ConfigError::new(
                        "sliding_window.size",
                        format!("must be between 1 and {MAX_COUNT_WINDOW}, got {size}"),
                    ));
                }
            }
            SlidingWindow::Time { duration, bucket } => {
                if duration.is_zero() {
                    return Err(ConfigError::new(
                        "sliding_window.duration",
                        "must be greater than zero",
                    ));
                }
                if bucket < MIN_BUCKET {
                    return Err(ConfigError::new(
                        "sliding_window.bucket",
                        format!("must be at least 1ms, got {bucket:?}"),
                    ));
                }
                let (d, b) = (duration.as_nanos(), bucket.as_nanos());
                if d % b != 0 {
                    return Err(ConfigError::new(
                        "sliding_window.duration",
                        format!(
                            "must be a whole multiple of the bucket {bucket:?}, got {duration:?}"
                        ),
                    ));
                }
                if d / b > u128::from(MAX_TIME_BUCKETS) {
                    return Err(ConfigError::new(
                        "sliding_window.bucket",
                        format!(
                            "gives {} buckets over {duration:?}; at most {MAX_TIME_BUCKETS} are allowed",
                            d / b
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for SlidingWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SlidingWindow::Count { size } => write!(f, "last {size} calls"),
            SlidingWindow::Time { duration, bucket } => {
                write!(f, "last {duration:?} in buckets of {bucket:?}")
            }
        }
    }
}

/// How a [`CircuitBreaker`] decides to open and to close again.
///
/// Build one with [`CircuitBreakerConfig::builder`] (or build the breaker
/// directly with [`CircuitBreaker::builder`]), or deserialize it; both check
/// every value. The fields are read through getters.
///
/// # Rules
///
/// - **Consecutive failures** (always on): `failure_threshold` failures in a
///   row while Closed open the circuit.
/// - **Failure rate** (on when `failure_rate_threshold` is set): once the
///   [`sliding_window`](Self::sliding_window) holds at least `minimum_calls`
///   calls, a failure rate at or above the threshold opens the circuit.
/// - **Slow-call rate** (on when `slow_call_duration` and
///   `slow_call_rate_threshold` are set): a call that takes longer than
///   `slow_call_duration` is slow, whether it succeeds or fails; a slow-call
///   rate at or above the threshold, over the same window and with the same
///   `minimum_calls`, opens the circuit.
///
/// The rates are evaluated whenever an outcome is recorded, a success too
/// (the success that brings the window to `minimum_calls` can trip a rate
/// already at its threshold), once the window holds `minimum_calls` calls.
/// For a count-based window the effective minimum is
/// `min(minimum_calls, size)`.
///
/// # Default
///
/// - `failure_threshold`: 5
/// - `recovery_timeout`: 60 s
/// - `half_open_permits`: 1
/// - `success_threshold`: 1
/// - `sliding_window`: none
/// - `minimum_calls`: 10
/// - `failure_rate_threshold`: none (rule off)
/// - `slow_call_duration`, `slow_call_rate_threshold`: none (rule off)
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::breaker::{CircuitBreakerConfig, SlidingWindow};
///
/// let config = CircuitBreakerConfig::builder()
///     .failure_threshold(3)
///     .recovery_timeout(Duration::from_secs(30))
///     .sliding_window(SlidingWindow::count(20))
///     .failure_rate_threshold(0.5)
///     .build()?;
/// assert_eq!(config.failure_threshold(), 3);
///
/// let json = serde_json::to_string(&config).unwrap();
/// assert!(json.contains(r#""recovery_timeout":"30s""#));
/// let back: CircuitBreakerConfig = serde_json::from_str(&json).unwrap();
/// assert_eq!(back, config);
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    try_from = "CircuitBreakerConfigRepr",
    into = "CircuitBreakerConfigRepr"
)]
pub struct CircuitBreakerConfig {
    pub(super) failure_threshold: u32,
    pub(super) recovery_timeout: Duration,
    pub(super) half_open_permits: u32,
    pub(super) success_threshold: u32,
    pub(super) sliding_window: Option<SlidingWindow>,
    pub(super) minimum_calls: u32,
    pub(super) failure_rate_threshold: Option<f64>,
    pub(super) slow_call_duration: Option<Duration>,
    pub(super) slow_call_rate_threshold: Option<f64>,
}

impl Default for CircuitBreakerConfig {
    /// The documented defaults (see the `# Default` list on the type).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::CircuitBreakerConfig;
    /// assert_eq!(CircuitBreakerConfig::default(), CircuitBreakerConfig::builder().build()?);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    fn default() -> Self {
        CircuitBreakerConfig {
            failure_threshold: 5,
            recovery_timeout: Duration::from_secs(60),
            half_open_permits: 1,
            success_threshold: 1,
            sliding_window: None,
            minimum_calls: 10,
            failure_rate_threshold: None,
            slow_call_duration: None,
            slow_call_rate_threshold: None,
        }
    }
}

impl CircuitBreakerConfig {
    /// Checks every rule of the configuration; called by
    /// [`CircuitBreakerBuilder::build`] and by deserialization.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.failure_threshold == 0 {
            return Err(ConfigError::new("failure_threshold", "must be at least 1"));
        }
        if self.recovery_timeout.is_zero() {
            return Err(ConfigError::new(
                "recovery_timeout",
                "must be greater than zero",
            ));
        }
        if self.half_open_permits == 0 || self.half_open_permits > MAX_TRIAL_COUNT {
            return Err(ConfigError::new(
                "half_open_permits",
                format!(
                    "must be between 1 and {MAX_TRIAL_COUNT}, got {}",
                    self.half_open_permits
                ),
            ));
        }
        if self.success_threshold == 0 || self.success_threshold > MAX_TRIAL_COUNT {
            return Err(ConfigError::new(
                "success_threshold",
                format!(
                    "must be between 1 and {MAX_TRIAL_COUNT}, got {}",
                    self.success_threshold
                ),
            ));
        }
        if self.minimum_calls == 0 {
            return Err(ConfigError::new("minimum_calls", "must be at least 1"));
        }
        if let Some(window) = &self.sliding_window {
            window.validate()?;
        }
        if let Some(rate) = self.failure_rate_threshold {
            check_ratio("failure_rate_threshold", rate)?;
            if self.sliding_window.is_none() {
                return Err(ConfigError::new(
                    "sliding_window",
                    "is required by failure_rate_threshold",
                ));
            }
        }
        match (self.slow_call_duration, self.slow_call_rate_threshold) {
            (None, None) => {}
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "slow_call_rate_threshold",
                    "is required when slow_call_duration is set",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "slow_call_duration",
                    "is required when slow_call_rate_threshold is set",
                ));
            }
            (Some(duration), Some(rate)) => {
                if duration.is_zero() {
                    return Err(ConfigError::new(
                        "slow_call_duration",
                        "must be greater than zero",
                    ));
                }
                check_ratio("slow_call_rate_threshold", rate)?;
                if self.sliding_window.is_none() {
                    return Err(ConfigError::new(
                        "sliding_window",
                        "is required by the slow-call rule",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The serialized form of a [`CircuitBreakerConfig`]: every field is
/// optional and defaults as the builder does; the rules that are off are
/// left out.
#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct CircuitBreakerConfigRepr {
    failure_threshold: u32,
    #[serde(with = "crate::serde_duration")]
    recovery_timeout: Duration,
    half_open_permits: u32,
    success_threshold: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    sliding_window: Option<SlidingWindow>,
    minimum_calls: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_rate_threshold: Option<f64>,
    #[serde(
        with = "crate::serde_duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    slow_call_duration: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    slow_call_rate_threshold: Option<f64>,
}

impl Default for CircuitBreakerConfigRepr {
    fn default() -> Self {
        CircuitBreakerConfig::default().into()
    }
}

impl From<CircuitBreakerConfig> for CircuitBreakerConfigRepr {
    fn from(c: CircuitBreakerConfig) -> Self {
        CircuitBreakerConfigRepr {
            failure_threshold: c.failure_threshold,
            recovery_timeout: c.recovery_timeout,
            half_open_permits: c.half_open_permits,
            success_threshold: c.success_threshold,
            sliding_window: c.sliding_window,
            minimum_calls: c.minimum_calls,
            failure_rate_threshold: c.failure_rate_threshold,
            slow_call_duration: c.slow_call_duration,
            slow_call_rate_threshold: c.slow_call_rate_threshold,
        }
    }
}

impl TryFrom<CircuitBreakerConfigRepr> for CircuitBreakerConfig {
    type Error = ConfigError;

    fn try_from(r: CircuitBreakerConfigRepr) -> Result<Self, ConfigError> {
        let config = CircuitBreakerConfig {
            failure_threshold: r.failure_threshold,
            recovery_timeout: r.recovery_timeout,
            half_open_permits: r.half_open_permits,
            success_threshold: r.success_threshold,
            sliding_window: r.sliding_window,
            minimum_calls: r.minimum_calls,
            failure_rate_threshold: r.failure_rate_threshold,
            slow_call_duration: r.slow_call_duration,
            slow_call_rate_threshold: r.slow_call_rate_threshold,
        };
        config.validate()?;
        Ok(config)
    }
}

impl CircuitBreakerConfig {
    /// A builder starting from the defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::CircuitBreakerConfig;
    ///
    /// let config = CircuitBreakerConfig::builder().success_threshold(2).build()?;
    /// assert_eq!(config.success_threshold(), 2);
    /// assert_eq!(config.failure_threshold(), 5);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn builder() -> CircuitBreakerBuilder<CircuitBreakerConfig> {
        CircuitBreakerBuilder::new()
    }

    /// Consecutive failures in Closed that open the circuit.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::breaker::CircuitBreakerConfig::default().failure_threshold(), 5);
    /// ```
    pub fn failure_threshold(&self) -> u32 {
        self.failure_threshold
    }

    /// How long the circuit stays Open before it admits trial calls.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = steadfast::breaker::CircuitBreakerConfig::default();
    /// assert_eq!(config.recovery_timeout(), Duration::from_secs(60));
    /// ```
    pub fn recovery_timeout(&self) -> Duration {
        self.recovery_timeout
    }

    /// The most trial calls in flight at once while HalfOpen.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::breaker::CircuitBreakerConfig::default().half_open_permits(), 1);
    /// ```
    pub fn half_open_permits(&self) -> u32 {
        self.half_open_permits
    }

    /// Trial successes needed to close the circuit again.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::breaker::CircuitBreakerConfig::default().success_threshold(), 1);
    /// ```
    pub fn success_threshold(&self) -> u32 {
        self.success_threshold
    }

    /// The window the rate rules look at, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::breaker::CircuitBreakerConfig::default().sliding_window(), None);
    /// ```
    pub fn sliding_window(&self) -> Option<SlidingWindow> {
        self.sliding_window
    }

    /// Calls the window must hold before a rate is evaluated.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::breaker::CircuitBreakerConfig::default().minimum_calls(), 10);
    /// ```
    pub fn minimum_calls(&self) -> u32 {
        self.minimum_calls
    }

    /// The failure rate in `(0, 1]` that opens the circuit, if that rule is on.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::breaker::CircuitBreakerConfig::default().failure_rate_threshold(), None);
    /// ```
    pub fn failure_rate_threshold(&self) -> Option<f64> {
        self.failure_rate_threshold
    }

    /// The duration beyond which a call is slow, if the slow-call rule is on.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::breaker::CircuitBreakerConfig::default().slow_call_duration(), None);
    /// ```
    pub fn slow_call_duration(&self) -> Option<Duration> {
        self.slow_call_duration
    }

    /// The slow-call rate in `(0, 1]` that opens the circuit, if that rule is on.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::breaker::CircuitBreakerConfig::default().slow_call_rate_threshold(), None);
    /// ```
    pub fn slow_call_rate_threshold(&self) -> Option<f64> {
        self.slow_call_rate_threshold
    }

    /// The slow-call rule as one pair, when it is on.
    pub(crate) fn slow_call_rule(&self) -> Option<(Duration, f64)> {
        self.slow_call_duration.zip(self.slow_call_rate_threshold)
    }

    /// The number of calls a window must hold before rates are evaluated.
    pub(crate) fn effective_minimum_calls(&self) -> u32 {
        match self.sliding_window {
            Some(SlidingWindow::Count { size }) => self.minimum_calls.min(size),
            _ => self.minimum_calls,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(b: CircuitBreakerBuilder) -> &'static str {
        b.build().unwrap_err().field()
    }

    #[test]
    fn defaults_are_valid_and_documented() {
        let c = CircuitBreakerConfig::builder().build().unwrap();
        assert_eq!(c, CircuitBreakerConfig::default());
        assert_eq!(c.failure_threshold(), 5);
        assert_eq!(c.recovery_timeout(), Duration::from_secs(60));
        assert_eq!(c.half_open_permits(), 1);
        assert_eq!(c.success_threshold(), 1);
        assert_eq!(c.minimum_calls(), 10);
        assert_eq!(c.sliding_window(), None);
        assert_eq!(c.slow_call_rule(), None);
    }

    #[test]
    fn every_bad_value_names_its_field() {
        let b = CircuitBreakerConfig::builder;
        let count = SlidingWindow::count(10);
        assert_eq!(field_of(b().failure_threshold(0)), "failure_threshold");
        assert_eq!(
            field_of(b().recovery_timeout(Duration::ZERO)),
            "recovery_timeout"
        );
        assert_eq!(field_of(b().half_open_permits(0)), "half_open_permits");
        assert_eq!(field_of(b().half_open_permits(70_000)), "half_open_permits");
        assert_eq!(field_of(b().success_threshold(0)), "success_threshold");
        assert_eq!(field_of(b().minimum_calls(0)), "minimum_calls");
        for bad in [0.0, -0.1, 1.01, f64::NAN, f64::INFINITY] {
            assert_eq!(
                field_of(b().sliding_window(count).failure_rate_threshold(bad)),
                "failure_rate_threshold",
                "{bad}"
            );
            assert_eq!(
                field_of(
                    b().sliding_window(count)
                        .slow_call_duration(Duration::from_secs(1))
                        .slow_call_rate_threshold(bad)
                ),
                "slow_call_rate_threshold",
                "{bad}"
            );
        }
        assert_eq!(field_of(b().failure_rate_threshold(0.5)), "sliding_window");
        assert_eq!(
            field_of(
                b().slow_call_duration(Duration::from_secs(1))
                    .slow_call_rate_threshold(0.5)
            ),
            "sliding_window"
        );
        assert_eq!(
            field_of(
                b().sliding_window(count)
                    .slow_call_duration(Duration::from_secs(1))
            ),
            "slow_call_rate_threshold"
        );
        assert_eq!(
            field_of(b().sliding_window(count).slow_call_rate_threshold(0.5)),
            "slow_call_duration"
        );
        assert_eq!(
            field_of(
                b().sliding_window(count)
                    .slow_call_duration(Duration::ZERO)
                    .slow_call_rate_threshold(0.5)
            ),
            "slow_call_duration"
        );
        assert_eq!(
            field_of(b().sliding_window(SlidingWindow::count(0))),
            "sliding_window.size"
        );
        assert_eq!(
            field_of(b().sliding_window(SlidingWindow::time(Duration::ZERO))),
            "sliding_window.duration"
        );
        assert_eq!(
            field_of(b().sliding_window(SlidingWindow::time_with_bucket(
                Duration::from_secs(1),
                Duration::ZERO
            ))),
            "sliding_window.bucket"
        );
        assert_eq!(
            field_of(b().sliding_window(SlidingWindow::time_with_bucket(
                Duration::from_millis(2_500),
                Duration::from_secs(1)
            ))),
            "sliding_window.duration"
        );
        assert_eq!(
            field_of(b().sliding_window(SlidingWindow::time_with_bucket(
                Duration::from_secs(3_600),
                Duration::from_millis(1)
            ))),
            "sliding_window.bucket"
        );
    }

    #[test]
    fn rate_of_exactly_one_is_allowed() {
        let c = CircuitBreakerConfig::builder()
            .sliding_window(SlidingWindow::count(4))
            .failure_rate_threshold(1.0)
            .minimum_calls(100)
            .build()
            .unwrap();
        assert_eq!(c.effective_minimum_calls(), 4);
    }

    #[test]
    fn deserializing_validates() {
        let err =
            serde_json::from_str::<CircuitBreakerConfig>(r#"{"failure_threshold":0}"#).unwrap_err();
        assert!(err.to_string().contains("failure_threshold"), "{err}");
        let err =
            serde_json::from_str::<CircuitBreakerConfig>(r#"{"failure_treshold":3}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        let c: CircuitBreakerConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, CircuitBreakerConfig::default());
    }
}
