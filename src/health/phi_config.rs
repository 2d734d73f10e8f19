//! The parameters of the phi-accrual failure detector:
//! [`PhiAccrualConfig`] and its builder, the configuration of
//! [`DetectionPolicy::PhiAccrual`](crate::health::DetectionPolicy::PhiAccrual).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::check_finite_at_least;
use crate::ConfigError;

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
    /// [`HealthConfig`](crate::health::HealthConfig)'s own check.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
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
