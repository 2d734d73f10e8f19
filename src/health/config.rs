//! Configuration of the [`HealthMonitor`](crate::health::HealthMonitor):
//! [`HealthConfig`], the [`DetectionPolicy`] and the phi-accrual parameters
//! ([`PhiAccrualConfig`]).
//!
//! Every config is built through a builder whose `build()` validates it, and
//! deserializes through the same validation, so that a config read from a
//! file cannot hold values that do not work.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::check_finite_at_least;
use crate::ConfigError;

/// How a silent member is judged.
///
/// # Examples
///
/// ```
/// use steadfast::health::{DetectionPolicy, PhiAccrualConfig};
///
/// let fixed = DetectionPolicy::FixedTimeout;
/// let phi = DetectionPolicy::PhiAccrual(PhiAccrualConfig::default());
/// assert_eq!(DetectionPolicy::default(), fixed);
/// assert_ne!(fixed, phi);
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectionPolicy {
    /// A member is Unresponsive when it has sent no heartbeat for longer
    /// than `heartbeat_timeout`, and Failed after twice that.
    #[default]
    FixedTimeout,
    /// The phi-accrual failure detector: a member is Unresponsive when the
    /// suspicion level phi reaches the threshold (see
    /// [`health`](crate::health) for the algorithm), and Failed when it has
    /// been silent for longer than twice `heartbeat_timeout`.
    PhiAccrual(PhiAccrualConfig),
}

/// Parameters of the phi-accrual failure detector.
///
/// # Default
///
/// - `threshold`: 8.0 (phi at which a member becomes Unresponsive)
/// - `max_samples`: 1000 (inter-arrival times kept per member)
/// - `min_std_deviation`: 100 ms (floor of the standard deviation)
/// - `acceptable_heartbeat_pause`: 3 s (added to the mean interval)
/// - `first_heartbeat_estimate`: 1 s (the mean interval assumed before any
///   interval was measured; its standard deviation is taken as a quarter of
///   it)
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::health::PhiAccrualConfig;
///
/// let phi = PhiAccrualConfig::builder()
///     .threshold(10.0)
///     .acceptable_heartbeat_pause(Duration::from_secs(1))
///     .build()?;
/// assert_eq!(phi.threshold(), 10.0);
/// assert_eq!(phi.max_samples(), 1000);
/// assert!(PhiAccrualConfig::builder().threshold(0.0).build().is_err());
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "PhiAccrualConfigRepr", into = "PhiAccrualConfigRepr")]
pub struct PhiAccrualConfig {
    threshold: f64,
    max_samples: usize,
    min_std_deviation: Duration,
    acceptable_heartbeat_pause: Duration,
    first_heartbeat_estimate: Duration,
}

impl Default for PhiAccrualConfig {
    fn default() -> Self {
        PhiAccrualConfig {
            threshold: 8.0,
            max_samples: 1000,
            min_std_deviation: Duration::from_millis(100),
            acceptable_heartbeat_pause: Duration::from_secs(3),
            first_heartbeat_estimate: Duration::from_secs(1),
        }
    }
}

