//! [`HealthRules`]: the levels a health watcher sets from the health of a
//! component's members.

use serde::{Deserialize, Serialize};

use crate::ConfigError;

use super::ServiceLevel;

/// When a [`DegradationManager::watch_health`](super::DegradationManager::watch_health) watcher lowers a component,
/// from the health of the members that belong to it.
///
/// The component's level is the worst of the rules that apply:
///
/// - `on_unresponsive`: at least one member Unresponsive or Failed;
/// - `on_any_failed`: at least one member Failed;
/// - `on_majority_failed`: more than half of the members Failed;
/// - `on_all_failed`: every member Failed.
///
/// # Default
///
/// - `on_unresponsive`: Normal (an unresponsive member alone changes
///   nothing)
/// - `on_any_failed`: ReadOnly
/// - `on_majority_failed`: EssentialOnly
/// - `on_all_failed`: Offline
///
/// # Examples
///
/// ```
/// use steadfast::degradation::{HealthRules, ServiceLevel};
///
/// let rules = HealthRules::default();
/// assert_eq!(rules.level_for(8, 0, 0), ServiceLevel::Normal);
/// assert_eq!(rules.level_for(8, 3, 0), ServiceLevel::Normal);
/// assert_eq!(rules.level_for(8, 0, 2), ServiceLevel::ReadOnly);
/// assert_eq!(rules.level_for(8, 0, 5), ServiceLevel::EssentialOnly);
/// assert_eq!(rules.level_for(8, 0, 8), ServiceLevel::Offline);
///
/// let strict = HealthRules::builder().on_unresponsive(ServiceLevel::ReadOnly).build()?;
/// assert_eq!(strict.level_for(8, 1, 0), ServiceLevel::ReadOnly);
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "HealthRulesRepr", into = "HealthRulesRepr")]
pub struct HealthRules {
    on_unresponsive: ServiceLevel,
    on_any_failed: ServiceLevel,
    on_majority_failed: ServiceLevel,
    on_all_failed: ServiceLevel,
}

impl Default for HealthRules {
    fn default() -> Self {
        HealthRules {
            on_unresponsive: ServiceLevel::Normal,
            on_any_failed: ServiceLevel::ReadOnly,
            on_majority_failed: ServiceLevel::EssentialOnly,
            on_all_failed: ServiceLevel::Offline,
        }
    }
}

impl HealthRules {
    /// A builder starting from the defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::degradation::{HealthRules, ServiceLevel};
    /// let rules = HealthRules::builder().on_all_failed(ServiceLevel::EssentialOnly).build()?;
    /// assert_eq!(rules.on_all_failed(), ServiceLevel::EssentialOnly);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn builder() -> HealthRulesBuilder {
        HealthRulesBuilder {
            rules: HealthRules::default(),
        }
    }

    /// The level when a member is Unresponsive (or Failed).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::degradation::{HealthRules, ServiceLevel};
    /// assert_eq!(HealthRules::default().on_unresponsive(), ServiceLevel::Normal);
    /// ```
    pub fn on_unresponsive(&self) -> ServiceLevel {
        self.on_unresponsive
    }

    /// The level when at least one member is Failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::degradation::{HealthRules, ServiceLevel};
    /// assert_eq!(HealthRules::default().on_any_failed(), ServiceLevel::ReadOnly);
    /// ```
    pub fn on_any_failed(&self) -> ServiceLevel {
        self.on_any_failed
    }

    /// The level when more than half of the members are Failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::degradation::{HealthRules, ServiceLevel};
    /// assert_eq!(HealthRules::default().on_majority_failed(), ServiceLevel::EssentialOnly);
    /// ```
    pub fn on_majority_failed(&self) -> ServiceLevel {
        self.on_majority_failed
    }

    /// The level when every member is Failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::degradation::{HealthRules, ServiceLevel};
    /// assert_eq!(HealthRules::default().on_all_failed(), ServiceLevel::Offline);
    /// ```
    pub fn on_all_failed(&self) -> ServiceLevel {
        self.on_all_failed
    }

    /// The level for a component of `total` members, of which
    /// `unresponsive` are Unresponsive and `failed` are Failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::degradation::{HealthRules, ServiceLevel};
    /// assert_eq!(HealthRules::default().level_for(2, 0, 1), ServiceLevel::ReadOnly);
    /// assert_eq!(HealthRules::default().level_for(0, 0, 0), ServiceLevel::Normal);
    /// ```
    pub fn level_for(&self, total: usize, unresponsive: usize, failed: usize) -> ServiceLevel {
        let mut level = ServiceLevel::Normal;
        if unresponsive + failed > 0 {
            level = level.max(self.on_unresponsive);
        }
        if failed > 0 {
            level = level.max(self.on_any_failed);
        }
        if failed.saturating_mul(2) > total {
            level = level.max(self.on_majority_failed);
        }
        if total > 0 && failed >= total {
            level = level.max(self.on_all_failed);
        }
        level
    }

    /// Checks every rule of the configuration; called by
    /// [`HealthRulesBuilder::build`] and by deserialization.
    fn validate(&self) -> Result<(), ConfigError> {
        if self.on_majority_failed < self.on_any_failed {
            return Err(ConfigError::new(
                "on_majority_failed",
                format!(
                    "must be at least as severe as on_any_failed ({}), got {}",
                    self.on_any_failed, self.on_majority_failed
                ),
            ));
        }
        if self.on_all_failed < self.on_majority_failed {
            return Err(ConfigError::new(
                "on_all_failed",
                format!(
                    "must be at least as severe as on_majority_failed ({}), got {}",
                    self.on_majority_failed, self.on_all_failed
                ),
            ));
        }
        Ok(())
    }
}

