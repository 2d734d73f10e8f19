//! [`RecoveryCoordinatorConfig`]: the strategy, the quorum, the time a
//! recovery may take and how often it is tried.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::plan::RecoveryStrategyKind;
use crate::ConfigError;

/// Configuration of a [`RecoveryCoordinator`](super::RecoveryCoordinator).
///
/// # Default
///
/// - `recovery_strategy`: `restart_from_checkpoint`
/// - `recovery_timeout`: 5 minutes (a whole recovery: agreeing, restoring,
///   confirming)
/// - `max_recovery_attempts`: 3 (a plan that is not carried out everywhere
///   is replaced by the next, up to this many times)
/// - `quorum_size`: 1 (how many live rank holders, the leader included,
///   must answer before a plan is made; set it to a majority of the job to
///   keep the minority side of a partition from deciding)
/// - `answer_window`: 2 s (how long the leader waits for the survivors to
///   answer before it plans with those that did, if they are a quorum)
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::recovery::{RecoveryCoordinatorConfig, RecoveryStrategyKind};
///
/// let config: RecoveryCoordinatorConfig = serde_json::from_str(
///     r#"{"recovery_strategy": "fastest_node", "recovery_timeout": "5m", "max_recovery_attempts": 3, "quorum_size": 2}"#,
/// )?;
/// assert_eq!(config.recovery_strategy(), RecoveryStrategyKind::FastestNode);
/// assert_eq!(config.recovery_timeout(), Duration::from_secs(300));
/// assert!(serde_json::from_str::<RecoveryCoordinatorConfig>(r#"{"quorum_size": 0}"#).is_err());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    try_from = "RecoveryCoordinatorConfigRepr",
    into = "RecoveryCoordinatorConfigRepr"
)]
pub struct RecoveryCoordinatorConfig {
    recovery_strategy: RecoveryStrategyKind,
    recovery_timeout: Duration,
    max_recovery_attempts: u32,
    quorum_size: usize,
    answer_window: Duration,
}

impl Default for RecoveryCoordinatorConfig {
    fn default() -> Self {
        RecoveryCoordinatorConfig {
            recovery_strategy: RecoveryStrategyKind::RestartFromCheckpoint,
            recovery_timeout: Duration::from_secs(300),
            max_recovery_attempts: 3,
            quorum_size: 1,
            answer_window: Duration::from_secs(2),
        }
    }
}

impl RecoveryCoordinatorConfig {
    /// A builder starting from the defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = steadfast::recovery::RecoveryCoordinatorConfig::builder().quorum_size(3).build()?;
    /// assert_eq!(config.quorum_size(), 3);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn builder() -> RecoveryCoordinatorConfigBuilder {
        RecoveryCoordinatorConfigBuilder {
            config: RecoveryCoordinatorConfig::default(),
        }
    }

    /// The recovery strategy.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::{RecoveryCoordinatorConfig, RecoveryStrategyKind};
    /// assert_eq!(RecoveryCoordinatorConfig::default().recovery_strategy(), RecoveryStrategyKind::RestartFromCheckpoint);
    /// ```
    pub fn recovery_strategy(&self) -> RecoveryStrategyKind {
        self.recovery_strategy
    }

    /// How long one recovery may take.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// assert_eq!(steadfast::recovery::RecoveryCoordinatorConfig::default().recovery_timeout(), Duration::from_secs(300));
    /// ```
    pub fn recovery_timeout(&self) -> Duration {
        self.recovery_timeout
    }

    /// How many plans are tried for one failure.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::recovery::RecoveryCoordinatorConfig::default().max_recovery_attempts(), 3);
    /// ```
    pub fn max_recovery_attempts(&self) -> u32 {
        self.max_recovery_attempts
    }

    /// How many live rank holders must answer before a plan is made.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::recovery::RecoveryCoordinatorConfig::default().quorum_size(), 1);
    /// ```
    pub fn quorum_size(&self) -> usize {
        self.quorum_size
    }

    /// How long the leader waits for the survivors' answers.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// assert_eq!(steadfast::recovery::RecoveryCoordinatorConfig::default().answer_window(), Duration::from_secs(2));
    /// ```
    pub fn answer_window(&self) -> Duration {
        self.answer_window
    }

    /// Checks every rule; called by the builder and by deserialization.
    fn validate(&self) -> Result<(), ConfigError> {
        if self.recovery_timeout.is_zero() {
            return Err(ConfigError::new(
                "recovery_timeout",
                "must be greater than zero",
            ));
        }
        if self.max_recovery_attempts == 0 {
            return Err(ConfigError::new(
                "max_recovery_attempts",
                "must be at least 1",
            ));
        }
        if self.quorum_size == 0 {
            return Err(ConfigError::new(
                "quorum_size",
                "must be at least 1 (the leader itself)",
            ));
        }
        if self.answer_window.is_zero() || self.answer_window >= self.recovery_timeout {
            return Err(ConfigError::new(
                "answer_window",
                format!(
                    "must be greater than zero and shorter than recovery_timeout ({:?}), got {:?}",
                    self.recovery_timeout, self.answer_window
                ),
            ));
        }
        Ok(())
    }
}

/// Builds a validated [`RecoveryCoordinatorConfig`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::recovery::{RecoveryCoordinatorConfig, RecoveryStrategyKind};
/// let config = RecoveryCoordinatorConfig::builder()
///     .recovery_strategy(RecoveryStrategyKind::RedistributeWork)
///     .recovery_timeout(Duration::from_secs(30))
///     .max_recovery_attempts(2)
///     .answer_window(Duration::from_millis(500))
///     .build()?;
/// assert_eq!(config.max_recovery_attempts(), 2);
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RecoveryCoordinatorConfigBuilder {
    config: RecoveryCoordinatorConfig,
}

