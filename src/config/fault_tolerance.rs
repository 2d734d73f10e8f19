//! [`FaultToleranceConfig`]: the sections and named instances of one
//! configuration, its builder, its one validation and its serde form.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::breaker::CircuitBreakerConfig;
use crate::degradation::HealthRules;
use crate::health::HealthConfig;
use crate::manager::CheckpointManagerConfig;
#[cfg(feature = "rate-limit")]
use crate::pipeline::RateLimiterConfig;
use crate::pipeline::{BulkheadConfig, HedgeConfig};
use crate::recovery::prediction::PredictionConfig;
use crate::recovery::RecoveryCoordinatorConfig;
use crate::retry::RetryPolicy;
use crate::timeout::TimeoutConfig;
use crate::ConfigError;

use super::presets::Preset;

/// The whole fault-tolerance configuration of a service or job: one
/// section per mechanism, and named instances of the strategies.
///
/// Plain data: every field is public, each section already validated by
/// its own type. Read it from a file or the environment (see the
/// [module documentation](super) for the layout and the sources), build it
/// in code with [`FaultToleranceConfig::builder`], or start from a
/// [`Preset`]. [`validate`](Self::validate) checks what the sections do
/// not: the names of the instances (`[A-Za-z0-9_-]+`, so that an
/// environment variable can name them).
///
/// # Default
///
/// Every section at its type's default, and no named instance.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::config::{FaultToleranceConfig, Preset};
/// use steadfast::retry::RetryPolicy;
///
/// let config = FaultToleranceConfig::builder()
///     .retry("rpc", RetryPolicy::builder().max_retries(2).build()?)
///     .preset(Preset::Storage)
///     .build()?;
/// assert_eq!(config.retry("rpc").unwrap().max_retries(), 2);
/// assert_eq!(config.timeout("storage").unwrap().default_timeout(), Duration::from_secs(300));
///
/// let toml = config.to_toml_string()?;
/// assert_eq!(FaultToleranceConfig::from_toml_str(&toml)?, config);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(
    try_from = "FaultToleranceConfigRepr",
    into = "FaultToleranceConfigRepr"
)]
pub struct FaultToleranceConfig {
    /// The checkpoint manager: schedule, retention, compression, storage
    /// and replication.
    pub checkpoint: CheckpointManagerConfig,
    /// The health monitor.
    pub health: HealthConfig,
    /// The recovery coordinator.
    pub recovery: RecoveryCoordinatorConfig,
    /// Failure prediction.
    pub prediction: PredictionConfig,
    /// The levels a degradation manager sets from health.
    pub degradation: HealthRules,
    /// Circuit breakers by name.
    pub breakers: BTreeMap<String, CircuitBreakerConfig>,
    /// Retry policies by name.
    pub retries: BTreeMap<String, RetryPolicy>,
    /// Timeouts by name.
    pub timeouts: BTreeMap<String, TimeoutConfig>,
    /// Bulkheads by name.
    pub bulkheads: BTreeMap<String, BulkheadConfig>,
    /// Hedging strategies by name.
    pub hedges: BTreeMap<String, HedgeConfig>,
    /// Rate limiters by name (feature `rate-limit`).
    #[cfg(feature = "rate-limit")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rate-limit")))]
    pub rate_limiters: BTreeMap<String, RateLimiterConfig>,
}