impl PhiAccrualConfig {
    /// A builder starting from the defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// let phi = steadfast::health::PhiAccrualConfig::builder().max_samples(100).build()?;
    /// assert_eq!(phi.max_samples(), 100);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn builder() -> PhiAccrualConfigBuilder {
        PhiAccrualConfigBuilder {
            config: PhiAccrualConfig::default(),
        }
    }

    /// The phi value at which a member becomes Unresponsive.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::health::PhiAccrualConfig::default().threshold(), 8.0);
    /// ```
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// How many inter-arrival times are kept per member (a sliding window).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::health::PhiAccrualConfig::default().max_samples(), 1000);
    /// ```
    pub fn max_samples(&self) -> usize {
        self.max_samples
    }

    /// The smallest standard deviation used, so that very regular heartbeats
    /// do not make phi jump at the first small delay.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// assert_eq!(
    ///     steadfast::health::PhiAccrualConfig::default().min_std_deviation(),
    ///     Duration::from_millis(100)
    /// );
    /// ```
    pub fn min_std_deviation(&self) -> Duration {
        self.min_std_deviation
    }

    /// A pause that is tolerated on top of the mean interval (added to it).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// assert_eq!(
    ///     steadfast::health::PhiAccrualConfig::default().acceptable_heartbeat_pause(),
    ///     Duration::from_secs(3)
    /// );
    /// ```
    pub fn acceptable_heartbeat_pause(&self) -> Duration {
        self.acceptable_heartbeat_pause
    }

    /// The mean interval assumed until a real interval has been measured.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// assert_eq!(
    ///     steadfast::health::PhiAccrualConfig::default().first_heartbeat_estimate(),
    ///     Duration::from_secs(1)
    /// );
    /// ```
    pub fn first_heartbeat_estimate(&self) -> Duration {
        self.first_heartbeat_estimate
    }

    /// Checks every rule of the configuration; called by
    /// [`PhiAccrualConfigBuilder::build`], by deserialization and by
    /// [`HealthConfig`]'s own check.
    fn validate(&self) -> Result<(), ConfigError> {
        check_finite_at_least("threshold", self.threshold, f64::MIN_POSITIVE)?;
        if self.max_samples == 0 {
            return Err(ConfigError::new("max_samples", "must be at least 1"));
        }
        if self.min_std_deviation.is_zero() {
            return Err(ConfigError::new(
                "min_std_deviation",
                "must be greater than zero",
            ));
        }
        if self.first_heartbeat_estimate.is_zero() {
            return Err(ConfigError::new(
                "first_heartbeat_estimate",
                "must be greater than zero",
            ));
        }
        Ok(())
    }
}

/// Builds a validated [`PhiAccrualConfig`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let phi = steadfast::health::PhiAccrualConfig::builder()
///     .min_std_deviation(Duration::from_millis(50))
///     .first_heartbeat_estimate(Duration::from_millis(500))
///     .build()?;
/// assert_eq!(phi.first_heartbeat_estimate(), Duration::from_millis(500));
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct PhiAccrualConfigBuilder {
    config: PhiAccrualConfig,
}

impl PhiAccrualConfigBuilder {
    /// Sets the phi value at which a member becomes Unresponsive (finite,
    /// greater than zero).
    ///
    /// # Examples
    ///
    /// ```
    /// let b = steadfast::health::PhiAccrualConfig::builder().threshold(12.0);
    /// assert_eq!(b.build()?.threshold(), 12.0);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn threshold(mut self, threshold: f64) -> Self {
        self.config.threshold = threshold;
        self
    }

    /// Sets how many inter-arrival times are kept per member (at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::health::PhiAccrualConfig::builder().max_samples(0).build().is_err());
    /// ```
    pub fn max_samples(mut self, max_samples: usize) -> Self {
        self.config.max_samples = max_samples;
        self
    }

    /// Sets the floor of the standard deviation (greater than zero).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = steadfast::health::PhiAccrualConfig::builder().min_std_deviation(Duration::ZERO);
    /// assert!(b.build().is_err());
    /// ```
    pub fn min_std_deviation(mut self, min_std_deviation: Duration) -> Self {
        self.config.min_std_deviation = min_std_deviation;
        self
    }

    /// Sets the pause tolerated on top of the mean interval (may be zero).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = steadfast::health::PhiAccrualConfig::builder()
    ///     .acceptable_heartbeat_pause(Duration::ZERO);
    /// assert!(b.build().is_ok());
    /// ```
    pub fn acceptable_heartbeat_pause(mut self, pause: Duration) -> Self {
        self.config.acceptable_heartbeat_pause = pause;
        self
    }

    /// Sets the mean interval assumed before any was measured (greater than
    /// zero).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = steadfast::health::PhiAccrualConfig::builder()
    ///     .first_heartbeat_estimate(Duration::from_secs(2));
    /// assert!(b.build().is_ok());
    /// ```
    pub fn first_heartbeat_estimate(mut self, estimate: Duration) -> Self {
        self.config.first_heartbeat_estimate = estimate;
        self
    }

    /// Validates and returns the config.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = steadfast::health::PhiAccrualConfig::builder()
    ///     .threshold(f64::NAN)
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.field(), "threshold");
    /// ```
    pub fn build(self) -> Result<PhiAccrualConfig, ConfigError> {
        self.config.validate()?;
        Ok(self.config)
    }
}