impl RecoveryCoordinatorConfigBuilder {
    /// Sets the strategy.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::{RecoveryCoordinatorConfig, RecoveryStrategyKind};
    /// let c = RecoveryCoordinatorConfig::builder().recovery_strategy(RecoveryStrategyKind::FastestNode).build()?;
    /// assert_eq!(c.recovery_strategy(), RecoveryStrategyKind::FastestNode);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn recovery_strategy(mut self, strategy: RecoveryStrategyKind) -> Self {
        self.config.recovery_strategy = strategy;
        self
    }

    /// Sets how long one recovery may take (greater than zero).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// let b = steadfast::recovery::RecoveryCoordinatorConfig::builder().recovery_timeout(Duration::ZERO);
    /// assert_eq!(b.build().unwrap_err().field(), "recovery_timeout");
    /// ```
    pub fn recovery_timeout(mut self, timeout: Duration) -> Self {
        self.config.recovery_timeout = timeout;
        self
    }

    /// Sets how many plans are tried for one failure (at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// let b = steadfast::recovery::RecoveryCoordinatorConfig::builder().max_recovery_attempts(0);
    /// assert_eq!(b.build().unwrap_err().field(), "max_recovery_attempts");
    /// ```
    pub fn max_recovery_attempts(mut self, attempts: u32) -> Self {
        self.config.max_recovery_attempts = attempts;
        self
    }

    /// Sets the quorum (at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// let b = steadfast::recovery::RecoveryCoordinatorConfig::builder().quorum_size(0);
    /// assert_eq!(b.build().unwrap_err().field(), "quorum_size");
    /// ```
    pub fn quorum_size(mut self, quorum: usize) -> Self {
        self.config.quorum_size = quorum;
        self
    }

    /// Sets how long the leader waits for answers (shorter than the
    /// recovery timeout).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// let b = steadfast::recovery::RecoveryCoordinatorConfig::builder().answer_window(Duration::from_secs(600));
    /// assert_eq!(b.build().unwrap_err().field(), "answer_window");
    /// ```
    pub fn answer_window(mut self, window: Duration) -> Self {
        self.config.answer_window = window;
        self
    }

    /// Validates and returns the config.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::recovery::RecoveryCoordinatorConfig::builder().build().is_ok());
    /// ```
    pub fn build(self) -> Result<RecoveryCoordinatorConfig, ConfigError> {
        self.config.validate()?;
        Ok(self.config)
    }
}

/// The serialized form; every field optional, defaulting as the builder.
#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RecoveryCoordinatorConfigRepr {
    recovery_strategy: RecoveryStrategyKind,
    #[serde(with = "crate::serde_duration")]
    recovery_timeout: Duration,
    max_recovery_attempts: u32,
    quorum_size: usize,
    #[serde(with = "crate::serde_duration")]
    answer_window: Duration,
}

impl Default for RecoveryCoordinatorConfigRepr {
    fn default() -> Self {
        RecoveryCoordinatorConfig::default().into()
    }
}

impl From<RecoveryCoordinatorConfig> for RecoveryCoordinatorConfigRepr {
    fn from(c: RecoveryCoordinatorConfig) -> Self {
        RecoveryCoordinatorConfigRepr {
            recovery_strategy: c.recovery_strategy,
            recovery_timeout: c.recovery_timeout,
            max_recovery_attempts: c.max_recovery_attempts,
            quorum_size: c.quorum_size,
            answer_window: c.answer_window,
        }
    }
}

impl TryFrom<RecoveryCoordinatorConfigRepr> for RecoveryCoordinatorConfig {
    type Error = ConfigError;

    fn try_from(r: RecoveryCoordinatorConfigRepr) -> Result<Self, ConfigError> {
        let config = RecoveryCoordinatorConfig {
            recovery_strategy: r.recovery_strategy,
            recovery_timeout: r.recovery_timeout,
            max_recovery_attempts: r.max_recovery_attempts,
            quorum_size: r.quorum_size,
            answer_window: r.answer_window,
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_round_trips() {
        let config = RecoveryCoordinatorConfig::builder()
            .recovery_strategy(RecoveryStrategyKind::FastestNode)
            .recovery_timeout(Duration::from_secs(300))
            .max_recovery_attempts(3)
            .quorum_size(2)
            .answer_window(Duration::from_millis(750))
            .build()
            .unwrap();
        let json = serde_json::to_string(&config).unwrap();
        assert!(
            json.contains(r#""recovery_strategy":"fastest_node""#),
            "{json}"
        );
        assert!(json.contains(r#""recovery_timeout":"5m""#), "{json}");
        assert_eq!(
            serde_json::from_str::<RecoveryCoordinatorConfig>(&json).unwrap(),
            config
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        for (json, key) in [
            (r#"{"quorum_size": 0}"#, "quorum_size"),
            (r#"{"max_recovery_attempts": 0}"#, "max_recovery_attempts"),
            (r#"{"recovery_timeout": "0s"}"#, "recovery_timeout"),
            (r#"{"recovery_strategy": "pray"}"#, "recovery_strategy"),
            (r#"{"recovery_timeout": "soon"}"#, "soon"),
            (r#"{"quorum": 2}"#, "quorum"),
        ] {
            let err = serde_json::from_str::<RecoveryCoordinatorConfig>(json).unwrap_err();
            assert!(err.to_string().contains(key), "{json}: {err}");
        }
    }
}