impl FaultToleranceConfig {
    /// A builder starting from the defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::FaultToleranceConfig;
    /// use steadfast::health::HealthConfig;
    /// let config = FaultToleranceConfig::builder().health(HealthConfig::default()).build()?;
    /// assert_eq!(config, FaultToleranceConfig::default());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn builder() -> FaultToleranceConfigBuilder {
        FaultToleranceConfigBuilder {
            config: FaultToleranceConfig::default(),
        }
    }

    /// A configuration holding the preset's retry policy, breaker and
    /// timeout, each named after the preset (`"rpc"`, `"network"`,
    /// `"storage"`).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::{FaultToleranceConfig, Preset};
    /// let config = FaultToleranceConfig::preset(Preset::Network);
    /// assert_eq!(config.retry("network"), Some(&Preset::Network.retry_policy()));
    /// assert!(config.breaker("network").is_some());
    /// ```
    pub fn preset(preset: Preset) -> Self {
        let mut config = FaultToleranceConfig::default();
        config.add_preset(preset);
        config
    }

    fn add_preset(&mut self, preset: Preset) {
        let name = preset.name().to_string();
        self.retries.insert(name.clone(), preset.retry_policy());
        self.breakers.insert(name.clone(), preset.breaker());
        self.timeouts.insert(name, preset.timeout());
    }

    /// Checks what the sections do not check themselves: every instance
    /// name is made of ASCII letters, digits, `_` and `-`. Called by
    /// [`FaultToleranceConfigBuilder::build`] and by deserialization.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the table of the bad name (`breakers`).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::CircuitBreakerConfig;
    /// use steadfast::config::FaultToleranceConfig;
    /// let mut config = FaultToleranceConfig::default();
    /// config.breakers.insert("pay ments".into(), CircuitBreakerConfig::default());
    /// assert_eq!(config.validate().unwrap_err().field(), "breakers");
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        let names: [(&'static str, Vec<&String>); 5] = [
            ("breakers", self.breakers.keys().collect()),
            ("retries", self.retries.keys().collect()),
            ("timeouts", self.timeouts.keys().collect()),
            ("bulkheads", self.bulkheads.keys().collect()),
            ("hedges", self.hedges.keys().collect()),
        ];
        for (table, names) in names {
            check_names(table, names)?;
        }
        #[cfg(feature = "rate-limit")]
        check_names("rate_limiters", self.rate_limiters.keys().collect())?;
        Ok(())
    }
}

fn check_names(table: &'static str, names: Vec<&String>) -> Result<(), ConfigError> {
    for name in names {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(ConfigError::new(
                table,
                format!(
                    "instance name {name:?} must be ASCII letters, digits, `_` and `-` \
                     (an environment variable names it)"
                ),
            ));
        }
    }
    Ok(())
}

/// Builds a [`FaultToleranceConfig`], validating it in
/// [`build`](Self::build).
///
/// # Examples
///
/// ```
/// use steadfast::breaker::CircuitBreakerConfig;
/// use steadfast::config::FaultToleranceConfig;
/// let err = FaultToleranceConfig::builder()
///     .breaker("no.dots", CircuitBreakerConfig::default())
///     .build()
///     .unwrap_err();
/// assert_eq!(err.field(), "breakers");
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct FaultToleranceConfigBuilder {
    config: FaultToleranceConfig,
}