/// The serialized form of a [`PhiAccrualConfig`]; every field is optional
/// and defaults as the builder does.
#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct PhiAccrualConfigRepr {
    threshold: f64,
    max_samples: usize,
    #[serde(with = "crate::serde_duration")]
    min_std_deviation: Duration,
    #[serde(with = "crate::serde_duration")]
    acceptable_heartbeat_pause: Duration,
    #[serde(with = "crate::serde_duration")]
    first_heartbeat_estimate: Duration,
}

impl Default for PhiAccrualConfigRepr {
    fn default() -> Self {
        PhiAccrualConfig::default().into()
    }
}

impl From<PhiAccrualConfig> for PhiAccrualConfigRepr {
    fn from(c: PhiAccrualConfig) -> Self {
        PhiAccrualConfigRepr {
            threshold: c.threshold,
            max_samples: c.max_samples,
            min_std_deviation: c.min_std_deviation,
            acceptable_heartbeat_pause: c.acceptable_heartbeat_pause,
            first_heartbeat_estimate: c.first_heartbeat_estimate,
        }
    }
}

impl TryFrom<PhiAccrualConfigRepr> for PhiAccrualConfig {
    type Error = ConfigError;

    fn try_from(r: PhiAccrualConfigRepr) -> Result<Self, ConfigError> {
        let config = PhiAccrualConfig {
            threshold: r.threshold,
            max_samples: r.max_samples,
            min_std_deviation: r.min_std_deviation,
            acceptable_heartbeat_pause: r.acceptable_heartbeat_pause,
            first_heartbeat_estimate: r.first_heartbeat_estimate,
        };
        config.validate()?;
        Ok(config)
    }
}

/// Configuration of a [`HealthMonitor`](crate::health::HealthMonitor).
///
/// # Default
///
/// - `heartbeat_timeout`: 30 s (silent longer than this: Unresponsive;
///   longer than twice this: Failed)
/// - `check_interval`: 5 s (period of the background sweep; at most
///   `heartbeat_timeout`)
/// - `detection`: [`DetectionPolicy::FixedTimeout`]
/// - `event_capacity`: 1024 (status changes buffered per subscriber before
///   a slow subscriber starts missing them)
///
/// It (de)serializes with readable durations:
///
/// ```
/// use std::time::Duration;
/// use steadfast::health::{DetectionPolicy, HealthConfig};
///
/// let config: HealthConfig = serde_json::from_str(
///     r#"{ "heartbeat_timeout": "10s", "detection": { "phi_accrual": { "threshold": 9.0 } } }"#,
/// )?;
/// assert_eq!(config.heartbeat_timeout(), Duration::from_secs(10));
/// assert!(matches!(config.detection(), DetectionPolicy::PhiAccrual(p) if p.threshold() == 9.0));
/// # Ok::<(), serde_json::Error>(())
/// ```
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::health::HealthConfig;
///
/// let config = HealthConfig::builder()
///     .heartbeat_timeout(Duration::from_secs(10))
///     .check_interval(Duration::from_secs(1))
///     .build()?;
/// assert_eq!(config.heartbeat_timeout(), Duration::from_secs(10));
/// assert_eq!(HealthConfig::default().check_interval(), Duration::from_secs(5));
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "HealthConfigRepr", into = "HealthConfigRepr")]
pub struct HealthConfig {
    heartbeat_timeout: Duration,
    check_interval: Duration,
    detection: DetectionPolicy,
    event_capacity: usize,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            heartbeat_timeout: Duration::from_secs(30),
            check_interval: Duration::from_secs(5),
            detection: DetectionPolicy::FixedTimeout,
            event_capacity: 1024,
        }
    }
}

/// The largest event capacity accepted (the broadcast channel's own limit).
const MAX_EVENT_CAPACITY: usize = usize::MAX >> 2;

