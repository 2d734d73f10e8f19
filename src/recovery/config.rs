//! [`RecoveryConfig`]: how much history and how many operations an
//! [`ErrorRecoveryManager`](super::ErrorRecoveryManager) keeps.

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// Configuration of an [`ErrorRecoveryManager`](super::ErrorRecoveryManager).
///
/// # Default
///
/// - `history_capacity`: 1000 (errors kept in the history; the oldest is
///   dropped)
/// - `max_tracked_operations`: 10 000 (operations whose error counts are
///   kept; past this, the one whose last error is oldest is forgotten)
///
/// # Examples
///
/// ```
/// use steadfast::recovery::RecoveryConfig;
///
/// let config = RecoveryConfig::builder().history_capacity(50).build()?;
/// assert_eq!(config.history_capacity(), 50);
/// let json = serde_json::to_string(&config).unwrap();
/// assert_eq!(serde_json::from_str::<RecoveryConfig>(&json).unwrap(), config);
/// assert!(RecoveryConfig::builder().history_capacity(0).build().is_err());
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RecoveryConfigRepr", into = "RecoveryConfigRepr")]
pub struct RecoveryConfig {
    history_capacity: usize,
    max_tracked_operations: usize,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        RecoveryConfig {
            history_capacity: 1000,
            max_tracked_operations: 10_000,
        }
    }
}

/// The largest history accepted (it is allocated up front).
const MAX_HISTORY: usize = 1 << 24;

impl RecoveryConfig {
    /// A builder starting from the defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = steadfast::recovery::RecoveryConfig::builder().build()?;
    /// assert_eq!(config.history_capacity(), 1000);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn builder() -> RecoveryConfigBuilder {
        RecoveryConfigBuilder {
            config: RecoveryConfig::default(),
        }
    }

    /// How many errors the history keeps.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::recovery::RecoveryConfig::default().history_capacity(), 1000);
    /// ```
    pub fn history_capacity(&self) -> usize {
        self.history_capacity
    }

    /// How many operations' error counts are kept.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::recovery::RecoveryConfig::default().max_tracked_operations(), 10_000);
    /// ```
    pub fn max_tracked_operations(&self) -> usize {
        self.max_tracked_operations
    }

    /// Checks every rule of the configuration; called by
    /// [`RecoveryConfigBuilder::build`] and by deserialization.
    fn validate(&self) -> Result<(), ConfigError> {
        if self.history_capacity == 0 || self.history_capacity > MAX_HISTORY {
            return Err(ConfigError::new(
                "history_capacity",
                format!(
                    "must be in 1..={MAX_HISTORY}, got {}",
                    self.history_capacity
                ),
            ));
        }
        if self.max_tracked_operations == 0 {
            return Err(ConfigError::new(
                "max_tracked_operations",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Builds a validated [`RecoveryConfig`].
///
/// # Examples
///
/// ```
/// let config = steadfast::recovery::RecoveryConfig::builder()
///     .history_capacity(10)
///     .max_tracked_operations(100)
///     .build()?;
/// assert_eq!(config.max_tracked_operations(), 100);
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RecoveryConfigBuilder {
    config: RecoveryConfig,
}

impl RecoveryConfigBuilder {
    /// Sets how many errors the history keeps (at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// let b = steadfast::recovery::RecoveryConfig::builder().history_capacity(0);
    /// assert_eq!(b.build().unwrap_err().field(), "history_capacity");
    /// ```
    pub fn history_capacity(mut self, capacity: usize) -> Self {
        self.config.history_capacity = capacity;
        self
    }

    /// Sets how many operations' error counts are kept (at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// let b = steadfast::recovery::RecoveryConfig::builder().max_tracked_operations(0);
    /// assert_eq!(b.build().unwrap_err().field(), "max_tracked_operations");
    /// ```
    pub fn max_tracked_operations(mut self, max: usize) -> Self {
        self.config.max_tracked_operations = max;
        self
    }

    /// Validates and returns the config.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::recovery::RecoveryConfig::builder().build().is_ok());
    /// ```
    pub fn build(self) -> Result<RecoveryConfig, ConfigError> {
        self.config.validate()?;
        Ok(self.config)
    }
}

/// The serialized form of a [`RecoveryConfig`]; every field is optional and
/// defaults as the builder does.
#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RecoveryConfigRepr {
    history_capacity: usize,
    max_tracked_operations: usize,
}

impl Default for RecoveryConfigRepr {
    fn default() -> Self {
        RecoveryConfig::default().into()
    }
}

impl From<RecoveryConfig> for RecoveryConfigRepr {
    fn from(c: RecoveryConfig) -> Self {
        RecoveryConfigRepr {
            history_capacity: c.history_capacity,
            max_tracked_operations: c.max_tracked_operations,
        }
    }
}

impl TryFrom<RecoveryConfigRepr> for RecoveryConfig {
    type Error = ConfigError;

    fn try_from(r: RecoveryConfigRepr) -> Result<Self, ConfigError> {
        let config = RecoveryConfig {
            history_capacity: r.history_capacity,
            max_tracked_operations: r.max_tracked_operations,
        };
        config.validate()?;
        Ok(config)
    }
}
