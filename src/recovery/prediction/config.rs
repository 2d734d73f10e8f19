//! [`PredictionConfig`]: whether failure prediction runs, with which model,
//! and how often.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// The name of the built-in model in `prediction_model`: a fresh, untrained
/// [`LogisticModel`](super::LogisticModel) (it predicts nothing until it has
/// learnt).
pub const LOGISTIC_MODEL: &str = "logistic";

/// Configuration of failure prediction.
///
/// - `prediction_enabled`: whether whoever wires the predictor (the
///   recovery coordinator) starts it; the [`FailurePredictor`](super::FailurePredictor)
///   itself works either way.
/// - `prediction_model`: `"logistic"` for a fresh online logistic model, or
///   the path of a model saved with
///   [`LogisticModel::save`](super::LogisticModel::save), read by
///   [`FailurePredictor::from_config`](super::FailurePredictor::from_config).
/// - `prediction_interval`: how often the evaluation task
///   ([`FailurePredictor::start`](super::FailurePredictor::start)) computes
///   the predictions and calls the hooks; a readable duration (`"1m"`,
///   `"30s"`).
///
/// # Default
///
/// - `prediction_enabled`: false
/// - `prediction_model`: `"logistic"`
/// - `prediction_interval`: 1 minute
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::recovery::prediction::PredictionConfig;
///
/// let config: PredictionConfig = serde_json::from_str(
///     r#"{"prediction_enabled": true, "prediction_interval": "30s"}"#,
/// ).unwrap();
/// assert!(config.prediction_enabled());
/// assert_eq!(config.prediction_model(), "logistic");
/// assert_eq!(config.prediction_interval(), Duration::from_secs(30));
/// assert!(serde_json::from_str::<PredictionConfig>(r#"{"prediction_interval": "0s"}"#).is_err());
/// assert!(serde_json::from_str::<PredictionConfig>(r#"{"prediction_modle": "x"}"#).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PredictionConfigRepr", into = "PredictionConfigRepr")]
pub struct PredictionConfig {
    prediction_enabled: bool,
    prediction_model: String,
    prediction_interval: Duration,
}

impl Default for PredictionConfig {
    fn default() -> Self {
        PredictionConfig {
            prediction_enabled: false,
            prediction_model: LOGISTIC_MODEL.to_owned(),
            prediction_interval: Duration::from_secs(60),
        }
    }
}

impl PredictionConfig {
    /// A builder starting from the defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = steadfast::recovery::prediction::PredictionConfig::builder()
    ///     .prediction_enabled(true)
    ///     .build()?;
    /// assert!(config.prediction_enabled());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn builder() -> PredictionConfigBuilder {
        PredictionConfigBuilder {
            config: PredictionConfig::default(),
        }
    }

    /// Whether prediction is to be started.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!steadfast::recovery::prediction::PredictionConfig::default().prediction_enabled());
    /// ```
    pub fn prediction_enabled(&self) -> bool {
        self.prediction_enabled
    }

    /// `"logistic"` or the path of a saved model.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::recovery::prediction::PredictionConfig::default().prediction_model(), "logistic");
    /// ```
    pub fn prediction_model(&self) -> &str {
        &self.prediction_model
    }

    /// How often predictions are evaluated.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// assert_eq!(
    ///     steadfast::recovery::prediction::PredictionConfig::default().prediction_interval(),
    ///     Duration::from_secs(60)
    /// );
    /// ```
    pub fn prediction_interval(&self) -> Duration {
        self.prediction_interval
    }

    /// Checks every rule of the configuration; called by
    /// [`PredictionConfigBuilder::build`] and by deserialization.
    fn validate(&self) -> Result<(), ConfigError> {
        if self.prediction_interval.is_zero() {
            return Err(ConfigError::new(
                "prediction_interval",
                "must be greater than zero",
            ));
        }
        if self.prediction_model.trim().is_empty() {
            return Err(ConfigError::new(
                "prediction_model",
                "must be \"logistic\" or the path of a saved model, got an empty string",
            ));
        }
        Ok(())
    }
}

/// Builds a validated [`PredictionConfig`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let config = steadfast::recovery::prediction::PredictionConfig::builder()
///     .prediction_model("models/failures.json")
///     .prediction_interval(Duration::from_secs(10))
///     .build()?;
/// assert_eq!(config.prediction_model(), "models/failures.json");
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct PredictionConfigBuilder {
    config: PredictionConfig,
}

impl PredictionConfigBuilder {
    /// Sets whether prediction is to be started.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = steadfast::recovery::prediction::PredictionConfig::builder().prediction_enabled(true);
    /// assert!(b.build()?.prediction_enabled());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn prediction_enabled(mut self, enabled: bool) -> Self {
        self.config.prediction_enabled = enabled;
        self
    }

    /// Sets the model: `"logistic"` or the path of a saved model (not
    /// empty).
    ///
    /// # Examples
    ///
    /// ```
    /// let b = steadfast::recovery::prediction::PredictionConfig::builder().prediction_model("");
    /// assert_eq!(b.build().unwrap_err().field(), "prediction_model");
    /// ```
    pub fn prediction_model(mut self, model: impl Into<String>) -> Self {
        self.config.prediction_model = model.into();
        self
    }

    /// Sets how often predictions are evaluated (greater than zero).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = steadfast::recovery::prediction::PredictionConfig::builder()
    ///     .prediction_interval(Duration::ZERO);
    /// assert_eq!(b.build().unwrap_err().field(), "prediction_interval");
    /// ```
    pub fn prediction_interval(mut self, interval: Duration) -> Self {
        self.config.prediction_interval = interval;
        self
    }

    /// Validates and returns the config.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::recovery::prediction::PredictionConfig::builder().build().is_ok());
    /// ```
    pub fn build(self) -> Result<PredictionConfig, ConfigError> {
        self.config.validate()?;
        Ok(self.config)
    }
}

/// The serialized form of a [`PredictionConfig`]; every field is optional
/// and defaults as the builder does.
#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct PredictionConfigRepr {
    prediction_enabled: bool,
    prediction_model: String,
    #[serde(with = "crate::serde_duration")]
    prediction_interval: Duration,
}

impl Default for PredictionConfigRepr {
    fn default() -> Self {
        PredictionConfig::default().into()
    }
}

impl From<PredictionConfig> for PredictionConfigRepr {
    fn from(c: PredictionConfig) -> Self {
        PredictionConfigRepr {
            prediction_enabled: c.prediction_enabled,
            prediction_model: c.prediction_model,
            prediction_interval: c.prediction_interval,
        }
    }
}

impl TryFrom<PredictionConfigRepr> for PredictionConfig {
    type Error = ConfigError;

    fn try_from(r: PredictionConfigRepr) -> Result<Self, ConfigError> {
        let config = PredictionConfig {
            prediction_enabled: r.prediction_enabled,
            prediction_model: r.prediction_model,
            prediction_interval: r.prediction_interval,
        };
        config.validate()?;
        Ok(config)
    }
}