impl HealthConfig {
    /// A builder starting from the defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::health::HealthConfig;
    /// let config = HealthConfig::builder().event_capacity(16).build()?;
    /// assert_eq!(config.event_capacity(), 16);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn builder() -> HealthConfigBuilder {
        HealthConfigBuilder {
            config: HealthConfig::default(),
        }
    }

    /// How long a member may stay silent before it is Unresponsive (and,
    /// twice this, Failed).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = steadfast::health::HealthConfig::default();
    /// assert_eq!(config.heartbeat_timeout(), Duration::from_secs(30));
    /// ```
    pub fn heartbeat_timeout(&self) -> Duration {
        self.heartbeat_timeout
    }

    /// The period of the background sweep started by
    /// [`HealthMonitor::start`](crate::health::HealthMonitor::start).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = steadfast::health::HealthConfig::default();
    /// assert_eq!(config.check_interval(), Duration::from_secs(5));
    /// ```
    pub fn check_interval(&self) -> Duration {
        self.check_interval
    }

    /// The detection policy.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::health::{DetectionPolicy, HealthConfig};
    /// assert_eq!(HealthConfig::default().detection(), &DetectionPolicy::FixedTimeout);
    /// ```
    pub fn detection(&self) -> &DetectionPolicy {
        &self.detection
    }

    /// How many status changes are buffered for each subscriber.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::health::HealthConfig::default().event_capacity(), 1024);
    /// ```
    pub fn event_capacity(&self) -> usize {
        self.event_capacity
    }

    /// Checks every rule of the configuration (the phi-accrual parameters
    /// included); called by [`HealthConfigBuilder::build`] and by
    /// deserialization.
    fn validate(&self) -> Result<(), ConfigError> {
        if self.heartbeat_timeout.is_zero() {
            return Err(ConfigError::new(
                "heartbeat_timeout",
                "must be greater than zero",
            ));
        }
        if self.check_interval.is_zero() {
            return Err(ConfigError::new(
                "check_interval",
                "must be greater than zero",
            ));
        }
        if self.check_interval > self.heartbeat_timeout {
            return Err(ConfigError::new(
                "check_interval",
                format!(
                    "must be at most heartbeat_timeout ({:?}), got {:?}",
                    self.heartbeat_timeout, self.check_interval
                ),
            ));
        }
        if self.heartbeat_timeout.checked_mul(2).is_none() {
            return Err(ConfigError::new(
                "heartbeat_timeout",
                "is too large: twice it must fit in a Duration",
            ));
        }
        if self.event_capacity == 0 || self.event_capacity > MAX_EVENT_CAPACITY {
            return Err(ConfigError::new(
                "event_capacity",
                format!(
                    "must be in 1..={MAX_EVENT_CAPACITY}, got {}",
                    self.event_capacity
                ),
            ));
        }
        if let DetectionPolicy::PhiAccrual(phi) = &self.detection {
            phi.validate()?;
        }
        Ok(())
    }
}

/// Builds a validated [`HealthConfig`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::health::{DetectionPolicy, HealthConfig, PhiAccrualConfig};
///
/// let config = HealthConfig::builder()
///     .detection(DetectionPolicy::PhiAccrual(PhiAccrualConfig::default()))
///     .build()?;
/// assert!(matches!(config.detection(), DetectionPolicy::PhiAccrual(_)));
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct HealthConfigBuilder {
    config: HealthConfig,
}

impl HealthConfigBuilder {
    /// Sets the heartbeat timeout (greater than zero).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = steadfast::health::HealthConfig::builder().heartbeat_timeout(Duration::ZERO);
    /// assert_eq!(b.build().unwrap_err().field(), "heartbeat_timeout");
    /// ```
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.config.heartbeat_timeout = timeout;
        self
    }

    /// Sets the period of the background sweep (greater than zero, at most
    /// the heartbeat timeout).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = steadfast::health::HealthConfig::builder().check_interval(Duration::from_secs(60));
    /// assert_eq!(b.build().unwrap_err().field(), "check_interval");
    /// ```
    pub fn check_interval(mut self, interval: Duration) -> Self {
        self.config.check_interval = interval;
        self
    }

    /// Sets the detection policy.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::health::{DetectionPolicy, HealthConfig};
    /// let b = HealthConfig::builder().detection(DetectionPolicy::FixedTimeout);
    /// assert!(b.build().is_ok());
    /// ```
    pub fn detection(mut self, detection: DetectionPolicy) -> Self {
        self.config.detection = detection;
        self
    }

    /// Sets how many status changes are buffered per subscriber (at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// let b = steadfast::health::HealthConfig::builder().event_capacity(0);
    /// assert_eq!(b.build().unwrap_err().field(), "event_capacity");
    /// ```
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.config.event_capacity = capacity;
        self
    }

    /// Validates and returns the config.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::health::HealthConfig::builder().build().is_ok());
    /// ```
    pub fn build(self) -> Result<HealthConfig, ConfigError> {
        self.config.validate()?;
        Ok(self.config)
    }
}