/// Builds validated [`HealthRules`]: a rule for more failures may not be
/// milder than a rule for fewer.
///
/// # Examples
///
/// ```
/// use steadfast::degradation::{HealthRules, ServiceLevel};
/// let err = HealthRules::builder()
///     .on_any_failed(ServiceLevel::Offline)
///     .build()
///     .unwrap_err();
/// assert_eq!(err.field(), "on_majority_failed");
/// ```
#[derive(Debug, Clone)]
pub struct HealthRulesBuilder {
    rules: HealthRules,
}

impl HealthRulesBuilder {
    /// Sets the level when a member is Unresponsive (or Failed).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::degradation::{HealthRules, ServiceLevel};
    /// let b = HealthRules::builder().on_unresponsive(ServiceLevel::ReadOnly);
    /// assert!(b.build().is_ok());
    /// ```
    pub fn on_unresponsive(mut self, level: ServiceLevel) -> Self {
        self.rules.on_unresponsive = level;
        self
    }

    /// Sets the level when at least one member is Failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::degradation::{HealthRules, ServiceLevel};
    /// let b = HealthRules::builder().on_any_failed(ServiceLevel::Normal);
    /// assert!(b.build().is_ok());
    /// ```
    pub fn on_any_failed(mut self, level: ServiceLevel) -> Self {
        self.rules.on_any_failed = level;
        self
    }

    /// Sets the level when more than half of the members are Failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::degradation::{HealthRules, ServiceLevel};
    /// let b = HealthRules::builder().on_majority_failed(ServiceLevel::Offline);
    /// assert!(b.build().is_ok());
    /// ```
    pub fn on_majority_failed(mut self, level: ServiceLevel) -> Self {
        self.rules.on_majority_failed = level;
        self
    }

    /// Sets the level when every member is Failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::degradation::{HealthRules, ServiceLevel};
    /// let b = HealthRules::builder().on_all_failed(ServiceLevel::ReadOnly);
    /// assert_eq!(b.build().unwrap_err().field(), "on_all_failed");
    /// ```
    pub fn on_all_failed(mut self, level: ServiceLevel) -> Self {
        self.rules.on_all_failed = level;
        self
    }

    /// Validates and returns the rules.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::degradation::HealthRules::builder().build().is_ok());
    /// ```
    pub fn build(self) -> Result<HealthRules, ConfigError> {
        self.rules.validate()?;
        Ok(self.rules)
    }
}

/// The serialized form of a [`HealthRules`]; every field is optional and
/// defaults as the builder does.
#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct HealthRulesRepr {
    on_unresponsive: ServiceLevel,
    on_any_failed: ServiceLevel,
    on_majority_failed: ServiceLevel,
    on_all_failed: ServiceLevel,
}

impl Default for HealthRulesRepr {
    fn default() -> Self {
        HealthRules::default().into()
    }
}

impl From<HealthRules> for HealthRulesRepr {
    fn from(r: HealthRules) -> Self {
        HealthRulesRepr {
            on_unresponsive: r.on_unresponsive,
            on_any_failed: r.on_any_failed,
            on_majority_failed: r.on_majority_failed,
            on_all_failed: r.on_all_failed,
        }
    }
}

impl TryFrom<HealthRulesRepr> for HealthRules {
    type Error = ConfigError;

    fn try_from(r: HealthRulesRepr) -> Result<Self, ConfigError> {
        let rules = HealthRules {
            on_unresponsive: r.on_unresponsive,
            on_any_failed: r.on_any_failed,
            on_majority_failed: r.on_majority_failed,
            on_all_failed: r.on_all_failed,
        };
        rules.validate()?;
        Ok(rules)
    }
}
