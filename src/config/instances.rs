//! The named instances of a [`FaultToleranceConfig`]: their configs by name,
//! and the strategies built from them.
//!
//! Every strategy is built here and nowhere else, so that whatever a named
//! instance gets from its name (metrics labels, tracing fields) is added in
//! one place: the `build_*` methods below.

use std::collections::BTreeMap;

use crate::breaker::{CircuitBreaker, CircuitBreakerConfig};
use crate::health::HealthMonitor;
use crate::pipeline::{Bulkhead, BulkheadConfig, Hedge, HedgeConfig, RetryStrategy};
#[cfg(feature = "rate-limit")]
use crate::pipeline::{RateLimiter, RateLimiterConfig};
use crate::retry::RetryPolicy;
use crate::timeout::{TimeoutConfig, TimeoutHandler};

use super::error::ConfigFileError;
use super::fault_tolerance::FaultToleranceConfig;

/// The config of instance `name` of `kind`, or an error listing the names
/// there are.
fn named<'a, T>(
    map: &'a BTreeMap<String, T>,
    kind: &'static str,
    name: &str,
) -> Result<&'a T, ConfigFileError> {
    map.get(name)
        .ok_or_else(|| ConfigFileError::UnknownInstance {
            kind,
            name: name.to_string(),
            known: map.keys().cloned().collect(),
        })
}

impl FaultToleranceConfig {
    /// The circuit breaker named `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::FaultToleranceConfig;
    /// let config = FaultToleranceConfig::from_toml_str("[fault_tolerance.breakers.payments]\n")?;
    /// assert!(config.breaker("payments").is_some());
    /// assert!(config.breaker("search").is_none());
    /// # Ok::<(), steadfast::config::ConfigFileError>(())
    /// ```
    pub fn breaker(&self, name: &str) -> Option<&CircuitBreakerConfig> {
        self.breakers.get(name)
    }

    /// The retry policy named `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::FaultToleranceConfig;
    /// let config = FaultToleranceConfig::from_toml_str("[fault_tolerance.retries.rpc]\nmax_retries = 2\n")?;
    /// assert_eq!(config.retry("rpc").unwrap().max_retries(), 2);
    /// # Ok::<(), steadfast::config::ConfigFileError>(())
    /// ```
    pub fn retry(&self, name: &str) -> Option<&RetryPolicy> {
        self.retries.get(name)
    }

    /// The timeout named `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::config::FaultToleranceConfig;
    /// let config = FaultToleranceConfig::from_toml_str(
    ///     "[fault_tolerance.timeouts.db]\ndefault_timeout = \"250ms\"\n",
    /// )?;
    /// assert_eq!(config.timeout("db").unwrap().default_timeout(), Duration::from_millis(250));
    /// # Ok::<(), steadfast::config::ConfigFileError>(())
    /// ```
    pub fn timeout(&self, name: &str) -> Option<&TimeoutConfig> {
        self.timeouts.get(name)
    }

    /// The bulkhead named `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::FaultToleranceConfig;
    /// let config = FaultToleranceConfig::from_toml_str("[fault_tolerance.bulkheads.db]\nmax_concurrent = 4\n")?;
    /// assert_eq!(config.bulkhead("db").unwrap().max_concurrent(), 4);
    /// # Ok::<(), steadfast::config::ConfigFileError>(())
    /// ```
    pub fn bulkhead(&self, name: &str) -> Option<&BulkheadConfig> {
        self.bulkheads.get(name)
    }

    /// The hedging strategy named `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::FaultToleranceConfig;
    /// let config = FaultToleranceConfig::from_toml_str("[fault_tolerance.hedges.search]\nmax_attempts = 3\n")?;
    /// assert_eq!(config.hedge("search").unwrap().max_attempts(), 3);
    /// # Ok::<(), steadfast::config::ConfigFileError>(())
    /// ```
    pub fn hedge(&self, name: &str) -> Option<&HedgeConfig> {
        self.hedges.get(name)
    }

    /// The rate limiter named `name` (feature `rate-limit`).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::FaultToleranceConfig;
    /// let config = FaultToleranceConfig::from_toml_str("[fault_tolerance.rate_limiters.api]\npermits = 10\n")?;
    /// assert_eq!(config.rate_limiter("api").unwrap().permits(), 10);
    /// # Ok::<(), steadfast::config::ConfigFileError>(())
    /// ```
    #[cfg(feature = "rate-limit")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rate-limit")))]
    pub fn rate_limiter(&self, name: &str) -> Option<&RateLimiterConfig> {
        self.rate_limiters.get(name)
    }

    /// Builds the circuit breaker named `name`, carrying that name (its
    /// state-change events and, with the `metrics` feature, its metrics are
    /// labelled with it).
    ///
    /// # Errors
    ///
    /// [`ConfigFileError::UnknownInstance`] when there is none of that name.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::FaultToleranceConfig;
    /// let config = FaultToleranceConfig::from_toml_str("[fault_tolerance.breakers.payments]\n")?;
    /// let breaker = config.build_breaker("payments")?;
    /// assert_eq!(breaker.config().failure_threshold(), 5);
    /// assert_eq!(breaker.name(), Some("payments"));
    /// assert!(config.build_breaker("search").is_err());
    /// # Ok::<(), steadfast::config::ConfigFileError>(())
    /// ```
    pub fn build_breaker(&self, name: &str) -> Result<CircuitBreaker, ConfigFileError> {
        let config = named(&self.breakers, "breaker", name)?;
        Ok(CircuitBreaker::named(name, config.clone()))
    }