impl FaultToleranceConfigBuilder {
    /// Sets the checkpoint manager's section.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::config::FaultToleranceConfig;
    /// use steadfast::manager::CheckpointManagerConfig;
    /// let checkpoint = CheckpointManagerConfig::builder().interval(Duration::from_secs(60)).build()?;
    /// let config = FaultToleranceConfig::builder().checkpoint(checkpoint).build()?;
    /// assert_eq!(config.checkpoint.interval, Some(Duration::from_secs(60)));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn checkpoint(mut self, checkpoint: CheckpointManagerConfig) -> Self {
        self.config.checkpoint = checkpoint;
        self
    }

    /// Sets the health monitor's section.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::FaultToleranceConfig;
    /// use steadfast::health::HealthConfig;
    /// let health = HealthConfig::builder().failure_threshold(5).build()?;
    /// let config = FaultToleranceConfig::builder().health(health).build()?;
    /// assert_eq!(config.health.failure_threshold(), 5);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn health(mut self, health: HealthConfig) -> Self {
        self.config.health = health;
        self
    }

    /// Sets the recovery coordinator's section.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::FaultToleranceConfig;
    /// use steadfast::recovery::RecoveryCoordinatorConfig;
    /// let recovery = RecoveryCoordinatorConfig::builder().max_recovery_attempts(5).build()?;
    /// let config = FaultToleranceConfig::builder().recovery(recovery).build()?;
    /// assert_eq!(config.recovery.max_recovery_attempts(), 5);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn recovery(mut self, recovery: RecoveryCoordinatorConfig) -> Self {
        self.config.recovery = recovery;
        self
    }

    /// Sets the failure prediction section.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::FaultToleranceConfig;
    /// use steadfast::recovery::prediction::PredictionConfig;
    /// let prediction = PredictionConfig::builder().prediction_enabled(true).build()?;
    /// let config = FaultToleranceConfig::builder().prediction(prediction).build()?;
    /// assert!(config.prediction.prediction_enabled());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn prediction(mut self, prediction: PredictionConfig) -> Self {
        self.config.prediction = prediction;
        self
    }

    /// Sets the degradation section.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::FaultToleranceConfig;
    /// use steadfast::degradation::{HealthRules, ServiceLevel};
    /// let rules = HealthRules::builder().on_unresponsive(ServiceLevel::ReadOnly).build()?;
    /// let config = FaultToleranceConfig::builder().degradation(rules).build()?;
    /// assert_eq!(config.degradation.on_unresponsive(), ServiceLevel::ReadOnly);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn degradation(mut self, rules: HealthRules) -> Self {
        self.config.degradation = rules;
        self
    }

    /// Adds (or replaces) the circuit breaker `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::breaker::CircuitBreakerConfig;
    /// use steadfast::config::FaultToleranceConfig;
    /// let config = FaultToleranceConfig::builder()
    ///     .breaker("payments", CircuitBreakerConfig::default())
    ///     .build()?;
    /// assert!(config.breaker("payments").is_some());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn breaker(mut self, name: impl Into<String>, config: CircuitBreakerConfig) -> Self {
        self.config.breakers.insert(name.into(), config);
        self
    }

    /// Adds (or replaces) the retry policy `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::FaultToleranceConfig;
    /// use steadfast::retry::RetryPolicy;
    /// let config = FaultToleranceConfig::builder().retry("rpc", RetryPolicy::no_retry()).build()?;
    /// assert_eq!(config.retry("rpc").unwrap().max_retries(), 0);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn retry(mut self, name: impl Into<String>, policy: RetryPolicy) -> Self {
        self.config.retries.insert(name.into(), policy);
        self
    }

    /// Adds (or replaces) the timeout `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::FaultToleranceConfig;
    /// use steadfast::timeout::TimeoutConfig;
    /// let config = FaultToleranceConfig::builder().timeout("db", TimeoutConfig::default()).build()?;
    /// assert!(config.timeout("db").is_some());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn timeout(mut self, name: impl Into<String>, config: TimeoutConfig) -> Self {
        self.config.timeouts.insert(name.into(), config);
        self
    }

    /// Adds (or replaces) the bulkhead `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::FaultToleranceConfig;
    /// use steadfast::pipeline::BulkheadConfig;
    /// let config = FaultToleranceConfig::builder().bulkhead("db", BulkheadConfig::default()).build()?;
    /// assert!(config.bulkhead("db").is_some());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn bulkhead(mut self, name: impl Into<String>, config: BulkheadConfig) -> Self {
        self.config.bulkheads.insert(name.into(), config);
        self
    }

    /// Adds (or replaces) the hedging strategy `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::FaultToleranceConfig;
    /// use steadfast::pipeline::HedgeConfig;
    /// let config = FaultToleranceConfig::builder().hedge("search", HedgeConfig::default()).build()?;
    /// assert!(config.hedge("search").is_some());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn hedge(mut self, name: impl Into<String>, config: HedgeConfig) -> Self {
        self.config.hedges.insert(name.into(), config);
        self
    }

    /// Adds (or replaces) the rate limiter `name` (feature `rate-limit`).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::FaultToleranceConfig;
    /// use steadfast::pipeline::RateLimiterConfig;
    /// let config = FaultToleranceConfig::builder()
    ///     .rate_limiter("api", RateLimiterConfig::default())
    ///     .build()?;
    /// assert!(config.rate_limiter("api").is_some());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    #[cfg(feature = "rate-limit")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rate-limit")))]
    pub fn rate_limiter(mut self, name: impl Into<String>, config: RateLimiterConfig) -> Self {
        self.config.rate_limiters.insert(name.into(), config);
        self
    }

    /// Adds the preset's retry policy, breaker and timeout, each named after
    /// the preset (see [`FaultToleranceConfig::preset`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::{FaultToleranceConfig, Preset};
    /// let config = FaultToleranceConfig::builder().preset(Preset::Rpc).build()?;
    /// assert_eq!(config.retry("rpc"), Some(&Preset::Rpc.retry_policy()));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn preset(mut self, preset: Preset) -> Self {
        self.config.add_preset(preset);
        self
    }

    /// Validates and returns the configuration.
    ///
    /// # Errors
    ///
    /// As [`FaultToleranceConfig::validate`].
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::FaultToleranceConfig;
    /// assert!(FaultToleranceConfig::builder().build().is_ok());
    /// ```
    pub fn build(self) -> Result<FaultToleranceConfig, ConfigError> {
        self.config.validate()?;
        Ok(self.config)
    }
}

