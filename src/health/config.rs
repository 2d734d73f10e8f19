//! Configuration of the [`HealthMonitor`](crate::health::HealthMonitor):
//! [`HealthConfig`] (with the missed-heartbeat terms `heartbeat_interval`,
//! `failure_threshold` and `detection_window`), the [`DetectionPolicy`] and
//! the phi-accrual parameters ([`PhiAccrualConfig`]).
//!
//! Every config is built through a builder whose `build()` validates it, and
//! deserializes through the same validation, so that a config read from a
//! file cannot hold values that do not work.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::PhiAccrualConfig;
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
/// assert_eq!(
///     serde_json::to_string(&DetectionPolicy::MissedHeartbeats).unwrap(),
///     r#""missed_heartbeats""#
/// );
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
    /// Missed heartbeats, in the terms of [`HealthConfig`]'s
    /// `heartbeat_interval`, `failure_threshold` and `detection_window`: a
    /// member is Unresponsive while a heartbeat is missing, and Failed once
    /// it missed `failure_threshold` heartbeats in a row, or that many
    /// within the detection window. The exact rules are in
    /// [`health`](crate::health#missed-heartbeats).
    MissedHeartbeats,
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
/// - `heartbeat_interval`: 5 s (the interval members are expected to beat
///   at; with every policy it turns a silence into a count of missed
///   heartbeats, the evidence of a [`Failure`](crate::health::Failure))
/// - `failure_threshold`: 3 (missed heartbeats, in a row or within the
///   detection window, after which a member is Failed under
///   [`DetectionPolicy::MissedHeartbeats`]; at least 1)
/// - `detection_window`: 30 s (the sliding window over which missed
///   heartbeats are counted, and within which members must be lost for a
///   suspected partition; at least `heartbeat_interval`)
/// - `partition_fraction`: 0.5 (the share of the monitored members, and at
///   least two, that must be lost within one detection window for a
///   [`Failure::SuspectedPartition`](crate::health::Failure::SuspectedPartition);
///   in `(0, 1]`)
///
/// The four keys added with the missed-heartbeat policy are left out of the
/// serialized form while they hold their default, so that a config written
/// before them serializes as it did.
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
///
/// let missed: HealthConfig = serde_json::from_str(
///     r#"{
///         "detection": "missed_heartbeats",
///         "heartbeat_interval": "5s",
///         "failure_threshold": 3,
///         "detection_window": "30s"
///     }"#,
/// )?;
/// assert_eq!(missed.detection(), &DetectionPolicy::MissedHeartbeats);
/// assert_eq!(missed.failure_threshold(), 3);
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
    heartbeat_interval: Duration,
    failure_threshold: u32,
    detection_window: Duration,
    partition_fraction: f64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            heartbeat_timeout: Duration::from_secs(30),
            check_interval: Duration::from_secs(5),
            detection: DetectionPolicy::FixedTimeout,
            event_capacity: 1024,
            heartbeat_interval: Duration::from_secs(5),
            failure_threshold: 3,
            detection_window: Duration::from_secs(30),
            partition_fraction: 0.5,
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

    /// The interval members are expected to beat at.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = steadfast::health::HealthConfig::default();
    /// assert_eq!(config.heartbeat_interval(), Duration::from_secs(5));
    /// ```
    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat_interval
    }

    /// How many missed heartbeats make a member Failed under
    /// [`DetectionPolicy::MissedHeartbeats`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::health::HealthConfig::default().failure_threshold(), 3);
    /// ```
    pub fn failure_threshold(&self) -> u32 {
        self.failure_threshold
    }

    /// The sliding window over which missed heartbeats are counted, and
    /// within which members must be lost for a suspected partition.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = steadfast::health::HealthConfig::default();
    /// assert_eq!(config.detection_window(), Duration::from_secs(30));
    /// ```
    pub fn detection_window(&self) -> Duration {
        self.detection_window
    }

    /// The share of the monitored members that must be lost within one
    /// detection window for a suspected partition.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::health::HealthConfig::default().partition_fraction(), 0.5);
    /// ```
    pub fn partition_fraction(&self) -> f64 {
        self.partition_fraction
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
        if self.heartbeat_interval.is_zero() {
            return Err(ConfigError::new(
                "heartbeat_interval",
                "must be greater than zero",
            ));
        }
        if u64::try_from(self.heartbeat_interval.as_nanos()).is_err() {
            return Err(ConfigError::new(
                "heartbeat_interval",
                "is too large: it must fit in u64 nanoseconds (about 584 years)",
            ));
        }
        if self.failure_threshold == 0 {
            return Err(ConfigError::new(
                "failure_threshold",
                "must be at least 1 missed heartbeat",
            ));
        }
        if self.detection_window < self.heartbeat_interval {
            return Err(ConfigError::new(
                "detection_window",
                format!(
                    "must be at least heartbeat_interval ({:?}), got {:?}",
                    self.heartbeat_interval, self.detection_window
                ),
            ));
        }
        if !(self.partition_fraction.is_finite()
            && self.partition_fraction > 0.0
            && self.partition_fraction <= 1.0)
        {
            return Err(ConfigError::new(
                "partition_fraction",
                format!("must be in (0, 1], got {}", self.partition_fraction),
            ));
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

    /// Sets the interval members are expected to beat at (greater than
    /// zero).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = steadfast::health::HealthConfig::builder().heartbeat_interval(Duration::ZERO);
    /// assert_eq!(b.build().unwrap_err().field(), "heartbeat_interval");
    /// ```
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.config.heartbeat_interval = interval;
        self
    }

    /// Sets how many missed heartbeats make a member Failed (at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// let b = steadfast::health::HealthConfig::builder().failure_threshold(0);
    /// assert_eq!(b.build().unwrap_err().field(), "failure_threshold");
    /// ```
    pub fn failure_threshold(mut self, threshold: u32) -> Self {
        self.config.failure_threshold = threshold;
        self
    }

    /// Sets the detection window (at least the heartbeat interval).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = steadfast::health::HealthConfig::builder().detection_window(Duration::from_secs(1));
    /// assert_eq!(b.build().unwrap_err().field(), "detection_window");
    /// ```
    pub fn detection_window(mut self, window: Duration) -> Self {
        self.config.detection_window = window;
        self
    }

    /// Sets the share of the monitored members that must be lost within one
    /// detection window for a suspected partition (in `(0, 1]`).
    ///
    /// # Examples
    ///
    /// ```
    /// let b = steadfast::health::HealthConfig::builder().partition_fraction(1.5);
    /// assert_eq!(b.build().unwrap_err().field(), "partition_fraction");
    /// ```
    pub fn partition_fraction(mut self, fraction: f64) -> Self {
        self.config.partition_fraction = fraction;
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
    #[serde(
        with = "crate::serde_duration",
        skip_serializing_if = "is_default_heartbeat_interval"
    )]
    heartbeat_interval: Duration,
    #[serde(skip_serializing_if = "is_default_failure_threshold")]
    failure_threshold: u32,
    #[serde(
        with = "crate::serde_duration",
        skip_serializing_if = "is_default_detection_window"
    )]
    detection_window: Duration,
    #[serde(skip_serializing_if = "is_default_partition_fraction")]
    partition_fraction: f64,
}

fn is_default_heartbeat_interval(d: &Duration) -> bool {
    *d == HealthConfig::default().heartbeat_interval
}

fn is_default_failure_threshold(n: &u32) -> bool {
    *n == HealthConfig::default().failure_threshold
}

fn is_default_detection_window(d: &Duration) -> bool {
    *d == HealthConfig::default().detection_window
}

fn is_default_partition_fraction(f: &f64) -> bool {
    *f == HealthConfig::default().partition_fraction
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
            heartbeat_interval: c.heartbeat_interval,
            failure_threshold: c.failure_threshold,
            detection_window: c.detection_window,
            partition_fraction: c.partition_fraction,
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
            heartbeat_interval: r.heartbeat_interval,
            failure_threshold: r.failure_threshold,
            detection_window: r.detection_window,
            partition_fraction: r.partition_fraction,
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