/// The serialized form of a [`HealthConfig`]; every field is optional and
/// defaults as the builder does.
#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct HealthConfigRepr {
    #[serde(with = "crate::serde_duration")]
    heartbeat_timeout: Duration,
    #[serde(with = "crate::serde_duration")]
    check_interval: Duration,
    detection: DetectionPolicy,
    event_capacity: usize,
}

impl Default for HealthConfigRepr {
    fn default() -> Self {
        HealthConfig::default().into()
    }
}

impl From<HealthConfig> for HealthConfigRepr {
    fn from(c: HealthConfig) -> Self {
        HealthConfigRepr {
            heartbeat_timeout: c.heartbeat_timeout,
            check_interval: c.check_interval,
            detection: c.detection,
            event_capacity: c.event_capacity,
        }
    }
}

impl TryFrom<HealthConfigRepr> for HealthConfig {
    type Error = ConfigError;

    fn try_from(r: HealthConfigRepr) -> Result<Self, ConfigError> {
        let config = HealthConfig {
            heartbeat_timeout: r.heartbeat_timeout,
            check_interval: r.check_interval,
            detection: r.detection,
            event_capacity: r.event_capacity,
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_round_trip() {
        let config = HealthConfig::builder()
            .heartbeat_timeout(Duration::from_secs(12))
            .check_interval(Duration::from_millis(1500))
            .detection(DetectionPolicy::PhiAccrual(
                PhiAccrualConfig::builder()
                    .threshold(7.5)
                    .max_samples(64)
                    .build()
                    .unwrap(),
            ))
            .event_capacity(32)
            .build()
            .unwrap();
        let json = serde_json::to_string(&config).unwrap();
        assert!(json.contains("\"12s\""), "{json}");
        assert!(json.contains("\"1s500ms\""), "{json}");
        let back: HealthConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, config);

        let fixed: HealthConfig = serde_json::from_str(r#"{"detection":"fixed_timeout"}"#).unwrap();
        assert_eq!(fixed, HealthConfig::default());
    }

    #[test]
    fn deserialization_validates() {
        let err = serde_json::from_str::<HealthConfig>(r#"{"heartbeat_timeout":"0s"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("heartbeat_timeout"), "{err}");
        let err = serde_json::from_str::<HealthConfig>(
            r#"{"detection":{"phi_accrual":{"max_samples":0}}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("max_samples"), "{err}");
        assert!(serde_json::from_str::<HealthConfig>(r#"{"bogus":1}"#).is_err());
    }

    #[test]
    fn builder_validates_every_field() {
        let b = HealthConfig::builder;
        assert_eq!(
            b().check_interval(Duration::ZERO)
                .build()
                .unwrap_err()
                .field(),
            "check_interval"
        );
        assert_eq!(
            b().heartbeat_timeout(Duration::MAX)
                .check_interval(Duration::from_secs(1))
                .build()
                .unwrap_err()
                .field(),
            "heartbeat_timeout"
        );
        let p = PhiAccrualConfig::builder;
        assert_eq!(
            p().threshold(-1.0).build().unwrap_err().field(),
            "threshold"
        );
        assert_eq!(
            p().threshold(f64::INFINITY).build().unwrap_err().field(),
            "threshold"
        );
        assert_eq!(
            p().first_heartbeat_estimate(Duration::ZERO)
                .build()
                .unwrap_err()
                .field(),
            "first_heartbeat_estimate"
        );
        assert_eq!(
            p().min_std_deviation(Duration::ZERO)
                .build()
                .unwrap_err()
                .field(),
            "min_std_deviation"
        );
    }
}