/// The serialized form of a [`FaultToleranceConfig`]: the content of the
/// `[fault_tolerance]` table with its sections (the replication keys in the
/// checkpoint section, as [`CheckpointManagerConfig`] reads them), every
/// section optional, unknown keys refused; empty instance tables are left
/// out.
#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FaultToleranceConfigRepr {
    checkpoint: CheckpointManagerConfig,
    health: HealthConfig,
    recovery: RecoveryCoordinatorConfig,
    prediction: PredictionConfig,
    degradation: HealthRules,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    breakers: BTreeMap<String, CircuitBreakerConfig>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    retries: BTreeMap<String, RetryPolicy>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    timeouts: BTreeMap<String, TimeoutConfig>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    bulkheads: BTreeMap<String, BulkheadConfig>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    hedges: BTreeMap<String, HedgeConfig>,
    #[cfg(feature = "rate-limit")]
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    rate_limiters: BTreeMap<String, RateLimiterConfig>,
    /// Known without the `rate-limit` feature only to be refused, naming it.
    #[cfg(not(feature = "rate-limit"))]
    #[serde(skip_serializing)]
    rate_limiters: Option<serde::de::IgnoredAny>,
}

impl Default for FaultToleranceConfigRepr {
    fn default() -> Self {
        FaultToleranceConfig::default().into()
    }
}

impl From<FaultToleranceConfig> for FaultToleranceConfigRepr {
    fn from(c: FaultToleranceConfig) -> Self {
        FaultToleranceConfigRepr {
            checkpoint: c.checkpoint,
            health: c.health,
            recovery: c.recovery,
            prediction: c.prediction,
            degradation: c.degradation,
            breakers: c.breakers,
            retries: c.retries,
            timeouts: c.timeouts,
            bulkheads: c.bulkheads,
            hedges: c.hedges,
            #[cfg(feature = "rate-limit")]
            rate_limiters: c.rate_limiters,
            #[cfg(not(feature = "rate-limit"))]
            rate_limiters: None,
        }
    }
}

impl TryFrom<FaultToleranceConfigRepr> for FaultToleranceConfig {
    type Error = ConfigError;

    fn try_from(r: FaultToleranceConfigRepr) -> Result<Self, ConfigError> {
        #[cfg(not(feature = "rate-limit"))]
        if r.rate_limiters.is_some() {
            return Err(ConfigError::new(
                "rate_limiters",
                "needs steadfast's `rate-limit` cargo feature, which this build does not include",
            ));
        }
        let config = FaultToleranceConfig {
            checkpoint: r.checkpoint,
            health: r.health,
            recovery: r.recovery,
            prediction: r.prediction,
            degradation: r.degradation,
            breakers: r.breakers,
            retries: r.retries,
            timeouts: r.timeouts,
            bulkheads: r.bulkheads,
            hedges: r.hedges,
            #[cfg(feature = "rate-limit")]
            rate_limiters: r.rate_limiters,
        };
        config.validate()?;
        Ok(config)
    }
}