    /// The retry policy named `name`, to retry with (a policy is itself the
    /// strategy).
    ///
    /// # Errors
    ///
    /// [`ConfigFileError::UnknownInstance`] when there is none of that name.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::FaultToleranceConfig;
    /// let config = FaultToleranceConfig::from_toml_str("[fault_tolerance.retries.rpc]\npreset = \"rpc\"\n")?;
    /// assert_eq!(config.build_retry("rpc")?.max_retries(), 3);
    /// # Ok::<(), steadfast::config::ConfigFileError>(())
    /// ```
    pub fn build_retry(&self, name: &str) -> Result<RetryPolicy, ConfigFileError> {
        named(&self.retries, "retry", name).cloned()
    }

    /// The retry policy named `name` as a pipeline strategy carrying that
    /// name (with the `metrics` feature, its attempts and give-ups are
    /// labelled with it).
    ///
    /// # Errors
    ///
    /// [`ConfigFileError::UnknownInstance`] when there is none of that name.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::FaultToleranceConfig;
    /// use steadfast::pipeline::Pipeline;
    /// let config = FaultToleranceConfig::from_toml_str("[fault_tolerance.retries.rpc]\npreset = \"rpc\"\n")?;
    /// let strategy = config.build_retry_strategy("rpc")?;
    /// assert_eq!(strategy.retry_name(), Some("rpc"));
    /// let pipeline = Pipeline::builder().strategy(strategy).build()?;
    /// # let _ = pipeline;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build_retry_strategy(&self, name: &str) -> Result<RetryStrategy, ConfigFileError> {
        let policy = named(&self.retries, "retry", name)?;
        Ok(RetryStrategy::new(policy.clone()).name(name))
    }

    /// Builds the timeout handler named `name`.
    ///
    /// # Errors
    ///
    /// [`ConfigFileError::UnknownInstance`] when there is none of that name.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::config::FaultToleranceConfig;
    /// let config = FaultToleranceConfig::from_toml_str("[fault_tolerance.timeouts.db]\ndefault_timeout = \"2s\"\n")?;
    /// assert_eq!(config.build_timeout("db")?.default_timeout(), Duration::from_secs(2));
    /// # Ok::<(), steadfast::config::ConfigFileError>(())
    /// ```
    pub fn build_timeout(&self, name: &str) -> Result<TimeoutHandler, ConfigFileError> {
        let config = named(&self.timeouts, "timeout", name)?;
        Ok(TimeoutHandler::new(*config))
    }

    /// Builds the bulkhead named `name`, carrying that name (with the
    /// `metrics` feature, its metrics are labelled with it).
    ///
    /// # Errors
    ///
    /// [`ConfigFileError::UnknownInstance`] when there is none of that name.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::FaultToleranceConfig;
    /// let config = FaultToleranceConfig::from_toml_str("[fault_tolerance.bulkheads.db]\nmax_concurrent = 4\n")?;
    /// assert_eq!(config.build_bulkhead("db")?.config().max_concurrent(), 4);
    /// # Ok::<(), steadfast::config::ConfigFileError>(())
    /// ```
    pub fn build_bulkhead(&self, name: &str) -> Result<Bulkhead, ConfigFileError> {
        let config = named(&self.bulkheads, "bulkhead", name)?;
        Ok(Bulkhead::named(name, config.clone()))
    }

    /// Builds the hedging strategy named `name`.
    ///
    /// # Errors
    ///
    /// [`ConfigFileError::UnknownInstance`] when there is none of that name.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::FaultToleranceConfig;
    /// let config = FaultToleranceConfig::from_toml_str("[fault_tolerance.hedges.search]\nmax_attempts = 3\n")?;
    /// assert_eq!(config.build_hedge("search")?.config().max_attempts(), 3);
    /// # Ok::<(), steadfast::config::ConfigFileError>(())
    /// ```
    pub fn build_hedge(&self, name: &str) -> Result<Hedge, ConfigFileError> {
        let config = named(&self.hedges, "hedge", name)?;
        Ok(Hedge::new(config.clone()))
    }

    /// Builds the rate limiter named `name` (feature `rate-limit`), carrying
    /// that name (with the `metrics` feature, its metrics are labelled with
    /// it).
    ///
    /// # Errors
    ///
    /// [`ConfigFileError::UnknownInstance`] when there is none of that name.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::FaultToleranceConfig;
    /// let config = FaultToleranceConfig::from_toml_str("[fault_tolerance.rate_limiters.api]\npermits = 10\n")?;
    /// assert_eq!(config.build_rate_limiter("api")?.config().permits(), 10);
    /// # Ok::<(), steadfast::config::ConfigFileError>(())
    /// ```
    #[cfg(feature = "rate-limit")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rate-limit")))]
    pub fn build_rate_limiter(&self, name: &str) -> Result<RateLimiter, ConfigFileError> {
        let config = named(&self.rate_limiters, "rate_limiter", name)?;
        Ok(RateLimiter::named(name, config.clone()))
    }

    /// Builds a health monitor from the health section.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::config::FaultToleranceConfig;
    /// let config = FaultToleranceConfig::from_toml_str("[fault_tolerance.health]\nheartbeat_timeout = \"10s\"\n")?;
    /// let monitor = config.build_health_monitor();
    /// # drop(monitor);
    /// # Ok::<(), steadfast::config::ConfigFileError>(())
    /// ```
    pub fn build_health_monitor(&self) -> HealthMonitor {
        HealthMonitor::new(self.health.clone())
    }
}
